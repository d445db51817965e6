//! Split-aware uncertainty of cross-validated metrics: the spread of each metric across CV
//! repeats, intervals from the whole-procedure bootstrap replicates of [`crate::model::refit`],
//! the paired comparison over those replicates, and Holm's correction of exploratory
//! comparisons.
//!
//! # Formula
//! - Spread across repeats: the SD (ddof = 1; NaN for one repeat), minimum and maximum of the
//!   metric computed on all patients within each repeat ([`Spread`]).
//! - Replicate metrics: on replicate `b`'s out-of-fold rows (every drawn copy a subject) the
//!   same estimators as the point estimate — Harrell's C, Uno's C at τ, AUC(t), Brier(t) with
//!   `Ŝ(t) = exp(−H₀(t)·e^{risk})` from the replicate's fold baseline, and the integrated Brier
//!   score on the replicate's own grid ([`super::evaluation::ibs_grid`]).
//! - Interval ([`refit_interval`]): `θ̂ ± z_{1−α/2} · SD_b(θ*_b)`, centred on the point estimate
//!   (the mean over repeats), with the SD over the replicates where the metric could be
//!   computed, limits clamped to the metric's range (`[0, 1]`; `[−1, 1]` for ΔC). The whole-procedure bootstrap distribution is shifted (a resample holds ~63% of
//!   distinct patients, so its models are a little weaker); its spread, not its location, is
//!   used.
//! - Paired comparison ([`paired_refit`]): `Δ*_b = θ*_{arm,b} − θ*_{ref,b}` on the same
//!   replicate (same patients, same split); interval `Δ̂ ± z · SD(Δ*)`; two-sided p-value from
//!   the centred replicates, `min(1, (1 + #{|Δ*_b − mean(Δ*)| ≥ |Δ̂|}) / (B + 1))`.
//! - Holm ([`holm`]): sorted `p_(1) ≤ … ≤ p_(m)`, `p̃_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j))`
//!   (R's `p.adjust(p, "holm")`); NaN p-values are left NaN and not counted in `m`.
//!
//! # Assumptions
//! Replicates of two arms with the same index hold the same patients and copies (train seeds
//! them by the spec seed alone); this is checked.
//!
//! # Errors
//! [`EvaluationError::Inconsistent`] when two arms' replicate `b` differ in patients, copies or
//! outcomes, or a row's fold has no baseline.
//!
//! # References
//! Bates S, Hastie T, Tibshirani R (2024) Cross-validation: what does it estimate and how well
//! does it do it? JASA 119:1434–1445. Efron B, Tibshirani RJ (1993) *An Introduction to the
//! Bootstrap*, ch. 16 (centred bootstrap tests). Holm S (1979) A simple sequentially rejective
//! multiple test procedure. Scand J Stat 6:65–70.
use super::evaluation::{ibs_grid, EvaluationError};
use crate::contracts::metrics::Spread;
use crate::contracts::refit::Refit;
use crate::survival::{brier_score, cumulative_dynamic_auc, harrell, harrell_and_uno, BootstrapCi};
use rayon::prelude::*;
use statrs::distribution::{ContinuousCDF, Normal};
use std::collections::BTreeMap;

type Result<T> = std::result::Result<T, EvaluationError>;

/// SD, minimum and maximum of a metric over repeats (NaN entries ignored).
pub fn spread(values: &[f64]) -> Spread {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let m = v.len() as f64;
    let mean = v.iter().sum::<f64>() / m;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (m - 1.0)).sqrt()
    } else {
        f64::NAN
    };
    Spread { sd, min: v.iter().copied().fold(f64::NAN, f64::min), max: v.iter().copied().fold(f64::NAN, f64::max) }
}

/// Every metric of one replicate (NaN where it could not be computed).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicateMetrics {
    /// 0-based replicate.
    pub replicate: usize,
    /// `(patient, copy, time, event)` of each row, to check pairing.
    pub key: Vec<(String, usize, f64, bool)>,
    /// Harrell's C.
    pub harrell: f64,
    /// Uno's C at τ.
    pub uno: f64,
    /// AUC per horizon.
    pub auc: Vec<f64>,
    /// Brier score per horizon.
    pub brier: Vec<f64>,
    /// Integrated Brier score up to τ.
    pub ibs: f64,
}

fn nan_on_err<E>(r: std::result::Result<f64, E>) -> f64 {
    r.unwrap_or(f64::NAN)
}

/// The metrics of every replicate of an arm, in replicate order (replicates in parallel).
pub fn replicate_metrics(arm: &str, refit: &Refit, horizons: &[f64]) -> Result<Vec<ReplicateMetrics>> {
    let mut by: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, r) in refit.rows.iter().enumerate() {
        by.entry(r.replicate).or_default().push(i);
        if !refit.baselines.contains_key(&(r.replicate, r.fold)) {
            return Err(EvaluationError::Inconsistent {
                arm: arm.to_string(),
                msg: format!("refit replicate {} fold {} has no baseline", r.replicate, r.fold),
            });
        }
    }
    let tau = horizons[horizons.len() - 1];
    let groups: Vec<(usize, Vec<usize>)> = by.into_iter().collect();
    Ok(groups
        .par_iter()
        .map(|(b, idx)| {
            let rows: Vec<_> = idx.iter().map(|&i| &refit.rows[i]).collect();
            let time: Vec<f64> = rows.iter().map(|r| r.time).collect();
            let event: Vec<bool> = rows.iter().map(|r| r.event).collect();
            let risk: Vec<f64> = rows.iter().map(|r| r.risk).collect();
            let surv = |t: f64| -> Vec<f64> {
                rows.iter().map(|r| refit.baselines[&(r.replicate, r.fold)].survival(r.risk, t)).collect()
            };
            let harrell_c = nan_on_err(harrell(&time, &event, &risk).map(|c| c.harrell));
            let uno = nan_on_err(harrell_and_uno(&time, &event, &risk, Some(tau)).map(|c| c.uno.unwrap_or(f64::NAN)));
            let auc = horizons
                .iter()
                .map(|&h| nan_on_err(cumulative_dynamic_auc(&time, &event, &risk, &[h]).map(|a| a.auc[0])))
                .collect();
            let brier = horizons
                .iter()
                .map(|&h| nan_on_err(brier_score(&time, &event, &[surv(h)], &[h]).map(|s| s.brier[0])))
                .collect();
            let grid = ibs_grid(&time, tau);
            let ibs = if grid.len() < 2 {
                f64::NAN
            } else {
                let s: Vec<Vec<f64>> = grid.iter().map(|&t| surv(t)).collect();
                nan_on_err(brier_score(&time, &event, &s, &grid).map(|b| b.integrated.unwrap_or(f64::NAN)))
            };
            ReplicateMetrics {
                replicate: *b,
                key: rows.iter().map(|r| (r.patient.clone(), r.copy, r.time, r.event)).collect(),
                harrell: harrell_c,
                uno,
                auc,
                brier,
                ibs,
            }
        })
        .collect())
}

fn z(level: f64) -> f64 {
    Normal::standard().inverse_cdf(1.0 - (1.0 - level) / 2.0)
}

fn sd(v: &[f64]) -> f64 {
    spread(v).sd
}

/// `estimate ± z·SD(values)` over the finite replicate values, limits clamped to the metric's
/// `range` (`[0, 1]` for C, AUC and Brier scores; `[−1, 1]` for ΔC); `n_failed` adds the
/// replicates that failed before (training) to those where the metric was not finite.
pub fn refit_interval(estimate: f64, values: &[f64], n_failed: usize, level: f64, range: (f64, f64)) -> BootstrapCi {
    let ok: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let se = sd(&ok);
    BootstrapCi {
        estimate,
        lower: (estimate - z(level) * se).max(range.0),
        upper: (estimate + z(level) * se).min(range.1),
        se,
        n_boot: ok.len(),
        n_failed: n_failed + values.len() - ok.len(),
    }
}

/// The paired interval and p-value of `Δ = θ(arm) − θ(reference)` over the replicates both
/// arms have, `metric` picking θ from a replicate.
pub fn paired_refit(
    arm: (&str, &[ReplicateMetrics]),
    reference: (&str, &[ReplicateMetrics]),
    delta_hat: f64,
    n_failed: usize,
    level: f64,
    metric: impl Fn(&ReplicateMetrics) -> f64,
) -> Result<(BootstrapCi, f64)> {
    let refs: BTreeMap<usize, &ReplicateMetrics> = reference.1.iter().map(|r| (r.replicate, r)).collect();
    let mut deltas = Vec::new();
    let mut unpaired = 0;
    for a in arm.1 {
        let Some(r) = refs.get(&a.replicate) else {
            unpaired += 1;
            continue;
        };
        if a.key != r.key {
            return Err(EvaluationError::Inconsistent {
                arm: arm.0.to_string(),
                msg: format!(
                    "refit replicate {} does not hold the same patients, copies and outcomes as in the reference arm `{}`: \
                     expected the same cohort and spec seed in every arm",
                    a.replicate, reference.0
                ),
            });
        }
        deltas.push(metric(a) - metric(r));
    }
    unpaired += reference.1.iter().filter(|r| !arm.1.iter().any(|a| a.replicate == r.replicate)).count();
    let ci = refit_interval(delta_hat, &deltas, n_failed + unpaired, level, (-1.0, 1.0));
    let ok: Vec<f64> = deltas.iter().copied().filter(|x| x.is_finite()).collect();
    let p = if ok.is_empty() || !delta_hat.is_finite() {
        f64::NAN
    } else {
        let mean = ok.iter().sum::<f64>() / ok.len() as f64;
        let extreme = ok.iter().filter(|&&d| (d - mean).abs() >= delta_hat.abs()).count() as f64;
        ((1.0 + extreme) / (ok.len() as f64 + 1.0)).min(1.0)
    };
    Ok((ci, p))
}

/// Holm's step-down adjustment (R's `p.adjust(p, "holm")`), in the input order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|&i| p[i].is_finite()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let m = idx.len();
    let mut out = vec![f64::NAN; p.len()];
    let mut running: f64 = 0.0;
    for (j, &i) in idx.iter().enumerate() {
        running = running.max(((m - j) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_equals_r_p_adjust() {
        // R: p.adjust(c(0.01, 0.04, 0.03, 0.2, 0.5), "holm") = 0.05 0.12 0.12 0.40 0.50
        let got = holm(&[0.01, 0.04, 0.03, 0.2, 0.5]);
        for (g, w) in got.iter().zip([0.05, 0.12, 0.12, 0.40, 0.50]) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
        let got = holm(&[0.3, f64::NAN, 0.01]);
        assert_eq!((got[0], got[2]), (0.3, 0.02));
        assert!(got[1].is_nan());
        assert!(holm(&[]).is_empty());
    }

    #[test]
    fn spread_and_interval() {
        let s = spread(&[0.6, 0.7, f64::NAN, 0.65]);
        assert!((s.sd - 0.05).abs() < 1e-12 && s.min == 0.6 && s.max == 0.7, "{s:?}");
        assert!(spread(&[0.5]).sd.is_nan());
        let ci = refit_interval(0.6, &[0.5, 0.55, f64::NAN, 0.6], 2, 0.95, (0.0, 1.0));
        assert_eq!((ci.n_boot, ci.n_failed), (3, 3));
        assert!((ci.se - 0.05).abs() < 1e-12);
        assert!((ci.lower - (0.6 - 1.959963984540054 * 0.05)).abs() < 1e-9, "{ci:?}");
        // limits stay inside the metric's range
        let ci = refit_interval(0.97, &[0.8, 0.9, 1.0], 0, 0.95, (0.0, 1.0));
        assert_eq!(ci.upper, 1.0);
        assert!(ci.lower < 0.97);
    }

    fn rep(b: usize, c: f64) -> ReplicateMetrics {
        ReplicateMetrics {
            replicate: b,
            key: vec![("a".into(), 1, 1.0, true)],
            harrell: c,
            uno: c,
            auc: vec![],
            brier: vec![],
            ibs: 0.1,
        }
    }

    #[test]
    fn paired_p_is_never_zero_and_pairing_is_checked() {
        let arm: Vec<_> = (0..19).map(|b| rep(b, 0.7 + 0.001 * b as f64)).collect();
        let refs: Vec<_> = (0..19).map(|b| rep(b, 0.6)).collect();
        let (ci, p) = paired_refit(("a", &arm), ("r", &refs), 0.1, 0, 0.95, |r| r.harrell).unwrap();
        // every centred replicate is far below |Δ̂| = 0.1: p = 1 / 20
        assert!((p - 0.05).abs() < 1e-12, "{p}");
        assert!(ci.lower > 0.0 && ci.n_boot == 19);
        let mut other = refs.clone();
        other[3].key[0].1 = 2;
        let e = paired_refit(("a", &arm), ("r", &other), 0.1, 0, 0.95, |r| r.harrell).unwrap_err().to_string();
        assert!(e.contains("replicate 3") && e.contains("`r`"), "{e}");
    }
}
