//! Concordance indices: Harrell's C and Uno's IPCW C, in `O(n log n)`.
//!
//! # Formula
//! Risk scores: **higher = earlier event**. A pair `(i, j)` is *comparable* when `i` has an event
//! and `T_i < T_j`, or `T_i = T_j` and `j` is censored (two events at the same time, or two
//! censorings, are not comparable). It is *concordant* when `r_i > r_j`, *discordant* when
//! `r_i < r_j`, and *tied in risk* when `r_i = r_j` (exact equality), which counts ½:
//! - Harrell: `C = (concordant + ½ tied_risk) / comparable`
//! - Uno: each comparable pair weighs `w_i = 1 / G(T_i)²`, `G` the Kaplan–Meier estimate of the
//!   censoring distribution read at `T_i` (see [`super::kaplan_meier::CensoringKm`]); only pairs
//!   with `T_i < τ` count. `C_τ = Σ w_i (conc_ij + ½ tie_ij) / Σ w_i comparable_ij`.
//!
//! Implementation: observations are sorted by time and swept from the latest time down while a
//! Fenwick tree over risk ranks holds everyone with a later time, so each event's concordant,
//! discordant and tied partners are three prefix counts; events tied with censorings at the same
//! time are counted inside their time group by binary search.
//!
//! # Assumptions
//! Right-censored data; for Uno's C the censoring is independent of covariates and `G` is fitted
//! on the same data (scikit-survival's `concordance_index_ipcw` with train = test).
//! scikit-survival treats risks within 1e-8 as tied, lifelines uses exact equality; this module
//! uses exact equality (`-0.0 = 0.0`).
//!
//! # Errors
//! Mismatched lengths, non-finite risks, no comparable pairs, `G(T_i) = 0` for an event that
//! needs a weight.
//!
//! # References
//! Harrell FE, Lee KL, Mark DB (1996) Stat Med 15:361–387. Uno H, Cai T, Pencina MJ,
//! D'Agostino RB, Wei LJ (2011) Stat Med 30:1105–1117.
use super::data::{check_finite, check_survival};
use super::error::{Result, SurvivalError};
use super::kaplan_meier::CensoringKm;
use super::sort::{argsort_f64, dense_ranks};

/// Harrell's (and optionally Uno's) concordance with the pair counts.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Concordance {
    /// Harrell's C.
    pub harrell: f64,
    /// Uno's C (IPCW, truncated at `tau` if given); `None` when not computed.
    pub uno: Option<f64>,
    /// Truncation time used for Uno's C (`None` = no truncation).
    pub tau: Option<f64>,
    /// Concordant comparable pairs.
    pub concordant: u64,
    /// Discordant comparable pairs.
    pub discordant: u64,
    /// Comparable pairs with tied risk.
    pub tied_risk: u64,
    /// Comparable pairs with tied time (an event and a censoring at the same time).
    pub tied_time: u64,
    /// All comparable pairs (`concordant + discordant + tied_risk`).
    pub comparable: u64,
}

struct Fenwick {
    t: Vec<u32>,
}

impl Fenwick {
    fn new(n: usize) -> Self {
        Self { t: vec![0; n + 1] }
    }
    #[inline]
    fn add(&mut self, i: usize) {
        let mut i = i + 1;
        while i < self.t.len() {
            self.t[i] += 1;
            i += i & i.wrapping_neg();
        }
    }
    /// Count of inserted ranks < i.
    #[inline]
    fn prefix(&self, i: usize) -> u64 {
        let mut i = i;
        let mut s = 0u64;
        while i > 0 {
            s += self.t[i] as u64;
            i &= i - 1;
        }
        s
    }
}

/// Per-event counts from the sweep: calls `visit(i, concordant, discordant, tied)` once for each
/// event `i` with the number of its comparable partners of each kind, and returns tied_time.
fn sweep(time: &[f64], event: &[bool], risk: &[f64], mut visit: impl FnMut(f64, u64, u64, u64)) -> u64 {
    let n = time.len();
    let (ranks, m) = dense_ranks(risk);
    let order = argsort_f64(time);
    // Gather into time order once so the sweep reads memory sequentially.
    let st: Vec<f64> = order.iter().map(|&i| time[i as usize]).collect();
    let sr: Vec<u32> = order.iter().map(|&i| ranks[i as usize]).collect();
    let se: Vec<bool> = order.iter().map(|&i| event[i as usize]).collect();
    drop(order);
    let mut fw = Fenwick::new(m);
    let mut count = vec![0u32; m];
    let mut inserted = 0u64;
    let mut tied_time = 0u64;
    let mut cens_ranks: Vec<u32> = Vec::new();
    let mut end = n;
    while end > 0 {
        let t = st[end - 1];
        let mut start = end - 1;
        while start > 0 && st[start - 1] == t {
            start -= 1;
        }
        let (gr, ge) = (&sr[start..end], &se[start..end]);
        cens_ranks.clear();
        cens_ranks.extend(gr.iter().zip(ge).filter(|(_, &e)| !e).map(|(&r, _)| r));
        if cens_ranks.len() < gr.len() {
            cens_ranks.sort_unstable();
            let nc = cens_ranks.len() as u64;
            for (&r, &e) in gr.iter().zip(ge) {
                if !e {
                    continue;
                }
                let r = r as usize;
                let less = fw.prefix(r);
                let eq = count[r] as u64;
                let mut conc = less;
                let mut tied = eq;
                let mut disc = inserted - less - eq;
                if nc > 0 {
                    let cl = cens_ranks.partition_point(|&x| (x as usize) < r) as u64;
                    let cle = cens_ranks.partition_point(|&x| (x as usize) <= r) as u64;
                    conc += cl;
                    tied += cle - cl;
                    disc += nc - cle;
                    tied_time += nc;
                }
                visit(t, conc, disc, tied);
            }
        }
        for &r in gr {
            fw.add(r as usize);
            count[r as usize] += 1;
        }
        inserted += gr.len() as u64;
        end = start;
    }
    tied_time
}

/// Harrell's C with pair counts (`uno` left `None`).
pub fn harrell(time: &[f64], event: &[bool], risk: &[f64]) -> Result<Concordance> {
    check_survival(time, event)?;
    check_finite("risk score", risk, time.len())?;
    let (mut c, mut d, mut t) = (0u64, 0u64, 0u64);
    let tied_time = sweep(time, event, risk, |_, a, b, e| {
        c += a;
        d += b;
        t += e;
    });
    let comparable = c + d + t;
    if comparable == 0 {
        return Err(if event.iter().any(|&e| e) {
            SurvivalError::NoComparablePairs { detail: String::new() }
        } else {
            SurvivalError::AllCensored { n: time.len() }
        });
    }
    Ok(Concordance {
        harrell: (c as f64 + 0.5 * t as f64) / comparable as f64,
        uno: None,
        tau: None,
        concordant: c,
        discordant: d,
        tied_risk: t,
        tied_time,
        comparable,
    })
}

/// Harrell's C and Uno's C (truncated at `tau` when given), with the unweighted pair counts
/// over all comparable pairs (as scikit-survival reports them: they ignore `tau`).
pub fn harrell_and_uno(time: &[f64], event: &[bool], risk: &[f64], tau: Option<f64>) -> Result<Concordance> {
    check_survival(time, event)?;
    check_finite("risk score", risk, time.len())?;
    if let Some(tau) = tau {
        if !(tau.is_finite() && tau > 0.0) {
            return Err(SurvivalError::InvalidParameter {
                name: "tau".into(),
                expected: "a finite time > 0".into(),
                found: tau.to_string(),
            });
        }
    }
    let g = CensoringKm::fit(time, event)?;
    let (mut c, mut d, mut t) = (0u64, 0u64, 0u64);
    let (mut num, mut den) = (0.0f64, 0.0f64);
    let mut zero_g: Option<f64> = None;
    let tied_time = sweep(time, event, risk, |ti, a, b, e| {
        c += a;
        d += b;
        t += e;
        if tau.is_none_or(|tau| ti < tau) && a + b + e > 0 {
            let gi = g.g_at(ti);
            if gi <= 0.0 {
                zero_g.get_or_insert(ti);
                return;
            }
            let w = 1.0 / (gi * gi);
            num += w * (a as f64 + 0.5 * e as f64);
            den += w * (a + b + e) as f64;
        }
    });
    if let Some(time) = zero_g {
        return Err(SurvivalError::CensoringSurvivalZero { time });
    }
    let comparable = c + d + t;
    if comparable == 0 {
        return Err(if event.iter().any(|&e| e) {
            SurvivalError::NoComparablePairs { detail: String::new() }
        } else {
            SurvivalError::AllCensored { n: time.len() }
        });
    }
    if den == 0.0 {
        return Err(SurvivalError::NoComparablePairs {
            detail: format!(" before tau = {}", tau.unwrap_or(f64::INFINITY)),
        });
    }
    Ok(Concordance {
        harrell: (c as f64 + 0.5 * t as f64) / comparable as f64,
        uno: Some(num / den),
        tau,
        concordant: c,
        discordant: d,
        tied_risk: t,
        tied_time,
        comparable,
    })
}

/// Uno's C alone.
pub fn uno(time: &[f64], event: &[bool], risk: &[f64], tau: Option<f64>) -> Result<f64> {
    harrell_and_uno(time, event, risk, tau).map(|c| c.uno.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(time: &[f64], event: &[bool], risk: &[f64]) -> (u64, u64, u64, u64) {
        let (mut c, mut d, mut t, mut tt) = (0, 0, 0, 0);
        for i in 0..time.len() {
            if !event[i] {
                continue;
            }
            for j in 0..time.len() {
                let comp = time[i] < time[j] || (time[i] == time[j] && !event[j]);
                if !comp || i == j {
                    continue;
                }
                if time[i] == time[j] {
                    tt += 1;
                }
                if risk[i] > risk[j] {
                    c += 1
                } else if risk[i] < risk[j] {
                    d += 1
                } else {
                    t += 1
                }
            }
        }
        (c, d, t, tt)
    }

    #[test]
    fn fenwick_sweep_matches_brute_force() {
        let mut x: u64 = 0x9E3779B97F4A7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20 {
            let n = 1 + (next() % 300) as usize;
            let time: Vec<f64> = (0..n).map(|_| (next() % 25) as f64).collect();
            let event: Vec<bool> = (0..n).map(|_| next() % 3 != 0).collect();
            let risk: Vec<f64> = (0..n).map(|_| (next() % 9) as f64 / 4.0 - 1.0).collect();
            let (c, d, t, tt) = brute(&time, &event, &risk);
            match harrell(&time, &event, &risk) {
                Ok(r) => {
                    assert_eq!((r.concordant, r.discordant, r.tied_risk, r.tied_time), (c, d, t, tt));
                }
                Err(_) => assert_eq!(c + d + t, 0),
            }
        }
    }
}
