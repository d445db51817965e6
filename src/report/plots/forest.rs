//! Forest plot: one row per arm (estimate as a dot, CI as a bar, in the arm's colour), row
//! labels on the left, the line of no difference dashed.
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use serde::{Deserialize, Serialize};

use super::canvas::{self, Rect, Scale, GAP};
use super::style::{self, Style};
use super::{finite, font, ticks, PlotError};

/// One row: label, estimate and CI, and the arm's position in the experiment (its colour).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestRow {
    pub label: String,
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
    /// Index of the arm in the experiment's arm order.
    pub arm_index: usize,
}

/// A forest figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestData {
    pub rows: Vec<ForestRow>,
    /// The value of no difference (0 for ΔC).
    pub reference: f64,
    /// The x axis title (`ΔC (Harrell) vs <reference arm>`).
    pub x_title: String,
}

const P: &str = "forest";

/// Draws the figure.
///
/// # Errors
/// No row, or a non-finite number.
pub fn draw(d: &ForestData, title: &str, style: &Style) -> Result<(String, Rect), PlotError> {
    if d.rows.is_empty() {
        return Err(PlotError::Empty { plot: P, what: "row" });
    }
    finite(P, || "the reference".to_string(), d.reference)?;
    let (mut lo, mut hi) = (d.reference, d.reference);
    for r in &d.rows {
        for v in [r.estimate, r.lower, r.upper] {
            finite(P, || format!("row {:?}", r.label), v)?;
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    let pad = if hi > lo { (hi - lo) * 0.08 } else { 0.05 };
    let (lo, hi) = (lo - pad, hi + pad);
    let (t, _) = ticks::nice(lo, hi, 5);
    let tk = ticks::labelled(&t);
    let small = style.small();
    let label_w = d.rows.iter().map(|r| font::width(&r.label, small, false)).fold(0.0, f64::max).ceil() as i32;
    let row_h = (style.text() * 2.0).round() as i32;
    let n = d.rows.len();
    let spec = canvas::FrameSpec {
        title,
        legend: &[],
        y_ticks: &[],
        x_ticks: &tk,
        y_title: None,
        extra_left: label_w + GAP,
        min_left: 0,
        aspect: 0.0,
        plot_height: Some(row_h * n as i32),
        below: 0,
    };
    let f = canvas::frame(style, &spec);
    let sc = Scale { x: (lo, hi), y: (0.0, n as f64), plot: f.plot };
    let plot = f.plot;
    super::svg(P, (f.w, f.h), |root| {
        canvas::decorations(P, root, style, &f)?;
        super::roc::dashed(root, &sc, (d.reference, 0.0), (d.reference, n as f64), style, P)?;
        let y_of = |i: usize| n as f64 - i as f64 - 0.5;
        for (i, r) in d.rows.iter().enumerate() {
            let c = style::series(r.arm_index);
            root.draw(&PathElement::new(
                vec![sc.at(r.lower, y_of(i)), sc.at(r.upper, y_of(i))],
                c.stroke_width(style.line()),
            ))
            .map_err(canvas::draw_err(P))?;
            root.draw(&Circle::new(sc.at(r.estimate, y_of(i)), style.pt(2.5), c.filled()))
                .map_err(canvas::draw_err(P))?;
            let (_, y) = sc.at(lo, y_of(i));
            canvas::text(P, root, &r.label, (canvas::PAD, y), small, style::INK, false, (HPos::Left, VPos::Center))?;
        }
        canvas::axes(P, root, style, &f, &sc, &tk, &[], &d.x_title, None)
    })
    .map(|s| (s, plot))
}
