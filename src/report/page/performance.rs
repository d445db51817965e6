//! The performance section (`templates/report/performance.html`): the evaluate stage's
//! `metrics.json` (arms table, ΔC forest plot, KM by risk group, time-dependent ROC from its
//! curve CSVs) and each arm's calibrate `calibration.json` (calibration table and plots), read
//! through their contracts ([`crate::contracts::metrics`], [`crate::contracts::calibration`]).
//! Every number shown is read, none computed.
use std::path::Path;

use serde::Serialize;

use super::format::{num, p_eq, pval};
use super::{Keys, Options, PageError, Result, Sources};
use crate::contracts::calibration::{Bin, CalibrationJson, CalibrationSummary};
use crate::contracts::metrics::{ArmMetrics, HazardRatio, KmCsv, Metrics, RocCsv, Spread};
use crate::contracts::{CalibrateOutput, EvaluateOutput};
use crate::report::plots::ticks::count;
use crate::report::plots::{
    CalibrationBin, CalibrationData, Figure, FigureData, ForestData, ForestRow, KmData, KmGroup, KmStep, RocCurve,
    RocData,
};
use crate::survival::BootstrapCi;

/// An estimate with its confidence interval as shown (`None` or NaN: undefined), from the
/// `metrics.json` contract's intervals and hazard ratios.
#[derive(Debug, Clone, Default)]
pub struct Est {
    pub estimate: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub p: Option<f64>,
}

impl From<&BootstrapCi> for Est {
    fn from(b: &BootstrapCi) -> Est {
        Est { estimate: Some(b.estimate), lower: Some(b.lower), upper: Some(b.upper), p: None }
    }
}

impl From<&HazardRatio> for Est {
    fn from(h: &HazardRatio) -> Est {
        Est { estimate: Some(h.estimate), lower: Some(h.lower), upper: Some(h.upper), p: Some(h.p) }
    }
}

/// A number the writer may have left undefined (`null` in the file, NaN here) as an option.
fn defined(x: f64) -> Option<f64> {
    (!x.is_nan()).then_some(x)
}

fn est(e: &Est, digits: usize) -> String {
    match (e.lower, e.upper) {
        (Some(l), Some(u)) if l.is_finite() && u.is_finite() => {
            // a dash between a negative limit and a number reads as a minus: "to" then
            let sep = if l < 0.0 || u < 0.0 { " to " } else { "–" };
            let signed = |x: f64| num(Some(x), digits).replacen('-', "−", 1);
            format!("{} ({}{sep}{})", signed(e.estimate.unwrap_or(f64::NAN)), signed(l), signed(u))
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
    /// Holm-adjusted p of an exploratory comparison (the primary's own p).
    delta_p_adjusted: String,
    /// `primary`, `exploratory`, or empty for the reference.
    role: String,
    /// ΔC across repeats: SD (range).
    delta_spread: String,
    /// Its intervals (and its comparison's) are conditional while the others are split-aware.
    conditional: bool,
}

/// One arm's spread of its metrics across CV repeats: `SD (min–max)`.
#[derive(Debug, Serialize)]
struct SpreadRow {
    arm: String,
    harrell_c: String,
    uno_c: String,
    aucs: Vec<String>,
    ibs: String,
}

fn spread_text(s: &Spread) -> String {
    format!("{} ({}–{})", num(Some(s.sd), 3), num(Some(s.min), 3), num(Some(s.max), 3))
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
    /// `30 patients`
    patients: String,
    /// `1 event`
    events: String,
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
    /// How the intervals were formed, in words.
    intervals: String,
    /// Metrics across CV repeats (empty with one repeat).
    spreads: Vec<SpreadRow>,
    /// The spec names a primary comparison.
    has_primary: bool,
    has_km: bool,
    has_roc: bool,
    has_forest: bool,
    has_calibration: bool,
    has_recalibrated: bool,
    /// Every arm's warnings: its model's (from `metrics.json`, copied from `model.json`) and its
    /// recalibration's (from `calibration.json`).
    warnings: Vec<WarningRow>,
}

#[derive(Debug, Serialize)]
struct WarningRow {
    arm: String,
    shown: bool,
    source: &'static str,
    text: String,
}

fn km_steps(path: &Path) -> Result<Vec<KmStep>> {
    let km = KmCsv::read(path)?;
    Ok(km
        .rows
        .iter()
        .map(|r| KmStep {
            time: r.time,
            survival: r.survival,
            lower: r.lower,
            upper: r.upper,
            at_risk: r.at_risk,
            events: r.events,
            censored: r.censored,
        })
        .collect())
}

fn roc_points(path: &Path) -> Result<Vec<(f64, f64)>> {
    Ok(RocCsv::read(path)?.rows.iter().map(|r| (r.fpr, r.tpr)).collect())
}

fn cal_bins(bins: &[Bin]) -> Vec<CalibrationBin> {
    let finite = |x: f64| x.is_finite().then_some(x);
    bins.iter()
        .filter_map(|b| {
            let (p, o) = (finite(b.predicted)?, finite(b.observed)?);
            Some(CalibrationBin {
                predicted: p,
                observed: o,
                lower: finite(b.lower).unwrap_or(o),
                upper: finite(b.upper).unwrap_or(o),
            })
        })
        .collect()
}

pub(super) struct Perf {
    pub(super) view: PerfView,
    pub(super) figures: Vec<Figure>,
}

impl PerfView {
    /// The arm of the main figures.
    pub(super) fn arm(&self) -> &str {
        &self.arm
    }
}

pub(super) fn performance(sources: &Sources, opts: &Options, keys: &Keys) -> Result<Option<Perf>> {
    let time = &opts.time;
    let metrics: Option<(Metrics, &EvaluateOutput)> = match &sources.evaluate {
        Some(e) => Some((e.metrics()?, e)),
        None => None,
    };
    let cals: Vec<(String, CalibrationJson, &CalibrateOutput)> =
        sources.calibrate.iter().map(|(arm, c)| Ok((arm.clone(), c.calibration()?, c))).collect::<Result<_>>()?;
    if metrics.is_none() && cals.is_empty() {
        return Ok(None);
    }
    // every arm known to the page, in matrix order
    let mut arms: Vec<String> = sources.arms.clone();
    for a in metrics
        .iter()
        .flat_map(|(m, _)| m.arms.iter().map(|a| a.arm.clone()))
        .chain(cals.iter().map(|(a, _, _)| a.clone()))
    {
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
                .filter(|a| {
                    metrics.iter().any(|(m, _)| m.arms.iter().any(|x| &x.arm == *a))
                        || cals.iter().any(|(c, _, _)| c == *a)
                })
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
        intervals: String::new(),
        spreads: Vec::new(),
        has_primary: false,
        has_km: false,
        has_roc: false,
        has_forest: false,
        has_calibration: false,
        has_recalibrated: false,
        warnings: Vec::new(),
    };
    if let Some((m, out)) = &metrics {
        let mpath = out.metrics_path();
        let reference = if m.reference.is_empty() {
            m.arms.first().map(|a| a.arm.clone()).unwrap_or_default()
        } else {
            m.reference.clone()
        };
        view.reference = reference.clone();
        view.horizons = m.horizons.iter().map(|h| time.horizon_label(*h)).collect();
        view.bootstrap = m.bootstrap.to_string();
        view.ci = format!("{:.0}%", 100.0 * m.ci);
        view.groups_method = m.groups.name().to_string();
        let repeats = m.arms.iter().map(|a| a.repeats).max().unwrap_or(1);
        view.intervals = if m.intervals == "refit" {
            format!(
                "{} intervals that include the variability of the split and of the fitted models: the estimate (mean over \
                 {repeats} CV repeat{}) ± z·SE, the SE from a whole-procedure bootstrap with refitting ({} replicates)",
                view.ci,
                if repeats == 1 { "" } else { "s" },
                m.refit_replicates
            )
        } else {
            format!(
                "{} percentile bootstrap intervals ({} resamples) of the fixed out-of-fold predictions: conditional on \
                 the fitted models and {}",
                view.ci,
                m.bootstrap,
                if repeats == 1 { "on the one CV split (split variability not included)".to_string() } else {
                    format!("averaged over {repeats} CV repeats")
                }
            )
        };
        if m.arms.iter().any(|a| a.intervals.as_deref() == Some("conditional")) {
            view.intervals.push_str(&format!(
                "; arms marked † are attention-MIL networks, which are not refitted per replicate: their intervals, and \
                 those of their comparisons, are {} percentile bootstrap intervals ({} resamples) of the fixed \
                 out-of-fold predictions, conditional on the fitted networks",
                view.ci, m.bootstrap
            ));
        }
        view.has_primary = m.primary.is_some();
        let ordered: Vec<&ArmMetrics> = {
            let mut v: Vec<&ArmMetrics> = m.arms.iter().collect();
            v.sort_by_key(|a| arms.iter().position(|x| x == &a.arm).unwrap_or(usize::MAX));
            v
        };
        for a in &ordered {
            let cmp = m.comparisons.iter().find(|c| c.arm == a.arm);
            view.arms.push(ArmRow {
                conditional: a.intervals.as_deref() == Some("conditional"),
                arm: a.arm.clone(),
                shown: a.arm == arm,
                reference: a.arm == reference,
                n: a.n,
                events: a.events,
                repeats: a.repeats.to_string(),
                harrell_c: est(&(&a.harrell_c).into(), 3),
                uno_c: est(&(&a.uno_c.interval).into(), 3),
                mean_auc: num(Some(a.mean_auc), 3),
                aucs: m
                    .horizons
                    .iter()
                    .map(|h| {
                        a.auc
                            .iter()
                            .find(|x| x.horizon == *h)
                            .map(|x| est(&(&x.interval).into(), 3))
                            .unwrap_or_else(|| "—".into())
                    })
                    .collect(),
                briers: m
                    .horizons
                    .iter()
                    .map(|h| {
                        a.brier
                            .iter()
                            .find(|x| x.horizon == *h)
                            .map(|x| est(&(&x.interval).into(), 3))
                            .unwrap_or_else(|| "—".into())
                    })
                    .collect(),
                ibs: est(&(&a.ibs.interval).into(), 3),
                hazard_ratio: a
                    .risk_groups
                    .hazard_ratio
                    .as_ref()
                    .map(|e| est(&e.into(), 2))
                    .unwrap_or_else(|| "—".into()),
                logrank_p: pval(a.risk_groups.logrank.as_ref().and_then(|l| defined(l.p))),
                delta_c: cmp.map(|c| est(&(&c.delta_c).into(), 3)).unwrap_or_else(|| {
                    if a.arm == reference {
                        "reference".into()
                    } else {
                        "—".into()
                    }
                }),
                delta_p: pval(cmp.and_then(|c| defined(c.p))),
                delta_p_adjusted: pval(cmp.and_then(|c| defined(c.p_adjusted))),
                role: cmp.map(|c| c.role.clone()).unwrap_or_default(),
                delta_spread: cmp
                    .and_then(|c| c.across_repeats.as_ref())
                    .map(spread_text)
                    .unwrap_or_else(|| "—".into()),
            });
            if let Some(s) = &a.across_repeats {
                view.spreads.push(SpreadRow {
                    arm: a.arm.clone(),
                    harrell_c: spread_text(&s.harrell_c),
                    uno_c: spread_text(&s.uno_c),
                    aucs: s.auc.iter().map(spread_text).collect(),
                    ibs: spread_text(&s.ibs),
                });
            }
        }
        // forest plot of ΔC against the reference
        let rows: Vec<ForestRow> = ordered
            .iter()
            .filter_map(|a| m.comparisons.iter().find(|c| c.arm == a.arm && c.reference == reference))
            .filter_map(|c| match (c.delta_c.estimate, c.delta_c.lower, c.delta_c.upper) {
                (e, l, u) if e.is_finite() && l.is_finite() && u.is_finite() => Some(ForestRow {
                    label: c.arm.clone(),
                    estimate: e,
                    lower: l,
                    upper: u,
                    arm_index: arms.iter().position(|x| x == &c.arm).unwrap_or(0),
                }),
                _ => None,
            })
            .collect();
        let evaluate = keys.of(crate::contracts::EVALUATE, None);
        if !rows.is_empty() {
            figures.push(Figure {
                name: "forest".into(),
                title: format!("ΔC (Harrell) vs {reference}"),
                arm: None,
                horizon: None,
                on_page: true,
                sources: evaluate.clone(),
                data: FigureData::Forest(ForestData {
                    rows,
                    reference: 0.0,
                    x_title: format!("ΔC (Harrell) vs the reference arm ({} CI)", view.ci),
                }),
            });
            view.has_forest = true;
        }
        for (ai, a) in ordered.iter().enumerate() {
            let shown = a.arm == arm;
            let name = |kind: &str| if shown { kind.to_string() } else { format!("{kind}.{ai}") };
            let rg = &a.risk_groups;
            let mut groups = Vec::new();
            for g in &rg.groups {
                if let Some(km) = &g.km {
                    let p = out.curve_path(km)?;
                    groups.push(KmGroup { label: g.label.clone(), steps: km_steps(&p)? });
                }
                if shown {
                    view.groups.push(GroupRow {
                        label: g.label.clone(),
                        patients: count(g.n, "patient", "patients"),
                        events: count(g.events, "event", "events"),
                    });
                }
            }
            let p = rg.logrank.as_ref().and_then(|l| defined(l.p));
            if shown {
                view.logrank = match rg.logrank.as_ref() {
                    Some(l) => format!(
                        "χ² = {} (df {}), {}",
                        num(Some(l.chi2), 2),
                        num(Some(l.df as f64), 0),
                        p_eq(defined(l.p))
                    ),
                    None => "—".into(),
                };
                view.hazard_ratio = rg
                    .hazard_ratio
                    .as_ref()
                    .map(|h| format!("{} ({})", est(&h.into(), 2), p_eq(defined(h.p))))
                    .unwrap_or_else(|| "—".into());
                view.groups_method = rg.method.name().to_string();
            }
            if !groups.is_empty() {
                figures.push(Figure {
                    name: name("km"),
                    title: format!("Kaplan–Meier by risk group: {}", a.arm),
                    arm: Some(a.arm.clone()),
                    horizon: None,
                    on_page: shown,
                    sources: evaluate.clone(),
                    data: FigureData::Km(KmData { groups, p_value: p, ci: m.ci }),
                });
                view.has_km |= shown;
            }
            let mut rocs = Vec::new();
            for x in &a.auc {
                let p = out.curve_path(&x.roc)?;
                rocs.push(RocCurve { horizon: x.horizon, points: roc_points(&p)?, auc: x.interval.estimate });
                if shown {
                    view.aucs.push(format!("{}: AUC {}", time.horizon_label(x.horizon), est(&(&x.interval).into(), 3)));
                }
            }
            if !rocs.is_empty() {
                if rocs.iter().any(|r| !r.auc.is_finite()) {
                    return Err(PageError::Contract {
                        path: mpath.clone(),
                        message: format!("arm {}: expected a finite AUC at every horizon", a.arm),
                    });
                }
                figures.push(Figure {
                    name: name("roc"),
                    title: format!("Time-dependent ROC: {}", a.arm),
                    arm: Some(a.arm.clone()),
                    horizon: None,
                    on_page: shown,
                    sources: evaluate.clone(),
                    data: FigureData::Roc(RocData { curves: rocs }),
                });
                view.has_roc |= shown;
            }
        }
    }
    let mut ordered_cals: Vec<&(String, CalibrationJson, &CalibrateOutput)> = cals.iter().collect();
    ordered_cals.sort_by_key(|(a, _, _)| arms.iter().position(|x| x == a).unwrap_or(usize::MAX));
    for a in &arms {
        let row = |source, text: &String| WarningRow { arm: a.clone(), shown: *a == arm, source, text: text.clone() };
        for m in metrics.iter().flat_map(|(m, _)| m.arms.iter()).filter(|m| &m.arm == a) {
            view.warnings.extend(m.warnings.iter().map(|w| row("model", w)));
        }
        for (_, c, _) in ordered_cals.iter().filter(|(x, _, _)| x == a) {
            let r = c.recalibrated.iter().flat_map(|r| r.warnings.iter());
            view.warnings.extend(r.map(|w| row("calibration", w)));
        }
    }
    for (a, c, _) in &ordered_cals {
        let b = &c.before;
        view.calibration.push(CalRow {
            arm: a.clone(),
            horizon: time.horizon_label(c.horizon),
            n: c.n,
            events: c.events,
            slope: num(Some(b.slope), 2),
            intercept: num(Some(b.intercept), 2),
            ici: num(Some(b.ici), 3),
            e50: num(Some(b.e50), 3),
            e90: num(Some(b.e90), 3),
            recal: c
                .recalibrated
                .as_ref()
                .map(|r| format!("slope {}, ICI {}", num(Some(r.summary.slope), 2), num(Some(r.summary.ici), 3))),
        });
    }
    for (ci, (a, c, out)) in ordered_cals.iter().enumerate() {
        let shown = *a == arm;
        let bins = cal_bins(&c.before.bins);
        if bins.is_empty() {
            return Err(PageError::Contract {
                path: out.calibration_path(),
                message: "expected at least one bin with finite predicted and observed risk".into(),
            });
        }
        if shown {
            view.cal_horizon = time.horizon_label(c.horizon);
            view.cal_bin_sizes = c.before.bins.iter().map(|b| b.n.to_string()).collect::<Vec<_>>().join(", ");
        }
        let rb = c.recalibrated.as_ref().map(|r| cal_bins(&r.summary.bins)).unwrap_or_default();
        let name = |kind: &str| if shown { kind.to_string() } else { format!("{kind}.{ci}") };
        let sources = keys.of(crate::contracts::CALIBRATE, Some(a));
        let data = |bins: Vec<CalibrationBin>, others: Vec<CalibrationBin>, s: &CalibrationSummary| CalibrationData {
            horizon: c.horizon,
            bins,
            others,
            curve: s.curve.iter().map(|p| (p.predicted, p.observed)).collect(),
            histogram: s.histogram.clone(),
            observed_by: "Kaplan–Meier".into(),
            ci: c.ci,
        };
        figures.push(Figure {
            name: name("calibration"),
            title: format!("Calibration at {}: {a}", time.horizon_label(c.horizon)),
            arm: Some(a.clone()),
            horizon: Some(c.horizon),
            on_page: shown,
            sources: sources.clone(),
            data: FigureData::Calibration(data(bins.clone(), rb.clone(), &c.before)),
        });
        view.has_calibration |= shown;
        if let Some(r) = c.recalibrated.as_ref().filter(|_| !rb.is_empty()) {
            figures.push(Figure {
                name: name("calibration_recalibrated"),
                title: format!("Calibration at {} after recalibration: {a}", time.horizon_label(c.horizon)),
                arm: Some(a.clone()),
                horizon: Some(c.horizon),
                on_page: shown,
                sources,
                data: FigureData::Calibration(data(rb, bins, &r.summary)),
            });
            view.has_recalibrated |= shown;
        }
    }
    Ok(Some(Perf { view, figures }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_show_their_interval() {
        assert_eq!(
            est(&Est { estimate: Some(0.7), lower: Some(0.6), upper: Some(0.8), p: None }, 2),
            "0.70 (0.60–0.80)"
        );
        assert_eq!(est(&Est { estimate: Some(0.7), lower: None, upper: Some(0.8), p: None }, 2), "0.70");
    }
}
