//! Feature extraction: turns tiles (RGB images) into feature vectors and stores a slide's
//! vectors as a *bag*, the input of every downstream model.
//!
//! The key type is the [`Encoder`] trait. Two implementations ship:
//! - [`handcrafted::Handcrafted`]: pure Rust, deterministic, no weights, 64 documented
//!   dimensions (colour, H-E-DAB optical density, texture, nuclei-density proxy);
//! - `torchscript::TorchScript` (cargo feature `torch`): any TorchScript model, run by the
//!   libtorch plugin (`torch_plugin`, crates/spatia-torch: tch / libtorch 2.11.0) opened on
//!   first use, with a caller-declared input [`transform::InputTransform`].
//!
//! [`bag`] reads and writes HDF5 bags in the layout CLAM and TRIDENT use (`features` N×D,
//! `coords` N×2 level-0 top-left) and validates bags that users bring. [`pipeline`] overlaps
//! tile reading/decoding (a pool of threads feeding a bounded queue) with encoding.
//!
//! This module never opens slides: tiles come from a caller-supplied closure (the `slide`
//! module provides the real reader) and nothing here knows about the orchestrator.
pub mod bag;
pub mod handcrafted;
pub mod pipeline;
#[cfg(feature = "torch")]
pub mod torch_plugin;
#[cfg(feature = "torch")]
pub mod torchscript;
pub mod transform;

use std::path::PathBuf;

/// An RGB tile, 8 bits per channel (the `image` crate's type).
pub type RgbImage = image::RgbImage;

/// Errors of feature extraction: bags, encoders, the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// An HDF5 call failed on a file.
    #[error("{path}: HDF5 error while {action}: {source}")]
    Hdf5 {
        /// The bag file.
        path: PathBuf,
        /// What was being done ("reading dataset `features`").
        action: String,
        /// The library's error.
        source: hdf5_metno::Error,
    },
    /// A bag's content does not satisfy the layout or the checks.
    #[error("{path}: {message}")]
    InvalidBag {
        /// The bag file.
        path: PathBuf,
        /// What was expected and what was found.
        message: String,
    },
    /// Bags of one cohort disagree on the feature dimension.
    #[error("{path}: feature dimension {found} differs from {expected} of {first}")]
    DimensionMismatch {
        /// The offending bag.
        path: PathBuf,
        /// Its dimension.
        found: usize,
        /// The dimension of the first bag.
        expected: usize,
        /// The first bag of the cohort.
        first: PathBuf,
    },
    /// A caller passed an invalid argument (an empty tile, a zero batch size…).
    #[error("{0}")]
    InvalidInput(String),
    /// Reading or decoding one tile failed.
    #[error("tile {index}: {message}")]
    Tile {
        /// The tile's position in the input sequence.
        index: usize,
        /// The reader's message.
        message: String,
    },
    /// The encoder failed (model load, forward pass, unexpected output shape).
    #[error("encoder {encoder}: {message}")]
    Encoder {
        /// The encoder's name.
        encoder: String,
        /// What went wrong.
        message: String,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A tile after the encoder's CPU-side preparation, ready to be batched.
///
/// For the handcrafted encoder this is already the feature vector ([`Prepared::F32`]); for
/// TorchScript it is the tile resized to the model's input, 8-bit RGB in HWC order
/// ([`Prepared::U8`]), normalised by the plugin (on the model's device).
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    /// Float values (the handcrafted encoder's features).
    F32(Vec<f32>),
    /// 8-bit values (a resized RGB tile, HWC).
    U8(Vec<u8>),
}

/// A batch handed to an encoder whose features are not read yet ([`Encoder::submit`]); calling
/// it waits for them. Dropping it unread waits for the batch too.
pub type Pending<'a> = Box<dyn FnOnce() -> Result<Vec<Vec<f32>>, FeatureError> + 'a>;

/// Turns tiles into fixed-length feature vectors.
///
/// Work is split in two so that the [`pipeline`] can overlap them: [`Encoder::prepare`] runs on
/// the pipeline's worker threads, one tile at a time (decode-side CPU work: resize,
/// normalisation, or the whole handcrafted computation); [`Encoder::encode_prepared`] runs on
/// one thread with a whole batch (the model's forward pass). An encoder on an asynchronous
/// device also implements [`Encoder::submit`], and says by [`Encoder::in_flight`] how many
/// batches the pipeline should keep submitted before it waits for the oldest.
pub trait Encoder: Send + Sync {
    /// Short name written into bags (`handcrafted`, `torchscript:resnet18.pt`).
    fn name(&self) -> String;
    /// Hex digest identifying everything that changes the output (version, weights, transform).
    fn digest(&self) -> String;
    /// Output dimension D.
    fn dim(&self) -> usize;
    /// Per-tile CPU preparation; runs on worker threads, must be deterministic.
    fn prepare(&self, tile: &RgbImage) -> Result<Prepared, FeatureError>;
    /// Encodes a batch of prepared tiles; returns one D-vector per tile, in order.
    fn encode_prepared(&self, batch: &[Prepared]) -> Result<Vec<Vec<f32>>, FeatureError>;
    /// Hands a batch to the encoder and returns its pending features. The default computes the
    /// batch now ([`Encoder::encode_prepared`]); a GPU encoder queues it and returns at once.
    fn submit<'a>(&'a self, batch: Vec<Prepared>) -> Result<Pending<'a>, FeatureError> {
        let out = self.encode_prepared(&batch)?;
        Ok(Box::new(move || Ok(out)))
    }
    /// Batches the pipeline keeps submitted before waiting for the oldest (≥ 1; 1 for an encoder
    /// whose `submit` computes the batch).
    fn in_flight(&self) -> usize {
        1
    }
    /// Convenience: prepare and encode a batch of tiles on the calling thread.
    fn encode_batch(&self, tiles: &[RgbImage]) -> Result<Vec<Vec<f32>>, FeatureError> {
        let prepared = tiles.iter().map(|t| self.prepare(t)).collect::<Result<Vec<_>, _>>()?;
        self.encode_prepared(&prepared)
    }
}
