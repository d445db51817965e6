//! The IPCW Brier score of a predicted cumulative incidence in the competing-risks sense —
//! riskRegression's `Score(…, cause = 1, metrics = "brier")`.
//!
//! # Formula
//! At time `t`, with predicted cumulative incidence `F̂_i(t)` of the cause and status `δ_i`
//! (0 = censored, `k ≥ 1` = cause):
//! `BS(t) = (1/n) Σ_i W_i(t) (1(T_i ≤ t, δ_i = cause) − F̂_i(t))²`, with
//! `W_i(t) = 1(T_i ≤ t, δ_i ≠ 0)/G(T_i−) + 1(T_i > t)/G(t)` (0 for those censored by `t`).
//! A competing event by `t` is an observed "no event of the cause by `t`". `G` is the
//! Kaplan–Meier of the censoring times (as [`super::competing_auc`]).
//!
//! # Assumptions
//! Independent censoring; `G` fitted on the same data.
//!
//! # Errors
//! Inputs of different lengths, a prediction outside `[0, 1]`, a time outside `[min T, max T)`
//! or not increasing, `G = 0` where a weight is needed.
//!
//! # References
//! Gerds TA, Schumacher M (2006) Consistent estimation of the expected Brier score in general
//! survival models with right-censored event times. Biom J 48:1029–1040. Schoop R, Beyersmann J,
//! Schumacher M, Binder H (2011) Quantifying the predictive accuracy of time-to-event models in
//! the presence of competing risks. Biom J 53:88–112.
use super::auc::check_times;
use super::competing::CompetingRisksData;
use super::competing_auc::{inverse, Ipcw};
use super::data::{check_len, check_probabilities};
use super::error::Result;

/// Brier score of cause `cause` at each of `times`; `cif[k][i]` is subject `i`'s predicted
/// cumulative incidence at `times[k]`.
pub fn competing_brier(data: &CompetingRisksData, cause: u32, cif: &[&[f64]], times: &[f64]) -> Result<Vec<f64>> {
    data.check_cause(cause)?;
    check_times("competing-risks Brier", &data.time, times)?;
    check_len("predicted cumulative incidence vectors (one per time)", times.len(), cif.len())?;
    let n = data.len();
    for (k, f) in cif.iter().enumerate() {
        check_probabilities(&format!("predicted cumulative incidence at time {}", times[k]), f, n)?;
    }
    let g = Ipcw::fit(data)?;
    let mut out = Vec::with_capacity(times.len());
    for (k, &t) in times.iter().enumerate() {
        let f = cif[k];
        let mut acc = 0.0;
        for ((&ti, &si), &fi) in data.time.iter().zip(&data.status).zip(f.iter()) {
            if ti > t {
                acc += fi * fi * inverse(g.at(t), t)?;
            } else if si != 0 {
                let y = if si == cause { 1.0 } else { 0.0 };
                acc += (y - fi).powi(2) * inverse(g.before(ti), ti)?;
            }
        }
        out.push(acc / n as f64);
    }
    Ok(out)
}
