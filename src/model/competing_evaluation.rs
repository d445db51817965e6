//! Evaluation of an arm's out-of-fold predictions in a competing-risks cohort: the `evaluate`
//! stage's engine for `competing_metrics.json` ([`crate::contracts::competing_metrics`]).
//!
//! The marker of every metric is the predicted cumulative incidence of cause 1 (the event of
//! interest) at the horizon, `F̂₁(t | x)`, from `train`'s `competing.json`
//! ([`super::competing::predicted_cif`]). Per horizon `t`:
//! - **AUC** in the competing-risks sense (Blanche et al. 2013, definition 2): cases are the
//!   cause-1 events by `t`; controls are everyone event-free at `t` **and** those with a
//!   competing event by `t`; IPCW weights from the Kaplan–Meier of the censoring
//!   ([`crate::survival::competing_auc`]; riskRegression `Score(…, cause = 1)`);
//! - **Brier score** of `F̂₁(t | x)` against `1(T ≤ t, cause 1)`, competing events by `t` being
//!   observed zeros, IPCW (Gerds & Schumacher 2006; [`crate::survival::competing_brier`]).
//!
//! With several CV repeats each estimate (and each bootstrap replicate) is the mean over repeats
//! of the metric within a repeat. Intervals: the percentile bootstrap of patients
//! ([`crate::survival::bootstrap`], seeded as `metrics.json`'s). Risk groups are those of
//! `metrics.json` (repeat 0: the fold's training median or tertiles of the cause-1 risk); per
//! group the Aalen–Johansen cumulative incidence of every cause (cmprsk's `cuminc` variance,
//! log(−log) band) and Gray's test of cause 1 across groups.
//!
//! # Errors
//! `competing.json` and `oof.csv` that do not list the same patients in the same order with the
//! same outcomes, a fold without cut-points, a metric that cannot be computed on all patients
//! (e.g. no cause-1 event by a horizon), naming the arm.
//!
//! # References
//! Blanche P, Dartigues JF, Jacqmin-Gadda H (2013) Stat Med 32:5381–5397. Gerds TA, Schumacher
//! M (2006) Biom J 48:1029–1040. Putter H, Fiocco M, Geskus RB (2007) Stat Med 26:2389–2430.
use super::competing::predicted_cif;
use super::error::{ModelError, Result};
use crate::contracts::competing::CompetingJson;
use crate::contracts::competing_metrics::{CifCurve, CifGroup, CompetingArm, CompetingHorizon, GrayResult};
use crate::contracts::metrics::GroupMethod;
use crate::contracts::oof::OofRow;
use crate::survival::{
    bootstrap, competing_auc, competing_brier, gray_test, BootstrapOptions, CompetingRisksData, CumulativeIncidence,
};
use std::collections::BTreeMap;

/// Options of [`evaluate_competing`].
#[derive(Debug, Clone, PartialEq)]
pub struct CompetingEvalOptions {
    pub horizons: Vec<f64>,
    pub bootstrap: usize,
    pub ci: f64,
    pub seed: u64,
    pub groups: GroupMethod,
}

/// The risk group of a risk given its fold's cut-points (as `metrics.json`'s groups).
pub fn risk_group(method: GroupMethod, risk: f64, median: f64, tertiles: [f64; 2]) -> &'static str {
    match method {
        GroupMethod::Median if risk > median => "high",
        GroupMethod::Median => "low",
        GroupMethod::Tertiles if risk <= tertiles[0] => "low",
        GroupMethod::Tertiles if risk <= tertiles[1] => "mid",
        GroupMethod::Tertiles => "high",
    }
}

/// Evaluates one arm. `oof`: its `oof.csv` rows; `cuts`: `(repeat, fold) → (median, tertiles)`
/// of `model.json`.
pub fn evaluate_competing(
    arm: &str,
    slug: &str,
    c: &CompetingJson,
    oof: &[OofRow],
    cuts: &BTreeMap<(usize, usize), (f64, [f64; 2])>,
    opts: &CompetingEvalOptions,
) -> Result<CompetingArm> {
    let err = |what: &str, found: String| ModelError::InvalidParameter {
        name: format!("arm '{arm}': {what}"),
        expected: "competing.json consistent with oof.csv".into(),
        found,
    };
    let n = c.patients.len();
    let rows0: Vec<&OofRow> = oof.iter().filter(|r| r.repeat == 0).collect();
    if rows0.len() != n {
        return Err(err("patients", format!("{} in oof.csv (repeat 0), {n} in competing.json", rows0.len())));
    }
    for (r, p) in rows0.iter().zip(&c.patients) {
        if r.patient != p.patient || r.time != p.time || r.event != (p.status == 1) {
            return Err(err("patient", format!("`{}` in oof.csv, `{}` in competing.json", r.patient, p.patient)));
        }
    }
    let data = CompetingRisksData::new(c.patients.iter().map(|p| p.time).collect(), c.status())
        .map_err(|source| ModelError::Survival { context: format!("arm '{arm}'"), source })?;
    let surv = |what: &str| {
        let context = format!("arm '{arm}': {what}");
        move |source| ModelError::Survival { context: context.clone(), source }
    };
    let h = &opts.horizons;
    let cif = predicted_cif(c, h)?;
    let repeats: Vec<&Vec<Vec<f64>>> = cif.values().collect();
    // mean over repeats of AUC and Brier at every horizon, on the patients `idx`
    let stat = |idx: &[usize]| -> crate::survival::Result<Vec<f64>> {
        let d = data.subset(idx);
        let mut acc = vec![0.0; 2 * h.len()];
        for per in &repeats {
            let m: Vec<Vec<f64>> = per.iter().map(|v| idx.iter().map(|&i| v[i]).collect()).collect();
            let refs: Vec<&[f64]> = m.iter().map(Vec::as_slice).collect();
            let auc = competing_auc(&d, 1, &refs, h)?;
            let brier = competing_brier(&d, 1, &refs, h)?;
            for k in 0..h.len() {
                acc[k] += auc[k].auc / repeats.len() as f64;
                acc[h.len() + k] += brier[k] / repeats.len() as f64;
            }
        }
        Ok(acc)
    };
    let bo = BootstrapOptions { n_boot: opts.bootstrap, seed: opts.seed, confidence_level: opts.ci };
    let cis = bootstrap(n, &bo, stat).map_err(surv("competing-risks AUC and Brier score"))?;
    let first = &repeats[0];
    let refs0: Vec<&[f64]> = first.iter().map(Vec::as_slice).collect();
    let counts = competing_auc(&data, 1, &refs0, h).map_err(surv("competing-risks AUC"))?;
    let aj1 = CumulativeIncidence::fit_with_level(&data, 1, opts.ci).map_err(surv("Aalen–Johansen"))?;
    let horizons = (0..h.len())
        .map(|k| CompetingHorizon {
            horizon: h[k],
            auc: cis[k].clone(),
            brier: cis[h.len() + k].clone(),
            n_cases: counts[k].n_cases,
            n_controls_event_free: counts[k].n_controls_event_free,
            n_controls_competing: counts[k].n_controls_competing,
            observed_cif: aj1.value_at(h[k]).0,
            mean_predicted_cif: repeats.iter().map(|per| per[k].iter().sum::<f64>() / n as f64).sum::<f64>()
                / repeats.len() as f64,
        })
        .collect();
    // risk groups of repeat 0 and the Aalen–Johansen curves of every cause within them
    let mut labels = Vec::with_capacity(n);
    for r in &rows0 {
        let (median, tertiles) = cuts
            .get(&(0, r.fold))
            .copied()
            .ok_or_else(|| err("cut-points", format!("none for repeat 0 fold {}", r.fold)))?;
        labels.push(risk_group(opts.groups, r.risk, median, tertiles));
    }
    let mut groups = Vec::new();
    for &label in opts.groups.labels() {
        let idx: Vec<usize> = (0..n).filter(|&i| labels[i] == label).collect();
        if idx.is_empty() {
            continue;
        }
        let d = data.subset(&idx);
        let mut curves = Vec::new();
        for cause in &c.causes {
            let aj = CumulativeIncidence::fit_with_level(&d, cause.code, opts.ci).map_err(surv("Aalen–Johansen"))?;
            let mut cv = CifCurve {
                cause: cause.code,
                name: cause.name.clone(),
                time: vec![0.0],
                cif: vec![0.0],
                lower: vec![0.0],
                upper: vec![0.0],
            };
            for s in &aj.steps {
                let e = aj.estimate_at(s.time);
                let finite = |x: f64| if x.is_finite() { x } else { e.cif };
                cv.time.push(s.time);
                cv.cif.push(e.cif);
                cv.lower.push(finite(e.lower));
                cv.upper.push(finite(e.upper));
            }
            // carried to the group's last follow-up time
            if let (Some(&t), Some(&f), Some(&lo), Some(&hi)) =
                (cv.time.last(), cv.cif.last(), cv.lower.last(), cv.upper.last())
            {
                if aj.max_time > t {
                    cv.time.push(aj.max_time);
                    cv.cif.push(f);
                    cv.lower.push(lo);
                    cv.upper.push(hi);
                }
            }
            curves.push(cv);
        }
        groups.push(CifGroup {
            label: label.to_string(),
            n: idx.len(),
            events: d.n_events(1),
            competing: d.status.iter().filter(|&&s| s > 1).count(),
            curves,
        });
    }
    let gray = if groups.len() >= 2 {
        gray_test(&data, &labels, 1, 0.0).ok().map(|g| GrayResult { statistic: g.statistic, df: g.df, p: g.p_value })
    } else {
        None
    };
    let competing_events = data.status.iter().filter(|&&s| s > 1).count();
    let events = data.n_events(1);
    Ok(CompetingArm {
        arm: arm.to_string(),
        slug: slug.to_string(),
        method: c.method.clone(),
        cause: c.causes[0].name.clone(),
        competing_causes: c.causes[1..].iter().map(|x| x.name.clone()).collect(),
        n,
        events,
        competing_events,
        censored: n - events - competing_events,
        repeats: repeats.len(),
        horizons,
        groups,
        gray,
    })
}
