//! `ingest`: reads and validates the cohort's clinical table (and, once slides land, its
//! slide manifest) into a normalised cohort table.
//!
//! **Inputs:** `cohort.clinical` (CSV, one row per patient), `cohort.slides` when given.
//! **Outputs:** `cohort.csv` (id, time, event, covariates; missing values empty),
//! `cohort.json` (counts, dropped rows, per-covariate summary) and, with a slide manifest,
//! `slides.csv` / `slides.json` (every slide opened and validated: vendor, size, levels,
//! µm/px, objective, associated images, content digest).
//! **Key covers:** the cohort block (columns, competing causes when declared, covariates,
//! categorical, missing policy, mpp override) and the content digests of the files.
//!
//! The validation itself is the cohort module's ([`crate::cohort::read_clinical`],
//! [`crate::cohort::manifest::validate_manifest`]): errors name the file, the row and the
//! column, and quote at most the offending cell.
use super::{resolved, CheckCx, Checked, Fanout, InputRef, ParamError, RunCx, StageKind, Typed};
use crate::cohort::{read_clinical, ClinicalTable, Cohort};
use crate::contracts::ingest::{CohortCsv, CohortSummary, SlideRecord, SlidesJson};
use crate::docpath::Seg;
use anyhow::Context;
use serde::Serialize;
use serde_json::Value;
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
    /// Competing-risks coding (absent without `cohort.causes`, so earlier keys stand).
    #[serde(skip_serializing_if = "Option::is_none")]
    causes: Option<&'a std::collections::BTreeMap<u32, String>>,
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
            return Err(ParamError::at(
                vec![Seg::key(k)],
                format!("unknown field `{k}`: `ingest` takes its settings from the `cohort` block"),
            ));
        }
        let Some(c) = cx.cohort else {
            return Err(ParamError::at(vec![], "`ingest` needs a `cohort` block with at least `clinical`"));
        };
        let p = IngestParams {
            id: &c.id,
            time: &c.time,
            event: &c.event,
            causes: c.causes.as_ref(),
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
        Ok(Checked {
            params: resolved(&p),
            typed: Typed::none(),
            inputs,
            fanout: Fanout::Single,
            uses_seed: false,
            stains: None,
        })
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
        CohortCsv::from_table(&table).write(&cx.out.join(CohortCsv::FILE))?;
        CohortSummary::of(&table, cohort).write(&cx.out.join(CohortSummary::FILE))?;
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
    let mut slides = Vec::with_capacity(v.slides.len());
    for (r, m) in &v.slides {
        let (id, digest) = listed.get(&(r.patient_id.as_str(), r.rel_path.as_str())).copied().unwrap_or(("", ""));
        slides.push(SlideRecord::new(id, &r.patient_id, r.stain, &r.rel_path, m, digest));
    }
    let out = SlidesJson { slides, warnings: v.warnings.clone() };
    out.write_csv(&cx.out.join(SlidesJson::CSV))?;
    out.write(&cx.out.join(SlidesJson::FILE))?;
    cx.log(&format!("{} slide(s) validated", v.slides.len()));
    Ok(())
}
