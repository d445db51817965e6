//! The outputs of `ingest` that others read: `cohort.csv` and `cohort.json` (the report's cohort
//! table), `slides.json` (the report's slide list) and `slides.csv` (the same rows, for people).
//!
//! # Format
//! - `cohort.csv` ([`CohortCsv`]): `patient_id,time,event,<covariates…>`, one row per patient
//!   kept, in the clinical table's order; integral numbers without a fraction, missing values
//!   empty, event `0`/`1` — or, in a competing-risks cohort (`cohort.causes`), the status code:
//!   0 = censored, 1 = event of interest, 2, 3, … = competing events.
//! - `cohort.json` ([`CohortSummary`]): pretty JSON, keys sorted, no final newline: `patients,
//!   events, censored, max_time, dropped[{row, id, reason}], missing_policy, covariates` (per
//!   covariate `{"type": "numeric", mean, min, max, missing}` or `{"type": "categorical",
//!   levels: {level: count}, missing}`; a number that does not exist is `null`).
//! - `slides.json` ([`SlidesJson`]): pretty JSON, keys sorted, no final newline: `slides` (one
//!   [`SlideRecord`] per manifest row: ids, stain, path as written, the slide's metadata and
//!   content digest) and `warnings`. `slides.csv`: `slide_id, patient_id, stain, path, vendor,
//!   width, height, levels, mpp_x, mpp_y, objective_power, blake3` (`levels` a count; an unknown
//!   value empty).
//!
//! # Validation
//! `cohort.csv`: the three leading columns, ids non-empty and unique, times finite and ≥ 0,
//! events non-negative integer codes, at least one row. `cohort.json`: `events + censored = patients`, a known
//! missing policy. `slides.json`: slide ids non-empty and unique, sizes > 0. Errors name the
//! file and, for a CSV, the data row and column.
use super::error::{patients, read_json, shown, write_csv, write_json, ContractError, Result};
use crate::cohort::{Cell, ClinicalTable, Cohort, Dropped};
use crate::slide::{LevelInfo, MppSource, SlideMeta, Stain};
use crate::survival::CsvTable;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One patient of `cohort.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortRow {
    pub patient_id: String,
    pub time: f64,
    /// Event of interest (`status == 1`).
    pub event: bool,
    /// Status code: 0 = censored, 1 = event of interest, 2, 3, … = competing events.
    pub status: u32,
    /// One cell per covariate, as written (empty = missing).
    pub cells: Vec<String>,
}

/// The content of `cohort.csv`: the validated clinical table, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortCsv {
    pub covariates: Vec<String>,
    pub rows: Vec<CohortRow>,
}

/// Integral numbers without a fraction (`12`, not `12.0`), others in Rust's shortest form.
fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

impl CohortCsv {
    /// The file's name in an `ingest` directory.
    pub const FILE: &'static str = "cohort.csv";

    /// The table as `ingest` writes it.
    pub fn from_table(t: &ClinicalTable) -> CohortCsv {
        let rows = (0..t.ids.len())
            .map(|i| CohortRow {
                patient_id: t.ids[i].clone(),
                time: t.time[i],
                event: t.event[i],
                status: t.status[i],
                cells: t.cells[i]
                    .iter()
                    .map(|c| match c {
                        Cell::Num(x) => fmt_num(*x),
                        Cell::Level(s) => s.clone(),
                        Cell::Missing => String::new(),
                    })
                    .collect(),
            })
            .collect();
        CohortCsv { covariates: t.covariates.clone(), rows }
    }

    /// Writes the file (checked first).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate(&shown(path))?;
        let mut header = vec!["patient_id", "time", "event"];
        header.extend(self.covariates.iter().map(String::as_str));
        let rows = self.rows.iter().map(|r| {
            let mut v = vec![r.patient_id.clone(), fmt_num(r.time), r.status.to_string()];
            v.extend(r.cells.iter().cloned());
            v
        });
        write_csv(path, &header, rows)
    }

    /// Reads and checks the file.
    pub fn read(path: &Path) -> Result<CohortCsv> {
        let t = CsvTable::read(path)?;
        let file = t.file().to_string();
        let h = t.headers();
        if h.len() < 3 || h[0] != "patient_id" || h[1] != "time" || h[2] != "event" {
            return Err(ContractError::Invalid {
                file,
                msg: format!("expected the columns `patient_id,time,event,…`, found {} column(s)", h.len()),
            });
        }
        let covariates: Vec<String> = h[3..].to_vec();
        let ids = patients(&t, "patient_id")?;
        let time = t.numeric("time")?;
        let event = t.strings("event")?;
        let cols: Vec<Vec<String>> = covariates.iter().map(|c| t.strings(c)).collect::<std::result::Result<_, _>>()?;
        let mut rows = Vec::with_capacity(ids.len());
        for (i, id) in ids.into_iter().enumerate() {
            let status = match event[i].parse::<u32>() {
                Ok(s) if !event[i].starts_with('+') => s,
                _ => {
                    return Err(ContractError::Row {
                        file,
                        row: i + 1,
                        column: "event".into(),
                        msg: format!(
                            "expected 0 (censored), 1 (event) or a competing cause 2, 3, …, found `{}`",
                            crate::util::cell_excerpt(&event[i])
                        ),
                    })
                }
            };
            rows.push(CohortRow {
                patient_id: id,
                time: time[i],
                event: status == 1,
                status,
                cells: cols.iter().map(|c| c[i].clone()).collect(),
            });
        }
        let c = CohortCsv { covariates, rows };
        c.validate(&file)?;
        Ok(c)
    }

    fn validate(&self, file: &str) -> Result<()> {
        let bad = |row: usize, column: &str, msg: String| ContractError::Row {
            file: file.to_string(),
            row: row + 1,
            column: column.to_string(),
            msg,
        };
        if self.rows.is_empty() {
            return Err(ContractError::Invalid { file: file.to_string(), msg: "expected at least one patient".into() });
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, r) in self.rows.iter().enumerate() {
            if r.patient_id.is_empty() {
                return Err(bad(i, "patient_id", "expected a patient id, found an empty value".into()));
            }
            if let Some(first) = seen.insert(&r.patient_id, i + 1) {
                let id = crate::util::cell_excerpt(&r.patient_id);
                return Err(bad(
                    i,
                    "patient_id",
                    format!("patient `{id}` is listed twice (first in data row {first})"),
                ));
            }
            if !(r.time.is_finite() && r.time >= 0.0) {
                return Err(bad(i, "time", format!("expected a finite time >= 0, found {}", r.time)));
            }
            if r.cells.len() != self.covariates.len() {
                let msg = format!("expected {} covariate cells, found {}", self.covariates.len(), r.cells.len());
                return Err(bad(i, "patient_id", msg));
            }
        }
        Ok(())
    }
}

/// What `cohort.json` says of one covariate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CovariateSummary {
    /// A numeric covariate: mean, min and max of the values present.
    Numeric { mean: Option<f64>, min: Option<f64>, max: Option<f64>, missing: usize },
    /// A categorical covariate: count per level.
    Categorical { levels: BTreeMap<String, usize>, missing: usize },
}

impl CovariateSummary {
    /// `numeric` or `categorical`.
    pub fn kind(&self) -> &'static str {
        match self {
            CovariateSummary::Numeric { .. } => "numeric",
            CovariateSummary::Categorical { .. } => "categorical",
        }
    }
}

/// The content of `cohort.json`: counts, dropped rows and per-covariate summaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohortSummary {
    pub patients: usize,
    /// Events of interest (status 1).
    pub events: usize,
    pub censored: usize,
    /// Competing events per cause name (only in a competing-risks cohort; then
    /// `events + censored + Σ competing = patients`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub competing: BTreeMap<String, usize>,
    /// The longest follow-up.
    pub max_time: f64,
    /// Rows left out under `missing: drop`.
    pub dropped: Vec<Dropped>,
    /// `error`, `drop` or `impute`.
    pub missing_policy: String,
    pub covariates: BTreeMap<String, CovariateSummary>,
}

impl CohortSummary {
    /// The file's name in an `ingest` directory.
    pub const FILE: &'static str = "cohort.json";

    /// The summary of a validated table read under the cohort block `c`.
    pub fn of(t: &ClinicalTable, c: &Cohort) -> CohortSummary {
        let n = t.ids.len();
        let events = t.event.iter().filter(|&&e| e).count();
        let finite = |x: f64| Some(x).filter(|v| v.is_finite());
        let mut covariates = BTreeMap::new();
        for (j, name) in t.covariates.iter().enumerate() {
            let missing = t.cells.iter().filter(|r| r[j] == Cell::Missing).count();
            let entry = if c.categorical.contains(name) {
                let mut levels: BTreeMap<String, usize> = BTreeMap::new();
                for r in &t.cells {
                    if let Cell::Level(s) = &r[j] {
                        *levels.entry(s.clone()).or_default() += 1;
                    }
                }
                CovariateSummary::Categorical { levels, missing }
            } else {
                let vals: Vec<f64> =
                    t.cells.iter().filter_map(|r| if let Cell::Num(x) = r[j] { Some(x) } else { None }).collect();
                CovariateSummary::Numeric {
                    mean: finite(vals.iter().sum::<f64>() / vals.len().max(1) as f64),
                    min: finite(vals.iter().cloned().fold(f64::INFINITY, f64::min)),
                    max: finite(vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max)),
                    missing,
                }
            };
            covariates.insert(name.clone(), entry);
        }
        let mut competing: BTreeMap<String, usize> = BTreeMap::new();
        for &st in t.status.iter().filter(|&&s| s > 1) {
            *competing.entry(c.cause_name(st)).or_default() += 1;
        }
        let n_competing: usize = competing.values().sum();
        CohortSummary {
            patients: n,
            events,
            censored: n - events - n_competing,
            competing,
            max_time: t.time.iter().cloned().fold(0.0, f64::max),
            dropped: t.dropped.clone(),
            missing_policy: c.missing.clone().unwrap_or_else(|| "error".into()),
            covariates,
        }
    }

    /// Writes the file (checked first).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate(&shown(path))?;
        write_json(path, self, "")
    }

    /// Reads and checks the file.
    pub fn read(path: &Path) -> Result<CohortSummary> {
        let s: CohortSummary = read_json(path, "the cohort summary written by `ingest`")?;
        s.validate(&shown(path))?;
        Ok(s)
    }

    fn validate(&self, file: &str) -> Result<()> {
        let invalid = |msg: String| ContractError::Invalid { file: file.to_string(), msg };
        let competing: usize = self.competing.values().sum();
        if self.events + self.censored + competing != self.patients {
            return Err(invalid(format!(
                "expected events + censored + competing events = patients, found {} + {} + {competing} != {}",
                self.events, self.censored, self.patients
            )));
        }
        if !["error", "drop", "impute"].contains(&self.missing_policy.as_str()) {
            let p = crate::util::cell_excerpt(&self.missing_policy);
            return Err(invalid(format!("`missing_policy`: expected error, drop or impute, found `{p}`")));
        }
        Ok(())
    }
}

/// One slide of `slides.json`: the manifest row and what opening the slide found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlideRecord {
    /// The slide's item id (`<patient>_<stain>` or the file stem).
    pub slide_id: String,
    pub patient_id: String,
    pub stain: Stain,
    /// The manifest's `path` cell as written.
    pub path: String,
    pub vendor: String,
    /// Level-0 size in pixels.
    pub width: u64,
    pub height: u64,
    pub levels: Vec<LevelInfo>,
    pub mpp_x: Option<f64>,
    pub mpp_y: Option<f64>,
    pub mpp_source: Option<MppSource>,
    pub objective_power: Option<f64>,
    /// Names of the associated images (label, macro …), never their pixels.
    pub associated: Vec<String>,
    /// blake3 of the file's content.
    pub blake3: String,
}

impl SlideRecord {
    /// A record from a manifest row's ids and path and its opened slide's metadata.
    pub fn new(
        slide_id: &str,
        patient_id: &str,
        stain: Stain,
        path: &str,
        meta: &SlideMeta,
        blake3: &str,
    ) -> SlideRecord {
        SlideRecord {
            slide_id: slide_id.to_string(),
            patient_id: patient_id.to_string(),
            stain,
            path: path.to_string(),
            vendor: meta.vendor.clone(),
            width: meta.width,
            height: meta.height,
            levels: meta.levels.clone(),
            mpp_x: meta.mpp_x,
            mpp_y: meta.mpp_y,
            mpp_source: meta.mpp_source,
            objective_power: meta.objective_power,
            associated: meta.associated.clone(),
            blake3: blake3.to_string(),
        }
    }
}

/// The content of `slides.json` (and of `slides.csv`, its rows for people).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlidesJson {
    pub slides: Vec<SlideRecord>,
    /// Non-fatal findings (a clinical patient without any slide).
    pub warnings: Vec<String>,
}

impl SlidesJson {
    /// The file's name in an `ingest` directory.
    pub const FILE: &'static str = "slides.json";
    /// The CSV of the same rows.
    pub const CSV: &'static str = "slides.csv";

    /// Writes `slides.json` (checked first).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate(&shown(path))?;
        write_json(path, self, "")
    }

    /// Writes `slides.csv`: the same rows, levels as a count, unknown values empty.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let header = [
            "slide_id",
            "patient_id",
            "stain",
            "path",
            "vendor",
            "width",
            "height",
            "levels",
            "mpp_x",
            "mpp_y",
            "objective_power",
            "blake3",
        ];
        let f = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
        let rows = self.slides.iter().map(|r| {
            vec![
                r.slide_id.clone(),
                r.patient_id.clone(),
                r.stain.as_str().to_string(),
                r.path.clone(),
                r.vendor.clone(),
                r.width.to_string(),
                r.height.to_string(),
                r.levels.len().to_string(),
                f(r.mpp_x),
                f(r.mpp_y),
                f(r.objective_power),
                r.blake3.clone(),
            ]
        });
        write_csv(path, &header, rows)
    }

    /// Reads and checks `slides.json`.
    pub fn read(path: &Path) -> Result<SlidesJson> {
        let s: SlidesJson = read_json(path, "the slide list written by `ingest`")?;
        s.validate(&shown(path))?;
        Ok(s)
    }

    fn validate(&self, file: &str) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for (i, r) in self.slides.iter().enumerate() {
            let at = |msg: String| ContractError::Json { file: file.to_string(), at: format!("slides[{i}]"), msg };
            if r.slide_id.is_empty() || !seen.insert(r.slide_id.as_str()) {
                let id = crate::util::cell_excerpt(&r.slide_id);
                return Err(at(format!("expected a unique, non-empty `slide_id`, found `{id}`")));
            }
            if r.width == 0 || r.height == 0 {
                return Err(at(format!("expected a size > 0, found {} × {}", r.width, r.height)));
            }
        }
        Ok(())
    }
}
