//! `figures/figures.json` (written by the `report` stage; read by `spatia figure` and by the
//! stage itself for the spec's declared `figures`) — a file of the report's own, with its one
//! type here rather than in `contracts` (which the report module reads from): every figure the report can draw — the page's and every
//! other arm's — as the data it was drawn from, so that a figure can be drawn again at any size
//! and in any format from the recorded outputs only, by the renderer the page uses
//! ([`crate::report::plots`]).
//!
//! # Format
//! A JSON object, keys sorted, [`SCHEMA`] in `"schema"`, a final newline: `report` (the report
//! node's key), `time` (`{"data", "display"}`: the cohort's time unit and the figures'),
//! `arm` (the page's main arm), `figures` (a list of [`Figure`]: `name, title, arm, horizon, on_page, sources, data`, `data`
//! tagged by `kind`: `km`, `roc`, `calibration`, `forest`, `cif`, `training`). Non-finite numbers
//! (an undefined CI limit) are `null`.
//!
//! # Validation
//! The schema; figure names unique and non-empty.
use crate::contracts::error::{read_json, shown, write_json, ContractError, Result};
use crate::report::plots::{Figure, TimeAxis};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Version of `figures.json`.
pub const SCHEMA: u32 = 1;
/// Its path inside the report's output directory.
pub const FILE: &str = "figures/figures.json";

/// The content of `figures.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiguresJson {
    pub schema: u32,
    /// The report node's key.
    pub report: String,
    /// Time units.
    pub time: TimeAxis,
    /// The arm of the page's main figures (`spatia figure` draws its figures by default).
    #[serde(default)]
    pub arm: Option<String>,
    pub figures: Vec<Figure>,
}

impl FiguresJson {
    /// Path of the file in a report output directory.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |msg: String| ContractError::Invalid { file: shown(path), msg };
        if self.schema != SCHEMA {
            return Err(bad(format!("expected schema {SCHEMA}, found {}", self.schema)));
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &self.figures {
            if f.name.is_empty() {
                return Err(bad("expected every figure to have a name, found an empty one".into()));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(bad(format!("expected unique figure names, found {:?} twice", f.name)));
            }
        }
        Ok(())
    }

    /// Writes the file (validated first).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate(path)?;
        write_json(path, self, "\n")
    }

    /// Reads and validates the file.
    pub fn read(path: &Path) -> Result<FiguresJson> {
        let f: FiguresJson = read_json(path, "the report's figures.json")?;
        f.validate(path)?;
        Ok(f)
    }
}
