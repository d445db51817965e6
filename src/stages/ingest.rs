//! `ingest`: reads and validates the cohort's clinical table (and, once slides land, its
//! slide manifest) into a normalised cohort table.
//!
//! **Inputs:** `cohort.clinical` (CSV, one row per patient), `cohort.slides` when given.
//! **Outputs:** `cohort.csv` (id, time, event, covariates; missing values empty),
//! `cohort.json` (counts, dropped rows, per-covariate summary) and, with a slide manifest,
//! `slides.csv` / `slides.json` (every slide opened and validated: vendor, size, levels,
//! µm/px, objective, associated images, content digest).
//! **Key covers:** the cohort block (columns, covariates, categorical, missing policy,
//! mpp override) and the content digests of the files.
//!
//! Validation: the id, time and event columns and every covariate must exist, and no header
//! column may be written twice; ids non-empty, unique and free of control characters; time
//! numeric, finite and ≥ 0; event 0 or 1; at least one event; numeric covariates within
//! ±[`crate::model::design::MAX_ABS`] (their squares must stay finite). A missing
//! covariate value is an error unless `cohort.missing` is `drop` (the row is dropped and
//! counted) or `impute` (kept empty; training imputes inside its folds). Errors name the file,
//! the data row (1-based, header excluded; the file line is row + 1) and the column, and quote
//! at most the offending cell (cut to 40 characters, controls shown as `<U+XXXX>`), never the
//! header row or a line of the file.
use super::{resolved, CheckCx, Checked, Fanout, InputRef, ParamError, RunCx, StageKind};
use crate::spec::{locate::Seg, Cohort};
use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

/// The `cohort.id` value for tables without an id column: patients are named `row<N>`.
pub const ROW_IDS: &str = "@row";

/// The `ingest` kind.
pub struct Ingest;

/// What the key covers of the cohort block.
#[derive(Serialize)]
struct IngestParams<'a> {
    id: &'a str,
    time: &'a str,
    event: &'a str,
    covariates: &'a [String],
    categorical: &'a [String],
    missing: &'a str,
    mpp_override: Option<f64>,
}

impl StageKind for Ingest {
    fn name(&self) -> &'static str {
        crate::contracts::INGEST
    }
    fn version(&self) -> u32 {
        1
    }
    fn about(&self) -> &'static str {
        "validate the cohort's clinical table (and slide manifest)"
    }
    fn item_scoped(&self) -> bool {
        true
    }
    fn check(&self, params: &Value, cx: &CheckCx) -> Result<Checked, ParamError> {
        if let Some((k, _)) = params.as_object().and_then(|m| m.iter().next()) {
            return Err(ParamError::at(vec![Seg::key(k)], format!("unknown field `{k}`: `ingest` takes its settings from the `cohort` block")));
        }
        let Some(c) = cx.cohort else {
            return Err(ParamError::at(vec![], "`ingest` needs a `cohort` block with at least `clinical`"));
        };
        let p = IngestParams {
            id: &c.id,
            time: &c.time,
            event: &c.event,
            covariates: &c.covariates,
            categorical: &c.categorical,
            missing: c.missing.as_deref().unwrap_or("error"),
            mpp_override: c.mpp_override,
        };
        let mut inputs = vec![InputRef {
            role: "clinical".into(),
            path: c.clinical.clone(),
            at: vec![Seg::key("cohort"), Seg::key("clinical")],
            absolute: true,
        }];
        if let Some(s) = &c.slides {
            inputs.push(InputRef {
                role: "slides".into(),
                path: s.clone(),
                at: vec![Seg::key("cohort"), Seg::key("slides")],
                absolute: true,
            });
        }
        Ok(Checked { params: resolved(&p), inputs, fanout: Fanout::Single, uses_seed: false, stains: None })
    }

    fn run(&self, cx: &RunCx) -> anyhow::Result<()> {
        let cohort = cx.cohort.context("ingest needs a cohort block")?;
        let clinical = cx.input("clinical")?;
        let table = read_clinical(&clinical.path, cohort)?;
        for d in &table.dropped {
            cx.log(&format!("dropped row {} (patient {}): {}", d.row, crate::util::display_id(&d.id), d.reason));
        }
        if !table.dropped.is_empty() {
            cx.log(&format!("{} row(s) dropped under `missing: drop`", table.dropped.len()));
        }
        table.write_csv(&cx.out.join("cohort.csv"))?;
        crate::util::write_file(cx.out.join("cohort.json"), serde_json::to_string_pretty(&table.summary(cohort))?)?;
        if let Ok(manifest) = cx.input("slides") {
            ingest_slides(cx, &manifest.path, &table, cohort)?;
        }
        Ok(())
    }
}

/// Opens and validates every slide of the manifest; writes `slides.csv` and `slides.json`
/// (metadata and content digest per slide, paths relative to the manifest).
fn ingest_slides(cx: &RunCx, manifest: &Path, table: &ClinicalTable, cohort: &Cohort) -> anyhow::Result<()> {
    use crate::slide::manifest::validate_manifest;
    let ids: std::collections::BTreeSet<String> = table.ids.iter().cloned().collect();
    let v = validate_manifest(manifest, &ids, cohort.mpp_override)?;
    for w in &v.warnings {
        cx.log(&format!("warning: {w}"));
        eprintln!("spatia: warning: {}", crate::util::display_text(w));
    }
    let digests: HashMap<(&str, &str), &str> = cx
        .slides
        .iter()
        .filter_map(|it| Some(((it.attrs.get("patient_id")?.as_str(), it.attrs.get("rel_path")?.as_str()), it.attrs.get("digest")?.as_str())))
        .collect();
    let ids_of: HashMap<(&str, &str), &str> = cx
        .slides
        .iter()
        .filter_map(|it| Some(((it.attrs.get("patient_id")?.as_str(), it.attrs.get("rel_path")?.as_str()), it.id.as_str())))
        .collect();
    let slides_csv = cx.out.join("slides.csv");
    let mut w = csv::Writer::from_path(&slides_csv).with_context(|| format!("cannot write {}", slides_csv.display()))?;
    w.write_record(["slide_id", "patient_id", "stain", "path", "vendor", "width", "height", "levels", "mpp_x", "mpp_y", "objective_power", "blake3"])?;
    let mut rows = Vec::new();
    for (r, m) in &v.slides {
        let key = (r.patient_id.as_str(), r.rel_path.as_str());
        let id = ids_of.get(&key).copied().unwrap_or("");
        let digest = digests.get(&key).copied().unwrap_or("");
        let f = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
        w.write_record([
            id,
            &r.patient_id,
            r.stain.as_str(),
            &r.rel_path,
            &m.vendor,
            &m.width.to_string(),
            &m.height.to_string(),
            &m.levels.len().to_string(),
            &f(m.mpp_x),
            &f(m.mpp_y),
            &f(m.objective_power),
            digest,
        ])?;
        rows.push(json!({
            "slide_id": id, "patient_id": r.patient_id, "stain": r.stain.as_str(), "path": r.rel_path,
            "vendor": m.vendor, "width": m.width, "height": m.height, "levels": m.levels,
            "mpp_x": m.mpp_x, "mpp_y": m.mpp_y, "mpp_source": m.mpp_source, "objective_power": m.objective_power,
            "associated": m.associated, "blake3": digest,
        }));
    }
    w.flush().with_context(|| format!("cannot write {}", slides_csv.display()))?;
    let summary = json!({"slides": rows, "warnings": v.warnings});
    crate::util::write_file(cx.out.join("slides.json"), serde_json::to_string_pretty(&summary)?)?;
    cx.log(&format!("{} slide(s) validated", v.slides.len()));
    Ok(())
}

/// One covariate value: a number, a category level, or missing.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Num(f64),
    Level(String),
    Missing,
}

/// A validated clinical table.
#[derive(Debug, Clone)]
pub struct ClinicalTable {
    pub ids: Vec<String>,
    pub time: Vec<f64>,
    pub event: Vec<bool>,
    pub covariates: Vec<String>,
    /// Row-major: `cells[i][j]` is patient i, covariate j.
    pub cells: Vec<Vec<Cell>>,
    pub dropped: Vec<Dropped>,
}

/// A row left out under `missing: drop`.
#[derive(Debug, Clone, Serialize)]
pub struct Dropped {
    pub row: usize,
    pub id: String,
    pub reason: String,
}

fn is_missing(s: &str) -> bool {
    matches!(s.trim(), "" | "NA" | "NaN" | "nan" | "N/A" | "null" | "NULL" | "na")
}

/// Reads and validates a clinical table as declared by the cohort block.
pub fn read_clinical(path: &Path, c: &Cohort) -> anyhow::Result<ClinicalTable> {
    let f = path.display();
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .with_context(|| format!("cannot read clinical table {f}"))?;
    let headers = rdr.headers().with_context(|| format!("{f}: cannot read the header row"))?.clone();
    if let Some((name, a, b)) = crate::util::duplicate_column(&headers, false) {
        bail!("{f}: column `{name}` is written twice in the header (columns {a} and {b}); expected unique column names");
    }
    // the error names the missing column and at most one close header name, never the header
    // row itself (it may be the first line of any file)
    let col = |name: &str, what: &str| -> anyhow::Result<usize> {
        headers.iter().position(|h| h == name).with_context(|| {
            let hint = match crate::util::closest_column(&headers, name) {
                Some(h) => format!("; did you mean `{h}`?"),
                None => String::new(),
            };
            format!(
                "{f}: no column `{}` (the cohort's {what}) among the header's {} column(s){hint}",
                crate::util::cell_excerpt(name),
                headers.len()
            )
        })
    };
    // `id: "@row"`: the table has no id column; patients are named by data row (`row1` …)
    let id_c = if c.id == ROW_IDS { None } else { Some(col(&c.id, "id")?) };
    let time_c = col(&c.time, "time")?;
    let event_c = col(&c.event, "event")?;
    let cov_c: Vec<usize> = c.covariates.iter().map(|n| col(n, "covariate")).collect::<anyhow::Result<_>>()?;
    let policy = c.missing.as_deref().unwrap_or("error");
    let mut t = ClinicalTable {
        ids: vec![],
        time: vec![],
        event: vec![],
        covariates: c.covariates.clone(),
        cells: vec![],
        dropped: vec![],
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, rec) in rdr.records().enumerate() {
        let row = i + 1;
        let rec = rec.with_context(|| format!("{f}: row {row} (line {}) is not valid CSV", row + 1))?;
        let id = match id_c {
            Some(ic) => rec.get(ic).unwrap_or("").trim().to_string(),
            None => format!("row{row}"),
        };
        if id.is_empty() {
            bail!("{f}: row {row}, column `{}`: empty patient id", c.id);
        }
        if let Some(why) = crate::util::id_problem(&id) {
            bail!("{f}: row {row} (line {}), column `{}`: {why}", row + 1, c.id);
        }
        if let Some(first) = seen.insert(id.clone(), row) {
            bail!("{f}: row {row}, column `{}`: duplicate patient id `{}` (first seen in row {first})", c.id, crate::util::cell_excerpt(&id));
        }
        let time_s = rec.get(time_c).unwrap_or("").trim();
        let time: f64 = time_s
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite())
            .with_context(|| format!("{f}: row {row}, column `{}`: time `{}` is not a finite number", c.time, crate::util::cell_excerpt(time_s)))?;
        if time < 0.0 {
            bail!("{f}: row {row}, column `{}`: time {time} is negative; expected ≥ 0", c.time);
        }
        let ev_s = rec.get(event_c).unwrap_or("").trim();
        let event = match ev_s.parse::<f64>() {
            Ok(x) if x == 0.0 => false,
            Ok(x) if x == 1.0 => true,
            _ => bail!("{f}: row {row}, column `{}`: event `{}` is not 0 or 1", c.event, crate::util::cell_excerpt(ev_s)),
        };
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
                        "{f}: row {row}, column `{name}`: missing value (patient {}); declare `cohort.missing: drop` or `impute` to allow it",
                        crate::util::display_id(&id)
                    ),
                }
                cells.push(Cell::Missing);
            } else if c.categorical.contains(name) {
                cells.push(Cell::Level(s.to_string()));
            } else {
                match s.parse::<f64>() {
                    Ok(x) if x.is_finite() && x.abs() > crate::model::design::MAX_ABS => bail!(
                        "{f}: row {row}, column `{name}`: `{}` is too large to standardise (its square overflows); expected a value within ±{:e}",
                        crate::util::cell_excerpt(s),
                        crate::model::design::MAX_ABS
                    ),
                    Ok(x) if x.is_finite() => cells.push(Cell::Num(x)),
                    _ => bail!(
                        "{f}: row {row}, column `{name}`: `{}` is not a number; list the column under `cohort.categorical` if it is categorical",
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
        t.event.push(event);
        t.cells.push(cells);
    }
    if t.ids.is_empty() {
        bail!("{f}: no patients (after dropping rows with missing values: {})", t.dropped.len());
    }
    if !t.event.iter().any(|&e| e) {
        bail!("{f}: column `{}` has no events (all {} patients censored); survival analysis needs at least one", c.event, t.ids.len());
    }
    Ok(t)
}

impl ClinicalTable {
    /// Writes the normalised table (`patient_id,time,event,<covariates>`).
    pub fn write_csv(&self, path: &Path) -> anyhow::Result<()> {
        self.write_csv_to(path).with_context(|| format!("cannot write {}", path.display()))
    }

    fn write_csv_to(&self, path: &Path) -> anyhow::Result<()> {
        let mut w = csv::Writer::from_path(path)?;
        let mut header = vec!["patient_id".to_string(), "time".into(), "event".into()];
        header.extend(self.covariates.iter().cloned());
        w.write_record(&header)?;
        for i in 0..self.ids.len() {
            let mut r = vec![self.ids[i].clone(), fmt_num(self.time[i]), (self.event[i] as u8).to_string()];
            for c in &self.cells[i] {
                r.push(match c {
                    Cell::Num(x) => fmt_num(*x),
                    Cell::Level(s) => s.clone(),
                    Cell::Missing => String::new(),
                });
            }
            w.write_record(&r)?;
        }
        w.flush()?;
        Ok(())
    }

    /// Counts and per-covariate summaries.
    pub fn summary(&self, c: &Cohort) -> Value {
        let n = self.ids.len();
        let events = self.event.iter().filter(|&&e| e).count();
        let mut covs = serde_json::Map::new();
        for (j, name) in self.covariates.iter().enumerate() {
            let vals: Vec<f64> = self.cells.iter().filter_map(|r| if let Cell::Num(x) = r[j] { Some(x) } else { None }).collect();
            let missing = self.cells.iter().filter(|r| r[j] == Cell::Missing).count();
            let entry = if c.categorical.contains(name) {
                let mut levels: std::collections::BTreeMap<String, usize> = Default::default();
                for r in &self.cells {
                    if let Cell::Level(s) = &r[j] {
                        *levels.entry(s.clone()).or_default() += 1;
                    }
                }
                json!({"type": "categorical", "levels": levels, "missing": missing})
            } else {
                let mean = vals.iter().sum::<f64>() / vals.len().max(1) as f64;
                let min = vals.iter().cloned().fold(f64::INFINITY, f64::min);
                let max = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                json!({"type": "numeric", "mean": mean, "min": min, "max": max, "missing": missing})
            };
            covs.insert(name.clone(), entry);
        }
        json!({
            "patients": n,
            "events": events,
            "censored": n - events,
            "max_time": self.time.iter().cloned().fold(0.0, f64::max),
            "dropped": self.dropped,
            "missing_policy": c.missing.as_deref().unwrap_or("error"),
            "covariates": covs,
        })
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}
