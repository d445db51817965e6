//! The cohort: its description in a spec ([`Cohort`]), its clinical table ([`clinical`]), its
//! slide manifest ([`manifest`]) and the items per-item stages fan out over ([`items`]).
//!
//! Each table has one reader and one place that validates it: `ingest` validates the cohort
//! with [`read_clinical`] and [`manifest::validate_manifest`], the DAG lists its items with
//! [`items::patients`] and [`items::slides`] over the same readers, and `model` takes the
//! validated [`ClinicalTable`].
//!
//! **API Boundary:** `cohort` knows nothing about specs, keys, caches or stages: callers pass
//! paths resolved against the project, and checks of their own (data roots, digests through a
//! stat cache) as closures.
pub mod clinical;
pub mod items;
pub mod manifest;

pub use clinical::{read_clinical, Cell, ClinicalTable, Dropped, MAX_ABS, ROW_IDS};
pub use items::{Item, SlideRef};

/// A cohort as a spec declares it (the checked `cohort` block). Paths are as written,
/// relative to the project root.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cohort {
    /// Clinical table (CSV), one row per patient.
    pub clinical: String,
    /// Patient id column; [`ROW_IDS`] when the table has none (patients are named `row<N>`).
    pub id: String,
    /// Follow-up time column.
    pub time: String,
    /// Event column: 0 = censored, 1 = event (of interest); with [`Cohort::causes`], 2, 3, … =
    /// competing events.
    pub event: String,
    /// Competing-risks coding (the spec's `cohort.causes`): event code → cause name, e.g.
    /// `{1: metastasis, 2: death}`. Code 1 is the event of interest; every other code is a
    /// competing event. `None`: the event column is 0/1 (no competing risks).
    pub causes: Option<std::collections::BTreeMap<u32, String>>,
    /// Covariate columns.
    pub covariates: Vec<String>,
    /// Covariates to treat as categorical (one-hot in models); each is also in `covariates`.
    pub categorical: Vec<String>,
    /// What to do with missing covariate values: `error` (None), `drop` or `impute`.
    pub missing: Option<String>,
    /// Slide manifest (CSV: patient id, path, stain).
    pub slides: Option<String>,
    /// µm/px to assume for slides that record none.
    pub mpp_override: Option<f64>,
}

impl Cohort {
    /// Whether the cohort declares competing causes (event codes 2, 3, …).
    pub fn is_competing(&self) -> bool {
        self.causes.as_ref().is_some_and(|c| c.keys().any(|&k| k > 1))
    }

    /// The name of a cause code: the declared name, else `event` for 1.
    pub fn cause_name(&self, code: u32) -> String {
        match self.causes.as_ref().and_then(|c| c.get(&code)) {
            Some(n) => n.clone(),
            None if code == 1 => "event".into(),
            None => format!("cause {code}"),
        }
    }
}
