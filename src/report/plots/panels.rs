//! Choosing recorded figures and composing them into a paper's multi-panel figure.
//!
//! Selection ([`select`]): a figure kind as the user names it (`km`, `roc`, `calibration`,
//! `calibration_recalibrated`, `forest`, `cif`, `training_score`, `training_loss`), optionally
//! an arm (default: the arm the page shows) and a horizon (calibration: the figure at that
//! horizon; ROC: only that horizon's curve).
//!
//! Composition ([`compose`]): panels drawn at the column width they get (the figure's width
//! less 4 mm between columns, divided by the columns), each with its letter (A, B, …) in bold
//! at its top-left corner, placed row by row as nested `<svg>` elements of one document whose
//! size is the figure's in mm. Each panel keeps its own `<title>` and provenance metadata.
use serde::{Deserialize, Serialize};

use super::{render, style, Figure, FigureData, Meta, PlotError, Style};

/// The kinds a user can ask for.
pub const SELECTABLE: [&str; 8] =
    ["km", "roc", "calibration", "calibration_recalibrated", "forest", "cif", "training_score", "training_loss"];

/// A figure the user asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// One of [`SELECTABLE`].
    pub kind: String,
    /// An arm (default: the page's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    /// A horizon in the data's time unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon: Option<f64>,
}

fn matches_kind(name: &str, kind: &str) -> bool {
    if kind.starts_with("training_") {
        name.starts_with(&format!("{kind}_"))
    } else {
        name == kind || name.strip_prefix(kind).is_some_and(|r| r.starts_with('.'))
    }
}

/// The recorded figure `sel` asks for, with a ROC figure reduced to the chosen horizon.
///
/// # Errors
/// A message naming what was asked and what the report has: an unknown kind, an arm or horizon
/// without such a figure.
pub fn select(figures: &[Figure], sel: &Selection, main_arm: Option<&str>) -> Result<Figure, String> {
    if !SELECTABLE.contains(&sel.kind.as_str()) {
        return Err(format!("unknown figure kind {:?}: expected one of {}", sel.kind, SELECTABLE.join(", ")));
    }
    let of_kind: Vec<&Figure> = figures.iter().filter(|f| matches_kind(&f.name, &sel.kind)).collect();
    if of_kind.is_empty() {
        return Err(format!("this report has no {} figure", sel.kind));
    }
    let arms = || {
        let mut a: Vec<&str> = of_kind.iter().filter_map(|f| f.arm.as_deref()).collect();
        a.dedup();
        a.join(", ")
    };
    let mut candidates: Vec<&Figure> = match &sel.arm {
        Some(a) => of_kind.iter().copied().filter(|f| f.arm.as_deref().is_none_or(|x| x == a)).collect(),
        None => {
            // the page's figure; of several (training curves: one per arm), the page's main arm's
            let mut shown: Vec<&Figure> = of_kind.iter().copied().filter(|f| f.on_page).collect();
            shown.sort_by_key(|f| f.arm.as_deref() != main_arm || main_arm.is_none());
            if shown.is_empty() {
                of_kind.clone()
            } else {
                shown
            }
        }
    };
    if candidates.is_empty() {
        return Err(format!(
            "no {} figure for arm {:?}; arms with one: {}",
            sel.kind,
            sel.arm.as_deref().unwrap_or(""),
            arms()
        ));
    }
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
    if let Some(h) = sel.horizon {
        if sel.kind.starts_with("calibration") {
            let have: Vec<String> = candidates.iter().filter_map(|f| f.horizon).map(|x| x.to_string()).collect();
            candidates.retain(|f| f.horizon.is_some_and(|x| close(x, h)));
            if candidates.is_empty() {
                return Err(format!("no {} figure at horizon {h}; horizons recorded: {}", sel.kind, have.join(", ")));
            }
        }
    }
    let mut fig = candidates[0].clone();
    if let (Some(h), FigureData::Roc(d)) = (sel.horizon, &mut fig.data) {
        let have: Vec<String> = d.curves.iter().map(|c| c.horizon.to_string()).collect();
        d.curves.retain(|c| close(c.horizon, h));
        if d.curves.is_empty() {
            return Err(format!("no ROC curve at horizon {h}; horizons recorded: {}", have.join(", ")));
        }
    }
    Ok(fig)
}

/// Space between panel columns and rows, mm.
pub const PANEL_GAP_MM: f64 = 4.0;

/// Draws `figures` as panels A, B, … in `columns` columns of one figure `width_mm` wide.
///
/// # Errors
/// A panel that cannot be drawn.
pub fn compose(figures: &[Figure], columns: usize, base: &Style, meta: &Meta) -> Result<String, PlotError> {
    let cols = columns.clamp(1, figures.len().max(1));
    let gap = (PANEL_GAP_MM * style::UNITS_PER_MM).round() as i32;
    let total = base.width();
    let panel_w_mm = (base.width_mm - PANEL_GAP_MM * (cols as f64 - 1.0)) / cols as f64;
    let mut parts = Vec::new();
    let (mut y, mut row_h) = (0i32, 0i32);
    let mut body = String::new();
    for (i, f) in figures.iter().enumerate() {
        let mut st = base.clone();
        st.width_mm = panel_w_mm;
        st.panel = (figures.len() > 1).then(|| letter(i));
        let svg = render(f, &st, meta)?;
        let (w, h) = super::view_box_size(&svg).map(|(w, h)| (w as i32, h as i32)).unwrap_or((st.width(), 0));
        let col = i % cols;
        if col == 0 && i > 0 {
            y += row_h + gap;
            row_h = 0;
        }
        let x = col as i32 * (st.width() + gap);
        row_h = row_h.max(h);
        let inner = svg.find('>').map(|e| &svg[e + 1..]).unwrap_or("");
        body.push_str(&format!(
            "<svg x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">{inner}\n"
        ));
        parts.push(f.name.clone());
    }
    let height = y + row_h;
    let mm = |u: i32| super::mm(u as f64);
    Ok(format!(
        "<svg width=\"{}mm\" height=\"{}mm\" viewBox=\"0 0 {total} {height}\" xmlns=\"http://www.w3.org/2000/svg\" \
         font-family=\"{}\">\n<title>{}</title>\n<rect x=\"0\" y=\"0\" width=\"{total}\" height=\"{height}\" \
         fill=\"#FFFFFF\"/>\n{body}</svg>\n",
        mm(total),
        mm(height),
        super::font::FAMILY,
        super::escape(&parts.join(", "))
    ))
}

/// `A`, `B`, … `Z`, `AA` …
pub fn letter(i: usize) -> String {
    let mut n = i;
    let mut s = Vec::new();
    loop {
        s.push((b'A' + (n % 26) as u8) as char);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    s.iter().rev().collect()
}
