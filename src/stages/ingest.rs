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
//! The validation itself is the cohort module's ([`crate::cohort::read_clinical`],
//! [`crate::cohort::manifest::validate_manifest`]): errors name the file, the row and the
//! column, and quote at most the offending cell.
use super::{resolved, CheckCx, Checked, Fanout, InputRef, ParamError, RunCx, StageKind, Typed};
use crate::cohort::{read_clinical, ClinicalTable, Cohort};
use crate::spec::locate::Seg;
use anyhow::Context;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

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
        "ingest"
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
        Ok(Checked { params: resolved(&p), typed: Typed::none(), inputs, fanout: Fanout::Single, uses_seed: false, stains: None })
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
    use crate::cohort::manifest::validate_manifest;
    let ids: std::collections::BTreeSet<String> = table.ids.iter().cloned().collect();
    let v = validate_manifest(manifest, &ids, cohort.mpp_override)?;
    for w in &v.warnings {
        cx.log(&format!("warning: {w}"));
        eprintln!("spatia: warning: {}", crate::util::display_text(w));
    }
    // (patient, path cell) → (slide id, content digest), from the items the DAG listed
    let listed: HashMap<(&str, &str), (&str, &str)> = cx
        .slides
        .iter()
        .filter_map(|it| {
            let s = it.slide.as_ref()?;
            Some(((it.patient.as_str(), s.rel_path.as_str()), (it.id.as_str(), s.digest.as_str())))
        })
        .collect();
    let slides_csv = cx.out.join("slides.csv");
    let mut w = csv::Writer::from_path(&slides_csv).with_context(|| format!("cannot write {}", slides_csv.display()))?;
    w.write_record(["slide_id", "patient_id", "stain", "path", "vendor", "width", "height", "levels", "mpp_x", "mpp_y", "objective_power", "blake3"])?;
    let mut rows = Vec::new();
    for (r, m) in &v.slides {
        let key = (r.patient_id.as_str(), r.rel_path.as_str());
        let (id, digest) = listed.get(&key).copied().unwrap_or(("", ""));
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
