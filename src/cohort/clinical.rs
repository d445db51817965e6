//! The clinical table: one reader ([`ClinicalCsv`]) for the header checks, the id column and
//! the rows, and the one validation of the rows ([`read_clinical`]) into a [`ClinicalTable`].
//!
//! Validation: the id, time and event columns and every covariate must exist, and no header
//! column may be written twice; ids non-empty, unique and free of control characters; time
//! numeric, finite and ≥ 0; event 0 or 1; at least one event; numeric covariates within
//! ±[`MAX_ABS`] (their squares must stay finite). A missing covariate value is an error unless
//! `cohort.missing` is `drop` (the row is dropped and counted) or `impute` (kept empty;
//! training imputes inside its folds). Errors name the file, the data row (1-based, header
//! excluded; the file line is row + 1) and the column, and quote at most the offending cell
//! (cut to 40 characters, controls shown as `<U+XXXX>`), never the header row or a line of the
//! file.
use super::Cohort;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The `cohort.id` value for tables without an id column: patients are named `row<N>`.
pub const ROW_IDS: &str = "@row";

/// The largest magnitude a numeric covariate may take: the sum of squares of a training fold
/// stays finite below it.
pub const MAX_ABS: f64 = 1e150;

/// One covariate value: a number, a category level, or missing.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Num(f64),
    Level(String),
    Missing,
}

/// A validated clinical table (written by `ingest` as `cohort.csv` and `cohort.json`:
/// [`crate::contracts::ingest`]).
#[derive(Debug, Clone)]
pub struct ClinicalTable {
    pub ids: Vec<String>,
    pub time: Vec<f64>,
    /// Event of interest (status 1).
    pub event: Vec<bool>,
    /// Status code: 0 = censored, 1 = event of interest, 2, 3, … = competing events (only with
    /// `cohort.causes`; otherwise 0/1 as `event`).
    pub status: Vec<u32>,
    pub covariates: Vec<String>,
    /// Row-major: `cells[i][j]` is patient i, covariate j.
    pub cells: Vec<Vec<Cell>>,
    pub dropped: Vec<Dropped>,
}

/// A row left out under `missing: drop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    pub row: usize,
    pub id: String,
    pub reason: String,
}

fn is_missing(s: &str) -> bool {
    matches!(s.trim(), "" | "NA" | "NaN" | "nan" | "N/A" | "null" | "NULL" | "na")
}

/// The clinical CSV opened: header read and checked (no column written twice), the id column
/// found. Rows come from [`ClinicalCsv::rows`], each with its id checked.
pub struct ClinicalCsv<'c> {
    /// The file as errors name it.
    f: String,
    rdr: csv::Reader<std::fs::File>,
    headers: csv::StringRecord,
    cohort: &'c Cohort,
    id_c: Option<usize>,
}

/// One data row of the clinical table with its checked patient id.
pub struct Row {
    /// Data row, from 1 (the file line is `row + 1`).
    pub row: usize,
    pub id: String,
    pub record: csv::StringRecord,
}

impl<'c> ClinicalCsv<'c> {
    /// Opens the table declared by the cohort block (`path`: the file, resolved by the caller).
    pub fn open(path: &Path, cohort: &'c Cohort) -> anyhow::Result<ClinicalCsv<'c>> {
        let f = path.display().to_string();
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(false)
            .from_path(path)
            .with_context(|| format!("cannot read clinical table {f}"))?;
        let headers = rdr.headers().with_context(|| format!("{f}: cannot read the header row"))?.clone();
        if let Some((name, a, b)) = crate::util::duplicate_column(&headers, false) {
            bail!(
                "{f}: column `{name}` is written twice in the header (columns {a} and {b}); \
                 expected unique column names"
            );
        }
        let mut t = ClinicalCsv { f, rdr, headers, cohort, id_c: None };
        // `id: "@row"`: the table has no id column; patients are named by data row (`row1` …)
        t.id_c = if cohort.id == ROW_IDS { None } else { Some(t.column(&cohort.id, "id")?) };
        Ok(t)
    }

    /// The header names.
    pub fn headers(&self) -> &csv::StringRecord {
        &self.headers
    }

    /// The index of a column. The error names the missing column and at most one close header
    /// name, never the header row itself (it may be the first line of any file).
    pub fn column(&self, name: &str, what: &str) -> anyhow::Result<usize> {
        self.headers.iter().position(|h| h == name).with_context(|| {
            let hint = match crate::util::closest_column(&self.headers, name) {
                Some(h) => format!("; did you mean `{h}`?"),
                None => String::new(),
            };
            format!(
                "{}: no column `{}` (the cohort's {what}) among the header's {} column(s){hint}",
                self.f,
                crate::util::cell_excerpt(name),
                self.headers.len()
            )
        })
    }

    /// The data rows in file order, each with a non-empty patient id free of control
    /// characters (ids are not checked for uniqueness here).
    pub fn rows(&mut self) -> impl Iterator<Item = anyhow::Result<Row>> + '_ {
        let (f, id_c, id_name) = (&self.f, self.id_c, &self.cohort.id);
        self.rdr.records().enumerate().map(move |(i, rec)| {
            let row = i + 1;
            let record = rec.with_context(|| format!("{f}: row {row} (line {}) is not valid CSV", row + 1))?;
            let id = match id_c {
                Some(ic) => record.get(ic).unwrap_or("").trim().to_string(),
                None => format!("row{row}"),
            };
            if let Some(why) = crate::util::id_problem(&id) {
                bail!("{f}: row {row} (line {}), column `{}`: {why}", row + 1, crate::util::display_id(id_name));
            }
            Ok(Row { row, id, record })
        })
    }
}

/// The status code of an event cell: 0 or 1, or a cause declared in `cohort.causes`; the error
/// says what was expected.
fn event_code(s: &str, c: &Cohort) -> Result<u32, String> {
    let code = s.parse::<f64>().ok().filter(|x| *x >= 0.0 && x.fract() == 0.0 && *x <= u32::MAX as f64);
    match (&c.causes, code) {
        (_, Some(0.0)) => Ok(0),
        (None, Some(1.0)) => Ok(1),
        (Some(causes), Some(x)) if causes.contains_key(&(x as u32)) => Ok(x as u32),
        (None, Some(x)) => Err(format!(
            "is not 0 or 1; a code {x} for a competing event (e.g. death before the event of interest) needs \
             `cohort.causes`, e.g. `causes: {{1: metastasis, {x}: death}}`"
        )),
        (None, None) => Err("is not 0 or 1".into()),
        (Some(causes), _) => Err(format!(
            "is not 0 (censored) or a cause declared in `cohort.causes` ({})",
            causes.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Reads and validates a clinical table as declared by the cohort block.
pub fn read_clinical(path: &Path, c: &Cohort) -> anyhow::Result<ClinicalTable> {
    let mut csv = ClinicalCsv::open(path, c)?;
    let f = csv.f.clone();
    let time_c = csv.column(&c.time, "time")?;
    let event_c = csv.column(&c.event, "event")?;
    let cov_c: Vec<usize> = c.covariates.iter().map(|n| csv.column(n, "covariate")).collect::<anyhow::Result<_>>()?;
    let policy = c.missing.as_deref().unwrap_or("error");
    let mut t = ClinicalTable {
        ids: vec![],
        time: vec![],
        event: vec![],
        status: vec![],
        covariates: c.covariates.clone(),
        cells: vec![],
        dropped: vec![],
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in csv.rows() {
        let Row { row, id, record: rec } = r?;
        if let Some(first) = seen.insert(id.clone(), row) {
            bail!(
                "{f}: row {row}, column `{}`: duplicate patient id `{}` (first seen in row {first})",
                c.id,
                crate::util::cell_excerpt(&id)
            );
        }
        let time_s = rec.get(time_c).unwrap_or("").trim();
        let time: f64 = time_s.parse().ok().filter(|x: &f64| x.is_finite()).with_context(|| {
            format!(
                "{f}: row {row}, column `{}`: time `{}` is not a finite number",
                c.time,
                crate::util::cell_excerpt(time_s)
            )
        })?;
        if time < 0.0 {
            bail!("{f}: row {row}, column `{}`: time {time} is negative; expected ≥ 0", c.time);
        }
        let ev_s = rec.get(event_c).unwrap_or("").trim();
        let status = event_code(ev_s, c).map_err(|why| {
            anyhow::anyhow!("{f}: row {row}, column `{}`: event `{}` {why}", c.event, crate::util::cell_excerpt(ev_s))
        })?;
        let mut cells = Vec::with_capacity(cov_c.len());
        let mut drop_reason = None;
        for (j, &cc) in cov_c.iter().enumerate() {
            let name = &c.covariates[j];
            let s = rec.get(cc).unwrap_or("").trim();
            if is_missing(s) {
                match policy {
                    "drop" => {
                        drop_reason.get_or_insert(format!("missing `{name}`"));
                    }
                    "impute" => {}
                    _ => bail!(
                        "{f}: row {row}, column `{name}`: missing value (patient {}); \
                         declare `cohort.missing: drop` or `impute` to allow it",
                        crate::util::display_id(&id)
                    ),
                }
                cells.push(Cell::Missing);
            } else if c.categorical.contains(name) {
                cells.push(Cell::Level(s.to_string()));
            } else {
                match s.parse::<f64>() {
                    Ok(x) if x.is_finite() && x.abs() > MAX_ABS => bail!(
                        "{f}: row {row}, column `{name}`: `{}` is too large to standardise (its square overflows); \
                         expected a value within ±{MAX_ABS:e}",
                        crate::util::cell_excerpt(s),
                    ),
                    Ok(x) if x.is_finite() => cells.push(Cell::Num(x)),
                    _ => bail!(
                        "{f}: row {row}, column `{name}`: `{}` is not a number; \
                         list the column under `cohort.categorical` if it is categorical",
                        crate::util::cell_excerpt(s)
                    ),
                }
            }
        }
        if let Some(reason) = drop_reason {
            t.dropped.push(Dropped { row, id, reason });
            continue;
        }
        t.ids.push(id);
        t.time.push(time);
        t.event.push(status == 1);
        t.status.push(status);
        t.cells.push(cells);
    }
    if t.ids.is_empty() {
        bail!("{f}: no patients (after dropping rows with missing values: {})", t.dropped.len());
    }
    if !t.event.iter().any(|&e| e) {
        bail!(
            "{f}: column `{}` has no events (all {} patients censored); survival analysis needs at least one",
            c.event,
            t.ids.len()
        );
    }
    Ok(t)
}
