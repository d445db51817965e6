//! Log-rank test comparing the survival of two or more groups.
//!
//! # Formula
//! At each distinct event time `t` with `n` at risk and `d` events (`n_g`, `d_g` in group `g`):
//! `E_g += d · n_g / n`, `V_gh += d (n − d)/(n − 1) · n_g/n · (δ_gh − n_h/n)` (hypergeometric
//! variance; no term when `n = 1`). With `O_g` the observed events, the statistic is
//! `χ² = (O − E)ᵀ V⁻¹ (O − E)` over the first `K − 1` groups, with `K − 1` degrees of freedom;
//! the p-value is the chi-square upper tail (statrs).
//!
//! # Assumptions
//! Unweighted (Mantel) log-rank; independent censoring; groups given per observation by any
//! ordered label (integer, string…). Groups are ordered by label and reported in that order.
//!
//! # Errors
//! Fewer than two groups ([`SurvivalError::TooFewGroups`]), no events, a singular variance matrix
//! (a group with nobody at risk at any event time).
//!
//! # References
//! Mantel N (1966) Cancer Chemother Rep 50:163–170. Peto R, Peto J (1972) JRSS A 135:185–207.
//! Same definition as lifelines `multivariate_logrank_test` and scikit-survival `compare_survival`.
use super::data::{check_len, check_survival};
use super::error::{Result, SurvivalError};
use super::linalg;
use super::sort::argsort_f64;
use statrs::distribution::{ChiSquared, ContinuousCDF};
use std::collections::BTreeMap;
use std::fmt::Display;

/// Per-group figures of a log-rank test.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LogRankGroup {
    /// Group label.
    pub group: String,
    /// Observations in the group.
    pub n: usize,
    /// Observed events.
    pub observed: f64,
    /// Expected events under the null hypothesis.
    pub expected: f64,
}

/// Result of a log-rank test.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LogRank {
    /// Chi-square statistic.
    pub statistic: f64,
    /// Degrees of freedom (groups − 1).
    pub df: usize,
    /// Upper-tail p-value.
    pub p_value: f64,
    /// Groups, ordered by label.
    pub groups: Vec<LogRankGroup>,
    /// Variance–covariance matrix of `O − E` (all groups, row-major `K × K`).
    pub variance: Vec<f64>,
}

/// Maps labels to dense group indices; returns the distinct labels (sorted) and the indices.
pub fn group_indices<G: Ord + Clone>(groups: &[G]) -> (Vec<G>, Vec<usize>) {
    let mut map: BTreeMap<G, usize> = BTreeMap::new();
    for g in groups {
        let len = map.len();
        map.entry(g.clone()).or_insert(len);
    }
    let labels: Vec<G> = map.keys().cloned().collect();
    let pos: BTreeMap<G, usize> = labels.iter().cloned().enumerate().map(|(i, g)| (g, i)).collect();
    let idx = groups.iter().map(|g| pos[g]).collect();
    (labels, idx)
}

/// Log-rank test of equal survival across the groups given by `groups` (one label per
/// observation).
pub fn logrank<G: Ord + Clone + Display>(time: &[f64], event: &[bool], groups: &[G]) -> Result<LogRank> {
    check_survival(time, event)?;
    check_len("groups", time.len(), groups.len())?;
    let (labels, gi) = group_indices(groups);
    let k = labels.len();
    if k < 2 {
        return Err(SurvivalError::TooFewGroups {
            found: k,
            detail: labels.first().map(|l| format!(" (every observation is in group '{l}')")).unwrap_or_default(),
        });
    }
    if !event.iter().any(|&e| e) {
        return Err(SurvivalError::AllCensored { n: time.len() });
    }
    let n = time.len();
    let order = argsort_f64(time);
    let mut at_risk = vec![0usize; k];
    for &g in &gi {
        at_risk[g] += 1;
    }
    let mut total = n;
    let mut observed = vec![0.0; k];
    let mut expected = vec![0.0; k];
    let mut var = vec![0.0; k * k];
    let mut d_g = vec![0usize; k];
    let mut leave = vec![0usize; k];
    let mut i = 0;
    while i < n {
        let t = time[order[i] as usize];
        let mut j = i;
        d_g.iter_mut().for_each(|x| *x = 0);
        leave.iter_mut().for_each(|x| *x = 0);
        let mut d = 0usize;
        while j < n && time[order[j] as usize] == t {
            let o = order[j] as usize;
            leave[gi[o]] += 1;
            if event[o] {
                d_g[gi[o]] += 1;
                d += 1;
            }
            j += 1;
        }
        if d > 0 {
            let (nf, df) = (total as f64, d as f64);
            let c = if total > 1 { df * (nf - df) / (nf - 1.0) } else { 0.0 };
            for a in 0..k {
                observed[a] += d_g[a] as f64;
                let pa = at_risk[a] as f64 / nf;
                expected[a] += df * pa;
                for b in 0..k {
                    let pb = at_risk[b] as f64 / nf;
                    var[a * k + b] += c * pa * (if a == b { 1.0 } else { 0.0 } - pb);
                }
            }
        }
        for a in 0..k {
            at_risk[a] -= leave[a];
        }
        total -= j - i;
        i = j;
    }
    let m = k - 1;
    let mut v = vec![0.0; m * m];
    for a in 0..m {
        for b in 0..m {
            v[a * m + b] = var[a * k + b];
        }
    }
    let diff: Vec<f64> = (0..m).map(|a| observed[a] - expected[a]).collect();
    let l = linalg::cholesky(&v, m).map_err(|j| SurvivalError::Singular {
        what: "log-rank variance matrix".into(),
        detail: format!(" (group '{}' contributes no variance: nobody at risk at any event time?)", labels[j]),
    })?;
    let sol = linalg::cholesky_solve(&l, m, &diff);
    let statistic: f64 = diff.iter().zip(&sol).map(|(a, b)| a * b).sum();
    let p_value = chi2_sf(statistic, m as f64)?;
    let mut counts = vec![0usize; k];
    for &g in &gi {
        counts[g] += 1;
    }
    Ok(LogRank {
        statistic,
        df: m,
        p_value,
        groups: (0..k)
            .map(|a| LogRankGroup {
                group: labels[a].to_string(),
                n: counts[a],
                observed: observed[a],
                expected: expected[a],
            })
            .collect(),
        variance: var,
    })
}

/// Upper tail of the chi-square distribution with `df` degrees of freedom.
pub fn chi2_sf(x: f64, df: f64) -> Result<f64> {
    let c = ChiSquared::new(df).map_err(|e| SurvivalError::InvalidParameter {
        name: "chi-square degrees of freedom".into(),
        expected: "> 0".into(),
        found: format!("{df} ({e})"),
    })?;
    Ok(if x <= 0.0 { 1.0 } else { c.sf(x) })
}
