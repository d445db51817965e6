//! Slide manifests: the CSV that lists a cohort's slides, one row per slide.
//!
//! Columns (header required, names case-insensitive, any order, extra columns ignored):
//! `patient_id`, `path` (relative to the manifest's directory, or absolute), `stain`
//! (`HE`, `ER`, `PR`, `HER2`, `KI67`; case-insensitive, `H&E` and `Ki-67` accepted) and an
//! optional `mpp` (µm/px override; empty = use the file's) and an optional `features` (an
//! existing CLAM/TRIDENT `.h5` bag of the slide, relative to the manifest's directory).
//!
//! [`parse_manifest`] checks the CSV itself; [`validate_manifest`] opens every slide (in
//! parallel) and checks it against the clinical patient ids. Every problem is reported at once,
//! each naming its row as `row N (line L)` — N counts data rows from 1, L is the line in the
//! file — so a user fixes a manifest in one pass.
use crate::slide::{Slide, SlideMeta, Stain};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Problems in a slide manifest, one per row (every bad row is listed).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("slide manifest {}: {}", path.display(), problems.join("; "))]
pub struct ManifestError {
    pub path: PathBuf,
    pub problems: Vec<String>,
}

/// Result alias of [`crate::cohort::manifest`].
pub type Result<T> = std::result::Result<T, ManifestError>;

/// One row of a manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManifestRow {
    /// Data row number, from 1.
    pub row: usize,
    /// Line in the file (the header is line 1).
    pub line: u64,
    /// Patient id as written.
    pub patient_id: String,
    /// The `path` cell as written.
    pub rel_path: String,
    /// The path resolved against the manifest's directory.
    pub path: PathBuf,
    /// The stain.
    pub stain: Stain,
    /// µm/px override, when the row gives one.
    pub mpp: Option<f64>,
    /// The `features` cell (a CLAM/TRIDENT bag, relative to the manifest's directory), when
    /// the manifest has the column and the row fills it.
    pub features: Option<String>,
}

impl ManifestRow {
    /// `row N (line L)`, as errors name it.
    pub fn label(&self) -> String {
        format!("row {} (line {})", self.row, self.line)
    }
}

/// A manifest whose every slide opened and was checked.
#[derive(Debug, Clone, Serialize)]
pub struct ValidatedManifest {
    /// Rows with the metadata of their slides, in file order.
    pub slides: Vec<(ManifestRow, SlideMeta)>,
    /// Non-fatal findings (a clinical patient without any slide).
    pub warnings: Vec<String>,
}

fn find_col(headers: &csv::StringRecord, names: &[&str]) -> Option<usize> {
    headers.iter().position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
}

/// Reads and checks the CSV of a manifest (no slide is opened).
///
/// # Errors
/// [`ManifestError`] listing every bad row: missing column, empty patient id or path,
/// unknown stain, bad `mpp`.
pub fn parse_manifest(path: &Path) -> Result<Vec<ManifestRow>> {
    let fail = |problems: Vec<String>| ManifestError { path: path.to_path_buf(), problems };
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| fail(vec![format!("cannot read: {e}")]))?;
    let headers = rdr.headers().map_err(|e| fail(vec![format!("cannot read the header: {e}")]))?.clone();
    if let Some((name, a, b)) = crate::util::duplicate_column(&headers, true) {
        return Err(fail(vec![format!(
            "column `{name}` is written twice in the header (columns {a} and {b}); expected unique column names"
        )]));
    }
    let (pid, pth, stn) = (
        find_col(&headers, &["patient_id", "patient"]),
        find_col(&headers, &["path", "slide", "file"]),
        find_col(&headers, &["stain"]),
    );
    let mpp_col = find_col(&headers, &["mpp", "mpp_override"]);
    let features_col = find_col(&headers, &["features"]);
    let (Some(pid), Some(pth), Some(stn)) = (pid, pth, stn) else {
        // name what is missing, not the header row (it may be any file's first line)
        let missing: Vec<&str> = [(pid, "patient_id"), (pth, "path"), (stn, "stain")]
            .iter()
            .filter(|(c, _)| c.is_none())
            .map(|(_, n)| *n)
            .collect();
        return Err(fail(vec![format!(
            "no column {} in the header ({} column(s)); expected columns patient_id, path, stain (and optionally mpp)",
            missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "),
            headers.len()
        )]));
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let row = i + 1;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("row {row}: unreadable CSV: {e}"));
                continue;
            }
        };
        let line = rec.position().map(|p| p.line()).unwrap_or(row as u64 + 1);
        let at = format!("row {row} (line {line})");
        let cell = |c: usize| rec.get(c).unwrap_or("").trim();
        let (p, f, s) = (cell(pid), cell(pth), cell(stn));
        if rec.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let mut ok = true;
        if let Some(why) = crate::util::id_problem(p) {
            problems.push(format!(
                "{at}, column `patient_id`: {}",
                if p.is_empty() { "empty patient_id".to_string() } else { why }
            ));
            ok = false;
        }
        if f.is_empty() {
            problems.push(format!("{at}: empty path"));
            ok = false;
        } else if f.chars().any(char::is_control) {
            problems.push(format!(
                "{at}, column `path`: `{}` contains a control character; expected a plain file path",
                crate::util::cell_excerpt(f)
            ));
            ok = false;
        }
        let stain = match s.parse::<Stain>() {
            Ok(st) => Some(st),
            Err(e) => {
                let _ = e;
                problems.push(format!(
                    "{at}: unknown stain \"{}\" (expected one of HE, ER, PR, HER2, KI67)",
                    crate::util::cell_excerpt(s)
                ));
                None
            }
        };
        let mpp = match mpp_col.map(cell).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => match v.parse::<f64>() {
                Ok(m) if m.is_finite() && m > 0.0 => Some(m),
                _ => {
                    problems.push(format!(
                        "{at}, column `mpp`: `{}` is not a positive number of µm per pixel",
                        crate::util::cell_excerpt(v)
                    ));
                    ok = false;
                    None
                }
            },
        };
        if let (true, Some(stain)) = (ok, stain) {
            rows.push(ManifestRow {
                row,
                line,
                patient_id: p.to_string(),
                rel_path: f.to_string(),
                path: base.join(f),
                stain,
                mpp,
                features: features_col.map(cell).filter(|v| !v.is_empty()).map(str::to_string),
            });
        }
    }
    if rows.is_empty() && problems.is_empty() {
        problems.push("no slide rows".into());
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(fail(problems))
    }
}

/// Parses the manifest and opens every slide; checks each row's patient against
/// `patients` (the clinical table's ids). `default_mpp` is the µm/px assumed for a slide that
/// records none and whose row has no `mpp` cell (the spec's `cohort.mpp_override`).
///
/// # Errors
/// [`ManifestError`] listing, per row: a missing file, an unreadable or truncated file,
/// a file that is no slide, a slide without µm/px and without an `mpp` cell, a patient not in
/// `patients`, and any CSV problem from [`parse_manifest`]. A clinical patient with no slide is
/// a warning, not an error.
pub fn validate_manifest(
    path: &Path,
    patients: &BTreeSet<String>,
    default_mpp: Option<f64>,
) -> Result<ValidatedManifest> {
    let rows = parse_manifest(path)?;
    let opened: Vec<std::result::Result<SlideMeta, String>> = rows
        .par_iter()
        .map(|r| {
            Slide::open(&r.path, r.mpp.or(default_mpp)).map(|s| s.meta().clone()).map_err(|e| {
                format!(
                    "{} ({} `{}`): {e}",
                    r.label(),
                    crate::util::display_id(&r.patient_id),
                    crate::util::display_id(&r.rel_path)
                )
            })
        })
        .collect();
    let mut problems = Vec::new();
    let mut slides = Vec::new();
    for (r, o) in rows.into_iter().zip(opened) {
        if !patients.contains(&r.patient_id) {
            problems.push(format!(
                "{}: patient \"{}\" is not in the clinical table",
                r.label(),
                crate::util::cell_excerpt(&r.patient_id)
            ));
        }
        match o {
            Ok(meta) => slides.push((r, meta)),
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        return Err(ManifestError { path: path.to_path_buf(), problems });
    }
    let mut per_patient: BTreeMap<&str, usize> = BTreeMap::new();
    for (r, _) in &slides {
        *per_patient.entry(r.patient_id.as_str()).or_default() += 1;
    }
    let warnings = patients
        .iter()
        .filter(|p| !per_patient.contains_key(p.as_str()))
        .map(|p| {
            format!("patient `{}` of the clinical table has no slide in {}", crate::util::display_id(p), path.display())
        })
        .collect();
    Ok(ValidatedManifest { slides, warnings })
}
