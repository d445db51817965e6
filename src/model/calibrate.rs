//! Calibration of cross-validated survival predictions at a horizon, and its recalibration
//! from inner-fold predictions (the library behind the `calibrate` stage).
//!
//! Input: out-of-fold predictions (one row per patient per repeat: the linear predictor of the
//! fold model that tested the patient, the outcome) and each fold model's Breslow baseline. A
//! patient's predicted survival at the horizon `h` is `S_i(h) = exp(−H₀(h)·e^{risk_i})` with `H₀`
//! its own fold's baseline; the predicted probability of distant metastasis by `h` is
//! `p_i = 1 − S_i(h)`.
//!
//! The statistics are those of [`crate::survival::calibration()`] (the function `spatia
//! survival calibration` runs), called on the pooled out-of-fold `S_i(h)` of each repeat, so
//! the stage and the command line give the same numbers on the same predictions; the bins
//! are [`crate::survival::calibration::quantile_bins`] at the stage's confidence level and the
//! recalibration intercept is [`crate::survival::calibration::offset_log_cumhaz`]. The rows and
//! baselines are the `train` contract's ([`crate::contracts::oof`],
//! [`crate::contracts::baseline`]); the statistics are the `calibration.json` contract's
//! ([`crate::contracts::calibration`]).
//!
//! # Formula
//! - Bins: patients sorted by `p_i` (stable), cut into `bins` groups of (almost) equal size
//!   (`[b·n/B, (b+1)·n/B)`); per bin mean `p_i` against `1 − KM(h)` of the bin with the
//!   log(−log) CI at `level` (`lower = 1 − KM upper`, `upper = 1 − KM lower`).
//! - Slope, intercept, ICI, E50, E90: as [`crate::survival::calibration()`] — with
//!   `c_i = log(−log S_i(h))` (`S` clipped to `[1e−10, 1 − 1e−10]`), the slope is the Cox
//!   coefficient of `c`, the intercept `log Σ_{t_k ≤ h} d_k / Σ_{j∈R(t_k)} e^{c_j}`.
//! - Recalibration (per outer repeat and fold), on the complementary log-log scale:
//!   `log(−log S_new) = a + b·c`. `b` is the calibration slope of the fold's *inner*
//!   out-of-fold predictions (a Cox fit with `c` as the only covariate) and
//!   `a = log Σ_{t_k ≤ h} d_k / Σ_{j∈R(t_k)} e^{b·c_j}` (the Breslow cumulative hazard at `h`
//!   with `b·c` as offset). Applied to the inner predictions themselves, this gives calibration
//!   slope 1 and intercept 0 exactly (by the library's definitions); applied to the outer fold's
//!   test patients it is honest out-of-sample recalibration.
//! - A fold whose recalibration slope `b` is below 0 is reported in the recalibration's
//!   `warnings` (its inner predictions rank patients the wrong way round).
//! - Several repeats: statistics are computed per repeat and averaged; bins and the smoothed
//!   curve are those of repeat 0.
//!
//! # Assumptions
//! Proportional hazards in `c`; independent censoring; the inner predictions of an outer fold
//! come from the same modelling pipeline as its outer model (the `train` stage guarantees it).
//!
//! # Errors
//! A missing fold baseline, a baseline that is not ascending or has a negative / decreasing
//! cumulative hazard, a horizon past the longest follow-up, inner predictions that do not cover
//! exactly the outer fold's training patients, no event by the horizon in the inner
//! predictions, and the survival library's errors (no events, constant predictions) with the
//! repeat and fold they occurred in ([`CalibrateError`]).
//!
//! # References
//! Austin PC, Harrell FE, van Klaveren D (2020) Graphical calibration curves and the integrated
//! calibration index (ICI) for survival models. Stat Med 39:2714–2742, doi:10.1002/sim.8570.
//! Crowson CS, Atkinson EJ, Therneau TM (2016) Assessing calibration of prognostic risk scores.
//! Stat Methods Med Res 25:1692–1706. Van Houwelingen HC (2000) Validation, calibration,
//! revision and combination of prognostic survival models. Stat Med 19:3401–3415.
pub use crate::contracts::baseline::Baseline;
pub use crate::contracts::calibration::{Bin, CalibrationSummary, FoldRecalibration, RepeatStats};
use crate::contracts::oof::{InnerOofRow, OofRow};
use crate::survival::calibration::{offset_log_cumhaz, quantile_bins};
use crate::survival::{self, CoxOptions, SurvivalError};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, CalibrateError>;

/// Everything that can go wrong calibrating predictions.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    /// A parameter outside its domain.
    #[error("{name}: expected {expected}, found {found}")]
    InvalidParameter {
        /// Parameter name.
        name: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// No prediction rows.
    #[error("{what}: expected at least one prediction row, found none")]
    Empty {
        /// Which input.
        what: String,
    },
    /// Predictions of a fold whose model has no baseline.
    #[error("{what}: no baseline for {model}: expected one (a fold model's Breslow baseline) for every fold that has predictions")]
    MissingBaseline {
        /// Which input had the rows.
        what: String,
        /// Which fold model.
        model: String,
    },
    /// The horizon lies beyond every follow-up time.
    #[error("horizon {horizon}: expected at most the longest follow-up of the predictions, found longest follow-up {max_time}")]
    HorizonPastFollowUp {
        /// The horizon.
        horizon: f64,
        /// The longest follow-up time.
        max_time: f64,
    },
    /// Inner predictions that are not the outer fold's training patients.
    #[error("inner predictions of repeat {repeat} outer fold {fold}: expected exactly the {expected} training patients of that outer fold, {found}")]
    InnerMismatch {
        /// Repeat.
        repeat: usize,
        /// Outer fold.
        fold: usize,
        /// Number of training patients.
        expected: usize,
        /// What differs.
        found: String,
    },
    /// The recalibration intercept is undefined.
    #[error("inner predictions of repeat {repeat} outer fold {fold}: expected at least one event at or before the horizon {horizon} to fit the recalibration, found none")]
    NoEventByHorizon {
        /// Repeat.
        repeat: usize,
        /// Outer fold.
        fold: usize,
        /// The horizon.
        horizon: f64,
    },
    /// Repeats that do not hold the same patients.
    #[error("repeat {repeat}: expected the same patients as repeat {first_repeat}, found {found}")]
    RepeatMismatch {
        /// The differing repeat.
        repeat: usize,
        /// The first repeat.
        first_repeat: usize,
        /// What differs.
        found: String,
    },
    /// Every patient of a repeat has the same predicted risk at the horizon (no slope).
    #[error("predictions of repeat {repeat}: expected predicted risks at the horizon {horizon} that vary between patients, found {value} for all (a horizon before every fold model's first baseline event gives risk 0)")]
    ConstantPredictions {
        /// Repeat.
        repeat: usize,
        /// The horizon.
        horizon: f64,
        /// The common predicted probability of distant metastasis.
        value: f64,
    },
    /// A survival statistics error with where it happened.
    #[error("{context}: {source}")]
    Survival {
        /// Where (e.g. `repeat 0`, `recalibration of repeat 0 fold 2`).
        context: String,
        /// Underlying error.
        #[source]
        source: SurvivalError,
    },
}

fn surv_err(context: impl Into<String>) -> impl FnOnce(SurvivalError) -> CalibrateError {
    let context = context.into();
    move |source| CalibrateError::Survival { context, source }
}

/// Complementary log-log of a predicted survival, `log(−log S)`, with `S` clipped to
/// `[1e−10, 1 − 1e−10]` exactly as [`crate::survival::calibration()`] does.
pub fn cloglog(s: f64) -> f64 {
    (-s.clamp(1e-10, 1.0 - 1e-10).ln()).ln()
}

/// Options of [`calibrate`] and [`recalibrate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrateOptions {
    /// The horizon `h` (same unit as the follow-up times).
    pub horizon: f64,
    /// Number of risk-quantile bins.
    pub bins: usize,
    /// Confidence level of the bins' observed-probability intervals.
    pub level: f64,
}

impl CalibrateOptions {
    fn check(&self) -> Result<()> {
        if !(self.horizon.is_finite() && self.horizon > 0.0) {
            return Err(CalibrateError::InvalidParameter {
                name: "horizon".into(),
                expected: "a finite time > 0".into(),
                found: self.horizon.to_string(),
            });
        }
        if self.bins == 0 {
            return Err(CalibrateError::InvalidParameter {
                name: "bins".into(),
                expected: ">= 1".into(),
                found: "0".into(),
            });
        }
        if !(self.level > 0.0 && self.level < 1.0) {
            return Err(CalibrateError::InvalidParameter {
                name: "ci".into(),
                expected: "a level in (0, 1)".into(),
                found: self.level.to_string(),
            });
        }
        Ok(())
    }
}

/// Patients, events and repeats of out-of-fold predictions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CohortSize {
    /// Patients (rows of repeat 0).
    pub n: usize,
    /// Events among them (over the whole follow-up).
    pub events: usize,
    /// Number of repeats.
    pub repeats: usize,
}

/// Groups prediction rows by repeat (row indices), checking the horizon against follow-up.
fn by_repeat(rows: &[OofRow], horizon: f64) -> Result<BTreeMap<usize, Vec<usize>>> {
    if rows.is_empty() {
        return Err(CalibrateError::Empty { what: "out-of-fold predictions".into() });
    }
    let max_time = rows.iter().map(|r| r.time).fold(f64::NEG_INFINITY, f64::max);
    if horizon > max_time {
        return Err(CalibrateError::HorizonPastFollowUp { horizon, max_time });
    }
    let mut m: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        m.entry(r.repeat).or_default().push(i);
    }
    Ok(m)
}

/// Size of the cohort described by out-of-fold predictions; every repeat must hold the same
/// patients.
pub fn cohort(rows: &[OofRow]) -> Result<CohortSize> {
    let m = by_repeat(rows, 0.0)?;
    let first = m.values().next().map(Vec::as_slice).unwrap_or(&[]);
    let patients = |idx: &[usize]| idx.iter().map(|&i| rows[i].patient.as_str()).collect::<BTreeSet<&str>>();
    let (first_repeat, reference) = (m.keys().next().copied().unwrap_or(0), patients(first));
    for (&rep, idx) in m.iter().skip(1) {
        let here = patients(idx);
        if here != reference {
            let odd = here
                .symmetric_difference(&reference)
                .next()
                .map(|p| format!("patient '{p}' in one of them only"))
                .unwrap_or_else(|| format!("{} rows for {} patients", idx.len(), here.len()));
            return Err(CalibrateError::RepeatMismatch { repeat: rep, first_repeat, found: odd });
        }
    }
    Ok(CohortSize { n: first.len(), events: first.iter().filter(|&&i| rows[i].event).count(), repeats: m.len() })
}

/// Out-of-fold predicted survival at the horizon, each row from its own fold's baseline.
pub fn predicted_survival(
    rows: &[OofRow],
    baselines: &BTreeMap<(usize, usize), Baseline>,
    horizon: f64,
) -> Result<Vec<f64>> {
    predicted_survival_or_curves(rows, baselines, &BTreeMap::new(), horizon)
}

/// [`predicted_survival`], taking a row's survival from its own predicted curve (`survival.csv`,
/// by (repeat, patient)) where its fold has no baseline (a discrete-time network).
pub fn predicted_survival_or_curves(
    rows: &[OofRow],
    baselines: &BTreeMap<(usize, usize), Baseline>,
    curves: &BTreeMap<(usize, String), crate::contracts::survival_curves::FoldCurve>,
    horizon: f64,
) -> Result<Vec<f64>> {
    rows.iter()
        .map(|r| {
            if let Some(b) = baselines.get(&(r.repeat, r.fold)) {
                return Ok(b.survival(r.risk, horizon));
            }
            let c = curves.get(&(r.repeat, r.patient.clone())).ok_or_else(|| CalibrateError::MissingBaseline {
                what: "out-of-fold predictions".into(),
                model: format!("repeat {} fold {}", r.repeat, r.fold),
            })?;
            Ok(crate::contracts::survival_curves::step_at(&c.1, horizon))
        })
        .collect()
}

/// Calibration summary of predicted survival `surv` (one per row of `rows`) by repeat.
pub fn summarize(rows: &[OofRow], surv: &[f64], opts: &CalibrateOptions) -> Result<CalibrationSummary> {
    opts.check()?;
    let groups = by_repeat(rows, opts.horizon)?;
    let mut per_repeat = Vec::with_capacity(groups.len());
    // repeat 0's bins, smoothed curve, notes and histogram of predictions
    type First = (Vec<Bin>, Vec<survival::CalibrationPoint>, Vec<String>, Vec<usize>);
    let mut first: Option<First> = None;
    for (&rep, idx) in &groups {
        let time: Vec<f64> = idx.iter().map(|&i| rows[i].time).collect();
        let event: Vec<bool> = idx.iter().map(|&i| rows[i].event).collect();
        let s: Vec<f64> = idx.iter().map(|&i| surv[i]).collect();
        if s.iter().all(|&v| cloglog(v) == cloglog(s[0])) {
            return Err(CalibrateError::ConstantPredictions { repeat: rep, horizon: opts.horizon, value: 1.0 - s[0] });
        }
        let ctx = format!("calibration of repeat {rep}");
        let c = survival::calibration(&time, &event, &s, opts.horizon, opts.bins).map_err(surv_err(ctx.clone()))?;
        per_repeat.push(RepeatStats {
            repeat: rep,
            slope: c.slope,
            slope_se: c.slope_se,
            intercept: c.intercept,
            ici: c.ici,
            e50: c.e50,
            e90: c.e90,
        });
        if first.is_none() {
            let pred: Vec<f64> = s.iter().map(|v| 1.0 - v).collect();
            let bins = quantile_bins(&time, &event, &pred, opts.horizon, opts.bins, opts.level)
                .map_err(surv_err(format!("bins of repeat {rep}")))?;
            let mut notes: Vec<String> = c.notes.iter().map(|n| format!("repeat {rep}: {n}")).collect();
            for b in bins.iter().filter(|b| b.at_risk == 0) {
                notes.push(format!("repeat {rep} bin {}: nobody at risk at the horizon; observed is the Kaplan–Meier estimate at the bin's last follow-up", b.bin));
            }
            first = Some((bins, c.curve, notes, histogram(&pred, HISTOGRAM_BINS)));
        } else {
            // Later repeats' notes still matter (e.g. a smoother fallback).
            if let Some(f) = first.as_mut() {
                f.2.extend(c.notes.iter().map(|n| format!("repeat {rep}: {n}")));
            }
        }
    }
    let (bins, curve, notes, histogram) =
        first.ok_or_else(|| CalibrateError::Empty { what: "out-of-fold predictions".into() })?;
    let mean = |f: fn(&RepeatStats) -> f64| per_repeat.iter().map(f).sum::<f64>() / per_repeat.len() as f64;
    Ok(CalibrationSummary {
        bins,
        slope: mean(|r| r.slope),
        slope_se: mean(|r| r.slope_se),
        intercept: mean(|r| r.intercept),
        ici: mean(|r| r.ici),
        e50: mean(|r| r.e50),
        e90: mean(|r| r.e90),
        curve,
        histogram,
        per_repeat,
        notes,
    })
}

/// Bins of the histogram of predicted risks recorded with the calibration (the figure's
/// distribution of predictions).
pub const HISTOGRAM_BINS: usize = 20;

/// Counts of `pred` (risks in [0, 1]) in `k` equal-width bins over [0, 1], the last bin closed;
/// values outside [0, 1] or not finite are not counted.
pub fn histogram(pred: &[f64], k: usize) -> Vec<usize> {
    let mut h = vec![0usize; k];
    for &p in pred.iter().filter(|p| p.is_finite() && (0.0..=1.0).contains(*p)) {
        h[((p * k as f64) as usize).min(k - 1)] += 1;
    }
    h
}

/// Calibration of out-of-fold predictions at the horizon: predicted survival from each row's
/// fold baseline, then [`summarize`].
pub fn calibrate(
    rows: &[OofRow],
    baselines: &BTreeMap<(usize, usize), Baseline>,
    opts: &CalibrateOptions,
) -> Result<CalibrationSummary> {
    opts.check()?;
    let surv = predicted_survival(rows, baselines, opts.horizon)?;
    summarize(rows, &surv, opts)
}

/// A recalibration `log(−log S_new) = a + b·log(−log S)` at a horizon.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Recalibration {
    /// Intercept `a`.
    pub a: f64,
    /// Slope `b`.
    pub b: f64,
    /// Standard error of `b` (Cox fit).
    pub b_se: f64,
}

impl Recalibration {
    /// The identity (`a = 0`, `b = 1`).
    pub const IDENTITY: Recalibration = Recalibration { a: 0.0, b: 1.0, b_se: 0.0 };

    /// Recalibrated survival `exp(−exp(a + b·log(−log S)))` (with the same clipping of `S`).
    pub fn apply(&self, s: f64) -> f64 {
        (-(self.a + self.b * cloglog(s)).exp()).exp()
    }
}

/// Fits a recalibration on predictions `surv` (`S_i(h)`) with outcomes `time`, `event`:
/// `b` = Cox coefficient of `c = log(−log S)`, `a` = [`offset_log_cumhaz`] with offset `b·c`.
/// `None` for the intercept when no event happens by the horizon.
pub fn fit_recalibration(
    time: &[f64],
    event: &[bool],
    surv: &[f64],
    horizon: f64,
) -> std::result::Result<Option<Recalibration>, SurvivalError> {
    survival::data::check_survival(time, event)?;
    let c: Vec<f64> = surv.iter().map(|&s| cloglog(s)).collect();
    let fit = survival::fit_cox(
        time,
        event,
        &c,
        &["cloglog(predicted risk)".to_string()],
        &CoxOptions { concordance: false, ..CoxOptions::default() },
    )?;
    let b = fit.coefficients[0].coef;
    let bc: Vec<f64> = c.iter().map(|v| b * v).collect();
    let a = offset_log_cumhaz(time, event, &bc, horizon);
    Ok(a.is_finite().then_some(Recalibration { a, b, b_se: fit.coefficients[0].se }))
}

/// Recalibrated out-of-fold predictions and their calibration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recalibrated {
    /// Calibration after recalibration.
    #[serde(flatten)]
    pub summary: CalibrationSummary,
    /// The fitted `(a, b)` of every outer (repeat, fold).
    pub folds: Vec<FoldRecalibration>,
    /// Recalibrated predicted survival at the horizon, one per out-of-fold row.
    #[serde(skip)]
    pub survival: Vec<f64>,
    /// A fold whose recalibration slope is below 0 ([`negative_slope_warnings`]).
    pub warnings: Vec<String>,
}

/// One warning per fold whose recalibration slope `b` is below 0: its inner predictions rank
/// patients the wrong way round, so the recalibration reverses the fold model's risk order
/// for its test patients (`b` is `se` from 0 in the message, to tell noise from a real reversal).
pub fn negative_slope_warnings(folds: &[FoldRecalibration]) -> Vec<String> {
    folds
        .iter()
        .filter(|f| f.b < 0.0)
        .map(|f| {
            format!(
                "negative_recalibration_slope: repeat {} fold {}: the recalibration slope b = {:.4} (SE {:.4}, from {} \
                 inner predictions with {} events) is below 0: the fold's inner predictions rank patients the wrong \
                 way round, and recalibrating reverses its risk order",
                f.repeat, f.fold, f.b, f.b_se, f.n_inner, f.events_inner
            )
        })
        .collect()
}

/// Recalibrates out-of-fold predictions: for each outer (repeat, fold), fits
/// [`fit_recalibration`] on that fold's inner out-of-fold predictions (its training patients,
/// each with its inner fold model's baseline) and applies it to the fold's test patients; then
/// [`summarize`]s the recalibrated predictions.
pub fn recalibrate(
    rows: &[OofRow],
    baselines: &BTreeMap<(usize, usize), Baseline>,
    inner: &[InnerOofRow],
    inner_baselines: &BTreeMap<(usize, usize, usize), Baseline>,
    opts: &CalibrateOptions,
) -> Result<Recalibrated> {
    opts.check()?;
    let surv = predicted_survival(rows, baselines, opts.horizon)?;
    let groups = by_repeat(rows, opts.horizon)?;
    let mut inner_by: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
    for (i, r) in inner.iter().enumerate() {
        inner_by.entry((r.repeat, r.outer_fold)).or_default().push(i);
    }
    let mut out_surv = surv.clone();
    let mut folds = Vec::new();
    for (&rep, idx) in &groups {
        let fold_ids: BTreeSet<usize> = idx.iter().map(|&i| rows[i].fold).collect();
        for &f in &fold_ids {
            let train: BTreeSet<&str> =
                idx.iter().filter(|&&i| rows[i].fold != f).map(|&i| rows[i].patient.as_str()).collect();
            let test: Vec<usize> = idx.iter().copied().filter(|&i| rows[i].fold == f).collect();
            let ins = inner_by.get(&(rep, f)).map(Vec::as_slice).unwrap_or(&[]);
            check_inner(rep, f, &train, ins, inner)?;
            let mut t = Vec::with_capacity(ins.len());
            let mut e = Vec::with_capacity(ins.len());
            let mut s = Vec::with_capacity(ins.len());
            for &i in ins {
                let r = &inner[i];
                let b = inner_baselines.get(&(r.repeat, r.outer_fold, r.inner_fold)).ok_or_else(|| {
                    CalibrateError::MissingBaseline {
                        what: "inner out-of-fold predictions".into(),
                        model: format!("repeat {} outer fold {} inner fold {}", r.repeat, r.outer_fold, r.inner_fold),
                    }
                })?;
                t.push(r.time);
                e.push(r.event);
                s.push(b.survival(r.risk, opts.horizon));
            }
            let rc = fit_recalibration(&t, &e, &s, opts.horizon)
                .map_err(surv_err(format!("recalibration of repeat {rep} fold {f} (inner predictions)")))?
                .ok_or(CalibrateError::NoEventByHorizon { repeat: rep, fold: f, horizon: opts.horizon })?;
            for &i in &test {
                out_surv[i] = rc.apply(surv[i]);
            }
            folds.push(FoldRecalibration {
                repeat: rep,
                fold: f,
                a: rc.a,
                b: rc.b,
                b_se: rc.b_se,
                n_inner: ins.len(),
                events_inner: e.iter().filter(|&&x| x).count(),
            });
        }
    }
    let summary = summarize(rows, &out_surv, opts)?;
    let warnings = negative_slope_warnings(&folds);
    Ok(Recalibrated { summary, folds, survival: out_surv, warnings })
}

/// Checks that the inner predictions of outer (repeat, fold) are exactly its training patients.
fn check_inner(rep: usize, f: usize, train: &BTreeSet<&str>, ins: &[usize], inner: &[InnerOofRow]) -> Result<()> {
    let mismatch = |found: String| CalibrateError::InnerMismatch { repeat: rep, fold: f, expected: train.len(), found };
    if ins.is_empty() {
        return Err(mismatch("found no inner predictions".into()));
    }
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for &i in ins {
        let p = inner[i].patient.as_str();
        if !train.contains(p) {
            return Err(mismatch(format!(
                "found patient '{p}', which is not among them (a test patient of the fold or unknown)"
            )));
        }
        if !seen.insert(p) {
            return Err(mismatch(format!("found patient '{p}' twice")));
        }
    }
    if let Some(p) = train.iter().find(|p| !seen.contains(*p)) {
        return Err(mismatch(format!("found {} (patient '{p}' missing)", seen.len())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Exponential survival data with hazard `0.001·e^{x}`, censoring uniform on [0, 3000].
    fn data(n: usize, seed: u64) -> (Vec<f64>, Vec<bool>, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut t, mut e, mut x) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let xi: f64 = rng.gen_range(-1.5..1.5);
            let u: f64 = rng.gen_range(1e-12..1.0);
            let ti = -u.ln() / (0.001 * xi.exp());
            let ci: f64 = rng.gen_range(0.0..3000.0);
            t.push(ti.min(ci).round().max(1.0));
            e.push(ti <= ci);
            x.push(xi);
        }
        (t, e, x)
    }

    #[test]
    fn bins_widen_with_the_level_and_no_event_by_the_horizon_has_no_intercept() {
        let (t, e, x) = data(157, 3);
        let s: Vec<f64> = x.iter().map(|xi| (-(1.5 * xi).exp() * 0.8).exp()).collect();
        let pred: Vec<f64> = s.iter().map(|v| 1.0 - v).collect();
        let mine = quantile_bins(&t, &e, &pred, 1000.0, 6, 0.95).unwrap();
        let wide = quantile_bins(&t, &e, &pred, 1000.0, 6, 0.99).unwrap();
        for (w, m) in wide.iter().zip(&mine) {
            assert_eq!(w.observed, m.observed);
            assert!(w.lower <= m.lower && w.upper >= m.upper);
            assert!(w.upper - w.lower > m.upper - m.lower);
        }
        let c: Vec<f64> = s.iter().map(|&v| cloglog(v)).collect();
        assert_eq!(offset_log_cumhaz(&t, &e, &c, 0.0), f64::NEG_INFINITY);
    }

    #[test]
    fn a_negative_recalibration_slope_is_a_warning_naming_the_fold() {
        let fold = |fold, b| FoldRecalibration { repeat: 1, fold, a: 0.0, b, b_se: 0.5, n_inner: 40, events_inner: 9 };
        let w = negative_slope_warnings(&[fold(0, 0.8), fold(1, -0.25), fold(2, 0.0)]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("negative_recalibration_slope: repeat 1 fold 1: the recalibration slope b = -0.2500"));
    }

    #[test]
    fn recalibration_in_sample_gives_slope_one_intercept_zero() {
        let (t, e, x) = data(200, 11);
        // Mis-calibrated: twice the true hazard, and too steep a risk score.
        let s: Vec<f64> = x.iter().map(|xi| (-2.0 * 0.001 * 1500.0 * (1.6 * xi).exp()).exp()).collect();
        let before = survival::calibration(&t, &e, &s, 1500.0, 5).unwrap();
        let rc = fit_recalibration(&t, &e, &s, 1500.0).unwrap().unwrap();
        assert!((rc.b - before.slope).abs() < 1e-12);
        let s2: Vec<f64> = s.iter().map(|&v| rc.apply(v)).collect();
        let after = survival::calibration(&t, &e, &s2, 1500.0, 5).unwrap();
        assert!((after.slope - 1.0).abs() < 1e-6, "slope {}", after.slope);
        assert!(after.intercept.abs() < 1e-9, "intercept {}", after.intercept);
        assert!(after.ici < before.ici);
        // Slope ≈ 1/1.6, intercept ≈ log ½ (hazard doubled), up to noise.
        assert!((before.slope - 1.0 / 1.6).abs() < 0.2, "{}", before.slope);
        assert!((before.intercept - 0.5f64.ln()).abs() < 0.35, "{}", before.intercept);
        assert_eq!(Recalibration::IDENTITY.apply(0.7), (-cloglog(0.7).exp()).exp());
    }

    fn rows_from(t: &[f64], e: &[bool], x: &[f64], k: usize) -> Vec<OofRow> {
        (0..t.len())
            .map(|i| OofRow { repeat: 0, fold: i % k, patient: format!("P{i}"), risk: x[i], time: t[i], event: e[i] })
            .collect()
    }

    #[test]
    fn calibrate_uses_each_fold_baseline_and_matches_the_library() {
        let (t, e, x) = data(150, 17);
        let rows = rows_from(&t, &e, &x, 3);
        let mut bl = BTreeMap::new();
        for f in 0..3 {
            bl.insert(
                (0, f),
                Baseline::new(vec![100.0, 500.0, 2000.0], vec![0.1 * (f + 1) as f64, 0.5 * (f + 1) as f64, 2.0])
                    .unwrap(),
            );
        }
        let opts = CalibrateOptions { horizon: 1000.0, bins: 5, level: 0.95 };
        let s = calibrate(&rows, &bl, &opts).unwrap();
        let surv: Vec<f64> = rows.iter().map(|r| (-0.5 * (r.fold + 1) as f64 * r.risk.exp()).exp()).collect();
        let lib = survival::calibration(&t, &e, &surv, 1000.0, 5).unwrap();
        assert_eq!(s.slope, lib.slope);
        assert_eq!(s.intercept, lib.intercept);
        assert_eq!(s.ici, lib.ici);
        assert_eq!((s.e50, s.e90), (lib.e50, lib.e90));
        assert_eq!(
            s.bins.iter().map(|b| b.observed).collect::<Vec<_>>(),
            lib.bins.iter().map(|b| b.observed).collect::<Vec<_>>()
        );
        assert_eq!(s.per_repeat.len(), 1);
        // A fold without a baseline is named.
        bl.remove(&(0, 2));
        let err = calibrate(&rows, &bl, &opts).unwrap_err().to_string();
        assert!(err.contains("no baseline for repeat 0 fold 2"), "{err}");
    }

    #[test]
    fn repeats_must_hold_the_same_patients() {
        let (t, e, x) = data(20, 8);
        let mut rows = rows_from(&t, &e, &x, 2);
        let mut second = rows.clone();
        for r in &mut second {
            r.repeat = 1;
        }
        rows.extend(second);
        let c = cohort(&rows).unwrap();
        assert_eq!((c.n, c.repeats), (20, 2));
        rows.last_mut().unwrap().patient = "Q".into();
        let err = cohort(&rows).unwrap_err().to_string();
        assert!(err.contains("repeat 1") && err.contains("patient 'P19' in one of them only"), "{err}");
    }

    #[test]
    fn horizon_past_follow_up_and_bad_options_are_errors() {
        let (t, e, x) = data(40, 2);
        let rows = rows_from(&t, &e, &x, 2);
        let mut bl = BTreeMap::new();
        for f in 0..2 {
            bl.insert((0, f), Baseline::new(vec![100.0], vec![0.2]).unwrap());
        }
        let max = t.iter().cloned().fold(0.0, f64::max);
        let err = calibrate(&rows, &bl, &CalibrateOptions { horizon: max + 1.0, bins: 3, level: 0.95 })
            .unwrap_err()
            .to_string();
        assert!(err.contains("longest follow-up"), "{err}");
        assert!(calibrate(&rows, &bl, &CalibrateOptions { horizon: 100.0, bins: 0, level: 0.95 }).is_err());
        assert!(calibrate(&rows, &bl, &CalibrateOptions { horizon: 100.0, bins: 3, level: 1.0 }).is_err());
        let err =
            calibrate(&rows, &bl, &CalibrateOptions { horizon: 50.0, bins: 3, level: 0.95 }).unwrap_err().to_string();
        assert!(err.contains("repeat 0") && err.contains("found 0 for all"), "{err}");
        assert!(calibrate(&rows, &bl, &CalibrateOptions { horizon: -1.0, bins: 3, level: 0.9 }).is_err());
    }

    #[test]
    fn inner_predictions_must_be_the_training_patients() {
        let (t, e, x) = data(60, 4);
        let rows = rows_from(&t, &e, &x, 2);
        let mut bl = BTreeMap::new();
        let mut ibl = BTreeMap::new();
        for f in 0..2 {
            bl.insert((0, f), Baseline::new(vec![100.0, 1000.0], vec![0.05, 0.6]).unwrap());
            for g in 0..2 {
                ibl.insert((0, f, g), Baseline::new(vec![100.0, 1000.0], vec![0.05, 0.6]).unwrap());
            }
        }
        let mut inner: Vec<InnerOofRow> = Vec::new();
        for f in 0..2 {
            for (j, r) in rows.iter().filter(|r| r.fold != f).enumerate() {
                inner.push(InnerOofRow {
                    repeat: 0,
                    outer_fold: f,
                    inner_fold: j % 2,
                    patient: r.patient.clone(),
                    risk: r.risk,
                    time: r.time,
                    event: r.event,
                });
            }
        }
        let opts = CalibrateOptions { horizon: 900.0, bins: 3, level: 0.95 };
        let ok = recalibrate(&rows, &bl, &inner, &ibl, &opts).unwrap();
        assert_eq!(ok.folds.len(), 2);
        assert_eq!(ok.folds[0].n_inner, 30);
        // A test patient leaking into the inner predictions.
        let mut bad = inner.clone();
        bad[0].patient = "P0".into(); // P0 is in outer fold 0's test set
        let err = recalibrate(&rows, &bl, &bad, &ibl, &opts).unwrap_err().to_string();
        assert!(err.contains("repeat 0 outer fold 0") && err.contains("'P0'"), "{err}");
        let mut short = inner.clone();
        short.remove(3);
        let err = recalibrate(&rows, &bl, &short, &ibl, &opts).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
        let mut nob = ibl.clone();
        nob.remove(&(0, 1, 1));
        let err = recalibrate(&rows, &bl, &inner, &nob, &opts).unwrap_err().to_string();
        assert!(err.contains("repeat 0 outer fold 1 inner fold 1"), "{err}");
    }
}
