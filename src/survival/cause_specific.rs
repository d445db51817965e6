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
//! product-limit form `S(t | x) = Π_{s ≤ t} (1 − Σ_j dΛ_j(s | x))` is riskRegression's
//! `predictRisk(…, product.limit = TRUE)` default); [`cause_specific_cif`] combines them, with
//! `Λ_j(t | x) = Λ_{j0}(t) exp(lp_j)` and `S(s− | x)` taken just before each jump.
//!
//! # Assumptions
//! Proportional cause-specific hazards; independent censoring. A cause-specific hazard ratio is
//! not the effect on the cumulative incidence (see [`super::finegray`] for that).
//!
//! # Errors
//! Those of [`super::cox::fit_cox`], and cause 0. [`cause_specific_cif`]: no cause, a baseline
//! whose times are not increasing or whose cumulative hazard is negative or decreasing, a
//! non-finite linear predictor.
//!
//! # References
//! Prentice RL, Kalbfleisch JD, Peterson AV, et al. (1978) Biometrics 34:541–554. Putter H,
//! Fiocco M, Geskus RB (2007) Stat Med 26:2389–2430. Ozenne B et al., riskRegression R package
//! (`CSC`).
use super::competing::CompetingRisksData;
use super::cox::{fit_cox, CoxFit, CoxOptions};
use super::error::{Result, SurvivalError};

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

/// One cause's hazard for one subject: the cause's Breslow baseline cumulative hazard at zero
/// covariates (`times` strictly increasing, `cumhaz` non-decreasing, right-continuous steps) and
/// the subject's linear predictor for that cause.
#[derive(Debug, Clone, Copy)]
pub struct CauseHazard<'a> {
    /// Jump times of the baseline, ascending.
    pub times: &'a [f64],
    /// `Λ_{j0}` at those times.
    pub cumhaz: &'a [f64],
    /// Linear predictor `xᵀβ_j`.
    pub lp: f64,
}

/// How the all-cause survival `S(s− | x)` is formed from the cause-specific hazards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SurvivalForm {
    /// `exp(−Σ_j Λ_j(s− | x))` (riskRegression `product.limit = FALSE`).
    Exponential,
    /// `Π_{u < s} (1 − Σ_j dΛ_j(u | x))` (riskRegression `product.limit = TRUE`); a jump with
    /// `Σ_j dΛ_j > 1` counts as a conditional probability of 1 split between the causes in
    /// proportion to their jumps (riskRegression does not cap it), so `F ≤ 1 − S ≤ 1` always.
    /// The exponential form can exceed 1 in that case.
    ProductLimit,
}

fn check_hazard(j: usize, h: &CauseHazard) -> Result<()> {
    let bad = |index: usize, value: f64, expected: &str| SurvivalError::InvalidValue {
        what: format!("baseline of cause model {j}"),
        index,
        value,
        expected: expected.into(),
    };
    if h.times.len() != h.cumhaz.len() {
        return Err(SurvivalError::LengthMismatch {
            what: format!("baseline cumulative hazards of cause model {j}"),
            expected: h.times.len(),
            found: h.cumhaz.len(),
        });
    }
    if !h.lp.is_finite() {
        return Err(bad(0, h.lp, "a finite linear predictor"));
    }
    for i in 0..h.times.len() {
        if !h.times[i].is_finite() || (i > 0 && h.times[i] <= h.times[i - 1]) {
            return Err(bad(i, h.times[i], "finite, strictly increasing times"));
        }
        let prev = if i > 0 { h.cumhaz[i - 1] } else { 0.0 };
        if !h.cumhaz[i].is_finite() || h.cumhaz[i] < prev {
            return Err(bad(i, h.cumhaz[i], "a finite, non-negative, non-decreasing cumulative hazard"));
        }
    }
    Ok(())
}

/// The absolute risk (cumulative incidence) of cause `hazards[cause]` at each of `at` (any
/// order) for one subject: `F(t) = Σ_{s ≤ t} S(s−) dΛ_cause(s)` over the jump times of every
/// cause's baseline.
pub fn cause_specific_cif(hazards: &[CauseHazard], cause: usize, at: &[f64], form: SurvivalForm) -> Result<Vec<f64>> {
    if cause >= hazards.len() {
        return Err(SurvivalError::InvalidParameter {
            name: "cause index".into(),
            expected: format!("below the number of cause models ({})", hazards.len()),
            found: cause.to_string(),
        });
    }
    for (j, h) in hazards.iter().enumerate() {
        check_hazard(j, h)?;
    }
    let mut jumps: Vec<f64> = hazards.iter().flat_map(|h| h.times.iter().copied()).collect();
    jumps.sort_by(f64::total_cmp);
    jumps.dedup();
    let scale: Vec<f64> = hazards.iter().map(|h| h.lp.exp()).collect();
    let mut pos = vec![0usize; hazards.len()];
    let mut prev = vec![0.0; hazards.len()];
    // (jump time, F just after it)
    let mut steps: Vec<(f64, f64)> = Vec::with_capacity(jumps.len());
    let (mut f, mut total, mut s_pl) = (0.0, 0.0f64, 1.0);
    for &s in &jumps {
        let s_before = match form {
            SurvivalForm::Exponential => (-total).exp(),
            SurvivalForm::ProductLimit => s_pl,
        };
        let mut d_all = 0.0;
        let mut d_cause = 0.0;
        for (j, h) in hazards.iter().enumerate() {
            if pos[j] < h.times.len() && h.times[pos[j]] == s {
                let d = (h.cumhaz[pos[j]] - prev[j]) * scale[j];
                prev[j] = h.cumhaz[pos[j]];
                pos[j] += 1;
                d_all += d;
                if j == cause {
                    d_cause = d;
                }
            }
        }
        // a product-limit jump of total hazard above 1 (possible with few patients at risk and
        // a large linear predictor) is a conditional probability of 1, shared by the causes
        let share = if form == SurvivalForm::ProductLimit && d_all > 1.0 { 1.0 / d_all } else { 1.0 };
        f += s_before * d_cause * share;
        total += d_all;
        s_pl *= (1.0 - d_all).max(0.0);
        // the product limit keeps F ≤ 1 − S ≤ 1; only rounding can step over 1
        steps.push((s, if form == SurvivalForm::ProductLimit { f.min(1.0) } else { f }));
    }
    Ok(at
        .iter()
        .map(|&t| {
            let k = steps.partition_point(|st| st.0 <= t);
            if k == 0 {
                0.0
            } else {
                steps[k - 1].1
            }
        })
        .collect())
}
