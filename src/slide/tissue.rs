//! Tissue detection on a low-resolution image of the slide ([`detect_tissue`] →
//! [`TissueMask`]).
//!
//! # Formula
//! 1. Low-resolution image: the coarsest pyramid level at most as coarse as
//!    [`TissueParams::mask_mpp`], box-averaged by an integer factor until the long side is at
//!    most [`TissueParams::max_side`] px and the pixel size reaches `mask_mpp` (read block by
//!    block, in parallel, so memory holds one output image and one input block per thread).
//! 2. Per-pixel signal. H&E ([`TissueMethod::Saturation`]): HSV saturation as OpenCV computes
//!    it for 8-bit images, `S = 255·(max−min)/max`. IHC ([`TissueMethod::OpticalDensity`]):
//!    hematoxylin + DAB from [`crate::slide::hed::rgb2hed`] (scikit-image units), stored in
//!    steps of 0.001 (so a threshold of 0.05 is level 50).
//! 3. Median blur, then threshold (`> t`, fixed or Otsu), morphological closing with a square
//!    kernel, removal of 8-connected objects below `min_object_mm2`, filling of 4-connected
//!    holes below `min_hole_mm2`.
//!
//! Window sizes are physical and converted to pixels of the mask at run time, so the same
//! parameters mean the same thing on a 20× and a 40× scan.
//!
//! # Assumptions
//! CLAM's defaults (saturation 8, median 7 px, close 4 px, `a_t` = 100 and `a_h` = 16 reference
//! patches of 512² level-0 px) are pixel counts at its segmentation level (downsample 64). At
//! 40× (0.25 µm/px) that level is 16 µm/px, so the physical equivalents are a 112 µm median, a
//! 64 µm closing, objects ≥ 1.64 mm² and holes ≥ 0.26 mm² (at 20× the areas are four times
//! larger). An object threshold of 1.64 mm² removes every tissue piece of a biopsy or of a
//! small region such as CMU-1-Small-Region.svs (1.64 mm² in all), which is why CLAM finds no
//! patch there; the default here keeps objects from 0.02 mm² (a square of 141 µm, about one
//! 256-px tile at 0.5 µm/px) and fills holes below 0.26 mm² (CLAM's value at 40×).
//!
//! # Errors
//! [`SlideError::NoTissue`] when the final mask is empty; [`SlideError::BadParam`] for
//! non-positive sizes.
//!
//! # References
//! Lu et al., "Data-efficient and weakly supervised computational pathology on whole-slide
//! images", Nat. Biomed. Eng. 2021 (CLAM, `segmentTissue`); Otsu, IEEE SMC 1979.
use super::error::{Result, SlideError};
use super::hed::rgb2hed_lut;
use super::Slide;
use super::Stain;
use image::{GrayImage, RgbImage};
use imageproc::distance_transform::Norm;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which per-pixel signal separates tissue from glass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TissueMethod {
    /// HSV saturation (H&E).
    Saturation,
    /// Hematoxylin + DAB optical density (IHC), which also catches pale blue counterstain.
    OpticalDensity,
}

/// A threshold on the per-pixel signal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Threshold {
    /// A fixed value: saturation in 0–255, or optical density in scikit-image `rgb2hed` units.
    Fixed(f64),
    /// Otsu's threshold on the blurred signal, never below the given floor (same units).
    Otsu { floor: f64 },
}

/// Parameters of tissue detection. Build with [`TissueParams::for_stain`] and adjust fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TissueParams {
    /// Per-pixel signal.
    pub method: TissueMethod,
    /// Threshold (pixels strictly above are tissue). Defaults: saturation `Fixed(8)` (CLAM);
    /// optical density `Fixed(0.02)` (bluish glass as in OS-2-ndpi has H+DAB ≈ 0.016, white
    /// glass ≈ 0, pale counterstained tissue 0.025–0.05).
    pub threshold: Threshold,
    /// Median blur window, µm (default 112 = CLAM's 7 px at 16 µm/px).
    pub median_um: f64,
    /// Closing kernel width, µm (default 64 = CLAM's 4 px at 16 µm/px).
    pub close_um: f64,
    /// Tissue pieces smaller than this are dropped, mm² (default 0.02).
    pub min_object_mm2: f64,
    /// Holes inside tissue smaller than this are filled, mm² (default 0.26).
    pub min_hole_mm2: f64,
    /// Finest pixel size wanted for the mask, µm/px (default 4).
    pub mask_mpp: f64,
    /// Longest side of the mask, px (default 2000).
    pub max_side: u32,
}

impl Default for TissueParams {
    /// The H&E defaults ([`TissueParams::for_stain`] with [`Stain::HE`]).
    fn default() -> Self {
        TissueParams::for_stain(Stain::HE)
    }
}

impl TissueParams {
    /// The defaults for a stain: saturation for H&E, optical density for IHC.
    pub fn for_stain(stain: Stain) -> TissueParams {
        let (method, threshold) = if stain.is_ihc() {
            (TissueMethod::OpticalDensity, Threshold::Fixed(0.02))
        } else {
            (TissueMethod::Saturation, Threshold::Fixed(8.0))
        };
        TissueParams {
            method,
            threshold,
            median_um: 112.0,
            close_um: 64.0,
            min_object_mm2: 0.02,
            min_hole_mm2: 0.26,
            mask_mpp: 4.0,
            max_side: 2000,
        }
    }

    fn check(&self) -> Result<()> {
        let nonneg = |what: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(SlideError::param(what, "a finite number ≥ 0", v))
            }
        };
        nonneg("tissue median_um", self.median_um)?;
        nonneg("tissue close_um", self.close_um)?;
        nonneg("tissue min_object_mm2", self.min_object_mm2)?;
        nonneg("tissue min_hole_mm2", self.min_hole_mm2)?;
        if !(self.mask_mpp.is_finite() && self.mask_mpp > 0.0) {
            return Err(SlideError::param("tissue mask_mpp", "a positive number", self.mask_mpp));
        }
        if self.max_side < 16 {
            return Err(SlideError::param("tissue max_side", "at least 16 px", self.max_side));
        }
        let t = match self.threshold {
            Threshold::Fixed(t) | Threshold::Otsu { floor: t } => t,
        };
        nonneg("tissue threshold", t)
    }
}

/// A downsampled image of a whole slide.
#[derive(Debug, Clone)]
pub struct LowRes {
    /// The pixels.
    pub image: RgbImage,
    /// Pyramid level read.
    pub level: usize,
    /// Box-averaging factor applied to that level.
    pub factor: u32,
    /// Level-0 pixels per pixel of `image`.
    pub downsample: f64,
}

/// The tissue mask of a slide and what it was computed from.
#[derive(Debug, Clone)]
pub struct TissueMask {
    /// 255 = tissue, 0 = background; one pixel per `downsample` level-0 px.
    pub mask: GrayImage,
    /// The low-resolution RGB image the mask was computed on (the QC thumbnail).
    pub thumbnail: RgbImage,
    /// Level-0 pixels per mask pixel.
    pub downsample: f64,
    /// Level-0 µm/px of the slide.
    pub mpp: (f64, f64),
    /// Area of the mask, mm².
    pub tissue_area_mm2: f64,
    /// Human-readable account of the method and threshold used (for QC and errors).
    pub method: String,
}

impl TissueMask {
    /// µm per mask pixel.
    pub fn mask_mpp(&self) -> f64 {
        self.downsample * (self.mpp.0 + self.mpp.1) / 2.0
    }
}

/// Reads the whole slide at about `target_downsample` level-0 px per pixel (or coarser, so that
/// the long side is at most `max_side`): the coarsest level not coarser than that, box-averaged
/// by an integer factor. Reads blocks in parallel; never holds more than the output and one block per thread.
pub fn read_low_res(slide: &Slide, target_downsample: f64, max_side: u32) -> Result<LowRes> {
    let meta = slide.meta();
    let long0 = meta.width.max(meta.height) as f64;
    let target_downsample = target_downsample.max(long0 / max_side.max(1) as f64).max(1.0);
    let factor = |level: usize| {
        let l = &meta.levels[level];
        let by_mpp = (target_downsample / l.downsample + 1e-6).floor().max(1.0) as u64;
        let by_side = l.width.max(l.height).div_ceil(max_side.max(1) as u64).max(1);
        by_mpp.max(by_side)
    };
    let mut level = slide.best_level_for_downsample(target_downsample);
    let mut k = factor(level);
    // A coarser level that already has the final downsample needs fewer pixels decoded.
    let final_ds = meta.levels[level].downsample * k as f64;
    for (j, l) in meta.levels.iter().enumerate() {
        let kj = (final_ds / l.downsample).round().max(1.0);
        if l.downsample > meta.levels[level].downsample
            && ((final_ds / l.downsample) - kj).abs() < 1e-3 * kj
            && l.width.max(l.height).div_ceil(kj as u64) <= max_side as u64
        {
            level = j;
            k = kj as u64;
        }
    }
    let l = &meta.levels[level];
    let (lw, lh) = (l.width, l.height);
    let (ow, oh) = (lw.div_ceil(k), lh.div_ceil(k));
    let block = (1024 / k).max(1); // output px per block side
    let blocks: Vec<(u64, u64)> =
        (0..oh.div_ceil(block)).flat_map(|by| (0..ow.div_ceil(block)).map(move |bx| (bx, by))).collect();
    let ds = l.downsample;
    // (x, y, width, height, pixels) of each output block
    type Block = (u64, u64, u64, u64, Vec<u8>);
    let parts: Vec<Result<Block>> = blocks
        .par_iter()
        .map(|&(bx, by)| {
            let (ox, oy) = (bx * block, by * block);
            let (bw, bh) = (block.min(ow - ox), block.min(oh - oy));
            let (ix, iy) = (ox * k, oy * k);
            let (iw, ih) = ((bw * k).min(lw - ix), (bh * k).min(lh - iy));
            let x0 = (ix as f64 * ds - 1e-9).ceil() as i64;
            let y0 = (iy as f64 * ds - 1e-9).ceil() as i64;
            let img = slide.read_region(level, x0, y0, iw as u32, ih as u32)?;
            Ok((ox, oy, bw, bh, box_average(&img, k as u32, bw as u32, bh as u32)))
        })
        .collect();
    let mut out = RgbImage::new(ow as u32, oh as u32);
    let buf: &mut [u8] = &mut out;
    for part in parts {
        let (ox, oy, bw, bh, px) = part?;
        for r in 0..bh {
            let dst = (((oy + r) * ow + ox) * 3) as usize;
            let src = (r * bw * 3) as usize;
            buf[dst..dst + (bw * 3) as usize].copy_from_slice(&px[src..src + (bw * 3) as usize]);
        }
    }
    Ok(LowRes { image: out, level, factor: k as u32, downsample: ds * k as f64 })
}

/// Mean of each `k`×`k` block (partial blocks at the right and bottom average what exists).
fn box_average(img: &RgbImage, k: u32, ow: u32, oh: u32) -> Vec<u8> {
    if k == 1 {
        return img.as_raw().clone();
    }
    let (w, h) = img.dimensions();
    let src = img.as_raw();
    let mut sums = vec![0u32; (ow * oh * 3) as usize];
    let mut counts = vec![0u32; (ow * oh) as usize];
    for y in 0..h {
        let oy = (y / k).min(oh - 1);
        let row = &src[(y * w * 3) as usize..((y + 1) * w * 3) as usize];
        for x in 0..w {
            let o = (oy * ow + (x / k).min(ow - 1)) as usize;
            counts[o] += 1;
            for c in 0..3 {
                sums[o * 3 + c] += row[(x * 3) as usize + c] as u32;
            }
        }
    }
    sums.iter()
        .enumerate()
        .map(|(i, &s)| {
            let n = counts[i / 3].max(1);
            ((s + n / 2) / n) as u8
        })
        .collect()
}

/// The per-pixel signal as 8-bit levels (saturation 0–255; OD in steps of 0.001).
fn signal(img: &RgbImage, method: TissueMethod) -> GrayImage {
    let (w, h) = img.dimensions();
    let mut out = GrayImage::new(w, h);
    match method {
        TissueMethod::Saturation => {
            for (o, p) in out.pixels_mut().zip(img.pixels()) {
                let [r, g, b] = p.0;
                let max = r.max(g).max(b) as u32;
                let min = r.min(g).min(b) as u32;
                // OpenCV: S = 255·(V−min)/V, rounded.
                o.0[0] = (255 * (max - min) + max / 2).checked_div(max).unwrap_or(0) as u8;
            }
        }
        TissueMethod::OpticalDensity => {
            let lut = rgb2hed_lut();
            for (o, p) in out.pixels_mut().zip(img.pixels()) {
                let [hh, _, d] = lut.hed(p.0);
                o.0[0] = ((hh + d) * 1000.0).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

fn od_level(od: f64) -> f64 {
    od * 1000.0
}

/// Detects tissue on a low-resolution image of `slide`.
///
/// # Errors
/// [`SlideError::NoTissue`] (naming the slide) when nothing survives; read errors.
pub fn detect_tissue(slide: &Slide, params: &TissueParams) -> Result<TissueMask> {
    params.check()?;
    let (mx, my) = slide.mpp()?;
    let mpp0 = (mx + my) / 2.0;
    let low = read_low_res(slide, params.mask_mpp / mpp0, params.max_side)?;
    let mask_mpp = low.downsample * mpp0;
    let (mask, method) = mask_from_image(&low.image, mask_mpp, params);
    let px_area_mm2 = (low.downsample * mx) * (low.downsample * my) / 1e6;
    let n = mask.pixels().filter(|p| p.0[0] > 0).count();
    if n == 0 {
        return Err(SlideError::NoTissue { path: slide.path().to_path_buf(), mask_mpp, method });
    }
    Ok(TissueMask {
        mask,
        thumbnail: low.image,
        downsample: low.downsample,
        mpp: (mx, my),
        tissue_area_mm2: n as f64 * px_area_mm2,
        method,
    })
}

/// The tissue mask of an RGB image whose pixels are `mpp` µm wide (the image-level core of
/// [`detect_tissue`], usable on any thumbnail). Returns the mask and a description of the
/// method with the threshold actually applied.
pub fn mask_from_image(img: &RgbImage, mpp: f64, params: &TissueParams) -> (GrayImage, String) {
    let sig = signal(img, params.method);
    let median_px = (params.median_um / mpp).round() as u32;
    let radius = median_px / 2;
    let (unit, to_level): (&str, fn(f64) -> f64) = match params.method {
        TissueMethod::Saturation => ("saturation", |v| v),
        TissueMethod::OpticalDensity => ("H+DAB optical density", od_level),
    };
    let (mut mask, desc) = match params.threshold {
        // median(S) > t  ⟺  more than half of the window is > t: threshold, then count.
        Threshold::Fixed(t) => (majority_above(&sig, to_level(t), radius), format!("{unit} > {t}")),
        Threshold::Otsu { floor } => {
            let blurred = if radius > 0 { imageproc::filter::median_filter(&sig, radius, radius) } else { sig };
            let otsu = imageproc::contrast::otsu_level(&blurred) as f64;
            let lvl = otsu.max(to_level(floor));
            let shown = if params.method == TissueMethod::OpticalDensity { lvl / 1000.0 } else { lvl };
            let mut m = blurred;
            for p in m.pixels_mut() {
                p.0[0] = if p.0[0] as f64 > lvl { 255 } else { 0 };
            }
            (m, format!("{unit} > {shown} (Otsu, floor {floor})"))
        }
    };
    let close_r = ((params.close_um / mpp) / 2.0).round().min(255.0) as u8;
    if close_r > 0 {
        imageproc::morphology::close_mut(&mut mask, Norm::LInf, close_r);
    }
    let px_mm2 = mpp * mpp / 1e6;
    let min_obj = (params.min_object_mm2 / px_mm2).ceil() as u64;
    let min_hole = (params.min_hole_mm2 / px_mm2).ceil() as u64;
    remove_small(&mut mask, 255, min_obj, true, true);
    remove_small(&mut mask, 0, min_hole, false, false);
    let desc = format!(
        "{desc}, median {median_px} px, closing {} px, objects ≥ {} mm², holes ≥ {} mm², at {:.2} µm/px",
        2 * close_r as u32,
        params.min_object_mm2,
        params.min_hole_mm2,
        mpp
    );
    (mask, desc)
}

/// `median_filter(sig, r, r) > level` (255/0) without sorting: a window's median exceeds the
/// level exactly when more than half of its `(2r+1)²` pixels do. Borders replicate the edge
/// pixels, as imageproc's median filter does; counts come from a summed-area table.
fn majority_above(sig: &GrayImage, level: f64, r: u32) -> GrayImage {
    let (w, h) = (sig.width() as usize, sig.height() as usize);
    let r = r as usize;
    let (pw, ph) = (w + 2 * r, h + 2 * r);
    // Summed-area table of the padded binary image, (pw+1)×(ph+1).
    let mut sat = vec![0u32; (pw + 1) * (ph + 1)];
    let raw = sig.as_raw();
    for py in 0..ph {
        let y = py.saturating_sub(r).min(h - 1);
        let mut run = 0u32;
        for px in 0..pw {
            let x = px.saturating_sub(r).min(w - 1);
            run += (raw[y * w + x] as f64 > level) as u32;
            sat[(py + 1) * (pw + 1) + px + 1] = sat[py * (pw + 1) + px + 1] + run;
        }
    }
    let side = 2 * r + 1;
    let half = (side * side / 2) as u32;
    let mut out = GrayImage::new(w as u32, h as u32);
    let o: &mut [u8] = &mut out;
    for y in 0..h {
        for x in 0..w {
            let (x1, y1) = (x + side, y + side);
            let c = sat[y1 * (pw + 1) + x1] + sat[y * (pw + 1) + x] - sat[y * (pw + 1) + x1] - sat[y1 * (pw + 1) + x];
            o[y * w + x] = if c > half { 255 } else { 0 };
        }
    }
    out
}

/// Flips components of value `value` smaller than `min_px` to the other value (`eight`:
/// 8-connected, else 4-connected). For holes (`border_ok == false`), components touching the
/// image border are background, not holes, and are kept.
///
/// (Labelled here by flood fill: imageproc 0.27's `connected_components` panics on images one
/// pixel wide, which tiny slides produce.)
fn remove_small(mask: &mut GrayImage, value: u8, min_px: u64, eight: bool, border_ok: bool) {
    if min_px <= 1 {
        return;
    }
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let other = 255 - value;
    let px: &mut [u8] = mask;
    let mut seen = vec![false; w * h];
    let mut stack: Vec<u32> = Vec::new();
    let mut comp: Vec<u32> = Vec::new();
    for start in 0..w * h {
        if seen[start] || px[start] != value {
            continue;
        }
        seen[start] = true;
        stack.push(start as u32);
        comp.clear();
        let mut touches = false;
        while let Some(i) = stack.pop() {
            let i = i as usize;
            comp.push(i as u32);
            let (x, y) = (i % w, i / w);
            let (left, right, up, down) = (x > 0, x + 1 < w, y > 0, y + 1 < h);
            touches |= !(left && right && up && down);
            let mut visit = |j: usize| {
                if !seen[j] && px[j] == value {
                    seen[j] = true;
                    stack.push(j as u32);
                }
            };
            if left {
                visit(i - 1);
            }
            if right {
                visit(i + 1);
            }
            if up {
                visit(i - w);
            }
            if down {
                visit(i + w);
            }
            if eight {
                if up && left {
                    visit(i - w - 1);
                }
                if up && right {
                    visit(i - w + 1);
                }
                if down && left {
                    visit(i + w - 1);
                }
                if down && right {
                    visit(i + w + 1);
                }
            }
        }
        if (comp.len() as u64) < min_px && (border_ok || !touches) {
            for &i in &comp {
                px[i as usize] = other;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_average_handles_partial_blocks() {
        let img = RgbImage::from_fn(5, 3, |x, _| image::Rgb([x as u8 * 10, 0, 255]));
        let out = box_average(&img, 2, 3, 2);
        // first block: x 0,1 → 0,10 → 5; last column block: x 4 only → 40
        assert_eq!(&out[0..3], &[5, 0, 255]);
        assert_eq!(&out[6..9], &[40, 0, 255]);
        assert_eq!(out.len(), 3 * 2 * 3);
    }

    #[test]
    fn small_objects_and_holes() {
        // 20×20: a 10×10 square with a 2×2 hole, plus a lone pixel.
        let mut m = GrayImage::new(20, 20);
        for y in 2..12 {
            for x in 2..12 {
                m.put_pixel(x, y, image::Luma([255]));
            }
        }
        for y in 6..8 {
            for x in 6..8 {
                m.put_pixel(x, y, image::Luma([0]));
            }
        }
        m.put_pixel(17, 17, image::Luma([255]));
        remove_small(&mut m, 255, 5, true, true);
        assert_eq!(m.get_pixel(17, 17).0[0], 0);
        assert_eq!(m.get_pixel(6, 6).0[0], 0);
        remove_small(&mut m, 0, 5, false, false);
        assert_eq!(m.get_pixel(6, 6).0[0], 255);
        // the outer background touches the border and stays
        assert_eq!(m.get_pixel(0, 0).0[0], 0);
    }

    #[test]
    fn majority_equals_median_then_threshold() {
        // A deterministic pseudo-random image (LCG), odd sizes, several radii and levels.
        let mut state = 12345u32;
        let img = GrayImage::from_fn(37, 23, |_, _| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            image::Luma([(state >> 16) as u8])
        });
        for r in [1, 2, 3, 7] {
            let med = imageproc::filter::median_filter(&img, r, r);
            for level in [0.0, 8.0, 100.0, 127.0, 200.0] {
                let want: Vec<u8> = med.as_raw().iter().map(|&v| if v as f64 > level { 255 } else { 0 }).collect();
                assert_eq!(majority_above(&img, level, r).as_raw(), &want, "r {r} level {level}");
            }
        }
    }

    #[test]
    fn saturation_matches_opencv_formula() {
        let img = RgbImage::from_raw(2, 1, vec![255, 255, 255, 200, 100, 50]).unwrap();
        let s = signal(&img, TissueMethod::Saturation);
        assert_eq!(s.get_pixel(0, 0).0[0], 0);
        // (200-50)/200*255 = 191.25
        assert_eq!(s.get_pixel(1, 0).0[0], 191);
    }
}
