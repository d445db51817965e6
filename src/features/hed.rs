//! Colour deconvolution RGB → H-E-DAB optical density (Ruifrok–Johnston), exactly as
//! scikit-image's `rgb2hed`.
//!
//! # Formula
//! With `rgb` in [0, 1] clamped below at 1e-6, `od = ln(rgb) / ln(1e-6)` per channel and
//! `[h, e, d] = od · M⁻¹` where the rows of `M` are the stain vectors H (0.65, 0.70, 0.29),
//! E (0.07, 0.99, 0.11), DAB (0.27, 0.57, 0.78); negative concentrations are set to 0.
//!
//! # Assumptions
//! 8-bit sRGB input; the fixed stain matrix of scikit-image (no per-slide stain estimation).
//!
//! # References
//! A. C. Ruifrok and D. A. Johnston, "Quantification of histochemical staining by color
//! deconvolution", Anal. Quant. Cytol. Histol. 23 (2001) 291–299; scikit-image
//! `skimage.color.rgb2hed` (0.26).
//!
//! The slide module implements the same transform (`slide::hed::rgb2hed_lut()`, `HedLut::hed`)
//! for stain analysis; this private copy mirrors that signature and keeps the feature module
//! independent until the two are merged, when it should be deleted.
use std::sync::OnceLock;

/// Stain vectors (rows): hematoxylin, eosin, DAB, as in scikit-image's `rgb_from_hed`.
const RGB_FROM_HED: [[f64; 3]; 3] = [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]];

fn invert3(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let c = |a: usize, b: usize, c: usize, d: usize| m[a][b] * m[c][d];
    [
        [
            (c(1, 1, 2, 2) - c(1, 2, 2, 1)) / det,
            (c(0, 2, 2, 1) - c(0, 1, 2, 2)) / det,
            (c(0, 1, 1, 2) - c(0, 2, 1, 1)) / det,
        ],
        [
            (c(1, 2, 2, 0) - c(1, 0, 2, 2)) / det,
            (c(0, 0, 2, 2) - c(0, 2, 2, 0)) / det,
            (c(0, 2, 1, 0) - c(0, 0, 1, 2)) / det,
        ],
        [
            (c(1, 0, 2, 1) - c(1, 1, 2, 0)) / det,
            (c(0, 1, 2, 0) - c(0, 0, 2, 1)) / det,
            (c(0, 0, 1, 1) - c(0, 1, 1, 0)) / det,
        ],
    ]
}

/// `hed_from_rgb` = inverse of the stain matrix.
fn hed_from_rgb() -> &'static [[f64; 3]; 3] {
    static M: OnceLock<[[f64; 3]; 3]> = OnceLock::new();
    M.get_or_init(|| invert3(&RGB_FROM_HED))
}

/// Optical density per 8-bit value: `ln(max(v/255, 1e-6)) / ln(1e-6)`.
fn od_lut() -> &'static [f64; 256] {
    static L: OnceLock<[f64; 256]> = OnceLock::new();
    L.get_or_init(|| {
        let adjust = (1e-6f64).ln();
        let mut t = [0.0; 256];
        for (v, slot) in t.iter_mut().enumerate() {
            *slot = (v as f64 / 255.0).max(1e-6).ln() / adjust;
        }
        t
    })
}

/// `rgb2hed` for 8-bit pixels through a 256-entry table per channel. Same shape as the slide
/// module's `slide::hed::HedLut` / `rgb2hed_lut()`, so the merge can point at that one.
pub(crate) struct HedLut {
    m: &'static [[f64; 3]; 3],
    lut: &'static [f64; 256],
}

impl HedLut {
    /// Hematoxylin, eosin and DAB of one pixel (scikit-image `rgb2hed`).
    #[inline]
    pub(crate) fn hed(&self, rgb: [u8; 3]) -> [f64; 3] {
        let od = [self.lut[rgb[0] as usize], self.lut[rgb[1] as usize], self.lut[rgb[2] as usize]];
        let m = self.m;
        let mut out = [0.0; 3];
        for (k, o) in out.iter_mut().enumerate() {
            *o = (od[0] * m[0][k] + od[1] * m[1][k] + od[2] * m[2][k]).max(0.0);
        }
        out
    }
}

/// The shared table.
pub(crate) fn rgb2hed_lut() -> &'static HedLut {
    static T: OnceLock<HedLut> = OnceLock::new();
    T.get_or_init(|| HedLut { m: hed_from_rgb(), lut: od_lut() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_is_inverse() {
        let inv = hed_from_rgb();
        for (i, row) in RGB_FROM_HED.iter().enumerate() {
            for (j, _) in inv.iter().enumerate() {
                let s: f64 = (0..3).map(|k| row[k] * inv[k][j]).sum();
                assert!((s - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12, "({i},{j}) = {s}");
            }
        }
    }

    #[test]
    fn matches_scikit_image_reference_pixels() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference/skimage_ihc_hed.json");
        let text = std::fs::read_to_string(path).expect("reference file");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let pixels = v["pixels"].as_array().expect("pixels");
        assert!(!pixels.is_empty());
        for p in pixels {
            let rgb: Vec<u8> = p["rgb"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u8).collect();
            let want: Vec<f64> = p["hed"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            let got = rgb2hed_lut().hed([rgb[0], rgb[1], rgb[2]]);
            for k in 0..3 {
                assert!((got[k] - want[k]).abs() < 1e-9, "pixel {rgb:?} channel {k}: {} vs {}", got[k], want[k]);
            }
        }
    }
}
