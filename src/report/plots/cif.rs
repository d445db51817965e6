//! Cumulative incidence by risk group (Aalen–Johansen): per group a solid line for the event
//! of interest and a dashed line for each competing cause, in the group's colour.
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::canvas::{self, LegendItem, Mark, Rect, Scale};
use super::km::steps;
use super::style::{self, Style};
use super::{finite, ticks, PlotError};

/// One cumulative-incidence curve: a risk group's estimate for one cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CifLine {
    /// Legend label (`high: metastasis`).
    pub label: String,
    /// The risk group's label (its colour).
    pub group: String,
    /// Whether this is a competing cause (drawn dashed).
    pub competing: bool,
    /// Steps `(time, cif)`, increasing time, data unit.
    pub points: Vec<(f64, f64)>,
}

/// A cumulative-incidence figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CifData {
    pub lines: Vec<CifLine>,
}

const P: &str = "cumulative incidence";

/// Draws the figure.
///
/// # Errors
/// No line, a line without points, or a non-finite number.
pub fn draw(d: &CifData, title: &str, style: &Style) -> Result<(String, Rect), PlotError> {
    if d.lines.is_empty() {
        return Err(PlotError::Empty { plot: P, what: "curve" });
    }
    let mut t_max: f64 = 0.0;
    let mut y_max: f64 = 0.0;
    for l in &d.lines {
        if l.points.is_empty() {
            return Err(PlotError::Empty { plot: P, what: "point in every curve" });
        }
        for (i, &(t, f)) in l.points.iter().enumerate() {
            y_max = y_max.max(finite(P, || format!("curve {:?} point {i}", l.label), f)?);
            t_max = t_max.max(finite(P, || format!("curve {:?} point {i}", l.label), t)?);
        }
    }
    let time = style.time;
    let t_max = if t_max > 0.0 { time.show(t_max) } else { 1.0 };
    let (xt, _) = ticks::nice(0.0, t_max, 5);
    let xk = ticks::labelled(&xt);
    let y_hi = ((y_max * 1.1 * 10.0).ceil() / 10.0).clamp(0.1, 1.0);
    let (yt, _) = ticks::nice(0.0, y_hi, 5);
    let yk = ticks::labelled(&yt);
    let mut groups: Vec<&str> = Vec::new();
    for l in &d.lines {
        if !groups.contains(&l.group.as_str()) {
            groups.push(&l.group);
        }
    }
    let colour = |g: &str| style::risk_group(g, groups.iter().position(|x| *x == g).unwrap_or(0));
    let legend: Vec<LegendItem> = d
        .lines
        .iter()
        .map(|l| LegendItem {
            label: l.label.clone(),
            color: colour(&l.group),
            mark: Mark::Line { dashed: l.competing },
        })
        .collect();
    let spec = canvas::FrameSpec {
        title,
        legend: &legend,
        y_ticks: &yk,
        x_ticks: &xk,
        y_title: Some("Cumulative incidence"),
        extra_left: 0,
        min_left: 0,
        aspect: 0.62,
        plot_height: None,
        below: 0,
    };
    let f = canvas::frame(style, &spec);
    let x_hi = xt.last().copied().unwrap_or(t_max).max(t_max * 1.02);
    let sc = Scale { x: (0.0, x_hi), y: (0.0, y_hi), plot: f.plot };
    let plot = f.plot;
    super::svg(P, (f.w, f.h), |root| {
        canvas::decorations(P, root, style, &f)?;
        for l in &d.lines {
            let c = colour(&l.group);
            let pts: Vec<(f64, f64)> = l.points.iter().map(|&(t, y)| (time.show(t), y)).collect();
            let path = sc.path(&steps(&pts, 0.0));
            if l.competing {
                for w in path.windows(2) {
                    for seg in super::roc::dashes(w[0], w[1], style.pt(3.0)) {
                        root.draw(&PathElement::new(seg, c.stroke_width(style.line()))).map_err(canvas::draw_err(P))?;
                    }
                }
            } else {
                root.draw(&PathElement::new(path, c.stroke_width(style.line()))).map_err(canvas::draw_err(P))?;
            }
        }
        canvas::axes(P, root, style, &f, &sc, &xk, &yk, &time.title(), Some("Cumulative incidence"))
    })
    .map(|s| (s, plot))
}
