//! Slide quality control per tile: blur, pen marks, folds and bubbles, measured on the tile
//! image at the tiling's µm/px, and the flags that exclude a tile from the tiling.
//!
//! # Measures ([`measure_tile`])
//! - **Blur**: the variance of the 4-neighbour Laplacian of the grey image (0–255 luma,
//!   `imageproc::filter::laplacian_filter`), over the whole tile (Pech-Pacheco et al. 2000,
//!   "Diatom autofocusing in brightfield microscopy"). An out-of-focus tile has little
//!   high-frequency energy: flagged when below `blur_min`.
//! - **Pen**: the fraction of pixels with an ink hue no stain gives: green (hue 75°–170°) or
//!   saturated blue (190°–235°, saturation > 0.5), with saturation > 0.25 and value > 0.1
//!   (HSV). Hematoxylin is violet-blue (≈ 240°–300°) and DAB brown (≈ 20°–40°), eosin pink.
//!   Flagged above `pen_max`.
//! - **Fold**: the fraction of dark saturated pixels (value < 0.35, saturation > 0.35):
//!   folded tissue is two layers thick. Flagged above `fold_max`.
//! - **Bubble**: the fraction of empty bright pixels (value > 0.94, saturation < 0.06) in a
//!   tile that the tissue mask calls tissue: air bubbles and torn areas under the coverslip.
//!   Flagged above `bright_max`.
//!
//! [`super::tiling::exclude_tiles`] measures every kept tile of a tiling and removes the
//! flagged ones.
//!
//! The defaults keep every tile of the demo cohort and of the real H&E and Ki-67 test slides
//! (measured: `tests/slide_qc.rs`); they are spec parameters of the `tile` stage.
//!
//! # Errors
//! [`SlideError::BadParam`] for a parameter out of range.
use super::error::{Result, SlideError};
use image::RgbImage;
use serde::{Deserialize, Serialize};

/// Thresholds of the per-tile QC flags.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QcParams {
    /// A tile is blurred when the variance of its Laplacian is below this (default 20; 0
    /// turns the check off).
    #[serde(default = "d_blur")]
    pub blur_min: f64,
    /// A tile has a pen mark when more than this fraction of its pixels has an ink hue
    /// (default 0.05; 1 turns the check off).
    #[serde(default = "d_pen")]
    pub pen_max: f64,
    /// A tile is folded when more than this fraction of its pixels is dark and saturated
    /// (default 0.5).
    #[serde(default = "d_fold")]
    pub fold_max: f64,
    /// A tile holds a bubble when more than this fraction of its pixels is empty and bright
    /// (default 0.8).
    #[serde(default = "d_bright")]
    pub bright_max: f64,
    /// The slide fails when fewer than this fraction of its tissue tiles pass QC (default 0.1).
    #[serde(default = "d_usable")]
    pub min_usable: f64,
}

fn d_blur() -> f64 {
    20.0
}
fn d_pen() -> f64 {
    0.05
}
fn d_fold() -> f64 {
    0.5
}
fn d_bright() -> f64 {
    0.8
}
fn d_usable() -> f64 {
    0.1
}

impl Default for QcParams {
    fn default() -> Self {
        QcParams {
            blur_min: d_blur(),
            pen_max: d_pen(),
            fold_max: d_fold(),
            bright_max: d_bright(),
            min_usable: d_usable(),
        }
    }
}

impl QcParams {
    /// Checks every parameter's range.
    ///
    /// # Errors
    /// [`SlideError::BadParam`] naming the parameter.
    pub fn check(&self) -> Result<()> {
        let r = |name: &str, v: f64, hi: f64| {
            if v.is_finite() && (0.0..=hi).contains(&v) {
                Ok(())
            } else {
                Err(SlideError::param(&format!("tile QC parameter {name}"), &format!("a number in [0, {hi}]"), v))
            }
        };
        r("blur_min", self.blur_min, 1e6)?;
        r("pen_max", self.pen_max, 1.0)?;
        r("fold_max", self.fold_max, 1.0)?;
        r("bright_max", self.bright_max, 1.0)?;
        r("min_usable", self.min_usable, 1.0)
    }
}

/// The QC measures of one tile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TileQc {
    /// Variance of the Laplacian of the grey image.
    pub blur: f64,
    /// Fraction of ink-hue pixels.
    pub pen: f64,
    /// Fraction of dark saturated pixels.
    pub fold: f64,
    /// Fraction of empty bright pixels.
    pub bright: f64,
}

/// Why a tile was excluded (the first failed check in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QcFlag {
    /// Too little detail.
    Blur,
    /// An ink mark.
    Pen,
    /// Folded tissue.
    Fold,
    /// An air bubble or empty area.
    Bubble,
}

impl QcFlag {
    /// Every flag, in check order.
    pub const ALL: [QcFlag; 4] = [QcFlag::Blur, QcFlag::Pen, QcFlag::Fold, QcFlag::Bubble];

    /// The name used in files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            QcFlag::Blur => "blur",
            QcFlag::Pen => "pen",
            QcFlag::Fold => "fold",
            QcFlag::Bubble => "bubble",
        }
    }

    /// The colour a flagged tile is outlined with on the QC overlay.
    pub fn colour(self) -> [u8; 3] {
        match self {
            QcFlag::Blur => [255, 140, 0],
            QcFlag::Pen => [230, 0, 230],
            QcFlag::Fold => [220, 20, 20],
            QcFlag::Bubble => [0, 190, 230],
        }
    }
}

/// HSV of an RGB pixel: hue in degrees [0, 360), saturation and value in [0, 1].
fn hsv(p: [u8; 3]) -> (f64, f64, f64) {
    let [r, g, b] = p.map(|c| c as f64 / 255.0);
    let (mx, mn) = (r.max(g).max(b), r.min(g).min(b));
    let d = mx - mn;
    let s = if mx > 0.0 { d / mx } else { 0.0 };
    let h = if d == 0.0 {
        0.0
    } else if mx == r {
        60.0 * ((g - b) / d).rem_euclid(6.0)
    } else if mx == g {
        60.0 * ((b - r) / d + 2.0)
    } else {
        60.0 * ((r - g) / d + 4.0)
    };
    (h, s, mx)
}

/// Measures one tile image.
pub fn measure_tile(img: &RgbImage) -> TileQc {
    let n = (img.width() as u64 * img.height() as u64).max(1) as f64;
    let (mut pen, mut fold, mut bright) = (0u64, 0u64, 0u64);
    for p in img.pixels() {
        let (h, s, v) = hsv(p.0);
        let green = (75.0..170.0).contains(&h);
        let blue = (190.0..235.0).contains(&h) && s > 0.5;
        if (green || blue) && s > 0.25 && v > 0.1 {
            pen += 1;
        }
        if v < 0.35 && s > 0.35 {
            fold += 1;
        }
        if v > 0.94 && s < 0.06 {
            bright += 1;
        }
    }
    let grey = image::imageops::grayscale(img);
    let lap = imageproc::filter::laplacian_filter(&grey);
    let (mut sum, mut sq) = (0f64, 0f64);
    for q in lap.pixels() {
        let x = q.0[0] as f64;
        sum += x;
        sq += x * x;
    }
    let mean = sum / n;
    TileQc {
        blur: (sq / n - mean * mean).max(0.0),
        pen: pen as f64 / n,
        fold: fold as f64 / n,
        bright: bright as f64 / n,
    }
}

/// The first check a tile fails, if any.
pub fn flag(q: &TileQc, p: &QcParams) -> Option<QcFlag> {
    if q.blur < p.blur_min {
        Some(QcFlag::Blur)
    } else if q.pen > p.pen_max {
        Some(QcFlag::Pen)
    } else if q.fold > p.fold_max {
        Some(QcFlag::Fold)
    } else if q.bright > p.bright_max {
        Some(QcFlag::Bubble)
    } else {
        None
    }
}

/// Tiles excluded per flag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QcCounts {
    pub blur: u64,
    pub pen: u64,
    pub fold: u64,
    pub bubble: u64,
}

impl QcCounts {
    /// Counts one flag.
    pub fn add(&mut self, f: QcFlag) {
        match f {
            QcFlag::Blur => self.blur += 1,
            QcFlag::Pen => self.pen += 1,
            QcFlag::Fold => self.fold += 1,
            QcFlag::Bubble => self.bubble += 1,
        }
    }
    /// All excluded tiles.
    pub fn total(&self) -> u64 {
        self.blur + self.pen + self.fold + self.bubble
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A sharp pink-and-purple checker of 4-px cells (tissue-like detail).
    fn sharp() -> RgbImage {
        RgbImage::from_fn(
            64,
            64,
            |x, y| if (x / 4 + y / 4) % 2 == 0 { Rgb([230, 150, 200]) } else { Rgb([120, 60, 160]) },
        )
    }

    #[test]
    fn flags_each_defect() {
        let p = QcParams::default();
        let q = measure_tile(&sharp());
        assert!(q.blur > 100.0 && q.pen == 0.0 && q.fold == 0.0 && q.bright == 0.0, "{q:?}");
        assert_eq!(flag(&q, &p), None);
        let blurred = image::imageops::blur(&sharp(), 6.0);
        assert_eq!(flag(&measure_tile(&blurred), &p), Some(QcFlag::Blur));
        let mut pen = sharp();
        for y in 20..30 {
            for x in 0..64 {
                pen.put_pixel(x, y, Rgb([30, 140, 60]));
            }
        }
        assert_eq!(flag(&measure_tile(&pen), &p), Some(QcFlag::Pen));
        let fold =
            RgbImage::from_fn(
                64,
                64,
                |x, y| if (x / 4 + y / 4) % 2 == 0 { Rgb([70, 20, 80]) } else { Rgb([40, 10, 60]) },
            );
        assert_eq!(flag(&measure_tile(&fold), &p), Some(QcFlag::Fold));
        let mut bubble = sharp();
        for y in 6..64 {
            for x in 0..64 {
                bubble.put_pixel(x, y, Rgb([250, 250, 250]));
            }
        }
        assert_eq!(flag(&measure_tile(&bubble), &QcParams { blur_min: 0.0, ..p }), Some(QcFlag::Bubble));
        assert!(QcParams { pen_max: 2.0, ..p }.check().is_err());
        assert!(QcParams { blur_min: f64::NAN, ..p }.check().is_err());
    }
}
