//! Nuclear scoring of a DAB immunostain (Ki-67, ER, PR): nuclei detected on the total optical
//! density, each classified DAB-positive or negative by its mean DAB optical density; per image
//! or slide the nuclei counted, the positive ones, the labelling index (positive / all) and the
//! hotspot index (the highest labelling index over windows of about 0.2 mm² holding at least
//! 500 nuclei).
//!
//! # Method
//! A simplified form of QuPath's positive cell detection (`WatershedCellDetection`, brightfield):
//! 1. Resample the region to `pixel_size_um` (0.5 µm/px, QuPath's `requestedPixelSizeMicrons`).
//! 2. Colour deconvolution with [`super::hed`] (Ruifrok–Johnston stain vectors, as QuPath's
//!    "H-DAB default"), converted to base-10 optical density (`rgb2hed` × 6). The detection image
//!    is hematoxylin + DAB OD: positive nuclei carry little hematoxylin, so the sum finds both.
//!    (QuPath's "Optical density sum" adds the raw R, G and B ODs instead, about 1.6 × this sum
//!    for these stain vectors, which is why the default threshold below is lower than QuPath's.)
//! 3. Gaussian smoothing with `sigma_um`; foreground = smoothed OD > `od_threshold` where the
//!    smoothed OD is also locally convex (negative 4-neighbour Laplacian, so a nucleus ends at
//!    its edge's inflection instead of spreading into pale cytoplasm; `log_mask`).
//! 4. Splitting of touching nuclei: a watershed of the smoothed OD inside the foreground,
//!    flooded from the highest value down (ties by pixel order, so deterministic), in which a
//!    regional maximum whose dynamic (its height above the saddle where it meets a higher
//!    basin) is below `min_prominence` merges into that basin, so texture inside one nucleus
//!    does not split it (h-maxima seeds).
//! 5. Nuclei whose area in µm² lies outside `[min_area_um2, max_area_um2]` are dropped
//!    (QuPath's defaults 10 and 400 µm²).
//! 6. A nucleus is positive when its mean (unsmoothed) DAB OD exceeds `dab_threshold`
//!    (QuPath's "Nucleus: DAB OD mean", default 0.2).
//!
//! On a whole slide the level-0 area is cut into square cores of `tile_um`; each core is read
//! with a margin of `margin_um` (pixels beyond the slide are white), and a nucleus belongs to
//! the core holding its centroid, so nuclei on core borders are counted once. Cores without a
//! tissue-mask pixel are skipped. Only one batch of cores is in memory at a time.
//!
//! # Hotspot
//! Windows are squares of side `√hotspot_area_mm2` on a grid of quarter-window cells, sliding
//! by one cell; the hotspot index is the highest positive / all among windows holding at least
//! `hotspot_min_nuclei` nuclei, `None` when none does (a region smaller than one window, or too
//! few nuclei). The 0.2 mm² and 500 nuclei follow the International Ki67 in Breast Cancer
//! Working Group's hotspot scoring (a high-power field of about 0.2 mm², ≥ 500 cells counted).
//!
//! # Defaults and their reference
//! QuPath 0.3.2 positive cell detection (`qupath.imagej.detect.cells.PositiveCellDetection`):
//! requested pixel size 0.5 µm, Gaussian sigma 1.5 µm, min/max nucleus area 10 / 400 µm²,
//! DAB threshold 0.2 (nucleus DAB OD mean). QuPath's detection threshold (default 0.1; 0.2 and
//! 0.4 in the OS-2 comparison below) is on the R + G + B OD sum, about 1.6 × the H + DAB OD;
//! `od_threshold` defaults to 0.15 on H + DAB (≈ 0.25 on QuPath's scale, between the two
//! published settings). `min_prominence` 0.05 has no QuPath counterpart (QuPath's maximum
//! finder tolerance and watershed post-processing play its part). On OS-2-ndpi (a Ki-67 crop of
//! OpenSlide's OS-2.ndpi), QuPath 0.3.2 finds 1,066–1,323 cells and 11.9–20.5 % positive over
//! detection thresholds 0.2–0.4 and DAB thresholds 0.2–0.5 (petebankhead/2022-qupath-cell-detection);
//! `tests/slide_nuclei.rs` checks that these defaults land in that range.
//!
//! # Errors
//! [`SlideError::BadParam`] for a parameter out of range or a non-positive µm/px; slide read
//! errors from [`Slide::read_region`] and [`super::tissue::detect_tissue`].
use super::error::{Result, SlideError};
use super::hed::rgb2hed_lut;
use super::tiling::Tiling;
use super::tissue::{detect_tissue, TissueParams};
use super::{Slide, Stain};
use image::{Rgb, RgbImage};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Parameters of nucleus detection and scoring (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NucleiParams {
    /// Working pixel size, µm/px (default 0.5).
    pub pixel_size_um: f64,
    /// Gaussian sigma of the detection image, µm (default 1.5).
    pub sigma_um: f64,
    /// Foreground threshold on the smoothed hematoxylin + DAB optical density (base 10;
    /// default 0.15).
    pub od_threshold: f64,
    /// Smallest dynamic (peak OD minus the OD where it meets a higher basin) of a nucleus of its
    /// own; shallower maxima merge into their neighbour (default 0.05).
    pub min_prominence: f64,
    /// Restrict nuclei to where the smoothed OD is locally convex (negative Laplacian; default
    /// true).
    pub log_mask: bool,
    /// Smallest nucleus, µm² (default 10).
    pub min_area_um2: f64,
    /// Largest nucleus, µm² (default 400).
    pub max_area_um2: f64,
    /// A nucleus is positive when its mean DAB OD exceeds this (default 0.2); positive nuclei
    /// up to `dab_moderate` are weak (1+) for the H-score (none when this is above
    /// `dab_moderate`).
    pub dab_threshold: f64,
    /// Positive nuclei above this mean DAB OD are moderate (2+) (default 0.4).
    pub dab_moderate: f64,
    /// Positive nuclei above this mean DAB OD are strong (3+) (default 0.6).
    pub dab_strong: f64,
    /// Hotspot window area, mm² (default 0.2).
    pub hotspot_area_mm2: f64,
    /// Fewest nuclei in a hotspot window (default 500).
    pub hotspot_min_nuclei: u32,
    /// Side of a slide core, µm (default 256).
    pub tile_um: f64,
    /// Margin read around a core, µm (default 24, more than the diameter of a 400 µm² disc).
    pub margin_um: f64,
}

impl Default for NucleiParams {
    fn default() -> Self {
        NucleiParams {
            pixel_size_um: 0.5,
            sigma_um: 1.5,
            od_threshold: 0.15,
            min_prominence: 0.05,
            log_mask: true,
            min_area_um2: 10.0,
            max_area_um2: 400.0,
            dab_threshold: 0.2,
            dab_moderate: 0.4,
            dab_strong: 0.6,
            hotspot_area_mm2: 0.2,
            hotspot_min_nuclei: 500,
            tile_um: 256.0,
            margin_um: 24.0,
        }
    }
}

impl NucleiParams {
    /// Checks every parameter's range.
    ///
    /// # Errors
    /// [`SlideError::BadParam`] naming the parameter.
    pub fn check(&self) -> Result<()> {
        let pos = |name: &str, v: f64, lo: f64, hi: f64| {
            if v.is_finite() && v >= lo && v <= hi {
                Ok(())
            } else {
                Err(SlideError::param(&format!("nuclei parameter {name}"), &format!("a number in [{lo}, {hi}]"), v))
            }
        };
        pos("pixel_size_um", self.pixel_size_um, 0.05, 10.0)?;
        pos("sigma_um", self.sigma_um, 0.0, 20.0)?;
        pos("od_threshold", self.od_threshold, 0.0, 10.0)?;
        pos("min_prominence", self.min_prominence, 0.0, 10.0)?;
        pos("min_area_um2", self.min_area_um2, 0.0, 1e5)?;
        pos("max_area_um2", self.max_area_um2, self.min_area_um2, 1e5)?;
        pos("dab_threshold", self.dab_threshold, 0.0, 10.0)?;
        pos("dab_moderate", self.dab_moderate, 0.0, 10.0)?;
        pos("dab_strong", self.dab_strong, self.dab_moderate, 10.0)?;
        pos("hotspot_area_mm2", self.hotspot_area_mm2, 1e-4, 100.0)?;
        pos("tile_um", self.tile_um, 16.0 * self.pixel_size_um, 4096.0 * self.pixel_size_um)?;
        pos("margin_um", self.margin_um, 0.0, self.tile_um)?;
        Ok(())
    }
}

/// One detected nucleus.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Nucleus {
    /// Centroid x, µm from the left edge of the image (level 0 for a slide).
    pub x_um: f64,
    /// Centroid y, µm from the top edge.
    pub y_um: f64,
    /// Area, µm².
    pub area_um2: f64,
    /// Mean DAB optical density (base 10).
    pub mean_dab: f64,
    /// Mean hematoxylin optical density (base 10).
    pub mean_hematoxylin: f64,
    /// `mean_dab > dab_threshold`.
    pub positive: bool,
}

impl Nucleus {
    /// The H-score intensity bin: 0 negative, 1 weak, 2 moderate, 3 strong.
    pub fn intensity(&self, p: &NucleiParams) -> u8 {
        if !self.positive {
            0
        } else if self.mean_dab > p.dab_strong {
            3
        } else if self.mean_dab > p.dab_moderate {
            2
        } else {
            1
        }
    }
}

/// Nuclei per H-score bin: `[negative, weak, moderate, strong]`.
pub fn intensity_counts(nuclei: &[Nucleus], p: &NucleiParams) -> [u64; 4] {
    let mut c = [0u64; 4];
    for n in nuclei {
        c[n.intensity(p) as usize] += 1;
    }
    c
}

/// The H-score (0–300) of `[negative, weak, moderate, strong]` counts: 1 × % weak + 2 × %
/// moderate + 3 × % strong of all nuclei; `None` without nuclei.
pub fn h_score(bins: [u64; 4]) -> Option<f64> {
    let n: u64 = bins.iter().sum();
    (n > 0).then(|| 100.0 * (bins[1] + 2 * bins[2] + 3 * bins[3]) as f64 / n as f64)
}

/// Counts and indices of an image or slide.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NucleiScore {
    /// Nuclei detected.
    pub nuclei: u64,
    /// DAB-positive nuclei.
    pub positive_nuclei: u64,
    /// positive / all; `None` without nuclei.
    pub labelling_index: Option<f64>,
    /// Highest index over qualifying windows; `None` when no window qualifies.
    pub hotspot_index: Option<f64>,
    /// Windows that qualified for the hotspot.
    pub hotspot_windows: u64,
    /// Weak (1+), moderate (2+) and strong (3+) positive nuclei.
    pub weak: u64,
    pub moderate: u64,
    pub strong: u64,
    /// H-score, 0–300 ([`h_score`]); `None` without nuclei.
    pub h_score: Option<f64>,
}

/// Per-core counts of a slide (the map of a later stage).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TileNuclei {
    /// Grid column of the core.
    pub col: u32,
    /// Grid row.
    pub row: u32,
    /// Nuclei whose centroid lies in the core.
    pub nuclei: u32,
    /// Positive ones.
    pub positive_nuclei: u32,
    /// Weak (1+), moderate (2+) and strong (3+) positive ones.
    pub weak: u32,
    pub moderate: u32,
    pub strong: u32,
}

/// Nuclear scoring of a whole slide.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlideNuclei {
    /// Totals and indices.
    pub score: NucleiScore,
    /// Every nucleus, in level-0 µm.
    pub nuclei: Vec<Nucleus>,
    /// Cores measured (with tissue), row-major.
    pub tiles: Vec<TileNuclei>,
    /// Core grid columns.
    pub cols: u32,
    /// Core grid rows.
    pub rows: u32,
    /// Level-0 µm/px used (mean of x and y).
    pub mpp: f64,
    /// The parameters used.
    pub params: NucleiParams,
}

/// Base-10 OD per `rgb2hed` unit (`rgb2hed` divides by ln 1e-6 = 6 ln 10).
const OD10: f64 = 6.0;

/// A separable Gaussian blur (reflecting borders) of a `w × h` row-major image.
fn gaussian(src: &[f32], w: usize, h: usize, sigma: f64) -> Vec<f32> {
    if sigma <= 0.0 || w == 0 || h == 0 {
        return src.to_vec();
    }
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f32> = (-r..=r).map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32).collect();
    let s: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / s).collect();
    let refl = |i: isize, n: usize| -> usize {
        let n = n as isize;
        let mut i = i;
        if n == 1 {
            return 0;
        }
        while i < 0 || i >= n {
            i = if i < 0 { -i - 1 } else { 2 * n - i - 1 };
        }
        i as usize
    };
    let mut tmp = vec![0f32; w * h];
    tmp.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            *o = k.iter().enumerate().map(|(j, kv)| kv * src[y * w + refl(x as isize + j as isize - r, w)]).sum();
        }
    });
    let mut out = vec![0f32; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            *o = k.iter().enumerate().map(|(j, kv)| kv * tmp[refl(y as isize + j as isize - r, h) * w + x]).sum();
        }
    });
    out
}

fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        parent[i as usize] = parent[parent[i as usize] as usize];
        i = parent[i as usize];
    }
    i
}

/// Labels nuclei (0 = background) of a smoothed detection image `s` (`w × h`, row-major);
/// returns the labels and the label count + 1.
///
/// Foreground pixels are visited from the highest value down (ties by pixel order). A pixel
/// without a visited neighbour starts a basin whose peak is its value; one that touches several
/// basins merges each basin whose peak rises less than `min_prominence` above it into the basin
/// with the highest peak (its dynamic is too small to be a nucleus of its own), then joins that
/// basin. Basins that meet with both peaks prominent stay apart: the watershed line between two
/// touching nuclei.
fn segment(s: &[f32], w: usize, h: usize, p: &NucleiParams) -> (Vec<u32>, usize) {
    let thr = p.od_threshold as f32;
    let h_min = p.min_prominence as f32;
    // Foreground: above the threshold and locally convex (negative Laplacian, edges at inflection).
    let at = |x: usize, y: usize, dx: isize, dy: isize| {
        let nx = (x as isize + dx).clamp(0, w as isize - 1) as usize;
        let ny = (y as isize + dy).clamp(0, h as isize - 1) as usize;
        s[ny * w + nx]
    };
    let fg = |i: usize| {
        let (x, y) = (i % w, i / w);
        let lap = at(x, y, 1, 0) + at(x, y, -1, 0) + at(x, y, 0, 1) + at(x, y, 0, -1) - 4.0 * s[i];
        s[i] > thr && (!p.log_mask || lap < 0.0)
    };
    let mut order: Vec<u32> = (0..(w * h) as u32).into_par_iter().filter(|&i| fg(i as usize)).collect();
    order.par_sort_unstable_by(|&a, &b| s[b as usize].total_cmp(&s[a as usize]).then(a.cmp(&b)));
    const NONE: u32 = u32::MAX;
    // `basin[i]`: the basin (a union-find node, indexed by its first pixel) pixel i joined.
    let mut basin = vec![NONE; w * h];
    let mut parent: Vec<u32> = (0..(w * h) as u32).collect();
    let mut peak = vec![0f32; w * h];
    let mut roots: Vec<u32> = Vec::with_capacity(8);
    for &i in &order {
        let iu = i as usize;
        let (x, y) = (iu % w, iu / w);
        roots.clear();
        for dy in -1isize..=1 {
            for dx in -1isize..=1 {
                let (nx, ny) = (x as isize + dx, y as isize + dy);
                if (dx, dy) == (0, 0) || nx < 0 || ny < 0 || nx as usize >= w || ny as usize >= h {
                    continue;
                }
                let j = ny as usize * w + nx as usize;
                if basin[j] != NONE {
                    let r = find(&mut parent, basin[j]);
                    if !roots.contains(&r) {
                        roots.push(r);
                    }
                }
            }
        }
        if roots.is_empty() {
            peak[iu] = s[iu];
            basin[iu] = i;
            continue;
        }
        let top = *roots
            .iter()
            .max_by(|&&a, &&b| peak[a as usize].total_cmp(&peak[b as usize]).then(b.cmp(&a)))
            .unwrap_or(&roots[0]);
        for &r in &roots {
            if r != top && peak[r as usize] - s[iu] < h_min {
                parent[r as usize] = top;
            }
        }
        basin[iu] = top;
    }
    let mut labels = vec![0u32; w * h];
    let mut ids = std::collections::HashMap::new();
    let mut next = 1u32;
    for &i in &order {
        let r = find(&mut parent, basin[i as usize]);
        labels[i as usize] = *ids.entry(r).or_insert_with(|| {
            next += 1;
            next - 1
        });
    }
    (labels, next as usize)
}

/// Detects and classifies the nuclei of an RGB region whose pixels are `mpp` µm wide;
/// coordinates are µm from the region's top-left corner.
///
/// # Errors
/// [`SlideError::BadParam`] for a bad parameter or `mpp`.
pub fn detect_nuclei(img: &RgbImage, mpp: f64, params: &NucleiParams) -> Result<Vec<Nucleus>> {
    params.check()?;
    if !(mpp.is_finite() && mpp > 0.0) {
        return Err(SlideError::param("image µm/px", "a positive number", mpp));
    }
    let ps = params.pixel_size_um;
    let (w0, h0) = img.dimensions();
    let (w, h) = (((w0 as f64 * mpp / ps).round().max(1.0)) as u32, ((h0 as f64 * mpp / ps).round().max(1.0)) as u32);
    if w0 == 0 || h0 == 0 {
        return Ok(Vec::new());
    }
    if (w as u64) * (h as u64) > 1 << 28 {
        return Err(SlideError::param(
            "nuclei region",
            &format!("at most 2^28 px at {ps} µm/px (tile larger images)"),
            format!("{w}×{h} px"),
        ));
    }
    let resized;
    let work = if (w, h) == (w0, h0) {
        img
    } else {
        resized = image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle);
        &resized
    };
    let (w, h) = (w as usize, h as usize);
    let lut = rgb2hed_lut();
    let hed: Vec<[f32; 2]> = work
        .as_raw()
        .par_chunks(3)
        .map(|c| {
            let [hh, _, d] = lut.hed([c[0], c[1], c[2]]);
            [(hh * OD10) as f32, (d * OD10) as f32]
        })
        .collect();
    let od: Vec<f32> = hed.iter().map(|v| v[0] + v[1]).collect();
    let smooth = gaussian(&od, w, h, params.sigma_um / ps);
    let (labels, n) = segment(&smooth, w, h, params);
    // Per label: pixels, Σx, Σy, ΣDAB, ΣH.
    let mut acc = vec![(0u64, 0f64, 0f64, 0f64, 0f64); n];
    for (i, &l) in labels.iter().enumerate() {
        if l > 0 {
            let a = &mut acc[l as usize];
            a.0 += 1;
            a.1 += (i % w) as f64 + 0.5;
            a.2 += (i / w) as f64 + 0.5;
            a.3 += hed[i][1] as f64;
            a.4 += hed[i][0] as f64;
        }
    }
    let px_area = ps * ps;
    Ok(acc
        .iter()
        .skip(1)
        .filter(|a| a.0 > 0)
        .filter_map(|&(c, sx, sy, sd, sh)| {
            let area = c as f64 * px_area;
            let n = c as f64;
            (area >= params.min_area_um2 && area <= params.max_area_um2).then(|| Nucleus {
                x_um: sx / n * ps,
                y_um: sy / n * ps,
                area_um2: area,
                mean_dab: sd / n,
                mean_hematoxylin: sh / n,
                positive: sd / n > params.dab_threshold,
            })
        })
        .collect())
}

/// Totals, labelling index and hotspot index of nuclei found in a `width_um × height_um`
/// region.
pub fn score(nuclei: &[Nucleus], width_um: f64, height_um: f64, params: &NucleiParams) -> NucleiScore {
    let n = nuclei.len() as u64;
    let pos = nuclei.iter().filter(|v| v.positive).count() as u64;
    let side = params.hotspot_area_mm2.sqrt() * 1000.0;
    let cell = side / 4.0;
    let (cols, rows) = ((width_um / cell).floor().max(0.0) as usize, (height_um / cell).floor().max(0.0) as usize);
    let (mut best, mut windows) = (None::<f64>, 0u64);
    if cols >= 4 && rows >= 4 && cols.saturating_mul(rows) <= 1 << 26 {
        let mut cn = vec![0u64; cols * rows];
        let mut cp = vec![0u64; cols * rows];
        for v in nuclei {
            let (c, r) = ((v.x_um / cell).floor(), (v.y_um / cell).floor());
            if c >= 0.0 && r >= 0.0 && (c as usize) < cols && (r as usize) < rows {
                let k = r as usize * cols + c as usize;
                cn[k] += 1;
                cp[k] += u64::from(v.positive);
            }
        }
        for r in 0..=rows - 4 {
            for c in 0..=cols - 4 {
                let (mut a, mut b) = (0u64, 0u64);
                for rr in r..r + 4 {
                    for cc in c..c + 4 {
                        a += cn[rr * cols + cc];
                        b += cp[rr * cols + cc];
                    }
                }
                if a >= params.hotspot_min_nuclei as u64 && a > 0 {
                    windows += 1;
                    let idx = b as f64 / a as f64;
                    best = Some(best.map_or(idx, |x| x.max(idx)));
                }
            }
        }
    }
    let bins = intensity_counts(nuclei, params);
    NucleiScore {
        nuclei: n,
        positive_nuclei: pos,
        labelling_index: (n > 0).then(|| pos as f64 / n as f64),
        hotspot_index: best,
        hotspot_windows: windows,
        weak: bins[1],
        moderate: bins[2],
        strong: bins[3],
        h_score: h_score(bins),
    }
}

/// Detects and scores the nuclei of a whole slide, streaming cores of `params.tile_um` in
/// batches of `batch` (read and measured in parallel).
///
/// # Errors
/// [`SlideError::BadParam`]; read and tissue-detection errors.
pub fn score_slide(slide: &Slide, params: &NucleiParams, batch: usize) -> Result<SlideNuclei> {
    params.check()?;
    let (mx, my) = slide.mpp()?;
    let mpp0 = (mx + my) / 2.0;
    let meta = slide.meta();
    let mask = detect_tissue(slide, &TissueParams::for_stain(Stain::KI67))?;
    let core0 = (params.tile_um / mpp0).round().max(1.0) as u64;
    let (cols, rows) = (meta.width.div_ceil(core0), meta.height.div_ceil(core0));
    if cols.saturating_mul(rows) > crate::bounds::TILES_PER_SLIDE.hi as u64 {
        return Err(SlideError::param(
            "nuclei core grid (tile_um)",
            &format!("at most {} cores per slide", crate::bounds::TILES_PER_SLIDE.hi),
            format!("{cols} × {rows} cores"),
        ));
    }
    let has_tissue = |c: u64, r: u64| {
        let d = mask.downsample;
        let (x0, y0) = ((c * core0) as f64 / d, (r * core0) as f64 / d);
        let (x1, y1) = (((c + 1) * core0) as f64 / d, ((r + 1) * core0) as f64 / d);
        let (mw, mh) = mask.mask.dimensions();
        let (xa, ya) = (x0.floor() as u32, y0.floor() as u32);
        let (xb, yb) = ((x1.ceil() as u32).min(mw), (y1.ceil() as u32).min(mh));
        (ya..yb).any(|y| (xa..xb).any(|x| mask.mask.get_pixel(x, y).0[0] > 0))
    };
    let cores: Vec<Core> = (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (c, r)))
        .filter(|&(c, r)| has_tissue(c, r))
        .map(|(c, r)| Core { col: c as u32, row: r as u32, x: c * core0, y: r * core0 })
        .collect();
    score_cores(slide, mpp0, &cores, core0, (cols as u32, rows as u32), params, batch)
}

/// Detects and scores the nuclei of the kept tiles of a slide's tiling (the `stain` stage's
/// grid): each tile is a core, read with the margin at about `params.pixel_size_um`;
/// `params.tile_um` is not used.
///
/// # Errors
/// [`SlideError::BadParam`]; read errors.
pub fn score_tiling(slide: &Slide, tiling: &Tiling, params: &NucleiParams, batch: usize) -> Result<SlideNuclei> {
    params.check()?;
    let (mx, my) = slide.mpp()?;
    let mpp0 = (mx + my) / 2.0;
    let cores: Vec<Core> = tiling.tiles.iter().map(|t| Core { col: t.col, row: t.row, x: t.x, y: t.y }).collect();
    let core0 = u64::from(tiling.tile_size_level0.max(1));
    score_cores(slide, mpp0, &cores, core0, (tiling.cols, tiling.rows), params, batch)
}

/// A square of the slide measured on its own: grid position and level-0 top-left corner.
#[derive(Debug, Clone, Copy)]
struct Core {
    col: u32,
    row: u32,
    x: u64,
    y: u64,
}

/// Detects the nuclei of `cores` (side `core0` level-0 px, read with `params.margin_um` around
/// them), a nucleus belonging to the core holding its centroid, and scores the slide.
fn score_cores(
    slide: &Slide,
    mpp0: f64,
    cores: &[Core],
    core0: u64,
    (cols, rows): (u32, u32),
    params: &NucleiParams,
    batch: usize,
) -> Result<SlideNuclei> {
    let meta = slide.meta();
    let margin0 = (params.margin_um / mpp0).round() as u64;
    let level = slide.best_level_for_downsample(params.pixel_size_um / mpp0);
    let ds = meta.levels[level].downsample;
    let read = (((core0 + 2 * margin0) as f64) / ds).round().max(1.0) as u32;
    let region_mpp = (core0 + 2 * margin0) as f64 * mpp0 / read as f64;
    // The core in region-local µm.
    let (lo, hi) = (margin0 as f64 * mpp0, (margin0 + core0) as f64 * mpp0);
    let mut nuclei = Vec::new();
    let mut tiles = Vec::with_capacity(cores.len());
    for chunk in cores.chunks(batch.max(1)) {
        let found = chunk
            .par_iter()
            .map(|k| {
                let (x0, y0) = (k.x as i64 - margin0 as i64, k.y as i64 - margin0 as i64);
                let img = slide.read_region(level, x0, y0, read, read)?;
                let v: Vec<Nucleus> = detect_nuclei(&img, region_mpp, params)?
                    .into_iter()
                    .filter(|n| n.x_um >= lo && n.x_um < hi && n.y_um >= lo && n.y_um < hi)
                    .map(|n| Nucleus { x_um: n.x_um + x0 as f64 * mpp0, y_um: n.y_um + y0 as f64 * mpp0, ..n })
                    .collect();
                Ok((*k, v))
            })
            .collect::<Result<Vec<_>>>()?;
        for (k, v) in found {
            let b = intensity_counts(&v, params);
            tiles.push(TileNuclei {
                col: k.col,
                row: k.row,
                nuclei: v.len() as u32,
                positive_nuclei: (b[1] + b[2] + b[3]) as u32,
                weak: b[1] as u32,
                moderate: b[2] as u32,
                strong: b[3] as u32,
            });
            nuclei.extend(v);
        }
    }
    let score = score(&nuclei, meta.width as f64 * mpp0, meta.height as f64 * mpp0, params);
    Ok(SlideNuclei { score, nuclei, tiles, cols, rows, mpp: mpp0, params: *params })
}

/// Draws each nucleus as a circle of its area's radius on `img` (pixels `mpp` µm wide):
/// positive ones in red, negative ones in blue, two pixels thick.
pub fn draw_overlay(img: &RgbImage, mpp: f64, nuclei: &[Nucleus]) -> RgbImage {
    let mut out = img.clone();
    if !(mpp.is_finite() && mpp > 0.0) {
        return out;
    }
    for n in nuclei {
        let colour = if n.positive { Rgb([230, 20, 20]) } else { Rgb([20, 60, 230]) };
        let r = ((n.area_um2 / std::f64::consts::PI).sqrt() / mpp).round() as i32;
        let c = ((n.x_um / mpp) as i32, (n.y_um / mpp) as i32);
        for rr in [r, r + 1] {
            imageproc::drawing::draw_hollow_circle_mut(&mut out, c, rr.max(1), colour);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A white image with dome-shaped discs of radius `r` px at `centres`, hematoxylin-blue or
    /// DAB-brown, darkest at the centre (each pixel takes its nearest disc).
    fn discs(w: u32, h: u32, r: f64, centres: &[(f64, f64, bool)]) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let near = centres.iter().map(|&(cx, cy, brown)| {
                let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                ((dx * dx + dy * dy).sqrt(), brown)
            });
            match near.min_by(|a, b| a.0.total_cmp(&b.0)) {
                Some((d, brown)) if d <= r => {
                    let f = 1.0 - 0.6 * (d / r).powi(2);
                    let ink = if brown { [140.0, 90.0, 50.0] } else { [90.0, 90.0, 170.0] };
                    Rgb(std::array::from_fn(|c| (255.0 - (255.0 - ink[c]) * f).round() as u8))
                }
                _ => Rgb([255, 255, 255]),
            }
        })
    }

    #[test]
    fn counts_and_classifies_discs() {
        // 4 × 5 grid of discs of 8 px radius at 0.5 µm/px (50 µm²), every third brown.
        let mut c = Vec::new();
        for i in 0..20 {
            c.push((30.0 + (i % 5) as f64 * 40.0, 30.0 + (i / 5) as f64 * 40.0, i % 3 == 0));
        }
        let img = discs(220, 180, 8.0, &c);
        let p = NucleiParams::default();
        let v = detect_nuclei(&img, 0.5, &p).unwrap();
        assert_eq!(v.len(), 20);
        assert_eq!(v.iter().filter(|n| n.positive).count(), 7);
        for n in &v {
            let (cx, cy, brown) = *c
                .iter()
                .min_by(|a, b| {
                    let d = |q: &(f64, f64, bool)| (q.0 * 0.5 - n.x_um).powi(2) + (q.1 * 0.5 - n.y_um).powi(2);
                    d(a).total_cmp(&d(b))
                })
                .unwrap();
            assert!((cx * 0.5 - n.x_um).abs() < 0.5 && (cy * 0.5 - n.y_um).abs() < 0.5);
            assert_eq!(n.positive, brown);
            assert!((n.area_um2 - 50.3).abs() < 15.0, "area {}", n.area_um2);
        }
        let s = score(&v, 110.0, 90.0, &p);
        assert_eq!((s.nuclei, s.positive_nuclei), (20, 7));
        assert_eq!(s.labelling_index, Some(0.35));
        assert_eq!(s.hotspot_index, None);
    }

    #[test]
    fn splits_touching_discs_and_rescales() {
        // Two discs of radius 16 px whose centres are 28 px apart overlap; at 0.25 µm/px they are
        // resampled to 0.5 µm/px first (radius 8 px, 50 µm² each).
        let img = discs(120, 80, 16.0, &[(40.0, 40.0, false), (68.0, 40.0, false)]);
        let v = detect_nuclei(&img, 0.25, &NucleiParams::default()).unwrap();
        assert_eq!(v.len(), 2, "{v:?}");
    }

    #[test]
    fn size_filter_and_blank() {
        let p = NucleiParams::default();
        // radius 2 px at 0.5 µm/px: 3 µm² < 10 µm²
        let small = discs(60, 60, 2.0, &[(30.0, 30.0, false)]);
        assert!(detect_nuclei(&small, 0.5, &p).unwrap().is_empty());
        let blank = RgbImage::from_pixel(50, 50, Rgb([255, 255, 255]));
        assert!(detect_nuclei(&blank, 0.5, &p).unwrap().is_empty());
        let s = score(&[], 10.0, 10.0, &p);
        assert_eq!((s.nuclei, s.labelling_index, s.hotspot_index), (0, None, None));
        assert!(detect_nuclei(&blank, 0.0, &p).is_err());
        assert!(detect_nuclei(&blank, f64::NAN, &p).is_err());
        assert!(detect_nuclei(&blank, 0.5, &NucleiParams { max_area_um2: 1.0, ..p }).is_err());
    }

    #[test]
    fn hotspot_window() {
        // 600 nuclei in a dense 100 µm square with 300 positive, 600 negative elsewhere.
        let p = NucleiParams::default();
        let mut v = Vec::new();
        let nu = |x: f64, y: f64, positive: bool| Nucleus {
            x_um: x,
            y_um: y,
            area_um2: 30.0,
            mean_dab: 0.0,
            mean_hematoxylin: 0.0,
            positive,
        };
        for i in 0..600 {
            v.push(nu(50.0 + (i % 25) as f64 * 4.0, 50.0 + (i / 25) as f64 * 4.0, i % 2 == 0));
        }
        for i in 0..600 {
            v.push(nu(1200.0 + (i % 30) as f64 * 10.0, 1200.0 + (i / 30) as f64 * 10.0, false));
        }
        let s = score(&v, 2000.0, 2000.0, &p);
        assert_eq!(s.labelling_index, Some(0.25));
        assert_eq!(s.hotspot_index, Some(0.5));
        let s = score(&v, 2000.0, 2000.0, &NucleiParams { hotspot_min_nuclei: 2000, ..p });
        assert_eq!(s.hotspot_index, None);
    }
}
