//! Stain measures of tiles and whole slides on their tile grid: per tile the mean hematoxylin
//! and DAB over tissue pixels and the DAB-positive fraction ([`tile_stain`]); per slide the
//! positivity map and index ([`stain_slide`], drawn with viridis as a PNG). Built on the
//! colour deconvolution of [`super::hed`]; a tissue pixel is one with `H + DAB > tissue_od`, a
//! positive pixel one with `DAB > dab_threshold` (`rgb2hed` units).
//!
//! # Errors
//! Tile decoding errors from [`super::tiling::for_each_tile_batch`]; a PNG that cannot be
//! written names its path.
use super::error::Result;
use super::hed::rgb2hed_lut;
use super::tiling::{for_each_tile_batch, Tiling};
use super::Slide;
use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Parameters of per-tile stain measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StainParams {
    /// A pixel is DAB-positive when its DAB exceeds this (default 0.05, `rgb2hed` units).
    pub dab_threshold: f64,
    /// A pixel is tissue when hematoxylin + DAB exceeds this (default 0.02, as the IHC tissue
    /// mask).
    pub tissue_od: f64,
}

impl Default for StainParams {
    fn default() -> Self {
        StainParams { dab_threshold: 0.05, tissue_od: 0.02 }
    }
}

/// Stain measures of one tile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TileStain {
    /// Grid column of the tile.
    pub col: u32,
    /// Grid row of the tile.
    pub row: u32,
    /// Mean hematoxylin over tissue pixels (0 without tissue pixels).
    pub mean_hematoxylin: f64,
    /// Mean DAB over tissue pixels.
    pub mean_dab: f64,
    /// DAB-positive pixels / tissue pixels (0 without tissue pixels).
    pub dab_positive_fraction: f64,
    /// Tissue pixels in the tile.
    pub tissue_pixels: u64,
    /// DAB-positive tissue pixels.
    pub positive_pixels: u64,
}

/// Measures one tile image (grid position left at 0).
pub fn tile_stain(img: &RgbImage, params: &StainParams) -> TileStain {
    let lut = rgb2hed_lut();
    let (mut n, mut pos, mut sh, mut sd) = (0u64, 0u64, 0.0, 0.0);
    for p in img.pixels() {
        let [h, _, d] = lut.hed(p.0);
        if h + d > params.tissue_od {
            n += 1;
            sh += h;
            sd += d;
            if d > params.dab_threshold {
                pos += 1;
            }
        }
    }
    let div = |x: f64| if n > 0 { x / n as f64 } else { 0.0 };
    TileStain {
        col: 0,
        row: 0,
        mean_hematoxylin: div(sh),
        mean_dab: div(sd),
        dab_positive_fraction: div(pos as f64),
        tissue_pixels: n,
        positive_pixels: pos,
    }
}

/// Stain measures of a whole slide on its tile grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlideStain {
    /// One entry per kept tile, in the tiling's order.
    pub tiles: Vec<TileStain>,
    /// Grid columns.
    pub cols: u32,
    /// Grid rows.
    pub rows: u32,
    /// Row-major `rows × cols` DAB-positive fraction; `None` where no tile was kept.
    pub positivity: Vec<Option<f64>>,
    /// Slide index: DAB-positive tissue pixels / tissue pixels over all tiles (for Ki-67, the
    /// proportion of positive area among tissue).
    pub index: f64,
    /// Tissue pixels over all tiles.
    pub tissue_pixels: u64,
    /// Positive tissue pixels over all tiles.
    pub positive_pixels: u64,
    /// The parameters used.
    pub params: StainParams,
}

/// Measures every tile of `tiling`, streaming batches of `batch` tiles (decoded in parallel).
pub fn stain_slide(slide: &Slide, tiling: &Tiling, params: &StainParams, batch: usize) -> Result<SlideStain> {
    let mut tiles = Vec::with_capacity(tiling.tiles.len());
    for_each_tile_batch(slide, tiling, batch, |ts, imgs| {
        let measured: Vec<TileStain> = ts
            .par_iter()
            .zip(imgs.par_iter())
            .map(|(t, img)| TileStain { col: t.col, row: t.row, ..tile_stain(img, params) })
            .collect();
        tiles.extend(measured);
        Ok(())
    })?;
    let (cols, rows) = (tiling.cols, tiling.rows);
    let mut positivity = vec![None; cols as usize * rows as usize];
    for t in &tiles {
        positivity[t.row as usize * cols as usize + t.col as usize] = Some(t.dab_positive_fraction);
    }
    let tissue_pixels: u64 = tiles.iter().map(|t| t.tissue_pixels).sum();
    let positive_pixels: u64 = tiles.iter().map(|t| t.positive_pixels).sum();
    Ok(SlideStain {
        tiles,
        cols,
        rows,
        positivity,
        index: if tissue_pixels > 0 { positive_pixels as f64 / tissue_pixels as f64 } else { 0.0 },
        tissue_pixels,
        positive_pixels,
        params: *params,
    })
}

/// Viridis at 0, 0.25, 0.5, 0.75 and 1.
const VIRIDIS: [[f64; 3]; 5] =
    [[68.0, 1.0, 84.0], [59.0, 82.0, 139.0], [33.0, 145.0, 140.0], [94.0, 201.0, 98.0], [253.0, 231.0, 37.0]];

/// A value in [0, 1] on the viridis ramp.
pub fn viridis(v: f64) -> [u8; 3] {
    let x = v.clamp(0.0, 1.0) * 4.0;
    let i = (x.floor() as usize).min(3);
    let f = x - i as f64;
    std::array::from_fn(|c| (VIRIDIS[i][c] + (VIRIDIS[i + 1][c] - VIRIDIS[i][c]) * f).round() as u8)
}

impl SlideStain {
    /// The positivity map as an image, `scale` px per grid cell: viridis from 0 (purple) to 1
    /// (yellow), white where no tile was kept.
    pub fn positivity_image(&self, scale: u32) -> RgbImage {
        let s = scale.max(1);
        RgbImage::from_fn(self.cols * s, self.rows * s, |x, y| {
            match self.positivity[(y / s) as usize * self.cols as usize + (x / s) as usize] {
                Some(v) => image::Rgb(viridis(v)),
                None => image::Rgb([255, 255, 255]),
            }
        })
    }

    /// Writes [`SlideStain::positivity_image`] as PNG, cells scaled so the long side is about
    /// 512 px.
    pub fn write_positivity_png(&self, path: &Path) -> Result<()> {
        let scale = (512 / self.cols.max(self.rows).max(1)).max(1);
        super::tiling::save_png(&self.positivity_image(scale), path)
    }
}
