//! `competing_metrics.json`: what `evaluate` writes in a competing-risks cohort beside
//! `metrics.json`, read by `report` (the cumulative-incidence curves by risk group).
//!
//! # Format
//! A JSON object, keys sorted, [`SCHEMA`] in `"schema"`: `horizons`, `bootstrap`, `ci`, `seed`,
//! `groups` (as `metrics.json`) and `arms[]` ([`CompetingArm`]): per arm the method of
//! `train`'s `competing.json`, the cause names, counts, per horizon ([`CompetingHorizon`]) the
//! competing-risks AUC and Brier score of the predicted cumulative incidence of cause 1 (each a
//! bootstrap interval object as in `metrics.json`), the case/control counts, the observed
//! (Aalen–Johansen) and mean predicted cumulative incidence; per risk group ([`CifGroup`], the
//! groups of `metrics.json`, repeat 0) the Aalen–Johansen curve of every cause
//! ([`CifCurve`]: steps `time`, `cif`, log(−log) band `lower`/`upper`, from (0, 0) to the group's last follow-up
//! time); and
//! Gray's test of cause 1 across the groups (`null` when it cannot be computed).
//!
//! # Validation
//! The schema; one horizon object per horizon, in order; curves with equal-length, ascending
//! `time` and `cif` in [0, 1]. Errors name the file and the place (`arms[0].groups[1]`).
use super::error::{read_json, shown, write_json, ContractError, Result};
use super::metrics::GroupMethod;
use crate::survival::BootstrapCi;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The schema version of `competing_metrics.json`.
pub const SCHEMA: u32 = 1;

/// Metrics at one horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompetingHorizon {
    pub horizon: f64,
    /// AUC of the predicted cumulative incidence (Blanche et al. 2013, definition 2).
    pub auc: BootstrapCi,
    /// IPCW Brier score of the predicted cumulative incidence.
    pub brier: BootstrapCi,
    /// Repeat 0: cases (events of cause 1 by the horizon).
    pub n_cases: usize,
    /// Repeat 0: controls event-free at the horizon.
    pub n_controls_event_free: usize,
    /// Repeat 0: controls with a competing event by the horizon.
    pub n_controls_competing: usize,
    /// Aalen–Johansen cumulative incidence of cause 1 at the horizon, all patients.
    pub observed_cif: f64,
    /// Mean predicted cumulative incidence of cause 1 at the horizon (mean over repeats).
    pub mean_predicted_cif: f64,
}

/// An Aalen–Johansen curve of one cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CifCurve {
    pub cause: u32,
    pub name: String,
    pub time: Vec<f64>,
    pub cif: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
}

/// One risk group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CifGroup {
    pub label: String,
    pub n: usize,
    /// Events of cause 1.
    pub events: usize,
    /// Competing events.
    pub competing: usize,
    /// One curve per cause, cause 1 first.
    pub curves: Vec<CifCurve>,
}

/// Gray's test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrayResult {
    pub statistic: f64,
    pub df: usize,
    pub p: f64,
}

/// One arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompetingArm {
    pub arm: String,
    pub slug: String,
    /// `cause_specific` or `fine_gray`.
    pub method: String,
    /// Name of cause 1 (the event of interest).
    pub cause: String,
    /// Names of the competing causes.
    pub competing_causes: Vec<String>,
    pub n: usize,
    pub events: usize,
    pub competing_events: usize,
    pub censored: usize,
    pub repeats: usize,
    pub horizons: Vec<CompetingHorizon>,
    pub groups: Vec<CifGroup>,
    /// Gray's test of cause 1 across the risk groups (ρ = 0).
    pub gray: Option<GrayResult>,
}

/// The content of `competing_metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompetingMetrics {
    /// [`SCHEMA`].
    pub schema: u32,
    pub horizons: Vec<f64>,
    pub bootstrap: usize,
    pub ci: f64,
    pub seed: u64,
    pub groups: GroupMethod,
    pub arms: Vec<CompetingArm>,
}

impl CompetingMetrics {
    /// The file's name in an `evaluate` directory.
    pub const FILE: &'static str = "competing_metrics.json";

    /// Checks the content (see the module documentation).
    pub fn validate(&self, file: &str) -> Result<()> {
        let at = |at: String, msg: String| ContractError::Json { file: file.to_string(), at, msg };
        if self.schema != SCHEMA {
            return Err(at("schema".into(), format!("expected schema {SCHEMA}, found {}", self.schema)));
        }
        for (a, arm) in self.arms.iter().enumerate() {
            let hs: Vec<f64> = arm.horizons.iter().map(|h| h.horizon).collect();
            if hs != self.horizons {
                return Err(at(format!("arms[{a}].horizons"), format!("expected {:?}, found {hs:?}", self.horizons)));
            }
            for (g, group) in arm.groups.iter().enumerate() {
                for (c, cv) in group.curves.iter().enumerate() {
                    let m = cv.time.len();
                    let ok = cv.cif.len() == m
                        && cv.lower.len() == m
                        && cv.upper.len() == m
                        && cv.time.windows(2).all(|w| w[0] <= w[1])
                        && cv.cif.iter().all(|f| (0.0..=1.0).contains(f));
                    if !ok {
                        return Err(at(
                            format!("arms[{a}].groups[{g}].curves[{c}]"),
                            "expected equal-length `time` (ascending), `cif` (in [0, 1]), `lower`, `upper`".into(),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes the file (pretty JSON, keys sorted, no final newline).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate(&shown(path))?;
        write_json(path, self, "")
    }

    /// Reads and validates the file.
    pub fn read(path: &Path) -> Result<CompetingMetrics> {
        let m: CompetingMetrics = read_json(path, "the competing-risks metrics written by `evaluate`")?;
        m.validate(&shown(path))?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ci(x: f64) -> BootstrapCi {
        BootstrapCi { estimate: x, lower: x - 0.1, upper: x + 0.1, se: 0.05, n_boot: 10, n_failed: 0 }
    }

    fn small() -> CompetingMetrics {
        let curve = CifCurve {
            cause: 1,
            name: "metastasis".into(),
            time: vec![0.0, 2.0],
            cif: vec![0.0, 0.25],
            lower: vec![0.0, 0.1],
            upper: vec![0.0, 0.4],
        };
        CompetingMetrics {
            schema: SCHEMA,
            horizons: vec![3.0],
            bootstrap: 10,
            ci: 0.95,
            seed: 7,
            groups: GroupMethod::Median,
            arms: vec![CompetingArm {
                arm: "main".into(),
                slug: "main".into(),
                method: "cause_specific".into(),
                cause: "metastasis".into(),
                competing_causes: vec!["death".into()],
                n: 4,
                events: 1,
                competing_events: 1,
                censored: 2,
                repeats: 1,
                horizons: vec![CompetingHorizon {
                    horizon: 3.0,
                    auc: ci(0.7),
                    brier: ci(0.2),
                    n_cases: 1,
                    n_controls_event_free: 2,
                    n_controls_competing: 1,
                    observed_cif: 0.25,
                    mean_predicted_cif: 0.3,
                }],
                groups: vec![CifGroup { label: "low".into(), n: 4, events: 1, competing: 1, curves: vec![curve] }],
                gray: None,
            }],
        }
    }

    #[test]
    fn round_trip_and_malformed_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(CompetingMetrics::FILE);
        let m = small();
        m.write(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("\"observed_cif\": 0.25") && text.contains("\"schema\": 1"), "{text}");
        assert_eq!(CompetingMetrics::read(&p).unwrap(), m);
        let mut bad = small();
        bad.arms[0].groups[0].curves[0].cif[1] = 1.5;
        let e = bad.write(&p).unwrap_err().to_string();
        assert!(e.contains("competing_metrics.json") && e.contains("arms[0].groups[0].curves[0]"), "{e}");
        let mut bad = small();
        bad.horizons = vec![4.0];
        let e = bad.write(&p).unwrap_err().to_string();
        assert!(e.contains("arms[0].horizons"), "{e}");
    }
}
