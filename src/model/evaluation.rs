//! Evaluation of cross-validated risk predictions (the `evaluate` stage's library):
//! discrimination, calibration-in-the-large-free accuracy and risk-group separation of one arm's
//! out-of-fold (OOF) predictions, and the paired comparison of two arms.
//!
//! Everything is computed by the estimators of [`crate::survival`] — this file only arranges the
//! OOF rows into their inputs, so every number equals what `spatia survival <verb>` prints on the
//! same predictions:
//!
//! | metric | estimator | `spatia survival` verb |
//! |---|---|---|
//! | Harrell's C, Uno's C (τ = last horizon) | [`harrell_and_uno`] | `concordance --risk risk --tau τ` |
//! | Harrell's C bootstrap CI | [`bootstrap`] (= [`crate::survival::bootstrap_harrell`] with one repeat) | `concordance --bootstrap B --seed S` |
//! | AUC(t), ROC points, mean AUC | [`cumulative_dynamic_auc`] | `auc --risk risk --times … --roc` |
//! | Brier(t), integrated Brier score | [`brier_score`] on `Ŝ_i(t)` | `brier --surv t:S_t,…` |
//! | KM by risk group | [`KaplanMeier::fit_with_level`] | `km --group group --curve` |
//! | log-rank across groups | [`logrank`] | `logrank --group group` |
//! | hazard ratio high vs low (Wald CI) | [`fit_cox`] on a 0/1 indicator | `cox --covariates high` |
//! | paired ΔC | [`paired_concordance_difference`] | — |
//!
//! # Formula
//! Predicted survival of a test patient from its fold's Breslow baseline:
//! `Ŝ_i(t) = exp(−H₀(t) · exp(risk_i))`, `H₀(t)` the cumulative hazard at the last listed time
//! `≤ t` (0 before the first). Risk groups use the fold's **training** cut-points: with the
//! median, `high` when `risk > cut_median`, else `low`; with tertiles `(a, b)`, `low` when
//! `risk ≤ a`, `mid` when `a < risk ≤ b`, `high` when `risk > b`.
//! The integrated Brier score integrates `BS(t)` by the trapezoidal rule over the grid made of
//! the 5th percentile of the observed times (numpy's linear interpolation), every distinct
//! observed time strictly between it and the last horizon, and the last horizon, divided by
//! the grid's range.
//! Bootstrap: patients are resampled ([`crate::survival::bootstrap`], ChaCha8 seeded by the
//! spec seed, replicate `b` on stream `b`, so results do not depend on the thread count); each
//! metric's interval comes from its own pass over the same resamples, so a replicate where one
//! metric cannot be computed (e.g. no case before a horizon) is dropped for that metric only.
//! With several CV repeats a metric's estimate (and each replicate) is the mean over repeats of
//! the metric computed within each repeat; risk groups, KM curves, ROC points, log-rank and the
//! hazard ratio use repeat 0.
//!
//! # Assumptions
//! Every repeat predicts every patient exactly once; all arms of a comparison predict the same
//! patients with the same outcomes and the same number of repeats. IPCW weights (Uno, AUC,
//! Brier) use the censoring distribution of the evaluated patients (train = test, as
//! scikit-survival's metrics with the test set passed twice).
//!
//! # Errors
//! [`EvaluationError`]: inconsistent OOF rows (a patient missing from a repeat, listed twice,
//! with different outcomes across repeats), a fold without baseline or cut-points, a horizon
//! outside the follow-up, any estimator error (with the metric named).
//!
//! # References
//! Harrell FE et al. (1996) Stat Med 15:361–387. Uno H et al. (2011) Stat Med 30:1105–1117.
//! Uno H et al. (2007) JASA 102:527–537. Graf E et al. (1999) Stat Med 18:2529–2545.
//! Efron B, Tibshirani RJ (1993) *An Introduction to the Bootstrap*.
pub use crate::contracts::metrics::{GroupMethod, HazardRatio, KmRow, LogRankResult};
use crate::contracts::{baseline::Baseline, oof::OofRow};
use crate::survival::bootstrap::{replicates, two_sided_p};
use crate::survival::calibration::quantile_sorted;
use crate::survival::{
    bootstrap, brier_score, cumulative_dynamic_auc, fit_cox, harrell, harrell_and_uno, logrank,
    paired_concordance_difference, BootstrapCi, BootstrapOptions, CoxOptions, KaplanMeier, RocPoint, SurvivalError,
    WarningCode,
};
use std::collections::{BTreeMap, HashMap};
use thiserror::Error;

/// Errors of the evaluation.
#[derive(Debug, Error)]
pub enum EvaluationError {
    /// The OOF rows do not form one prediction per patient per repeat.
    #[error("arm `{arm}`: {msg}")]
    Inconsistent {
        /// Arm name.
        arm: String,
        /// What is wrong, with the patient / repeat / fold named.
        msg: String,
    },
    /// An option outside its domain.
    #[error("{name}: expected {expected}, found {found}")]
    InvalidOption {
        /// Option name.
        name: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// A survival estimator failed.
    #[error("arm `{arm}`, {metric}: {source}")]
    Metric {
        /// Arm name.
        arm: String,
        /// The metric being computed.
        metric: String,
        /// The estimator's error.
        source: Box<SurvivalError>,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, EvaluationError>;

/// Risk-group cut-points of one fold model, quantiles of its risk over its training patients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoldCuts {
    /// CV repeat.
    pub repeat: usize,
    /// Fold.
    pub fold: usize,
    /// Median training risk.
    pub cut_median: f64,
    /// Tertiles of the training risk.
    pub cut_tertiles: [f64; 2],
}

/// One arm's predictions.
#[derive(Debug, Clone)]
pub struct ArmInput {
    /// Arm name.
    pub name: String,
    /// OOF rows.
    pub oof: Vec<OofRow>,
    /// Fold baselines by (repeat, fold).
    pub baselines: BTreeMap<(usize, usize), Baseline>,
    /// Fold cut-points.
    pub cuts: Vec<FoldCuts>,
    /// Each test patient's predicted survival steps by (repeat, patient), for the folds that
    /// have no baseline (discrete-time networks); empty otherwise.
    pub curves: BTreeMap<(usize, String), Vec<(f64, f64)>>,
}

/// Options of the evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// Horizons (strictly increasing, inside the follow-up).
    pub horizons: Vec<f64>,
    /// Bootstrap replicates (≥ 1).
    pub bootstrap: usize,
    /// Confidence level of every interval.
    pub ci: f64,
    /// Bootstrap seed.
    pub seed: u64,
    /// Risk groups.
    pub groups: GroupMethod,
}

/// AUC at one horizon with its ROC curve (repeat 0).
#[derive(Debug, Clone, PartialEq)]
pub struct AucResult {
    /// The horizon.
    pub horizon: f64,
    /// AUC with CI.
    pub interval: BootstrapCi,
    /// Cases (events by the horizon) and controls (event-free after it), repeat 0.
    pub n_cases: usize,
    /// Controls.
    pub n_controls: usize,
    /// ROC points of repeat 0, from (0, 0) (threshold +∞) to (1, 1).
    pub roc: Vec<RocPoint>,
}

/// A risk group (repeat 0).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupResult {
    /// `low`, `mid` or `high`.
    pub label: String,
    /// Patients.
    pub n: usize,
    /// Events.
    pub events: usize,
    /// Numbers at risk at [`RiskGroups::at_risk_times`].
    pub at_risk: Vec<usize>,
    /// KM curve (empty for an empty group).
    pub km: Vec<KmRow>,
}

/// Risk-group analysis (repeat 0).
#[derive(Debug, Clone, PartialEq)]
pub struct RiskGroups {
    /// Median or tertiles.
    pub method: GroupMethod,
    /// Group of each patient (in patient order), as a label.
    pub assignment: Vec<&'static str>,
    /// Groups, low to high.
    pub groups: Vec<GroupResult>,
    /// Ticks of the at-risk table.
    pub at_risk_times: Vec<f64>,
    /// Log-rank across groups (`None` with fewer than two non-empty groups).
    pub logrank: Option<LogRankResult>,
    /// HR high vs low (`None` when either is empty or the fit fails).
    pub hazard_ratio: Option<HazardRatio>,
    /// Why something is missing.
    pub notes: Vec<String>,
}

/// All metrics of one arm.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmEvaluation {
    /// Arm name.
    pub arm: String,
    /// Patients.
    pub n: usize,
    /// Events.
    pub events: usize,
    /// CV repeats.
    pub repeats: usize,
    /// Harrell's C.
    pub harrell_c: BootstrapCi,
    /// Uno's C truncated at `tau`.
    pub uno_c: BootstrapCi,
    /// Uno's τ (the last horizon).
    pub tau: f64,
    /// AUC per horizon.
    pub auc: Vec<AucResult>,
    /// Mean AUC over the horizons (mean over repeats).
    pub mean_auc: f64,
    /// Brier score per horizon.
    pub brier: Vec<(f64, BootstrapCi)>,
    /// Integrated Brier score.
    pub ibs: BootstrapCi,
    /// Grid of the integrated Brier score.
    pub ibs_grid: Vec<f64>,
    /// Risk groups.
    pub risk_groups: RiskGroups,
    /// Each metric computed on all patients within each repeat.
    pub per_repeat: PerRepeat,
}

/// Each metric of an arm computed on all patients within each CV repeat (index = repeat).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PerRepeat {
    /// Harrell's C.
    pub harrell: Vec<f64>,
    /// Uno's C at τ.
    pub uno: Vec<f64>,
    /// AUC, per horizon then repeat.
    pub auc: Vec<Vec<f64>>,
    /// Brier score, per horizon then repeat.
    pub brier: Vec<Vec<f64>>,
    /// Integrated Brier score.
    pub ibs: Vec<f64>,
}

/// Paired comparison of an arm against the reference arm.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The arm.
    pub arm: String,
    /// The reference arm.
    pub reference: String,
    /// Harrell's C of the arm (mean over repeats).
    pub c_arm: f64,
    /// Harrell's C of the reference.
    pub c_reference: f64,
    /// `C(arm) − C(reference)` with its paired bootstrap interval.
    pub delta_c: BootstrapCi,
    /// Two-sided paired bootstrap p-value.
    pub p: f64,
}

/// One arm's OOF rows arranged by patient: the patient order is that of repeat 0's rows.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Arm name.
    pub arm: String,
    /// Patient ids.
    pub patients: Vec<String>,
    /// Follow-up per patient.
    pub time: Vec<f64>,
    /// Event per patient.
    pub event: Vec<bool>,
    /// `risk[r][i]`: risk of patient `i` in repeat `r`.
    pub risk: Vec<Vec<f64>>,
    /// `fold[r][i]`: test fold of patient `i` in repeat `r`.
    pub fold: Vec<Vec<usize>>,
    baselines: BTreeMap<(usize, usize), Baseline>,
    cuts: HashMap<(usize, usize), FoldCuts>,
    /// Survival steps by (repeat, patient index) where the fold has no baseline.
    curves: HashMap<(usize, usize), Vec<(f64, f64)>>,
}

impl Prepared {
    /// Checks and arranges an arm's rows.
    pub fn new(input: &ArmInput) -> Result<Prepared> {
        let bad = |msg: String| EvaluationError::Inconsistent { arm: input.name.clone(), msg };
        if input.oof.is_empty() {
            return Err(bad("expected out-of-fold rows, found none".into()));
        }
        let repeats = input.oof.iter().map(|r| r.repeat).max().unwrap_or(0) + 1;
        if repeats > input.oof.len() {
            return Err(bad(format!(
                "found repeat {} among {} rows: expected repeats numbered 0, 1, … with every patient in each",
                repeats - 1,
                input.oof.len()
            )));
        }
        let mut patients = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        let (mut time, mut event) = (Vec::new(), Vec::new());
        for r in input.oof.iter().filter(|r| r.repeat == 0) {
            if index.insert(&r.patient, patients.len()).is_some() {
                return Err(bad(format!(
                    "patient `{}` appears twice in repeat 0: expected one prediction per patient per repeat",
                    r.patient
                )));
            }
            patients.push(r.patient.clone());
            time.push(r.time);
            event.push(r.event);
        }
        let n = patients.len();
        let mut risk = vec![vec![f64::NAN; n]; repeats];
        let mut fold = vec![vec![usize::MAX; n]; repeats];
        for r in &input.oof {
            let Some(&i) = index.get(r.patient.as_str()) else {
                return Err(bad(format!(
                    "patient `{}` is predicted in repeat {} but not in repeat 0",
                    r.patient, r.repeat
                )));
            };
            if fold[r.repeat][i] != usize::MAX {
                return Err(bad(format!(
                    "patient `{}` appears twice in repeat {}: expected one prediction per patient per repeat",
                    r.patient, r.repeat
                )));
            }
            if r.time != time[i] || r.event != event[i] {
                return Err(bad(format!(
                    "patient `{}`: repeat {} has time {} event {}, repeat 0 has time {} event {}: expected one outcome per patient",
                    r.patient, r.repeat, r.time, r.event as u8, time[i], event[i] as u8
                )));
            }
            if !r.risk.is_finite() {
                return Err(bad(format!(
                    "patient `{}`, repeat {}: expected a finite risk, found {}",
                    r.patient, r.repeat, r.risk
                )));
            }
            risk[r.repeat][i] = r.risk;
            fold[r.repeat][i] = r.fold;
        }
        for (rep, f) in fold.iter().enumerate() {
            if let Some(i) = f.iter().position(|&x| x == usize::MAX) {
                return Err(bad(format!(
                    "patient `{}` has no prediction in repeat {rep}: expected every patient in every repeat",
                    patients[i]
                )));
            }
        }
        let baselines = input.baselines.clone();
        let cuts: HashMap<(usize, usize), FoldCuts> = input.cuts.iter().map(|c| ((c.repeat, c.fold), *c)).collect();
        let mut curves = HashMap::new();
        for (rep, f) in fold.iter().enumerate() {
            for (i, &k) in f.iter().enumerate() {
                if !baselines.contains_key(&(rep, k)) {
                    let Some(c) = input.curves.get(&(rep, patients[i].clone())) else {
                        return Err(bad(format!(
                            "patient `{}` is tested in repeat {rep} fold {k}, which has no baseline hazard (nor a predicted survival curve)",
                            patients[i]
                        )));
                    };
                    curves.insert((rep, i), c.clone());
                }
                if !cuts.contains_key(&(rep, k)) {
                    return Err(bad(format!(
                        "patient `{}` is tested in repeat {rep} fold {k}, which has no risk-group cut-points",
                        patients[i]
                    )));
                }
            }
        }
        Ok(Prepared { arm: input.name.clone(), patients, time, event, risk, fold, baselines, cuts, curves })
    }

    /// Number of repeats.
    pub fn repeats(&self) -> usize {
        self.risk.len()
    }

    /// `Ŝ_i(t)` of patient `i` in repeat `r`.
    pub fn survival(&self, r: usize, i: usize, t: f64) -> f64 {
        match self.baselines.get(&(r, self.fold[r][i])) {
            Some(b) => b.survival(self.risk[r][i], t),
            None => self.curves.get(&(r, i)).map_or(f64::NAN, |c| crate::contracts::survival_curves::step_at(c, t)),
        }
    }

    /// Risk group label of patient `i` in repeat `r`.
    pub fn group(&self, r: usize, i: usize, method: GroupMethod) -> &'static str {
        let c = &self.cuts[&(r, self.fold[r][i])];
        let x = self.risk[r][i];
        match method {
            GroupMethod::Median => {
                if x > c.cut_median {
                    "high"
                } else {
                    "low"
                }
            }
            GroupMethod::Tertiles => {
                if x > c.cut_tertiles[1] {
                    "high"
                } else if x > c.cut_tertiles[0] {
                    "mid"
                } else {
                    "low"
                }
            }
        }
    }

    fn metric_err(&self, metric: impl Into<String>) -> impl FnOnce(SurvivalError) -> EvaluationError + '_ {
        let metric = metric.into();
        move |source| EvaluationError::Metric { arm: self.arm.clone(), metric, source: Box::new(source) }
    }
}

fn check_options(o: &EvalOptions) -> Result<()> {
    if o.horizons.is_empty()
        || o.horizons.iter().any(|h| !(h.is_finite() && *h > 0.0))
        || o.horizons.windows(2).any(|w| w[1] <= w[0])
    {
        return Err(EvaluationError::InvalidOption {
            name: "horizons".into(),
            expected: "at least one finite time > 0, strictly increasing".into(),
            found: format!("{:?}", o.horizons),
        });
    }
    if !(o.ci > 0.0 && o.ci < 1.0) {
        return Err(EvaluationError::InvalidOption {
            name: "ci".into(),
            expected: "a level strictly between 0 and 1".into(),
            found: o.ci.to_string(),
        });
    }
    Ok(())
}

fn boot_opts(o: &EvalOptions) -> BootstrapOptions {
    BootstrapOptions { n_boot: o.bootstrap, seed: o.seed, confidence_level: o.ci }
}

/// [`bootstrap`] intervals, or with `n_boot = 0` the estimates alone (NaN limits): the caller
/// then sets split-aware intervals ([`super::split_intervals`]).
fn intervals<F>(n: usize, bo: &BootstrapOptions, f: F) -> std::result::Result<Vec<BootstrapCi>, SurvivalError>
where
    F: Fn(&[usize]) -> std::result::Result<Vec<f64>, SurvivalError> + Sync,
{
    if bo.n_boot > 0 {
        return bootstrap(n, bo, f);
    }
    let all: Vec<usize> = (0..n).collect();
    Ok(f(&all)?
        .into_iter()
        .map(|estimate| BootstrapCi {
            estimate,
            lower: f64::NAN,
            upper: f64::NAN,
            se: f64::NAN,
            n_boot: 0,
            n_failed: 0,
        })
        .collect())
}

fn gather<T: Copy>(v: &[T], idx: &[usize]) -> Vec<T> {
    idx.iter().map(|&i| v[i]).collect()
}

/// Most interior points of the integrated Brier score's grid.
pub const IBS_INTERIOR_MAX: usize = 98;

/// The grid of the integrated Brier score: the 5th percentile of the observed times, the
/// distinct observed times strictly between it and `to` — all of them when there are at most
/// [`IBS_INTERIOR_MAX`], else the [`IBS_INTERIOR_MAX`] at evenly spaced ranks
/// `round(j·(m−1)/(IBS_INTERIOR_MAX−1))`, `j = 0…` — and `to` (so at most 100 points).
pub fn ibs_grid(time: &[f64], to: f64) -> Vec<f64> {
    let mut sorted = time.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let from = quantile_sorted(&sorted, 0.05);
    let mut inner: Vec<f64> = sorted.iter().copied().filter(|&t| t > from && t < to).collect();
    inner.dedup();
    let m = inner.len();
    if m > IBS_INTERIOR_MAX {
        let last = (IBS_INTERIOR_MAX - 1) as f64;
        inner = (0..IBS_INTERIOR_MAX).map(|j| inner[(j as f64 * (m - 1) as f64 / last).round() as usize]).collect();
    }
    let mut grid = vec![from];
    grid.extend(inner);
    if to > from {
        grid.push(to);
    }
    grid
}

/// Round ticks from 0 to `max` for an at-risk table: the smallest step of the form 1, 2, 2.5
/// or 5 × 10^k that gives at most seven ticks (so four to seven).
pub fn at_risk_ticks(max: f64) -> Vec<f64> {
    if !(max.is_finite() && max > 0.0) {
        return vec![0.0];
    }
    let mag = 10f64.powf((max / 7.0).log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0, 20.0, 25.0, 50.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| (max / s).floor() + 1.0 <= 7.0)
        .unwrap_or(100.0 * mag);
    let count = (max / step).floor() as usize + 1;
    (0..count).map(|k| k as f64 * step).collect()
}

/// Mean over repeats of `f(r)`, failing if any repeat fails.
fn mean_over<F>(repeats: usize, f: F) -> std::result::Result<f64, SurvivalError>
where
    F: Fn(usize) -> std::result::Result<f64, SurvivalError>,
{
    let mut s = 0.0;
    for r in 0..repeats {
        s += f(r)?;
    }
    Ok(s / repeats as f64)
}

fn one(v: Vec<BootstrapCi>) -> BootstrapCi {
    v.into_iter().next().unwrap_or(BootstrapCi {
        estimate: f64::NAN,
        lower: f64::NAN,
        upper: f64::NAN,
        se: f64::NAN,
        n_boot: 0,
        n_failed: 0,
    })
}

/// Computes every metric of one arm.
pub fn evaluate_arm(input: &ArmInput, options: &EvalOptions) -> Result<ArmEvaluation> {
    check_options(options)?;
    let p = Prepared::new(input)?;
    evaluate_prepared(&p, options)
}

/// [`evaluate_arm`] on already arranged rows.
pub fn evaluate_prepared(p: &Prepared, options: &EvalOptions) -> Result<ArmEvaluation> {
    check_options(options)?;
    let n = p.patients.len();
    let reps = p.repeats();
    let h = &options.horizons;
    let tau = h[h.len() - 1];
    let bo = boot_opts(options);
    let (time, event) = (&p.time, &p.event);

    // Concordance.
    let harrell_c = one(intervals(n, &bo, |idx| {
        let (t, e) = (gather(time, idx), gather(event, idx));
        mean_over(reps, |r| harrell(&t, &e, &gather(&p.risk[r], idx)).map(|c| c.harrell)).map(|v| vec![v])
    })
    .map_err(p.metric_err("Harrell's C"))?);
    let uno_c = one(intervals(n, &bo, |idx| {
        let (t, e) = (gather(time, idx), gather(event, idx));
        mean_over(reps, |r| {
            harrell_and_uno(&t, &e, &gather(&p.risk[r], idx), Some(tau)).map(|c| c.uno.unwrap_or(f64::NAN))
        })
        .map(|v| vec![v])
    })
    .map_err(p.metric_err(format!("Uno's C (tau = {tau})")))?);

    // AUC: the full-sample curves of every repeat, then a bootstrap per horizon.
    let mut full = Vec::with_capacity(reps);
    for r in 0..reps {
        full.push(cumulative_dynamic_auc(time, event, &p.risk[r], h).map_err(p.metric_err("time-dependent AUC"))?);
    }
    let mean_auc = full.iter().map(|a| a.mean_auc).sum::<f64>() / reps as f64;
    let mut auc = Vec::with_capacity(h.len());
    for (k, &hk) in h.iter().enumerate() {
        let interval = one(intervals(n, &bo, |idx| {
            let (t, e) = (gather(time, idx), gather(event, idx));
            mean_over(reps, |r| cumulative_dynamic_auc(&t, &e, &gather(&p.risk[r], idx), &[hk]).map(|a| a.auc[0]))
                .map(|v| vec![v])
        })
        .map_err(p.metric_err(format!("AUC at {hk}")))?);
        let c0 = &full[0].curves[k];
        auc.push(AucResult {
            horizon: hk,
            interval,
            n_cases: c0.n_cases,
            n_controls: c0.n_controls,
            roc: c0.roc.clone(),
        });
    }

    // Brier: predicted survival per repeat, per time, per patient.
    let surv_at = |ts: &[f64]| -> Vec<Vec<Vec<f64>>> {
        (0..reps).map(|r| ts.iter().map(|&t| (0..n).map(|i| p.survival(r, i, t)).collect()).collect()).collect()
    };
    let surv_h = surv_at(h);
    let mut brier = Vec::with_capacity(h.len());
    for (k, &hk) in h.iter().enumerate() {
        let interval = one(intervals(n, &bo, |idx| {
            let (t, e) = (gather(time, idx), gather(event, idx));
            mean_over(reps, |r| brier_score(&t, &e, &[gather(&surv_h[r][k], idx)], &[hk]).map(|b| b.brier[0]))
                .map(|v| vec![v])
        })
        .map_err(p.metric_err(format!("Brier score at {hk}")))?);
        brier.push((hk, interval));
    }
    let grid = ibs_grid(time, tau);
    if grid.len() < 2 {
        return Err(EvaluationError::InvalidOption {
            name: "horizons".into(),
            expected: format!(
                "a last horizon after the 5th percentile of follow-up ({}) for the integrated Brier score",
                grid[0]
            ),
            found: tau.to_string(),
        });
    }
    let surv_g = surv_at(&grid);
    let ibs = one(intervals(n, &bo, |idx| {
        let (t, e) = (gather(time, idx), gather(event, idx));
        mean_over(reps, |r| {
            let s: Vec<Vec<f64>> = surv_g[r].iter().map(|col| gather(col, idx)).collect();
            brier_score(&t, &e, &s, &grid).map(|b| b.integrated.unwrap_or(f64::NAN))
        })
        .map(|v| vec![v])
    })
    .map_err(p.metric_err("integrated Brier score"))?);

    let risk_groups = risk_groups(p, options)?;
    let in_repeat = |f: &dyn Fn(usize) -> std::result::Result<f64, SurvivalError>| -> Vec<f64> {
        (0..reps).map(|r| f(r).unwrap_or(f64::NAN)).collect()
    };
    let per_repeat = PerRepeat {
        harrell: in_repeat(&|r| harrell(time, event, &p.risk[r]).map(|c| c.harrell)),
        uno: in_repeat(&|r| harrell_and_uno(time, event, &p.risk[r], Some(tau)).map(|c| c.uno.unwrap_or(f64::NAN))),
        auc: (0..h.len()).map(|k| full.iter().map(|a| a.auc[k]).collect()).collect(),
        brier: h
            .iter()
            .enumerate()
            .map(|(k, &hk)| {
                in_repeat(&|r| brier_score(time, event, &[surv_h[r][k].clone()], &[hk]).map(|b| b.brier[0]))
            })
            .collect(),
        ibs: in_repeat(&|r| brier_score(time, event, &surv_g[r], &grid).map(|b| b.integrated.unwrap_or(f64::NAN))),
    };
    Ok(ArmEvaluation {
        arm: p.arm.clone(),
        n,
        events: event.iter().filter(|&&e| e).count(),
        repeats: reps,
        harrell_c,
        uno_c,
        tau,
        auc,
        mean_auc,
        brier,
        ibs,
        ibs_grid: grid,
        risk_groups,
        per_repeat,
    })
}

fn km_rows(km: &KaplanMeier) -> Vec<KmRow> {
    let curve = km.curve();
    let mut rows = Vec::with_capacity(curve.len());
    rows.push(KmRow { time: 0.0, survival: 1.0, lower: 1.0, upper: 1.0, at_risk: km.n, events: 0, censored: 0 });
    for (pt, s) in curve.iter().skip(1).zip(&km.steps) {
        rows.push(KmRow {
            time: pt.time,
            survival: pt.survival,
            lower: pt.lower,
            upper: pt.upper,
            at_risk: s.at_risk,
            events: s.events,
            censored: s.censored,
        });
    }
    rows
}

fn risk_groups(p: &Prepared, options: &EvalOptions) -> Result<RiskGroups> {
    let method = options.groups;
    let n = p.patients.len();
    let assignment: Vec<&'static str> = (0..n).map(|i| p.group(0, i, method)).collect();
    let max_t = p.time.iter().cloned().fold(0.0, f64::max);
    let ticks = at_risk_ticks(max_t);
    let mut notes = Vec::new();
    let mut groups = Vec::new();
    for &label in method.labels() {
        let sel: Vec<usize> = (0..n).filter(|&i| assignment[i] == label).collect();
        let (t, e) = (gather(&p.time, &sel), gather(&p.event, &sel));
        let (km, at_risk) = if sel.is_empty() {
            notes.push(format!("risk group `{label}` is empty"));
            (Vec::new(), vec![0; ticks.len()])
        } else {
            let km = KaplanMeier::fit_with_level(&t, &e, options.ci)
                .map_err(p.metric_err(format!("Kaplan–Meier of group {label}")))?;
            let ar = ticks.iter().map(|&x| km.at_risk_at(x)).collect();
            (km_rows(&km), ar)
        };
        groups.push(GroupResult {
            label: label.into(),
            n: sel.len(),
            events: e.iter().filter(|&&x| x).count(),
            at_risk,
            km,
        });
    }
    let non_empty = groups.iter().filter(|g| g.n > 0).count();
    let logrank = if non_empty >= 2 {
        let lr = logrank(&p.time, &p.event, &assignment).map_err(p.metric_err("log-rank test"))?;
        Some(LogRankResult { chi2: lr.statistic, df: lr.df, p: lr.p_value })
    } else {
        notes.push("log-rank test needs at least two non-empty risk groups".into());
        None
    };
    let sel: Vec<usize> = (0..n).filter(|&i| assignment[i] != "mid").collect();
    let x: Vec<f64> = sel.iter().map(|&i| if assignment[i] == "high" { 1.0 } else { 0.0 }).collect();
    let hazard_ratio = if x.contains(&1.0) && x.contains(&0.0) {
        let opts = CoxOptions { confidence_level: options.ci, ..CoxOptions::default() };
        match fit_cox(&gather(&p.time, &sel), &gather(&p.event, &sel), &x, &["high".to_string()], &opts) {
            Ok(fit) if fit.warnings.iter().any(|w| w.code == WarningCode::Separation) => {
                // no finite maximum (e.g. no event in one group): the estimate is where
                // Newton-Raphson stopped, not a hazard ratio
                notes.extend(fit.warnings.iter().map(|w| format!("hazard ratio not estimable: {w}")));
                None
            }
            Ok(fit) => {
                notes.extend(fit.warnings.iter().map(|w| format!("hazard ratio: {w}")));
                fit.coefficients.first().map(|c| HazardRatio {
                    estimate: c.hr,
                    lower: c.hr_lower,
                    upper: c.hr_upper,
                    p: c.p_value,
                })
            }
            Err(e) => {
                notes.push(format!("hazard ratio high vs low could not be fitted: {e}"));
                None
            }
        }
    } else {
        notes.push("hazard ratio needs patients in both the low and the high group".into());
        None
    };
    Ok(RiskGroups { method, assignment, groups, at_risk_times: ticks, logrank, hazard_ratio, notes })
}

/// Paired bootstrap of `C(arm) − C(reference)` (Harrell's C, same resamples of patients).
///
/// The arm's predictions are aligned to the reference's patient order; with one repeat this is
/// exactly [`paired_concordance_difference`] on the reference's order.
pub fn compare(arm: &Prepared, reference: &Prepared, options: &EvalOptions) -> Result<Comparison> {
    check_options(options)?;
    let bad = |msg: String| EvaluationError::Inconsistent { arm: arm.arm.clone(), msg };
    if arm.repeats() != reference.repeats() {
        return Err(bad(format!(
            "has {} repeats, the reference arm `{}` has {}: expected the same CV repeats in every arm",
            arm.repeats(),
            reference.arm,
            reference.repeats()
        )));
    }
    if arm.patients.len() != reference.patients.len() {
        return Err(bad(format!(
            "predicts {} patients, the reference arm `{}` predicts {}: expected the same patients in every arm",
            arm.patients.len(),
            reference.arm,
            reference.patients.len()
        )));
    }
    let pos: BTreeMap<&str, usize> = arm.patients.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
    let mut order = Vec::with_capacity(reference.patients.len());
    for (j, pid) in reference.patients.iter().enumerate() {
        let Some(&i) = pos.get(pid.as_str()) else {
            return Err(bad(format!(
                "does not predict patient `{pid}` of the reference arm `{}`: expected the same patients in every arm",
                reference.arm
            )));
        };
        if arm.time[i] != reference.time[j] || arm.event[i] != reference.event[j] {
            return Err(bad(format!(
                "patient `{pid}` has a different outcome than in the reference arm `{}`",
                reference.arm
            )));
        }
        order.push(i);
    }
    let reps = arm.repeats();
    let a: Vec<Vec<f64>> = (0..reps).map(|r| gather(&arm.risk[r], &order)).collect();
    let (time, event) = (&reference.time, &reference.event);
    let bo = boot_opts(options);
    let err = |source| EvaluationError::Metric {
        arm: arm.arm.clone(),
        metric: format!("paired ΔC against `{}`", reference.arm),
        source: Box::new(source),
    };
    if reps == 1 && bo.n_boot > 0 {
        let d = paired_concordance_difference(time, event, &a[0], &reference.risk[0], &bo).map_err(err)?;
        return Ok(Comparison {
            arm: arm.arm.clone(),
            reference: reference.arm.clone(),
            c_arm: d.c_a,
            c_reference: d.c_b,
            delta_c: d.difference,
            p: d.p_value,
        });
    }
    let stat = |idx: &[usize]| -> std::result::Result<Vec<f64>, SurvivalError> {
        let (t, e) = (gather(time, idx), gather(event, idx));
        let ca = mean_over(reps, |r| harrell(&t, &e, &gather(&a[r], idx)).map(|c| c.harrell))?;
        let cb = mean_over(reps, |r| harrell(&t, &e, &gather(&reference.risk[r], idx)).map(|c| c.harrell))?;
        Ok(vec![ca, cb, ca - cb])
    };
    let all: Vec<usize> = (0..time.len()).collect();
    let est = stat(&all).map_err(err)?;
    let ci = intervals(time.len(), &bo, |idx| stat(idx).map(|v| vec![v[2]])).map_err(err)?;
    let reps_d: Vec<f64> = if bo.n_boot == 0 {
        Vec::new()
    } else {
        replicates(time.len(), &bo, |idx| stat(idx).map(|v| vec![v[2]]))
            .map_err(err)?
            .into_iter()
            .flatten()
            .map(|v| v[0])
            .collect()
    };
    let p_value = two_sided_p(&reps_d);
    Ok(Comparison {
        arm: arm.arm.clone(),
        reference: reference.arm.clone(),
        c_arm: est[0],
        c_reference: est[1],
        delta_c: one(ci),
        p: p_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::survival::bootstrap_harrell;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A seeded Cox cohort cut in `k` folds: risk `x·beta` (+ noise), one baseline per fold with
    /// hazard 1e-3·t (so `H₀` listed at each training event time), training quantiles as cuts.
    fn arm(name: &str, n: usize, repeats: usize, signal: f64, seed: u64) -> ArmInput {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut oof = Vec::new();
        let mut baselines = BTreeMap::new();
        let mut cuts = Vec::new();
        let mut out_rng = ChaCha8Rng::seed_from_u64(99);
        let cohort: Vec<(f64, f64, bool)> = (0..n)
            .map(|_| {
                let x: f64 = out_rng.gen_range(-2.0..2.0);
                let t = -(out_rng.gen::<f64>().ln()) / (1e-3 * (1.0 * x).exp());
                let c = -(out_rng.gen::<f64>().ln()) / 5e-4;
                (x, t.min(c).round().max(1.0), t <= c)
            })
            .collect();
        let k = 4;
        for r in 0..repeats {
            for f in 0..k {
                let mut ev: Vec<f64> =
                    (0..n).filter(|i| (i + r) % k != f && cohort[*i].2).map(|i| cohort[i].1).collect();
                ev.sort_by(|a, b| a.total_cmp(b));
                ev.dedup();
                let h: Vec<f64> = ev.iter().map(|t| 1e-3 * t).collect();
                baselines.insert((r, f), Baseline::new(ev, h).unwrap());
                cuts.push(FoldCuts { repeat: r, fold: f, cut_median: 0.0, cut_tertiles: [-0.6, 0.6] });
            }
            for (i, &(x, t, e)) in cohort.iter().enumerate() {
                let noise: f64 = rng.gen_range(-1.0..1.0);
                let risk = signal * x + (1.0 - signal) * noise * 2.0;
                oof.push(OofRow { repeat: r, patient: format!("P{i:03}"), fold: (i + r) % k, risk, time: t, event: e });
            }
        }
        ArmInput { name: name.into(), oof, baselines, cuts, curves: BTreeMap::new() }
    }

    fn opts() -> EvalOptions {
        EvalOptions { horizons: vec![500.0, 1000.0], bootstrap: 200, ci: 0.95, seed: 7, groups: GroupMethod::Median }
    }

    #[test]
    fn ticks_are_round_and_cover_follow_up() {
        assert_eq!(at_risk_ticks(3650.0), vec![0.0, 1000.0, 2000.0, 3000.0]);
        assert_eq!(at_risk_ticks(9108.0), vec![0.0, 2000.0, 4000.0, 6000.0, 8000.0]);
        assert_eq!(at_risk_ticks(100.0), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(at_risk_ticks(5300.0), vec![0.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0]);
        assert_eq!(at_risk_ticks(13.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
        assert_eq!(at_risk_ticks(0.0), vec![0.0]);
    }

    #[test]
    fn ibs_grid_starts_at_the_5th_percentile() {
        let time: Vec<f64> = (1..=21).map(|i| i as f64 * 10.0).collect();
        let g = ibs_grid(&time, 100.0);
        // 5th percentile of 10..210 by 10 (numpy linear): 10 + 0.05·20·10 = 20
        assert_eq!(g, vec![20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]);
        assert_eq!(ibs_grid(&time, 15.0), vec![20.0]);
        // more than 98 distinct times inside: 98 at evenly spaced ranks, ends kept
        let time: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        let g = ibs_grid(&time, 900.0);
        assert_eq!(g.len(), 100);
        assert_eq!((g[0], g[1], g[98], g[99]), (49.95, 50.0, 899.0, 900.0));
        assert!(g.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn metrics_equal_the_survival_estimators() {
        let a = arm("a", 160, 1, 1.0, 1);
        let o = opts();
        let e = evaluate_arm(&a, &o).unwrap();
        let p = Prepared::new(&a).unwrap();
        let bo = BootstrapOptions { n_boot: 200, seed: 7, confidence_level: 0.95 };
        let hb = bootstrap_harrell(&p.time, &p.event, &p.risk[0], &bo).unwrap();
        assert_eq!(
            (e.harrell_c.estimate, e.harrell_c.lower, e.harrell_c.upper, e.harrell_c.se),
            (hb.estimate, hb.lower, hb.upper, hb.se)
        );
        let c = harrell_and_uno(&p.time, &p.event, &p.risk[0], Some(1000.0)).unwrap();
        assert_eq!(e.uno_c.estimate, c.uno.unwrap());
        assert!(e.harrell_c.estimate > 0.65, "informative risk: C = {}", e.harrell_c.estimate);
        let auc = cumulative_dynamic_auc(&p.time, &p.event, &p.risk[0], &o.horizons).unwrap();
        for (k, r) in e.auc.iter().enumerate() {
            assert_eq!(r.interval.estimate, auc.auc[k]);
            assert_eq!(r.roc, auc.curves[k].roc);
            assert!(r.interval.lower <= r.interval.estimate && r.interval.estimate <= r.interval.upper);
        }
        assert_eq!(e.mean_auc, auc.mean_auc);
        // Brier from the fold baselines, recomputed here from the records
        let surv = |t: f64| -> Vec<f64> {
            a.oof
                .iter()
                .map(|r| {
                    let b = &a.baselines[&(0, r.fold)];
                    let h0 = b
                        .time()
                        .iter()
                        .zip(b.cumhaz())
                        .filter(|(s, _)| **s <= t)
                        .map(|(_, h)| *h)
                        .next_back()
                        .unwrap_or(0.0);
                    (-h0 * r.risk.exp()).exp()
                })
                .collect()
        };
        let b = brier_score(&p.time, &p.event, &[surv(500.0), surv(1000.0)], &o.horizons).unwrap();
        assert_eq!(e.brier[0].1.estimate, b.brier[0]);
        assert_eq!(e.brier[1].1.estimate, b.brier[1]);
        let grid = ibs_grid(&p.time, 1000.0);
        let s: Vec<Vec<f64>> = grid.iter().map(|&t| surv(t)).collect();
        assert_eq!(e.ibs.estimate, brier_score(&p.time, &p.event, &s, &grid).unwrap().integrated.unwrap());
        assert_eq!(e.ibs_grid, grid);
        // groups: risk > 0 is high (cut_median 0), KM and log-rank on those labels
        let labels: Vec<&str> = a.oof.iter().map(|r| if r.risk > 0.0 { "high" } else { "low" }).collect();
        assert_eq!(e.risk_groups.assignment, labels);
        let lr = logrank(&p.time, &p.event, &labels).unwrap();
        let got = e.risk_groups.logrank.as_ref().unwrap();
        assert_eq!((got.chi2, got.df, got.p), (lr.statistic, lr.df, lr.p_value));
        let hr = e.risk_groups.hazard_ratio.as_ref().unwrap();
        assert!(hr.estimate > 1.5 && hr.lower > 1.0, "{hr:?}");
        let high = &e.risk_groups.groups[1];
        assert_eq!(high.label, "high");
        assert_eq!(high.n, labels.iter().filter(|l| **l == "high").count());
        assert_eq!((high.km[0].time, high.km[0].survival, high.km[0].at_risk), (0.0, 1.0, high.n));
        assert_eq!(high.km.iter().map(|r| r.events).sum::<usize>(), high.events);
        assert_eq!(high.at_risk[0], high.n);
    }

    #[test]
    fn a_low_group_without_events_has_no_hazard_ratio_but_a_note() {
        // 40 patients, risk = i; events only among the 20 high-risk ones (risk > median cut 19.5)
        let oof: Vec<OofRow> = (0..40)
            .map(|i| OofRow {
                repeat: 0,
                patient: format!("p{i:02}"),
                fold: i % 2,
                risk: i as f64,
                time: 100.0 + 10.0 * ((i * 17) % 40) as f64,
                event: i >= 20 && i % 3 != 0,
            })
            .collect();
        let b = Baseline::new(vec![50.0, 600.0], vec![0.001, 0.002]).unwrap();
        let input = ArmInput {
            name: "a".into(),
            oof,
            baselines: [((0, 0), b.clone()), ((0, 1), b)].into_iter().collect(),
            cuts: (0..2)
                .map(|f| FoldCuts { repeat: 0, fold: f, cut_median: 19.5, cut_tertiles: [13.0, 26.0] })
                .collect(),
            curves: BTreeMap::new(),
        };
        let o = EvalOptions { horizons: vec![450.0], bootstrap: 0, ci: 0.95, seed: 1, groups: GroupMethod::Median };
        let rg = evaluate_arm(&input, &o).unwrap().risk_groups;
        assert_eq!(rg.hazard_ratio, None);
        assert!(
            rg.notes.iter().any(|n| n.contains("hazard ratio not estimable") && n.contains("separation")),
            "{:?}",
            rg.notes
        );
    }

    #[test]
    fn tertiles_use_both_cut_points_and_leave_mid_out_of_the_hazard_ratio() {
        let a = arm("a", 160, 1, 1.0, 1);
        let o = EvalOptions { groups: GroupMethod::Tertiles, ..opts() };
        let e = evaluate_arm(&a, &o).unwrap();
        let rg = &e.risk_groups;
        assert_eq!(rg.groups.iter().map(|g| g.label.as_str()).collect::<Vec<_>>(), ["low", "mid", "high"]);
        for (r, g) in a.oof.iter().zip(&rg.assignment) {
            let want = if r.risk > 0.6 {
                "high"
            } else if r.risk > -0.6 {
                "mid"
            } else {
                "low"
            };
            assert_eq!(*g, want);
        }
        assert_eq!(rg.logrank.as_ref().unwrap().df, 2);
        let sel: Vec<usize> = (0..a.oof.len()).filter(|&i| rg.assignment[i] != "mid").collect();
        let p = Prepared::new(&a).unwrap();
        let x: Vec<f64> = sel.iter().map(|&i| (rg.assignment[i] == "high") as u8 as f64).collect();
        let fit =
            fit_cox(&gather(&p.time, &sel), &gather(&p.event, &sel), &x, &["high".into()], &CoxOptions::default())
                .unwrap();
        assert_eq!(rg.hazard_ratio.as_ref().unwrap().estimate, fit.coefficients[0].hr);
    }

    #[test]
    fn paired_difference_matches_the_library_and_repeats_average() {
        let a = Prepared::new(&arm("a", 160, 1, 1.0, 1)).unwrap();
        let b = Prepared::new(&arm("b", 160, 1, 0.0, 2)).unwrap();
        let o = opts();
        let c = compare(&a, &b, &o).unwrap();
        let d = paired_concordance_difference(&b.time, &b.event, &a.risk[0], &b.risk[0], &boot_opts(&o)).unwrap();
        assert_eq!(
            (c.delta_c.estimate, c.delta_c.lower, c.delta_c.upper, c.p),
            (d.difference.estimate, d.difference.lower, d.difference.upper, d.p_value)
        );
        assert!(c.delta_c.lower > 0.0, "informative vs noise: {:?}", c.delta_c);
        // two identical repeats give the single-repeat numbers through the averaging path
        let dup = |x: &ArmInput| {
            let mut y = x.clone();
            y.oof.extend(x.oof.iter().map(|r| OofRow { repeat: 1, ..r.clone() }));
            y.baselines.extend(x.baselines.iter().map(|(&(_, f), b)| ((1, f), b.clone())));
            y.cuts.extend(x.cuts.iter().map(|r| FoldCuts { repeat: 1, ..*r }));
            y
        };
        let (a1, b1) = (arm("a", 160, 1, 1.0, 1), arm("b", 160, 1, 0.0, 2));
        let (a2, b2) = (Prepared::new(&dup(&a1)).unwrap(), Prepared::new(&dup(&b1)).unwrap());
        assert_eq!(a2.repeats(), 2);
        let c2 = compare(&a2, &b2, &o).unwrap();
        assert_eq!(
            (c2.delta_c.estimate, c2.delta_c.lower, c2.delta_c.upper, c2.p),
            (c.delta_c.estimate, c.delta_c.lower, c.delta_c.upper, c.p)
        );
        let (e1, e2) = (evaluate_arm(&a1, &o).unwrap(), evaluate_arm(&dup(&a1), &o).unwrap());
        assert_eq!(e1.harrell_c, e2.harrell_c);
        assert_eq!(e1.uno_c, e2.uno_c);
        assert_eq!(e1.brier, e2.brier);
        assert_eq!(e1.ibs, e2.ibs);
        assert_eq!(e2.repeats, 2);
        // genuinely different repeats: the estimate is the mean of the per-repeat C
        let a3 = arm("a", 160, 2, 0.5, 3);
        let p3 = Prepared::new(&a3).unwrap();
        let e3 = evaluate_arm(&a3, &o).unwrap();
        let c0 = harrell(&p3.time, &p3.event, &p3.risk[0]).unwrap().harrell;
        let c1 = harrell(&p3.time, &p3.event, &p3.risk[1]).unwrap().harrell;
        assert_ne!(c0, c1);
        assert_eq!(e3.harrell_c.estimate, (c0 + c1) / 2.0);
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let a = arm("a", 120, 1, 0.7, 4);
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| evaluate_arm(&a, &opts()).unwrap())
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn inconsistent_rows_are_named() {
        let mut a = arm("a", 40, 1, 1.0, 1);
        a.oof[3].patient = a.oof[2].patient.clone();
        let e = Prepared::new(&a).unwrap_err().to_string();
        assert!(e.contains("arm `a`") && e.contains("`P002` appears twice in repeat 0"), "{e}");

        let mut a = arm("a", 40, 2, 1.0, 1);
        a.oof.retain(|r| !(r.repeat == 1 && r.patient == "P005"));
        let e = Prepared::new(&a).unwrap_err().to_string();
        assert!(e.contains("`P005` has no prediction in repeat 1"), "{e}");

        let mut a = arm("a", 40, 1, 1.0, 1);
        a.oof[0].repeat = 1_000_000_000;
        let e = Prepared::new(&a).unwrap_err().to_string();
        assert!(e.contains("found repeat 1000000000 among 40 rows"), "{e}");

        let mut a = arm("a", 40, 1, 1.0, 1);
        a.baselines.retain(|k, _| k.1 != 2);
        let e = Prepared::new(&a).unwrap_err().to_string();
        assert!(e.contains("repeat 0 fold 2, which has no baseline hazard"), "{e}");

        let mut a = arm("a", 40, 1, 1.0, 1);
        a.cuts.retain(|b| b.fold != 1);
        let e = Prepared::new(&a).unwrap_err().to_string();
        assert!(e.contains("fold 1, which has no risk-group cut-points"), "{e}");

        let a = arm("a", 40, 1, 1.0, 1);
        let mut b = arm("b", 40, 1, 1.0, 1);
        b.oof[0].time += 1.0;
        let e = compare(&Prepared::new(&b).unwrap(), &Prepared::new(&a).unwrap(), &opts()).unwrap_err().to_string();
        assert!(e.contains("patient `P000` has a different outcome than in the reference arm `a`"), "{e}");

        let e = evaluate_arm(&arm("a", 40, 1, 1.0, 1), &EvalOptions { horizons: vec![1e9], ..opts() })
            .unwrap_err()
            .to_string();
        assert!(e.contains("arm `a`, time-dependent AUC") && e.contains("1000000000"), "{e}");
        let e = evaluate_arm(&arm("a", 40, 1, 1.0, 1), &EvalOptions { horizons: vec![10.0, 5.0], ..opts() })
            .unwrap_err()
            .to_string();
        assert!(e.contains("strictly increasing"), "{e}");
    }
}
