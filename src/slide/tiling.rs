//! Tiling at a physical resolution ([`tile_slide`] → [`Tiling`]), streaming of tile pixels
//! ([`for_each_tile_batch`]), slide QC removing blurred, pen-marked, folded or bubbled tiles
//! ([`exclude_tiles`], measures in [`super::qc`]) and the QC images of a tiled slide
//! ([`write_qc`], [`write_qc_with_excluded`]).
//!
//! # Formula
//! - Tile side in level-0 px: `t0 = round(size · mpp / mpp0)` (`mpp0` the mean of the slide's
//!   x and y µm/px; pixels are taken as square).
//! - Grid: non-overlapping `t0`-px squares from the slide's origin, only squares wholly inside
//!   level 0 (`cols = ⌊W / t0⌋`, `rows = ⌊H / t0⌋`), as CLAM's patching with its default step.
//! - Tissue fraction of a tile: the area-weighted mean of the tissue mask over the tile's
//!   footprint (mask pixels cut by the tile's edge count by the overlapping fraction). Tiles
//!   with a fraction ≥ `min_tissue` are kept.
//! - Pixels: read from the coarsest level whose µm/px is ≤ the target (the level "just finer"),
//!   `round(t0 / downsample)` px square, resized to `size` with a triangle (bilinear) filter
//!   when that differs from `size`.
//!
//! # Errors
//! [`SlideError::NoTiles`] naming the slide when no tile is kept; [`SlideError::BadParam`].
use super::error::{Result, SlideError};
use super::tissue::TissueMask;
use super::Slide;
use image::{GrayImage, RgbImage};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Parameters of tiling.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TileParams {
    /// Target µm/px of the tiles.
    pub mpp: f64,
    /// Tile side in pixels at the target µm/px.
    pub size: u32,
    /// Minimum tissue fraction of a kept tile, in [0, 1] (default 0.5).
    #[serde(default = "default_min_tissue")]
    pub min_tissue: f64,
}

fn default_min_tissue() -> f64 {
    0.5
}

impl TileParams {
    /// `size`-px tiles at `mpp` µm/px with the default tissue fraction (0.5).
    pub fn new(mpp: f64, size: u32) -> TileParams {
        TileParams { mpp, size, min_tissue: default_min_tissue() }
    }

    fn check(&self) -> Result<()> {
        if !(self.mpp.is_finite() && self.mpp > 0.0) {
            return Err(SlideError::param("tile mpp", "a positive number of µm per pixel", self.mpp));
        }
        if self.size == 0 || self.size > 16384 {
            return Err(SlideError::param("tile size", "1 to 16384 px", self.size));
        }
        if !(0.0..=1.0).contains(&self.min_tissue) {
            return Err(SlideError::param("tile min_tissue", "a fraction in [0, 1]", self.min_tissue));
        }
        Ok(())
    }
}

/// One kept tile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tile {
    /// Level-0 x of the top-left corner.
    pub x: u64,
    /// Level-0 y of the top-left corner.
    pub y: u64,
    /// Grid column (`x / tile_size_level0`).
    pub col: u32,
    /// Grid row.
    pub row: u32,
    /// Tissue fraction of the tile.
    pub tissue: f32,
}

/// The tiles of one slide and how to read them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tiling {
    /// The slide.
    pub slide: PathBuf,
    /// Target µm/px.
    pub mpp: f64,
    /// Tile side at the target µm/px.
    pub size: u32,
    /// Tile side in level-0 px.
    pub tile_size_level0: u32,
    /// Pyramid level the pixels are read from.
    pub level: usize,
    /// That level's downsample.
    pub level_downsample: f64,
    /// Tile side read at `level` (resized to `size` when different).
    pub read_size: u32,
    /// Grid columns.
    pub cols: u32,
    /// Grid rows.
    pub rows: u32,
    /// Tissue-fraction threshold used.
    pub min_tissue: f64,
    /// Tissue area of the mask, mm².
    pub tissue_area_mm2: f64,
    /// Kept tiles, row-major.
    pub tiles: Vec<Tile>,
}

/// QC summary of a tiled slide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QcSummary {
    /// The slide.
    pub slide: PathBuf,
    /// Tissue area, mm².
    pub tissue_area_mm2: f64,
    /// Number of kept tiles.
    pub tiles: usize,
    /// Tiles in the grid (kept or not).
    pub grid_tiles: u64,
    /// Level read.
    pub level: usize,
    /// Tile side in level-0 px.
    pub tile_size_level0: u32,
    /// µm per mask pixel.
    pub mask_mpp: f64,
    /// Tissue-detection method and thresholds.
    pub mask_method: String,
    /// Tissue tiles excluded by slide QC, per reason ([`super::qc`]; all 0 when QC did not run).
    #[serde(default)]
    pub qc_excluded: super::qc::QcCounts,
}

/// The number of grid cells (tiles before the tissue filter) of a `width` × `height` slide at
/// `slide_mpp` µm/px cut into `size`-px tiles at `mpp` µm/px — as [`tile_slide`] lays them.
pub fn grid_cells(width: u64, height: u64, slide_mpp: f64, mpp: f64, size: u32) -> u64 {
    let t0 = (size as f64 * mpp / slide_mpp).round().max(1.0);
    let t0 = if t0.is_finite() && t0 < u64::MAX as f64 { t0 as u64 } else { u64::MAX };
    (width / t0).saturating_mul(height / t0)
}

/// Lays the grid over `slide` and keeps the tiles with enough tissue in `mask`.
///
/// # Errors
/// [`SlideError::NoTiles`] when none is kept; [`SlideError::BadParam`].
pub fn tile_slide(slide: &Slide, mask: &TissueMask, params: &TileParams) -> Result<Tiling> {
    params.check()?;
    let (mx, my) = slide.mpp()?;
    let mpp0 = (mx + my) / 2.0;
    let meta = slide.meta();
    let t0 = (params.size as f64 * params.mpp / mpp0).round().max(1.0) as u64;
    let level = slide.best_level_for_downsample(params.mpp / mpp0);
    let level_downsample = meta.levels[level].downsample;
    let read_size = (t0 as f64 / level_downsample).round().max(1.0) as u32;
    let (cols, rows) = (meta.width / t0, meta.height / t0);
    let cells = cols.saturating_mul(rows);
    if crate::bounds::TILES_PER_SLIDE.check_u64(cells).is_err() {
        return Err(SlideError::param(
            "tile grid (mpp and size)",
            &format!("at most {} tiles per slide", crate::bounds::TILES_PER_SLIDE.hi),
            format!("{cells} tiles of {t0} level-0 px on a {} × {} slide", meta.width, meta.height),
        ));
    }
    let coverage = Coverage::new(&mask.mask, mask.downsample);
    let tiles: Vec<Tile> = (0..rows)
        .into_par_iter()
        .flat_map_iter(|r| {
            let coverage = &coverage;
            (0..cols).filter_map(move |c| {
                let (x, y) = (c * t0, r * t0);
                let f = coverage.fraction(x as f64, y as f64, t0 as f64);
                (f >= params.min_tissue && f > 0.0).then_some(Tile {
                    x,
                    y,
                    col: c as u32,
                    row: r as u32,
                    tissue: f as f32,
                })
            })
        })
        .collect();
    if tiles.is_empty() {
        return Err(SlideError::NoTiles {
            path: slide.path().to_path_buf(),
            size: params.size,
            mpp: params.mpp,
            tile0: t0 as u32,
            min_fraction: params.min_tissue,
            tissue_mm2: mask.tissue_area_mm2,
            width: meta.width,
            height: meta.height,
        });
    }
    Ok(Tiling {
        slide: slide.path().to_path_buf(),
        mpp: params.mpp,
        size: params.size,
        tile_size_level0: t0 as u32,
        level,
        level_downsample,
        read_size,
        cols: cols as u32,
        rows: rows as u32,
        min_tissue: params.min_tissue,
        tissue_area_mm2: mask.tissue_area_mm2,
        tiles,
    })
}

/// Area-weighted tissue coverage of level-0 rectangles.
struct Coverage<'a> {
    mask: &'a GrayImage,
    ds: f64,
}

impl Coverage<'_> {
    fn new(mask: &GrayImage, ds: f64) -> Coverage<'_> {
        Coverage { mask, ds }
    }

    /// Fraction of the `side`-px square at level-0 (`x`, `y`) covered by tissue.
    fn fraction(&self, x: f64, y: f64, side: f64) -> f64 {
        let (w, h) = self.mask.dimensions();
        let (a0, a1) = (x / self.ds, (x + side) / self.ds);
        let (b0, b1) = (y / self.ds, (y + side) / self.ds);
        let weights = |lo: f64, hi: f64, n: u32| -> Vec<(u32, f64)> {
            let (i0, i1) = (lo.floor().max(0.0) as u32, (hi.ceil() as u32).min(n));
            (i0..i1).map(|i| (i, (hi.min(i as f64 + 1.0) - lo.max(i as f64)).max(0.0))).collect()
        };
        let (wx, wy) = (weights(a0, a1, w), weights(b0, b1, h));
        let raw = self.mask.as_raw();
        let mut s = 0.0;
        for &(j, fy) in &wy {
            let row = &raw[(j * w) as usize..((j + 1) * w) as usize];
            let mut r = 0.0;
            for &(i, fx) in &wx {
                if row[i as usize] > 0 {
                    r += fx;
                }
            }
            s += r * fy;
        }
        s / ((a1 - a0) * (b1 - b0))
    }
}

/// Reads one tile as an RGB image of `tiling.size` px.
pub fn read_tile(slide: &Slide, tiling: &Tiling, tile: &Tile) -> Result<RgbImage> {
    let img = slide.read_region(tiling.level, tile.x as i64, tile.y as i64, tiling.read_size, tiling.read_size)?;
    Ok(if tiling.read_size == tiling.size {
        img
    } else {
        image::imageops::resize(&img, tiling.size, tiling.size, image::imageops::FilterType::Triangle)
    })
}

/// Streams the tiles of `tiling` in order, `batch` at a time: each batch is decoded in parallel
/// on the rayon pool, then handed to `f` with its tiles. At most one batch of images is alive
/// (`batch · size² · 3` bytes), so a slide of any size streams in bounded memory.
///
/// # Errors
/// The first read error, or the first error returned by `f` (which stops the stream).
pub fn for_each_tile_batch<F>(slide: &Slide, tiling: &Tiling, batch: usize, mut f: F) -> Result<()>
where
    F: FnMut(&[Tile], Vec<RgbImage>) -> Result<()>,
{
    for chunk in tiling.tiles.chunks(batch.max(1)) {
        let imgs = chunk.par_iter().map(|t| read_tile(slide, tiling, t)).collect::<Result<Vec<_>>>()?;
        f(chunk, imgs)?;
    }
    Ok(())
}

/// Slide QC: measures every kept tile of `tiling` ([`super::qc`]) (batches of `batch`, decoded in parallel) and removes
/// the flagged ones from it; returns them with their flag, in the tiling's order.
///
/// # Errors
/// [`SlideError::BadParam`] for bad parameters; tile read errors.
pub fn exclude_tiles(
    slide: &Slide,
    tiling: &mut Tiling,
    p: &super::qc::QcParams,
    batch: usize,
) -> Result<Vec<(Tile, super::qc::QcFlag)>> {
    p.check()?;
    let mut flags = Vec::with_capacity(tiling.tiles.len());
    for_each_tile_batch(slide, tiling, batch, |_, imgs| {
        flags.extend(imgs.par_iter().map(|img| super::qc::flag(&super::qc::measure_tile(img), p)).collect::<Vec<_>>());
        Ok(())
    })?;
    let mut excluded = Vec::new();
    let mut kept = Vec::with_capacity(tiling.tiles.len());
    for (t, f) in tiling.tiles.iter().zip(flags) {
        match f {
            Some(f) => excluded.push((*t, f)),
            None => kept.push(*t),
        }
    }
    tiling.tiles = kept;
    Ok(excluded)
}

/// Writes an image as PNG (fast compression).
pub fn save_png<I>(img: &I, path: &Path) -> Result<()>
where
    I: image::GenericImageView,
    I::Pixel: image::PixelWithColorType,
    [<I::Pixel as image::Pixel>::Subpixel]: image::EncodableLayout,
    I: std::ops::Deref<Target = [<I::Pixel as image::Pixel>::Subpixel]>,
{
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let err = |detail: String| SlideError::Image { path: path.to_path_buf(), detail };
    let file = std::fs::File::create(path).map_err(|e| err(format!("cannot create: {e}")))?;
    let mut w = std::io::BufWriter::new(file);
    let enc = PngEncoder::new_with_quality(&mut w, CompressionType::Fast, FilterType::Adaptive);
    let (width, height) = img.dimensions();
    let bytes = image::EncodableLayout::as_bytes(&**img);
    enc.write_image(bytes, width, height, <I::Pixel as image::PixelWithColorType>::COLOR_TYPE)
        .map_err(|e| err(format!("cannot write PNG: {e}")))?;
    w.flush().map_err(|e| err(format!("cannot write PNG: {e}")))
}

/// The QC overlay: the thumbnail, kept tiles tinted blue, the tissue boundary in green.
pub fn overlay(mask: &TissueMask, tiling: &Tiling) -> RgbImage {
    overlay_with_excluded(mask, tiling, &[])
}

/// [`overlay`] with the tiles slide QC excluded outlined in their flag's colour
/// ([`super::qc::QcFlag::colour`]: blur orange, pen magenta, fold red, bubble cyan).
pub fn overlay_with_excluded(mask: &TissueMask, tiling: &Tiling, excluded: &[(Tile, super::qc::QcFlag)]) -> RgbImage {
    let mut out = overlay_kept(mask, tiling);
    let (w, h) = out.dimensions();
    let ds = mask.downsample;
    let s = tiling.tile_size_level0 as f64;
    for (t, f) in excluded {
        let (x0, y0) = ((t.x as f64 / ds) as i32, (t.y as f64 / ds) as i32);
        let side = ((s / ds).round() as u32).max(1);
        let rect = imageproc::rect::Rect::at(x0, y0).of_size(side.min(w), side.min(h));
        imageproc::drawing::draw_hollow_rect_mut(&mut out, rect, image::Rgb(f.colour()));
        if side > 4 {
            let inner = imageproc::rect::Rect::at(x0 + 1, y0 + 1).of_size(side - 2, side - 2);
            imageproc::drawing::draw_hollow_rect_mut(&mut out, inner, image::Rgb(f.colour()));
        }
    }
    out
}

fn overlay_kept(mask: &TissueMask, tiling: &Tiling) -> RgbImage {
    let mut out = mask.thumbnail.clone();
    let (w, h) = out.dimensions();
    let ds = mask.downsample;
    let mut kept = GrayImage::new(w, h);
    for t in &tiling.tiles {
        let (x0, y0) = ((t.x as f64 / ds) as u32, (t.y as f64 / ds) as u32);
        let s = tiling.tile_size_level0 as f64;
        let (x1, y1) = ((((t.x as f64 + s) / ds).ceil() as u32).min(w), (((t.y as f64 + s) / ds).ceil() as u32).min(h));
        for y in y0..y1 {
            for x in x0..x1 {
                kept.put_pixel(x, y, image::Luma([255]));
            }
        }
    }
    let m = &mask.mask;
    for y in 0..h {
        for x in 0..w {
            let p = out.get_pixel_mut(x, y);
            if kept.get_pixel(x, y).0[0] > 0 {
                p.0 =
                    [(p.0[0] as u32 * 3 / 4) as u8, (p.0[1] as u32 * 3 / 4) as u8, (p.0[2] as u32 * 3 / 4 + 64) as u8];
            }
            let v = m.get_pixel(x, y).0[0];
            let edge = [(1i64, 0i64), (-1, 0), (0, 1), (0, -1)].iter().any(|(dx, dy)| {
                let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                nx >= 0 && ny >= 0 && nx < w as i64 && ny < h as i64 && m.get_pixel(nx as u32, ny as u32).0[0] != v
            });
            if edge && v > 0 {
                p.0 = [0, 200, 0];
            }
        }
    }
    out
}

/// Paths of the QC files written by [`write_qc`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QcFiles {
    /// The tissue mask (white = tissue).
    pub mask: PathBuf,
    /// The low-resolution RGB image.
    pub thumbnail: PathBuf,
    /// Thumbnail with kept tiles and the tissue boundary.
    pub overlay: PathBuf,
    /// `x,y,col,row,tissue` per kept tile (level-0 top-left corners).
    pub tiles_csv: PathBuf,
    /// The [`QcSummary`] as JSON.
    pub qc_json: PathBuf,
}

/// Writes `mask.png`, `thumbnail.png`, `overlay.png`, `tiles.csv` and `qc.json` (the
/// [`QcSummary`]) into `dir` (created if needed).
pub fn write_qc(dir: &Path, mask: &TissueMask, tiling: &Tiling) -> Result<QcFiles> {
    write_qc_with_excluded(dir, mask, tiling, &[])
}

/// [`write_qc`] for a tiling from which slide QC removed `excluded` tiles: drawn on the
/// overlay and counted in `qc.json`.
pub fn write_qc_with_excluded(
    dir: &Path,
    mask: &TissueMask,
    tiling: &Tiling,
    excluded: &[(Tile, super::qc::QcFlag)],
) -> Result<QcFiles> {
    std::fs::create_dir_all(dir).map_err(|e| SlideError::Image {
        path: dir.to_path_buf(),
        detail: format!("cannot create the directory: {e}"),
    })?;
    let files = QcFiles {
        mask: dir.join("mask.png"),
        thumbnail: dir.join("thumbnail.png"),
        overlay: dir.join("overlay.png"),
        tiles_csv: dir.join("tiles.csv"),
        qc_json: dir.join("qc.json"),
    };
    let ov = overlay_with_excluded(mask, tiling, excluded);
    let (a, b) = rayon::join(
        || save_png(&mask.mask, &files.mask).and_then(|_| save_png(&mask.thumbnail, &files.thumbnail)),
        || save_png(&ov, &files.overlay),
    );
    a?;
    b?;
    tiling.write_csv(&files.tiles_csv)?;
    let mut summary = tiling.summary(mask);
    for (_, f) in excluded {
        summary.qc_excluded.add(*f);
    }
    let json = serde_json::to_string_pretty(&summary)
        .map_err(|e| SlideError::Image { path: files.qc_json.clone(), detail: format!("cannot encode: {e}") })?;
    std::fs::write(&files.qc_json, json + "\n")
        .map_err(|e| SlideError::Image { path: files.qc_json.clone(), detail: format!("cannot write: {e}") })?;
    Ok(files)
}

impl Tiling {
    /// Writes `x,y,col,row,tissue` per tile.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let err =
            |e: std::io::Error| SlideError::Image { path: path.to_path_buf(), detail: format!("cannot write: {e}") };
        let f = std::fs::File::create(path).map_err(err)?;
        let mut w = std::io::BufWriter::new(f);
        writeln!(w, "x,y,col,row,tissue").map_err(err)?;
        for t in &self.tiles {
            writeln!(w, "{},{},{},{},{:.4}", t.x, t.y, t.col, t.row, t.tissue).map_err(err)?;
        }
        w.flush().map_err(err)
    }

    /// The QC summary of this tiling with its mask.
    pub fn summary(&self, mask: &TissueMask) -> QcSummary {
        QcSummary {
            slide: self.slide.clone(),
            tissue_area_mm2: self.tissue_area_mm2,
            tiles: self.tiles.len(),
            grid_tiles: self.cols as u64 * self.rows as u64,
            level: self.level,
            tile_size_level0: self.tile_size_level0,
            mask_mpp: mask.mask_mpp(),
            mask_method: mask.method.clone(),
            qc_excluded: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_is_area_weighted() {
        // 4×1 mask, tissue in columns 1 and 2; ds = 10 level-0 px per mask px.
        let m = GrayImage::from_raw(4, 1, vec![0, 255, 255, 0]).unwrap();
        let c = Coverage::new(&m, 10.0);
        assert!((c.fraction(10.0, 0.0, 10.0) - 1.0).abs() < 1e-12);
        assert!((c.fraction(5.0, 0.0, 10.0) - 0.5).abs() < 1e-12);
        // a 20-px square from x = 0 covers columns 0 and 1 fully but rows 0..2 (row 1 outside)
        assert!((c.fraction(0.0, 0.0, 20.0) - 0.25).abs() < 1e-12);
    }
}
