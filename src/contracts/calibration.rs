//! `calibration.json` (written by `calibrate`, read by the report): calibration of one arm's
//! out-of-fold predictions at a horizon, before and (optionally) after inner-fold
//! recalibration.
//!
//! # Format
//! A JSON object, keys sorted, [`SCHEMA`] in `"schema"`, a final newline: `horizon, ci, n,
//! events, repeats`, the statistics before recalibration at the top level
//! ([`CalibrationSummary`]: `bins, slope, slope_se, intercept, ici, e50, e90, curve,
//! per_repeat, notes`) and `recalibrated` (the same statistics plus `folds`, or `null`).
//! Non-finite numbers are `null` (read back as NaN). The file names no arm: arms sharing a
//! `calibrate` node share its bytes. Keys a reader does not use (`slope_se`, `curve`,
//! `per_repeat`, a bin's `events` …) may be absent when read.
//!
//! # Validation
//! A horizon > 0 and at least one bin.
use super::error::{read_json, shown, write_json, ContractError, Result};
use crate::survival::CalibrationPoint;
use crate::util::{f64_or_nan, nan};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Version of `calibration.json` (the `schema` field).
pub const SCHEMA: u32 = 1;

/// A risk-quantile bin (`bin, n, predicted, observed, lower, upper, events, at_risk`): the
/// survival library's own bin, so the file holds what the estimator returns.
pub use crate::survival::CalibrationBin as Bin;

/// Calibration statistics of one repeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatStats {
    /// Repeat (0-based).
    pub repeat: usize,
    /// Calibration slope (ideal 1).
    #[serde(deserialize_with = "f64_or_nan")]
    pub slope: f64,
    /// Standard error of the slope.
    #[serde(deserialize_with = "f64_or_nan")]
    pub slope_se: f64,
    /// Calibration intercept, log cumulative-hazard scale (ideal 0).
    #[serde(deserialize_with = "f64_or_nan")]
    pub intercept: f64,
    /// Integrated calibration index.
    #[serde(deserialize_with = "f64_or_nan")]
    pub ici: f64,
    /// Median absolute calibration error.
    #[serde(deserialize_with = "f64_or_nan")]
    pub e50: f64,
    /// 90th percentile of the absolute calibration error.
    #[serde(deserialize_with = "f64_or_nan")]
    pub e90: f64,
}

/// Calibration of a set of out-of-fold predictions (before or after recalibration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationSummary {
    /// Risk-quantile bins of repeat 0.
    pub bins: Vec<Bin>,
    /// Calibration slope, mean over repeats.
    #[serde(deserialize_with = "f64_or_nan")]
    pub slope: f64,
    /// Standard error of the slope (mean over repeats).
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub slope_se: f64,
    /// Calibration intercept, mean over repeats.
    #[serde(deserialize_with = "f64_or_nan")]
    pub intercept: f64,
    /// ICI, mean over repeats.
    #[serde(deserialize_with = "f64_or_nan")]
    pub ici: f64,
    /// E50, mean over repeats.
    #[serde(deserialize_with = "f64_or_nan")]
    pub e50: f64,
    /// E90, mean over repeats.
    #[serde(deserialize_with = "f64_or_nan")]
    pub e90: f64,
    /// Smoothed calibration curve of repeat 0 (predicted, observed).
    #[serde(default)]
    pub curve: Vec<CalibrationPoint>,
    /// Per-repeat statistics.
    #[serde(default)]
    pub per_repeat: Vec<RepeatStats>,
    /// Notes (smoother fallbacks, bins with nobody at risk at the horizon).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// The recalibration of one outer (repeat, fold).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldRecalibration {
    /// Repeat.
    pub repeat: usize,
    /// Outer fold.
    pub fold: usize,
    /// Intercept `a`.
    #[serde(deserialize_with = "f64_or_nan")]
    pub a: f64,
    /// Slope `b`.
    #[serde(deserialize_with = "f64_or_nan")]
    pub b: f64,
    /// Standard error of `b`.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub b_se: f64,
    /// Inner predictions it was fitted on (the fold's training patients).
    #[serde(default)]
    pub n_inner: usize,
    /// Events among them.
    #[serde(default)]
    pub events_inner: usize,
}

/// Calibration after recalibration, with the fitted `(a, b)` of every outer fold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecalibratedJson {
    /// Calibration after recalibration.
    #[serde(flatten)]
    pub summary: CalibrationSummary,
    /// The fitted `(a, b)` of every outer (repeat, fold).
    #[serde(default)]
    pub folds: Vec<FoldRecalibration>,
}

/// The content of `calibration.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationJson {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The horizon.
    pub horizon: f64,
    /// Confidence level of the bins' intervals.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub ci: f64,
    /// Patients (rows of repeat 0).
    pub n: usize,
    /// Events among them.
    pub events: usize,
    /// Repeats.
    #[serde(default)]
    pub repeats: usize,
    /// Before recalibration.
    #[serde(flatten)]
    pub before: CalibrationSummary,
    /// After recalibration (`null` when not asked for).
    #[serde(default)]
    pub recalibrated: Option<RecalibratedJson>,
}

impl CalibrationJson {
    /// The file name in a `calibrate` output.
    pub const FILE: &'static str = "calibration.json";

    /// Checks the horizon and the bins.
    pub fn validate(&self, file: &str) -> Result<()> {
        let bad = |msg: String| ContractError::Invalid { file: file.to_string(), msg };
        if !(self.horizon.is_finite() && self.horizon > 0.0) {
            return Err(bad(format!("expected a horizon > 0, found {}", self.horizon)));
        }
        if self.before.bins.is_empty() {
            return Err(bad("expected at least one bin, found none".into()));
        }
        Ok(())
    }

    /// Writes the file (pretty JSON, keys sorted, final newline).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate(&shown(path))?;
        write_json(path, self, "\n")
    }

    /// Reads and validates the file.
    pub fn read(path: &Path) -> Result<CalibrationJson> {
        let c: CalibrationJson = read_json(path, "the calibration.json of `calibrate`, docs/calibrate.md")?;
        c.validate(&shown(path))?;
        Ok(c)
    }
}
