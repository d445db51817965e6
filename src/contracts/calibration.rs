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
    /// Counts of repeat 0's predicted risks in equal-width bins over [0, 1] (the figure's
    /// histogram of predictions; absent in files of earlier versions).
    #[serde(default)]
    pub histogram: Vec<usize>,
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
    /// Problems of the recalibration (a fold whose slope `b` is below 0); written only when any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(slope: f64) -> CalibrationSummary {
        let bin =
            Bin { bin: 0, n: 3, predicted: 0.2, observed: 0.25, lower: f64::NAN, upper: 0.5, events: 1, at_risk: 2 };
        CalibrationSummary {
            bins: vec![bin],
            slope,
            slope_se: 0.1,
            intercept: 0.0,
            ici: 0.01,
            e50: 0.01,
            e90: 0.02,
            curve: vec![CalibrationPoint { predicted: 0.2, observed: 0.25 }],
            histogram: vec![0, 3],
            per_repeat: vec![],
            notes: vec![],
        }
    }

    const GOLDEN: &str = r#"{
  "bins": [
    {
      "at_risk": 2,
      "bin": 0,
      "events": 1,
      "lower": null,
      "n": 3,
      "observed": 0.25,
      "predicted": 0.2,
      "upper": 0.5
    }
  ],
  "ci": 0.95,
  "curve": [
    {
      "observed": 0.25,
      "predicted": 0.2
    }
  ],
  "e50": 0.01,
  "e90": 0.02,
  "events": 1,
  "histogram": [
    0,
    3
  ],
  "horizon": 100.0,
  "ici": 0.01,
  "intercept": 0.0,
  "n": 3,
  "notes": [],
  "per_repeat": [],
  "recalibrated": null,
  "repeats": 1,
  "schema": 1,
  "slope": 0.9,
  "slope_se": 0.1
}
"#;

    fn doc() -> CalibrationJson {
        CalibrationJson {
            schema: SCHEMA,
            horizon: 100.0,
            ci: 0.95,
            n: 3,
            events: 1,
            repeats: 1,
            before: summary(0.9),
            recalibrated: None,
        }
    }

    #[test]
    fn golden_text_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("calibration.json");
        doc().write(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), GOLDEN);
        let back = CalibrationJson::read(&p).unwrap();
        assert!(back.before.bins[0].lower.is_nan());
        assert_eq!((back.before.slope, back.n, back.recalibrated.is_none()), (0.9, 3, true));
        let mut with = doc();
        let fold = FoldRecalibration { repeat: 0, fold: 1, a: 0.1, b: 0.9, b_se: 0.2, n_inner: 2, events_inner: 1 };
        with.recalibrated = Some(RecalibratedJson { summary: summary(1.0), folds: vec![fold], warnings: vec![] });
        with.write(&p).unwrap();
        let back = CalibrationJson::read(&p).unwrap();
        let r = back.recalibrated.unwrap();
        assert_eq!((r.summary.slope, r.folds[0].fold, r.folds[0].b), (1.0, 1, 0.9));
    }

    #[test]
    fn malformed_calibration_names_the_key() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("calibration.json");
        std::fs::write(&p, GOLDEN.replace("\"slope\": 0.9", "\"slope\": \"steep\"")).unwrap();
        let e = CalibrationJson::read(&p).unwrap_err().to_string();
        // serde cannot name a key inside a flattened struct: the message names the value
        assert!(e.contains("calibration.json: at `.`") && e.contains("string \"steep\", expected f64"), "{e}");
        std::fs::write(&p, GOLDEN.replace("\"horizon\": 100.0", "\"horizon\": 0.0")).unwrap();
        let e = CalibrationJson::read(&p).unwrap_err().to_string();
        assert!(e.contains("expected a horizon > 0, found 0"), "{e}");
        let mut c = doc();
        c.before.bins.clear();
        assert!(c.write(&p).unwrap_err().to_string().contains("at least one bin"));
    }
}
