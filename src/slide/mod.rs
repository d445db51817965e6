//! Whole-slide images: the [`Slide`] reader (OpenSlide formats and a pure-Rust OME-TIFF/TIFF
//! path), tissue detection ([`tissue`]), tiling at a physical resolution ([`tiling`]),
//! Ruifrok–Johnston colour deconvolution ([`hed`]), per-tile and per-slide stain measures
//! ([`stain_map`]) and the study's stains ([`Stain`]); slide manifests are cohort logic
//! ([`crate::cohort::manifest`]).
//!
//! Key type: [`Slide`], a cheap-to-clone, thread-safe handle; `read_region` takes level-0
//! coordinates like OpenSlide and returns RGB with everything outside the scan white.
//!
//! Typical use by a stage:
//! ```no_run
//! use spatia::slide::{Slide, Stain, tissue::{TissueParams, detect_tissue},
//!                     tiling::{TileParams, tile_slide, for_each_tile_batch}};
//! let slide = Slide::open("a.svs", None)?;
//! let mask = detect_tissue(&slide, &TissueParams::for_stain(Stain::HE))?;
//! let tiling = tile_slide(&slide, &mask, &TileParams::new(0.5, 256))?;
//! for_each_tile_batch(&slide, &tiling, 64, |tiles, images| {
//!     // feed `images` (RGB, 256×256) to an encoder
//!     Ok(())
//! })?;
//! # Ok::<(), spatia::slide::SlideError>(())
//! ```
//!
//! **Invariant:** only this module reads slide bytes; it knows nothing about the orchestrator,
//! caches or stage keys.
//!
//! **Invariant:** label and macro images (they carry patient names) never leave the slide: only
//! pyramid levels are read (OpenSlide levels; TIFF directories whose description names a label
//! or macro are never taken as levels), of associated images only their names are listed, and
//! no vendor property text is copied into any output.
pub mod cli;
pub mod error;
pub mod hed;
pub mod meta;
pub mod moran;
pub mod nuclei;
mod ometiff;
mod openslide;
pub mod qc;
pub mod stain;
pub mod stain_map;
pub mod tiling;
pub mod tissue;

pub use error::{Result, SlideError};
pub use meta::{LevelInfo, MppSource, SlideMeta};
pub use stain::Stain;

use image::RgbImage;
use ometiff::TiffSlide;
use openslide::OsSlide;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Options of [`Slide::open_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OpenOptions {
    /// µm/px of level 0, overriding the file's.
    pub mpp_override: Option<f64>,
    /// Decode pixels with OpenSlide even where the native tiled-TIFF reader could (for
    /// comparisons; slower).
    pub openslide_pixels: bool,
}

/// An open whole-slide image. Clones share one underlying handle; every method takes `&self`
/// and may be called from many threads at once.
#[derive(Clone, Debug)]
pub struct Slide {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    meta: SlideMeta,
    backend: Backend,
    digest: OnceLock<String>,
}

#[derive(Debug)]
enum Backend {
    OpenSlide(Box<OsSlide>),
    Tiff(TiffSlide),
}

impl Slide {
    /// Opens a slide for analysis: its µm/px must be known, from the file or from
    /// `mpp_override` (which wins over the file when given).
    ///
    /// # Errors
    /// [`SlideError::Missing`], [`SlideError::NotASlide`], [`SlideError::Corrupt`] (truncated or
    /// damaged file), [`SlideError::NoMpp`] (no pixel size and no override),
    /// [`SlideError::BadParam`] (override not a positive number).
    pub fn open(path: impl AsRef<Path>, mpp_override: Option<f64>) -> Result<Slide> {
        Slide::open_with(path, &OpenOptions { mpp_override, ..OpenOptions::default() })
    }

    /// [`Slide::open`] with all options.
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Slide> {
        let path = path.as_ref();
        let mpp_override = options.mpp_override;
        if let Some(m) = mpp_override {
            if !(m.is_finite() && m > 0.0) {
                return Err(SlideError::param(
                    &format!("mpp override for slide {}", path.display()),
                    "a positive number of µm per pixel",
                    m,
                ));
            }
        }
        let slide = Slide::inspect_with(path, options.openslide_pixels, mpp_override)?;
        if slide.inner.meta.mpp().is_none() {
            let found = match &slide.inner.backend {
                Backend::OpenSlide(o) => o.resolution_note(),
                Backend::Tiff(_) => String::new(),
            };
            return Err(SlideError::NoMpp { path: path.to_path_buf(), found });
        }
        Ok(slide)
    }

    /// Opens a slide without demanding a pixel size (for `slide info` and validation reports);
    /// `meta().mpp_x` is then `None` when the file has none.
    pub fn inspect(path: impl AsRef<Path>) -> Result<Slide> {
        Slide::inspect_with(path.as_ref(), false, None)
    }

    fn inspect_with(path: &Path, openslide_pixels: bool, mpp_override: Option<f64>) -> Result<Slide> {
        let md = std::fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                SlideError::Missing { path: path.to_path_buf() }
            } else {
                SlideError::Io { path: path.to_path_buf(), source: e }
            }
        })?;
        if !md.is_file() {
            return Err(SlideError::NotASlide { path: path.to_path_buf(), detail: "it is not a regular file".into() });
        }
        if let Err(e) = std::fs::File::open(path) {
            return Err(SlideError::Io { path: path.to_path_buf(), source: e });
        }
        let is_tiff = ometiff::is_tiff(path);
        if is_tiff {
            // OpenSlide opens truncated TIFFs and fails only on the missing tiles: check every
            // tag value and chunk against the file size up front.
            ometiff::check_tiff_extents(path)?;
        }
        let backend = if ometiff::is_ome_tiff(path) {
            Backend::Tiff(TiffSlide::open(path)?)
        } else if let Some(o) = OsSlide::open(path, openslide_pixels)? {
            Backend::OpenSlide(Box::new(o))
        } else if is_tiff {
            Backend::Tiff(TiffSlide::open(path)?)
        } else {
            return Err(SlideError::NotASlide {
                path: path.to_path_buf(),
                detail: "OpenSlide does not recognise the format and it is not a TIFF".into(),
            });
        };
        let mut meta = build_meta(path, &backend);
        if let Some(m) = mpp_override {
            meta.mpp_x = Some(m);
            meta.mpp_y = Some(m);
            meta.mpp_source = Some(MppSource::Override);
        }
        if meta.levels.is_empty() || meta.width == 0 || meta.height == 0 {
            return Err(SlideError::Corrupt { path: path.to_path_buf(), detail: "the slide has no pixels".into() });
        }
        let slide = Slide { inner: Arc::new(Inner { meta, backend, digest: OnceLock::new() }) };
        slide.smoke_read()?;
        Ok(slide)
    }

    /// Reads a corner of the coarsest level, so that an undecodable file fails at open.
    fn smoke_read(&self) -> Result<()> {
        let last = self.inner.meta.levels.len() - 1;
        let l = &self.inner.meta.levels[last];
        let (w, h) = (l.width.min(64) as u32, l.height.min(64) as u32);
        self.read_region(last, 0, 0, w, h).map(|_| ())
    }

    /// The slide's metadata (digest not included; see [`Slide::meta_with_digest`]).
    pub fn meta(&self) -> &SlideMeta {
        &self.inner.meta
    }

    /// The metadata with the content digest filled in (reads the whole file once).
    pub fn meta_with_digest(&self) -> Result<SlideMeta> {
        let mut m = self.inner.meta.clone();
        m.digest = Some(self.digest()?);
        Ok(m)
    }

    /// Who decodes the pixels: `openslide`, `native-tiff` (a plain tiled TIFF that OpenSlide
    /// described, decoded here) or `ome-tiff`/`tiff` (the pure-Rust reader).
    pub fn pixel_reader(&self) -> &'static str {
        match &self.inner.backend {
            Backend::OpenSlide(o) => o.pixel_reader(),
            Backend::Tiff(t) => t.vendor(),
        }
    }

    /// The path the slide was opened from.
    pub fn path(&self) -> &Path {
        &self.inner.meta.path
    }

    /// Level-0 µm/px `(x, y)`.
    ///
    /// # Errors
    /// [`SlideError::NoMpp`] for a slide opened with [`Slide::inspect`] that has none.
    pub fn mpp(&self) -> Result<(f64, f64)> {
        self.inner.meta.mpp().ok_or_else(|| SlideError::NoMpp { path: self.path().to_path_buf(), found: String::new() })
    }

    /// Number of pyramid levels.
    pub fn level_count(&self) -> usize {
        self.inner.meta.levels.len()
    }

    /// The coarsest level whose downsample is ≤ `downsample` (level 0 if none is).
    pub fn best_level_for_downsample(&self, downsample: f64) -> usize {
        let mut best = 0;
        for (i, l) in self.inner.meta.levels.iter().enumerate() {
            if l.downsample <= downsample * (1.0 + 1e-3) && l.downsample >= self.inner.meta.levels[best].downsample {
                best = i;
            }
        }
        best
    }

    /// blake3 hex digest of the file's bytes (computed once per handle, memory-mapped and
    /// multi-threaded).
    pub fn digest(&self) -> Result<String> {
        if let Some(d) = self.inner.digest.get() {
            return Ok(d.clone());
        }
        let d = file_digest(self.path())?;
        Ok(self.inner.digest.get_or_init(|| d).clone())
    }

    /// Reads `w`×`h` pixels of `level`, whose top-left corner is (`x0`, `y0`) in level-0
    /// coordinates (OpenSlide's convention). Pixels outside the slide, or transparent, are
    /// white.
    ///
    /// # Errors
    /// [`SlideError::BadRegion`] for a level that does not exist or an empty/huge region;
    /// [`SlideError::Corrupt`] when the data cannot be decoded.
    pub fn read_region(&self, level: usize, x0: i64, y0: i64, w: u32, h: u32) -> Result<RgbImage> {
        let n = self.level_count();
        if level >= n {
            return Err(SlideError::BadRegion {
                path: self.path().to_path_buf(),
                detail: format!("level {level} does not exist (the slide has {n} levels)"),
            });
        }
        if w == 0 || h == 0 || (w as u64) * (h as u64) > (1 << 28) {
            return Err(SlideError::BadRegion {
                path: self.path().to_path_buf(),
                detail: format!("region {w}×{h} must be non-empty and at most 2^28 pixels"),
            });
        }
        match &self.inner.backend {
            Backend::OpenSlide(o) => o.read_region(level, x0, y0, w, h),
            Backend::Tiff(t) => t.read_region(level, x0, y0, w, h),
        }
    }
}

/// Reads an image for `spatia stain hed`: PNG or JPEG through `image`; TIFF, OME-TIFF or any
/// slide through [`Slide`] (level 0, at most `max_pixels`); any other file the `image` crate
/// recognises by content.
pub fn load_rgb(path: &Path, max_pixels: u64) -> Result<RgbImage> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if matches!(ext.as_str(), "png" | "jpg" | "jpeg") {
        let img = image::open(path).map_err(|e| SlideError::Image {
            path: path.to_path_buf(),
            detail: format!("cannot decode as {ext}: {e}"),
        })?;
        return Ok(img.to_rgb8());
    }
    let slide = match Slide::inspect(path) {
        Ok(s) => s,
        // Another raster format the `image` crate knows (BMP, WebP, …, by content).
        Err(e @ SlideError::NotASlide { .. }) => {
            return image::ImageReader::open(path)
                .ok()
                .and_then(|r| r.with_guessed_format().ok())
                .and_then(|r| r.decode().ok())
                .map(|i| i.to_rgb8())
                .ok_or(e)
        }
        Err(e) => return Err(e),
    };
    let (w, h) = (slide.meta().width, slide.meta().height);
    if w * h > max_pixels {
        return Err(SlideError::Image {
            path: path.to_path_buf(),
            detail: format!(
                "level 0 is {w}×{h} px, more than the {max_pixels} px read whole; tile the slide \
                 (`spatia slide tiles`) and measure tiles instead"
            ),
        });
    }
    slide.read_region(0, 0, 0, w as u32, h as u32)
}

/// blake3 of a file, memory-mapped and hashed on the rayon pool.
pub fn file_digest(path: &Path) -> Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_mmap_rayon(path).map_err(|e| SlideError::Io { path: path.to_path_buf(), source: e })?;
    Ok(h.finalize().to_hex().to_string())
}

fn build_meta(path: &Path, backend: &Backend) -> SlideMeta {
    let (vendor, levels, (mpp, src), objective_power, associated) = match backend {
        Backend::OpenSlide(o) => (o.vendor(), o.levels(), o.mpp(), o.objective_power(), o.associated()),
        Backend::Tiff(t) => (t.vendor().to_string(), t.levels(), t.mpp(), t.objective_power(), Vec::new()),
    };
    let (width, height) = levels.first().map(|l| (l.width, l.height)).unwrap_or((0, 0));
    SlideMeta {
        path: PathBuf::from(path),
        vendor,
        width,
        height,
        levels,
        mpp_x: mpp.map(|m| m.0),
        mpp_y: mpp.map(|m| m.1),
        mpp_source: src,
        objective_power,
        associated,
        digest: None,
    }
}
