//! The outputs of `extract` that others read: `features.h5` (one slide's feature bag, read by
//! `train`'s image modalities) and `extract.json` (what was extracted, for people and checks).
//! The bag's format is [`crate::features::bag`]'s ([`Bag`]: CLAM/TRIDENT-compatible HDF5), which
//! writes and reads it; this contract reads it through the bag's own checks.
//!
//! # Format
//! - `features.h5`: datasets `features` (N × D, float32 or float16) and `coords` (N × 2 level-0
//!   top-left corners, int64) with the bag's attributes ([`crate::features::bag::BagMeta`]).
//! - `extract.json` ([`ExtractSummary`]): pretty JSON, keys sorted, no final newline: `slide,
//!   tiles, dim` and either `encoder, encoder_digest` (features computed here) or `encoder:
//!   "precomputed", source_encoder` (a bag given by the manifest's `features` column; `null`
//!   when it names no encoder).
//!
//! # Validation
//! `features.h5`: the layout (datasets present, 2-D, row counts agree), at least one tile and
//! one feature, every feature finite, coordinates ≥ 0. `extract.json`: `tiles` ≥ 1 and `dim`
//! ≥ 1. Errors name the file and what was expected.
use super::error::{read_json, shown, write_json, ContractError, Result};
use crate::features::FeatureError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use crate::features::bag::{Bag, BagMeta, Precision};

/// `features.h5`.
pub const FEATURES_H5: &str = "features.h5";

fn bag_error(path: &Path, e: FeatureError) -> ContractError {
    let msg = match e {
        FeatureError::InvalidBag { message, .. } => message,
        FeatureError::Hdf5 { action, source, .. } => format!("HDF5 error while {action}: {source}"),
        other => other.to_string(),
    };
    ContractError::Invalid { file: shown(path), msg }
}

/// Reads and checks a slide's bag (layout and values; the slide's size is not known here).
pub fn read_features(path: &Path) -> Result<Bag> {
    let bag = Bag::read(path).map_err(|e| bag_error(path, e))?;
    bag.validate(path, None).map_err(|e| bag_error(path, e))?;
    Ok(bag)
}

/// The content of `extract.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExtractSummary {
    /// Features computed by an encoder.
    Encoded {
        /// The slide's item id.
        slide: String,
        tiles: usize,
        dim: usize,
        /// The encoder's name.
        encoder: String,
        /// The encoder's digest (weights and preprocessing).
        encoder_digest: String,
    },
    /// A bag given by the manifest, checked and copied.
    Precomputed {
        slide: String,
        tiles: usize,
        dim: usize,
        /// `precomputed`.
        encoder: String,
        /// The encoder the bag names, if any.
        source_encoder: Option<String>,
    },
}

impl ExtractSummary {
    /// The file's name in an `extract` shard's directory.
    pub const FILE: &'static str = "extract.json";

    /// The summary of a bag copied from the manifest.
    pub fn precomputed(slide: &str, bag: &Bag) -> ExtractSummary {
        ExtractSummary::Precomputed {
            slide: slide.to_string(),
            tiles: bag.len(),
            dim: bag.dim(),
            encoder: "precomputed".into(),
            source_encoder: bag.meta.encoder.clone(),
        }
    }

    /// The summary of a bag computed by `encoder` (name, digest).
    pub fn encoded(slide: &str, bag: &Bag, encoder: &str, digest: &str) -> ExtractSummary {
        ExtractSummary::Encoded {
            slide: slide.to_string(),
            tiles: bag.len(),
            dim: bag.dim(),
            encoder: encoder.to_string(),
            encoder_digest: digest.to_string(),
        }
    }

    fn counts(&self) -> (usize, usize) {
        match self {
            ExtractSummary::Encoded { tiles, dim, .. } | ExtractSummary::Precomputed { tiles, dim, .. } => {
                (*tiles, *dim)
            }
        }
    }

    /// Writes the file (checked first).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate(&shown(path))?;
        write_json(path, self, "")
    }

    /// Reads and checks the file.
    pub fn read(path: &Path) -> Result<ExtractSummary> {
        let s: ExtractSummary = read_json(path, "the summary written by `extract`")?;
        s.validate(&shown(path))?;
        Ok(s)
    }

    fn validate(&self, file: &str) -> Result<()> {
        let (tiles, dim) = self.counts();
        for (k, v) in [("tiles", tiles), ("dim", dim)] {
            if v == 0 {
                return Err(ContractError::Json {
                    file: file.to_string(),
                    at: k.into(),
                    msg: "expected at least 1, found 0".into(),
                });
            }
        }
        Ok(())
    }
}

/// The output directory of an `extract` shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractOutput {
    dir: PathBuf,
}

impl super::Output for ExtractOutput {
    const KIND: &'static str = super::EXTRACT;
    fn at(dir: &Path) -> Self {
        ExtractOutput { dir: dir.to_path_buf() }
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
}

impl ExtractOutput {
    /// The path of `features.h5`.
    pub fn features_path(&self) -> PathBuf {
        self.dir.join(FEATURES_H5)
    }
    /// `features.h5`, read and checked.
    pub fn features(&self) -> Result<Bag> {
        read_features(&self.features_path())
    }
    /// `extract.json`.
    pub fn summary(&self) -> Result<ExtractSummary> {
        ExtractSummary::read(&self.dir.join(ExtractSummary::FILE))
    }
}
