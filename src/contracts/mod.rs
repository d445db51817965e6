//! Contracts: the files one stage writes and another stage (or the report) reads, each as one
//! Rust type shared by its producer and every consumer.
//!
//! The pattern, one file here per file a stage writes that someone else reads (a pair of files
//! that differ only by their key columns, like `oof.csv` and `inner_oof.csv`, share a file):
//! - one type holds the file's content, with `write(path)` for the producer and `read(path)`
//!   for the consumers; JSON files go through serde, CSV files through [`csv`] (writer) and
//!   [`crate::survival::CsvTable`] (reader);
//! - a format that carries a schema version (`"schema"` of a JSON file) names it as a
//!   constant beside its type;
//! - validation lives in one place, the type's `validate`, run by `read` (and by `write`, so a
//!   producer cannot publish what no consumer would accept);
//! - errors ([`ContractError`]) name the file and, for CSV, the data row and column, and say
//!   what was expected;
//! - a consumer finds the directory of a needed stage through a typed handle ([`Output`]:
//!   `TrainOutput`, `EvaluateOutput`, `CalibrateOutput` …) keyed by the producing kind's name
//!   constant below, never by a string of its own. The `StageKind`s return these constants
//!   from `name()`, so producer and consumers share one name.
//!
//! Contracts know nothing about the orchestrator: no stage, spec or DAG type appears here.
//! Changing a format (a column, a key) changes the bytes of a cache entry: bump the producing
//! kind's version, and the schema constant where the format has one.
use std::path::{Path, PathBuf};

pub mod attention;
pub mod baseline;
pub mod calibration;
pub mod competing;
pub mod competing_calibration;
pub mod competing_metrics;
pub mod error;
pub mod extract;
pub mod ingest;
pub mod maps;
pub mod metrics;
pub mod model;
pub mod oof;
pub mod refit;
pub mod stain;
pub mod survival_curves;
pub mod tiles;

pub use error::{ContractError, Result};

/// Kind `ingest`: the cohort table and slide manifest as read and checked.
pub const INGEST: &str = "ingest";
/// Kind `command`: any command's outputs.
pub const COMMAND: &str = "command";
/// Kind `tile`: per-slide tissue mask, tile coordinates and QC images.
pub const TILE: &str = "tile";
/// Kind `stain`: per-slide DAB positivity.
pub const STAIN: &str = "stain";
/// Kind `extract`: per-slide feature bags.
pub const EXTRACT: &str = "extract";
/// Kind `train`: out-of-fold predictions, fold baselines and models ([`TrainOutput`]).
pub const TRAIN: &str = "train";
/// Kind `evaluate`: `metrics.json` and curves ([`EvaluateOutput`]).
pub const EVALUATE: &str = "evaluate";
/// Kind `calibrate`: `calibration.json` ([`CalibrateOutput`]).
pub const CALIBRATE: &str = "calibrate";
/// Kind `report`: the HTML page (read by no stage).
pub const REPORT: &str = "report";
/// Kind `maps`: a slide's spatial maps and statistics (`maps.json`, [`maps::MapsSummary`]).
pub const MAPS: &str = "maps";

/// A stage's output directory, read through the contracts of its files.
pub trait Output: Sized {
    /// The producing kind (one of the constants of this module).
    const KIND: &'static str;
    /// The handle of an output directory of that kind.
    fn at(dir: &Path) -> Self;
    /// The directory.
    fn dir(&self) -> &Path;
}

/// The output directory of a `train` stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainOutput {
    dir: PathBuf,
}

impl Output for TrainOutput {
    const KIND: &'static str = TRAIN;
    fn at(dir: &Path) -> Self {
        TrainOutput { dir: dir.to_path_buf() }
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
}

impl TrainOutput {
    /// `oof.csv`.
    pub fn oof(&self) -> Result<oof::Oof> {
        oof::Oof::read(&self.dir.join(oof::Oof::FILE))
    }
    /// `inner_oof.csv`; empty when the arm wrote none (an attention-MIL arm without inner
    /// out-of-fold predictions: `select: validation` or `loss: nll`).
    pub fn inner_oof(&self) -> Result<oof::InnerOof> {
        let p = self.dir.join(oof::InnerOof::FILE);
        if !p.exists() && self.is_mil() {
            return Ok(oof::InnerOof::default());
        }
        oof::InnerOof::read(&p)
    }
    /// `baseline.csv`; empty when the arm wrote none (a `loss: nll` network predicts survival
    /// curves, `survival.csv`, instead).
    pub fn baselines(&self) -> Result<baseline::Baselines> {
        let p = self.dir.join(baseline::Baselines::FILE);
        if !p.exists() && self.is_mil() {
            return Ok(baseline::Baselines::default());
        }
        baseline::Baselines::read(&p)
    }
    /// Whether `model.json` says the arm is an attention-MIL network (the only arms whose
    /// baseline and inner files may be absent).
    fn is_mil(&self) -> bool {
        self.model().is_ok_and(|m| m.model == "mil")
    }
    /// `survival.csv`: each test patient's predicted survival curve.
    pub fn survival_curves(&self) -> Result<survival_curves::SurvivalCurves> {
        survival_curves::SurvivalCurves::read(&self.dir.join(survival_curves::SurvivalCurves::FILE))
    }
    /// `inner_baseline.csv`.
    pub fn inner_baselines(&self) -> Result<baseline::InnerBaselines> {
        baseline::InnerBaselines::read(&self.dir.join(baseline::InnerBaselines::FILE))
    }
    /// `refit_oof.csv` and `refit_baseline.csv`, `None` when the stage ran without `refit`.
    pub fn refit(&self) -> Result<Option<refit::Refit>> {
        refit::Refit::read(&self.dir)
    }
    /// `competing.json`, present only in a competing-risks cohort (`Ok(None)` otherwise).
    pub fn competing(&self) -> Result<Option<competing::CompetingJson>> {
        let p = self.dir.join(competing::CompetingJson::FILE);
        if p.exists() {
            competing::CompetingJson::read(&p).map(Some)
        } else {
            Ok(None)
        }
    }
    /// `model.json`.
    pub fn model(&self) -> Result<model::ModelJson> {
        model::ModelJson::read(&self.dir.join(model::ModelJson::FILE))
    }
    /// The path of a file of this output (for messages).
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

/// The output directory of an `evaluate` stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluateOutput {
    dir: PathBuf,
}

impl Output for EvaluateOutput {
    const KIND: &'static str = EVALUATE;
    fn at(dir: &Path) -> Self {
        EvaluateOutput { dir: dir.to_path_buf() }
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
}

impl EvaluateOutput {
    /// `metrics.json`.
    pub fn metrics(&self) -> Result<metrics::Metrics> {
        metrics::Metrics::read(&self.metrics_path())
    }
    /// `competing_metrics.json`, present only in a competing-risks cohort (`Ok(None)` otherwise).
    pub fn competing_metrics(&self) -> Result<Option<competing_metrics::CompetingMetrics>> {
        let p = self.dir.join(competing_metrics::CompetingMetrics::FILE);
        if p.exists() {
            competing_metrics::CompetingMetrics::read(&p).map(Some)
        } else {
            Ok(None)
        }
    }
    /// The path of `metrics.json`.
    pub fn metrics_path(&self) -> PathBuf {
        self.dir.join(metrics::Metrics::FILE)
    }
    /// A curve file named in `metrics.json` (`curves/<slug>/roc_<h>.csv` …), refused when it
    /// leaves the directory (absolute, or with `..`).
    pub fn curve_path(&self, rel: &str) -> Result<PathBuf> {
        let p = Path::new(rel);
        let inside = !p.is_absolute()
            && p.components().all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
        if !inside {
            return Err(ContractError::Invalid {
                file: self.metrics_path().display().to_string(),
                msg: format!("curve path `{rel}`: expected a path inside the stage's directory"),
            });
        }
        Ok(self.dir.join(p))
    }
}

/// The output directory of a `calibrate` stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalibrateOutput {
    dir: PathBuf,
}

impl Output for CalibrateOutput {
    const KIND: &'static str = CALIBRATE;
    fn at(dir: &Path) -> Self {
        CalibrateOutput { dir: dir.to_path_buf() }
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
}

impl CalibrateOutput {
    /// `calibration.json`.
    pub fn calibration(&self) -> Result<calibration::CalibrationJson> {
        calibration::CalibrationJson::read(&self.calibration_path())
    }
    /// `competing_calibration.json`, present only in a competing-risks cohort (`Ok(None)`
    /// otherwise).
    pub fn competing_calibration(&self) -> Result<Option<competing_calibration::CompetingCalibration>> {
        let p = self.dir.join(competing_calibration::CompetingCalibration::FILE);
        if p.exists() {
            competing_calibration::CompetingCalibration::read(&p).map(Some)
        } else {
            Ok(None)
        }
    }
    /// The path of `calibration.json`.
    pub fn calibration_path(&self) -> PathBuf {
        self.dir.join(calibration::CalibrationJson::FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_paths_must_stay_inside_the_stage_directory() {
        let e = EvaluateOutput::at(Path::new("/x"));
        assert_eq!(e.curve_path("curves/a/roc_1095.csv").unwrap(), Path::new("/x/curves/a/roc_1095.csv"));
        for bad in ["../etc/passwd", "/etc/passwd", "curves/../../x"] {
            let err = e.curve_path(bad).unwrap_err().to_string();
            assert!(err.contains("metrics.json") && err.contains("expected a path inside"), "{err}");
        }
    }

    #[test]
    fn handles_name_their_files_and_kinds() {
        let t = TrainOutput::at(Path::new("/t"));
        assert_eq!((TrainOutput::KIND, t.dir()), (TRAIN, Path::new("/t")));
        assert_eq!(t.path(oof::Oof::FILE), Path::new("/t/oof.csv"));
        assert_eq!(CalibrateOutput::at(Path::new("/c")).calibration_path(), Path::new("/c/calibration.json"));
        assert_eq!((EvaluateOutput::KIND, CalibrateOutput::KIND), (EVALUATE, CALIBRATE));
        let err = t.oof().unwrap_err().to_string();
        assert!(err.contains("/t/oof.csv") && err.contains("cannot open"), "{err}");
    }
}
