//! Calibration at a horizon: observed against predicted risk per risk-quantile bin (dot, with
//! the observed risk's CI as a whisker), the smoothed calibration curve, the diagonal of
//! perfect calibration (dashed), and the distribution of the predictions as a histogram along
//! the bottom of the plot (its tallest bar a sixth of the axis). Both axes span `[0, lim]`,
//! `lim` the bins and CIs rounded up to a tenth, so a low-risk cohort is not crowded into a
//! corner.
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::canvas::{self, LegendItem, Mark, Rect, Scale};
use super::style::{self, Style};
use super::{finite, ticks, PlotError};

/// One calibration bin: mean predicted probability, observed probability and its CI.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub predicted: f64,
    pub observed: f64,
    pub lower: f64,
    pub upper: f64,
}

/// A calibration figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationData {
    /// The horizon, data unit.
    pub horizon: f64,
    pub bins: Vec<CalibrationBin>,
    /// Bins of a companion figure whose axes this one shares (before / after recalibration).
    #[serde(default)]
    pub others: Vec<CalibrationBin>,
    /// Smoothed curve `(predicted, observed)`, empty when not recorded.
    #[serde(default)]
    pub curve: Vec<(f64, f64)>,
    /// Counts of predictions in equal-width bins over `[0, 1]`, empty when not recorded.
    #[serde(default)]
    pub histogram: Vec<usize>,
    /// How the observed risk was estimated (`Kaplan–Meier`).
    pub observed_by: String,
    /// Confidence level of the whiskers.
    pub ci: f64,
}

const P: &str = "calibration";

/// Draws the figure.
///
/// # Errors
/// No bin, or a non-finite number in a bin or the horizon.
pub fn draw(d: &CalibrationData, title: &str, style: &Style) -> Result<(String, Rect), PlotError> {
    if d.bins.is_empty() {
        return Err(PlotError::Empty { plot: P, what: "bin" });
    }
    finite(P, || "the horizon".to_string(), d.horizon)?;
    for (i, b) in d.bins.iter().enumerate() {
        for v in [b.predicted, b.observed, b.lower, b.upper] {
            finite(P, || format!("bin {i}"), v)?;
        }
    }
    let top = d
        .bins
        .iter()
        .chain(&d.others)
        .flat_map(|b| [b.predicted, b.observed, b.upper])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let lim = ((top * 1.1 * 10.0).ceil() / 10.0).clamp(0.1, 1.0);
    let (t, _) = ticks::nice(0.0, lim, 5);
    let tk = ticks::labelled(&t);
    let c = style::series(0);
    let mut legend = vec![LegendItem {
        label: format!("Observed ({}% CI)", ticks::round_label(d.ci * 100.0, 1)),
        color: c,
        mark: Mark::PointWhisker,
    }];
    let curve: Vec<(f64, f64)> =
        d.curve.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite() && *x <= lim && *y <= lim).collect();
    if curve.len() > 1 {
        legend.push(LegendItem { label: "Smoothed".into(), color: c, mark: Mark::Line { dashed: false } });
    }
    legend.push(LegendItem { label: "Ideal".into(), color: style::REFERENCE, mark: Mark::Line { dashed: true } });
    let hist_max = d.histogram.iter().copied().max().unwrap_or(0);
    if hist_max > 0 {
        legend.push(LegendItem { label: "Predictions".into(), color: style::BACKGROUND, mark: Mark::Bar });
    }
    let horizon = style.time.horizon_label(d.horizon);
    let y_title = format!("Observed risk ({})", d.observed_by);
    let spec = canvas::FrameSpec {
        title,
        legend: &legend,
        y_ticks: &tk,
        x_ticks: &tk,
        y_title: Some(&y_title),
        extra_left: 0,
        min_left: 0,
        aspect: 0.85,
        plot_height: None,
        below: 0,
    };
    let f = canvas::frame(style, &spec);
    let sc = Scale { x: (0.0, lim), y: (0.0, lim), plot: f.plot };
    let plot = f.plot;
    super::svg(P, (f.w, f.h), |root| {
        canvas::decorations(P, root, style, &f)?;
        if hist_max > 0 {
            let k = d.histogram.len() as f64;
            for (i, &n) in d.histogram.iter().enumerate() {
                let (a, b) = (i as f64 / k, (i + 1) as f64 / k);
                if n == 0 || a >= lim {
                    continue;
                }
                let h = lim / 6.0 * n as f64 / hist_max as f64;
                let (x0, y0) = sc.at(a, h);
                let (x1, y1) = sc.at(b.min(lim), 0.0);
                root.draw(&Rectangle::new([(x0 + 1, y0), (x1 - 1, y1)], style::BACKGROUND.filled()))
                    .map_err(canvas::draw_err(P))?;
            }
        }
        super::roc::dashed(root, &sc, (0.0, 0.0), (lim, lim), style, P)?;
        if curve.len() > 1 {
            root.draw(&PathElement::new(sc.path(&curve), c.stroke_width(style.line()))).map_err(canvas::draw_err(P))?;
        }
        for b in &d.bins {
            root.draw(&PathElement::new(
                vec![sc.at(b.predicted, b.lower), sc.at(b.predicted, b.upper)],
                c.stroke_width(style.thin()),
            ))
            .map_err(canvas::draw_err(P))?;
            root.draw(&Circle::new(sc.at(b.predicted, b.observed), style.pt(2.0), c.filled()))
                .map_err(canvas::draw_err(P))?;
        }
        canvas::axes(P, root, style, &f, &sc, &tk, &tk, &format!("Predicted risk at {horizon}"), Some(&y_title))
    })
    .map(|s| (s, plot))
}
