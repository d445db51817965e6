//! Slide metadata ([`SlideMeta`]) and the rules that turn vendor properties into a physical
//! pixel size.
//!
//! # Assumptions
//! - µm/px comes, in this order, from an explicit override, the vendor's calibrated value
//!   (`openslide.mpp-x/y`, OME `PhysicalSizeX/Y`), then the TIFF resolution tags
//!   (`XResolution`/`YResolution` with `ResolutionUnit` centimetre or inch). TIFF tags are only
//!   believed inside [`PLAUSIBLE_MPP`]: many writers store a meaningless 72 dpi
//!   (≈ 352.8 µm/px), which must not pass for a calibration.
//! - A slide whose pixel size cannot be established has `mpp_x = mpp_y = None`; the reader
//!   then refuses it (see [`crate::slide::SlideError::NoMpp`]).
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Range of µm/px accepted from TIFF resolution tags (0.05 µm/px is beyond any optical scanner;
/// 50 µm/px is coarser than any macro image worth tiling).
pub const PLAUSIBLE_MPP: (f64, f64) = (0.05, 50.0);

/// One pyramid level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelInfo {
    /// Width in pixels of this level.
    pub width: u64,
    /// Height in pixels of this level.
    pub height: u64,
    /// Level-0 pixels per pixel of this level (OpenSlide's definition: the mean of the x and y
    /// ratios).
    pub downsample: f64,
}

/// Where the physical pixel size came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MppSource {
    /// Given by the caller (manifest `mpp` column, `mpp_override`, `--mpp-override`).
    Override,
    /// The vendor's calibration (`openslide.mpp-x/y` or OME `PhysicalSizeX/Y`).
    Vendor,
    /// TIFF `XResolution`/`YResolution` tags.
    TiffResolution,
}

/// Everything Spatia records about a slide.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlideMeta {
    /// Path as given to [`crate::slide::Slide::open`].
    pub path: PathBuf,
    /// `aperio`, `hamamatsu`, `generic-tiff`, `ome-tiff`, … (OpenSlide's vendor names).
    pub vendor: String,
    /// Level-0 width in pixels.
    pub width: u64,
    /// Level-0 height in pixels.
    pub height: u64,
    /// Pyramid levels, finest first.
    pub levels: Vec<LevelInfo>,
    /// Level-0 µm/px along x (`None` only when unknown and not overridden).
    pub mpp_x: Option<f64>,
    /// Level-0 µm/px along y.
    pub mpp_y: Option<f64>,
    /// Where `mpp_x`/`mpp_y` came from.
    pub mpp_source: Option<MppSource>,
    /// Scanner objective magnification, when the file says.
    pub objective_power: Option<f64>,
    /// Names of associated images (`label`, `macro`, `thumbnail`, …), sorted.
    pub associated: Vec<String>,
    /// blake3 hex digest of the file's bytes; filled by [`crate::slide::Slide::digest`] callers
    /// (computing it reads the whole file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl SlideMeta {
    /// The level-0 µm/px as `(x, y)`; both are present on every opened slide.
    pub fn mpp(&self) -> Option<(f64, f64)> {
        Some((self.mpp_x?, self.mpp_y?))
    }
}

/// µm/px from TIFF resolution tags: `res` pixels per `unit` (2 = inch, 3 = centimetre).
/// `None` for any other unit, a non-positive value, or a result outside [`PLAUSIBLE_MPP`].
pub fn mpp_from_tiff_resolution(res: f64, unit: u16) -> Option<f64> {
    if !(res.is_finite() && res > 0.0) {
        return None;
    }
    let um_per_unit = match unit {
        2 => 25_400.0,
        3 => 10_000.0,
        _ => return None,
    };
    let mpp = um_per_unit / res;
    (PLAUSIBLE_MPP.0..=PLAUSIBLE_MPP.1).contains(&mpp).then_some(mpp)
}

/// Parses a number that must be finite and > 0.
pub(crate) fn positive(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiff_resolution_units() {
        // vips --xres 2000 (px/mm) is stored as 20000 px/cm
        assert!((mpp_from_tiff_resolution(20_000.0, 3).unwrap() - 0.5).abs() < 1e-12);
        // 50 800 dpi = 0.5 µm/px
        assert!((mpp_from_tiff_resolution(50_800.0, 2).unwrap() - 0.5).abs() < 1e-12);
        // 72 dpi stored in centimetres (boxes.tiff) is not a calibration
        assert_eq!(mpp_from_tiff_resolution(28.346_456_527_709_96, 3), None);
        assert_eq!(mpp_from_tiff_resolution(72.0, 2), None);
        // no unit
        assert_eq!(mpp_from_tiff_resolution(20_000.0, 1), None);
        assert_eq!(mpp_from_tiff_resolution(0.0, 3), None);
    }
}
