//! Layout and drawing primitives every plot kind shares: the frame (title, legend band, plot
//! area, axes, extra bands below), open axes with outward ticks, axis titles, and a legend that
//! always sits outside the plot area (a band above it, wrapped to the figure's width).
//!
//! Layout is computed from measured text ([`super::font`]), not guessed: the left margin fits
//! the widest y tick label, the legend wraps where its items would pass the right edge, the
//! figure's height follows from its width, the plot's aspect ratio and what is stacked above
//! and below. Drawing goes through plotters' SVG backend in 0.1 mm user units.
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;

use super::font;
use super::style::{Style, INK};
use super::PlotError;

pub(super) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// A rectangle in user units: `(x0, y0, x1, y1)`, y down.
pub type Rect = (i32, i32, i32, i32);

/// How a legend item's swatch is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Mark {
    /// A line (dashed or not).
    Line { dashed: bool },
    /// A line over a light band (a curve with its CI band).
    LineBand,
    /// A filled dot.
    Point,
    /// A dot with a vertical whisker (an estimate with its CI).
    PointWhisker,
    /// A filled bar.
    Bar,
    /// No swatch: a line of text (a test's p value).
    Text,
}

/// One legend entry.
#[derive(Debug, Clone)]
pub(super) struct LegendItem {
    pub label: String,
    pub color: RGBColor,
    pub mark: Mark,
}

/// What a plot kind asks of the frame.
pub(super) struct FrameSpec<'s> {
    pub title: &'s str,
    pub legend: &'s [LegendItem],
    /// y ticks (the widest label sets the left margin).
    pub y_ticks: &'s [(f64, String)],
    /// x ticks (half the last label may reach past the plot's right edge).
    pub x_ticks: &'s [(f64, String)],
    /// The y axis title (None: no y axis title, e.g. a forest plot's rows).
    pub y_title: Option<&'s str>,
    /// Room on the left of the y tick labels, user units (forest plot row labels).
    pub extra_left: i32,
    /// The least left edge of the plot area, user units (room for row labels under it).
    pub min_left: i32,
    /// Plot height / plot width.
    pub aspect: f64,
    /// A fixed plot height instead of `aspect` (user units).
    pub plot_height: Option<i32>,
    /// Height of bands below the x axis title (the numbers-at-risk table), user units.
    pub below: i32,
}

/// A computed layout.
#[derive(Debug, Clone)]
pub(super) struct Frame {
    pub w: i32,
    pub h: i32,
    pub plot: Rect,
    /// Top y of the title (when drawn).
    pub title_y: i32,
    /// The title's lines (wrapped to the figure's width).
    pub title_lines: Vec<String>,
    /// Legend items with their top-left position.
    pub legend: Vec<(LegendItem, i32, i32)>,
    /// y where the bands below the x axis title start.
    pub below_y: i32,
}

/// Padding around the figure, mm-based constants in user units.
pub(super) const PAD: i32 = 15;
pub(super) const GAP: i32 = 10;
const SWATCH: i32 = 50;
const SWATCH_GAP: i32 = 12;

impl Style {
    /// Tick length (outward), user units.
    pub(super) fn tick(&self) -> i32 {
        self.pt(3.0)
    }
    /// Line height of base text.
    pub(super) fn line_height(&self) -> i32 {
        (self.text() * 1.3).round() as i32
    }
}

pub(super) fn frame(style: &Style, spec: &FrameSpec) -> Frame {
    let w = style.width();
    let (text, small, large) = (style.text(), style.small(), style.large());
    let mut y = PAD;
    let title_y = y;
    let panel_w = match &style.panel {
        Some(p) => font::width(p, large * 1.2, true).ceil() as i32 + GAP,
        None => 0,
    };
    let mut title_lines = Vec::new();
    if style.title && !spec.title.is_empty() {
        title_lines = wrap(spec.title, (w - 2 * PAD - panel_w) as f64, large, true);
        y += (large * 1.35).round() as i32 * title_lines.len() as i32;
    } else if style.panel.is_some() {
        y += (large * 1.2 * 1.2).round() as i32;
    }
    let y_title_w = if spec.y_title.is_some() { (text * 1.2).round() as i32 + GAP / 2 } else { 0 };
    let ytick_w = spec.y_ticks.iter().map(|(_, l)| font::width(l, small, false)).fold(0.0, f64::max).ceil() as i32;
    let x_overhang = spec.x_ticks.last().map(|(_, l)| (font::width(l, small, false) / 2.0).ceil() as i32).unwrap_or(0);
    let x0 = (PAD + y_title_w + spec.extra_left + ytick_w + GAP / 2 + style.tick()).max(spec.min_left);
    let right = PAD.max(x_overhang + PAD / 2);
    let x1 = w - right;
    // legend band: items left to right from the plot's left edge (or the figure's, when the
    // margin is wide), wrapped before the right edge
    let mut legend = Vec::new();
    if !spec.legend.is_empty() {
        let lh = style.line_height();
        let left = (x0 - style.tick() - ytick_w).max(PAD);
        let (mut lx, mut ly) = (left, y + GAP / 2);
        for item in spec.legend {
            let sw = if item.mark == Mark::Text { 0 } else { SWATCH + SWATCH_GAP };
            let iw = sw + font::width(&item.label, text, false).ceil() as i32;
            if lx > left && lx + iw > w - PAD {
                lx = left;
                ly += lh;
            }
            legend.push((item.clone(), lx, ly));
            lx += iw + 3 * GAP;
        }
        y = ly + lh + GAP;
    } else {
        y += GAP;
    }
    let plot_w = (x1 - x0).max(50);
    let plot_h = spec.plot_height.unwrap_or((plot_w as f64 * spec.aspect).round() as i32).max(50);
    let plot = (x0, y, x0 + plot_w, y + plot_h);
    let below_y =
        plot.3 + style.tick() + GAP / 3 + (small * 1.2).round() as i32 + GAP / 2 + (text * 1.3).round() as i32;
    let h = below_y + spec.below + PAD;
    Frame { w, h, plot, title_y, title_lines, legend, below_y }
}

/// `s` in lines no wider than `width` at `size`, broken after spaces, commas, colons and `=`
/// (arm names have no spaces); a piece wider than the line stays whole.
pub(super) fn wrap(s: &str, width: f64, size: f64, bold: bool) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        cur.push(c);
        if matches!(c, ' ' | ',' | ':' | '=') {
            pieces.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        pieces.push(cur);
    }
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for p in pieces {
        let candidate = format!("{line}{p}");
        if !line.is_empty() && font::width(candidate.trim_end(), size, bold) > width {
            lines.push(line.trim_end().to_string());
            line = p;
        } else {
            line = candidate;
        }
    }
    if !line.trim().is_empty() {
        lines.push(line.trim_end().to_string());
    }
    lines
}

/// A text style: the figure family at `size` user units.
pub(super) fn text_style(size: f64, color: RGBColor, bold: bool, h: HPos, v: VPos) -> TextStyle<'static> {
    // plotters' SVG backend writes font-size = size / 1.24
    let s = (size * 10.0).round() / 10.0 * 1.24;
    let f = FontDesc::new(FontFamily::Name(font::FAMILY), s, if bold { FontStyle::Bold } else { FontStyle::Normal });
    TextStyle { font: f, color: color.to_backend_color(), pos: Pos::new(h, v) }
}

pub(super) fn draw_err<E: std::fmt::Debug>(plot: &'static str) -> impl Fn(E) -> PlotError {
    move |e| PlotError::Draw { plot, message: format!("{e:?}") }
}

/// Draws text.
#[allow(clippy::too_many_arguments)]
pub(super) fn text(
    plot: &'static str,
    root: &Area,
    s: &str,
    (x, y): (i32, i32),
    size: f64,
    color: RGBColor,
    bold: bool,
    (h, v): (HPos, VPos),
) -> Result<(), PlotError> {
    root.draw(&Text::new(s.to_string(), (x, y), text_style(size, color, bold, h, v))).map_err(draw_err(plot))
}

/// Draws the title (as wrapped into `f`), the panel letter and the legend of `f`.
pub(super) fn decorations(plot: &'static str, root: &Area, style: &Style, f: &Frame) -> Result<(), PlotError> {
    let mut tx = PAD;
    if let Some(p) = &style.panel {
        text(plot, root, p, (PAD, f.title_y), style.large() * 1.2, INK, true, (HPos::Left, VPos::Top))?;
        tx += font::width(p, style.large() * 1.2, true).ceil() as i32 + GAP;
    }
    for (i, line) in f.title_lines.iter().enumerate() {
        let y = f.title_y + i as i32 * (style.large() * 1.35).round() as i32;
        text(plot, root, line, (tx, y), style.large(), INK, true, (HPos::Left, VPos::Top))?;
    }
    for (item, x, y) in &f.legend {
        let mid = y + style.line_height() / 2;
        let c = item.color;
        let (x0, x1) = (*x, x + SWATCH);
        if item.mark == Mark::Text {
            text(plot, root, &item.label, (x0, mid), style.text(), INK, false, (HPos::Left, VPos::Center))?;
            continue;
        }
        match item.mark {
            Mark::Text => {}
            Mark::Line { dashed } => swatch_line(plot, root, style, (x0, x1, mid), c, dashed)?,
            Mark::LineBand => {
                let band = style.line_height() / 3;
                root.draw(&Rectangle::new([(x0, mid - band), (x1, mid + band)], c.mix(0.2).filled()))
                    .map_err(draw_err(plot))?;
                swatch_line(plot, root, style, (x0, x1, mid), c, false)?;
            }
            Mark::Point => {
                root.draw(&Circle::new(((x0 + x1) / 2, mid), style.pt(2.0), c.filled())).map_err(draw_err(plot))?
            }
            Mark::PointWhisker => {
                let half = style.line_height() / 2 - 2;
                root.draw(&PathElement::new(
                    vec![((x0 + x1) / 2, mid - half), ((x0 + x1) / 2, mid + half)],
                    c.stroke_width(style.thin()),
                ))
                .map_err(draw_err(plot))?;
                root.draw(&Circle::new(((x0 + x1) / 2, mid), style.pt(2.0), c.filled())).map_err(draw_err(plot))?
            }
            Mark::Bar => {
                let band = style.line_height() / 3;
                root.draw(&Rectangle::new([(x0 + SWATCH / 4, mid - band), (x1 - SWATCH / 4, mid + band)], c.filled()))
                    .map_err(draw_err(plot))?
            }
        }
        text(plot, root, &item.label, (x1 + SWATCH_GAP, mid), style.text(), INK, false, (HPos::Left, VPos::Center))?;
    }
    Ok(())
}

fn swatch_line(
    plot: &'static str,
    root: &Area,
    style: &Style,
    (x0, x1, y): (i32, i32, i32),
    c: RGBColor,
    dashed: bool,
) -> Result<(), PlotError> {
    if dashed {
        let seg = SWATCH / 5;
        for k in 0..3 {
            let a = x0 + k * 2 * seg;
            root.draw(&PathElement::new(vec![(a, y), ((a + seg).min(x1), y)], c.stroke_width(style.line())))
                .map_err(draw_err(plot))?;
        }
        Ok(())
    } else {
        root.draw(&PathElement::new(vec![(x0, y), (x1, y)], c.stroke_width(style.line()))).map_err(draw_err(plot))
    }
}

/// Linear map of data coordinates onto the plot area (y up).
#[derive(Debug, Clone, Copy)]
pub(super) struct Scale {
    pub x: (f64, f64),
    pub y: (f64, f64),
    pub plot: Rect,
}

impl Scale {
    /// The user-unit point of data `(x, y)`, clamped to the plot area.
    pub fn at(&self, x: f64, y: f64) -> (i32, i32) {
        let (x0, y0, x1, y1) = self.plot;
        let fx = ((x - self.x.0) / (self.x.1 - self.x.0)).clamp(0.0, 1.0);
        let fy = ((y - self.y.0) / (self.y.1 - self.y.0)).clamp(0.0, 1.0);
        ((x0 as f64 + fx * (x1 - x0) as f64).round() as i32, (y1 as f64 - fy * (y1 - y0) as f64).round() as i32)
    }
    /// Many points.
    pub fn path(&self, pts: &[(f64, f64)]) -> Vec<(i32, i32)> {
        pts.iter().map(|&(x, y)| self.at(x, y)).collect()
    }
}

/// Axes of a plot area: left and bottom spines, outward ticks at `xt` / `yt` (data values) with
/// their labels, and the axis titles.
#[allow(clippy::too_many_arguments)]
pub(super) fn axes(
    plot: &'static str,
    root: &Area,
    style: &Style,
    f: &Frame,
    sc: &Scale,
    xt: &[(f64, String)],
    yt: &[(f64, String)],
    x_title: &str,
    y_title: Option<&str>,
) -> Result<(), PlotError> {
    let (x0, y0, x1, y1) = f.plot;
    let ink = INK.stroke_width(style.thin());
    root.draw(&PathElement::new(vec![(x0, y0), (x0, y1), (x1, y1)], ink)).map_err(draw_err(plot))?;
    let tick = style.tick();
    for (v, l) in xt {
        let (x, _) = sc.at(*v, sc.y.0);
        root.draw(&PathElement::new(vec![(x, y1), (x, y1 + tick)], ink)).map_err(draw_err(plot))?;
        text(plot, root, l, (x, y1 + tick + GAP / 3), style.small(), INK, false, (HPos::Center, VPos::Top))?;
    }
    for (v, l) in yt {
        let (_, y) = sc.at(sc.x.0, *v);
        root.draw(&PathElement::new(vec![(x0 - tick, y), (x0, y)], ink)).map_err(draw_err(plot))?;
        text(plot, root, l, (x0 - tick - GAP / 3, y), style.small(), INK, false, (HPos::Right, VPos::Center))?;
    }
    let xt_y = y1 + tick + GAP / 3 + (style.small() * 1.2).round() as i32 + GAP / 2;
    // centred under the plot, moved sideways (not past the figure's edges) when it is wider
    let half = (font::width(x_title, style.text(), false) / 2.0).ceil() as i32;
    let cx = ((x0 + x1) / 2).min(f.w - PAD - half).max(PAD + half);
    text(plot, root, x_title, (cx, xt_y), style.text(), INK, false, (HPos::Center, VPos::Top))?;
    if let Some(t) = y_title {
        let x = PAD + (style.text() * 0.5).round() as i32;
        let y = (y0 + y1) / 2;
        let s = text_style(style.text(), INK, false, HPos::Center, VPos::Center).transform(FontTransform::Rotate270);
        root.draw(&Text::new(t.to_string(), (x, y), s)).map_err(draw_err(plot))?;
    }
    Ok(())
}
