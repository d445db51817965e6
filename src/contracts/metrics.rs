//! `metrics.json` (written by `evaluate`, read by the report): every arm's discrimination,
//! accuracy and risk-group metrics, and each arm's paired comparison with the reference arm.
//! The curves it names (`curves/<slug>/roc_<h>.csv`, `km_<group>.csv`) are [`RocCsv`] and
//! [`KmCsv`].
//!
//! # Format
//! A JSON object, keys sorted, [`SCHEMA`] in `"schema"`, a final newline; every interval a
//! [`BootstrapCi`] (`estimate, lower, upper, se, n_boot, n_failed`), a non-finite number as
//! `null` (read back as NaN). The field list is docs/evaluate.md. Keys a reader does not use
//! (`se`, `n_boot`, `n_cases`, `assignments`, `notes` …) may be absent when read.
//!
//! # Validation
//! At least one horizon, strictly increasing; at least one arm; arm names unique.
use super::error::{read_json, shown, write_csv, write_json, ContractError, Result};
use crate::survival::{BootstrapCi, CsvTable};
use crate::util::{f64_or_nan, nan};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Version of `metrics.json` (the `schema` field).
pub const SCHEMA: u32 = 1;

/// How patients are split into risk groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupMethod {
    /// low / high at the training median.
    Median,
    /// low / mid / high at the training tertiles.
    Tertiles,
}

impl GroupMethod {
    /// Group labels, low to high.
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            GroupMethod::Median => &["low", "high"],
            GroupMethod::Tertiles => &["low", "mid", "high"],
        }
    }

    /// `median` or `tertiles`.
    pub fn name(self) -> &'static str {
        match self {
            GroupMethod::Median => "median",
            GroupMethod::Tertiles => "tertiles",
        }
    }
}

/// Uno's C with its truncation time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnoC {
    /// The interval.
    #[serde(flatten)]
    pub interval: BootstrapCi,
    /// τ (the last horizon).
    #[serde(deserialize_with = "f64_or_nan")]
    pub tau: f64,
}

/// AUC at one horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AucMetric {
    /// The interval.
    #[serde(flatten)]
    pub interval: BootstrapCi,
    /// The horizon.
    pub horizon: f64,
    /// Cases (events by the horizon), repeat 0.
    #[serde(default)]
    pub n_cases: usize,
    /// Controls (event-free after it), repeat 0.
    #[serde(default)]
    pub n_controls: usize,
    /// The ROC curve's file, relative to the `evaluate` directory ([`RocCsv`]).
    pub roc: String,
}

/// Brier score at one horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrierMetric {
    /// The interval.
    #[serde(flatten)]
    pub interval: BootstrapCi,
    /// The horizon.
    pub horizon: f64,
}

/// The integrated Brier score and its grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IbsMetric {
    /// The interval.
    #[serde(flatten)]
    pub interval: BootstrapCi,
    /// First grid time.
    #[serde(deserialize_with = "f64_or_nan")]
    pub from: f64,
    /// Last grid time.
    #[serde(deserialize_with = "f64_or_nan")]
    pub to: f64,
    /// Grid points.
    #[serde(default)]
    pub grid_points: usize,
}

/// Log-rank test across the non-empty groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRankResult {
    /// χ² statistic.
    #[serde(deserialize_with = "f64_or_nan")]
    pub chi2: f64,
    /// Degrees of freedom.
    pub df: usize,
    /// p-value.
    #[serde(deserialize_with = "f64_or_nan")]
    pub p: f64,
}

/// Hazard ratio high vs low with its Wald interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HazardRatio {
    /// exp(β).
    #[serde(deserialize_with = "f64_or_nan")]
    pub estimate: f64,
    /// Lower Wald limit.
    #[serde(deserialize_with = "f64_or_nan")]
    pub lower: f64,
    /// Upper Wald limit.
    #[serde(deserialize_with = "f64_or_nan")]
    pub upper: f64,
    /// Wald p-value.
    #[serde(deserialize_with = "f64_or_nan")]
    pub p: f64,
}

/// One risk group (repeat 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMetric {
    /// `low`, `mid` or `high`.
    pub label: String,
    /// Patients.
    pub n: usize,
    /// Events.
    pub events: usize,
    /// Numbers at risk at [`RiskGroupsMetric::at_risk_times`].
    #[serde(default)]
    pub at_risk: Vec<usize>,
    /// The KM curve's file ([`KmCsv`]); `null` for an empty group.
    #[serde(default)]
    pub km: Option<String>,
}

/// Risk-group analysis (repeat 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskGroupsMetric {
    /// Median or tertiles.
    pub method: GroupMethod,
    /// The repeat the groups come from (0).
    #[serde(default)]
    pub repeat: usize,
    /// Groups, low to high.
    pub groups: Vec<GroupMetric>,
    /// Ticks of the at-risk table.
    #[serde(default)]
    pub at_risk_times: Vec<f64>,
    /// Log-rank across groups.
    #[serde(default)]
    pub logrank: Option<LogRankResult>,
    /// HR high vs low.
    #[serde(default)]
    pub hazard_ratio: Option<HazardRatio>,
    /// Per-patient assignments (`curves/<slug>/groups.csv`).
    #[serde(default)]
    pub assignments: String,
    /// Why something is missing.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// All metrics of one arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmMetrics {
    /// Arm name.
    pub arm: String,
    /// Its curve folder name (`curves/<slug>/`).
    pub slug: String,
    /// Patients.
    pub n: usize,
    /// Events.
    pub events: usize,
    /// CV repeats.
    pub repeats: usize,
    /// Harrell's C.
    pub harrell_c: BootstrapCi,
    /// Uno's C.
    pub uno_c: UnoC,
    /// AUC per horizon.
    pub auc: Vec<AucMetric>,
    /// Mean AUC over the horizons.
    #[serde(deserialize_with = "f64_or_nan")]
    pub mean_auc: f64,
    /// Brier score per horizon.
    pub brier: Vec<BrierMetric>,
    /// Integrated Brier score.
    pub ibs: IbsMetric,
    /// Risk groups.
    pub risk_groups: RiskGroupsMetric,
}

/// Paired comparison of an arm with the reference arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonMetric {
    /// The arm.
    pub arm: String,
    /// The reference arm.
    pub reference: String,
    /// Harrell's C of the arm.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub c_arm: f64,
    /// Harrell's C of the reference.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub c_reference: f64,
    /// `C(arm) − C(reference)` with its paired bootstrap interval.
    pub delta_c: BootstrapCi,
    /// Two-sided paired bootstrap p-value.
    #[serde(deserialize_with = "f64_or_nan")]
    pub p: f64,
}

/// The content of `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// [`SCHEMA`].
    pub schema: u32,
    /// Horizons of AUC and Brier (the last is Uno's τ).
    pub horizons: Vec<f64>,
    /// Bootstrap replicates.
    pub bootstrap: usize,
    /// Confidence level.
    pub ci: f64,
    /// Bootstrap seed.
    pub seed: u64,
    /// The reference arm.
    pub reference: String,
    /// Risk groups.
    pub groups: GroupMethod,
    /// Arms, in matrix order.
    pub arms: Vec<ArmMetrics>,
    /// Every other arm against the reference.
    #[serde(default)]
    pub comparisons: Vec<ComparisonMetric>,
}

impl Metrics {
    /// The file name in an `evaluate` output.
    pub const FILE: &'static str = "metrics.json";

    /// Checks horizons and arms.
    pub fn validate(&self, file: &str) -> Result<()> {
        let bad = |msg: String| ContractError::Invalid { file: file.to_string(), msg };
        if self.horizons.is_empty() || self.horizons.windows(2).any(|w| w[1] <= w[0]) {
            return Err(bad(format!("expected at least one horizon, strictly increasing, found {:?}", self.horizons)));
        }
        if self.arms.is_empty() {
            return Err(bad("expected at least one arm, found none".into()));
        }
        for (i, a) in self.arms.iter().enumerate() {
            if self.arms[..i].iter().any(|b| b.arm == a.arm) {
                return Err(bad(format!("arm `{}` is listed twice: expected one entry per arm", a.arm)));
            }
        }
        Ok(())
    }

    /// Writes the file (pretty JSON, keys sorted, final newline).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate(&shown(path))?;
        write_json(path, self, "\n")
    }

    /// Reads and validates the file.
    pub fn read(path: &Path) -> Result<Metrics> {
        let m: Metrics = read_json(path, "the metrics.json of `evaluate`, docs/evaluate.md")?;
        m.validate(&shown(path))?;
        Ok(m)
    }
}

/// One point of a ROC curve (a row of `roc_<h>.csv`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RocRow {
    /// False-positive rate.
    pub fpr: f64,
    /// True-positive rate.
    pub tpr: f64,
    /// Risk threshold (`inf` for the first point).
    pub threshold: f64,
}

/// `curves/<slug>/roc_<h>.csv`: `fpr,tpr,threshold`, numbers in Rust's `Display` form.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RocCsv {
    /// Points from (0, 0) to (1, 1).
    pub rows: Vec<RocRow>,
}

impl RocCsv {
    /// Writes the file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let rows = self.rows.iter().map(|p| vec![p.fpr.to_string(), p.tpr.to_string(), p.threshold.to_string()]);
        write_csv(path, &["fpr", "tpr", "threshold"], rows)
    }

    /// Reads the file: `fpr` and `tpr` finite (rounding may put a rate a few ulps past 1);
    /// `threshold` a number (`inf` for the first point).
    pub fn read(path: &Path) -> Result<RocCsv> {
        let t = CsvTable::read(path)?;
        let (fpr, tpr) = (t.numeric("fpr")?, t.numeric("tpr")?);
        let threshold = loose(&t, "threshold")?;
        let rows = (0..t.len()).map(|i| RocRow { fpr: fpr[i], tpr: tpr[i], threshold: threshold[i] }).collect();
        Ok(RocCsv { rows })
    }
}

/// One step of a Kaplan–Meier curve (a row of `km_<group>.csv`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KmRow {
    /// Time (first row 0).
    pub time: f64,
    /// Survival.
    pub survival: f64,
    /// Lower log(−log) limit (NaN where undefined).
    pub lower: f64,
    /// Upper limit.
    pub upper: f64,
    /// Number at risk at `time` (`T ≥ time`).
    pub at_risk: usize,
    /// Events at `time`.
    pub events: usize,
    /// Censorings at `time`.
    pub censored: usize,
}

/// `curves/<slug>/km_<group>.csv`: `time,survival,lower,upper,at_risk,events,censored`, numbers
/// in Rust's `Display` form (an undefined limit `NaN`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KmCsv {
    /// Steps, the first at time 0.
    pub rows: Vec<KmRow>,
}

/// A numeric column where `NaN`, `inf` and empty cells (NaN) are allowed.
fn loose(t: &CsvTable, column: &str) -> Result<Vec<f64>> {
    let v = t.strings(column)?;
    v.iter()
        .enumerate()
        .map(|(r, s)| {
            if s.is_empty() {
                return Ok(f64::NAN);
            }
            s.parse::<f64>().map_err(|_| ContractError::Row {
                file: t.file().to_string(),
                row: r + 1,
                column: column.into(),
                msg: format!("expected a number, found '{s}'"),
            })
        })
        .collect()
}

impl KmCsv {
    /// Writes the file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let rows = self.rows.iter().map(|r| {
            vec![
                r.time.to_string(),
                r.survival.to_string(),
                r.lower.to_string(),
                r.upper.to_string(),
                r.at_risk.to_string(),
                r.events.to_string(),
                r.censored.to_string(),
            ]
        });
        write_csv(path, &["time", "survival", "lower", "upper", "at_risk", "events", "censored"], rows)
    }

    /// Reads the file: time ≥ 0 and survival finite in [0, 1]; limits may be NaN; counts are
    /// not needed by readers and are taken as 0 when absent.
    pub fn read(path: &Path) -> Result<KmCsv> {
        let t = CsvTable::read(path)?;
        let (time, survival) = (t.times("time")?, t.probabilities("survival")?);
        let (lower, upper) = (loose(&t, "lower")?, loose(&t, "upper")?);
        let count = |c: &str| -> Result<Vec<usize>> {
            if t.headers().iter().any(|h| h == c) {
                super::error::indices(&t, c)
            } else {
                Ok(vec![0; t.len()])
            }
        };
        let (at_risk, events, censored) = (count("at_risk")?, count("events")?, count("censored")?);
        let rows = (0..t.len())
            .map(|i| KmRow {
                time: time[i],
                survival: survival[i],
                lower: lower[i],
                upper: upper[i],
                at_risk: at_risk[i],
                events: events[i],
                censored: censored[i],
            })
            .collect();
        Ok(KmCsv { rows })
    }
}
