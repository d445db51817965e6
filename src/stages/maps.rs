//! `maps`: the spatial maps of one slide, drawn on its thumbnail.
//!
//! **Inputs:** the slide's tiling and thumbnail (`tile`), the cohort and slide manifest for the
//! pseudonym (`ingest`), and, where the needs hold them, the slide's nuclear scores (`stain`,
//! IHC slides: [`crate::contracts::stain`]) and its out-of-fold attention (`train` with
//! `model: mil`, repeat 0: [`crate::contracts::attention`]).
//! **Outputs:** `maps.json` ([`crate::contracts::maps`]); per map `<name>.png` (the thumbnail with
//! each tile tinted by its value, viridis, 60 % opaque) and `<name>.svg` (the overlay, the slide's
//! pseudonym, a scale bar in mm and a colour legend whose range is fitted to the data: from 0 to
//! the largest value, or to the 99th percentile when that is lower and there are 100 tiles or
//! more — a cap the legend states). Maps: `labelling` (IHC: positive / all nuclei per tile from
//! `stain.json`'s `labelling_grid`, the nuclear grid, as the legend says; `positivity`, the
//! DAB-positive pixel fraction, only for a `stain` output without nuclei) and `attention`.
//! Ki-67 slides also get `nuclei.png` / `nuclei.svg`: the tile with the most positive nuclei at
//! the nuclear scoring's resolution, its nuclei detected again with `stain`'s parameters and
//! outlined (positive red, negative blue, counts in the legend, scale bar in µm).
//! `thumbnail.png`; `tiles/top_<k>.png`, `tiles/bottom_<k>.png`: the 8 highest- and lowest-attention
//! tiles read at level 0 through [`crate::slide`].
//! Spatial statistics: Moran's I ([`crate::slide::moran`]) of each map and of nuclear density
//! (`nuclei_grid`, key `nuclear_density`); the hotspot fraction — the share of the slide's tissue
//! pixels in hotspot tiles: with a nuclear hotspot index (a window of about 0.2 mm² with ≥ 500
//! nuclei, from `stain`), the tiles whose labelling index reaches it (`hotspot_method: nuclear`);
//! otherwise the tiles whose DAB-positive fraction is at least the tile mean plus two SDs
//! (`positivity`; `null` with fewer than 2 tiles). The slide's scores (labelling and hotspot
//! index, nuclei) are copied into `maps.json` for the report.
//! **Key covers:** `show_patient_ids`, the spec seed (pseudonyms), the slide's item digest and the
//! keys of its needs.
//! **Reference:** Moran (1950), Biometrika 37:17–23; pseudonyms as on the report page.
use super::tile::open_item_slide;
use super::{resolved, typed, CheckCx, Checked, Fanout, ParamError, RunCx, StageKind};
use crate::contracts::attention::AttentionMaps;
use crate::contracts::ingest::{CohortCsv, SlidesJson};
use crate::contracts::maps::{
    MapEntry, MapsSummary, NucleiCrop, SlideScores, Thumbnail, TileImage, EXTREME_TILES, SCHEMA,
};
use crate::contracts::stain::{StainCsv, StainOutput};
use crate::contracts::tiles::TileOutput;
use crate::contracts::{Output, INGEST, MAPS, STAIN, TRAIN};
use crate::report::plots::style::Style;
use crate::report::pseudonyms::Pseudonyms;
use crate::slide::moran::morans_i;
use crate::slide::nuclei::{detect_nuclei, draw_overlay, NucleiParams};
use crate::slide::stain_map::viridis;
use crate::slide::tiling::Tiling;
use crate::slide::{Slide, Stain};
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
        2
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
            hotspot_method: None,
            scores: SlideScores::default(),
            nuclei_crop: None,
            top_tiles: Vec::new(),
            bottom_tiles: Vec::new(),
        };
        let draw = Draw { thumb: &thumb, tiling: &tiling, scale, um_per_px, label: &label, out: cx.out };
        let n = (tiling.rows * tiling.cols) as usize;
        // nuclear labelling of an IHC slide (DAB-positive pixel fraction where no nucleus was scored)
        if let Some(dir) = item_dir(cx, STAIN, &item.id) {
            let st = StainOutput::at(&dir);
            let s = st.summary().with_context(|| format!("slide {}", item.shown()))?;
            let csv = st.tiles().with_context(|| format!("slide {}", item.shown()))?;
            let (rows, cols) = (tiling.rows as usize, tiling.cols as usize);
            summary.scores = SlideScores {
                labelling_index: s.labelling_index,
                hotspot_index: s.hotspot_index,
                nuclei: Some(s.nuclei),
                positive_nuclei: Some(s.positive_nuclei),
            };
            if s.labelling_grid.len() == n && s.labelling_grid.iter().any(Option::is_some) {
                summary.moran.insert("labelling".into(), morans_i(&s.labelling_grid, rows, cols));
                let title = format!("{stain} labelling index per tile (nuclear grid)");
                summary.maps.extend(draw.map("labelling", &title, &s.labelling_grid)?);
            } else if s.positivity.len() == n {
                summary.moran.insert("positivity".into(), morans_i(&s.positivity, rows, cols));
                summary.maps.extend(draw.map("positivity", "DAB-positive pixel fraction per tile", &s.positivity)?);
            }
            if s.nuclei_grid.len() == n {
                let density: Vec<Option<f64>> = s.nuclei_grid.iter().map(|v| v.map(|v| v as f64)).collect();
                summary.moran.insert("nuclear_density".into(), morans_i(&density, rows, cols));
            }
            let (fraction, method) = match s.hotspot_index {
                Some(h) => (nuclear_hotspot_fraction(&csv, h), "nuclear"),
                None => (hotspot_fraction(&csv.tiles), "positivity"),
            };
            summary.hotspot_fraction = fraction;
            summary.hotspot_method = fraction.map(|_| method.to_string());
            if stain == Stain::KI67 && s.nuclei > 0 {
                summary.nuclei_crop = nuclei_crop(&slide, &tiling, &csv, &s.nuclei_params, &label, cx.out)
                    .with_context(|| format!("slide {}: nuclei crop", item.shown()))?;
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

/// Share of tissue pixels in the nuclear hotspot's tiles: tiles with nuclei whose labelling
/// index reaches the slide's hotspot index (the best window of about 0.2 mm² from `stain`);
/// `None` without tissue pixels.
fn nuclear_hotspot_fraction(csv: &StainCsv, hotspot_index: f64) -> Option<f64> {
    let tissue: u64 = csv.tiles.iter().map(|t| t.tissue_pixels).sum();
    let hot: std::collections::BTreeSet<(u32, u32)> = csv
        .nuclei
        .iter()
        .filter(|t| t.nuclei > 0 && f64::from(t.positive_nuclei) / f64::from(t.nuclei) >= hotspot_index)
        .map(|t| (t.col, t.row))
        .collect();
    let in_hot: u64 = csv.tiles.iter().filter(|t| hot.contains(&(t.col, t.row))).map(|t| t.tissue_pixels).sum();
    (tissue > 0).then(|| in_hot as f64 / tissue as f64)
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

/// A crop of one tile at the nuclear scoring's resolution with its nuclei detected again (as
/// `stain` did, same parameters) and drawn: positive red, negative blue (as `spatia stain nuclei
/// --overlay`). The tile is the one with the most positive nuclei (ties: the first in the
/// tiling's order). Writes `nuclei.png` and `nuclei.svg`; `None` when no tile holds a nucleus.
fn nuclei_crop(
    slide: &Slide,
    tiling: &Tiling,
    csv: &StainCsv,
    params: &NucleiParams,
    label: &str,
    out: &Path,
) -> anyhow::Result<Option<NucleiCrop>> {
    let best =
        csv.nuclei.iter().filter(|t| t.nuclei > 0).fold(None::<&crate::slide::nuclei::TileNuclei>, |b, t| match b {
            Some(b) if b.positive_nuclei >= t.positive_nuclei => Some(b),
            _ => Some(t),
        });
    let Some(best) = best else { return Ok(None) };
    let Some(tile) = tiling.tiles.iter().find(|t| t.col == best.col && t.row == best.row) else { return Ok(None) };
    let (mx, my) = slide.mpp()?;
    let mpp0 = (mx + my) / 2.0;
    let level = slide.best_level_for_downsample(params.pixel_size_um / mpp0);
    let ds = slide.meta().levels[level].downsample;
    let side = (tiling.tile_size_level0 as f64 / ds).round().max(1.0) as u32;
    let img = slide.read_region(level, tile.x as i64, tile.y as i64, side, side)?;
    let mpp = tiling.tile_size_level0 as f64 * mpp0 / side as f64;
    let nuclei = detect_nuclei(&img, mpp, params)?;
    let drawn = draw_overlay(&img, mpp, &nuclei);
    crate::slide::tiling::save_png(&drawn, &out.join("nuclei.png"))?;
    let positive = nuclei.iter().filter(|n| n.positive).count() as u64;
    let width_um = side as f64 * mpp;
    let svg = nuclei_figure(&out.join("nuclei.png"), label, width_um, (nuclei.len() as u64, positive))?;
    crate::util::write_file(out.join("nuclei.svg"), svg)?;
    Ok(Some(NucleiCrop {
        image: "nuclei.png".into(),
        figure: "nuclei.svg".into(),
        x: tile.x as i64,
        y: tile.y as i64,
        width_um,
        nuclei: nuclei.len() as u64,
        positive_nuclei: positive,
    }))
}

/// The nuclei crop's figure: label, crop, scale bar, and a legend of the two outline colours
/// with their counts.
fn nuclei_figure(png: &Path, label: &str, width_um: f64, (n, pos): (u64, u64)) -> anyhow::Result<String> {
    let style = Style::journal(FIGURE_MM * 0.75, Default::default());
    let fw = style.width() as f64;
    let head = 60.0;
    let total = head + fw + 100.0;
    let data = base64::engine::general_purpose::STANDARD.encode(std::fs::read(png)?);
    let bar_um = [10.0, 20.0, 50.0, 100.0, 200.0].into_iter().rev().find(|&b| b <= width_um / 4.0).unwrap_or(10.0);
    let bar = bar_um / width_um * fw;
    let (bx, by) = (fw - 20.0 - bar, head + fw - 25.0);
    let ly = head + fw + 50.0;
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" font-family=\"{font}\" width=\"{wmm}mm\" height=\"{hmm}mm\" viewBox=\"0 0 {fw} {total}\">\
<text x=\"0\" y=\"40\" font-size=\"36\">{label} — detected nuclei</text>\
<image x=\"0\" y=\"{head}\" width=\"{fw}\" height=\"{fw}\" href=\"data:image/png;base64,{data}\"/>\
<rect x=\"{bx}\" y=\"{by}\" width=\"{bar}\" height=\"8\" fill=\"#000\" stroke=\"#fff\" stroke-width=\"2\"/>\
<text x=\"{bcx}\" y=\"{bty}\" font-size=\"28\" text-anchor=\"middle\" fill=\"#000\" stroke=\"#fff\" stroke-width=\"4\" paint-order=\"stroke\">{bar_um} µm</text>\
<g class=\"legend\" font-size=\"28\"><circle cx=\"20\" cy=\"{cy}\" r=\"12\" fill=\"none\" stroke=\"rgb(230,20,20)\" stroke-width=\"4\"/>\
<text x=\"42\" y=\"{ty}\">DAB-positive ({pos})</text>\
<circle cx=\"{x2}\" cy=\"{cy}\" r=\"12\" fill=\"none\" stroke=\"rgb(20,60,230)\" stroke-width=\"4\"/>\
<text x=\"{x2t}\" y=\"{ty}\">negative ({neg})</text></g></svg>",
        font = crate::report::plots::font::FAMILY,
        wmm = fw / 10.0,
        hmm = total / 10.0,
        label = esc(label),
        bcx = bx + bar / 2.0,
        bty = by - 8.0,
        cy = ly,
        ty = ly + 10.0,
        x2 = fw / 2.0 + 20.0,
        x2t = fw / 2.0 + 42.0,
        neg = n - pos,
    ))
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
