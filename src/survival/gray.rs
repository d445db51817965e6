//! Gray's test of equal cumulative incidence of one cause across K groups (the `Tests` of R's
//! `cmprsk::cuminc`, unstratified).
//!
//! # Formula
//! For group `k` let `F_k` be its cumulative incidence of the cause, `S_k` its all-cause
//! Kaplan–Meier, `Y_k(t)` its number at risk, and `R_k(t) = Y_k(t)·(1 − F_k(t−)) / S_k(t−)` the
//! number "at risk" for the subdistribution hazard. The score of group `k` is
//! `s_k = ∫ (1 − F(t−))^ρ · [dN_{1k}(t) − R_k(t) · dN_1(t) / Σ_r R_r(t)]`
//! (`N_{1k}` counts events of the cause in group `k`, `N_1 = Σ_k N_{1k}`, `F` the pooled
//! incidence `F(t) = F(t−) + dN_1(t) / Σ_r Y_r(t)/S_r(t−)`). The scores of the first `K − 1`
//! groups have the covariance `V` of Gray (1988, §2), estimated from the counting-process
//! martingale representation of each group's `F_k` with a tie correction `1 − (d − 1)/(n − 1)`
//! (cmprsk's Fortran `crst`, reproduced step by step). The statistic `sᵀ V⁻¹ s` is referred to
//! χ² with `K − 1` degrees of freedom. `ρ = 0` (the default, cuminc's) weights all times equally;
//! `ρ > 0` emphasises early differences. The statistic does not depend on which group is left
//! out of `s`.
//!
//! # Assumptions
//! Independent censoring within groups; every observation belongs to one group; no strata.
//!
//! # Errors
//! Fewer than two groups, lengths that differ, cause 0, a singular `V` (e.g. no event of the
//! cause in some comparison), `ρ` negative or not finite.
//!
//! # References
//! Gray RJ (1988) A class of K-sample tests for comparing the cumulative incidence of a competing
//! risk. Ann Stat 16:1141–1154. Gray RJ, cmprsk R package (`cuminc`, Fortran `crstm`/`crst`).
use super::competing::CompetingRisksData;
use super::data::check_len;
use super::error::{Result, SurvivalError};
use super::linalg;
use super::logrank::{chi2_sf, group_indices};
use std::fmt::Display;

/// Result of Gray's test.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GrayTest {
    /// The cause compared.
    pub cause: u32,
    /// Weight exponent ρ.
    pub rho: f64,
    /// `sᵀ V⁻¹ s`.
    pub statistic: f64,
    /// Degrees of freedom (`K − 1`).
    pub df: usize,
    /// Upper-tail χ² p-value.
    pub p_value: f64,
    /// Group labels (sorted); the scores belong to all but the last.
    pub groups: Vec<String>,
    /// Scores of the first `K − 1` groups.
    pub scores: Vec<f64>,
    /// Their covariance, row-major `(K − 1) × (K − 1)`.
    pub variance: Vec<f64>,
}

/// Gray's test of equal cumulative incidence of `cause` across the groups given by `groups`
/// (one label per observation), with weight exponent `rho` (cuminc's default is 0).
pub fn gray_test<G: Ord + Clone + Display>(
    data: &CompetingRisksData,
    groups: &[G],
    cause: u32,
    rho: f64,
) -> Result<GrayTest> {
    data.check_cause(cause)?;
    check_len("groups", data.len(), groups.len())?;
    if !(rho.is_finite() && rho >= 0.0) {
        return Err(SurvivalError::InvalidParameter {
            name: "rho".into(),
            expected: "a finite number >= 0".into(),
            found: format!("{rho}"),
        });
    }
    let (labels, gi) = group_indices(groups);
    let ng = labels.len();
    if ng < 2 {
        return Err(SurvivalError::TooFewGroups {
            found: ng,
            detail: labels.first().map(|l| format!(" (only '{l}')")).unwrap_or_default(),
        });
    }
    let (s, v) = scores_and_variance(data, &gi, ng, cause, rho);
    let m = ng - 1;
    let l = linalg::cholesky(&v, m).map_err(|j| SurvivalError::Singular {
        what: "covariance of Gray's scores".into(),
        detail: format!(" (at group '{}'; does every compared group have events of cause {cause}?)", labels[j]),
    })?;
    let x = linalg::cholesky_solve(&l, m, &s);
    let statistic: f64 = s.iter().zip(&x).map(|(a, b)| a * b).sum();
    Ok(GrayTest {
        cause,
        rho,
        statistic,
        df: m,
        p_value: chi2_sf(statistic, m as f64)?,
        groups: labels.iter().map(|g| g.to_string()).collect(),
        scores: s,
        variance: v,
    })
}

/// Scores of the first `ng − 1` groups and their covariance (row-major), one pass over the
/// distinct times.
fn scores_and_variance(
    data: &CompetingRisksData,
    gi: &[usize],
    ng: usize,
    cause: u32,
    rho: f64,
) -> (Vec<f64>, Vec<f64>) {
    let m = ng - 1;
    let order = data.order();
    let n = order.len();
    let mut rs = vec![0usize; ng];
    for &g in gi {
        rs[g] += 1;
    }
    let (mut f1m, mut f1) = (vec![0.0; ng], vec![0.0; ng]);
    let (mut skmm, mut skm) = (vec![1.0; ng], vec![1.0; ng]);
    let mut v3 = vec![0.0; ng];
    let mut v2 = vec![0.0; m * ng];
    let mut c = vec![0.0; ng * ng];
    let mut a = vec![0.0; ng * ng];
    let mut s = vec![0.0; m];
    let mut v = vec![0.0; m * m];
    let mut fm = 0.0_f64;
    let mut i = 0;
    while i < n {
        let t = data.time[order[i]];
        let mut j = i;
        // per group: censored, events of the cause, events of other causes
        let mut d = vec![[0usize; 3]; ng];
        while j < n && data.time[order[j]] == t {
            let o = order[j];
            let kind = match data.status[o] {
                0 => 0,
                x if x == cause => 1,
                _ => 2,
            };
            d[gi[o]][kind] += 1;
            j += 1;
        }
        let nd1: usize = d.iter().map(|x| x[1]).sum();
        let nd2: usize = d.iter().map(|x| x[2]).sum();
        let mut f = fm;
        if nd1 + nd2 > 0 {
            let (mut tr, mut tq) = (0.0, 0.0);
            for k in 0..ng {
                if rs[k] == 0 {
                    continue;
                }
                let r = rs[k] as f64;
                skm[k] = skmm[k] * (r - (d[k][1] + d[k][2]) as f64) / r;
                f1[k] = f1m[k] + skmm[k] * d[k][1] as f64 / r;
                tr += r / skmm[k];
                tq += r * (1.0 - f1m[k]) / skmm[k];
            }
            f = fm + nd1 as f64 / tr;
            let fb = (1.0 - fm).powf(rho);
            let nd1f = nd1 as f64;
            a.iter_mut().for_each(|x| *x = 0.0);
            for p in 0..ng {
                if rs[p] == 0 {
                    continue;
                }
                let t1 = rs[p] as f64 / skmm[p];
                a[p * ng + p] = fb * t1 * (1.0 - t1 / tr);
                c[p * ng + p] += a[p * ng + p] * nd1f / (tr * (1.0 - fm));
                for q in (p + 1)..ng {
                    if rs[q] == 0 {
                        continue;
                    }
                    a[p * ng + q] = -fb * t1 * rs[q] as f64 / (skmm[q] * tr);
                    c[p * ng + q] += a[p * ng + q] * nd1f / (tr * (1.0 - fm));
                }
            }
            for p in 1..ng {
                for q in 0..p {
                    a[p * ng + q] = a[q * ng + p];
                    c[p * ng + q] = c[q * ng + p];
                }
            }
            for p in 0..m {
                if rs[p] > 0 {
                    s[p] += fb * (d[p][1] as f64 - nd1f * rs[p] as f64 * (1.0 - f1m[p]) / (skmm[p] * tq));
                }
            }
            if nd1 > 0 {
                for k in 0..ng {
                    if rs[k] == 0 {
                        continue;
                    }
                    let t4 = if skm[k] > 0.0 { 1.0 - (1.0 - f) / skm[k] } else { 1.0 };
                    let t5 = if nd1 > 1 { 1.0 - (nd1f - 1.0) / (tr * skmm[k] - 1.0) } else { 1.0 };
                    let t3 = t5 * skmm[k] * nd1f / (tr * rs[k] as f64);
                    v3[k] += t4 * t4 * t3;
                    for p in 0..m {
                        let t1 = a[p * ng + k] - t4 * c[p * ng + k];
                        v2[p * ng + k] += t1 * t4 * t3;
                        for q in 0..=p {
                            let t2 = a[q * ng + k] - t4 * c[q * ng + k];
                            v[p * m + q] += t1 * t2 * t3;
                        }
                    }
                }
            }
            if nd2 > 0 {
                for k in 0..ng {
                    if skm[k] <= 0.0 || d[k][2] == 0 {
                        continue;
                    }
                    let t4 = (1.0 - f) / skm[k];
                    let (d2, r) = (d[k][2] as f64, rs[k] as f64);
                    let t5 = if d[k][2] > 1 { 1.0 - (d2 - 1.0) / (r - 1.0) } else { 1.0 };
                    let t3 = t5 * skmm[k] * skmm[k] * d2 / (r * r);
                    v3[k] += t4 * t4 * t3;
                    for p in 0..m {
                        let t1 = t4 * c[p * ng + k];
                        v2[p * ng + k] -= t1 * t4 * t3;
                        for q in 0..=p {
                            let t2 = t4 * c[q * ng + k];
                            v[p * m + q] += t1 * t2 * t3;
                        }
                    }
                }
            }
        }
        for &o in &order[i..j] {
            rs[gi[o]] -= 1;
        }
        fm = f;
        f1m.copy_from_slice(&f1);
        skmm.copy_from_slice(&skm);
        i = j;
    }
    for p in 0..m {
        for q in 0..=p {
            for k in 0..ng {
                v[p * m + q] += c[p * ng + k] * c[q * ng + k] * v3[k]
                    + c[p * ng + k] * v2[q * ng + k]
                    + c[q * ng + k] * v2[p * ng + k];
            }
            v[q * m + p] = v[p * m + q];
        }
    }
    (s, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_symmetry() {
        let d = CompetingRisksData::new(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], vec![1, 2, 1, 0, 1, 1, 2, 0])
            .unwrap();
        let g = ["a", "a", "a", "a", "b", "b", "b", "b"];
        assert!(matches!(gray_test(&d, &g[..4], 1, 0.0), Err(SurvivalError::LengthMismatch { .. })));
        assert!(matches!(gray_test(&d, &["a"; 8], 1, 0.0), Err(SurvivalError::TooFewGroups { .. })));
        // relabelling the groups (so the other one is left out) leaves the statistic unchanged
        let r1 = gray_test(&d, &g, 1, 0.0).unwrap();
        let h = ["z", "z", "z", "z", "b", "b", "b", "b"];
        let r2 = gray_test(&d, &h, 1, 0.0).unwrap();
        assert!((r1.statistic - r2.statistic).abs() < 1e-12 && r1.statistic > 0.0);
        assert!((r1.scores[0] + r2.scores[0]).abs() < 1e-12);
    }
}
