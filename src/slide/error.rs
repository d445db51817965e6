//! The one error type of [`crate::slide`]: every failure names the slide (or the manifest row)
//! it concerns, says what was expected and what was found, and, where the user can fix it,
//! how.
use std::path::PathBuf;

/// Everything that can go wrong while reading, masking, tiling or deconvolving a slide.
#[derive(Debug, thiserror::Error)]
pub enum SlideError {
    /// The path does not exist.
    #[error("slide {path}: file not found")]
    Missing { path: PathBuf },

    /// The file exists but could not be read (permissions, I/O error).
    #[error("slide {path}: cannot read the file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Neither OpenSlide nor the OME-TIFF reader recognises the file.
    #[error(
        "slide {path}: not a whole-slide image that Spatia can read (expected an OpenSlide format \
         — SVS, NDPI, MRXS, SCN, tiled TIFF — or an OME-TIFF; {detail})"
    )]
    NotASlide { path: PathBuf, detail: String },

    /// The file is recognised but its content is damaged (truncated, bad tile, bad header).
    #[error("slide {path}: the file is damaged or truncated: {detail}")]
    Corrupt { path: PathBuf, detail: String },

    /// The slide carries no physical pixel size and no override was given.
    #[error(
        "slide {path}: no microns-per-pixel (µm/px) in the file (looked for openslide.mpp-x/y, \
         OME PhysicalSizeX/Y and TIFF resolution tags{found}); give one with the slide manifest's \
         `mpp` column, the stage's `mpp_override` parameter or `--mpp-override` on the command line"
    )]
    NoMpp { path: PathBuf, found: String },

    /// A parameter is out of its allowed range.
    #[error("{what}: expected {expected}, found {found}")]
    BadParam { what: String, expected: String, found: String },

    /// A level index or a region outside the slide.
    #[error("slide {path}: {detail}")]
    BadRegion { path: PathBuf, detail: String },

    /// Tissue detection found nothing.
    #[error(
        "slide {path}: no tissue found (the tissue mask is empty with {method}); check the slide \
         or lower the tissue thresholds"
    )]
    NoTissue { path: PathBuf, mask_mpp: f64, method: String },

    /// Tissue was found but no grid tile reaches the tissue-fraction threshold.
    #[error(
        "slide {path}: no tile of {size} px at {mpp} µm/px ({tile0} level-0 px) has a tissue \
         fraction ≥ {min_fraction} ({tissue_mm2:.4} mm² of tissue, slide {width}×{height} px)"
    )]
    NoTiles {
        path: PathBuf,
        size: u32,
        mpp: f64,
        tile0: u32,
        min_fraction: f64,
        tissue_mm2: f64,
        width: u64,
        height: u64,
    },

    /// An image (PNG, JPEG, TIFF) could not be decoded or written.
    #[error("image {path}: {detail}")]
    Image { path: PathBuf, detail: String },
}

/// Result alias of [`crate::slide`].
pub type Result<T> = std::result::Result<T, SlideError>;

impl SlideError {
    /// A [`SlideError::BadParam`] from displayable pieces.
    pub(crate) fn param(what: &str, expected: &str, found: impl std::fmt::Display) -> Self {
        SlideError::BadParam { what: what.to_string(), expected: expected.to_string(), found: found.to_string() }
    }
}
