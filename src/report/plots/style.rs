//! What a figure looks like apart from its data: its physical size, type sizes and line widths,
//! the time unit of the recorded data and the unit its axes show, and the colour-blind-safe
//! palette that gives every arm, risk group and horizon one colour on every figure of a page.
//!
//! Units: a figure is drawn in SVG user units of 0.1 mm ([`UNITS_PER_MM`]), so integer
//! coordinates (plotters') are exact to a tenth of a millimetre at print size; type is sized in
//! points (1 pt = 0.3528 mm) at the figure's printed width, so a 7 pt label is 7 pt in the
//! journal's column whatever the figure's width.
//!
//! Palette: Okabe & Ito (2008), "Color Universal Design", eight colours distinguishable under the
//! common forms of colour-vision deficiency. Risk groups have fixed colours (low blue, mid
//! orange, high vermillion), arms take the palette in the experiment's arm order, horizons and
//! networks take it in their own order.
use plotters::style::RGBColor;
use serde::{Deserialize, Serialize};

/// SVG user units per millimetre.
pub const UNITS_PER_MM: f64 = 10.0;
/// Millimetres per typographic point.
pub const MM_PER_PT: f64 = 25.4 / 72.0;
/// A journal's single column, mm.
pub const SINGLE_COLUMN_MM: f64 = 85.0;
/// A journal's double column (full page width), mm.
pub const DOUBLE_COLUMN_MM: f64 = 174.0;
/// The width the page draws its figures at, mm (its CSS scales them to the column).
pub const PAGE_WIDTH_MM: f64 = 100.0;
/// Narrowest and widest figure accepted, mm.
pub const WIDTH_RANGE_MM: (f64, f64) = (crate::bounds::REPORT_FIGURE_WIDTH.lo, crate::bounds::REPORT_FIGURE_WIDTH.hi);

/// A unit of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Days (the default: follow-up recorded in days).
    #[default]
    Days,
    /// Months of 30.4375 days (365.25 / 12).
    Months,
    /// Years of 365.25 days.
    Years,
}

impl TimeUnit {
    /// Every unit, in order.
    pub const ALL: [TimeUnit; 3] = [TimeUnit::Days, TimeUnit::Months, TimeUnit::Years];

    /// Length in days.
    pub fn days(self) -> f64 {
        match self {
            TimeUnit::Days => 1.0,
            TimeUnit::Months => 365.25 / 12.0,
            TimeUnit::Years => 365.25,
        }
    }
    /// Plural name (`days`): axis titles.
    pub fn name(self) -> &'static str {
        match self {
            TimeUnit::Days => "days",
            TimeUnit::Months => "months",
            TimeUnit::Years => "years",
        }
    }
    /// Abbreviation after a number (`5 y`).
    pub fn abbreviation(self) -> &'static str {
        match self {
            TimeUnit::Days => "d",
            TimeUnit::Months => "mo",
            TimeUnit::Years => "y",
        }
    }
    /// Parses `days`, `months` or `years`.
    pub fn parse(s: &str) -> Option<TimeUnit> {
        TimeUnit::ALL.into_iter().find(|u| u.name() == s)
    }
}

/// The unit times are recorded in and the unit the axes show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TimeAxis {
    /// Unit of the recorded times (the cohort's time column).
    pub data: TimeUnit,
    /// Unit the figures show.
    pub display: TimeUnit,
}

impl TimeAxis {
    /// A recorded time in the display unit.
    pub fn show(&self, t: f64) -> f64 {
        if self.data == self.display {
            t
        } else {
            t * self.data.days() / self.display.days()
        }
    }
    /// A displayed time back in the data's unit.
    pub fn data_of(&self, t: f64) -> f64 {
        if self.data == self.display {
            t
        } else {
            t * self.display.days() / self.data.days()
        }
    }
    /// A horizon as a label: `1825 d`, `5 y`, `3.5 y`, `60 mo` (whole days; months and years to
    /// one decimal, trailing zeros dropped: 2920 days are `8 y`).
    pub fn horizon_label(&self, t: f64) -> String {
        let decimals = if self.display == TimeUnit::Days { 0 } else { 1 };
        format!("{} {}", super::ticks::round_label(self.show(t), decimals), self.display.abbreviation())
    }
    /// The time axis title: `Time since diagnosis (years)` style, with the unit.
    pub fn title(&self) -> String {
        format!("Time ({})", self.display.name())
    }
}

/// How one figure is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Style {
    /// Printed width, mm.
    pub width_mm: f64,
    /// Base type size, pt (axis titles and legends; tick labels and tables are 0.5 pt smaller,
    /// the title 1 pt larger).
    pub font_pt: f64,
    /// Whether the figure's title is drawn above it (the page: yes; a journal figure, whose title
    /// is its caption: no).
    pub title: bool,
    /// A panel letter drawn bold in the top-left corner (`A`).
    pub panel: Option<String>,
    /// Time units.
    pub time: TimeAxis,
}

impl Style {
    /// The page's style: [`PAGE_WIDTH_MM`], 7 pt, titles.
    pub fn page(time: TimeAxis) -> Style {
        Style { width_mm: PAGE_WIDTH_MM, font_pt: 7.0, title: true, panel: None, time }
    }
    /// A journal figure: `width_mm`, 7 pt, no title.
    pub fn journal(width_mm: f64, time: TimeAxis) -> Style {
        Style { width_mm, font_pt: 7.0, title: false, panel: None, time }
    }
    /// Width in user units.
    pub fn width(&self) -> i32 {
        (self.width_mm * UNITS_PER_MM).round() as i32
    }
    /// A type size in user units.
    pub fn size(&self, pt: f64) -> f64 {
        pt * MM_PER_PT * UNITS_PER_MM
    }
    /// Base type size (axis titles, legends), user units.
    pub fn text(&self) -> f64 {
        self.size(self.font_pt)
    }
    /// Tick labels and tables, user units.
    pub fn small(&self) -> f64 {
        self.size(self.font_pt - 0.5)
    }
    /// The title, user units.
    pub fn large(&self) -> f64 {
        self.size(self.font_pt + 1.0)
    }
    /// A length given in points, in user units (at least one unit).
    pub fn pt(&self, pt: f64) -> i32 {
        (self.size(pt)).round().max(1.0) as i32
    }
    /// Data lines: 1 pt.
    pub fn line(&self) -> u32 {
        self.pt(1.0) as u32
    }
    /// Axes, ticks, whiskers: 0.5 pt.
    pub fn thin(&self) -> u32 {
        self.pt(0.5) as u32
    }
}

/// Okabe–Ito, in the order arms and other series take them (black last).
pub const OKABE_ITO: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(240, 228, 66),  // yellow (kept for large areas only: too light for thin lines)
    RGBColor(0, 0, 0),       // black
];

/// The `i`-th series colour (yellow skipped: thin yellow lines do not read on white).
pub fn series(i: usize) -> RGBColor {
    const ORDER: [usize; 7] = [0, 1, 2, 3, 4, 5, 7];
    OKABE_ITO[ORDER[i % ORDER.len()]]
}

/// A risk group's colour by its label (`low`, `mid`, `high`; others by position).
pub fn risk_group(label: &str, i: usize) -> RGBColor {
    match label {
        "low" => OKABE_ITO[0],
        "mid" => OKABE_ITO[4],
        "high" => OKABE_ITO[1],
        _ => series(i + 2),
    }
}

/// How a risk group is named on figures: `Low risk` for `low`, others as recorded.
pub fn risk_group_label(label: &str) -> String {
    match label {
        "low" => "Low risk".into(),
        "mid" => "Intermediate risk".into(),
        "high" => "High risk".into(),
        other => other.to_string(),
    }
}

/// Reference lines (diagonal, no-difference line): mid grey.
pub const REFERENCE: RGBColor = RGBColor(120, 120, 120);
/// Axes and text.
pub const INK: RGBColor = RGBColor(0, 0, 0);
/// Histogram bars and other background marks.
pub const BACKGROUND: RGBColor = RGBColor(190, 190, 190);
