//! Time-dependent AUC in the competing-risks sense (Blanche, Dartigues & Jacqmin-Gadda 2013,
//! "definition 2"), with inverse-probability-of-censoring weights — riskRegression's
//! `Score(…, cause = 1, metrics = "auc")`.
//!
//! # Formula
//! At time `t`, with status `δ_i` (0 = censored, `k ≥ 1` = cause) and marker `M_i(t)` (higher =
//! more at risk, e.g. the predicted cumulative incidence of the cause at `t`):
//! - *cases*: `T_i ≤ t`, `δ_i = cause`, weight `w_i = 1/G(T_i−)`;
//! - *controls*: event-free at `t` (`T_j > t`, weight `1/G(t)`) **and** failed from a competing
//!   cause by `t` (`T_j ≤ t`, `δ_j ∉ {0, cause}`, weight `1/G(T_j−)`);
//! - censored before `t`: weight 0.
//!
//! `AUC(t) = Σ_i Σ_j w_i w_j [1(M_i > M_j) + ½·1(M_i = M_j)] / (Σ_i w_i · Σ_j w_j)`.
//! `G` is the Kaplan–Meier estimate of the censoring distribution (every cause counts as an
//! event for it; at a tied time events leave the risk set before censorings), `G(s−)` its left
//! limit. Computed in O(n log n) per time by sorting the controls' markers.
//!
//! # Assumptions
//! Censoring independent of the event process (and of the marker); `G` fitted on the same data.
//!
//! # Errors
//! Inputs of different lengths, a non-finite marker, a time outside `[min T, max T)` or not
//! increasing, a time without cases or without controls, `G = 0` where a weight is needed.
//!
//! # References
//! Blanche P, Dartigues JF, Jacqmin-Gadda H (2013) Estimating and comparing time-dependent areas
//! under receiver operating characteristic curves for censored event times with competing risks.
//! Stat Med 32:5381–5397. Gerds TA, Ozenne B, riskRegression R package (`Score`).
use super::auc::check_times;
use super::competing::CompetingRisksData;
use super::data::{check_finite, check_len};
use super::error::{Result, SurvivalError};
use super::kaplan_meier::CensoringKm;

/// Competing-risks AUC at one time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CompetingAucAtTime {
    /// The time.
    pub time: f64,
    /// AUC (definition 2 of Blanche et al. 2013).
    pub auc: f64,
    /// Cases: events of the cause by `time`.
    pub n_cases: usize,
    /// Controls event-free at `time`.
    pub n_controls_event_free: usize,
    /// Controls failed from a competing cause by `time`.
    pub n_controls_competing: usize,
}

/// The censoring Kaplan–Meier of competing-risks data with its left limits, for IPCW weights.
pub(crate) struct Ipcw {
    km: CensoringKm,
}

impl Ipcw {
    pub(crate) fn fit(data: &CompetingRisksData) -> Result<Self> {
        Ok(Self { km: CensoringKm::fit(&data.time, &data.any_events())? })
    }
    /// `G(t)`.
    pub(crate) fn at(&self, t: f64) -> f64 {
        self.km.g_at(t)
    }
    /// `G(t−)`: the value over the times strictly before `t`.
    pub(crate) fn before(&self, t: f64) -> f64 {
        let idx = self.km.times.partition_point(|&s| s < t);
        if idx == 0 {
            1.0
        } else {
            self.km.g[idx - 1]
        }
    }
}

/// The inverse of a censoring survival probability, an error where it is 0.
pub(crate) fn inverse(g: f64, time: f64) -> Result<f64> {
    if g > 0.0 {
        Ok(1.0 / g)
    } else {
        Err(SurvivalError::CensoringSurvivalZero { time })
    }
}

/// AUC of cause `cause` at each of `times`; `markers[k][i]` is subject `i`'s marker at
/// `times[k]` (e.g. the predicted cumulative incidence there).
pub fn competing_auc(
    data: &CompetingRisksData,
    cause: u32,
    markers: &[&[f64]],
    times: &[f64],
) -> Result<Vec<CompetingAucAtTime>> {
    data.check_cause(cause)?;
    check_times("competing-risks AUC", &data.time, times)?;
    check_len("marker vectors (one per time)", times.len(), markers.len())?;
    for m in markers {
        check_finite("marker", m, data.len())?;
    }
    let g = Ipcw::fit(data)?;
    let mut out = Vec::with_capacity(times.len());
    for (k, &t) in times.iter().enumerate() {
        let m = markers[k];
        let (mut cases, mut controls) = (Vec::new(), Vec::new());
        let (mut n_free, mut n_comp) = (0, 0);
        for ((&ti, &si), &mi) in data.time.iter().zip(&data.status).zip(m.iter()) {
            if ti > t {
                controls.push((mi, inverse(g.at(t), t)?));
                n_free += 1;
            } else if si == cause {
                cases.push((mi, inverse(g.before(ti), ti)?));
            } else if si != 0 {
                controls.push((mi, inverse(g.before(ti), ti)?));
                n_comp += 1;
            }
        }
        if cases.is_empty() || controls.is_empty() {
            return Err(SurvivalError::InvalidParameter {
                name: format!("competing-risks AUC time {t}"),
                expected: "at least one case (event of the cause by then) and one control".into(),
                found: format!("{} case(s), {} control(s)", cases.len(), controls.len()),
            });
        }
        // controls sorted by marker, with cumulative weights: Σ_j w_j 1(M_j < M_i) and ties
        controls.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut cum = Vec::with_capacity(controls.len() + 1);
        cum.push(0.0);
        for c in &controls {
            cum.push(cum.last().copied().unwrap_or(0.0) + c.1);
        }
        let total = cum[controls.len()];
        let (mut num, mut wcases) = (0.0, 0.0);
        for &(mi, wi) in &cases {
            let below = controls.partition_point(|c| c.0 < mi);
            let not_above = controls.partition_point(|c| c.0 <= mi);
            num += wi * (cum[below] + 0.5 * (cum[not_above] - cum[below]));
            wcases += wi;
        }
        out.push(CompetingAucAtTime {
            time: t,
            auc: num / (wcases * total),
            n_cases: cases.len(),
            n_controls_event_free: n_free,
            n_controls_competing: n_comp,
        });
    }
    Ok(out)
}
