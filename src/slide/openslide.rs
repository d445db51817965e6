//! The OpenSlide backend (Debian's libopenslide 3.4.1 through `openslide-rs`): SVS (JPEG and
//! JPEG 2000), NDPI, MRXS, SCN, Ventana, Philips TIFF and generic tiled TIFF.
//!
//! One `openslide_t` handle is shared by all threads: OpenSlide's reading functions are
//! thread-safe (and `openslide-rs` marks its handle `Send + Sync`). Pixels come back as
//! premultiplied ARGB; they are composited over white here, so the transparent area outside a
//! scan reads as white, as on a glass slide.
use super::error::{Result, SlideError};
use super::meta::{mpp_from_tiff_resolution, positive, LevelInfo, MppSource};
use super::ometiff::TiffSlide;
use image::RgbImage;
use openslide_rs::{Address, OpenSlide, Region, Size};
use std::path::{Path, PathBuf};

/// A slide opened by OpenSlide.
#[derive(Debug)]
pub(crate) struct OsSlide {
    path: PathBuf,
    osr: OpenSlide,
    /// Pixel reader that bypasses OpenSlide for plain tiled TIFFs (see [`OsSlide::open`]).
    native: Option<TiffSlide>,
}

impl OsSlide {
    /// Opens `path`; `None` when OpenSlide does not recognise the format.
    ///
    /// For the plain tiled-TIFF vendors (`generic-tiff`, `aperio`), pixels are read by
    /// [`TiffSlide`] when every level maps onto a tiled directory it can decode (JPEG, LZW,
    /// Deflate, none): OpenSlide 3.4 composites every region through cairo/pixman and spends
    /// most of a read there, while the native path decodes tiles with `zune-jpeg` in parallel.
    /// Metadata always come from OpenSlide. `openslide_pixels` forces OpenSlide's reader.
    pub(crate) fn open(path: &Path, openslide_pixels: bool) -> Result<Option<OsSlide>> {
        if OpenSlide::detect_vendor(path).is_err() {
            return Ok(None);
        }
        match OpenSlide::new(path) {
            Ok(osr) => {
                let mut s = OsSlide { path: path.to_path_buf(), osr, native: None };
                if !openslide_pixels && matches!(s.vendor().as_str(), "generic-tiff" | "aperio") {
                    s.native = TiffSlide::for_levels(path, &s.levels());
                }
                Ok(Some(s))
            }
            Err(openslide_rs::errors::OpenSlideError::UnsupportedFile(_)) => Ok(None),
            Err(e) => Err(SlideError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("OpenSlide recognises the format but cannot open it: {e}"),
            }),
        }
    }

    fn prop(&self, name: &str) -> Option<String> {
        self.osr.property_value(name).ok()
    }

    pub(crate) fn vendor(&self) -> String {
        self.prop("openslide.vendor").unwrap_or_else(|| "unknown".into())
    }

    pub(crate) fn levels(&self) -> Vec<LevelInfo> {
        self.osr
            .all_level_dimensions()
            .iter()
            .zip(self.osr.all_level_downsamples())
            .map(|(s, &d)| LevelInfo { width: s.w as u64, height: s.h as u64, downsample: d })
            .collect()
    }

    /// µm/px from `openslide.mpp-x/y`, else from the TIFF resolution tags.
    pub(crate) fn mpp(&self) -> (Option<(f64, f64)>, Option<MppSource>) {
        let vendor = (
            self.prop("openslide.mpp-x").as_deref().and_then(positive),
            self.prop("openslide.mpp-y").as_deref().and_then(positive),
        );
        if let (Some(x), Some(y)) = vendor {
            return (Some((x, y)), Some(MppSource::Vendor));
        }
        let unit = match self.prop("tiff.ResolutionUnit").as_deref() {
            Some("centimeter") => 3,
            Some("inch") => 2,
            _ => 0,
        };
        let res = |k: &str| self.prop(k).as_deref().and_then(positive).and_then(|r| mpp_from_tiff_resolution(r, unit));
        match (res("tiff.XResolution"), res("tiff.YResolution")) {
            (Some(x), Some(y)) => (Some((x, y)), Some(MppSource::TiffResolution)),
            _ => (None, None),
        }
    }

    /// A short account of what the file holds instead of a calibration (for the error).
    pub(crate) fn resolution_note(&self) -> String {
        match (self.prop("tiff.XResolution"), self.prop("tiff.ResolutionUnit")) {
            (Some(x), Some(u)) => format!("; found only tiff.XResolution {x} per {u}"),
            _ => String::new(),
        }
    }

    pub(crate) fn objective_power(&self) -> Option<f64> {
        self.prop("openslide.objective-power").as_deref().and_then(positive)
    }

    /// `native-tiff` or `openslide`: who decodes the pixels.
    pub(crate) fn pixel_reader(&self) -> &'static str {
        if self.native.is_some() {
            "native-tiff"
        } else {
            "openslide"
        }
    }

    pub(crate) fn associated(&self) -> Vec<String> {
        let mut v = self.osr.associated_image_names().unwrap_or_default();
        v.sort();
        v
    }

    /// Reads `w`×`h` pixels of `level` at level-0 (`x0`, `y0`), composited over white.
    pub(crate) fn read_region(&self, level: usize, x0: i64, y0: i64, w: u32, h: u32) -> Result<RgbImage> {
        if let Some(n) = &self.native {
            return n.read_region(level, x0, y0, w, h);
        }
        let err = |detail: String| SlideError::Corrupt { path: self.path.clone(), detail };
        // openslide-rs takes unsigned addresses: read the part at x, y ≥ 0 and shift it.
        let (sx, sy) = ((-x0).max(0), (-y0).max(0));
        let ds = self.osr.all_level_downsamples().get(level).copied().unwrap_or(1.0);
        let (skip_x, skip_y) = ((sx as f64 / ds).ceil() as u32, (sy as f64 / ds).ceil() as u32);
        let mut out = RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
        if skip_x >= w || skip_y >= h {
            return Ok(out);
        }
        let (rw, rh) = (w - skip_x, h - skip_y);
        let region = Region {
            size: Size { w: rw, h: rh },
            level: level as u32,
            address: Address {
                x: u32::try_from(x0.max(0)).map_err(|_| err(format!("x {x0} out of range")))?,
                y: u32::try_from(y0.max(0)).map_err(|_| err(format!("y {y0} out of range")))?,
            },
        };
        let argb = self
            .osr
            .read_region(&region)
            .map_err(|e| err(format!("reading level {level} at ({x0}, {y0}) {w}×{h}: {e}")))?;
        let buf: &mut [u8] = &mut out;
        for (i, px) in argb.chunks_exact(4).enumerate() {
            // Premultiplied native-endian ARGB: over white is c + (255 - a).
            let v = u32::from_ne_bytes([px[0], px[1], px[2], px[3]]);
            let (a, r, g, b) = ((v >> 24) as u8, (v >> 16) as u8, (v >> 8) as u8, v as u8);
            let fill = 255 - a;
            let (x, y) = ((i as u32 % rw) + skip_x, (i as u32 / rw) + skip_y);
            let o = ((y * w + x) * 3) as usize;
            buf[o] = r.saturating_add(fill);
            buf[o + 1] = g.saturating_add(fill);
            buf[o + 2] = b.saturating_add(fill);
        }
        Ok(out)
    }
}
