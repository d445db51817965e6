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
pub const SCHEMA: u32 = 2;

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

/// A metric's spread across CV repeats (each value computed on all patients within a repeat).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Standard deviation (ddof = 1; `null` with one repeat).
    #[serde(deserialize_with = "f64_or_nan")]
    pub sd: f64,
    /// Smallest value.
    #[serde(deserialize_with = "f64_or_nan")]
    pub min: f64,
    /// Largest value.
    #[serde(deserialize_with = "f64_or_nan")]
    pub max: f64,
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
    /// The arm's model warnings (`model.json`'s fold warnings, each prefixed with its repeat and
    /// fold: a penalty still at a bound of its grid, Cox fit diagnostics); written only when any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Each metric's spread across CV repeats (absent with one repeat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub across_repeats: Option<RepeatSpreads>,
    /// `conditional` for an arm whose intervals are the percentile bootstrap of its fixed
    /// out-of-fold predictions while `intervals` is `refit` (an attention-MIL arm, whose
    /// networks are not refitted); absent when the arm's intervals are the file's `intervals`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<String>,
}

/// The spread across CV repeats of every metric of an arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatSpreads {
    /// Harrell's C.
    pub harrell_c: Spread,
    /// Uno's C.
    pub uno_c: Spread,
    /// AUC per horizon (in `horizons` order).
    pub auc: Vec<Spread>,
    /// Brier score per horizon.
    pub brier: Vec<Spread>,
    /// Integrated Brier score.
    pub ibs: Spread,
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
    /// Two-sided paired bootstrap p-value, `(1 + #)/(B + 1)`: never 0.
    #[serde(deserialize_with = "f64_or_nan")]
    pub p: f64,
    /// `primary` (the spec's pre-specified comparison, `p` unadjusted) or `exploratory`.
    #[serde(default = "exploratory")]
    pub role: String,
    /// `p` of an exploratory comparison adjusted by Holm over the exploratory ones; the primary
    /// comparison's is its `p`.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub p_adjusted: f64,
    /// `ΔC` of each repeat's predictions on all patients: spread across repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub across_repeats: Option<Spread>,
    /// `conditional` when either arm has conditional intervals while `intervals` is `refit`:
    /// the paired percentile bootstrap of both arms' fixed out-of-fold predictions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<String>,
}

fn exploratory() -> String {
    "exploratory".into()
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
    /// How the intervals were formed: `refit` (whole-procedure bootstrap with refitting, split-
    /// aware) or `conditional` (patient bootstrap of the fixed out-of-fold predictions).
    #[serde(default = "conditional")]
    pub intervals: String,
    /// Whole-procedure bootstrap replicates per arm (0 with `conditional`).
    #[serde(default)]
    pub refit_replicates: usize,
    /// The pre-specified primary comparison's arm, if the spec names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// Multiplicity adjustment of the exploratory comparisons (`holm`).
    #[serde(default = "holm")]
    pub adjustment: String,
}

fn conditional() -> String {
    "conditional".into()
}
fn holm() -> String {
    "holm".into()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ci(estimate: f64) -> BootstrapCi {
        BootstrapCi { estimate, lower: estimate - 0.1, upper: f64::NAN, se: 0.05, n_boot: 10, n_failed: 0 }
    }

    fn metrics() -> Metrics {
        let arm = ArmMetrics {
            arm: "m=a".into(),
            slug: "m_a".into(),
            n: 4,
            events: 2,
            repeats: 1,
            harrell_c: ci(0.75),
            uno_c: UnoC { interval: ci(0.5), tau: 10.0 },
            auc: vec![AucMetric {
                interval: ci(0.5),
                horizon: 10.0,
                n_cases: 1,
                n_controls: 2,
                roc: "curves/m_a/roc_10.csv".into(),
            }],
            mean_auc: 0.5,
            brier: vec![BrierMetric { interval: ci(0.25), horizon: 10.0 }],
            ibs: IbsMetric { interval: ci(0.25), from: 1.0, to: 10.0, grid_points: 3 },
            risk_groups: RiskGroupsMetric {
                method: GroupMethod::Median,
                repeat: 0,
                groups: vec![GroupMetric { label: "low".into(), n: 4, events: 2, at_risk: vec![4], km: None }],
                at_risk_times: vec![0.0],
                logrank: None,
                hazard_ratio: Some(HazardRatio { estimate: 2.0, lower: 1.0, upper: 4.0, p: 0.5 }),
                assignments: "curves/m_a/groups.csv".into(),
                notes: vec![],
            },
            warnings: vec![],
            across_repeats: None,
            intervals: None,
        };
        Metrics {
            schema: SCHEMA,
            horizons: vec![10.0],
            bootstrap: 10,
            ci: 0.95,
            seed: 7,
            reference: "m=a".into(),
            groups: GroupMethod::Median,
            arms: vec![arm],
            comparisons: vec![],
            intervals: "conditional".into(),
            refit_replicates: 0,
            primary: None,
            adjustment: "holm".into(),
        }
    }

    const GOLDEN: &str = r#"{
  "adjustment": "holm",
  "arms": [
    {
      "arm": "m=a",
      "auc": [
        {
          "estimate": 0.5,
          "horizon": 10.0,
          "lower": 0.4,
          "n_boot": 10,
          "n_cases": 1,
          "n_controls": 2,
          "n_failed": 0,
          "roc": "curves/m_a/roc_10.csv",
          "se": 0.05,
          "upper": null
        }
      ],
      "brier": [
        {
          "estimate": 0.25,
          "horizon": 10.0,
          "lower": 0.15,
          "n_boot": 10,
          "n_failed": 0,
          "se": 0.05,
          "upper": null
        }
      ],
      "events": 2,
      "harrell_c": {
        "estimate": 0.75,
        "lower": 0.65,
        "n_boot": 10,
        "n_failed": 0,
        "se": 0.05,
        "upper": null
      },
      "ibs": {
        "estimate": 0.25,
        "from": 1.0,
        "grid_points": 3,
        "lower": 0.15,
        "n_boot": 10,
        "n_failed": 0,
        "se": 0.05,
        "to": 10.0,
        "upper": null
      },
      "mean_auc": 0.5,
      "n": 4,
      "repeats": 1,
      "risk_groups": {
        "assignments": "curves/m_a/groups.csv",
        "at_risk_times": [
          0.0
        ],
        "groups": [
          {
            "at_risk": [
              4
            ],
            "events": 2,
            "km": null,
            "label": "low",
            "n": 4
          }
        ],
        "hazard_ratio": {
          "estimate": 2.0,
          "lower": 1.0,
          "p": 0.5,
          "upper": 4.0
        },
        "logrank": null,
        "method": "median",
        "notes": [],
        "repeat": 0
      },
      "slug": "m_a",
      "uno_c": {
        "estimate": 0.5,
        "lower": 0.4,
        "n_boot": 10,
        "n_failed": 0,
        "se": 0.05,
        "tau": 10.0,
        "upper": null
      }
    }
  ],
  "bootstrap": 10,
  "ci": 0.95,
  "comparisons": [],
  "groups": "median",
  "horizons": [
    10.0
  ],
  "intervals": "conditional",
  "reference": "m=a",
  "refit_replicates": 0,
  "schema": 2,
  "seed": 7
}
"#;

    #[test]
    fn golden_text_round_trips_with_null_for_nan() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("metrics.json");
        metrics().write(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), GOLDEN);
        let back = Metrics::read(&p).unwrap();
        let a = &back.arms[0];
        assert!(a.harrell_c.upper.is_nan() && a.harrell_c.lower == 0.65);
        assert_eq!(a.risk_groups.hazard_ratio, metrics().arms[0].risk_groups.hazard_ratio);
        assert_eq!((a.auc[0].roc.as_str(), a.risk_groups.groups[0].km.as_deref()), ("curves/m_a/roc_10.csv", None));
    }

    #[test]
    fn malformed_metrics_name_the_key() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("metrics.json");
        std::fs::write(&p, GOLDEN.replace("\"harrell_c\"", "\"harrell\"")).unwrap();
        let e = Metrics::read(&p).unwrap_err().to_string();
        assert!(e.contains("metrics.json: at `arms[0]`") && e.contains("harrell_c"), "{e}");
        std::fs::write(&p, GOLDEN.replace("\"method\": \"median\"", "\"method\": \"quartiles\"")).unwrap();
        let e = Metrics::read(&p).unwrap_err().to_string();
        assert!(e.contains("arms[0].risk_groups.method") && e.contains("quartiles"), "{e}");
        let mut m = metrics();
        m.arms.push(m.arms[0].clone());
        let e = m.write(&p).unwrap_err().to_string();
        assert!(e.contains("arm `m=a` is listed twice"), "{e}");
        m.arms.truncate(1);
        m.horizons = vec![10.0, 5.0];
        assert!(m.write(&p).unwrap_err().to_string().contains("strictly increasing"));
    }

    #[test]
    fn curves_golden_text_and_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("roc.csv");
        let roc = RocCsv {
            rows: vec![
                RocRow { fpr: 0.0, tpr: 0.0, threshold: f64::INFINITY },
                RocRow { fpr: 1.0, tpr: 1.0, threshold: -0.5 },
            ],
        };
        roc.write(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "fpr,tpr,threshold\n0,0,inf\n1,1,-0.5\n");
        assert_eq!(RocCsv::read(&p).unwrap(), roc);
        std::fs::write(&p, "fpr,tpr,threshold\n0,0,inf\nx,1,0\n").unwrap();
        let e = RocCsv::read(&p).unwrap_err().to_string();
        assert!(e.contains("roc.csv, data row 2 (line 3), column 'fpr'") && e.contains("'x'"), "{e}");
        let p = d.path().join("km.csv");
        let row = KmRow { time: 0.0, survival: 1.0, lower: f64::NAN, upper: 1.0, at_risk: 3, events: 0, censored: 0 };
        KmCsv { rows: vec![row] }.write(&p).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "time,survival,lower,upper,at_risk,events,censored\n0,1,NaN,1,3,0,0\n"
        );
        let back = KmCsv::read(&p).unwrap();
        assert!(back.rows[0].lower.is_nan() && back.rows[0].at_risk == 3);
        std::fs::write(&p, "time,survival,lower,upper\n0,1.5,1,1\n").unwrap();
        let e = KmCsv::read(&p).unwrap_err().to_string();
        assert!(e.contains("km.csv, data row 1 (line 2), column 'survival'") && e.contains("[0, 1]"), "{e}");
    }
}
