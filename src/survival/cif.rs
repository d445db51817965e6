//! Aalen–Johansen cumulative incidence of one cause under competing risks, with the
//! delta-method variance that R's `cmprsk::cuminc` reports and a log(−log) pointwise interval.
//!
//! # Formula
//! With distinct observed times `t_j`, `n_j` at risk (`T ≥ t_j`), `d_{1j}` events of the cause of
//! interest, `d_{2j}` events of any other cause and `d_j = d_{1j} + d_{2j}`, and the all-cause
//! Kaplan–Meier `S(t) = Π_{t_j ≤ t} (1 − d_j / n_j)`:
//! - cumulative incidence `F(t) = Σ_{t_j ≤ t} S(t_j−) · d_{1j} / n_j` (right-continuous; it
//!   equals `1 − KM` when there are no competing events, and `F_1 + F_2 + … = 1 − S`);
//! - variance (Gray's delta-method / Greenwood-type estimator, Fortran `cinc` of cmprsk): with
//!   running sums over event times `v₁, v₂, v₃`, at a time with `d_{2j} > 0` and `S(t_j) > 0` add
//!   `w = S(t_j−)² · c(d_{2j}) · d_{2j} / n_j²`, `a = 1/S(t_j)`, `b = F(t_j)/S(t_j)` as
//!   `v₁ += b²w, v₂ += abw, v₃ += a²w`; at a time with `d_{1j} > 0` add
//!   `w = S(t_j−)² · c(d_{1j}) · d_{1j} / n_j²`, `a = 1/S(t_j)` (0 if `S(t_j) = 0`),
//!   `b = 1 + a·F(t_j)` likewise; then `Var F(t_j) = v₁ + F(t_j)² v₃ − 2 F(t_j) v₂`. The tie
//!   correction is `c(d) = 1 − (d − 1)/(n_j − 1)` for `d > 1`, else 1. The variance is updated
//!   at events of the cause of interest only: between them it keeps its last value (as cuminc's
//!   `timepoints` reports it).
//! - pointwise interval on the log(−log) scale (as lifelines' `AalenJohansenFitter`):
//!   `F^{exp(± z·se / (F·|log F|))}`, `z = Φ⁻¹(1 − α/2)`; lower and upper equal `F` when `F` is 0 or
//!   1 or `se` is 0. cmprsk itself prints no interval.
//! - after the largest follow-up time the estimate is undefined (NaN; `cuminc` gives NA).
//!
//! # Assumptions
//! Independent right censoring; the causes are mutually exclusive and the first event ends
//! follow-up. Ties between causes at one time are handled as simultaneous (no jitter).
//!
//! # Errors
//! Invalid data ([`CompetingRisksData`]), cause 0, a confidence level outside (0, 1).
//!
//! # References
//! Aalen OO, Johansen S (1978) Scand J Stat 5:141–150. Kalbfleisch JD, Prentice RL (2002) *The
//! Statistical Analysis of Failure Time Data*, §8.2. Marubini E, Valsecchi MG (1995) *Analysing
//! Survival Data from Clinical Trials and Observational Studies*, §10. Gray RJ, cmprsk R package,
//! `cuminc` (Fortran `cinc`, variance) and `timepoints`.
use super::competing::CompetingRisksData;
use super::error::Result;
use super::kaplan_meier::normal_quantile;

/// The estimate just after one event time of the cause of interest.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CifStep {
    /// The event time.
    pub time: f64,
    /// `F(time)` (including the jump at `time`).
    pub cif: f64,
    /// Delta-method variance of `F(time)`.
    pub variance: f64,
    /// Events of the cause of interest at `time`.
    pub events: usize,
    /// Subjects at risk just before `time`.
    pub at_risk: usize,
}

/// The estimate at a requested time.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CifEstimate {
    /// The requested time.
    pub time: f64,
    /// `F(time)` (NaN after the largest follow-up time).
    pub cif: f64,
    /// Standard error (square root of the cuminc variance).
    pub se: f64,
    /// Lower confidence limit (log(−log) interval).
    pub lower: f64,
    /// Upper confidence limit.
    pub upper: f64,
}

/// A fitted Aalen–Johansen cumulative incidence curve for one cause.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CumulativeIncidence {
    /// The cause of interest.
    pub cause: u32,
    /// Observations.
    pub n: usize,
    /// Events of the cause of interest.
    pub n_events: usize,
    /// Events of other causes.
    pub n_competing: usize,
    /// Largest follow-up time (the curve is undefined after it).
    pub max_time: f64,
    /// Confidence level of the intervals.
    pub level: f64,
    /// One step per distinct event time of the cause of interest, ascending.
    pub steps: Vec<CifStep>,
}

/// Tie correction factor of the cmprsk variance.
fn tie_factor(d: usize, n: usize) -> f64 {
    if d > 1 {
        1.0 - (d as f64 - 1.0) / (n as f64 - 1.0)
    } else {
        1.0
    }
}

impl CumulativeIncidence {
    /// Fits the cumulative incidence of `cause` with 95% intervals.
    pub fn fit(data: &CompetingRisksData, cause: u32) -> Result<Self> {
        Self::fit_with_level(data, cause, 0.95)
    }

    /// Fits with a given confidence level in (0, 1).
    pub fn fit_with_level(data: &CompetingRisksData, cause: u32, level: f64) -> Result<Self> {
        data.check_cause(cause)?;
        normal_quantile(level)?;
        let order = data.order();
        let n = data.len();
        let (mut surv, mut f) = (1.0_f64, 0.0_f64);
        let (mut v1, mut v2, mut v3) = (0.0_f64, 0.0_f64, 0.0_f64);
        let mut steps = Vec::new();
        let mut i = 0;
        while i < n {
            let t = data.time[order[i]];
            let mut j = i;
            let (mut d1, mut d2) = (0usize, 0usize);
            while j < n && data.time[order[j]] == t {
                match data.status[order[j]] {
                    0 => {}
                    s if s == cause => d1 += 1,
                    _ => d2 += 1,
                }
                j += 1;
            }
            let rs = n - i;
            let d = d1 + d2;
            if d > 0 {
                let nr = rs as f64;
                let surv_new = surv * (nr - d as f64) / nr;
                if d1 > 0 {
                    f += surv * d1 as f64 / nr;
                }
                if d2 > 0 && surv_new > 0.0 {
                    let w = surv * surv * tie_factor(d2, rs) * d2 as f64 / (nr * nr);
                    let (a, b) = (1.0 / surv_new, f / surv_new);
                    v1 += b * b * w;
                    v2 += a * b * w;
                    v3 += a * a * w;
                }
                if d1 > 0 {
                    let w = surv * surv * tie_factor(d1, rs) * d1 as f64 / (nr * nr);
                    let a = if surv_new > 0.0 { 1.0 / surv_new } else { 0.0 };
                    let b = 1.0 + a * f;
                    v1 += b * b * w;
                    v2 += a * b * w;
                    v3 += a * a * w;
                    let variance = v1 + f * f * v3 - 2.0 * f * v2;
                    steps.push(CifStep { time: t, cif: f, variance, events: d1, at_risk: rs });
                }
                surv = surv_new;
            }
            i = j;
        }
        let n_events = data.n_events(cause);
        let n_competing = data.status.iter().filter(|&&s| s != 0 && s != cause).count();
        let max_time = data.time.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Ok(Self { cause, n, n_events, n_competing, max_time, level, steps })
    }

    /// `(F, variance)` at `t`: the values after the last event of the cause at or before `t`,
    /// `(0, 0)` before the first, NaN after the largest follow-up time.
    pub fn value_at(&self, t: f64) -> (f64, f64) {
        if t.is_nan() || t > self.max_time {
            return (f64::NAN, f64::NAN);
        }
        let k = self.steps.partition_point(|s| s.time <= t);
        if k == 0 {
            (0.0, 0.0)
        } else {
            (self.steps[k - 1].cif, self.steps[k - 1].variance)
        }
    }

    /// Estimate, standard error and log(−log) interval at `t`.
    pub fn estimate_at(&self, t: f64) -> CifEstimate {
        let (cif, var) = self.value_at(t);
        let se = var.max(0.0).sqrt();
        let (lower, upper) = loglog_interval(cif, se, self.level);
        CifEstimate { time: t, cif, se: if cif.is_nan() { f64::NAN } else { se }, lower, upper }
    }
}

/// The log(−log) interval `F^{exp(± z·se / (F·|log F|))}` (see the module doc).
pub fn loglog_interval(f: f64, se: f64, level: f64) -> (f64, f64) {
    if f.is_nan() {
        return (f64::NAN, f64::NAN);
    }
    if f <= 0.0 || f >= 1.0 || se <= 0.0 || !se.is_finite() {
        return (f, f);
    }
    let z = normal_quantile(level).unwrap_or(1.959963984540054);
    let delta = z * se / (f * f.ln().abs());
    (f.powf(delta.exp()), f.powf((-delta).exp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_competing_events_it_is_one_minus_km() {
        let d = CompetingRisksData::new(vec![1.0, 2.0, 2.0, 3.0, 4.0, 5.0], vec![1, 0, 1, 1, 0, 1]).unwrap();
        let c = CumulativeIncidence::fit(&d, 1).unwrap();
        let km = crate::survival::KaplanMeier::fit(&d.time, &d.any_events()).unwrap();
        for t in [0.5, 1.0, 2.0, 3.5, 5.0] {
            assert!((c.value_at(t).0 - (1.0 - km.survival_at(t))).abs() < 1e-15);
        }
        assert!(c.value_at(5.5).0.is_nan());
    }

    #[test]
    fn causes_add_up_to_all_cause_incidence() {
        let d = CompetingRisksData::new(vec![1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![1, 2, 1, 0, 2, 1, 0]).unwrap();
        let (a, b) = (CumulativeIncidence::fit(&d, 1).unwrap(), CumulativeIncidence::fit(&d, 2).unwrap());
        let km = crate::survival::KaplanMeier::fit(&d.time, &d.any_events()).unwrap();
        for t in [1.0, 2.0, 3.0, 4.5, 6.0] {
            assert!((a.value_at(t).0 + b.value_at(t).0 - (1.0 - km.survival_at(t))).abs() < 1e-15);
        }
        let e = a.estimate_at(4.0);
        assert!(e.lower < e.cif && e.cif < e.upper && e.lower > 0.0 && e.upper < 1.0);
    }
}
