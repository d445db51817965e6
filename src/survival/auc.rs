//! Time-dependent cumulative/dynamic AUC with inverse-probability-of-censoring weights, the
//! ROC curve at each time, and the mean AUC over the times (scikit-survival's
//! `cumulative_dynamic_auc`).
//!
//! # Formula
//! At time `t`, *cases* are subjects with an event at `T_i ≤ t`, weighted `w_i = 1/G(T_i)`
//! (`G` = Kaplan–Meier of the censoring times, read at `T_i`); *controls* are subjects with
//! `T_j > t` (unweighted). With risk scores (higher = earlier event):
//! `AUC(t) = Σ_i Σ_j w_i [1(r_i > r_j) + ½ 1(r_i = r_j)] / (Σ_i w_i · #controls)`,
//! which equals the trapezoidal area under the ROC curve whose points are
//! `(FPR, TPR)` at each distinct risk threshold taken in decreasing order, from `(0, 0)`:
//! `TPR(c) = Σ_{cases, r_i ≥ c} w_i / Σ w_i`, `FPR(c) = #{controls, r_j ≥ c} / #controls`.
//! Mean AUC: `Σ_k AUC(t_k) (S(t_{k−1}) − S(t_k)) / (1 − S(t_K))`, `S` the Kaplan–Meier survival
//! of the data, `S(t_0) = 1` (a single time gives its AUC).
//!
//! # Assumptions
//! Independent censoring; `G` fitted on the same data (train = test). A risk may differ per
//! time ([`cumulative_dynamic_auc_per_time`], e.g. predicted `1 − S_i(t)`).
//!
//! # Errors
//! Times not strictly increasing or outside `[min T, max T)`; a time with no cases or no
//! controls; `G(T_i) = 0` for a case.
//!
//! # References
//! Uno H, Cai T, Tian L, Wei LJ (2007) JASA 102:527–537. Hung H, Chiang CT (2010) Scand J Stat
//! 37:664–679. Lambert J, Chevret S (2016) Stat Methods Med Res 25:2088–2102.
use super::data::{check_finite, check_survival};
use super::error::{Result, SurvivalError};
use super::kaplan_meier::{CensoringKm, KaplanMeier};
use super::sort::argsort_f64;

/// A point of a ROC curve.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RocPoint {
    /// Risk threshold (subjects with risk ≥ threshold are called positive); `inf` at (0, 0).
    pub threshold: f64,
    /// False-positive rate among controls.
    pub fpr: f64,
    /// IPCW true-positive rate among cases.
    pub tpr: f64,
}

/// AUC and ROC curve at one time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AucAtTime {
    /// The time.
    pub time: f64,
    /// Cumulative/dynamic AUC.
    pub auc: f64,
    /// Number of cases (events at or before `time`).
    pub n_cases: usize,
    /// Number of controls (still event-free after `time`).
    pub n_controls: usize,
    /// ROC curve points, from (0, 0) to (1, 1).
    pub roc: Vec<RocPoint>,
}

/// Cumulative/dynamic AUC at several times.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CumulativeDynamicAuc {
    /// The times.
    pub times: Vec<f64>,
    /// AUC at each time.
    pub auc: Vec<f64>,
    /// Survival-weighted mean AUC.
    pub mean_auc: f64,
    /// Per time: counts and ROC curve.
    pub curves: Vec<AucAtTime>,
}

/// Checks evaluation times: non-empty, strictly increasing, within `[min T, max T)`.
pub(crate) fn check_times(what: &str, time: &[f64], times: &[f64]) -> Result<()> {
    if times.is_empty() {
        return Err(SurvivalError::Empty { what: format!("{what} times") });
    }
    let min = time.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = time.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    for (k, &t) in times.iter().enumerate() {
        if !(t.is_finite() && t >= min && t < max) {
            return Err(SurvivalError::TimeOutOfRange { what: what.into(), time: t, min, max });
        }
        if k > 0 && t <= times[k - 1] {
            return Err(SurvivalError::InvalidParameter {
                name: format!("{what} times"),
                expected: "strictly increasing".into(),
                found: format!("{} after {}", t, times[k - 1]),
            });
        }
    }
    Ok(())
}

/// AUC at each of `times` with one risk score per subject.
pub fn cumulative_dynamic_auc(
    time: &[f64],
    event: &[bool],
    risk: &[f64],
    times: &[f64],
) -> Result<CumulativeDynamicAuc> {
    let risks: Vec<&[f64]> = times.iter().map(|_| risk).collect();
    cumulative_dynamic_auc_per_time(time, event, &risks, times)
}

/// AUC at each of `times` with a risk score per subject *per time* (`risks[k][i]` at `times[k]`).
pub fn cumulative_dynamic_auc_per_time(
    time: &[f64],
    event: &[bool],
    risks: &[&[f64]],
    times: &[f64],
) -> Result<CumulativeDynamicAuc> {
    check_survival(time, event)?;
    check_times("AUC", time, times)?;
    if risks.len() != times.len() {
        return Err(SurvivalError::LengthMismatch {
            what: "risk vectors (one per time)".into(),
            expected: times.len(),
            found: risks.len(),
        });
    }
    for r in risks {
        check_finite("risk score", r, time.len())?;
    }
    let g = CensoringKm::fit(time, event)?;
    let n = time.len();
    let mut curves = Vec::with_capacity(times.len());
    for (k, &t) in times.iter().enumerate() {
        let risk = risks[k];
        let mut wcase = vec![0.0; n];
        let mut n_cases = 0;
        let mut n_controls = 0;
        for i in 0..n {
            if event[i] && time[i] <= t {
                let gi = g.g_at(time[i]);
                if gi <= 0.0 {
                    return Err(SurvivalError::CensoringSurvivalZero { time: time[i] });
                }
                wcase[i] = 1.0 / gi;
                n_cases += 1;
            } else if time[i] > t {
                n_controls += 1;
            }
        }
        if n_cases == 0 || n_controls == 0 {
            return Err(SurvivalError::InvalidParameter {
                name: format!("AUC time {t}"),
                expected: "at least one event at or before it and one subject event-free after it".into(),
                found: format!("{n_cases} cases and {n_controls} controls"),
            });
        }
        let total_w: f64 = wcase.iter().sum();
        let order = argsort_f64(risk);
        let mut roc = vec![RocPoint { threshold: f64::INFINITY, fpr: 0.0, tpr: 0.0 }];
        let (mut tp, mut fp) = (0.0f64, 0usize);
        let mut auc = 0.0;
        let (mut prev_tpr, mut prev_fpr) = (0.0, 0.0);
        let mut j = n;
        while j > 0 {
            let thr = risk[order[j - 1] as usize];
            while j > 0 && risk[order[j - 1] as usize] == thr {
                let i = order[j - 1] as usize;
                tp += wcase[i];
                if time[i] > t {
                    fp += 1;
                }
                j -= 1;
            }
            let tpr = tp / total_w;
            let fpr = fp as f64 / n_controls as f64;
            auc += (fpr - prev_fpr) * (tpr + prev_tpr) * 0.5;
            prev_tpr = tpr;
            prev_fpr = fpr;
            roc.push(RocPoint { threshold: thr, fpr, tpr });
        }
        curves.push(AucAtTime { time: t, auc, n_cases, n_controls, roc });
    }
    let auc: Vec<f64> = curves.iter().map(|c| c.auc).collect();
    let mean_auc = if times.len() == 1 {
        auc[0]
    } else {
        let km = KaplanMeier::fit(time, event)?;
        let mut prev = 1.0;
        let mut num = 0.0;
        let mut last = 1.0;
        for (k, &t) in times.iter().enumerate() {
            let s = km.survival_at(t);
            num += auc[k] * (prev - s);
            prev = s;
            last = s;
        }
        num / (1.0 - last)
    };
    Ok(CumulativeDynamicAuc { times: times.to_vec(), auc, mean_auc, curves })
}
