//! A figure's SVG as PNG (resvg, at a chosen resolution, the resolution recorded in the PNG's
//! `pHYs` chunk) or PDF (svg2pdf, text kept as text in the compiled-in fonts, embedded as
//! subsets). Both parse the SVG with usvg given a font database holding only
//! [`super::font::REGULAR`] and [`super::font::BOLD`]: no system font is consulted, so the bytes
//! depend on the figure and this build only.
//!
//! Size: the SVG's root `width`/`height` are in mm; usvg reads them at 96 user units per inch,
//! so a PNG at `dpi` is scaled by `dpi / 96` and the PDF page is `width × 72 / 96` points —
//! the figure's size in mm either way.
//!
//! Also here: [`Format`] (the file formats a figure is written in) and [`check_figure_size`]
//! (the width, resolution and type size a figure may be asked for, from [`crate::bounds`]).
use std::sync::Arc;

use resvg::{tiny_skia, usvg};
use serde::{Deserialize, Serialize};

use super::{font, PlotError};

/// A figure file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Svg,
    Png,
    Pdf,
}

impl Format {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Svg => "svg",
            Format::Png => "png",
            Format::Pdf => "pdf",
        }
    }
    /// The bytes of `svg` in this format.
    pub fn encode(self, svg: &str, dpi: u32) -> Result<Vec<u8>, PlotError> {
        match self {
            Format::Svg => Ok(svg.as_bytes().to_vec()),
            Format::Png => png(svg, dpi),
            Format::Pdf => pdf(svg),
        }
    }
}

/// Type sizes accepted, pt.
pub const FONT_PT_RANGE: (f64, f64) = (crate::bounds::REPORT_FIGURE_FONT.lo, crate::bounds::REPORT_FIGURE_FONT.hi);

/// Checks a figure's size, resolution and type size; `at` is the parameter path.
pub fn check_figure_size(at: &str, width_mm: f64, dpi: u32, font_pt: f64) -> Result<(), String> {
    let (w0, w1) = super::style::WIDTH_RANGE_MM;
    if !(w0..=w1).contains(&width_mm) {
        return Err(format!("{at}width_mm: expected {w0} to {w1} mm (85 a single column, 174 two), found {width_mm}"));
    }
    let (d0, d1) = DPI_RANGE;
    if !(d0..=d1).contains(&dpi) {
        return Err(format!("{at}dpi: expected {d0} to {d1}, found {dpi}"));
    }
    let (f0, f1) = FONT_PT_RANGE;
    if !(f0..=f1).contains(&font_pt) {
        return Err(format!("{at}font_pt: expected {f0} to {f1} pt, found {font_pt}"));
    }
    Ok(())
}

/// PNG resolutions accepted (dots per inch).
pub const DPI_RANGE: (u32, u32) =
    (crate::bounds::REPORT_FIGURE_DPI.lo as u32, crate::bounds::REPORT_FIGURE_DPI.hi as u32);

fn tree(svg: &str, format: &'static str) -> Result<usvg::Tree, PlotError> {
    let mut db = usvg::fontdb::Database::new();
    db.load_font_data(font::REGULAR.to_vec());
    db.load_font_data(font::BOLD.to_vec());
    let opt = usvg::Options { font_family: font::FAMILY.to_string(), fontdb: Arc::new(db), ..Default::default() };
    usvg::Tree::from_str(svg, &opt)
        .map_err(|e| PlotError::Export { format, message: format!("cannot parse the SVG: {e}") })
}

/// The figure as a PNG at `dpi`.
///
/// # Errors
/// [`PlotError::Export`]: a resolution outside [`DPI_RANGE`], an SVG usvg cannot read, or an
/// image too large to allocate.
pub fn png(svg: &str, dpi: u32) -> Result<Vec<u8>, PlotError> {
    const F: &str = "png";
    if !(DPI_RANGE.0..=DPI_RANGE.1).contains(&dpi) {
        return Err(PlotError::Export {
            format: F,
            message: format!("expected a resolution from {} to {} dpi, found {dpi}", DPI_RANGE.0, DPI_RANGE.1),
        });
    }
    let t = tree(svg, F)?;
    let scale = dpi as f32 / 96.0;
    let size = t.size();
    let (w, h) = ((size.width() * scale).ceil() as u32, (size.height() * scale).ceil() as u32);
    let mut pixmap = tiny_skia::Pixmap::new(w, h)
        .ok_or_else(|| PlotError::Export { format: F, message: format!("cannot allocate a {w}×{h} image") })?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&t, tiny_skia::Transform::from_scale(scale, scale), &mut pixmap.as_mut());
    // opaque RGB (the background is white): smaller, and what journals ask for
    let rgb: Vec<u8> = pixmap.data().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let ppm = (dpi as f64 / 0.0254).round() as u32;
        enc.set_pixel_dims(Some(png::PixelDimensions { xppu: ppm, yppu: ppm, unit: png::Unit::Meter }));
        let err = |e: png::EncodingError| PlotError::Export { format: F, message: e.to_string() };
        let mut wr = enc.write_header().map_err(err)?;
        wr.write_image_data(&rgb).map_err(err)?;
    }
    Ok(out)
}

/// The figure as a one-page PDF of the figure's size, fonts embedded.
///
/// # Errors
/// [`PlotError::Export`]: an SVG usvg cannot read, or a conversion failure.
pub fn pdf(svg: &str) -> Result<Vec<u8>, PlotError> {
    const F: &str = "pdf";
    let t = tree(&one_face(svg), F)?;
    let conv = svg2pdf::ConversionOptions { embed_text: true, ..Default::default() };
    let pdf = svg2pdf::to_pdf(&t, conv, svg2pdf::PageOptions { dpi: 96.0 })
        .map_err(|e| PlotError::Export { format: F, message: format!("{e:?}") })?;
    Ok(canonical_pdf(pdf))
}

/// svg2pdf 0.13 writes the font objects of a document in hash-map order, so a PDF with two
/// faces differs from run to run. Bold text is therefore drawn with the regular face and a
/// stroke of its own colour (4 % of the type size: faux bold) in PDFs: one face, the same bytes.
fn one_face(svg: &str) -> String {
    let mut out = String::with_capacity(svg.len());
    let mut rest = svg;
    while let Some(i) = rest.find("<text ") {
        let end = rest[i..].find('>').map(|e| i + e).unwrap_or(rest.len());
        let tag = &rest[i..end];
        out.push_str(&rest[..i]);
        if tag.contains(" font-weight=\"bold\"") {
            let fill = super::tag_attr(tag, "fill").unwrap_or("#000000").to_string();
            let size: f64 = super::tag_attr(tag, "font-size").and_then(|v| v.parse().ok()).unwrap_or(10.0);
            out.push_str(&tag.replace(" font-weight=\"bold\"", ""));
            out.push_str(&format!(" stroke=\"{fill}\" stroke-width=\"{:.2}\" stroke-linejoin=\"round\"", size * 0.04));
        } else {
            out.push_str(tag);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// svg2pdf writes resource dictionaries (`/Font`, `/XObject`, `/ExtGState` …) from a hash map,
/// so their entries come in a different order from one process to the next. This sorts the
/// entries of every dictionary made only of `/Name n 0 R` lines, outside streams. Sorting lines
/// in place keeps every byte offset, so the cross-reference table stays valid.
fn canonical_pdf(mut pdf: Vec<u8>) -> Vec<u8> {
    fn find(h: &[u8], n: &[u8], from: usize) -> Option<usize> {
        h.get(from..)?.windows(n.len()).position(|w| w == n).map(|p| p + from)
    }
    fn is_ref(line: &[u8]) -> bool {
        let t = String::from_utf8_lossy(line);
        let mut w = t.split_whitespace();
        matches!((w.next(), w.next(), w.next(), w.next(), w.next()), (Some(n), Some(a), Some("0"), Some("R"), None)
            if n.starts_with('/') && a.bytes().all(|b| b.is_ascii_digit()))
    }
    let mut i = 0;
    while i < pdf.len() {
        let s = find(&pdf, b"stream\n", i).unwrap_or(pdf.len());
        // the dictionary text [i, s): lines and their offsets
        let mut starts = vec![i];
        starts.extend((i..s).filter(|&k| pdf[k] == b'\n').map(|k| k + 1));
        let lines: Vec<(usize, usize)> = starts.windows(2).map(|w| (w[0], w[1])).collect();
        let mut k = 0;
        while k < lines.len() {
            let (a, b) = lines[k];
            if pdf[a..b].trim_ascii().ends_with(b"<<") {
                let mut j = k + 1;
                while j < lines.len() && is_ref(&pdf[lines[j].0..lines[j].1]) {
                    j += 1;
                }
                if j - k > 2 && j < lines.len() && pdf[lines[j].0..lines[j].1].trim_ascii() == b">>" {
                    let (from, to) = (lines[k + 1].0, lines[j - 1].1);
                    let mut entries: Vec<Vec<u8>> = lines[k + 1..j].iter().map(|&(x, y)| pdf[x..y].to_vec()).collect();
                    entries.sort();
                    pdf.splice(from..to, entries.concat());
                }
            }
            k += 1;
        }
        i = match find(&pdf, b"endstream", s) {
            Some(e) => e + 9,
            None => pdf.len(),
        };
    }
    pdf
}

/// Bounding boxes (user units of the SVG's viewBox) of the text elements whose content is
/// `text`, as laid out by usvg with the compiled-in fonts (tests check legends against the
/// plot area with them).
///
/// # Errors
/// An SVG usvg cannot read.
pub fn text_boxes(svg: &str, text: &str) -> Result<Vec<(f32, f32, f32, f32)>, PlotError> {
    let t = tree(svg, "svg")?;
    let mut out = Vec::new();
    fn walk(g: &usvg::Group, text: &str, out: &mut Vec<(f32, f32, f32, f32)>) {
        for n in g.children() {
            match n {
                usvg::Node::Group(g) => walk(g, text, out),
                usvg::Node::Text(t) => {
                    let s: String = t.chunks().iter().map(|c| c.text()).collect();
                    if s == text {
                        let b = t.abs_bounding_box();
                        out.push((b.left(), b.top(), b.right(), b.bottom()));
                    }
                }
                _ => {}
            }
        }
    }
    walk(t.root(), text, &mut out);
    // user units of the viewBox: the tree is in px (96 dpi) of the mm size
    let vb_width = super::view_box_size(svg).map(|(w, _)| w as f32).unwrap_or(t.size().width());
    let vb_scale = t.size().width() / vb_width;
    Ok(out.into_iter().map(|(a, b, c, d)| (a / vb_scale, b / vb_scale, c / vb_scale, d / vb_scale)).collect())
}
