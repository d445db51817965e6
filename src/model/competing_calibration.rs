//! Calibration of the predicted cumulative incidence in a competing-risks cohort: the
//! `calibrate` stage's engine for `competing_calibration.json`
//! ([`crate::contracts::competing_calibration`]) — the competing-risks analogue of
//! [`super::calibrate`]'s bins against Kaplan–Meier.
//!
//! # Formula
//! `p_i = F̂₁(t | x_i)`, the predicted cumulative incidence of cause 1 at the horizon `t`
//! ([`super::competing::predicted_cif`]). Bins: the patients of repeat 0 sorted by `p_i`
//! (stable) and cut into `min(bins, n)` groups `[b·n/B, (b+1)·n/B)`; per bin the mean `p_i` and
//! the observed Aalen–Johansen cumulative incidence of cause 1 at `t` among the bin's patients
//! (competing events are not censored: they end the risk of cause 1), with its log(−log) band
//! (cmprsk's variance). Overall: the mean `p_i` (mean over repeats) against the Aalen–Johansen
//! estimate of all patients, and their ratio (observed / expected); and
//! `Σ_b n_b |observed_b − predicted_b| / n`. 1 − Kaplan–Meier would overstate the observed risk
//! of cause 1 whenever competing events occur.
//!
//! # Errors
//! A horizon ≤ 0 or not finite, `bins` = 0, no patient.
//!
//! # References
//! Putter H, Fiocco M, Geskus RB (2007) Stat Med 26:2389–2430. Austin PC, Putter H, Giardiello
//! D, van Klaveren D (2022) Graphical calibration curves and the integrated calibration index
//! (ICI) for competing risk models. Diagn Progn Res 6:2.
use super::competing::predicted_cif;
use super::error::{ModelError, Result};
use crate::contracts::competing::CompetingJson;
use crate::contracts::competing_calibration::{CompetingBin, CompetingCalibration, SCHEMA};
use crate::survival::{CompetingRisksData, CumulativeIncidence};

/// Calibration of `c`'s predicted cumulative incidence of cause 1 at `horizon`.
pub fn calibrate_competing(c: &CompetingJson, horizon: f64, bins: usize, level: f64) -> Result<CompetingCalibration> {
    let n = c.patients.len();
    if !(horizon.is_finite() && horizon > 0.0) || bins == 0 || n == 0 {
        return Err(ModelError::InvalidParameter {
            name: "competing-risks calibration".into(),
            expected: "a finite horizon > 0, bins ≥ 1 and at least one patient".into(),
            found: format!("horizon {horizon}, bins {bins}, {n} patient(s)"),
        });
    }
    let surv = |source| ModelError::Survival { context: "competing-risks calibration".into(), source };
    let data = CompetingRisksData::new(c.patients.iter().map(|p| p.time).collect(), c.status()).map_err(surv)?;
    let cif = predicted_cif(c, &[horizon])?;
    let repeats = cif.len();
    let mean_predicted = cif.values().map(|per| per[0].iter().sum::<f64>() / n as f64).sum::<f64>() / repeats as f64;
    let aj = CumulativeIncidence::fit_with_level(&data, 1, level).map_err(surv)?;
    let all = aj.estimate_at(horizon);
    let pred0 = cif.values().next().map(|per| per[0].clone()).unwrap_or_default();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| pred0[a].total_cmp(&pred0[b]));
    let nb = bins.min(n);
    let mut out = Vec::with_capacity(nb);
    let mut abs_err = 0.0;
    for b in 0..nb {
        let idx: Vec<usize> = order[b * n / nb..(b + 1) * n / nb].to_vec();
        let d = data.subset(&idx);
        let e = CumulativeIncidence::fit_with_level(&d, 1, level).map_err(surv)?.estimate_at(horizon);
        let predicted = idx.iter().map(|&i| pred0[i]).sum::<f64>() / idx.len() as f64;
        if e.cif.is_finite() {
            abs_err += idx.len() as f64 * (e.cif - predicted).abs();
        }
        let by_t = |want: &dyn Fn(u32) -> bool| {
            idx.iter().filter(|&&i| data.time[i] <= horizon && want(data.status[i])).count()
        };
        out.push(CompetingBin {
            bin: b,
            n: idx.len(),
            predicted,
            observed: e.cif,
            lower: e.lower,
            upper: e.upper,
            events: by_t(&|s| s == 1),
            competing: by_t(&|s| s > 1),
        });
    }
    Ok(CompetingCalibration {
        schema: SCHEMA,
        horizon,
        ci: level,
        method: c.method.clone(),
        cause: c.causes[0].name.clone(),
        n,
        repeats,
        mean_predicted,
        observed: all.cif,
        observed_lower: all.lower,
        observed_upper: all.upper,
        observed_expected: all.cif / mean_predicted,
        bins_repeat: 0,
        bins: out,
        mean_abs_bin_error: abs_err / n as f64,
    })
}
