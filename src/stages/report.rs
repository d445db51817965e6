//! `report`: one self-contained HTML page per experiment (all arms).
//!
//! **Inputs:** the outputs of its needs, found by the needed stage's kind whatever its name
//! (the kind constants and typed handles of [`crate::contracts`]):
//! `ingest` (cohort table, slide manifest), `tile` (per-slide QC images and counts), `stain`
//! (IHC positivity maps), `maps` (the "Spatial maps" section, [`crate::contracts::maps`]), `evaluate` (`metrics.json` and curves), `calibrate`
//! (`calibration.json` per arm), `train` (`model.json`: the attention-MIL training curves). Every one is optional; the page leaves out the sections it has
//! no data for. Needs of other kinds are ignored (they still appear in the provenance table).
//! The lineage of every upstream node ([`RunCx::upstream`]) feeds the provenance table.
//! **Outputs:** `index.html` (byte-identical for the same inputs: durations, times and hosts
//! go to the `run-facts.json` sidecar the publish writes beside it; inline SVG plots, PNGs as base64 data URIs, no script, no
//! external resource) and `figures/<name>.svg` (`km`, `roc`, `calibration`,
//! `calibration_recalibrated`, `forest`, whichever are drawn).
//! **Key covers:** `title`, `show_patient_ids`, `qc_slides`, `arm`, the experiment name and
//! the spec file (shown on the page), the seed (pseudonyms), the keys of every needed node of
//! every arm, and this kind's version, which also covers the templates compiled into the
//! binary (`templates/report.html` and `templates/report/*.html`).
//! **Reference:** the page layout follows TRIPOD's reporting items for prediction models
//! (participants, outcome, performance with CIs, calibration).
use super::{resolved, typed, CheckCx, Checked, ParamError, RunCx, StageKind};
use crate::contracts::{CalibrateOutput, EvaluateOutput, TrainOutput, INGEST, MAPS, STAIN, TILE};
use crate::docpath::Seg;
use crate::report::figures::{self, FiguresJson};
use crate::report::page::{self, Lineage, LineageInput, Options, Sources};
use crate::report::plots::export::{check_figure_size, Format};
use crate::report::plots::panels::{compose, select, Selection, SELECTABLE};
use crate::report::plots::{style, Meta, Style, TimeAxis, TimeUnit};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The `report` kind.
pub struct Report;

/// Parameters of `report` as written in the spec.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    /// Page title (default: the experiment name).
    #[serde(default)]
    title: Option<String>,
    /// Show patient and slide identifiers instead of pseudonyms.
    #[serde(default)]
    show_patient_ids: bool,
    /// How many slides get QC thumbnails (and how many IHC slides get positivity maps).
    #[serde(default = "default_qc_slides")]
    qc_slides: usize,
    /// The arm of the main figures (KM, ROC, calibration); default: the last arm.
    #[serde(default)]
    arm: Option<String>,
    /// Unit of the cohort's time column: `days` (default), `months` or `years`.
    #[serde(default)]
    time_unit: TimeUnit,
    /// Unit the figures and tables show times in (default: `time_unit`).
    #[serde(default)]
    display_unit: Option<TimeUnit>,
    /// The paper's figures, by file name: panels, width, formats.
    #[serde(default)]
    figures: BTreeMap<String, DeclaredFigure>,
}

/// A figure of the paper, written into the report's `figures/` as `<name>.<format>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeclaredFigure {
    /// The panels, lettered A, B, … when more than one.
    panels: Vec<Selection>,
    /// Width, mm (85: a single column, 174: two).
    #[serde(default = "single_column")]
    width_mm: f64,
    /// Panels per row (default: up to 2).
    #[serde(default)]
    columns: Option<usize>,
    /// Files to write (default `[svg, pdf]`).
    #[serde(default = "default_formats")]
    formats: Vec<Format>,
    /// PNG resolution.
    #[serde(default = "default_dpi")]
    dpi: u32,
    /// Base type size, pt.
    #[serde(default = "default_font_pt")]
    font_pt: f64,
}

fn single_column() -> f64 {
    style::SINGLE_COLUMN_MM
}
fn default_formats() -> Vec<Format> {
    vec![Format::Svg, Format::Pdf]
}
fn default_dpi() -> u32 {
    300
}
fn default_font_pt() -> f64 {
    7.0
}

fn default_qc_slides() -> usize {
    4
}

/// Resolved parameters: what the key covers.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReportParams {
    title: String,
    show_patient_ids: bool,
    qc_slides: usize,
    arm: Option<String>,
    time: TimeAxis,
    figures: BTreeMap<String, DeclaredFigure>,
    // context folded in (shown on the page)
    experiment: String,
    spec_file: String,
}

impl StageKind for Report {
    fn name(&self) -> &'static str {
        crate::contracts::REPORT
    }
    fn version(&self) -> u32 {
        // 4: shown ids neutralise bidi and control characters (`<U+202E>`)
        // 5: a competing-risks section (cumulative incidence by risk group) in such cohorts
        // 6: attention-MIL arms: a training section (epoch choice, training loss) when the
        //    report needs `train`, and arms with conditional intervals marked †
        // 7: print-sized figures (DejaVu Sans, Okabe–Ito, legends outside the plot, time units),
        //    `figures/figures.json` for `spatia figure`, the spec's declared `figures`
        // 8: no durations on the page (they vary from run to run): `run-facts.json` beside a
        //    published page holds them
        // 9: a "Spatial maps" section (the `maps` stage's maps, scores, nuclei crops, KM by
        //    Ki-67 labelling-index tertile) when the report needs `maps`
        9
    }
    fn about(&self) -> &'static str {
        "one self-contained HTML page: cohort, slide QC, KM/ROC/calibration, arms, provenance"
    }
    fn gathers_arms(&self) -> bool {
        true
    }
    fn wants_lineage(&self) -> bool {
        true
    }
    fn check(&self, params: &Value, cx: &CheckCx) -> Result<Checked, ParamError> {
        let p: RawParams = typed(params)?;
        super::in_range_usize(vec![Seg::key("qc_slides")], &crate::bounds::REPORT_QC_SLIDES, p.qc_slides)
            .map_err(|e| ParamError::at(e.path, format!("{} (images are embedded in the page)", e.msg)))?;
        if p.title.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(ParamError::at(vec![Seg::key("title")], "`title` must not be empty"));
        }
        for (name, f) in &p.figures {
            let at = |k: &str| vec![Seg::key("figures"), Seg::key(name), Seg::key(k)];
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_name {
                return Err(ParamError::at(
                    vec![Seg::key("figures"), Seg::key(name)],
                    format!("figure name {name:?}: expected 1 to 64 letters, digits, `_` or `-` (it names the files)"),
                ));
            }
            if f.panels.is_empty() {
                return Err(ParamError::at(at("panels"), "expected at least one panel"));
            }
            for (i, s) in f.panels.iter().enumerate() {
                if !SELECTABLE.contains(&s.kind.as_str()) {
                    return Err(ParamError::at(
                        vec![Seg::key("figures"), Seg::key(name), Seg::key("panels"), Seg::Index(i), Seg::key("kind")],
                        format!("unknown figure kind {:?}: expected one of {}", s.kind, SELECTABLE.join(", ")),
                    ));
                }
            }
            check_figure_size(&format!("figures.{name}."), f.width_mm, f.dpi, f.font_pt).map_err(|m| {
                let key = m.split(':').next().unwrap_or("").rsplit('.').next().unwrap_or("").to_string();
                ParamError::at(at(&key), m)
            })?;
            if let Some(c) = f.columns {
                super::in_range_usize(at("columns"), &crate::bounds::REPORT_FIGURE_COLUMNS, c)?;
            }
            if f.formats.is_empty() {
                return Err(ParamError::at(at("formats"), "expected at least one of svg, png, pdf"));
            }
        }
        let r = ReportParams {
            title: p.title.unwrap_or_else(|| cx.experiment.to_string()),
            show_patient_ids: p.show_patient_ids,
            qc_slides: p.qc_slides,
            arm: p.arm,
            time: TimeAxis { data: p.time_unit, display: p.display_unit.unwrap_or(p.time_unit) },
            figures: p.figures,
            experiment: cx.experiment.to_string(),
            spec_file: cx.spec_file.to_string(),
        };
        let mut c = Checked::single(resolved(&r));
        c.uses_seed = true;
        Ok(c.with_typed(r))
    }

    fn run(&self, cx: &RunCx) -> anyhow::Result<()> {
        let p = cx.typed::<ReportParams>()?.clone();
        let sources = sources(cx);
        let opts = Options {
            title: p.title,
            experiment: p.experiment,
            spec_file: p.spec_file,
            show_patient_ids: p.show_patient_ids,
            qc_slides: p.qc_slides,
            arm: p.arm,
            seed: cx.seed,
            stage: cx.stage.to_string(),
            key: cx.key.to_string(),
            params: cx.params.clone(),
            tool: crate::provenance::tool_version(),
            libraries: crate::provenance::library_versions(),
            time: p.time,
        };
        let page = page::build(&sources, &opts, &lineage(cx.upstream))?;
        crate::util::write_file(cx.out.join("index.html"), &page.html).context("cannot write index.html")?;
        let figs = cx.out.join("figures");
        std::fs::create_dir_all(&figs).context("cannot create figures/")?;
        for (name, svg) in &page.figures {
            crate::util::write_file(figs.join(format!("{name}.svg")), svg)
                .with_context(|| format!("cannot write figures/{name}.svg"))?;
        }
        let record = FiguresJson {
            schema: figures::SCHEMA,
            report: cx.key.to_string(),
            time: p.time,
            arm: page.arm.clone(),
            figures: page.data,
        };
        record.write(&FiguresJson::path(cx.out))?;
        let meta = Meta { report: Some(cx.key.to_string()), run: None };
        for (name, f) in &p.figures {
            let panels = f
                .panels
                .iter()
                .map(|s| select(&record.figures, s, record.arm.as_deref()))
                .collect::<Result<Vec<_>, String>>()
                .map_err(|e| anyhow::anyhow!("report: figures.{name}: {e}"))?;
            let mut st = Style::journal(f.width_mm, p.time);
            st.font_pt = f.font_pt;
            let svg = compose(&panels, f.columns.unwrap_or(2), &st, &meta)?;
            for fmt in &f.formats {
                let bytes = fmt.encode(&svg, f.dpi).with_context(|| format!("figures.{name}"))?;
                crate::util::write_file(figs.join(format!("{name}.{}", fmt.extension())), &bytes)
                    .with_context(|| format!("cannot write figures/{name}.{}", fmt.extension()))?;
            }
        }
        cx.log(&format!(
            "report: {} bytes, {} figure(s); sources: ingest {}, {} tile, {} stain, evaluate {}, {} calibrate; {} upstream node(s)",
            page.html.len(),
            page.figures.len(),
            sources.ingest.is_some(),
            sources.tiles.len(),
            sources.stains.len(),
            sources.evaluate.is_some(),
            sources.calibrate.len(),
            cx.upstream.len()
        ));
        Ok(())
    }
}

/// The provenance table's rows: each upstream node's cache record and the arms sharing it.
fn lineage(upstream: &[super::Upstream]) -> Vec<Lineage> {
    upstream
        .iter()
        .map(|u| {
            let r = &u.record;
            Lineage {
                arms: u.arms.clone(),
                stage: r.stage.clone(),
                kind: r.kind.clone(),
                kind_version: r.kind_version,
                item: r.item.clone(),
                key: r.key.clone(),
                params: r.params.clone(),
                inputs: r
                    .inputs
                    .iter()
                    .map(|i| LineageInput { role: i.role.clone(), path: i.path.clone(), blake3: i.blake3.clone() })
                    .collect(),
                tool: r.tool.clone(),
                libraries: r.libraries.clone(),
            }
        })
        .collect()
}

/// Sorts the needs' directories by kind. Per-slide entries are deduplicated by slide id; a
/// single stage shared by several arms appears once; calibrate keeps one directory per arm
/// (its `calibration.json` names no arm: the arm is the need's).
pub fn sources(cx: &RunCx) -> Sources {
    let mut s = Sources::default();
    let push_arm = |s: &mut Sources, a: &str| {
        if !s.arms.iter().any(|x| x == a) {
            s.arms.push(a.to_string());
        }
    };
    for need in cx.needs {
        for a in &need.arms {
            push_arm(&mut s, a);
        }
        let first = || need.dirs.first().map(|(_, d)| d.clone());
        let per_item = |into: &mut Vec<(String, PathBuf)>| {
            for (item, dir) in &need.dirs {
                if let Some(id) = item {
                    if !into.iter().any(|(x, _)| x == id) {
                        into.push((id.clone(), dir.clone()));
                    }
                }
            }
        };
        if need.is(INGEST) {
            s.ingest = s.ingest.take().or_else(first);
        } else if need.is(TILE) {
            per_item(&mut s.tiles);
        } else if need.is(STAIN) {
            per_item(&mut s.stains);
        } else if need.is(MAPS) {
            per_item(&mut s.maps);
        }
        if let Some(out) = need.outputs::<EvaluateOutput>() {
            s.evaluate = s.evaluate.take().or_else(|| out.into_iter().next().map(|(_, _, e)| e));
        }
        for (_, arm, t) in need.outputs::<TrainOutput>().unwrap_or_default() {
            if !s.train.iter().any(|(a, _)| a == arm) {
                s.train.push((arm.to_string(), t));
            }
        }
        // arms sharing a calibrate node (same model) each get their row
        for (_, arm, c) in need.outputs::<CalibrateOutput>().unwrap_or_default() {
            if !s.calibrate.iter().any(|(a, _)| a == arm) {
                s.calibrate.push((arm.to_string(), c));
            }
        }
    }
    s
}
