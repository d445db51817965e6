//! The outputs of `stain` that others read: `stain.json` (the slide's DAB-positive pixel index
//! and nuclear scores, read by `train`'s `stain` modality and by the report) and `stain.csv`
//! (per-tile measures). The measures themselves are [`crate::slide::stain_map`]'s
//! ([`SlideStain`], [`TileStain`]) and [`crate::slide::nuclei`]'s ([`SlideNuclei`],
//! [`TileNuclei`]).
//!
//! # Format
//! - `stain.json` ([`StainSummary`]): pretty JSON, keys sorted, no final newline: `slide,
//!   stain, patient_id, index, tissue_pixels, positive_pixels, tiles, cols, rows, positivity`
//!   (row-major `rows × cols`, `null` where no tile was kept) and `params` (`dab_threshold`,
//!   `tissue_od`). An index that does not exist (no tissue pixel) is `null`. Nuclear scores:
//!   `nuclei`, `positive_nuclei`, `labelling_index` (positive / all, `null` without nuclei),
//!   `hotspot_index` (the highest labelling index over windows of `hotspot_area_mm2` holding at
//!   least `hotspot_min_nuclei` nuclei, `null` when no window does), `hotspot_windows`,
//!   `h_score` (0–300, ER and PR only, else `null`), the grids `labelling_grid` (per tile
//!   positive / all nuclei, `null` where no tile or no nucleus) and `nuclei_grid` (per tile
//!   nuclei, `null` where no tile), and `nuclei_params` ([`NucleiParams`]).
//! - `stain.csv` ([`StainCsv`]): `col,row,mean_hematoxylin,mean_dab,dab_positive_fraction,
//!   tissue_pixels,positive_pixels,nuclei,positive_nuclei,weak,moderate,strong`, one row per
//!   kept tile in the tiling's order (the last three: positive nuclei per H-score bin).
//!
//! # Validation
//! `stain.json`: `positivity`, `labelling_grid` and `nuclei_grid` have `rows × cols` cells;
//! positive pixels ≤ tissue pixels, positive nuclei ≤ nuclei; the indices (when present) in
//! [0, 1], `labelling_index` present exactly when there are nuclei; `h_score` in [0, 300].
//! `stain.csv`: grid positions are integers, fractions in [0, 1], positive pixels ≤ tissue
//! pixels, weak + moderate + strong = positive nuclei ≤ nuclei. Errors name the file and the
//! key, or the data row and column.
use super::error::{indices, read_json, shown, write_csv, write_json, ContractError, Result};
use crate::slide::nuclei::{NucleiParams, SlideNuclei, TileNuclei};
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
    /// Nuclei detected in the kept tiles.
    pub nuclei: u64,
    /// DAB-positive ones.
    pub positive_nuclei: u64,
    /// positive / all nuclei; `None` without nuclei.
    pub labelling_index: Option<f64>,
    /// Highest labelling index over qualifying hotspot windows; `None` when none qualifies.
    pub hotspot_index: Option<f64>,
    /// Windows that qualified for the hotspot.
    pub hotspot_windows: u64,
    /// H-score, 0–300 (ER and PR; `None` for other stains or without nuclei).
    pub h_score: Option<f64>,
    /// Row-major `rows × cols` positive / all nuclei; `None` where no tile or no nucleus.
    pub labelling_grid: Vec<Option<f64>>,
    /// Row-major `rows × cols` nuclei per tile; `None` where no tile was kept.
    pub nuclei_grid: Vec<Option<u64>>,
    /// The nuclear-scoring parameters used.
    pub nuclei_params: NucleiParams,
}

impl StainSummary {
    /// The file's name in a `stain` shard's directory.
    pub const FILE: &'static str = "stain.json";

    /// The summary of a slide's stain measures and nuclear scores (on the same tile grid).
    pub fn new(slide: &str, stain: Stain, patient_id: &str, s: &SlideStain, n: &SlideNuclei) -> StainSummary {
        let cells = s.cols as usize * s.rows as usize;
        let (mut labelling_grid, mut nuclei_grid) = (vec![None; cells], vec![None; cells]);
        for t in &n.tiles {
            let k = t.row as usize * s.cols as usize + t.col as usize;
            if k < cells {
                nuclei_grid[k] = Some(u64::from(t.nuclei));
                labelling_grid[k] = (t.nuclei > 0).then(|| f64::from(t.positive_nuclei) / f64::from(t.nuclei));
            }
        }
        StainSummary {
            nuclei: n.score.nuclei,
            positive_nuclei: n.score.positive_nuclei,
            labelling_index: n.score.labelling_index,
            hotspot_index: n.score.hotspot_index,
            hotspot_windows: n.score.hotspot_windows,
            h_score: if matches!(stain, Stain::ER | Stain::PR) { n.score.h_score } else { None },
            labelling_grid,
            nuclei_grid,
            nuclei_params: n.params,
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
        for (key, len) in [("labelling_grid", self.labelling_grid.len()), ("nuclei_grid", self.nuclei_grid.len())] {
            if len != cells {
                let msg = format!("expected {cells} cells ({} rows × {} columns), found {len}", self.rows, self.cols);
                return Err(at(key, msg));
            }
        }
        if self.positive_nuclei > self.nuclei {
            let msg = format!("expected at most the {} nuclei, found {}", self.nuclei, self.positive_nuclei);
            return Err(at("positive_nuclei", msg));
        }
        if self.labelling_index.is_some() != (self.nuclei > 0) {
            let msg = format!("expected a value exactly when there are nuclei ({})", self.nuclei);
            return Err(at("labelling_index", msg));
        }
        let fractions = [("labelling_index", self.labelling_index), ("hotspot_index", self.hotspot_index)];
        let grid = self.labelling_grid.iter().map(|v| ("labelling_grid", *v));
        for (key, v) in fractions.into_iter().chain(grid) {
            if let Some(v) = v.filter(|v| !(0.0..=1.0).contains(v)) {
                return Err(at(key, format!("expected a fraction in [0, 1], found {v}")));
            }
        }
        if let Some(h) = self.h_score.filter(|h| !(0.0..=300.0).contains(h)) {
            return Err(at("h_score", format!("expected an H-score in [0, 300], found {h}")));
        }
        Ok(())
    }
}

/// The content of `stain.csv`: one [`TileStain`] and one [`TileNuclei`] per kept tile (the
/// same tiles in the same order).
#[derive(Debug, Clone, PartialEq)]
pub struct StainCsv {
    pub tiles: Vec<TileStain>,
    pub nuclei: Vec<TileNuclei>,
}

const STAIN_CSV_HEADER: [&str; 12] = [
    "col",
    "row",
    "mean_hematoxylin",
    "mean_dab",
    "dab_positive_fraction",
    "tissue_pixels",
    "positive_pixels",
    "nuclei",
    "positive_nuclei",
    "weak",
    "moderate",
    "strong",
];

impl StainCsv {
    /// The file's name in a `stain` shard's directory.
    pub const FILE: &'static str = "stain.csv";

    /// Writes the file (checked first).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate(&shown(path))?;
        let rows = self.tiles.iter().zip(&self.nuclei).map(|(t, n)| {
            vec![
                t.col.to_string(),
                t.row.to_string(),
                t.mean_hematoxylin.to_string(),
                t.mean_dab.to_string(),
                t.dab_positive_fraction.to_string(),
                t.tissue_pixels.to_string(),
                t.positive_pixels.to_string(),
                n.nuclei.to_string(),
                n.positive_nuclei.to_string(),
                n.weak.to_string(),
                n.moderate.to_string(),
                n.strong.to_string(),
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
        let counts = ["nuclei", "positive_nuclei", "weak", "moderate", "strong"]
            .map(|c| int(c).and_then(|v| check_u32(&file, c, v)));
        let [nu, pn, wk, md, st] = counts;
        let (nu, pn, wk, md, st) = (nu?, pn?, wk?, md?, st?);
        let mut tiles = Vec::with_capacity(t.len());
        let mut nuclei = Vec::with_capacity(t.len());
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
            nuclei.push(TileNuclei {
                col: c,
                row: r,
                nuclei: nu[i],
                positive_nuclei: pn[i],
                weak: wk[i],
                moderate: md[i],
                strong: st[i],
            });
        }
        let s = StainCsv { tiles, nuclei };
        s.validate(&file)?;
        Ok(s)
    }

    fn validate(&self, file: &str) -> Result<()> {
        if self.nuclei.len() != self.tiles.len() {
            let msg =
                format!("{} tiles with stain measures but {} with nuclear counts", self.tiles.len(), self.nuclei.len());
            return Err(ContractError::Invalid { file: file.into(), msg });
        }
        for (i, (t, n)) in self.tiles.iter().zip(&self.nuclei).enumerate() {
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
            if (n.col, n.row) != (t.col, t.row) {
                let msg =
                    format!("nuclear counts of tile ({}, {}) on the row of tile ({}, {})", n.col, n.row, t.col, t.row);
                return Err(bad("col", msg));
            }
            if n.positive_nuclei > n.nuclei {
                let msg = format!("expected at most the tile's {} nuclei, found {}", n.nuclei, n.positive_nuclei);
                return Err(bad("positive_nuclei", msg));
            }
            if u64::from(n.weak) + u64::from(n.moderate) + u64::from(n.strong) != u64::from(n.positive_nuclei) {
                let msg = format!(
                    "weak {} + moderate {} + strong {} is not the {} positive nuclei",
                    n.weak, n.moderate, n.strong, n.positive_nuclei
                );
                return Err(bad("strong", msg));
            }
        }
        Ok(())
    }
}

/// Counts that must fit a `u32` (a tile's nuclei).
fn check_u32(file: &str, column: &str, v: Vec<u64>) -> Result<Vec<u32>> {
    v.into_iter()
        .enumerate()
        .map(|(r, x)| {
            u32::try_from(x).map_err(|_| ContractError::Row {
                file: file.into(),
                row: r + 1,
                column: column.into(),
                msg: format!("expected at most {}, found {x}", u32::MAX),
            })
        })
        .collect()
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
