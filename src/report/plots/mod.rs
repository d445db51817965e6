//! Report figures: pure functions that turn recorded curves into SVG at a physical size, the one
//! renderer behind the page's inline plots and `spatia figure`'s SVG, PNG and PDF files.
//!
//! Owns: the figure data ([`Figure`], serialised by the report into `figures/figures.json`, so
//! that a figure can be drawn again at any size from the recorded outputs only), the plot kinds
//! — Kaplan–Meier with CI bands, censor marks and the numbers at risk under the ticks
//! ([`km`]), time-dependent ROC ([`roc`]), calibration with CIs, smoothed curve and the
//! histogram of predictions ([`calibration`]), forest plot ([`forest`]), cumulative incidence
//! ([`cif`]), training curves ([`epochs`]) — their shared layout ([`canvas`]: legends outside
//! the plot area, open axes, measured margins), type and colour ([`style`], [`font`]), ticks
//! ([`ticks`]) and export ([`export`]: PNG with resvg, PDF with svg2pdf, fonts embedded).
//! It computes no statistics: every curve and number comes from the evaluation stages' files.
//!
//! Text: plotters' SVG backend escapes `<`, `>`, `&`, `"` and `'` in every text it writes, so a
//! hostile label cannot produce markup (tested); the metadata this module adds is escaped the
//! same way.
//!
//! Determinism: the same figure and style give the same bytes (integer coordinates, numbers
//! formatted by Rust's `Display`, no time, hashing order or threads; the fonts are compiled in).
//!
//! # Errors
//! [`PlotError`]: empty inputs, non-finite numbers, mismatched lengths, drawing and export
//! failures.
pub mod calibration;
mod canvas;
pub mod cif;
pub mod colorbar;
pub mod epochs;
pub mod export;
pub mod font;
pub mod forest;
pub mod km;
pub mod panels;
pub mod roc;
pub mod style;
pub mod ticks;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use calibration::{CalibrationBin, CalibrationData};
pub use canvas::Rect;
pub use cif::{CifData, CifLine};
pub use epochs::{EpochCurve, EpochData};
pub use forest::{ForestData, ForestRow};
pub use km::{KmData, KmGroup, KmStep};
pub use roc::{RocCurve, RocData};
pub use style::{Style, TimeAxis, TimeUnit};

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
    /// A figure could not be converted to PNG or PDF.
    #[error("figure export ({format}): {message}")]
    Export { format: &'static str, message: String },
}

fn finite(plot: &'static str, what: impl Fn() -> String, v: f64) -> Result<f64, PlotError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(PlotError::NonFinite { plot, what: what(), value: v })
    }
}

/// A stage output a figure was drawn from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The stage's name in the spec.
    pub stage: String,
    /// Its kind.
    pub kind: String,
    /// Its cache key.
    pub key: String,
}

/// What a figure shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FigureData {
    /// Kaplan–Meier by risk group.
    Km(KmData),
    /// Time-dependent ROC.
    Roc(RocData),
    /// Calibration at a horizon.
    Calibration(CalibrationData),
    /// Forest plot.
    Forest(ForestData),
    /// Cumulative incidence by risk group.
    Cif(CifData),
    /// Training curves.
    Training(EpochData),
}

impl FigureData {
    /// The kind's name (`km`, `roc`, `calibration`, `forest`, `cif`, `training`).
    pub fn kind(&self) -> &'static str {
        match self {
            FigureData::Km(_) => "km",
            FigureData::Roc(_) => "roc",
            FigureData::Calibration(_) => "calibration",
            FigureData::Forest(_) => "forest",
            FigureData::Cif(_) => "cif",
            FigureData::Training(_) => "training",
        }
    }
    /// Every kind's name.
    pub const KINDS: [&'static str; 6] = ["km", "roc", "calibration", "forest", "cif", "training"];
}

/// One figure: what it shows and where its numbers come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Unique within a report (`km`, `km.arm-2`, `calibration_recalibrated` …).
    pub name: String,
    /// Title (drawn on the page; a journal figure's title is its caption).
    pub title: String,
    /// The arm it shows (None: every arm, e.g. the forest plot).
    #[serde(default)]
    pub arm: Option<String>,
    /// The horizon it is drawn at, in the data's time unit (calibration).
    #[serde(default)]
    pub horizon: Option<f64>,
    /// Whether the page shows it (the main arm's figures), or it is recorded for export only.
    #[serde(default)]
    pub on_page: bool,
    /// The stage outputs it was drawn from.
    pub sources: Vec<Source>,
    /// The data.
    pub data: FigureData,
}

/// Facts recorded in a figure's SVG metadata besides its sources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Meta {
    /// The report node's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// The run directory it was exported from (`spatia figure RUN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}

/// Draws `fig` in `style` as an SVG document (width and height in mm, a `viewBox` in 0.1 mm
/// units, `<title>` and `<metadata>` with the figure's name, arm, sources and `meta`).
///
/// # Errors
/// See [`PlotError`].
pub fn render(fig: &Figure, style: &Style, meta: &Meta) -> Result<String, PlotError> {
    let (svg, plot) = match &fig.data {
        FigureData::Km(d) => km::draw(d, &fig.title, style)?,
        FigureData::Roc(d) => roc::draw(d, &fig.title, style)?,
        FigureData::Calibration(d) => calibration::draw(d, &fig.title, style)?,
        FigureData::Forest(d) => forest::draw(d, &fig.title, style)?,
        FigureData::Cif(d) => cif::draw(d, &fig.title, style)?,
        FigureData::Training(d) => epochs::draw(d, &fig.title, style)?,
    };
    Ok(finish(svg, fig, meta, plot))
}

/// Runs `f` on a fresh SVG drawing area of `size` user units and returns the SVG text.
fn svg<F>(plot: &'static str, size: (i32, i32), f: F) -> Result<String, PlotError>
where
    F: FnOnce(&canvas::Area) -> Result<(), PlotError>,
{
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (size.0.max(1) as u32, size.1.max(1) as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(canvas::draw_err(plot))?;
        f(&root)?;
        root.present().map_err(canvas::draw_err(plot))?;
    }
    Ok(buf)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// The value of attribute `name` in the text of an opening tag (`<text x="1" …`).
pub(crate) fn tag_attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let i = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    tag[i..].split('"').next()
}

/// The value of attribute `name` on an SVG document's root element.
pub(crate) fn root_attr<'a>(svg: &'a str, name: &str) -> Option<&'a str> {
    tag_attr(&svg[..svg.find('>')?], name)
}

/// Width and height of an SVG document's `viewBox` (user units).
pub(crate) fn view_box_size(svg: &str) -> Option<(f64, f64)> {
    let v: Vec<f64> = root_attr(svg, "viewBox")?.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    (v.len() == 4).then(|| (v[2], v[3]))
}

/// A length in user units as millimetres for an SVG `width`/`height` (`85`, `202.9`).
fn mm(units: f64) -> String {
    ticks::round_label(units / style::UNITS_PER_MM, 1)
}

/// Physical size on the root element and the provenance as `<title>` and `<metadata>` (with the
/// plot area's rectangle).
fn finish(svg: String, fig: &Figure, meta: &Meta, plot: Rect) -> String {
    let size = |name: &str| root_attr(&svg, name)?.parse::<f64>().ok();
    let (Some(w), Some(h), Some(end)) = (size("width"), size("height"), svg.find('>')) else { return svg };
    #[derive(Serialize)]
    struct Provenance<'a> {
        figure: &'a str,
        kind: &'a str,
        arm: &'a Option<String>,
        sources: &'a [Source],
        #[serde(flatten)]
        meta: &'a Meta,
        tool: String,
        /// The plot area `[x0, y0, x1, y1]` in viewBox units (legends and tables lie outside it).
        plot_area: [i32; 4],
    }
    let p = Provenance {
        figure: &fig.name,
        kind: fig.data.kind(),
        arm: &fig.arm,
        sources: &fig.sources,
        meta,
        tool: format!("spatia {}", env!("CARGO_PKG_VERSION")),
        plot_area: [plot.0, plot.1, plot.2, plot.3],
    };
    let json = serde_json::to_string(&p).unwrap_or_default();
    format!(
        "<svg width=\"{}mm\" height=\"{}mm\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\" \
         font-family=\"{}\">\n<title>{}</title>\n<metadata id=\"spatia-provenance\">{}</metadata>{}",
        mm(w),
        mm(h),
        font::FAMILY,
        escape(if fig.title.is_empty() { &fig.name } else { &fig.title }),
        escape(&json),
        &svg[end + 1..]
    )
}

/// The one-line caption the page prints under a figure: its sources' stages and short keys.
pub fn provenance_line(fig: &Figure) -> String {
    let src: Vec<String> =
        fig.sources.iter().map(|s| format!("{} {}", s.stage, &s.key[..s.key.len().min(12)])).collect();
    let arm = fig.arm.as_deref().map(|a| format!("arm {a}; ")).unwrap_or_default();
    format!("Figure {}: {arm}from {}", fig.name, src.join(", "))
}

#[cfg(test)]
mod tests;
