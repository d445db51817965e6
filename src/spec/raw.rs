//! The spec exactly as written: serde types mirroring the YAML, unknown keys rejected.
//! No I/O and no cross-checks here; [`super::compile`] turns this into a checked [`super::Spec`].
use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

/// Top level of a spec file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    /// Experiment name: names the run records and the report directory.
    pub name: String,
    /// Seed for every random draw (folded into the keys of stages that use it).
    #[serde(default)]
    pub seed: u64,
    /// Free text shown in the report.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub cohort: Option<RawCohort>,
    /// Stage name → mapping with `kind`, `needs`, optional `publish`, and kind parameters.
    pub stages: Mapping,
    /// `stage.param.path` → list of values; arms are the cartesian product.
    #[serde(default)]
    pub matrix: Option<Mapping>,
}

/// The `cohort` block.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawCohort {
    /// Clinical table (CSV), one row per patient, relative to the project root.
    pub clinical: String,
    /// Patient id column; `"@row"` when the table has none (patients are named `row<N>`).
    #[serde(default = "default_id")]
    pub id: String,
    /// Follow-up time column.
    #[serde(default = "default_time")]
    pub time: String,
    /// Event column (1 = event, 0 = censored; 2, 3, … = competing events with `causes`).
    #[serde(default = "default_event")]
    pub event: String,
    /// Competing-risks coding: event code → cause name (`{1: metastasis, 2: death}`).
    #[serde(default)]
    pub causes: Option<std::collections::BTreeMap<u32, String>>,
    /// Covariate columns.
    #[serde(default)]
    pub covariates: Vec<String>,
    /// Covariates to treat as categorical (one-hot in models).
    #[serde(default)]
    pub categorical: Vec<String>,
    /// What to do with missing covariate values: `error` (default), `drop`, `impute`.
    #[serde(default)]
    pub missing: Option<String>,
    /// Slide manifest (CSV: patient id, path, stain), relative to the project root.
    #[serde(default)]
    pub slides: Option<String>,
    /// µm/px to assume for slides that record none.
    #[serde(default)]
    pub mpp_override: Option<f64>,
}

fn default_id() -> String {
    "patient_id".into()
}
fn default_time() -> String {
    "time".into()
}
fn default_event() -> String {
    "event".into()
}

/// Parses YAML text into a [`RawSpec`].
pub fn parse(text: &str) -> Result<RawSpec, serde_yaml_ng::Error> {
    serde_yaml_ng::from_str(text)
}

/// The keys every stage may have besides its kind's parameters.
pub const COMMON_KEYS: &[&str] = &["kind", "needs", "publish", "slurm"];

/// Returns the string form of a YAML scalar key.
pub fn key_str(v: &Value) -> Option<&str> {
    v.as_str()
}
