//! The experiment page: reads the stage outputs the `report` stage found among its needs
//! (ingest, tile, stain, evaluate, calibrate — each optional), turns them into a template
//! context and renders `templates/report.html` (compiled into the binary) into one
//! self-contained HTML string plus the SVG figures.
//!
//! Owns: the page's view of the evaluate / calibrate outputs (read through their contracts,
//! [`crate::contracts::metrics`] and [`crate::contracts::calibration`]), the cohort table (covariates by event status), patient
//! pseudonymisation, the provenance table. It computes no model metric: every number shown
//! comes from a stage output, except the cohort description (counts, medians, quartiles,
//! reverse Kaplan–Meier median follow-up), which is descriptive.
//!
//! Self-contained: plots are inline SVG, images are `data:image/png;base64` URIs, the page has
//! no `<script>` and a Content-Security-Policy that forbids every non-inline resource.
//!
//! # Errors
//! [`PageError`]: an unreadable or malformed stage output (named by file and, for CSVs, row),
//! a curve path in `metrics.json` that leaves the evaluate directory, an unknown `arm`, a plot
//! or template failure.
//!
//! One file per section of the page, mirroring `templates/report/*`: [`cohort`], [`qc`],
//! [`performance`], [`competing`] (competing-risks cohorts only), [`maps`] (spatial maps), [`provenance`]; shared by them: the stage-output readers (here),
//! [`format`] (numbers), [`embed`] (SVG and PNG embedding) and [`pseudonyms`]. The page knows
//! nothing of stages, specs or the DAG: the caller hands it directories ([`Sources`]),
//! settings ([`Options`]) and upstream records ([`Lineage`]).
mod cohort;
mod competing;
mod embed;
mod format;
mod maps;
mod performance;
mod provenance;
mod qc;
mod training;

use std::collections::BTreeMap;
use std::path::PathBuf;

use minijinja::value::{Serde, Value};
use thiserror::Error;

use super::plots;
use super::{render_embedded, ReportError};

pub use crate::report::pseudonyms::Pseudonyms;
pub use embed::{KEEP_BELOW_BYTES, MAX_IMAGE_SIDE};
pub use performance::Est;
pub use provenance::{Lineage, LineageInput};

/// The page templates, compiled in (bump the `report` kind's version when they change).
pub const TEMPLATES: &[(&str, &str)] = &[
    ("report.html", include_str!("../../../templates/report.html")),
    ("report/cohort.html", include_str!("../../../templates/report/cohort.html")),
    ("report/qc.html", include_str!("../../../templates/report/qc.html")),
    ("report/performance.html", include_str!("../../../templates/report/performance.html")),
    ("report/provenance.html", include_str!("../../../templates/report/provenance.html")),
    ("report/competing.html", include_str!("../../../templates/report/competing.html")),
    ("report/training.html", include_str!("../../../templates/report/training.html")),
    ("report/maps.html", include_str!("../../../templates/report/maps.html")),
];

/// Errors of the page builder.
#[derive(Debug, Error)]
pub enum PageError {
    /// A stage output could not be read.
    #[error("{path}: expected a readable file: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// A stage output did not have the expected shape.
    #[error("{path}: {message}")]
    Contract { path: PathBuf, message: String },
    /// `arm` names no arm of the experiment.
    #[error("report: `arm: {arm}` is not an arm of this experiment; arms are: {available}")]
    UnknownArm { arm: String, available: String },
    /// A plot could not be drawn.
    #[error("report: {0}")]
    Plot(#[from] plots::PlotError),
    /// The template failed.
    #[error(transparent)]
    Render(#[from] ReportError),
    /// A stage output read through its contract ([`crate::contracts`]) broke it.
    #[error(transparent)]
    File(#[from] crate::contracts::ContractError),
}

type Result<T> = std::result::Result<T, PageError>;

/// The directories the page reads, by kind of the stage that wrote them.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// The `ingest` output (`cohort.csv`, `cohort.json`, `slides.json`).
    pub ingest: Option<PathBuf>,
    /// `tile` outputs per slide id.
    pub tiles: Vec<(String, PathBuf)>,
    /// `stain` outputs per slide id.
    pub stains: Vec<(String, PathBuf)>,
    /// The `evaluate` output (`metrics.json`, `curves/`).
    pub evaluate: Option<crate::contracts::EvaluateOutput>,
    /// `calibrate` outputs per arm.
    pub calibrate: Vec<(String, crate::contracts::CalibrateOutput)>,
    /// `maps` outputs per slide id.
    pub maps: Vec<(String, PathBuf)>,
    /// `train` outputs per arm (read for the attention-MIL training curves).
    pub train: Vec<(String, crate::contracts::TrainOutput)>,
    /// Every arm of the experiment, in matrix order.
    pub arms: Vec<String>,
}

/// Settings of one page (the `report` stage's resolved parameters and context).
#[derive(Debug, Clone)]
pub struct Options {
    pub title: String,
    pub experiment: String,
    pub spec_file: String,
    pub show_patient_ids: bool,
    pub qc_slides: usize,
    /// The arm of the main figures (None: the last arm).
    pub arm: Option<String>,
    /// Seed of the pseudonyms.
    pub seed: u64,
    /// This stage's name, key and resolved parameters (for the provenance table).
    pub stage: String,
    pub key: String,
    pub params: serde_json::Value,
    /// The tool and library versions this page is built with (for the provenance table).
    pub tool: String,
    pub libraries: BTreeMap<String, String>,
    /// Time units of the cohort and of the figures.
    pub time: plots::TimeAxis,
}

/// The stage outputs behind figures, by kind (and arm), from the upstream records.
pub(super) struct Keys<'a>(&'a [Lineage]);

impl Keys<'_> {
    /// The single (not per-item) upstream nodes of `kind`, those of `arm` when given.
    pub(super) fn of(&self, kind: &str, arm: Option<&str>) -> Vec<plots::Source> {
        self.0
            .iter()
            .filter(|l| l.kind == kind && l.item.is_none() && arm.is_none_or(|a| l.arms.iter().any(|x| x == a)))
            .map(|l| plots::Source { stage: l.stage.clone(), kind: l.kind.clone(), key: l.key.clone() })
            .collect()
    }
}

/// A rendered page: its HTML, the figures it shows as SVG (`name`, svg text), and every
/// figure's data (those of the other arms too, for `spatia figure`).
#[derive(Debug, Clone)]
pub struct Rendered {
    pub html: String,
    pub figures: Vec<(String, String)>,
    pub data: Vec<plots::Figure>,
    /// The arm of the main figures.
    pub arm: Option<String>,
}

/// Builds the page from the stage outputs in `sources`.
///
/// # Errors
/// See [`PageError`].
pub fn build(sources: &Sources, opts: &Options, upstream: &[Lineage]) -> Result<Rendered> {
    let cohort = match &sources.ingest {
        Some(d) => Some(cohort::cohort(d, &opts.time)?),
        None => None,
    };
    let manifest = match &sources.ingest {
        Some(d) => qc::slide_manifest(d)?,
        None => Vec::new(),
    };
    let patient_ids: Vec<String> = cohort.as_ref().map(|c| c.ids.clone()).unwrap_or_default();
    let slide_triples: Vec<(String, String, String)> =
        manifest.iter().map(|m| (m.slide_id.clone(), m.patient_id.clone(), m.stain.to_string())).collect();
    let ps = Pseudonyms::new(opts.seed, &patient_ids, &slide_triples, opts.show_patient_ids);
    let qc_view = if sources.tiles.is_empty() && sources.stains.is_empty() && manifest.is_empty() {
        None
    } else {
        Some(qc::qc(sources, &manifest, &ps, opts.qc_slides)?)
    };
    let keys = Keys(upstream);
    let perf = performance::performance(sources, opts, &keys)?;
    let prov = provenance::provenance(upstream, &ps, opts);
    let comp = competing::competing(sources, perf.as_ref().map(|p| p.view.arm()), &keys, &opts.time)?;
    let mut data: Vec<plots::Figure> = perf.as_ref().map(|p| p.figures.clone()).unwrap_or_default();
    data.extend(comp.as_ref().map(|c| c.figures.clone()).unwrap_or_default());
    let train = training::training(sources, &keys)?;
    data.extend(train.as_ref().map(|t| t.figures.clone()).unwrap_or_default());
    let shown = qc_view.as_ref().map(|q| q.shown_patients.clone()).unwrap_or_default();
    let spatial = maps::maps(sources, &ps, &shown, opts.qc_slides, &keys)?;
    data.extend(spatial.as_ref().map(|m| m.figures.clone()).unwrap_or_default());
    let style = plots::Style::page(opts.time);
    let meta = plots::Meta { report: Some(opts.key.clone()), run: None };
    let mut figures = Vec::new();
    let mut svg: BTreeMap<String, Value> = BTreeMap::new();
    let mut captions: BTreeMap<String, String> = BTreeMap::new();
    for f in data.iter().filter(|f| f.on_page) {
        let s = plots::render(f, &style, &meta)?;
        svg.insert(f.name.clone(), Value::from_safe_string(embed::scalable(&s)));
        captions.insert(f.name.clone(), plots::provenance_line(f));
        figures.push((f.name.clone(), s));
    }
    if qc_view.as_ref().is_some_and(|q| q.has_ihc()) {
        let mut st = plots::Style::page(opts.time);
        st.width_mm = 60.0;
        let bar =
            plots::colorbar::draw("DAB-positive fraction per tile", (0.0, 1.0), crate::slide::stain_map::viridis, &st)?;
        svg.insert("positivity_legend".into(), Value::from_safe_string(bar));
    }
    let ctx = minijinja::context! {
        title => &opts.title,
        experiment => &opts.experiment,
        spec_file => &opts.spec_file,
        pseudonymised => !opts.show_patient_ids,
        arms => &sources.arms,
        cohort => cohort.as_ref().map(|c| Value::from(Serde(&c.view))),
        qc => qc_view.as_ref().map(|q| Value::from(Serde(q))),
        perf => perf.as_ref().map(|p| Value::from(Serde(&p.view))),
        comp => comp.as_ref().map(|c| Value::from(Serde(&c.view))),
        training => train.as_ref().map(|t| Value::from(Serde(&t.view))),
        maps => spatial.as_ref().map(|m| Value::from(Serde(&m.view))),
        prov => Value::from(Serde(&prov)),
        svg => Value::from(svg),
        source => Value::from(captions),
        fonts => Value::from_safe_string(plots::font::css_font_faces()),
        time_unit => opts.time.display.name(),
    };
    // data URIs are escaped like every other string (`/` becomes `&#x2f;`, which the browser
    // decodes back): a few percent larger, no exception to the escaping rule
    let html = render_embedded(TEMPLATES, "report.html", ctx)?;
    let arm = perf.as_ref().map(|p| p.view.arm().to_string());
    Ok(Rendered { html, figures, data, arm })
}
