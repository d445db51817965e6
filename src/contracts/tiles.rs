//! The outputs of `tile` that others read: `tiling.json` (read by `stain` and `extract`) and
//! `qc.json` (read by the report). The domain types are [`crate::slide::tiling`]'s ([`Tiling`],
//! [`QcSummary`]), which also writes `qc.json`, `tiles.csv` and the QC images
//! ([`crate::slide::tiling::write_qc`]); this contract reads and checks them.
//!
//! # Format
//! - `tiling.json`: the [`Tiling`] as compact JSON in field order, no final newline; the slide
//!   named by its id, never by a path.
//! - `qc.json`: the [`QcSummary`] as pretty JSON in field order, a final newline.
//! - `tiles.csv` (for people; no stage reads it): `x,y,col,row,tissue`, one row per kept tile.
//!
//! # Validation
//! `tiling.json`: µm/px finite and > 0, tile sides > 0, every tile inside the grid with a
//! tissue fraction in [0, 1]. `qc.json`: no more kept tiles than grid cells, a tissue area
//! finite and ≥ 0. Errors name the file and the offending key.
use super::error::{read_json, shown, ContractError, Result};
use std::path::{Path, PathBuf};

pub use crate::slide::tiling::{QcSummary, Tile, Tiling};

/// `tiling.json`.
pub const TILING_JSON: &str = "tiling.json";
/// `qc.json`.
pub const QC_JSON: &str = "qc.json";
/// `tiles.csv`.
pub const TILES_CSV: &str = "tiles.csv";

/// The output directory of a `tile` shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileOutput {
    dir: PathBuf,
}

impl super::Output for TileOutput {
    const KIND: &'static str = super::TILE;
    fn at(dir: &Path) -> Self {
        TileOutput { dir: dir.to_path_buf() }
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
}

impl TileOutput {
    /// Whether the directory holds a tiling (a `tile` shard's output).
    pub fn exists(&self) -> bool {
        self.dir.join(TILING_JSON).is_file()
    }
    /// `tiling.json`.
    pub fn tiling(&self) -> Result<Tiling> {
        read_tiling(&self.dir.join(TILING_JSON))
    }
    /// `qc.json`.
    pub fn qc(&self) -> Result<QcSummary> {
        read_qc(&self.dir.join(QC_JSON))
    }
    /// A file of the directory (the QC images: `thumbnail.png`, `mask.png`, `overlay.png`).
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

/// Writes `tiling.json` (checked first).
pub fn write_tiling(path: &Path, t: &Tiling) -> Result<()> {
    check_tiling(t, &shown(path))?;
    let text = serde_json::to_string(t)
        .map_err(|e| ContractError::Invalid { file: shown(path), msg: format!("cannot encode: {e}") })?;
    std::fs::write(path, text).map_err(|source| ContractError::Io { file: shown(path), action: "cannot write", source })
}

/// Reads and checks `tiling.json`.
pub fn read_tiling(path: &Path) -> Result<Tiling> {
    let t: Tiling = read_json(path, "a tiling written by `tile`")?;
    check_tiling(&t, &shown(path))?;
    Ok(t)
}

fn check_tiling(t: &Tiling, file: &str) -> Result<()> {
    let at = |at: String, msg: String| ContractError::Json { file: file.to_string(), at, msg };
    if !(t.mpp.is_finite() && t.mpp > 0.0) {
        return Err(at("mpp".into(), format!("expected a finite µm/px > 0, found {}", t.mpp)));
    }
    for (k, v) in [("size", t.size), ("tile_size_level0", t.tile_size_level0), ("read_size", t.read_size)] {
        if v == 0 {
            return Err(at(k.into(), "expected a tile side > 0, found 0".into()));
        }
    }
    for (i, tile) in t.tiles.iter().enumerate() {
        if tile.col >= t.cols || tile.row >= t.rows {
            let msg = format!(
                "expected a cell of the {} × {} grid, found column {} row {}",
                t.cols, t.rows, tile.col, tile.row
            );
            return Err(at(format!("tiles[{i}]"), msg));
        }
        if !(0.0..=1.0).contains(&tile.tissue) {
            return Err(at(
                format!("tiles[{i}].tissue"),
                format!("expected a fraction in [0, 1], found {}", tile.tissue),
            ));
        }
    }
    Ok(())
}

/// Reads and checks `qc.json`.
pub fn read_qc(path: &Path) -> Result<QcSummary> {
    let q: QcSummary = read_json(path, "the QC summary written by `tile`")?;
    let at = |at: &str, msg: String| ContractError::Json { file: shown(path), at: at.into(), msg };
    if q.tiles as u64 > q.grid_tiles {
        return Err(at("tiles", format!("expected at most the {} grid cells, found {}", q.grid_tiles, q.tiles)));
    }
    if !(q.tissue_area_mm2.is_finite() && q.tissue_area_mm2 >= 0.0) {
        return Err(at("tissue_area_mm2", format!("expected a finite area >= 0, found {}", q.tissue_area_mm2)));
    }
    Ok(q)
}
