//! Calibration of predicted event probabilities at a horizon `t`: quantile bins against the
//! Kaplan–Meier observed probability, calibration slope and intercept, and the smoothed
//! calibration curve's ICI, E50 and E90.
//!
//! # Formula
//! Predicted event probability `p_i = 1 − Ŝ_i(t)`; `c_i = log(−log Ŝ_i(t))` (complementary
//! log-log of `p_i`, with `Ŝ` clipped to `[1e−10, 1 − 1e−10]`).
//! - Bins: subjects sorted by `p_i` and cut into `bins` groups of (almost) equal size; per bin the
//!   mean `p_i`, the observed probability `1 − KM(t)` of the bin's subjects and its log(−log)
//!   95% CI (`1 − upper`, `1 − lower` of the KM interval).
//! - Slope: the coefficient of `c` in a Cox model of the outcome on `c` alone (ideal 1).
//! - Intercept: with the slope fixed at 1 (`c` as an offset), the log of the Breslow baseline
//!   cumulative hazard at `t`: `log Σ_{t_k ≤ t} d_k / Σ_{j∈R(t_k)} e^{c_j}` (ideal 0; > 0 means
//!   more events than predicted).
//! - Smoothed curve (Austin, Harrell & van Klaveren 2020): a Cox model of the outcome on a
//!   restricted cubic spline of `c` (3 knots at the 10th/50th/90th percentiles, Harrell's
//!   parameterisation) gives the observed probability `p̃_i = 1 − exp(−Ĥ₀(t) e^{η_i})`;
//!   `ICI = mean |p̃_i − p_i|`, `E50`, `E90` = median and 90th percentile (linear interpolation)
//!   of `|p̃_i − p_i|`. With fewer than 3 distinct knots the spline falls back to linear in `c`.
//!
//! All models use the full follow-up (not truncated at `t`), as in Austin et al.
//!
//! # Assumptions
//! Proportional hazards in `c` for the slope and the smoother; independent censoring.
//!
//! # Errors
//! Predictions outside [0, 1], all predictions equal (no slope), no events, `bins` = 0.
//!
//! # References
//! Austin PC, Harrell FE, van Klaveren D (2020) Stat Med 39:2714–2742, doi:10.1002/sim.8570.
//! Crowson CS, Atkinson EJ, Therneau TM (2016) Stat Methods Med Res 25:1692–1706.
//! Harrell FE (2015) *Regression Modeling Strategies*, §2.4.5 (restricted cubic splines).
use super::cox::{fit_cox, CoxOptions};
use super::data::{check_probabilities, check_survival};
use super::error::{Result, SurvivalError};
use super::kaplan_meier::KaplanMeier;
use super::sort::argsort_f64;

/// One quantile bin (also a bin of the `calibrate` stage's `calibration.json`; a non-finite
/// number is written as `null` and read back as NaN).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CalibrationBin {
    /// 0-based bin index, by increasing predicted probability.
    #[serde(default)]
    pub bin: usize,
    /// Subjects in the bin.
    pub n: usize,
    /// Mean predicted event probability in the bin.
    #[serde(deserialize_with = "crate::util::f64_or_nan")]
    pub predicted: f64,
    /// Kaplan–Meier observed event probability at the horizon.
    #[serde(deserialize_with = "crate::util::f64_or_nan")]
    pub observed: f64,
    /// Lower limit of `observed` (95% in [`calibration()`], the level asked for in
    /// [`quantile_bins`]).
    #[serde(default = "crate::util::nan", deserialize_with = "crate::util::f64_or_nan")]
    pub lower: f64,
    /// Upper limit of `observed`.
    #[serde(default = "crate::util::nan", deserialize_with = "crate::util::f64_or_nan")]
    pub upper: f64,
    /// Events in the bin at or before the horizon.
    #[serde(default)]
    pub events: usize,
    /// Subjects of the bin still at risk at the horizon (follow-up `≥ t`); 0 means `observed`
    /// is the Kaplan–Meier estimate carried forward from the bin's last follow-up.
    #[serde(default)]
    pub at_risk: usize,
}

/// A point of the smoothed calibration curve.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CalibrationPoint {
    /// Predicted event probability.
    #[serde(deserialize_with = "crate::util::f64_or_nan")]
    pub predicted: f64,
    /// Smoothed observed event probability.
    #[serde(deserialize_with = "crate::util::f64_or_nan")]
    pub observed: f64,
}

/// Calibration at a horizon.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Calibration {
    /// The horizon.
    pub horizon: f64,
    /// Quantile bins, by increasing predicted probability.
    pub bins: Vec<CalibrationBin>,
    /// Calibration slope (ideal 1).
    pub slope: f64,
    /// Standard error of the slope.
    pub slope_se: f64,
    /// Calibration intercept on the log cumulative hazard scale (ideal 0).
    pub intercept: f64,
    /// Integrated calibration index: mean absolute difference to the smoothed curve.
    pub ici: f64,
    /// Median absolute difference.
    pub e50: f64,
    /// 90th percentile of the absolute difference.
    pub e90: f64,
    /// Smoothed calibration curve (at most 101 points, by increasing predicted probability).
    pub curve: Vec<CalibrationPoint>,
    /// Notes (e.g. spline fallback).
    pub notes: Vec<String>,
}

/// Quantile with linear interpolation (numpy's default) of sorted values.
pub(crate) fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let h = (v.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    v[lo] + (h - lo as f64) * (v[hi] - v[lo])
}

/// Equal-count risk-quantile bins of predicted event probabilities `pred` against the
/// Kaplan–Meier observed probability at `horizon`, with log(−log) intervals at `level`:
/// subjects sorted by `pred` (stable), `min(bins, n)` bins `[b·n/B, (b+1)·n/B)`.
pub fn quantile_bins(
    time: &[f64],
    event: &[bool],
    pred: &[f64],
    horizon: f64,
    bins: usize,
    level: f64,
) -> Result<Vec<CalibrationBin>> {
    check_survival(time, event)?;
    check_probabilities("predicted probability", pred, time.len())?;
    if bins == 0 {
        return Err(SurvivalError::InvalidParameter {
            name: "bins".into(),
            expected: ">= 1".into(),
            found: "0".into(),
        });
    }
    let n = time.len();
    let order = argsort_f64(pred);
    let nb = bins.min(n);
    let mut out = Vec::with_capacity(nb);
    for b in 0..nb {
        let idx: Vec<usize> = order[b * n / nb..(b + 1) * n / nb].iter().map(|&i| i as usize).collect();
        let t: Vec<f64> = idx.iter().map(|&i| time[i]).collect();
        let e: Vec<bool> = idx.iter().map(|&i| event[i]).collect();
        let km = KaplanMeier::fit_with_level(&t, &e, level)?;
        let est = km.estimate_at(horizon);
        out.push(CalibrationBin {
            bin: b,
            n: idx.len(),
            predicted: idx.iter().map(|&i| pred[i]).sum::<f64>() / idx.len() as f64,
            observed: 1.0 - est.survival,
            lower: 1.0 - est.upper,
            upper: 1.0 - est.lower,
            events: idx.iter().filter(|&&i| event[i] && time[i] <= horizon).count(),
            at_risk: est.at_risk,
        });
    }
    Ok(out)
}

/// `log Σ_{t_k ≤ h} d_k / Σ_{j∈R(t_k)} e^{o_j}`: the log Breslow cumulative hazard at `h` with
/// offsets `o` — the calibration intercept when `o = c`, a recalibration's intercept when
/// `o = b·c`. `−∞` when no event happens by `h`.
pub fn offset_log_cumhaz(time: &[f64], event: &[bool], offset: &[f64], horizon: f64) -> f64 {
    let n = time.len();
    let ord = argsort_f64(time);
    let omax = offset.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut s0 = 0.0;
    let mut h_scaled = 0.0; // Σ d / Σ e^{o − omax}
    let mut k = n;
    while k > 0 {
        let t = time[ord[k - 1] as usize];
        let mut d = 0usize;
        while k > 0 && time[ord[k - 1] as usize] == t {
            let i = ord[k - 1] as usize;
            s0 += (offset[i] - omax).exp();
            d += event[i] as usize;
            k -= 1;
        }
        if t <= horizon && d > 0 {
            h_scaled += d as f64 / s0;
        }
    }
    if h_scaled > 0.0 {
        h_scaled.ln() - omax
    } else {
        f64::NEG_INFINITY
    }
}

/// Calibration of predicted survival `surv[i] = Ŝ_i(horizon)`.
pub fn calibration(time: &[f64], event: &[bool], surv: &[f64], horizon: f64, bins: usize) -> Result<Calibration> {
    check_survival(time, event)?;
    check_probabilities("predicted survival", surv, time.len())?;
    if bins == 0 {
        return Err(SurvivalError::InvalidParameter {
            name: "bins".into(),
            expected: ">= 1".into(),
            found: "0".into(),
        });
    }
    if !(horizon.is_finite() && horizon > 0.0) {
        return Err(SurvivalError::InvalidParameter {
            name: "horizon".into(),
            expected: "a finite time > 0".into(),
            found: horizon.to_string(),
        });
    }
    let n = time.len();
    let pred: Vec<f64> = surv.iter().map(|s| 1.0 - s).collect();
    let out_bins = quantile_bins(time, event, &pred, horizon, bins, 0.95)?;
    let c: Vec<f64> = surv.iter().map(|&s| (-s.clamp(1e-10, 1.0 - 1e-10).ln()).ln()).collect();
    let name = vec!["cloglog(predicted risk)".to_string()];
    let slope_fit = fit_cox(time, event, &c, &name, &CoxOptions::default())?;
    // Intercept: Breslow baseline at the horizon with c as offset.
    let intercept = offset_log_cumhaz(time, event, &c, horizon);
    // Smoothed curve: Cox on an RCS of c.
    let mut sorted_c = c.clone();
    sorted_c.sort_by(|a, b| a.total_cmp(b));
    let knots = [quantile_sorted(&sorted_c, 0.1), quantile_sorted(&sorted_c, 0.5), quantile_sorted(&sorted_c, 0.9)];
    let mut notes = Vec::new();
    let spline_ok = knots[0] < knots[1] && knots[1] < knots[2];
    let smooth_fit = if spline_ok {
        let (k1, k2, k3) = (knots[0], knots[1], knots[2]);
        let cube = |v: f64| if v > 0.0 { v * v * v } else { 0.0 };
        let mut x = Vec::with_capacity(2 * n);
        for &ci in &c {
            let nl = (cube(ci - k1) - cube(ci - k2) * (k3 - k1) / (k3 - k2) + cube(ci - k3) * (k2 - k1) / (k3 - k2))
                / ((k3 - k1) * (k3 - k1));
            x.push(ci);
            x.push(nl);
        }
        let names = vec!["cloglog".to_string(), "cloglog'".to_string()];
        match fit_cox(time, event, &x, &names, &CoxOptions::default()) {
            Ok(f) => Some((f, x, 2)),
            Err(e) => {
                notes.push(format!("spline smoother failed ({e}); linear smoother used"));
                None
            }
        }
    } else {
        notes.push("fewer than 3 distinct spline knots; linear smoother used".into());
        None
    };
    let (fit, x, _) = match smooth_fit {
        Some(v) => v,
        None => (slope_fit.clone(), c.clone(), 1),
    };
    let h0 = fit.baseline_cumulative_hazard_at(horizon);
    let lp = fit.linear_predictor(&x)?;
    let obs: Vec<f64> = lp.iter().map(|&e| 1.0 - (-h0 * e.exp()).exp()).collect();
    let mut diffs: Vec<f64> = obs.iter().zip(&pred).map(|(o, p)| (o - p).abs()).collect();
    let ici = diffs.iter().sum::<f64>() / n as f64;
    diffs.sort_by(|a, b| a.total_cmp(b));
    let e50 = quantile_sorted(&diffs, 0.5);
    let e90 = quantile_sorted(&diffs, 0.9);
    let order = argsort_f64(&pred);
    let step = (n / 100).max(1);
    let mut curve: Vec<CalibrationPoint> = order
        .iter()
        .step_by(step)
        .map(|&i| CalibrationPoint { predicted: pred[i as usize], observed: obs[i as usize] })
        .collect();
    if let Some(&last) = order.last() {
        if curve.last().map(|p| p.predicted) != Some(pred[last as usize]) {
            curve.push(CalibrationPoint { predicted: pred[last as usize], observed: obs[last as usize] });
        }
    }
    Ok(Calibration {
        horizon,
        bins: out_bins,
        slope: slope_fit.coefficients[0].coef,
        slope_se: slope_fit.coefficients[0].se,
        intercept,
        ici,
        e50,
        e90,
        curve,
        notes,
    })
}
