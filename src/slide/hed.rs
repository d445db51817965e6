//! Ruifrok–Johnston colour deconvolution into hematoxylin, eosin and DAB, equal to
//! scikit-image's `rgb2hed`, and per-image statistics. Pure colour maths: no slide, no file
//! (the per-tile and per-slide stain measures built on it are [`super::stain_map`]).
//!
//! # Formula
//! For an 8-bit pixel with channels `c ∈ {R, G, B}`:
//! `l_c = ln(max(c/255, 1e-6)) / ln(1e-6)` and `[H, E, D] = max(0, l · M⁻¹)` where `M` is
//! scikit-image's `rgb_from_hed` (rows: the H, E and DAB stain vectors
//! `[0.65, 0.70, 0.29]`, `[0.07, 0.99, 0.11]`, `[0.27, 0.57, 0.78]`, not normalised) and `l` a
//! row vector. The division by `ln(1e-6)` (scikit-image's `log_adjust`) makes the values the
//! base-10 optical density divided by 6; thresholds such as 0.02 or 0.05 are in these units.
//! The 1e-6 clip replaces a zero channel so that `ln 0` never occurs (scikit-image clips the
//! same way), so a black pixel has `l = (1, 1, 1)`.
//!
//! # Assumptions
//! Brightfield, white background at 255 (no per-slide background estimate), the standard
//! stain vectors above. Per-tile means are over tissue pixels, a tissue pixel being one with
//! `H + DAB > tissue_od`; a pixel is DAB-positive when `DAB > dab_threshold`.
//!
//! # References
//! Ruifrok & Johnston, "Quantification of histochemical staining by color deconvolution",
//! Anal. Quant. Cytol. Histol. 23:291–299, 2001; scikit-image `skimage.color.rgb2hed`
//! (0.26).
use image::RgbImage;
use rayon::prelude::*;
use serde::Serialize;
use std::sync::OnceLock;

/// scikit-image's `rgb_from_hed`: rows are the hematoxylin, eosin and DAB stain vectors.
pub const RGB_FROM_HED: [[f64; 3]; 3] = [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]];

/// The inverse of a 3×3 matrix by Gauss–Jordan elimination with partial pivoting (LAPACK's
/// `getrf`/`getri`, which numpy uses, agree to rounding).
fn inverse3(m: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut a = [[0.0; 6]; 3];
    for i in 0..3 {
        a[i][..3].copy_from_slice(&m[i]);
        a[i][3 + i] = 1.0;
    }
    for col in 0..3 {
        let piv = (col..3).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs())).unwrap_or(col);
        a.swap(col, piv);
        let p = a[col][col];
        for v in a[col].iter_mut() {
            *v /= p;
        }
        for r in 0..3 {
            if r != col {
                let f = a[r][col];
                let src = a[col];
                for (v, s) in a[r].iter_mut().zip(src) {
                    *v -= f * s;
                }
            }
        }
    }
    let mut inv = [[0.0; 3]; 3];
    for i in 0..3 {
        inv[i].copy_from_slice(&a[i][3..]);
    }
    inv
}

/// `rgb2hed` for 8-bit pixels through a 256-entry table per channel.
#[derive(Debug, Clone)]
pub struct HedLut {
    log: [f64; 256],
    hed_from_rgb: [[f64; 3]; 3],
}

impl HedLut {
    /// Hematoxylin, eosin and DAB of one pixel.
    #[inline]
    pub fn hed(&self, rgb: [u8; 3]) -> [f64; 3] {
        let l = [self.log[rgb[0] as usize], self.log[rgb[1] as usize], self.log[rgb[2] as usize]];
        let m = &self.hed_from_rgb;
        let mut out = [0.0; 3];
        for (j, o) in out.iter_mut().enumerate() {
            let v = l[0] * m[0][j] + l[1] * m[1][j] + l[2] * m[2][j];
            *o = v.max(0.0);
        }
        out
    }
}

/// The shared table.
pub fn rgb2hed_lut() -> &'static HedLut {
    static LUT: OnceLock<HedLut> = OnceLock::new();
    LUT.get_or_init(|| {
        let adjust = 1e-6f64.ln();
        let mut log = [0.0; 256];
        for (v, slot) in log.iter_mut().enumerate() {
            *slot = (v as f64 / 255.0).max(1e-6).ln() / adjust;
        }
        HedLut { log, hed_from_rgb: inverse3(RGB_FROM_HED) }
    })
}

/// `rgb2hed` of every pixel, row-major.
pub fn rgb2hed(img: &RgbImage) -> Vec<[f64; 3]> {
    let lut = rgb2hed_lut();
    img.pixels().map(|p| lut.hed(p.0)).collect()
}

/// Summary of one channel over all pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChannelStats {
    /// Mean.
    pub mean: f64,
    /// Population standard deviation (numpy's default, `ddof = 0`).
    pub std: f64,
    /// 5th percentile (numpy's linear interpolation).
    pub p05: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

impl ChannelStats {
    /// Statistics of `v` (sorted in place). An empty slice gives zeros.
    pub fn of(v: &mut [f64]) -> ChannelStats {
        if v.is_empty() {
            return ChannelStats { mean: 0.0, std: 0.0, p05: 0.0, p50: 0.0, p95: 0.0, min: 0.0, max: 0.0 };
        }
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        v.par_sort_unstable_by(f64::total_cmp);
        ChannelStats {
            mean,
            std: var.sqrt(),
            p05: percentile_sorted(v, 5.0),
            p50: percentile_sorted(v, 50.0),
            p95: percentile_sorted(v, 95.0),
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}

/// numpy's default (`linear`) percentile of sorted data.
pub fn percentile_sorted(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Whole-image deconvolution summary (`spatia stain hed`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HedSummary {
    /// Hematoxylin.
    pub hematoxylin: ChannelStats,
    /// Eosin.
    pub eosin: ChannelStats,
    /// DAB.
    pub dab: ChannelStats,
    /// `(threshold, fraction of pixels with DAB > threshold)`.
    pub dab_positive_fraction: Vec<(f64, f64)>,
}

/// Deconvolves an image and summarises each channel; DAB-positive fractions at `thresholds`.
pub fn summarize(img: &RgbImage, thresholds: &[f64]) -> HedSummary {
    let hed = rgb2hed(img);
    let mut ch: [Vec<f64>; 3] = std::array::from_fn(|c| hed.iter().map(|p| p[c]).collect());
    let n = hed.len().max(1) as f64;
    let dab_positive_fraction =
        thresholds.iter().map(|&t| (t, ch[2].iter().filter(|&&d| d > t).count() as f64 / n)).collect();
    HedSummary {
        hematoxylin: ChannelStats::of(&mut ch[0]),
        eosin: ChannelStats::of(&mut ch[1]),
        dab: ChannelStats::of(&mut ch[2]),
        dab_positive_fraction,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn inverse_is_inverse() {
        let inv = inverse3(RGB_FROM_HED);
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| RGB_FROM_HED[i][k] * inv[k][j]).sum();
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn white_is_zero_and_black_is_clipped() {
        let lut = rgb2hed_lut();
        assert_eq!(lut.hed([255, 255, 255]), [0.0, 0.0, 0.0]);
        // black: l = (1, 1, 1), so each stain is a column sum of M⁻¹ (clipped at 0)
        let inv = inverse3(RGB_FROM_HED);
        let k = lut.hed([0, 0, 0]);
        for j in 0..3 {
            let col: f64 = (0..3).map(|i| inv[i][j]).sum();
            assert!((k[j] - col.max(0.0)).abs() < 1e-12);
        }
    }

    #[test]
    fn percentiles_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile_sorted(&v, 50.0), 2.5);
        assert!((percentile_sorted(&v, 5.0) - 1.15).abs() < 1e-12);
    }
}
