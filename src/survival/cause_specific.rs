//! Cause-specific Cox models: the existing [`super::cox`] fit with events of every other cause
//! treated as censored, one model per cause, so that a study can combine the cause-specific
//! hazards into absolute risk (cumulative incidence).
//!
//! # Formula
//! The cause-`k` specific hazard `λ_k(t | x) = λ_{k0}(t) exp(xᵀβ_k)` is estimated by the Cox
//! partial likelihood in which only events of cause `k` are events and everyone else leaves the
//! risk set at their time (censored or failed from another cause). With the Breslow baselines
//! `Λ_{j0}` of every cause, the absolute risk of cause `k` is
//! `F_k(t | x) = Σ_{s ≤ t} S(s− | x) · dΛ_k(s | x)`, `S(t | x) = exp(−Σ_j Λ_j(t | x))` (the
//! product-limit form `Π (1 − Σ_j dΛ_j)` is riskRegression's `CSC` default for `surv.type =
//! "hazard"`); combining them belongs to the caller.
//!
//! # Assumptions
//! Proportional cause-specific hazards; independent censoring. A cause-specific hazard ratio is
//! not the effect on the cumulative incidence (see [`super::finegray`] for that).
//!
//! # Errors
//! Those of [`super::cox::fit_cox`], and cause 0.
//!
//! # References
//! Prentice RL, Kalbfleisch JD, Peterson AV, et al. (1978) Biometrics 34:541–554. Putter H,
//! Fiocco M, Geskus RB (2007) Stat Med 26:2389–2430. Ozenne B et al., riskRegression R package
//! (`CSC`).
use super::competing::CompetingRisksData;
use super::cox::{fit_cox, CoxFit, CoxOptions};
use super::error::Result;

/// Fits the Cox model of the cause-specific hazard of `cause`: events of other causes are
/// censored at their time. `x` is row-major `n × p` with `p = names.len()`.
pub fn fit_cause_specific_cox(
    data: &CompetingRisksData,
    cause: u32,
    x: &[f64],
    names: &[String],
    options: &CoxOptions,
) -> Result<CoxFit> {
    data.check_cause(cause)?;
    fit_cox(&data.time, &data.cause_specific_events(cause), x, names, options)
}

/// One cause-specific Cox model per cause present in the data, in ascending cause order.
pub fn fit_all_cause_specific_cox(
    data: &CompetingRisksData,
    x: &[f64],
    names: &[String],
    options: &CoxOptions,
) -> Result<Vec<(u32, CoxFit)>> {
    data.causes().into_iter().map(|k| Ok((k, fit_cause_specific_cox(data, k, x, names, options)?))).collect()
}
