//! The performance section (`templates/report/performance.html`): the evaluate stage's
//! `metrics.json` (arms table, ΔC forest plot, KM by risk group, time-dependent ROC from its
//! curve CSVs) and each arm's calibrate `calibration.json` (calibration table and plots).
//! Every number shown is read, none computed.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::format::{days, num, p_eq, pval};
use crate::report::plots::{self, CalibrationBin, ForestRow, KmCurve, RocCurve};
use super::{contained, read_csv, read_json, Options, PageError, Result, Sources};

// ---------------------------------------------------------------- contracts (read side)

/// An estimate with its confidence interval (null when undefined).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Est {
    pub estimate: Option<f64>,
    #[serde(default)]
    pub lower: Option<f64>,
    #[serde(default)]
    pub upper: Option<f64>,
    #[serde(default)]
    pub p: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct AucAt {
    horizon: f64,
    #[serde(flatten)]
    est: Est,
    roc: String,
}

#[derive(Debug, Clone, Deserialize)]
struct BrierAt {
    horizon: f64,
    #[serde(flatten)]
    est: Est,
}

#[derive(Debug, Clone, Deserialize)]
struct Group {
    label: String,
    n: usize,
    events: usize,
    /// null for an empty group
    #[serde(default)]
    km: Option<String>,
    #[serde(default)]
    at_risk: Vec<usize>,
}

#[derive(Debug, Clone, Deserialize)]
struct LogRankJson {
    chi2: Option<f64>,
    df: Option<f64>,
    p: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct RiskGroups {
    method: String,
    groups: Vec<Group>,
    at_risk_times: Vec<f64>,
    logrank: Option<LogRankJson>,
    hazard_ratio: Option<Est>,
}

#[derive(Debug, Clone, Deserialize)]
struct ArmMetrics {
    arm: String,
    n: usize,
    events: usize,
    #[serde(default)]
    repeats: Option<usize>,
    harrell_c: Est,
    #[serde(default)]
    uno_c: Option<Est>,
    #[serde(default)]
    auc: Vec<AucAt>,
    #[serde(default)]
    mean_auc: Option<f64>,
    #[serde(default)]
    brier: Vec<BrierAt>,
    #[serde(default)]
    ibs: Option<Est>,
    #[serde(default)]
    risk_groups: Option<RiskGroups>,
}

#[derive(Debug, Clone, Deserialize)]
struct Comparison {
    arm: String,
    reference: String,
    delta_c: Est,
    p: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct Metrics {
    horizons: Vec<f64>,
    bootstrap: Option<usize>,
    ci: Option<f64>,
    reference: Option<String>,
    groups: Option<String>,
    arms: Vec<ArmMetrics>,
    #[serde(default)]
    comparisons: Vec<Comparison>,
}

#[derive(Debug, Clone, Deserialize)]
struct CalBin {
    n: usize,
    // non-finite values are written as null by calibrate
    predicted: Option<f64>,
    observed: Option<f64>,
    lower: Option<f64>,
    upper: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct CalStats {
    bins: Vec<CalBin>,
    slope: Option<f64>,
    intercept: Option<f64>,
    ici: Option<f64>,
    e50: Option<f64>,
    e90: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct Calibration {
    /// Not written by calibrate (arms sharing a node share bytes): the arm comes from the need.
    #[serde(skip)]
    arm: String,
    horizon: f64,
    n: usize,
    events: usize,
    #[serde(flatten)]
    stats: CalStats,
    #[serde(default)]
    recalibrated: Option<CalStats>,
}

fn est(e: &Est, digits: usize) -> String {
    match (e.lower, e.upper) {
        (Some(l), Some(u)) if l.is_finite() && u.is_finite() => {
            format!("{} ({}–{})", num(e.estimate, digits), num(Some(l), digits), num(Some(u), digits))
        }
        _ => num(e.estimate, digits),
    }
}

#[derive(Debug, Serialize)]
struct ArmRow {
    arm: String,
    shown: bool,
    reference: bool,
    n: usize,
    events: usize,
    repeats: String,
    harrell_c: String,
    uno_c: String,
    mean_auc: String,
    aucs: Vec<String>,
    briers: Vec<String>,
    ibs: String,
    hazard_ratio: String,
    logrank_p: String,
    delta_c: String,
    delta_p: String,
}

#[derive(Debug, Serialize)]
struct CalRow {
    arm: String,
    horizon: String,
    n: usize,
    events: usize,
    slope: String,
    intercept: String,
    ici: String,
    e50: String,
    e90: String,
    recal: Option<String>,
}

#[derive(Debug, Serialize)]
struct GroupRow {
    label: String,
    n: usize,
    events: usize,
}

#[derive(Debug, Serialize)]
pub(super) struct PerfView {
    arm: String,
    arm_choice: String,
    reference: String,
    horizons: Vec<String>,
    bootstrap: String,
    ci: String,
    groups_method: String,
    arms: Vec<ArmRow>,
    groups: Vec<GroupRow>,
    logrank: String,
    hazard_ratio: String,
    aucs: Vec<String>,
    calibration: Vec<CalRow>,
    cal_horizon: String,
    cal_bin_sizes: String,
    has_metrics: bool,
    has_km: bool,
    has_roc: bool,
    has_forest: bool,
    has_calibration: bool,
    has_recalibrated: bool,
}

fn km_curve(path: &Path, label: &str, at_risk: Vec<usize>) -> Result<KmCurve> {
    let rows = read_csv(path, &["time", "survival", "lower", "upper"])?;
    if rows.is_empty() {
        return Err(PageError::Contract { path: path.to_path_buf(), message: "expected at least one row (time 0), found none".into() });
    }
    // a CI limit that is undefined (empty) is drawn at the estimate
    let points = rows
        .iter()
        .map(|r| {
            let s = r[1];
            (r[0], s, if r[2].is_finite() { r[2] } else { s }, if r[3].is_finite() { r[3] } else { s })
        })
        .collect();
    Ok(KmCurve { label: label.to_string(), points, at_risk })
}

fn roc_points(path: &Path) -> Result<Vec<(f64, f64)>> {
    let rows = read_csv(path, &["fpr", "tpr"])?;
    let mut pts: Vec<(f64, f64)> = rows.iter().map(|r| (r[0], r[1])).collect();
    if let Some(i) = pts.iter().position(|p| !(p.0.is_finite() && p.1.is_finite())) {
        return Err(PageError::Contract { path: path.to_path_buf(), message: format!("row {}: expected finite fpr and tpr", i + 1) });
    }
    if pts.is_empty() {
        pts.push((0.0, 0.0));
    }
    Ok(pts)
}

fn cal_bins(bins: &[CalBin]) -> Vec<CalibrationBin> {
    let finite = |x: Option<f64>| x.filter(|v| v.is_finite());
    bins.iter()
        .filter_map(|b| {
            let (p, o) = (finite(b.predicted)?, finite(b.observed)?);
            Some(CalibrationBin { predicted: p, observed: o, lower: finite(b.lower).unwrap_or(o), upper: finite(b.upper).unwrap_or(o) })
        })
        .collect()
}

pub(super) struct Perf {
    pub(super) view: PerfView,
    pub(super) figures: Vec<(String, String)>,
}

pub(super) fn performance(sources: &Sources, opts: &Options) -> Result<Option<Perf>> {
    let metrics: Option<(Metrics, PathBuf)> = match &sources.evaluate {
        Some(d) => Some((read_json(&d.join("metrics.json"))?, d.clone())),
        None => None,
    };
    let cals: Vec<(Calibration, PathBuf)> = sources
        .calibrate
        .iter()
        .map(|(arm, d)| {
            read_json::<Calibration>(&d.join("calibration.json")).map(|mut c| {
                c.arm = arm.clone();
                (c, d.clone())
            })
        })
        .collect::<Result<_>>()?;
    if metrics.is_none() && cals.is_empty() {
        return Ok(None);
    }
    // every arm known to the page, in matrix order
    let mut arms: Vec<String> = sources.arms.clone();
    for a in metrics.iter().flat_map(|(m, _)| m.arms.iter().map(|a| a.arm.clone())).chain(cals.iter().map(|(c, _)| c.arm.clone())) {
        if !arms.contains(&a) {
            arms.push(a);
        }
    }
    let (arm, arm_choice) = match &opts.arm {
        Some(a) if arms.contains(a) => (a.clone(), "chosen by the spec (`arm`)".to_string()),
        Some(a) => return Err(PageError::UnknownArm { arm: a.clone(), available: arms.join(", ") }),
        None => {
            // the last arm that has results: in a matrix it is the last combination listed
            let with_results: Vec<&String> = arms
                .iter()
                .filter(|a| metrics.iter().any(|(m, _)| m.arms.iter().any(|x| &x.arm == *a)) || cals.iter().any(|(c, _)| &c.arm == *a))
                .collect();
            let a = with_results.last().map(|s| (*s).clone()).unwrap_or_default();
            (a, "the last arm of the matrix (set `arm` to choose another)".to_string())
        }
    };
    let mut figures = Vec::new();
    let mut view = PerfView {
        arm: arm.clone(),
        arm_choice,
        reference: String::new(),
        horizons: Vec::new(),
        bootstrap: "—".into(),
        ci: "—".into(),
        groups_method: String::new(),
        arms: Vec::new(),
        groups: Vec::new(),
        logrank: "—".into(),
        hazard_ratio: "—".into(),
        aucs: Vec::new(),
        calibration: Vec::new(),
        cal_horizon: String::new(),
        cal_bin_sizes: String::new(),
        has_metrics: metrics.is_some(),
        has_km: false,
        has_roc: false,
        has_forest: false,
        has_calibration: false,
        has_recalibrated: false,
    };
    if let Some((m, dir)) = &metrics {
        let mpath = dir.join("metrics.json");
        let reference = m.reference.clone().or_else(|| m.arms.first().map(|a| a.arm.clone())).unwrap_or_default();
        view.reference = reference.clone();
        view.horizons = m.horizons.iter().map(|h| days(*h)).collect();
        view.bootstrap = m.bootstrap.map(|b| b.to_string()).unwrap_or_else(|| "—".into());
        view.ci = m.ci.map(|c| format!("{:.0}%", 100.0 * c)).unwrap_or_else(|| "—".into());
        view.groups_method = m.groups.clone().unwrap_or_default();
        let ordered: Vec<&ArmMetrics> = {
            let mut v: Vec<&ArmMetrics> = m.arms.iter().collect();
            v.sort_by_key(|a| arms.iter().position(|x| x == &a.arm).unwrap_or(usize::MAX));
            v
        };
        for a in &ordered {
            let cmp = m.comparisons.iter().find(|c| c.arm == a.arm);
            view.arms.push(ArmRow {
                arm: a.arm.clone(),
                shown: a.arm == arm,
                reference: a.arm == reference,
                n: a.n,
                events: a.events,
                repeats: a.repeats.map(|r| r.to_string()).unwrap_or_else(|| "—".into()),
                harrell_c: est(&a.harrell_c, 3),
                uno_c: a.uno_c.as_ref().map(|e| est(e, 3)).unwrap_or_else(|| "—".into()),
                mean_auc: num(a.mean_auc, 3),
                aucs: m.horizons.iter().map(|h| a.auc.iter().find(|x| x.horizon == *h).map(|x| est(&x.est, 3)).unwrap_or_else(|| "—".into())).collect(),
                briers: m.horizons.iter().map(|h| a.brier.iter().find(|x| x.horizon == *h).map(|x| est(&x.est, 3)).unwrap_or_else(|| "—".into())).collect(),
                ibs: a.ibs.as_ref().map(|e| est(e, 3)).unwrap_or_else(|| "—".into()),
                hazard_ratio: a.risk_groups.as_ref().and_then(|r| r.hazard_ratio.as_ref()).map(|e| est(e, 2)).unwrap_or_else(|| "—".into()),
                logrank_p: pval(a.risk_groups.as_ref().and_then(|r| r.logrank.as_ref()).and_then(|l| l.p)),
                delta_c: cmp.map(|c| est(&c.delta_c, 3)).unwrap_or_else(|| if a.arm == reference { "reference".into() } else { "—".into() }),
                delta_p: pval(cmp.and_then(|c| c.p)),
            });
        }
        // forest plot of ΔC against the reference
        let rows: Vec<ForestRow> = ordered
            .iter()
            .filter_map(|a| m.comparisons.iter().find(|c| c.arm == a.arm && c.reference == reference))
            .filter_map(|c| match (c.delta_c.estimate, c.delta_c.lower, c.delta_c.upper) {
                (Some(e), Some(l), Some(u)) if e.is_finite() && l.is_finite() && u.is_finite() => {
                    Some(ForestRow { label: c.arm.clone(), estimate: e, lower: l, upper: u })
                }
                _ => None,
            })
            .collect();
        if !rows.is_empty() {
            figures.push(("forest".to_string(), plots::forest_plot(&rows, 0.0, &format!("ΔC (Harrell) vs {reference}"))?));
            view.has_forest = true;
        }
        if let Some(a) = m.arms.iter().find(|x| x.arm == arm) {
            if let Some(rg) = &a.risk_groups {
                let mut curves = Vec::new();
                for g in &rg.groups {
                    if let Some(km) = &g.km {
                        let p = contained(dir, km, &mpath)?;
                        let at_risk = if g.at_risk.len() == rg.at_risk_times.len() { g.at_risk.clone() } else { vec![0; rg.at_risk_times.len()] };
                        curves.push(km_curve(&p, &g.label, at_risk)?);
                    }
                    view.groups.push(GroupRow { label: g.label.clone(), n: g.n, events: g.events });
                }
                let p = rg.logrank.as_ref().and_then(|l| l.p);
                view.logrank = match rg.logrank.as_ref() {
                    Some(l) => format!("χ² = {} (df {}), {}", num(l.chi2, 2), num(l.df, 0), p_eq(l.p)),
                    None => "—".into(),
                };
                view.hazard_ratio = rg.hazard_ratio.as_ref().map(|e| format!("{} ({})", est(e, 2), p_eq(e.p))).unwrap_or_else(|| "—".into());
                view.groups_method = rg.method.clone();
                if !curves.is_empty() {
                    figures.push(("km".to_string(), plots::km_plot(&curves, &rg.at_risk_times, &format!("Kaplan-Meier by risk group: {arm}"), p)?));
                    view.has_km = true;
                }
            }
            let mut rocs = Vec::new();
            for x in &a.auc {
                let p = contained(dir, &x.roc, &mpath)?;
                rocs.push(RocCurve { label: format!("{} d", days(x.horizon)), points: roc_points(&p)?, auc: x.est.estimate.unwrap_or(f64::NAN) });
                view.aucs.push(format!("{} d: AUC {}", days(x.horizon), est(&x.est, 3)));
            }
            if !rocs.is_empty() {
                if rocs.iter().any(|r| !r.auc.is_finite()) {
                    return Err(PageError::Contract { path: mpath.clone(), message: format!("arm {arm}: expected a finite AUC at every horizon") });
                }
                figures.push(("roc".to_string(), plots::roc_plot(&rocs, &format!("Time-dependent ROC: {arm}"))?));
                view.has_roc = true;
            }
        }
    }
    let mut ordered_cals: Vec<&(Calibration, PathBuf)> = cals.iter().collect();
    ordered_cals.sort_by_key(|(c, _)| arms.iter().position(|x| x == &c.arm).unwrap_or(usize::MAX));
    for (c, _) in &ordered_cals {
        view.calibration.push(CalRow {
            arm: c.arm.clone(),
            horizon: days(c.horizon),
            n: c.n,
            events: c.events,
            slope: num(c.stats.slope, 2),
            intercept: num(c.stats.intercept, 2),
            ici: num(c.stats.ici, 3),
            e50: num(c.stats.e50, 3),
            e90: num(c.stats.e90, 3),
            recal: c.recalibrated.as_ref().map(|r| format!("slope {}, ICI {}", num(r.slope, 2), num(r.ici, 3))),
        });
    }
    if let Some((c, dir)) = ordered_cals.iter().find(|(c, _)| c.arm == arm) {
        let bins = cal_bins(&c.stats.bins);
        if bins.is_empty() {
            return Err(PageError::Contract { path: dir.join("calibration.json"), message: "expected at least one bin with finite predicted and observed risk".into() });
        }
        view.cal_horizon = days(c.horizon);
        view.cal_bin_sizes = c.stats.bins.iter().map(|b| b.n.to_string()).collect::<Vec<_>>().join(", ");
        let rb = c.recalibrated.as_ref().map(|r| cal_bins(&r.bins)).unwrap_or_default();
        figures.push(("calibration".to_string(), plots::calibration_plot_over(&bins, c.horizon, &rb)?));
        view.has_calibration = true;
        if c.recalibrated.is_some() && !rb.is_empty() {
            figures.push(("calibration_recalibrated".to_string(), plots::calibration_plot_over(&rb, c.horizon, &bins)?));
            view.has_recalibrated = true;
        }
    }
    Ok(Some(Perf { view, figures }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_show_their_interval() {
        assert_eq!(est(&Est { estimate: Some(0.7), lower: Some(0.6), upper: Some(0.8), p: None }, 2), "0.70 (0.60–0.80)");
        assert_eq!(est(&Est { estimate: Some(0.7), lower: None, upper: Some(0.8), p: None }, 2), "0.70");
    }
}
