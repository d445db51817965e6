//! Kaplan–Meier survival with Greenwood standard errors and log(−log) confidence intervals,
//! the Nelson–Aalen cumulative hazard, numbers at risk, the median, and the Kaplan–Meier
//! estimate of the *censoring* distribution `G` used by the IPCW metrics (Uno's C, AUC, Brier).
//!
//! # Formula
//! With distinct observed times `t_k`, `n_k` subjects at risk (`T ≥ t_k`), `d_k` events and `c_k`
//! censorings at `t_k`:
//! - `S(t) = Π_{t_k ≤ t} (1 − d_k / n_k)`
//! - Greenwood: `se(t) = S(t) · sqrt(Σ_{t_k ≤ t} d_k / (n_k (n_k − d_k)))`
//! - log(−log) ("exponential Greenwood", lifelines' default) CI:
//!   `exp(−exp(log(−log S) ∓ z · sqrt(Σ) / log S))`, `z = Φ⁻¹(1 − α/2)`
//! - Nelson–Aalen: `H(t) = Σ_{t_k ≤ t} d_k / n_k`, variance `Σ d_k / n_k²` (Aalen); no tie
//!   smoothing (lifelines' `nelson_aalen_smoothing=True` gives slightly different values with ties)
//! - median: the smallest `t_k` with `S(t_k) ≤ 0.5` (lifelines' convention), `None` if not reached
//! - censoring distribution: `G(t) = Π_{t_k ≤ t} (1 − c_k / (n_k − d_k))` — at a tied time
//!   events leave the risk set before censorings (scikit-survival's `CensoringDistributionEstimator`).
//!
//! All step functions are right-continuous: the value at `t` includes the jump at `t`.
//!
//! # Assumptions
//! Independent right censoring; times ≥ 0 (a time of 0 is allowed, an event at 0 drops `S(0)`).
//!
//! # Errors
//! Empty input, mismatched lengths, negative/NaN times ([`SurvivalError`]). At `S = 0` the
//! Greenwood term is infinite: the step reports `se = 0` and `lower = upper = 0` there.
//!
//! # References
//! Kaplan EL, Meier P (1958) JASA 53:457–481. Greenwood M (1926). Kalbfleisch JD, Prentice RL
//! (2002) *The Statistical Analysis of Failure Time Data*, §1.4 (log−log interval).
//! Nelson W (1972) Technometrics 14:945–966; Aalen O (1978) Ann Stat 6:701–726.
use super::data::check_survival;
use super::error::{Result, SurvivalError};
use super::sort::msd_sort;
use statrs::distribution::{ContinuousCDF, Normal};

/// Distinct times with their counts, ascending.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventTable {
    pub times: Vec<f64>,
    pub at_risk: Vec<usize>,
    pub events: Vec<usize>,
    pub censored: Vec<usize>,
}

/// Calls `f(time, at_risk, events, censored)` for each distinct time in ascending order
/// (inputs already validated: times finite and ≥ 0).
pub(crate) fn scan_times(time: &[f64], event: &[bool], mut f: impl FnMut(f64, usize, usize, usize)) {
    let n = time.len();
    // Non-negative f64 bit patterns order like the numbers and leave the top bit free, so
    // (bits << 1) | event is an order-preserving key that carries the event flag.
    let mut keys: Vec<u64> = time.iter().zip(event).map(|(&t, &e)| ((t + 0.0).to_bits() << 1) | e as u64).collect();
    let mut buf = vec![0u64; n];
    msd_sort(&mut keys, &mut buf, &|k: &u64| *k);
    drop(buf);
    let mut i = 0;
    while i < n {
        let k = keys[i] >> 1;
        let mut j = i;
        let mut d = 0;
        while j < n && keys[j] >> 1 == k {
            d += (keys[j] & 1) as usize;
            j += 1;
        }
        f(f64::from_bits(k), n - i, d, j - i - d);
        i = j;
    }
}

/// Builds the table of distinct times.
pub(crate) fn event_table(time: &[f64], event: &[bool]) -> EventTable {
    let mut tab = EventTable::default();
    scan_times(time, event, |t, r, d, c| {
        tab.times.push(t);
        tab.at_risk.push(r);
        tab.events.push(d);
        tab.censored.push(c);
    });
    tab
}

/// Two-sided normal quantile `Φ⁻¹(1 − α/2)` for a confidence level `1 − α`.
pub fn normal_quantile(level: f64) -> Result<f64> {
    if !(level > 0.0 && level < 1.0) {
        return Err(SurvivalError::InvalidParameter {
            name: "confidence level".into(),
            expected: "strictly between 0 and 1".into(),
            found: level.to_string(),
        });
    }
    let n = Normal::new(0.0, 1.0).map_err(|e| SurvivalError::InvalidParameter {
        name: "normal distribution".into(),
        expected: "valid".into(),
        found: e.to_string(),
    })?;
    Ok(n.inverse_cdf(1.0 - (1.0 - level) / 2.0))
}

/// The log(−log) confidence interval of a survival probability with Greenwood sum `gsum`.
pub(crate) fn loglog_ci(s: f64, gsum: f64, z: f64) -> (f64, f64) {
    if s >= 1.0 {
        return (1.0, 1.0);
    }
    if s <= 0.0 || !gsum.is_finite() {
        return (0.0, 0.0);
    }
    let ls = s.ln();
    let v = (-ls).ln();
    let h = z * gsum.sqrt() / ls;
    ((-(v - h).exp()).exp(), (-(v + h).exp()).exp())
}

/// One step of the Kaplan–Meier / Nelson–Aalen estimates, at a distinct observed time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KmStep {
    /// The time.
    pub time: f64,
    /// Subjects at risk just before `time` (`T ≥ time`).
    pub at_risk: usize,
    /// Events at `time`.
    pub events: usize,
    /// Censorings at `time`.
    pub censored: usize,
    /// `S(time)`.
    pub survival: f64,
    /// Greenwood standard error of `S(time)`.
    pub se: f64,
    /// Greenwood sum `Σ d/(n(n−d))` up to `time` (`inf` once S = 0).
    pub greenwood_sum: f64,
    /// Nelson–Aalen cumulative hazard `H(time)`.
    pub cumulative_hazard: f64,
    /// Standard error of `H(time)` (Aalen variance).
    pub cumulative_hazard_se: f64,
}

/// The estimate at an arbitrary time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KmEstimate {
    /// The time asked for.
    pub time: f64,
    /// `S(time)`.
    pub survival: f64,
    /// Greenwood standard error.
    pub se: f64,
    /// Lower confidence limit.
    pub lower: f64,
    /// Upper confidence limit.
    pub upper: f64,
    /// Number at risk at `time` (`T ≥ time`), for at-risk tables.
    pub at_risk: usize,
    /// Nelson–Aalen cumulative hazard.
    pub cumulative_hazard: f64,
}

/// A point of the survival curve for plotting (a right-continuous step function starting at
/// `(0, 1)`); `censored` > 0 marks censoring ticks.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KmCurvePoint {
    /// Time.
    pub time: f64,
    /// Survival from this time until the next point.
    pub survival: f64,
    /// Lower confidence limit.
    pub lower: f64,
    /// Upper confidence limit.
    pub upper: f64,
    /// Censorings at this time.
    pub censored: usize,
}

/// A fitted Kaplan–Meier estimator (with Nelson–Aalen alongside).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KaplanMeier {
    /// Number of observations.
    pub n: usize,
    /// Number of events.
    pub n_events: usize,
    /// Confidence level of the intervals (default 0.95).
    pub confidence_level: f64,
    /// The normal quantile of that level (1.96 for 95%).
    pub z: f64,
    /// One step per distinct observed time (events or censorings), ascending.
    pub steps: Vec<KmStep>,
}

impl KaplanMeier {
    /// Fits with 95% confidence intervals.
    pub fn fit(time: &[f64], event: &[bool]) -> Result<Self> {
        Self::fit_with_level(time, event, 0.95)
    }

    /// Fits with confidence intervals at `level` (e.g. 0.95).
    pub fn fit_with_level(time: &[f64], event: &[bool], level: f64) -> Result<Self> {
        check_survival(time, event)?;
        let z = normal_quantile(level)?;
        let mut steps: Vec<KmStep> = Vec::new();
        let (mut s, mut gsum, mut h, mut hvar) = (1.0f64, 0.0f64, 0.0f64, 0.0f64);
        scan_times(time, event, |t, at_risk, events, censored| {
            let (n, d) = (at_risk as f64, events as f64);
            if events > 0 {
                s *= 1.0 - d / n;
                gsum += if n > d { d / (n * (n - d)) } else { f64::INFINITY };
                h += d / n;
                hvar += d / (n * n);
            }
            // Confidence limits are computed on demand (`ci`, `estimate_at`, `curve`): they
            // cost a few logarithms and exponentials per step.
            let se = if s > 0.0 { s * gsum.sqrt() } else { 0.0 };
            steps.push(KmStep {
                time: t,
                at_risk,
                events,
                censored,
                survival: s,
                se,
                greenwood_sum: gsum,
                cumulative_hazard: h,
                cumulative_hazard_se: hvar.sqrt(),
            });
        });
        Ok(Self { n: time.len(), n_events: event.iter().filter(|&&e| e).count(), confidence_level: level, z, steps })
    }

    /// Index of the last step at or before `t`.
    fn step_at(&self, t: f64) -> Option<&KmStep> {
        let idx = self.steps.partition_point(|s| s.time <= t);
        if idx == 0 {
            None
        } else {
            Some(&self.steps[idx - 1])
        }
    }

    /// `S(t)` (right-continuous; 1 before the first event).
    pub fn survival_at(&self, t: f64) -> f64 {
        self.step_at(t).map_or(1.0, |s| s.survival)
    }

    /// Nelson–Aalen `H(t)`.
    pub fn cumulative_hazard_at(&self, t: f64) -> f64 {
        self.step_at(t).map_or(0.0, |s| s.cumulative_hazard)
    }

    /// Number at risk at `t`: subjects with `T ≥ t`.
    pub fn at_risk_at(&self, t: f64) -> usize {
        let idx = self.steps.partition_point(|s| s.time < t);
        self.steps.get(idx).map_or(0, |s| s.at_risk)
    }

    /// Survival, Greenwood SE, CI and number at risk at `t`.
    pub fn estimate_at(&self, t: f64) -> KmEstimate {
        let at_risk = self.at_risk_at(t);
        match self.step_at(t) {
            None => {
                KmEstimate { time: t, survival: 1.0, se: 0.0, lower: 1.0, upper: 1.0, at_risk, cumulative_hazard: 0.0 }
            }
            Some(s) => KmEstimate {
                time: t,
                survival: s.survival,
                se: s.se,
                lower: self.ci(s).0,
                upper: self.ci(s).1,
                at_risk,
                cumulative_hazard: s.cumulative_hazard,
            },
        }
    }

    /// Median survival time: the first time with `S ≤ 0.5`; `None` when not reached.
    pub fn median(&self) -> Option<f64> {
        self.steps.iter().find(|s| s.survival <= 0.5).map(|s| s.time)
    }

    /// The log(−log) confidence interval `(lower, upper)` of a step.
    pub fn ci(&self, step: &KmStep) -> (f64, f64) {
        loglog_ci(step.survival, step.greenwood_sum, self.z)
    }

    /// Points of the survival curve for plotting: `(0, 1)` and then one point per distinct time.
    pub fn curve(&self) -> Vec<KmCurvePoint> {
        let mut out: Vec<KmCurvePoint> = Vec::with_capacity(self.steps.len() + 1);
        out.push(KmCurvePoint { time: 0.0, survival: 1.0, lower: 1.0, upper: 1.0, censored: 0 });
        for s in &self.steps {
            let (lower, upper) = match out.last() {
                Some(p) if s.events == 0 => (p.lower, p.upper),
                _ => self.ci(s),
            };
            out.push(KmCurvePoint { time: s.time, survival: s.survival, lower, upper, censored: s.censored });
        }
        out
    }

    /// The steps at which at least one event happened.
    pub fn event_steps(&self) -> impl Iterator<Item = &KmStep> {
        self.steps.iter().filter(|s| s.events > 0)
    }
}

/// Kaplan–Meier estimate of the censoring distribution `G(t) = P(C > t)`, for inverse
/// probability of censoring weights.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CensoringKm {
    /// Distinct observed times, ascending.
    pub times: Vec<f64>,
    /// `G` at those times (right-continuous).
    pub g: Vec<f64>,
}

impl CensoringKm {
    /// Fits `G` (events leave the risk set before censorings at a tied time).
    pub fn fit(time: &[f64], event: &[bool]) -> Result<Self> {
        check_survival(time, event)?;
        let tab = event_table(time, event);
        let mut g = 1.0;
        let mut gs = Vec::with_capacity(tab.times.len());
        for k in 0..tab.times.len() {
            let c = tab.censored[k];
            let r = tab.at_risk[k] - tab.events[k];
            if c > 0 && r > 0 {
                g *= 1.0 - c as f64 / r as f64;
            }
            gs.push(g);
        }
        Ok(Self { times: tab.times, g: gs })
    }

    /// `G(t)` (right-continuous; 1 before the first time).
    pub fn g_at(&self, t: f64) -> f64 {
        let idx = self.times.partition_point(|&s| s <= t);
        if idx == 0 {
            1.0
        } else {
            self.g[idx - 1]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_example_by_hand() {
        // times 1,2,2,3(c),4 ; events 1,1,0,0,1
        let t = [1.0, 2.0, 2.0, 3.0, 4.0];
        let e = [true, true, false, false, true];
        let km = KaplanMeier::fit(&t, &e).unwrap();
        assert_eq!(km.steps.len(), 4);
        assert!((km.survival_at(1.0) - 0.8).abs() < 1e-15);
        assert!((km.survival_at(2.5) - 0.8 * 0.75).abs() < 1e-15);
        assert_eq!(km.survival_at(0.5), 1.0);
        assert_eq!(km.survival_at(4.0), 0.0);
        assert_eq!(km.at_risk_at(2.0), 4);
        assert_eq!(km.at_risk_at(2.1), 2);
        assert_eq!(km.at_risk_at(5.0), 0);
        assert_eq!(km.median(), Some(4.0));
        assert!((km.cumulative_hazard_at(2.0) - (0.2 + 0.25)).abs() < 1e-15);
        let g = CensoringKm::fit(&t, &e).unwrap();
        // at 2: n=4, d=1, c=1 -> 1 - 1/3; at 3: n=2, d=0, c=1 -> 1/2
        assert!((g.g_at(2.0) - 2.0 / 3.0).abs() < 1e-15);
        assert!((g.g_at(3.0) - 1.0 / 3.0).abs() < 1e-15);
    }
}
