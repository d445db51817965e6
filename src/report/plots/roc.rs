//! Time-dependent ROC (cumulative cases, dynamic controls): one curve per horizon, the
//! diagonal of no discrimination dashed, each horizon's AUC in the legend.
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::canvas::{self, LegendItem, Mark, Rect, Scale};
use super::style::{self, Style};
use super::{finite, ticks, PlotError};

/// One ROC curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RocCurve {
    /// The horizon, in the data's time unit (the legend shows it in the display unit).
    pub horizon: f64,
    /// Points `(false positive rate, true positive rate)` in [0, 1].
    pub points: Vec<(f64, f64)>,
    /// Area under the curve.
    pub auc: f64,
}

/// A ROC figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RocData {
    pub curves: Vec<RocCurve>,
}

const P: &str = "ROC";

/// Dashes of a reference line from `a` to `b` (user units): segments of `dash` with gaps.
pub(super) fn dashes(a: (i32, i32), b: (i32, i32), dash: i32) -> Vec<Vec<(i32, i32)>> {
    let (dx, dy) = ((b.0 - a.0) as f64, (b.1 - a.1) as f64);
    let len = (dx * dx + dy * dy).sqrt();
    if len < 1.0 {
        return Vec::new();
    }
    let n = (len / (2.0 * dash as f64)).ceil() as i32;
    (0..n)
        .map(|k| {
            let s = (2 * k * dash) as f64 / len;
            let e = (((2 * k + 1) * dash) as f64 / len).min(1.0);
            let at = |f: f64| ((a.0 as f64 + f * dx).round() as i32, (a.1 as f64 + f * dy).round() as i32);
            vec![at(s), at(e)]
        })
        .collect()
}

/// Draws a dashed line between two data points.
pub(super) fn dashed(
    root: &canvas::Area,
    sc: &Scale,
    a: (f64, f64),
    b: (f64, f64),
    style: &Style,
    plot: &'static str,
) -> Result<(), PlotError> {
    for seg in dashes(sc.at(a.0, a.1), sc.at(b.0, b.1), style.pt(3.0)) {
        root.draw(&PathElement::new(seg, style::REFERENCE.stroke_width(style.thin())))
            .map_err(canvas::draw_err(plot))?;
    }
    Ok(())
}

/// Draws the figure.
///
/// # Errors
/// No curve, a curve without points, or a non-finite number.
pub fn draw(d: &RocData, title: &str, style: &Style) -> Result<(String, Rect), PlotError> {
    if d.curves.is_empty() {
        return Err(PlotError::Empty { plot: P, what: "curve" });
    }
    for c in &d.curves {
        if c.points.is_empty() {
            return Err(PlotError::Empty { plot: P, what: "point in every curve" });
        }
        for (i, &(x, y)) in c.points.iter().enumerate() {
            finite(P, || format!("curve at {} point {i}", c.horizon), x)?;
            finite(P, || format!("curve at {} point {i}", c.horizon), y)?;
        }
        finite(P, || format!("AUC at {}", c.horizon), c.auc)?;
    }
    let t: Vec<f64> = (0..=5).map(|k| k as f64 * 0.2).collect();
    let tk = ticks::labelled(&t);
    let colour = |i: usize| style::series(i + 2);
    let mut legend: Vec<LegendItem> = d
        .curves
        .iter()
        .enumerate()
        .map(|(i, c)| LegendItem {
            label: format!("{}: AUC {:.3}", style.time.horizon_label(c.horizon), c.auc),
            color: colour(i),
            mark: Mark::Line { dashed: false },
        })
        .collect();
    legend.push(LegendItem { label: "chance".into(), color: style::REFERENCE, mark: Mark::Line { dashed: true } });
    let spec = canvas::FrameSpec {
        title,
        legend: &legend,
        y_ticks: &tk,
        x_ticks: &tk,
        y_title: Some("True positive rate"),
        extra_left: 0,
        min_left: 0,
        aspect: 0.85,
        plot_height: None,
        below: 0,
    };
    let f = canvas::frame(style, &spec);
    let sc = Scale { x: (0.0, 1.0), y: (0.0, 1.0), plot: f.plot };
    let plot = f.plot;
    super::svg(P, (f.w, f.h), |root| {
        canvas::decorations(P, root, style, &f)?;
        dashed(root, &sc, (0.0, 0.0), (1.0, 1.0), style, P)?;
        for (i, c) in d.curves.iter().enumerate() {
            root.draw(&PathElement::new(sc.path(&c.points), colour(i).stroke_width(style.line())))
                .map_err(canvas::draw_err(P))?;
        }
        canvas::axes(P, root, style, &f, &sc, &tk, &tk, "False positive rate", Some("True positive rate"))
    })
    .map(|s| (s, plot))
}
