//! `competing_calibration.json`: what `calibrate` writes in a competing-risks cohort beside
//! `calibration.json`, read by `report`: the predicted cumulative incidence of cause 1 at the
//! horizon against the observed (Aalen–Johansen) cumulative incidence, overall and by
//! risk-quantile bin.
//!
//! # Format
//! A JSON object, keys sorted, [`SCHEMA`] in `"schema"`: `horizon`, `ci`, `method` (of
//! `train`'s `competing.json`), `cause` (name of cause 1), `n`, `repeats`, `mean_predicted`
//! (mean over patients, then over repeats), `observed` (Aalen–Johansen of all patients, with
//! `observed_lower`/`observed_upper`, log(−log) band), `observed_expected` (their ratio),
//! `bins_repeat` (0: the repeat the bins come from), `bins[]` ([`CompetingBin`]), and
//! `mean_abs_bin_error` (`Σ_b n_b |observed_b − predicted_b| / n`).
//!
//! # Validation
//! The schema; probabilities in [0, 1] (or `null` where undefined); bins numbered from 0 with
//! sizes adding up to `n`. Errors name the file and the place.
use super::error::{read_json, shown, write_json, ContractError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The schema version of `competing_calibration.json`.
pub const SCHEMA: u32 = 1;

/// One risk-quantile bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompetingBin {
    pub bin: usize,
    pub n: usize,
    /// Mean predicted cumulative incidence of cause 1 at the horizon.
    pub predicted: f64,
    /// Aalen–Johansen cumulative incidence of cause 1 at the horizon in the bin.
    #[serde(deserialize_with = "crate::util::f64_or_nan")]
    pub observed: f64,
    #[serde(deserialize_with = "crate::util::f64_or_nan")]
    pub lower: f64,
    #[serde(deserialize_with = "crate::util::f64_or_nan")]
    pub upper: f64,
    /// Events of cause 1 by the horizon.
    pub events: usize,
    /// Competing events by the horizon.
    pub competing: usize,
}

/// The content of `competing_calibration.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompetingCalibration {
    /// [`SCHEMA`].
    pub schema: u32,
    pub horizon: f64,
    pub ci: f64,
    pub method: String,
    pub cause: String,
    pub n: usize,
    pub repeats: usize,
    pub mean_predicted: f64,
    #[serde(deserialize_with = "crate::util::f64_or_nan")]
    pub observed: f64,
    #[serde(deserialize_with = "crate::util::f64_or_nan")]
    pub observed_lower: f64,
    #[serde(deserialize_with = "crate::util::f64_or_nan")]
    pub observed_upper: f64,
    #[serde(deserialize_with = "crate::util::f64_or_nan")]
    pub observed_expected: f64,
    pub bins_repeat: usize,
    pub bins: Vec<CompetingBin>,
    #[serde(deserialize_with = "crate::util::f64_or_nan")]
    pub mean_abs_bin_error: f64,
}

impl CompetingCalibration {
    /// The file's name in a `calibrate` directory.
    pub const FILE: &'static str = "competing_calibration.json";

    /// Checks the content (see the module documentation).
    pub fn validate(&self, file: &str) -> Result<()> {
        let at = |at: String, msg: String| ContractError::Json { file: file.to_string(), at, msg };
        if self.schema != SCHEMA {
            return Err(at("schema".into(), format!("expected schema {SCHEMA}, found {}", self.schema)));
        }
        let prob = |x: f64| x.is_nan() || (0.0..=1.0).contains(&x);
        if !(prob(self.mean_predicted) && prob(self.observed)) {
            return Err(at("observed".into(), "expected probabilities in [0, 1]".into()));
        }
        for (i, b) in self.bins.iter().enumerate() {
            if b.bin != i || !prob(b.predicted) || !prob(b.observed) {
                return Err(at(format!("bins[{i}]"), format!("expected bin {i} with probabilities in [0, 1]")));
            }
        }
        let total: usize = self.bins.iter().map(|b| b.n).sum();
        if total != self.n {
            return Err(at("bins".into(), format!("expected bin sizes adding up to n = {}, found {total}", self.n)));
        }
        Ok(())
    }

    /// Writes the file (pretty JSON, keys sorted, no final newline).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate(&shown(path))?;
        write_json(path, self, "")
    }

    /// Reads and validates the file.
    pub fn read(path: &Path) -> Result<CompetingCalibration> {
        let c: CompetingCalibration = read_json(path, "the competing-risks calibration written by `calibrate`")?;
        c.validate(&shown(path))?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_malformed_content() {
        let bin = |bin, n| CompetingBin {
            bin,
            n,
            predicted: 0.1,
            observed: 0.12,
            lower: 0.05,
            upper: 0.2,
            events: 2,
            competing: 1,
        };
        let c = CompetingCalibration {
            schema: SCHEMA,
            horizon: 1825.0,
            ci: 0.95,
            method: "cause_specific".into(),
            cause: "metastasis".into(),
            n: 10,
            repeats: 1,
            mean_predicted: 0.1,
            observed: 0.12,
            observed_lower: 0.05,
            observed_upper: 0.2,
            observed_expected: 1.2,
            bins_repeat: 0,
            bins: vec![bin(0, 5), bin(1, 5)],
            mean_abs_bin_error: 0.02,
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(CompetingCalibration::FILE);
        c.write(&p).unwrap();
        assert_eq!(CompetingCalibration::read(&p).unwrap(), c);
        let mut bad = c.clone();
        bad.bins[1].n = 4;
        let e = bad.write(&p).unwrap_err().to_string();
        assert!(e.contains("competing_calibration.json") && e.contains("at `bins`"), "{e}");
    }
}
