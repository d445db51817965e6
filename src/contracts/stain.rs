//! The outputs of `stain` that others read: `stain.json` (the slide's DAB-positive index, read
//! by `train`'s `stain` modality and by the report) and `stain.csv` (per-tile measures).
//! The measures themselves are [`crate::slide::stain_map`]'s ([`SlideStain`], [`TileStain`]).
//!
//! # Format
//! - `stain.json` ([`StainSummary`]): pretty JSON, keys sorted, no final newline: `slide,
//!   stain, patient_id, index, tissue_pixels, positive_pixels, tiles, cols, rows, positivity`
//!   (row-major `rows × cols`, `null` where no tile was kept) and `params` (`dab_threshold`,
//!   `tissue_od`). An index that does not exist (no tissue pixel) is `null`.
//! - `stain.csv` ([`StainCsv`]): `col,row,mean_hematoxylin,mean_dab,dab_positive_fraction,
//!   tissue_pixels,positive_pixels`, one row per kept tile in the tiling's order.
//!
//! # Validation
//! `stain.json`: `positivity` has `rows × cols` cells; positive pixels ≤ tissue pixels; the
//! index (when present) in [0, 1]. `stain.csv`: grid positions are integers, fractions in
//! [0, 1], positive pixels ≤ tissue pixels. Errors name the file and the key, or the data row
//! and column.
use super::error::{indices, read_json, shown, write_csv, write_json, ContractError, Result};
use crate::slide::stain_map::{SlideStain, StainParams, TileStain};
use crate::slide::Stain;
use crate::survival::CsvTable;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The content of `stain.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StainSummary {
    /// The slide's item id.
    pub slide: String,
    pub stain: Stain,
    pub patient_id: String,
    /// DAB-positive tissue pixels / tissue pixels over all tiles (NaN without tissue pixels).
    #[serde(deserialize_with = "crate::util::f64_or_nan")]
    pub index: f64,
    pub tissue_pixels: u64,
    pub positive_pixels: u64,
    /// Kept tiles.
    pub tiles: usize,
    pub cols: u32,
    pub rows: u32,
    /// Row-major `rows × cols` DAB-positive fraction; `None` where no tile was kept.
    pub positivity: Vec<Option<f64>>,
    pub params: StainParams,
}

impl StainSummary {
    /// The file's name in a `stain` shard's directory.
    pub const FILE: &'static str = "stain.json";

    /// The summary of a slide's stain measures.
    pub fn new(slide: &str, stain: Stain, patient_id: &str, s: &SlideStain) -> StainSummary {
        StainSummary {
            slide: slide.to_string(),
            stain,
            patient_id: patient_id.to_string(),
            index: s.index,
            tissue_pixels: s.tissue_pixels,
            positive_pixels: s.positive_pixels,
            tiles: s.tiles.len(),
            cols: s.cols,
            rows: s.rows,
            positivity: s.positivity.clone(),
            params: s.params,
        }
    }

    /// Writes the file (checked first).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate(&shown(path))?;
        write_json(path, self, "")
    }

    /// Reads and checks the file.
    pub fn read(path: &Path) -> Result<StainSummary> {
        let s: StainSummary = read_json(path, "the stain summary written by `stain`")?;
        s.validate(&shown(path))?;
        Ok(s)
    }

    fn validate(&self, file: &str) -> Result<()> {
        let at = |at: &str, msg: String| ContractError::Json { file: file.to_string(), at: at.into(), msg };
        let cells = self.rows as usize * self.cols as usize;
        if self.positivity.len() != cells {
            let msg = format!(
                "expected {cells} cells ({} rows × {} columns), found {}",
                self.rows,
                self.cols,
                self.positivity.len()
            );
            return Err(at("positivity", msg));
        }
        if self.positive_pixels > self.tissue_pixels {
            let msg =
                format!("expected at most the {} tissue pixels, found {}", self.tissue_pixels, self.positive_pixels);
            return Err(at("positive_pixels", msg));
        }
        if !(self.index.is_nan() || (0.0..=1.0).contains(&self.index)) {
            return Err(at("index", format!("expected a fraction in [0, 1], found {}", self.index)));
        }
        Ok(())
    }
}

/// The content of `stain.csv`: one [`TileStain`] per kept tile.
#[derive(Debug, Clone, PartialEq)]
pub struct StainCsv {
    pub tiles: Vec<TileStain>,
}

const STAIN_CSV_HEADER: [&str; 7] =
    ["col", "row", "mean_hematoxylin", "mean_dab", "dab_positive_fraction", "tissue_pixels", "positive_pixels"];

impl StainCsv {
    /// The file's name in a `stain` shard's directory.
    pub const FILE: &'static str = "stain.csv";

    /// Writes the file (checked first).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate(&shown(path))?;
        let rows = self.tiles.iter().map(|t| {
            vec![
                t.col.to_string(),
                t.row.to_string(),
                t.mean_hematoxylin.to_string(),
                t.mean_dab.to_string(),
                t.dab_positive_fraction.to_string(),
                t.tissue_pixels.to_string(),
                t.positive_pixels.to_string(),
            ]
        });
        write_csv(path, &STAIN_CSV_HEADER, rows)
    }

    /// Reads and checks the file.
    pub fn read(path: &Path) -> Result<StainCsv> {
        let t = CsvTable::read(path)?;
        let file = t.file().to_string();
        let int = |column: &str| -> Result<Vec<u64>> {
            t.numeric(column)?
                .into_iter()
                .enumerate()
                .map(|(r, x)| {
                    if x >= 0.0 && x == x.trunc() && x < 2f64.powi(53) {
                        Ok(x as u64)
                    } else {
                        let msg = format!("expected a whole number >= 0, found {x}");
                        Err(ContractError::Row { file: file.clone(), row: r + 1, column: column.into(), msg })
                    }
                })
                .collect()
        };
        let (col, row) = (indices(&t, "col")?, indices(&t, "row")?);
        let (tissue, positive) = (int("tissue_pixels")?, int("positive_pixels")?);
        let (h, d, f) = (t.numeric("mean_hematoxylin")?, t.numeric("mean_dab")?, t.numeric("dab_positive_fraction")?);
        let mut tiles = Vec::with_capacity(t.len());
        for i in 0..t.len() {
            // indices are below 1e9 < 2^32
            let (c, r) = (col[i] as u32, row[i] as u32);
            tiles.push(TileStain {
                col: c,
                row: r,
                mean_hematoxylin: h[i],
                mean_dab: d[i],
                dab_positive_fraction: f[i],
                tissue_pixels: tissue[i],
                positive_pixels: positive[i],
            });
        }
        let s = StainCsv { tiles };
        s.validate(&file)?;
        Ok(s)
    }

    fn validate(&self, file: &str) -> Result<()> {
        for (i, t) in self.tiles.iter().enumerate() {
            let bad = |column: &str, msg: String| ContractError::Row {
                file: file.into(),
                row: i + 1,
                column: column.into(),
                msg,
            };
            if !(0.0..=1.0).contains(&t.dab_positive_fraction) {
                return Err(bad(
                    "dab_positive_fraction",
                    format!("expected a fraction in [0, 1], found {}", t.dab_positive_fraction),
                ));
            }
            if t.positive_pixels > t.tissue_pixels {
                let msg = format!(
                    "expected at most the tile's {} tissue pixels, found {}",
                    t.tissue_pixels, t.positive_pixels
                );
                return Err(bad("positive_pixels", msg));
            }
        }
        Ok(())
    }
}

/// The output directory of a `stain` shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StainOutput {
    dir: PathBuf,
}

impl super::Output for StainOutput {
    const KIND: &'static str = super::STAIN;
    fn at(dir: &Path) -> Self {
        StainOutput { dir: dir.to_path_buf() }
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
}

impl StainOutput {
    /// `stain.json`.
    pub fn summary(&self) -> Result<StainSummary> {
        StainSummary::read(&self.dir.join(StainSummary::FILE))
    }
    /// `stain.csv`.
    pub fn tiles(&self) -> Result<StainCsv> {
        StainCsv::read(&self.dir.join(StainCsv::FILE))
    }
    /// A file of the directory (`positivity.png`).
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}
