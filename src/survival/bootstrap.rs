//! Nonparametric bootstrap: percentile confidence intervals for any statistic of the subjects,
//! and a paired bootstrap of the difference in Harrell's C between two risk scores.
//!
//! # Formula
//! Replicate `b` draws `n` subject indices with replacement from a ChaCha8 generator seeded
//! with `seed` on stream `b`, so replicate `b` is the same whatever the number of threads and
//! whichever thread runs it (replicates run in parallel with rayon and are collected in order).
//! Percentile CI: the `α/2` and `1 − α/2` quantiles (linear interpolation, numpy's default) of
//! the replicates that could be computed; `se` is their standard deviation (ddof = 1).
//! Paired difference `δ = C(a) − C(b)` on the same resample; two-sided p-value
//! `min(1, 2 · (1 + min(#{δ* ≤ 0}, #{δ* ≥ 0})) / (B + 1))` over the `B` replicates computed
//! ([`two_sided_p`]: the percentile-inversion p with the observed sample counted among the
//! replicates, Davison & Hinkley 1997 §4.4, so it is never 0).
//!
//! # Assumptions
//! Independent subjects. Replicates where the statistic fails (e.g. a resample without events)
//! are dropped and counted in `n_failed`.
//!
//! # Errors
//! `n_boot = 0`, a confidence level outside (0, 1), the statistic failing on the full sample,
//! every replicate failing.
//!
//! # References
//! Efron B, Tibshirani RJ (1993) *An Introduction to the Bootstrap*, ch. 13 and 16.
//! Davison AC, Hinkley DV (1997) *Bootstrap Methods and their Application*, §4.4.
use super::calibration::quantile_sorted;
use super::concordance::harrell;
use super::data::{check_finite, check_survival};
use super::error::{Result, SurvivalError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Bootstrap settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BootstrapOptions {
    /// Number of replicates (default 1000).
    pub n_boot: usize,
    /// Seed.
    pub seed: u64,
    /// Confidence level (default 0.95).
    pub confidence_level: f64,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        Self { n_boot: 1000, seed: 0, confidence_level: 0.95 }
    }
}

/// A bootstrap percentile interval for one statistic.
///
/// Serialised as `{estimate, lower, upper, se, n_boot, n_failed}` (a non-finite number as
/// `null`, read back as NaN; `se`, `n_boot`, `n_failed` may be absent when read).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BootstrapCi {
    /// The statistic on the full sample.
    #[serde(deserialize_with = "crate::util::f64_or_nan")]
    pub estimate: f64,
    /// Lower percentile limit.
    #[serde(default = "crate::util::nan", deserialize_with = "crate::util::f64_or_nan")]
    pub lower: f64,
    /// Upper percentile limit.
    #[serde(default = "crate::util::nan", deserialize_with = "crate::util::f64_or_nan")]
    pub upper: f64,
    /// Standard deviation of the replicates.
    #[serde(default = "crate::util::nan", deserialize_with = "crate::util::f64_or_nan")]
    pub se: f64,
    /// Replicates used.
    #[serde(default)]
    pub n_boot: usize,
    /// Replicates dropped because the statistic failed on them.
    #[serde(default)]
    pub n_failed: usize,
}

/// Paired bootstrap of a difference in Harrell's C.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PairedDifference {
    /// C of the first score.
    pub c_a: f64,
    /// C of the second score.
    pub c_b: f64,
    /// `c_a − c_b` with its interval.
    pub difference: BootstrapCi,
    /// Two-sided bootstrap p-value for no difference.
    pub p_value: f64,
}

/// The subject indices of replicate `replicate` for `n` subjects and `seed`.
pub fn resample_indices(n: usize, seed: u64, replicate: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(replicate);
    (0..n).map(|_| rng.gen_range(0..n)).collect()
}

fn check_options(o: &BootstrapOptions) -> Result<()> {
    if o.n_boot == 0 {
        return Err(SurvivalError::InvalidParameter {
            name: "bootstrap replicates".into(),
            expected: ">= 1".into(),
            found: "0".into(),
        });
    }
    // every replicate's statistics are kept: bound them before allocating
    let max = crate::bounds::EVAL_BOOTSTRAP.hi as usize;
    if o.n_boot > max {
        return Err(SurvivalError::InvalidParameter {
            name: "bootstrap replicates".into(),
            expected: format!("at most {max}"),
            found: o.n_boot.to_string(),
        });
    }
    if !(o.confidence_level > 0.0 && o.confidence_level < 1.0) {
        return Err(SurvivalError::InvalidParameter {
            name: "confidence level".into(),
            expected: "strictly between 0 and 1".into(),
            found: o.confidence_level.to_string(),
        });
    }
    Ok(())
}

/// Raw replicates of a vector-valued statistic: `statistic(indices)` for each replicate, in
/// replicate order (`None` where it failed).
pub fn replicates<F>(n: usize, options: &BootstrapOptions, statistic: F) -> Result<Vec<Option<Vec<f64>>>>
where
    F: Fn(&[usize]) -> Result<Vec<f64>> + Sync,
{
    check_options(options)?;
    Ok((0..options.n_boot as u64)
        .into_par_iter()
        .map(|b| statistic(&resample_indices(n, options.seed, b)).ok())
        .collect())
}

fn summarize(estimate: f64, values: &mut [f64], n_failed: usize, level: f64) -> BootstrapCi {
    values.sort_by(|a, b| a.total_cmp(b));
    let alpha = 1.0 - level;
    let m = values.len() as f64;
    let mean = values.iter().sum::<f64>() / m;
    let se = if values.len() > 1 {
        (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (m - 1.0)).sqrt()
    } else {
        f64::NAN
    };
    BootstrapCi {
        estimate,
        lower: quantile_sorted(values, alpha / 2.0),
        upper: quantile_sorted(values, 1.0 - alpha / 2.0),
        se,
        n_boot: values.len(),
        n_failed,
    }
}

/// Percentile intervals for each component of a vector-valued statistic of `n` subjects.
/// `statistic` receives the (resampled) subject indices; on `0..n` it gives the estimates.
pub fn bootstrap<F>(n: usize, options: &BootstrapOptions, statistic: F) -> Result<Vec<BootstrapCi>>
where
    F: Fn(&[usize]) -> Result<Vec<f64>> + Sync,
{
    check_options(options)?;
    let all: Vec<usize> = (0..n).collect();
    let est = statistic(&all)?;
    let reps = replicates(n, options, &statistic)?;
    let ok: Vec<&Vec<f64>> = reps.iter().flatten().filter(|r| r.len() == est.len()).collect();
    let n_failed = reps.len() - ok.len();
    if ok.is_empty() {
        return Err(SurvivalError::InvalidParameter {
            name: "bootstrap".into(),
            expected: "at least one replicate on which the statistic can be computed".into(),
            found: format!("all {} replicates failed", reps.len()),
        });
    }
    Ok((0..est.len())
        .map(|k| {
            let mut v: Vec<f64> = ok.iter().map(|r| r[k]).collect();
            summarize(est[k], &mut v, n_failed, options.confidence_level)
        })
        .collect())
}

/// Percentile interval of Harrell's C.
pub fn bootstrap_harrell(
    time: &[f64],
    event: &[bool],
    risk: &[f64],
    options: &BootstrapOptions,
) -> Result<BootstrapCi> {
    check_survival(time, event)?;
    check_finite("risk score", risk, time.len())?;
    let r = bootstrap(time.len(), options, |idx| {
        let (t, e, r) = gather3(time, event, risk, idx);
        harrell(&t, &e, &r).map(|c| vec![c.harrell])
    })?;
    Ok(r.into_iter().next().unwrap_or(BootstrapCi {
        estimate: f64::NAN,
        lower: f64::NAN,
        upper: f64::NAN,
        se: f64::NAN,
        n_boot: 0,
        n_failed: 0,
    }))
}

fn gather3(time: &[f64], event: &[bool], risk: &[f64], idx: &[usize]) -> (Vec<f64>, Vec<bool>, Vec<f64>) {
    (
        idx.iter().map(|&i| time[i]).collect(),
        idx.iter().map(|&i| event[i]).collect(),
        idx.iter().map(|&i| risk[i]).collect(),
    )
}

/// Two-sided bootstrap p-value for "no difference" from the replicated differences `δ*`:
/// `min(1, 2 · (1 + min(#{δ* ≤ 0}, #{δ* ≥ 0})) / (B + 1))`; NaN without replicates.
pub fn two_sided_p(diffs: &[f64]) -> f64 {
    if diffs.is_empty() {
        return f64::NAN;
    }
    let le = diffs.iter().filter(|&&d| d <= 0.0).count() as f64;
    let ge = diffs.iter().filter(|&&d| d >= 0.0).count() as f64;
    (2.0 * (1.0 + le.min(ge)) / (diffs.len() as f64 + 1.0)).min(1.0)
}

/// Paired bootstrap of `C(risk_a) − C(risk_b)` on the same subjects.
pub fn paired_concordance_difference(
    time: &[f64],
    event: &[bool],
    risk_a: &[f64],
    risk_b: &[f64],
    options: &BootstrapOptions,
) -> Result<PairedDifference> {
    check_survival(time, event)?;
    check_finite("risk score a", risk_a, time.len())?;
    check_finite("risk score b", risk_b, time.len())?;
    let stat = |idx: &[usize]| -> Result<Vec<f64>> {
        let (t, e, a) = gather3(time, event, risk_a, idx);
        let b: Vec<f64> = idx.iter().map(|&i| risk_b[i]).collect();
        let ca = harrell(&t, &e, &a)?.harrell;
        let cb = harrell(&t, &e, &b)?.harrell;
        Ok(vec![ca, cb, ca - cb])
    };
    let all: Vec<usize> = (0..time.len()).collect();
    let est = stat(&all)?;
    let reps = replicates(time.len(), options, stat)?;
    let mut diffs: Vec<f64> = reps.iter().flatten().map(|r| r[2]).collect();
    if diffs.is_empty() {
        return Err(SurvivalError::InvalidParameter {
            name: "bootstrap".into(),
            expected: "at least one replicate with comparable pairs".into(),
            found: format!("all {} replicates failed", reps.len()),
        });
    }
    let n_failed = reps.len() - diffs.len();
    let p_value = two_sided_p(&diffs);
    let difference = summarize(est[2], &mut diffs, n_failed, options.confidence_level);
    Ok(PairedDifference { c_a: est[0], c_b: est[1], difference, p_value })
}
