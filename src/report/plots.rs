//! Report plots: pure functions that turn already-computed curves into self-contained inline SVG
//! strings (plotters' `SVGBackend` drawing into a `String`; no files, no fonts, no network).
//!
//! Owns: the Kaplan–Meier plot with CI bands, the numbers-at-risk table under the axis and the
//! log-rank p; the time-dependent ROC plot; the calibration plot; the forest plot of ΔC; the
//! training curves of the attention-MIL networks.
//! It computes no statistics: the inputs come from [`crate::survival`] and the evaluation stages.
//!
//! Text: plotters' SVG backend escapes `<`, `>`, `&`, `"` and `'` in every text it writes, so a
//! hostile label cannot produce markup (tested). Without the `ttf` feature plotters measures text
//! with its naive estimator and writes `font-family="sans-serif"`, which the browser resolves.
//!
//! Determinism: the same input gives the same bytes (plotters formats numbers with `{}`; nothing
//! here depends on time, hashing order or threads).
//!
//! # Errors
//! [`PlotError`]: empty inputs, non-finite numbers, mismatched lengths, and drawing failures.
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use thiserror::Error;

use crate::survival::kaplan_meier::KmCurvePoint;

/// Errors of the plot functions.
#[derive(Debug, Error)]
pub enum PlotError {
    /// A plot was asked for with nothing to draw.
    #[error("{plot} plot: expected at least one {what}, found none")]
    Empty { plot: &'static str, what: &'static str },
    /// A number that must be finite was not.
    #[error("{plot} plot: expected finite numbers, found {value} in {what}")]
    NonFinite { plot: &'static str, what: String, value: f64 },
    /// Two inputs that must have the same length did not.
    #[error("{plot} plot: expected {expected} {what}, found {found}")]
    Length { plot: &'static str, what: String, expected: usize, found: usize },
    /// plotters failed while drawing.
    #[error("{plot} plot: drawing failed: {message}")]
    Draw { plot: &'static str, message: String },
}

/// One Kaplan–Meier curve (one risk group).
#[derive(Debug, Clone, PartialEq)]
pub struct KmCurve {
    /// Group label shown in the legend and the at-risk table.
    pub label: String,
    /// Steps `(time, survival, lower, upper)` in increasing time; the curve starts at (0, 1)
    /// when the first time is after 0.
    pub points: Vec<(f64, f64, f64, f64)>,
    /// Numbers at risk at each of the `at_risk_times` given to [`km_plot`].
    pub at_risk: Vec<usize>,
}

impl KmCurve {
    /// Builds a curve from the survival module's curve points.
    pub fn from_points(label: impl Into<String>, points: &[KmCurvePoint], at_risk: Vec<usize>) -> Self {
        KmCurve {
            label: label.into(),
            points: points.iter().map(|p| (p.time, p.survival, p.lower, p.upper)).collect(),
            at_risk,
        }
    }
}

/// One ROC curve: label, points `(false positive rate, true positive rate)`, AUC.
#[derive(Debug, Clone, PartialEq)]
pub struct RocCurve {
    /// Curve label (e.g. the horizon), shown with its AUC in the legend.
    pub label: String,
    /// Points `(fpr, tpr)` in [0, 1].
    pub points: Vec<(f64, f64)>,
    /// Area under the curve.
    pub auc: f64,
}

/// One calibration bin: mean predicted probability, observed probability and its CI.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrationBin {
    /// Mean predicted probability of the event by the horizon.
    pub predicted: f64,
    /// Observed (Kaplan–Meier) probability of the event by the horizon.
    pub observed: f64,
    /// Lower bound of the observed probability's CI.
    pub lower: f64,
    /// Upper bound of the observed probability's CI.
    pub upper: f64,
}

/// One forest-plot row: label, estimate and CI (e.g. ΔC of an arm against the reference).
#[derive(Debug, Clone, PartialEq)]
pub struct ForestRow {
    /// Row label (arm name).
    pub label: String,
    /// Point estimate.
    pub estimate: f64,
    /// Lower CI bound.
    pub lower: f64,
    /// Upper CI bound.
    pub upper: f64,
}

const W: u32 = 640;
const H: u32 = 420;
const FONT: &str = "sans-serif";

fn palette(i: usize) -> RGBColor {
    // Okabe–Ito, colour-blind safe.
    const P: [RGBColor; 7] = [
        RGBColor(0, 114, 178),
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
        RGBColor(0, 0, 0),
    ];
    P[i % P.len()]
}

fn draw_err<E: std::fmt::Debug>(plot: &'static str) -> impl Fn(E) -> PlotError {
    move |e| PlotError::Draw { plot, message: format!("{e:?}") }
}

fn finite(plot: &'static str, what: impl Fn() -> String, v: f64) -> Result<f64, PlotError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(PlotError::NonFinite { plot, what: what(), value: v })
    }
}

fn format_p(p: f64) -> String {
    if p < 0.001 {
        "log-rank p < 0.001".to_string()
    } else {
        format!("log-rank p = {p:.3}")
    }
}

/// Runs `f` on a fresh SVG drawing area of `size` and returns the SVG text.
fn render<F>(plot: &'static str, size: (u32, u32), f: F) -> Result<String, PlotError>
where
    F: FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), PlotError>,
{
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err(plot))?;
        f(&root)?;
        root.present().map_err(draw_err(plot))?;
    }
    Ok(buf)
}

/// The axes of a probability (0 to 1.02) against time (0 to 1.02·`t_max`), with the caption,
/// margins and labels the Kaplan–Meier and cumulative-incidence plots share.
fn time_probability_chart<'a, 'b>(
    plot: &'static str,
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    t_max: f64,
    y_desc: &str,
) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>, PlotError> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(110)
        .build_cartesian_2d(0.0..t_max * 1.02, 0.0..1.02)
        .map_err(draw_err(plot))?;
    chart.configure_mesh().disable_mesh().x_desc("time").y_desc(y_desc).draw().map_err(draw_err(plot))?;
    Ok(chart)
}

/// Step-function vertices of `(t, y)` starting at `(0, y0)`.
fn steps(points: &[(f64, f64)], y0: f64) -> Vec<(f64, f64)> {
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

/// Kaplan–Meier plot: one step curve (with its CI band) per group, the numbers at risk at
/// `at_risk_times` in a table under the x axis, and the log-rank `p_value` in the top-right corner.
///
/// # Errors
/// No group, a group without points, non-finite numbers, or a group whose `at_risk` length differs
/// from `at_risk_times`.
pub fn km_plot(
    groups: &[KmCurve],
    at_risk_times: &[f64],
    title: &str,
    p_value: Option<f64>,
) -> Result<String, PlotError> {
    const P: &str = "Kaplan-Meier";
    if groups.is_empty() {
        return Err(PlotError::Empty { plot: P, what: "group" });
    }
    let mut t_max: f64 = 0.0;
    for g in groups {
        if g.points.is_empty() {
            return Err(PlotError::Empty { plot: P, what: "point in every group" });
        }
        if g.at_risk.len() != at_risk_times.len() {
            return Err(PlotError::Length {
                plot: P,
                what: format!("numbers at risk for group {:?} (one per at-risk time)", g.label),
                expected: at_risk_times.len(),
                found: g.at_risk.len(),
            });
        }
        for (i, &(t, s, lo, hi)) in g.points.iter().enumerate() {
            for v in [t, s, lo, hi] {
                finite(P, || format!("group {:?} point {i}", g.label), v)?;
            }
            t_max = t_max.max(t);
        }
    }
    for (i, &t) in at_risk_times.iter().enumerate() {
        t_max = t_max.max(finite(P, || format!("at-risk time {i}"), t)?);
    }
    if let Some(p) = p_value {
        finite(P, || "the log-rank p value".to_string(), p)?;
    }
    if t_max <= 0.0 {
        t_max = 1.0;
    }
    let row_h = 18u32;
    let table_h = 30 + row_h * groups.len() as u32;
    let size = (W, H + table_h);
    render(P, size, |root| {
        let (upper, _lower) = root.split_vertically(H);
        let mut chart = time_probability_chart(P, &upper, title, t_max, "survival probability")?;
        for (i, g) in groups.iter().enumerate() {
            let c = palette(i);
            let lo: Vec<(f64, f64)> = g.points.iter().map(|p| (p.0, p.2)).collect();
            let hi: Vec<(f64, f64)> = g.points.iter().map(|p| (p.0, p.3)).collect();
            let mut band = steps(&hi, 1.0);
            band.extend(steps(&lo, 1.0).into_iter().rev());
            chart.draw_series(std::iter::once(Polygon::new(band, c.mix(0.15).filled()))).map_err(draw_err(P))?;
            let curve: Vec<(f64, f64)> = g.points.iter().map(|p| (p.0, p.1)).collect();
            chart
                .draw_series(LineSeries::new(steps(&curve, 1.0), c.stroke_width(2)))
                .map_err(draw_err(P))?
                .label(g.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .draw()
            .map_err(draw_err(P))?;
        if let Some(p) = p_value {
            let (x, y) = chart.backend_coord(&(t_max * 1.02, 1.02));
            let style = TextStyle::from((FONT, 14).into_font()).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Right,
                plotters::style::text_anchor::VPos::Top,
            ));
            root.draw(&Text::new(format_p(p), (x - 6, y + 6), style)).map_err(draw_err(P))?;
        }
        // Numbers-at-risk table under the axis: one row per group, one column per time.
        let title_y = H as i32 + 4;
        root.draw(&Text::new("Number at risk", (10, title_y), (FONT, 13).into_font())).map_err(draw_err(P))?;
        for (gi, g) in groups.iter().enumerate() {
            let y = title_y + 20 + (gi as i32) * row_h as i32;
            let c = palette(gi);
            root.draw(&Text::new(g.label.clone(), (10, y), (FONT, 12).into_font().color(&c))).map_err(draw_err(P))?;
            for (&t, &n) in at_risk_times.iter().zip(&g.at_risk) {
                let (x, _) = chart.backend_coord(&(t, 0.0));
                let style = TextStyle::from((FONT, 12).into_font()).pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Top,
                ));
                root.draw(&Text::new(n.to_string(), (x, y), style)).map_err(draw_err(P))?;
            }
        }
        Ok(())
    })
}

/// Time-dependent ROC plot: one curve per entry (legend "label (AUC = x.xxx)") and the diagonal.
///
/// # Errors
/// No curve, a curve without points, or a non-finite number.
pub fn roc_plot(curves: &[RocCurve], title: &str) -> Result<String, PlotError> {
    const P: &str = "ROC";
    if curves.is_empty() {
        return Err(PlotError::Empty { plot: P, what: "curve" });
    }
    for c in curves {
        if c.points.is_empty() {
            return Err(PlotError::Empty { plot: P, what: "point in every curve" });
        }
        for (i, &(x, y)) in c.points.iter().enumerate() {
            finite(P, || format!("curve {:?} point {i}", c.label), x)?;
            finite(P, || format!("curve {:?} point {i}", c.label), y)?;
        }
        finite(P, || format!("curve {:?} AUC", c.label), c.auc)?;
    }
    render(P, (W, H), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(draw_err(P))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("false positive rate")
            .y_desc("true positive rate")
            .draw()
            .map_err(draw_err(P))?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                RGBColor(150, 150, 150).stroke_width(1),
            )))
            .map_err(draw_err(P))?;
        for (i, c) in curves.iter().enumerate() {
            let col = palette(i);
            chart
                .draw_series(LineSeries::new(c.points.iter().copied(), col.stroke_width(2)))
                .map_err(draw_err(P))?
                .label(format!("{} (AUC = {:.3})", c.label, c.auc))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .draw()
            .map_err(draw_err(P))?;
        Ok(())
    })
}

/// Calibration plot at `horizon`: observed vs predicted probability per bin with the observed CI
/// as a vertical error bar, and the diagonal of perfect calibration. Axes span [0, 1].
///
/// # Errors
/// No bin, or a non-finite number.
pub fn calibration_plot(bins: &[CalibrationBin], horizon: f64) -> Result<String, PlotError> {
    calibration_plot_over(bins, horizon, &[])
}

/// [`calibration_plot`] on axes that also fit the bins of `others` (so that plots drawn side by
/// side, e.g. before and after recalibration, share their scale).
pub fn calibration_plot_over(
    bins: &[CalibrationBin],
    horizon: f64,
    others: &[CalibrationBin],
) -> Result<String, PlotError> {
    const P: &str = "calibration";
    if bins.is_empty() {
        return Err(PlotError::Empty { plot: P, what: "bin" });
    }
    finite(P, || "the horizon".to_string(), horizon)?;
    for (i, b) in bins.iter().enumerate() {
        for v in [b.predicted, b.observed, b.lower, b.upper] {
            finite(P, || format!("bin {i}"), v)?;
        }
    }
    // both axes span [0, lim]: the bins and their CIs with a margin, rounded up to a tenth, so
    // a low-risk cohort's bins are not crowded into a corner (the diagonal is still y = x)
    let top = bins
        .iter()
        .chain(others)
        .flat_map(|b| [b.predicted, b.observed, b.upper])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let lim = ((top * 1.1 * 10.0).ceil() / 10.0).clamp(0.1, 1.0);
    render(P, (W, H), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(format!("Calibration at t = {horizon}"), (FONT, 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(0.0..lim, 0.0..lim)
            .map_err(draw_err(P))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted probability of the event")
            .y_desc("observed probability (Kaplan-Meier)")
            .draw()
            .map_err(draw_err(P))?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 0.0), (lim, lim)],
                RGBColor(150, 150, 150).stroke_width(1),
            )))
            .map_err(draw_err(P))?;
        let c = palette(0);
        chart
            .draw_series(
                bins.iter()
                    .map(|b| PathElement::new(vec![(b.predicted, b.lower), (b.predicted, b.upper)], c.stroke_width(1))),
            )
            .map_err(draw_err(P))?;
        chart
            .draw_series(bins.iter().map(|b| Circle::new((b.predicted, b.observed), 4, c.filled())))
            .map_err(draw_err(P))?;
        Ok(())
    })
}

/// Forest plot: one row per entry (point and CI bar), labels on the left, and a vertical line at
/// `reference` (0 for ΔC).
///
/// # Errors
/// No row, or a non-finite number.
pub fn forest_plot(rows: &[ForestRow], reference: f64, title: &str) -> Result<String, PlotError> {
    const P: &str = "forest";
    if rows.is_empty() {
        return Err(PlotError::Empty { plot: P, what: "row" });
    }
    finite(P, || "the reference".to_string(), reference)?;
    let (mut lo, mut hi) = (reference, reference);
    for r in rows {
        for v in [r.estimate, r.lower, r.upper] {
            finite(P, || format!("row {:?}", r.label), v)?;
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    let pad = if hi > lo { (hi - lo) * 0.08 } else { 0.05 };
    let (lo, hi) = (lo - pad, hi + pad);
    let n = rows.len();
    // at least tall enough that one row leaves room for the axis labels
    let h = (90 + 30 * n as u32).max(170);
    render(P, (W, h), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(180)
            .build_cartesian_2d(lo..hi, 0.0..n as f64)
            .map_err(draw_err(P))?;
        chart.configure_mesh().disable_mesh().y_labels(0).x_desc("estimate (95% CI)").draw().map_err(draw_err(P))?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(reference, 0.0), (reference, n as f64)],
                RGBColor(150, 150, 150).stroke_width(1),
            )))
            .map_err(draw_err(P))?;
        let c = palette(0);
        // Row i from the top sits at y = n - i - 0.5.
        let y_of = |i: usize| n as f64 - i as f64 - 0.5;
        chart
            .draw_series(
                rows.iter()
                    .enumerate()
                    .map(|(i, r)| PathElement::new(vec![(r.lower, y_of(i)), (r.upper, y_of(i))], c.stroke_width(2))),
            )
            .map_err(draw_err(P))?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| Circle::new((r.estimate, y_of(i)), 5, c.filled())))
            .map_err(draw_err(P))?;
        for (i, r) in rows.iter().enumerate() {
            let (_, y) = chart.backend_coord(&(lo, y_of(i)));
            let style = TextStyle::from((FONT, 13).into_font()).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Left,
                plotters::style::text_anchor::VPos::Center,
            ));
            root.draw(&Text::new(r.label.clone(), (12, y), style)).map_err(draw_err(P))?;
        }
        Ok(())
    })
}

/// One cumulative-incidence curve of [`cif_plot`]: a risk group's Aalen–Johansen estimate for
/// one cause, steps `(time, cif)` from (0, 0).
#[derive(Debug, Clone, PartialEq)]
pub struct CifLine {
    /// Legend label (`high: metastasis`).
    pub label: String,
    /// Risk group index (the colour).
    pub group: usize,
    /// Whether this is a competing cause (drawn thin and dashed).
    pub competing: bool,
    /// Steps `(time, cif)`, increasing time.
    pub points: Vec<(f64, f64)>,
}

/// Cumulative incidence by risk group: per group one solid line for the event of interest and
/// a thin dashed line for each competing cause, same colour.
///
/// # Errors
/// No line, a line without points, or a non-finite number.
pub fn cif_plot(lines: &[CifLine], title: &str) -> Result<String, PlotError> {
    const P: &str = "cumulative incidence";
    if lines.is_empty() {
        return Err(PlotError::Empty { plot: P, what: "curve" });
    }
    let mut t_max: f64 = 0.0;
    for l in lines {
        if l.points.is_empty() {
            return Err(PlotError::Empty { plot: P, what: "point in every curve" });
        }
        for (i, &(t, f)) in l.points.iter().enumerate() {
            finite(P, || format!("curve {:?} point {i}", l.label), f)?;
            t_max = t_max.max(finite(P, || format!("curve {:?} point {i}", l.label), t)?);
        }
    }
    if t_max <= 0.0 {
        t_max = 1.0;
    }
    render(P, (W, H), |root| {
        let mut chart = time_probability_chart(P, root, title, t_max, "cumulative incidence")?;
        for l in lines {
            let c = palette(l.group);
            let pts = steps(&l.points, 0.0);
            let style = if l.competing { c.stroke_width(1) } else { c.stroke_width(2) };
            if l.competing {
                chart
                    .draw_series(DashedLineSeries::new(pts, 6, 4, style))
                    .map_err(draw_err(P))?
                    .label(l.label.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            } else {
                chart
                    .draw_series(LineSeries::new(pts, style))
                    .map_err(draw_err(P))?
                    .label(l.label.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .draw()
            .map_err(draw_err(P))?;
        Ok(())
    })
}

/// One network's curve over epochs (1-based), with the epoch chosen for it marked.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochCurve {
    /// Legend label (`fold 0`).
    pub label: String,
    /// Value after each epoch (index + 1 = epoch).
    pub values: Vec<f64>,
    /// The chosen epoch (1-based), marked with a dot.
    pub chosen: Option<usize>,
}

/// Training curves: one line per network over epochs, the chosen epoch of each marked.
///
/// # Errors
/// No curve, a curve without values, or a non-finite number.
pub fn epoch_plot(curves: &[EpochCurve], title: &str, y_desc: &str) -> Result<String, PlotError> {
    const P: &str = "training curve";
    if curves.is_empty() {
        return Err(PlotError::Empty { plot: P, what: "curve" });
    }
    let (mut lo, mut hi, mut n) = (f64::INFINITY, f64::NEG_INFINITY, 1usize);
    for c in curves {
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
    render(P, (W, H), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(1.0..(n.max(2) as f64), lo..hi)
            .map_err(draw_err(P))?;
        chart.configure_mesh().disable_mesh().x_desc("epoch").y_desc(y_desc).draw().map_err(draw_err(P))?;
        for (i, c) in curves.iter().enumerate() {
            let col = palette(i);
            let pts: Vec<(f64, f64)> = c.values.iter().enumerate().map(|(k, &v)| ((k + 1) as f64, v)).collect();
            chart
                .draw_series(LineSeries::new(pts, col.stroke_width(2)))
                .map_err(draw_err(P))?
                .label(c.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
            if let Some(e) = c.chosen.filter(|&e| e >= 1 && e <= c.values.len()) {
                chart
                    .draw_series(std::iter::once(Circle::new((e as f64, c.values[e - 1]), 4, col.filled())))
                    .map_err(draw_err(P))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .draw()
            .map_err(draw_err(P))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn calibration_axes_fit_the_bins_and_can_be_shared() {
        let low = [
            CalibrationBin { predicted: 0.05, observed: 0.04, lower: 0.0, upper: 0.12 },
            CalibrationBin { predicted: 0.22, observed: 0.25, lower: 0.15, upper: 0.33 },
        ];
        let high = [CalibrationBin { predicted: 0.9, observed: 0.85, lower: 0.7, upper: 0.95 }];
        let tick = |svg: &str, t: &str| svg.contains(&format!(">\n{t}\n</text>"));
        // 0.33 · 1.1 → axes to 0.4
        let alone = calibration_plot(&low, 1825.0).unwrap();
        assert!(tick(&alone, "0.4") && !tick(&alone, "0.5") && !tick(&alone, "1.0"), "{alone}");
        // drawn beside plots reaching 0.95, the same bins get the full scale
        let shared = calibration_plot_over(&low, 1825.0, &high).unwrap();
        assert!(tick(&shared, "1.0"), "{shared}");
        assert_eq!(shared, calibration_plot_over(&low, 1825.0, &high).unwrap());
    }

    use super::*;

    /// Minimal XML well-formedness check: balanced, properly nested tags with quoted attributes,
    /// no raw `<` or `&` outside markup/entities. Returns the element names in document order.
    fn check_xml(s: &str) -> Vec<String> {
        let b = s.as_bytes();
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'<' => {
                    let end = s[i..].find('>').map(|e| i + e).expect("unclosed tag");
                    let tag = &s[i + 1..end];
                    if tag.starts_with('?') || tag.starts_with('!') {
                        i = end + 1;
                        continue;
                    }
                    assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in <{tag}>");
                    assert!(!tag[..tag.len().saturating_sub(1)].contains('<'), "'<' inside <{tag}>");
                    if let Some(close) = tag.strip_prefix('/') {
                        let open = stack.pop().unwrap_or_else(|| panic!("stray </{close}>"));
                        assert_eq!(open, close.trim(), "mis-nested tags");
                    } else {
                        let name: String = tag.chars().take_while(|c| !c.is_whitespace() && *c != '/').collect();
                        names.push(name.clone());
                        if !tag.ends_with('/') {
                            stack.push(name);
                        }
                    }
                    i = end + 1;
                }
                b'&' => {
                    let rest = &s[i..];
                    let semi = rest.find(';').expect("bare &");
                    let ent = &rest[1..semi];
                    assert!(
                        matches!(ent, "lt" | "gt" | "amp" | "quot" | "apos") || ent.starts_with('#'),
                        "unknown entity &{ent};"
                    );
                    i += semi + 1;
                }
                _ => i += 1,
            }
        }
        assert!(stack.is_empty(), "unclosed elements {stack:?}");
        assert_eq!(names.first().map(String::as_str), Some("svg"));
        names
    }

    fn count(names: &[String], n: &str) -> usize {
        names.iter().filter(|x| x.as_str() == n).count()
    }

    /// Texts of all `<text>` elements.
    fn texts(s: &str) -> Vec<String> {
        s.split("<text")
            .skip(1)
            .filter_map(|t| {
                let a = t.find('>')? + 1;
                let e = t.find("</text>")?;
                Some(t[a..e].trim().to_string())
            })
            .collect()
    }

    /// Number of `<polyline>` elements whose attributes contain `attr`.
    fn polylines_with(svg: &str, attr: &str) -> usize {
        svg.split("<polyline").skip(1).filter(|p| p.split("/>").next().unwrap_or("").contains(attr)).count()
    }

    fn km_fixture(labels: &[&str]) -> Vec<KmCurve> {
        labels
            .iter()
            .enumerate()
            .map(|(g, l)| {
                let mut s = 1.0;
                let pts = (1..=8)
                    .map(|k| {
                        s *= 0.9 - 0.05 * g as f64;
                        (k as f64 * 1.5, s, s * 0.8, (s * 1.2).min(1.0))
                    })
                    .collect();
                KmCurve { label: l.to_string(), points: pts, at_risk: vec![50 - g, 30 - g, 10 - g] }
            })
            .collect()
    }

    #[test]
    fn km_plot_is_wellformed_with_bands_curves_table_and_p() {
        let groups = km_fixture(&["low risk", "high risk"]);
        let svg = km_plot(&groups, &[0.0, 5.0, 10.0], "Distant metastasis-free survival", Some(0.0123)).unwrap();
        let names = check_xml(&svg);
        assert_eq!(count(&names, "polygon"), 2, "one CI band per group");
        let t = texts(&svg);
        // Each label appears in the legend and in the at-risk table.
        assert_eq!(t.iter().filter(|x| *x == "low risk").count(), 2, "{t:?}");
        assert_eq!(t.iter().filter(|x| *x == "high risk").count(), 2, "{t:?}");
        assert!(t.contains(&"Number at risk".to_string()));
        for n in ["50", "30", "10", "49", "29", "9"] {
            assert!(t.iter().any(|x| x == n), "at-risk number {n} missing from {t:?}");
        }
        assert!(t.contains(&"log-rank p = 0.012".to_string()), "{t:?}");
        let one = km_plot(&groups[..1], &[0.0, 5.0, 10.0], "x", None).unwrap();
        let one_names = check_xml(&one);
        assert_eq!(count(&one_names, "polygon"), 1);
        assert_eq!(
            polylines_with(&svg, "stroke-width=\"2\"") - polylines_with(&one, "stroke-width=\"2\""),
            2,
            "a second group adds its curve and its legend line"
        );
        assert!(!texts(&one).iter().any(|x| x.starts_with("log-rank")));
    }

    #[test]
    fn km_plot_accepts_survival_curve_points() {
        let pts = vec![
            KmCurvePoint { time: 2.0, survival: 0.8, lower: 0.6, upper: 0.95, censored: 0 },
            KmCurvePoint { time: 4.0, survival: 0.5, lower: 0.3, upper: 0.7, censored: 1 },
        ];
        let g = KmCurve::from_points("all", &pts, vec![10]);
        assert_eq!(g.points[1], (4.0, 0.5, 0.3, 0.7));
        check_xml(&km_plot(&[g], &[0.0], "t", Some(0.0001)).unwrap());
    }

    #[test]
    fn hostile_labels_are_escaped_everywhere() {
        let evil = "<script>alert(\"x\")</script>&";
        let esc = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;";
        let svgs = [
            km_plot(&km_fixture(&[evil]), &[0.0, 5.0, 10.0], evil, None).unwrap(),
            roc_plot(&[RocCurve { label: evil.into(), points: vec![(0.0, 0.0), (1.0, 1.0)], auc: 0.5 }], evil).unwrap(),
            forest_plot(&[ForestRow { label: evil.into(), estimate: 0.01, lower: -0.02, upper: 0.04 }], 0.0, evil)
                .unwrap(),
        ];
        for svg in &svgs {
            check_xml(svg);
            assert!(!svg.contains("<script"), "{svg}");
            assert!(svg.contains(esc) || svg.contains(&esc.replace("&quot;", "&#34;")), "{svg}");
        }
    }

    #[test]
    fn roc_calibration_forest_have_expected_series() {
        let curves: Vec<RocCurve> = [3.0, 5.0, 10.0]
            .iter()
            .map(|h| RocCurve {
                label: format!("{h} years"),
                points: vec![(0.0, 0.0), (0.2, 0.5), (0.5, 0.8), (1.0, 1.0)],
                auc: 0.7 + h / 100.0,
            })
            .collect();
        let roc = roc_plot(&curves, "ROC").unwrap();
        check_xml(&roc);
        assert_eq!(polylines_with(&roc, "stroke-width=\"2\""), 6, "3 curves + 3 legend lines");
        assert_eq!(polylines_with(&roc, "#969696"), 1, "the diagonal");
        let t = texts(&roc);
        assert!(t.contains(&"5 years (AUC = 0.750)".to_string()), "{t:?}");

        let bins: Vec<CalibrationBin> = (0..5)
            .map(|i| {
                let p = 0.1 + 0.15 * i as f64;
                CalibrationBin { predicted: p, observed: p * 0.9, lower: p * 0.6, upper: (p * 1.2).min(1.0) }
            })
            .collect();
        let cal = calibration_plot(&bins, 5.0).unwrap();
        let n = check_xml(&cal);
        assert_eq!(count(&n, "circle"), 5);
        assert_eq!(polylines_with(&cal, "#0072B2"), 5, "5 error bars");
        assert_eq!(polylines_with(&cal, "#969696"), 1, "the diagonal");

        let rows: Vec<ForestRow> = ["HE", "HE+IHC", "HE+IHC+clinical"]
            .iter()
            .enumerate()
            .map(|(i, l)| ForestRow {
                label: l.to_string(),
                estimate: 0.02 * i as f64,
                lower: -0.03,
                upper: 0.05 + 0.02 * i as f64,
            })
            .collect();
        let f = forest_plot(&rows, 0.0, "ΔC vs clinical").unwrap();
        let n = check_xml(&f);
        assert_eq!(count(&n, "circle"), 3);
        assert_eq!(polylines_with(&f, "#0072B2"), 3, "3 CI bars");
        assert_eq!(polylines_with(&f, "#969696"), 1, "the reference line");
        let t = texts(&f);
        for r in &rows {
            assert!(t.contains(&r.label), "{t:?}");
        }
    }

    #[test]
    fn same_input_same_bytes() {
        let g = km_fixture(&["a", "b", "c"]);
        assert_eq!(
            km_plot(&g, &[0.0, 6.0, 9.0], "t", Some(0.5)).unwrap(),
            km_plot(&g, &[0.0, 6.0, 9.0], "t", Some(0.5)).unwrap()
        );
        let rows = vec![ForestRow { label: "x".into(), estimate: 0.1, lower: 0.0, upper: 0.2 }];
        assert_eq!(forest_plot(&rows, 0.0, "f").unwrap(), forest_plot(&rows, 0.0, "f").unwrap());
        let bins = vec![CalibrationBin { predicted: 0.3, observed: 0.2, lower: 0.1, upper: 0.4 }];
        assert_eq!(calibration_plot(&bins, 3.0).unwrap(), calibration_plot(&bins, 3.0).unwrap());
        let c = vec![RocCurve { label: "r".into(), points: vec![(0.0, 0.0), (1.0, 1.0)], auc: 0.5 }];
        assert_eq!(roc_plot(&c, "r").unwrap(), roc_plot(&c, "r").unwrap());
    }

    #[test]
    fn empty_and_degenerate_inputs_are_clear_errors() {
        let e = km_plot(&[], &[], "t", None).unwrap_err();
        assert!(e.to_string().contains("expected at least one group"), "{e}");
        let mut g = km_fixture(&["a"]);
        let e = km_plot(&g, &[0.0, 1.0], "t", None).unwrap_err();
        assert!(e.to_string().contains("expected 2 numbers at risk for group \"a\""), "{e}");
        g[0].points[3].1 = f64::NAN;
        let e = km_plot(&g, &[0.0, 1.0, 2.0], "t", None).unwrap_err();
        assert!(e.to_string().contains("group \"a\" point 3"), "{e}");
        g[0].points.clear();
        assert!(matches!(km_plot(&g, &[0.0, 1.0, 2.0], "t", None), Err(PlotError::Empty { .. })));
        assert!(matches!(roc_plot(&[], "r"), Err(PlotError::Empty { .. })));
        let c = vec![RocCurve { label: "r".into(), points: vec![], auc: 0.5 }];
        assert!(matches!(roc_plot(&c, "r"), Err(PlotError::Empty { .. })));
        assert!(matches!(calibration_plot(&[], 5.0), Err(PlotError::Empty { .. })));
        let bins = vec![CalibrationBin { predicted: 0.3, observed: 0.2, lower: 0.1, upper: 0.4 }];
        assert!(matches!(calibration_plot(&bins, f64::INFINITY), Err(PlotError::NonFinite { .. })));
        assert!(matches!(forest_plot(&[], 0.0, "f"), Err(PlotError::Empty { .. })));
        // Degenerate but valid: all-equal estimates, a single point at t = 0.
        let rows = vec![ForestRow { label: "x".into(), estimate: 0.0, lower: 0.0, upper: 0.0 }];
        check_xml(&forest_plot(&rows, 0.0, "f").unwrap());
        let g = vec![KmCurve { label: "z".into(), points: vec![(0.0, 1.0, 1.0, 1.0)], at_risk: vec![] }];
        check_xml(&km_plot(&g, &[], "t", None).unwrap());
    }
}
