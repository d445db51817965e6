//! The competing-risks section (`templates/report/competing.html`), present only when the
//! evaluate stage wrote `competing_metrics.json` ([`crate::contracts::competing_metrics`]):
//! the Aalen–Johansen cumulative incidence of the event of interest and of each competing cause
//! by risk group (one figure, the main arm), a table of every arm's competing-risks AUC and
//! Brier score of the predicted cumulative incidence, and each arm's calibrate
//! `competing_calibration.json` (predicted vs observed cumulative incidence at the horizon).
//! Every number shown is read, none computed.
use serde::Serialize;

use super::format::{num, p_eq};
use super::{Keys, Result, Sources};
use crate::contracts::competing_metrics::{CompetingArm, CompetingMetrics};
use crate::report::plots::{CifData, CifLine, Figure, FigureData, TimeAxis};
use crate::survival::BootstrapCi;

#[derive(Debug, Serialize)]
struct ArmRow {
    arm: String,
    method: String,
    n: usize,
    events: usize,
    competing: usize,
    aucs: Vec<String>,
    briers: Vec<String>,
    observed: Vec<String>,
    predicted: Vec<String>,
}

#[derive(Debug, Serialize)]
struct CalRow {
    arm: String,
    horizon: String,
    predicted: String,
    observed: String,
    ratio: String,
    bins: String,
}

/// The section's template context.
#[derive(Debug, Serialize)]
pub(super) struct CompetingView {
    arm: String,
    cause: String,
    competing_causes: String,
    horizons: Vec<String>,
    groups: String,
    gray: String,
    has_figure: bool,
    arms: Vec<ArmRow>,
    calibration: Vec<CalRow>,
}

pub(super) struct Competing {
    pub(super) view: CompetingView,
    pub(super) figures: Vec<Figure>,
}

fn ci(b: &BootstrapCi) -> String {
    if b.lower.is_finite() && b.upper.is_finite() {
        format!("{} ({}–{})", num(Some(b.estimate), 3), num(Some(b.lower), 3), num(Some(b.upper), 3))
    } else {
        num(Some(b.estimate), 3)
    }
}

fn lines(a: &CompetingArm) -> Vec<CifLine> {
    let mut out = Vec::new();
    for g in &a.groups {
        for c in &g.curves {
            out.push(CifLine {
                label: format!("{}: {}", crate::report::plots::style::risk_group_label(&g.label), c.name),
                group: g.label.clone(),
                competing: c.cause != 1,
                points: c.time.iter().copied().zip(c.cif.iter().copied()).collect(),
            });
        }
    }
    out
}

/// The section, or `None` outside a competing-risks cohort. `main_arm`: the arm of the main
/// figures (the performance section's choice), else the last arm.
pub(super) fn competing(
    sources: &Sources,
    main_arm: Option<&str>,
    keys: &Keys,
    time: &TimeAxis,
) -> Result<Option<Competing>> {
    let Some(m): Option<CompetingMetrics> = (match &sources.evaluate {
        Some(e) => e.competing_metrics()?,
        None => None,
    }) else {
        return Ok(None);
    };
    let Some(main) = m.arms.iter().find(|a| Some(a.arm.as_str()) == main_arm).or(m.arms.last()) else {
        return Ok(None);
    };
    let mut figures = Vec::new();
    let mut has_figure = false;
    for (i, a) in m.arms.iter().enumerate() {
        let l = lines(a);
        if l.is_empty() {
            continue;
        }
        let on_page = a.arm == main.arm;
        has_figure |= on_page;
        figures.push(Figure {
            name: if on_page { "cif".to_string() } else { format!("cif.{i}") },
            title: format!("Cumulative incidence by risk group: {}", a.arm),
            arm: Some(a.arm.clone()),
            horizon: None,
            on_page,
            sources: keys.of(crate::contracts::EVALUATE, None),
            data: FigureData::Cif(CifData { lines: l }),
        });
    }
    let arms = m
        .arms
        .iter()
        .map(|a| ArmRow {
            arm: a.arm.clone(),
            method: a.method.replace('_', "-"),
            n: a.n,
            events: a.events,
            competing: a.competing_events,
            aucs: a.horizons.iter().map(|h| ci(&h.auc)).collect(),
            briers: a.horizons.iter().map(|h| ci(&h.brier)).collect(),
            observed: a.horizons.iter().map(|h| num(Some(h.observed_cif), 3)).collect(),
            predicted: a.horizons.iter().map(|h| num(Some(h.mean_predicted_cif), 3)).collect(),
        })
        .collect();
    let mut calibration = Vec::new();
    for (arm, c) in &sources.calibrate {
        if let Some(cc) = c.competing_calibration()? {
            calibration.push(CalRow {
                arm: arm.clone(),
                horizon: time.horizon_label(cc.horizon),
                predicted: num(Some(cc.mean_predicted), 3),
                observed: format!(
                    "{} ({}–{})",
                    num(Some(cc.observed), 3),
                    num(Some(cc.observed_lower), 3),
                    num(Some(cc.observed_upper), 3)
                ),
                ratio: num(Some(cc.observed_expected), 2),
                bins: cc
                    .bins
                    .iter()
                    .map(|b| format!("{} / {}", num(Some(b.predicted), 2), num(Some(b.observed), 2)))
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
    }
    let view = CompetingView {
        arm: main.arm.clone(),
        cause: main.cause.clone(),
        competing_causes: main.competing_causes.join(", "),
        horizons: m.horizons.iter().map(|&h| time.horizon_label(h)).collect(),
        groups: format!("{:?}", m.groups).to_lowercase(),
        gray: main.gray.as_ref().map_or("not computable".into(), |g| {
            format!("χ² = {} (df {}), {}", num(Some(g.statistic), 2), g.df, p_eq(Some(g.p)))
        }),
        has_figure,
        arms,
        calibration,
    };
    Ok(Some(Competing { view, figures }))
}
