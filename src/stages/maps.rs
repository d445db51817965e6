//! `maps`: the spatial maps of one slide, drawn on its thumbnail.
//!
//! **Inputs:** the slide's tiling and thumbnail (`tile`), the cohort and slide manifest for the
//! pseudonym (`ingest`), and, where the needs hold them, the slide's DAB positivity (`stain`,
//! IHC slides) and its out-of-fold attention (`train` with `model: mil`, repeat 0:
//! [`crate::contracts::attention`]).
//! **Outputs:** `maps.json` ([`crate::contracts::maps`]); per map `<name>.png` (the thumbnail with
//! each tile tinted by its value, viridis, 60 % opaque) and `<name>.svg` (the overlay, the slide's
//! pseudonym, a scale bar in mm and a colour legend whose range is fitted to the data: from 0 to
//! the largest value, or to the 99th percentile when that is lower and there are 100 tiles or
//! more — a cap the legend states);
//! `thumbnail.png`; `tiles/top_<k>.png`, `tiles/bottom_<k>.png`: the 8 highest- and lowest-attention
//! tiles read at level 0 through [`crate::slide`].
//! Spatial statistics: Moran's I ([`crate::slide::moran`]) of each map; the hotspot fraction —
//! the share of the slide's tissue pixels in tiles whose DAB-positive fraction is at least the
//! slide's tile mean plus two SDs (`null` without an IHC map or with fewer than 2 tiles).
//! **Key covers:** `show_patient_ids`, the spec seed (pseudonyms), the slide's item digest and the
//! keys of its needs.
//! **Reference:** Moran (1950), Biometrika 37:17–23; pseudonyms as on the report page.
use super::tile::open_item_slide;
use super::{resolved, typed, CheckCx, Checked, Fanout, ParamError, RunCx, StageKind};
use crate::contracts::attention::AttentionMaps;
use crate::contracts::ingest::{CohortCsv, SlidesJson};
use crate::contracts::maps::{MapEntry, MapsSummary, Thumbnail, TileImage, EXTREME_TILES, SCHEMA};
use crate::contracts::stain::StainOutput;
use crate::contracts::tiles::TileOutput;
use crate::contracts::{Output, INGEST, MAPS, STAIN, TRAIN};
use crate::report::plots::style::Style;
use crate::report::pseudonyms::Pseudonyms;
use crate::slide::moran::morans_i;
use crate::slide::stain_map::viridis;
use crate::slide::tiling::Tiling;
use anyhow::Context;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The `maps` kind.
pub struct Maps;

/// Parameters of `maps`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MapsParams {
    /// Label the maps with the slide id instead of its pseudonym.
    #[serde(default)]
    pub show_patient_ids: bool,
}

/// Width of a map figure, mm.
const FIGURE_MM: f64 = 80.0;

impl StageKind for Maps {
    fn name(&self) -> &'static str {
        MAPS
    }
    fn version(&self) -> u32 {
        1
    }
    fn about(&self) -> &'static str {
        "spatial maps per slide: positivity and attention overlays with legends, Moran's I, extreme tiles"
    }
    fn check(&self, params: &Value, cx: &CheckCx) -> Result<Checked, ParamError> {
        let p: MapsParams = typed(params)?;
        if cx.cohort.and_then(|c| c.slides.as_ref()).is_none() {
            return Err(ParamError::at(vec![], "`maps` needs `cohort.slides` (a slide manifest)"));
        }
        let mut c = Checked::single(resolved(&p));
        c.fanout = Fanout::PerSlide;
        c.uses_seed = true;
        Ok(c.with_typed(p))
    }

    fn run(&self, cx: &RunCx) -> anyhow::Result<()> {
        let p = cx.typed::<MapsParams>()?;
        let item = cx.item.context("per slide")?;
        let tiles_out = cx
            .needs
            .iter()
            .flat_map(|n| n.dirs.iter())
            .map(|(_, d)| TileOutput::at(d))
            .find(TileOutput::exists)
            .with_context(|| format!("slide {}: `maps` needs a `tile` stage", item.shown()))?;
        let tiling = tiles_out.tiling()?;
        let label = label_of(cx, &item.id, p.show_patient_ids)?;
        let (slide, stain) = open_item_slide(cx)?;
        let w0 = slide.meta().width;
        let thumb_path = tiles_out.path("thumbnail.png");
        let thumb =
            image::open(&thumb_path).with_context(|| format!("cannot read {}", thumb_path.display()))?.to_rgb8();
        let scale = thumb.width() as f64 / w0.max(1) as f64;
        let mpp = slide.mpp().map(|m| m.0).unwrap_or(tiling.mpp * tiling.tile_size_level0 as f64 / tiling.size as f64);
        let um_per_px = mpp / scale.max(f64::MIN_POSITIVE);
        crate::slide::tiling::save_png(&thumb, &cx.out.join("thumbnail.png"))?;
        let mut summary = MapsSummary {
            schema: SCHEMA,
            slide: item.id.clone(),
            stain: stain.to_string(),
            patient_id: item.patient.clone(),
            label: label.clone(),
            thumbnail: Thumbnail {
                file: "thumbnail.png".into(),
                width: thumb.width(),
                height: thumb.height(),
                um_per_px,
            },
            maps: Vec::new(),
            moran: BTreeMap::new(),
            hotspot_fraction: None,
            top_tiles: Vec::new(),
            bottom_tiles: Vec::new(),
        };
        let draw = Draw { thumb: &thumb, tiling: &tiling, scale, um_per_px, label: &label, out: cx.out };
        let n = (tiling.rows * tiling.cols) as usize;
        // DAB positivity of an IHC slide
        if let Some(dir) = item_dir(cx, STAIN, &item.id) {
            let st = StainOutput::at(&dir);
            let s = st.summary().with_context(|| format!("slide {}", item.shown()))?;
            if s.positivity.len() == n {
                summary
                    .moran
                    .insert("positivity".into(), morans_i(&s.positivity, tiling.rows as usize, tiling.cols as usize));
                summary.maps.extend(draw.map("positivity", "DAB-positive fraction per tile", &s.positivity)?);
                summary.hotspot_fraction = st.tiles().ok().and_then(|t| hotspot_fraction(&t.tiles));
            }
        }
        // out-of-fold attention (an attention-MIL arm), repeat 0
        if let Some(att) = attention_of(cx, &item.id)? {
            let mut grid = vec![None; n];
            let cell: BTreeMap<(u64, u64), usize> =
                tiling.tiles.iter().map(|t| ((t.x, t.y), (t.row * tiling.cols + t.col) as usize)).collect();
            let rows: Vec<_> = att.rows.iter().filter(|r| r.repeat == 0).collect();
            for r in &rows {
                if let Some(&k) = cell.get(&(r.x.max(0) as u64, r.y.max(0) as u64)) {
                    grid[k] = Some(r.attention);
                }
            }
            summary.moran.insert("attention".into(), morans_i(&grid, tiling.rows as usize, tiling.cols as usize));
            summary.maps.extend(draw.map("attention", "attention (out-of-fold, repeat 0)", &grid)?);
            let mut order: Vec<usize> = (0..rows.len()).collect();
            order.sort_by(|&a, &b| rows[b].attention.total_cmp(&rows[a].attention).then(a.cmp(&b)));
            std::fs::create_dir_all(cx.out.join("tiles"))?;
            let ts = tiling.tile_size_level0;
            let k = EXTREME_TILES.min(order.len() / 2);
            for (side, picks) in [("top", &order[..k]), ("bottom", &order[order.len() - k..])] {
                for (i, &j) in picks.iter().enumerate() {
                    let r = rows[j];
                    let img =
                        slide.read_region(0, r.x, r.y, ts, ts).with_context(|| format!("slide {}", item.shown()))?;
                    let file = format!("tiles/{side}_{}.png", i + 1);
                    crate::slide::tiling::save_png(&img, &cx.out.join(&file))?;
                    let t = TileImage { file, x: r.x, y: r.y, attention: r.attention };
                    if side == "top" {
                        summary.top_tiles.push(t)
                    } else {
                        summary.bottom_tiles.push(t)
                    }
                }
            }
        }
        summary.write(&cx.out.join(MapsSummary::FILE))?;
        cx.log(&format!(
            "slide {}: {} map(s) ({}); Moran's I {}",
            item.shown(),
            summary.maps.len(),
            summary.maps.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
            summary
                .moran
                .iter()
                .map(|(k, m)| format!("{k} {}", m.map_or("—".to_string(), |m| format!("{:.3}", m.i))))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok(())
    }
}

/// The slide's label: its pseudonym as on the report page (cohort and manifest from `ingest`,
/// the spec seed), or its id.
fn label_of(cx: &RunCx, slide: &str, show: bool) -> anyhow::Result<String> {
    let dir = cx
        .needs_of(INGEST)
        .flat_map(|n| n.dirs.iter())
        .map(|(_, d)| d.clone())
        .next()
        .with_context(|| format!("`maps` needs the `{INGEST}` stage (the slide's pseudonym)"))?;
    let ids: Vec<String> =
        CohortCsv::read(&dir.join(CohortCsv::FILE))?.rows.into_iter().map(|r| r.patient_id).collect();
    let path = dir.join(SlidesJson::FILE);
    let slides: Vec<(String, String, String)> = if path.exists() {
        SlidesJson::read(&path)?.slides.into_iter().map(|s| (s.slide_id, s.patient_id, s.stain.to_string())).collect()
    } else {
        Vec::new()
    };
    Ok(Pseudonyms::new(cx.seed, &ids, &slides, show).slide(slide))
}

/// The directory of a per-slide need of `kind` for this slide.
fn item_dir(cx: &RunCx, kind: &str, slide: &str) -> Option<std::path::PathBuf> {
    cx.needs_of(kind).flat_map(|n| n.dirs.iter()).find(|(i, _)| i.as_deref() == Some(slide)).map(|(_, d)| d.clone())
}

/// The slide's attention from the first `train` need that wrote attention for it.
fn attention_of(cx: &RunCx, slide: &str) -> anyhow::Result<Option<crate::contracts::attention::SlideAttention>> {
    for (_, dir) in cx.needs_of(TRAIN).flat_map(|n| n.dirs.iter()) {
        if !dir.join(AttentionMaps::DIR).join(AttentionMaps::INDEX).exists() {
            continue;
        }
        let index = AttentionMaps::read_index(dir)?;
        if let Some(e) = index.slides.iter().find(|s| s.slide == slide) {
            return Ok(Some(AttentionMaps::read_slide(dir, e)?));
        }
    }
    Ok(None)
}

/// Share of tissue pixels in tiles at or above the slide's mean + 2 SD of tile positivity.
fn hotspot_fraction(tiles: &[crate::slide::stain_map::TileStain]) -> Option<f64> {
    let v: Vec<f64> = tiles.iter().map(|t| t.dab_positive_fraction).collect();
    if v.len() < 2 {
        return None;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
    let tissue: u64 = tiles.iter().map(|t| t.tissue_pixels).sum();
    if tissue == 0 || sd.is_nan() || sd <= 0.0 {
        return Some(0.0).filter(|_| tissue > 0);
    }
    let hot: u64 = tiles.iter().filter(|t| t.dab_positive_fraction >= mean + 2.0 * sd).map(|t| t.tissue_pixels).sum();
    Some(hot as f64 / tissue as f64)
}

/// The value range of a map: 0 (or the least value when negative) to the largest value, capped
/// at the 99th percentile when that is lower and the map has at least 100 values; `None` without
/// a finite value.
pub fn value_range(values: &[Option<f64>]) -> Option<(f64, f64, bool)> {
    let mut v: Vec<f64> = values.iter().flatten().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let (&first, &last) = (v.first()?, v.last()?);
    let lo = first.min(0.0);
    let p99 = v[((v.len() - 1) as f64 * 0.99).floor() as usize];
    // a cap only where the 99th percentile means something (100 tiles or more)
    let (hi, capped) = if v.len() >= 100 && p99 < last && p99 > lo { (p99, true) } else { (last, false) };
    Some(if hi > lo { (lo, hi, capped) } else { (lo, lo + 1.0, false) })
}

/// What every map of a slide is drawn with.
struct Draw<'a> {
    thumb: &'a image::RgbImage,
    tiling: &'a Tiling,
    scale: f64,
    um_per_px: f64,
    label: &'a str,
    out: &'a Path,
}

impl Draw<'_> {
    /// Writes `<name>.png` and `<name>.svg` of a grid map; `None` when the map has no value.
    fn map(&self, name: &str, title: &str, grid: &[Option<f64>]) -> anyhow::Result<Option<MapEntry>> {
        let Some((lo, hi, capped)) = value_range(grid) else { return Ok(None) };
        let mut img = self.thumb.clone();
        for t in &self.tiling.tiles {
            let Some(v) = grid.get((t.row * self.tiling.cols + t.col) as usize).copied().flatten() else { continue };
            let c = viridis((v - lo) / (hi - lo));
            let x0 = (t.x as f64 * self.scale).floor() as u32;
            let y0 = (t.y as f64 * self.scale).floor() as u32;
            let side = (self.tiling.tile_size_level0 as f64 * self.scale).ceil().max(1.0) as u32;
            for y in y0..(y0 + side).min(img.height()) {
                for x in x0..(x0 + side).min(img.width()) {
                    let p = img.get_pixel_mut(x, y);
                    for (ch, &cv) in p.0.iter_mut().zip(c.iter()) {
                        *ch = (0.4 * *ch as f64 + 0.6 * cv as f64).round() as u8;
                    }
                }
            }
        }
        let image = format!("{name}.png");
        crate::slide::tiling::save_png(&img, &self.out.join(&image))?;
        let legend_title = if capped { format!("{title} (capped at {hi:.3})") } else { title.to_string() };
        let figure = format!("{name}.svg");
        let svg = self.figure(&self.out.join(&image), &legend_title, (lo, hi), img.width(), img.height())?;
        crate::util::write_file(self.out.join(&figure), svg)?;
        Ok(Some(MapEntry { name: name.into(), title: title.into(), image, figure, lo, hi, capped }))
    }

    /// The figure: the label above, the overlay, a scale bar on it, the colour legend below
    /// (SVG in the figures' 0.1 mm units).
    fn figure(&self, png: &Path, title: &str, range: (f64, f64), w: u32, h: u32) -> anyhow::Result<String> {
        let style = Style::journal(FIGURE_MM, Default::default());
        let legend = crate::report::plots::colorbar::draw(title, range, viridis, &style)?;
        let fw = style.width() as f64;
        let k = fw / w.max(1) as f64; // figure units per thumbnail pixel
        let ih = h as f64 * k;
        let head = 60.0;
        let (lw, lh) = view_box(&legend).unwrap_or((fw, 150.0));
        let total = head + ih + 10.0 + lh;
        let data = base64::engine::general_purpose::STANDARD.encode(std::fs::read(png)?);
        // scale bar: a round length near a fifth of the width
        let width_um = w as f64 * self.um_per_px;
        let bar_um = [100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0]
            .into_iter()
            .rev()
            .find(|&b| b <= width_um / 4.0)
            .unwrap_or(100.0);
        let bar = bar_um / self.um_per_px * k;
        let (bx, by) = (fw - 20.0 - bar, head + ih - 25.0);
        let bar_label = format!("{} mm", bar_um / 1000.0);
        let inner = legend.split_once('>').map_or("", |(_, rest)| rest).trim_end();
        let inner = inner.strip_suffix("</svg>").unwrap_or(inner);
        let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        Ok(format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" font-family=\"{font}\" width=\"{wmm}mm\" height=\"{hmm}mm\" viewBox=\"0 0 {fw} {total}\">\
<text x=\"0\" y=\"40\" font-size=\"36\">{label}</text>\
<image x=\"0\" y=\"{head}\" width=\"{fw}\" height=\"{ih}\" href=\"data:image/png;base64,{data}\"/>\
<rect x=\"{bx}\" y=\"{by}\" width=\"{bar}\" height=\"8\" fill=\"#000\" stroke=\"#fff\" stroke-width=\"2\"/>\
<text x=\"{bcx}\" y=\"{bty}\" font-size=\"28\" text-anchor=\"middle\" fill=\"#000\" stroke=\"#fff\" stroke-width=\"4\" paint-order=\"stroke\">{bar_label}</text>\
<svg x=\"0\" y=\"{ly}\" width=\"{lw}\" height=\"{lh}\" viewBox=\"0 0 {lw} {lh}\">{inner}</svg></svg>",
            font = crate::report::plots::font::FAMILY,
            wmm = fw / 10.0,
            hmm = total / 10.0,
            label = esc(self.label),
            bcx = bx + bar / 2.0,
            bty = by - 8.0,
            ly = head + ih + 10.0,
        ))
    }
}

/// The width and height of an SVG's `viewBox`.
fn view_box(svg: &str) -> Option<(f64, f64)> {
    let rest = &svg[svg.find("viewBox=\"")? + 9..];
    let v: Vec<f64> = rest[..rest.find('"')?].split_whitespace().filter_map(|x| x.parse().ok()).collect();
    (v.len() == 4).then(|| (v[2], v[3]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_ranges_are_fitted_or_capped() {
        assert_eq!(value_range(&[None, Some(0.02), Some(0.05)]), Some((0.0, 0.05, false)));
        let mut v: Vec<Option<f64>> = (0..200).map(|i| Some(i as f64 / 1000.0)).collect();
        v.push(Some(0.9));
        let (lo, hi, capped) = value_range(&v).unwrap();
        assert!(capped && lo == 0.0 && (hi - 0.198).abs() < 1e-12, "{hi}");
        assert_eq!(value_range(&[Some(0.0), Some(0.0)]), Some((0.0, 1.0, false)));
        assert_eq!(value_range(&[None, Some(f64::NAN)]), None);
    }

    #[test]
    fn view_box_is_read() {
        assert_eq!(view_box("<svg width=\"1\" viewBox=\"0 0 800 120\">"), Some((800.0, 120.0)));
        assert_eq!(view_box("<svg>"), None);
    }
}
