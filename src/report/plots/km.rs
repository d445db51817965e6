//! Kaplan–Meier by risk group: one step curve per group with its pointwise CI band (light,
//! labelled in the legend), censor marks (`|` at each censoring time on the curve), the
//! log-rank p in the legend band, and the numbers at risk in a table under the x axis, one
//! column under each tick, one row per group in its colour.
//!
//! The numbers at risk at a tick `t` are read off the recorded curve: the `at_risk` (number
//! with `T ≥ time`) of the first recorded step at or after `t`, 0 past the last; the steps are
//! every distinct observed time, so this is the count at `t`, not an approximation.
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use serde::{Deserialize, Serialize};

use super::canvas::{self, LegendItem, Mark, Rect, Scale, GAP};
use super::style::{self, Style};
use super::{finite, font, ticks, PlotError};

/// One recorded step of a Kaplan–Meier curve (the evaluate stage's `km_<group>.csv` row).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KmStep {
    pub time: f64,
    pub survival: f64,
    /// CI limits (NaN where undefined; the band is not drawn there).
    #[serde(deserialize_with = "crate::util::f64_or_nan")]
    pub lower: f64,
    #[serde(deserialize_with = "crate::util::f64_or_nan")]
    pub upper: f64,
    /// Number with `T ≥ time`.
    pub at_risk: usize,
    pub events: usize,
    pub censored: usize,
}

/// One risk group's curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KmGroup {
    /// `low`, `mid`, `high`.
    pub label: String,
    /// Steps in increasing time, every distinct observed time.
    pub steps: Vec<KmStep>,
}

/// A Kaplan–Meier figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KmData {
    pub groups: Vec<KmGroup>,
    /// Log-rank p across the groups.
    #[serde(default)]
    pub p_value: Option<f64>,
    /// Confidence level of the bands (0.95).
    pub ci: f64,
}

impl KmGroup {
    /// Number at risk at `t` (data unit): see the module doc.
    pub fn at_risk(&self, t: f64) -> usize {
        self.steps.iter().find(|s| s.time >= t).map(|s| s.at_risk).unwrap_or(0)
    }
}

const P: &str = "Kaplan-Meier";

fn check(d: &KmData) -> Result<f64, PlotError> {
    if d.groups.is_empty() {
        return Err(PlotError::Empty { plot: P, what: "group" });
    }
    let mut t_max: f64 = 0.0;
    for g in &d.groups {
        if g.steps.is_empty() {
            return Err(PlotError::Empty { plot: P, what: "step in every group" });
        }
        for (i, s) in g.steps.iter().enumerate() {
            finite(P, || format!("group {:?} step {i}", g.label), s.time)?;
            finite(P, || format!("group {:?} step {i}", g.label), s.survival)?;
            t_max = t_max.max(s.time);
        }
    }
    if let Some(p) = d.p_value {
        finite(P, || "the log-rank p value".to_string(), p)?;
    }
    Ok(if t_max > 0.0 { t_max } else { 1.0 })
}

/// Step-function vertices of `(t, y)` starting at `(0, y0)`.
pub(super) fn steps(points: &[(f64, f64)], y0: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len() * 2 + 1);
    let mut prev = y0;
    if points.first().is_none_or(|p| p.0 > 0.0) {
        out.push((0.0, y0));
    }
    for &(t, y) in points {
        out.push((t, prev));
        out.push((t, y));
        prev = y;
    }
    out
}

/// `p = 0.012`, `p < 0.001`.
pub(super) fn format_p(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".to_string()
    } else {
        format!("p = {p:.3}")
    }
}

/// Draws the figure.
///
/// # Errors
/// No group, a group without steps, non-finite times or survival.
pub fn draw(d: &KmData, title: &str, style: &Style) -> Result<(String, Rect), PlotError> {
    let t_max_data = check(d)?;
    let time = style.time;
    let t_max = time.show(t_max_data);
    let (xt, _) = ticks::nice(0.0, t_max, 5);
    let xk = ticks::labelled(&xt);
    let yt: Vec<f64> = (0..=5).map(|k| k as f64 * 0.2).collect();
    let yk = ticks::labelled(&yt);
    let colour = |i: usize, g: &KmGroup| style::risk_group(&g.label, i);
    let mut legend: Vec<LegendItem> = d
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| LegendItem {
            label: style::risk_group_label(&g.label),
            color: colour(i, g),
            mark: Mark::LineBand,
        })
        .collect();
    legend.push(LegendItem {
        label: format!("{} CI", ticks::round_label(d.ci * 100.0, 1) + "%"),
        color: style::BACKGROUND,
        mark: Mark::Bar,
    });
    legend.push(LegendItem { label: "| censored".into(), color: style::INK, mark: Mark::Text });
    if let Some(p) = d.p_value {
        legend.push(LegendItem { label: format!("log-rank {}", format_p(p)), color: style::INK, mark: Mark::Text });
    }
    let small = style.small();
    let row_h = (small * 1.45).round() as i32;
    let label_w = d
        .groups
        .iter()
        .map(|g| font::width(&style::risk_group_label(&g.label), small, false))
        .fold(0.0, f64::max)
        .ceil() as i32;
    let table_title = "Number at risk";
    let spec = canvas::FrameSpec {
        title,
        legend: &legend,
        y_ticks: &yk,
        x_ticks: &xk,
        y_title: Some("Survival probability"),
        extra_left: 0,
        // the group labels, then half the widest count (centred under the first tick)
        min_left: canvas::PAD + label_w + 2 * GAP + (font::width("0000", small, false) / 2.0).ceil() as i32,
        aspect: 0.62,
        plot_height: None,
        below: GAP + row_h * (d.groups.len() as i32 + 1),
    };
    let f = canvas::frame(style, &spec);
    let x_hi = xt.last().copied().unwrap_or(t_max).max(t_max * 1.02);
    let sc = Scale { x: (0.0, x_hi), y: (0.0, 1.0), plot: f.plot };
    let plot = f.plot;
    super::svg(P, (f.w, f.h), |root| {
        canvas::decorations(P, root, style, &f)?;
        for (i, g) in d.groups.iter().enumerate() {
            let c = colour(i, g);
            let band: Vec<&KmStep> = g.steps.iter().filter(|s| s.lower.is_finite() && s.upper.is_finite()).collect();
            if !band.is_empty() {
                let lo: Vec<(f64, f64)> = band.iter().map(|s| (time.show(s.time), s.lower.clamp(0.0, 1.0))).collect();
                let hi: Vec<(f64, f64)> = band.iter().map(|s| (time.show(s.time), s.upper.clamp(0.0, 1.0))).collect();
                let mut poly = steps(&hi, 1.0);
                poly.extend(steps(&lo, 1.0).into_iter().rev());
                root.draw(&Polygon::new(sc.path(&poly), c.mix(0.16).filled())).map_err(canvas::draw_err(P))?;
            }
            let curve: Vec<(f64, f64)> = g.steps.iter().map(|s| (time.show(s.time), s.survival)).collect();
            root.draw(&PathElement::new(sc.path(&steps(&curve, 1.0)), c.stroke_width(style.line())))
                .map_err(canvas::draw_err(P))?;
            let half = style.pt(2.0);
            for s in g.steps.iter().filter(|s| s.censored > 0) {
                let (x, y) = sc.at(time.show(s.time), s.survival);
                root.draw(&PathElement::new(vec![(x, y - half), (x, y + half)], c.stroke_width(style.thin())))
                    .map_err(canvas::draw_err(P))?;
            }
        }
        canvas::axes(P, root, style, &f, &sc, &xk, &yk, &time.title(), Some("Survival probability"))?;
        // numbers at risk: one column under each tick
        let mut y = f.below_y + GAP;
        canvas::text(P, root, table_title, (canvas::PAD, y), small, style::INK, true, (HPos::Left, VPos::Top))?;
        for (i, g) in d.groups.iter().enumerate() {
            y += row_h;
            let c = colour(i, g);
            canvas::text(
                P,
                root,
                &style::risk_group_label(&g.label),
                (canvas::PAD, y),
                small,
                c,
                false,
                (HPos::Left, VPos::Top),
            )?;
            for &t in &xt {
                let n = g.at_risk(time.data_of(t));
                let (x, _) = sc.at(t, 0.0);
                canvas::text(P, root, &n.to_string(), (x, y), small, style::INK, false, (HPos::Center, VPos::Top))?;
            }
        }
        Ok(())
    })
    .map(|s| (s, plot))
}
