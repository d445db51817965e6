//! Brier score with inverse-probability-of-censoring weights at given times (Graf et al.), and
//! the integrated Brier score (scikit-survival's `brier_score` / `integrated_brier_score`).
//!
//! # Formula
//! With predicted survival `Ŝ_i(t)` and `G` the Kaplan–Meier estimate of the censoring
//! distribution (right-continuous, read at `T_i` and at `t`):
//! `BS(t) = (1/n) Σ_i [ 1(T_i ≤ t, event) Ŝ_i(t)² / G(T_i) + 1(T_i > t) (1 − Ŝ_i(t))² / G(t) ]`.
//! A zero `G` makes its term 0 (scikit-survival sets the weight to 1/∞). Subjects censored at or
//! before `t` contribute 0 but stay in the denominator `n`.
//! Integrated Brier score over the given grid: `∫ BS dt / (t_K − t_1)` by the trapezoidal rule
//! (needs at least two times).
//!
//! # Assumptions
//! Independent censoring; `G` fitted on the same data.
//!
//! # Errors
//! Times not strictly increasing or outside `[min T, max T)`; predictions outside [0, 1].
//!
//! # References
//! Graf E, Schmoor C, Sauerbrei W, Schumacher M (1999) Stat Med 18:2529–2545. Gerds TA,
//! Schumacher M (2006) Biom J 48:1029–1040.
use super::auc::check_times;
use super::data::{check_len, check_probabilities, check_survival};
use super::error::{Result, SurvivalError};
use super::kaplan_meier::CensoringKm;

/// Brier scores at several times.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BrierScore {
    /// The times.
    pub times: Vec<f64>,
    /// Brier score at each time.
    pub brier: Vec<f64>,
    /// Integrated Brier score over `times` (`None` with a single time).
    pub integrated: Option<f64>,
}

/// Brier scores from predicted survival given **per time**: `surv[k][i]` is `Ŝ_i(times[k])`.
pub fn brier_score(time: &[f64], event: &[bool], surv: &[Vec<f64>], times: &[f64]) -> Result<BrierScore> {
    check_survival(time, event)?;
    check_times("Brier", time, times)?;
    check_len("predicted survival vectors (one per time)", times.len(), surv.len())?;
    for (k, s) in surv.iter().enumerate() {
        check_probabilities(&format!("predicted survival at time {}", times[k]), s, time.len())?;
    }
    let g = CensoringKm::fit(time, event)?;
    let n = time.len();
    let inv = |x: f64| if x > 0.0 { 1.0 / x } else { 0.0 };
    let wy: Vec<f64> = time.iter().map(|&t| inv(g.g_at(t))).collect();
    let mut brier = Vec::with_capacity(times.len());
    for (k, &t) in times.iter().enumerate() {
        let wt = inv(g.g_at(t));
        let s = &surv[k];
        let mut acc = 0.0;
        for i in 0..n {
            if time[i] <= t {
                if event[i] {
                    acc += s[i] * s[i] * wy[i];
                }
            } else {
                acc += (1.0 - s[i]) * (1.0 - s[i]) * wt;
            }
        }
        brier.push(acc / n as f64);
    }
    let integrated = integrate(times, &brier);
    Ok(BrierScore { times: times.to_vec(), brier, integrated })
}

/// Brier scores from predicted survival given **per subject**: `rows[i][k]` is `Ŝ_i(times[k])`
/// (the layout of [`super::cox::CoxFit::predict_survival`]).
pub fn brier_score_rows(time: &[f64], event: &[bool], rows: &[Vec<f64>], times: &[f64]) -> Result<BrierScore> {
    check_len("predicted survival rows", time.len(), rows.len())?;
    let mut surv = vec![Vec::with_capacity(rows.len()); times.len()];
    for (i, r) in rows.iter().enumerate() {
        if r.len() != times.len() {
            return Err(SurvivalError::LengthMismatch {
                what: format!("predicted survival of observation {i} (one per time)"),
                expected: times.len(),
                found: r.len(),
            });
        }
        for (k, v) in r.iter().enumerate() {
            surv[k].push(*v);
        }
    }
    brier_score(time, event, &surv, times)
}

/// Trapezoidal integral of `y` over `x` divided by the range of `x`.
fn integrate(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() < 2 {
        return None;
    }
    let area: f64 = (1..x.len()).map(|k| (x[k] - x[k - 1]) * (y[k] + y[k - 1]) * 0.5).sum();
    Some(area / (x[x.len() - 1] - x[0]))
}
