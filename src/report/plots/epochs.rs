//! Training curves of the attention-MIL networks: one line per network over epochs, the epoch
//! chosen for each marked with a dot.
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::canvas::{self, LegendItem, Mark, Rect, Scale};
use super::style::{self, Style};
use super::{finite, ticks, PlotError};

/// One network's curve over epochs (1-based), with the epoch chosen for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochCurve {
    /// Legend label (`fold 0`).
    pub label: String,
    /// Value after each epoch (index + 1 = epoch).
    pub values: Vec<f64>,
    /// The chosen epoch (1-based).
    #[serde(default)]
    pub chosen: Option<usize>,
}

/// A training-curve figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochData {
    pub curves: Vec<EpochCurve>,
    /// What the y axis shows (`Training loss`).
    pub y_title: String,
}

const P: &str = "training curve";

/// Draws the figure.
///
/// # Errors
/// No curve, a curve without values, or a non-finite number.
pub fn draw(d: &EpochData, title: &str, style: &Style) -> Result<(String, Rect), PlotError> {
    if d.curves.is_empty() {
        return Err(PlotError::Empty { plot: P, what: "curve" });
    }
    let (mut lo, mut hi, mut n) = (f64::INFINITY, f64::NEG_INFINITY, 1usize);
    for c in &d.curves {
        if c.values.is_empty() {
            return Err(PlotError::Empty { plot: P, what: "value in every curve" });
        }
        for (i, &v) in c.values.iter().enumerate() {
            finite(P, || format!("curve {:?} epoch {}", c.label, i + 1), v)?;
            lo = lo.min(v);
            hi = hi.max(v);
        }
        n = n.max(c.values.len());
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 1.0 };
    let (lo, hi) = (lo - pad, hi + pad);
    let (yt, _) = ticks::nice(lo, hi, 5);
    let yk = ticks::labelled(&yt);
    let x_hi = n.max(2) as f64;
    let (xt, _) = ticks::nice(1.0, x_hi, 6);
    let xt: Vec<f64> = xt.into_iter().filter(|x| x.fract() == 0.0).collect();
    let xk = ticks::labelled(&xt);
    let mut legend: Vec<LegendItem> = d
        .curves
        .iter()
        .enumerate()
        .map(|(i, c)| LegendItem {
            label: c.label.clone(),
            color: style::series(i),
            mark: Mark::Line { dashed: false },
        })
        .collect();
    if d.curves.iter().any(|c| c.chosen.is_some()) {
        legend.push(LegendItem { label: "chosen epoch".into(), color: style::INK, mark: Mark::Point });
    }
    let spec = canvas::FrameSpec {
        title,
        legend: &legend,
        y_ticks: &yk,
        x_ticks: &xk,
        y_title: Some(&d.y_title),
        extra_left: 0,
        min_left: 0,
        aspect: 0.62,
        plot_height: None,
        below: 0,
    };
    let f = canvas::frame(style, &spec);
    let sc = Scale { x: (1.0, x_hi), y: (lo, hi), plot: f.plot };
    let plot = f.plot;
    super::svg(P, (f.w, f.h), |root| {
        canvas::decorations(P, root, style, &f)?;
        for (i, c) in d.curves.iter().enumerate() {
            let col = style::series(i);
            let pts: Vec<(f64, f64)> = c.values.iter().enumerate().map(|(k, &v)| ((k + 1) as f64, v)).collect();
            root.draw(&PathElement::new(sc.path(&pts), col.stroke_width(style.line()))).map_err(canvas::draw_err(P))?;
            if let Some(e) = c.chosen.filter(|&e| e >= 1 && e <= c.values.len()) {
                root.draw(&Circle::new(sc.at(e as f64, c.values[e - 1]), style.pt(2.0), col.filled()))
                    .map_err(canvas::draw_err(P))?;
            }
        }
        canvas::axes(P, root, style, &f, &sc, &xk, &yk, "Epoch", Some(&d.y_title))
    })
    .map(|s| (s, plot))
}
