//! The figures' typeface: DejaVu Sans (regular and bold), compiled into the binary from
//! `assets/fonts/` (a subset; licence and subsetting command there), and text measurement with
//! it, so that layout (margins, legend wrapping, table columns) uses the glyph advances every
//! renderer — the browser given the page's `@font-face`, resvg, svg2pdf — draws with.
//!
//! Measurement: the sum of horizontal advances (with pair kerning from the `kern` table when
//! present) times size / units-per-em. A character the subset lacks measures as the
//! missing-glyph box, as it is drawn.
use std::sync::OnceLock;

/// The family name written into SVG text.
pub const FAMILY: &str = "DejaVu Sans";
/// DejaVu Sans, regular (subset).
pub static REGULAR: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
/// DejaVu Sans, bold (subset).
pub static BOLD: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-Bold.ttf");

struct Metrics {
    units_per_em: f64,
    ascender: f64,
    descender: f64,
    face: ttf_parser::Face<'static>,
}

fn metrics(bold: bool) -> &'static Metrics {
    static R: OnceLock<Metrics> = OnceLock::new();
    static B: OnceLock<Metrics> = OnceLock::new();
    let (cell, bytes) = if bold { (&B, BOLD) } else { (&R, REGULAR) };
    cell.get_or_init(|| {
        // the bytes are compiled in and checked by a unit test: a failure here is a build defect
        let face = ttf_parser::Face::parse(bytes, 0).expect("the compiled-in DejaVu Sans parses");
        Metrics {
            units_per_em: face.units_per_em() as f64,
            ascender: face.ascender() as f64,
            descender: face.descender() as f64,
            face,
        }
    })
}

/// Width of `text` at `size` (em size, any unit), regular or bold.
pub fn width(text: &str, size: f64, bold: bool) -> f64 {
    let m = metrics(bold);
    let mut total = 0.0;
    let mut prev: Option<ttf_parser::GlyphId> = None;
    for c in text.chars() {
        let g = m.face.glyph_index(c).unwrap_or(ttf_parser::GlyphId(0));
        total += m.face.glyph_hor_advance(g).unwrap_or(0) as f64;
        if let (Some(p), Some(kern)) = (prev, m.face.tables().kern) {
            for st in kern.subtables {
                if st.horizontal && !st.variable {
                    if let Some(k) = st.glyphs_kerning(p, g) {
                        total += k as f64;
                        break;
                    }
                }
            }
        }
        prev = Some(g);
    }
    total * size / m.units_per_em
}

/// Height above the baseline of the tallest glyphs (ascender) at `size`.
pub fn ascent(size: f64) -> f64 {
    let m = metrics(false);
    m.ascender * size / m.units_per_em
}

/// Depth below the baseline (positive) at `size`.
pub fn descent(size: f64) -> f64 {
    let m = metrics(false);
    -m.descender * size / m.units_per_em
}

/// `@font-face` rules embedding both faces as base64 data (the page's stylesheet).
pub fn css_font_faces() -> String {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    format!(
        "@font-face{{font-family:\"{FAMILY}\";font-weight:normal;src:url(data:font/ttf;base64,{})}}\
         @font-face{{font-family:\"{FAMILY}\";font-weight:bold;src:url(data:font/ttf;base64,{})}}",
        b64(REGULAR),
        b64(BOLD)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_faces_parse_and_measure() {
        for bold in [false, true] {
            assert!(width("Time (years)", 10.0, bold) > 40.0);
        }
        // DejaVu Sans: '0' advances 1303/2048 em
        assert!((width("0", 2048.0, false) - 1303.0).abs() < 1e-9);
        assert!(width("W", 10.0, true) > width("W", 10.0, false));
        assert!(ascent(10.0) > 7.0 && descent(10.0) > 1.0);
        // the characters figures use are in the subset
        let m = metrics(false);
        for c in "ΔCχ²±×−–—≤≥†µ·…".chars() {
            assert!(m.face.glyph_index(c).is_some(), "{c} missing from the font subset");
        }
    }
}
