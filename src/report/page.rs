//! The experiment page: reads the stage outputs the `report` stage found among its needs
//! (ingest, tile, stain, evaluate, calibrate — each optional), turns them into a template
//! context and renders `templates/report.html` (compiled into the binary) into one
//! self-contained HTML string plus the SVG figures.
//!
//! Owns: the readers of the evaluate / calibrate contracts (`metrics.json`, ROC and KM CSVs,
//! `calibration.json`), the cohort table (covariates by event status), patient
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
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use minijinja::value::{Serde, Value};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::plots::{self, CalibrationBin, ForestRow, KmCurve, RocCurve};
use super::{render_embedded, ReportError};
use crate::stages::Upstream;
use crate::survival::kaplan_meier::KaplanMeier;

/// The page templates, compiled in (bump the `report` kind's version when they change).
pub const TEMPLATES: &[(&str, &str)] = &[
    ("report.html", include_str!("../../templates/report.html")),
    ("report/cohort.html", include_str!("../../templates/report/cohort.html")),
    ("report/qc.html", include_str!("../../templates/report/qc.html")),
    ("report/performance.html", include_str!("../../templates/report/performance.html")),
    ("report/provenance.html", include_str!("../../templates/report/provenance.html")),
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
    pub evaluate: Option<PathBuf>,
    /// `calibrate` outputs per arm.
    pub calibrate: Vec<(String, PathBuf)>,
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
}

/// A rendered page and its figures (`name.svg`, svg text).
#[derive(Debug, Clone)]
pub struct Rendered {
    pub html: String,
    pub figures: Vec<(String, String)>,
}

// ---------------------------------------------------------------- contracts (read side)

/// An estimate with its confidence interval (null when undefined).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Est {
    pub estimate: Option<f64>,
    #[serde(default)]
    pub lower: Option<f64>,
    #[serde(default)]
    pub upper: Option<f64>,
    #[serde(default)]
    pub p: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct AucAt {
    horizon: f64,
    #[serde(flatten)]
    est: Est,
    roc: String,
}

#[derive(Debug, Clone, Deserialize)]
struct BrierAt {
    horizon: f64,
    #[serde(flatten)]
    est: Est,
}

#[derive(Debug, Clone, Deserialize)]
struct Group {
    label: String,
    n: usize,
    events: usize,
    /// null for an empty group
    #[serde(default)]
    km: Option<String>,
    #[serde(default)]
    at_risk: Vec<usize>,
}

#[derive(Debug, Clone, Deserialize)]
struct LogRankJson {
    chi2: Option<f64>,
    df: Option<f64>,
    p: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct RiskGroups {
    method: String,
    groups: Vec<Group>,
    at_risk_times: Vec<f64>,
    logrank: Option<LogRankJson>,
    hazard_ratio: Option<Est>,
}

#[derive(Debug, Clone, Deserialize)]
struct ArmMetrics {
    arm: String,
    n: usize,
    events: usize,
    #[serde(default)]
    repeats: Option<usize>,
    harrell_c: Est,
    #[serde(default)]
    uno_c: Option<Est>,
    #[serde(default)]
    auc: Vec<AucAt>,
    #[serde(default)]
    mean_auc: Option<f64>,
    #[serde(default)]
    brier: Vec<BrierAt>,
    #[serde(default)]
    ibs: Option<Est>,
    #[serde(default)]
    risk_groups: Option<RiskGroups>,
}

#[derive(Debug, Clone, Deserialize)]
struct Comparison {
    arm: String,
    reference: String,
    delta_c: Est,
    p: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct Metrics {
    horizons: Vec<f64>,
    bootstrap: Option<usize>,
    ci: Option<f64>,
    reference: Option<String>,
    groups: Option<String>,
    arms: Vec<ArmMetrics>,
    #[serde(default)]
    comparisons: Vec<Comparison>,
}

#[derive(Debug, Clone, Deserialize)]
struct CalBin {
    n: usize,
    // non-finite values are written as null by calibrate
    predicted: Option<f64>,
    observed: Option<f64>,
    lower: Option<f64>,
    upper: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct CalStats {
    bins: Vec<CalBin>,
    slope: Option<f64>,
    intercept: Option<f64>,
    ici: Option<f64>,
    e50: Option<f64>,
    e90: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct Calibration {
    /// Not written by calibrate (arms sharing a node share bytes): the arm comes from the need.
    #[serde(skip)]
    arm: String,
    horizon: f64,
    n: usize,
    events: usize,
    #[serde(flatten)]
    stats: CalStats,
    #[serde(default)]
    recalibrated: Option<CalStats>,
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| PageError::Read { path: path.to_path_buf(), source })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|e| PageError::Contract { path: path.to_path_buf(), message: format!("not the expected JSON: {e}") })
}

/// A CSV read into named numeric columns (`inf`, `-inf` accepted; empty cells are NaN).
fn read_csv(path: &Path, columns: &[&str]) -> Result<Vec<Vec<f64>>> {
    let contract = |message: String| PageError::Contract { path: path.to_path_buf(), message };
    let mut rdr = csv::Reader::from_path(path).map_err(|e| contract(format!("expected a readable CSV: {e}")))?;
    let headers = rdr.headers().map_err(|e| contract(format!("cannot read the header row: {e}")))?.clone();
    let idx: Vec<usize> = columns
        .iter()
        .map(|c| {
            headers.iter().position(|h| h == *c).ok_or_else(|| {
                contract(format!("expected a column `{c}`, found columns: {}", headers.iter().collect::<Vec<_>>().join(", ")))
            })
        })
        .collect::<Result<_>>()?;
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| contract(format!("row {} is not valid CSV: {e}", i + 1)))?;
        let mut row = Vec::with_capacity(idx.len());
        for (&j, c) in idx.iter().zip(columns) {
            let s = rec.get(j).unwrap_or("").trim();
            let v = if s.is_empty() {
                f64::NAN
            } else {
                s.parse::<f64>().map_err(|_| contract(format!("row {}, column `{c}`: expected a number, found `{s}`", i + 1)))?
            };
            row.push(v);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// `base` joined with a relative path from a contract file; refuses absolute paths and `..`.
fn contained(base: &Path, rel: &str, from: &Path) -> Result<PathBuf> {
    let p = Path::new(rel);
    if p.is_absolute() || p.components().any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir)) {
        return Err(PageError::Contract {
            path: from.to_path_buf(),
            message: format!("curve path `{rel}`: expected a path inside the stage's directory"),
        });
    }
    Ok(base.join(p))
}

// ---------------------------------------------------------------- formatting

fn num(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        Some(v) if v.is_infinite() => if v > 0.0 { "∞".into() } else { "−∞".into() },
        _ => "—".into(),
    }
}

fn est(e: &Est, digits: usize) -> String {
    match (e.lower, e.upper) {
        (Some(l), Some(u)) if l.is_finite() && u.is_finite() => {
            format!("{} ({}–{})", num(e.estimate, digits), num(Some(l), digits), num(Some(u), digits))
        }
        _ => num(e.estimate, digits),
    }
}

/// `p = 0.031` or `p < 0.001` (for running text).
fn p_eq(p: Option<f64>) -> String {
    let v = pval(p);
    if v.starts_with('<') {
        format!("p {v}")
    } else {
        format!("p = {v}")
    }
}

fn pval(p: Option<f64>) -> String {
    match p {
        Some(p) if p.is_finite() && p < 0.001 => "< 0.001".into(),
        Some(p) if p.is_finite() => format!("{p:.3}"),
        _ => "—".into(),
    }
}

fn days(t: f64) -> String {
    if t.is_finite() {
        format!("{t:.0}")
    } else {
        "—".into()
    }
}

/// A string a POSIX shell reads back as itself.
fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=+,:@".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Adds a `viewBox` to a plotters SVG (which has only `width` and `height`) so that the page
/// can scale it with CSS; the `figures/*.svg` files keep plotters' bytes.
fn scalable(svg: &str) -> String {
    let attr = |name: &str| -> Option<&str> {
        let head = &svg[..svg.find('>')?];
        let i = head.find(&format!(" {name}=\""))? + name.len() + 3;
        head[i..].split('"').next()
    };
    match (attr("width"), attr("height")) {
        (Some(w), Some(h)) if svg.starts_with("<svg") && !svg[..svg.find('>').unwrap_or(0)].contains("viewBox") => {
            format!("<svg viewBox=\"0 0 {w} {h}\"{}", &svg[4..])
        }
        _ => svg.to_string(),
    }
}

/// Longest side, in pixels, of an image embedded in the page (twice its displayed height, for
/// high-density screens); larger PNGs are downscaled so that the page stays small.
pub const MAX_IMAGE_SIDE: u32 = 360;

/// PNG files up to this size are embedded unchanged whatever their dimensions.
pub const KEEP_BELOW_BYTES: usize = 64 * 1024;

/// A PNG file as a data URI, downscaled to [`MAX_IMAGE_SIDE`] when larger in pixels and in
/// bytes than [`KEEP_BELOW_BYTES`] (nearest neighbour for one-channel images, triangle filter
/// otherwise).
fn png_data_uri(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| PageError::Read { path: path.to_path_buf(), source })?;
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err(PageError::Contract { path: path.to_path_buf(), message: "expected a PNG file, found other bytes".into() });
    }
    let bytes = downscale(&bytes, path)?;
    Ok(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

fn downscale(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    let bad = |e: image::ImageError| PageError::Contract { path: path.to_path_buf(), message: format!("expected a decodable PNG: {e}") };
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png).map_err(bad)?;
    let (w, h) = (img.width(), img.height());
    // small files (masks, positivity maps: few colours, compress well) stay sharp and as they are
    if w.max(h) <= MAX_IMAGE_SIDE || bytes.len() <= KEEP_BELOW_BYTES {
        return Ok(bytes.to_vec());
    }
    let filter = if matches!(img.color(), image::ColorType::L8 | image::ColorType::La8) {
        image::imageops::FilterType::Nearest
    } else {
        image::imageops::FilterType::Triangle
    };
    let small = img.resize(MAX_IMAGE_SIDE, MAX_IMAGE_SIDE, filter);
    let mut out = std::io::Cursor::new(Vec::new());
    small.write_to(&mut out, image::ImageFormat::Png).map_err(bad)?;
    Ok(out.into_inner())
}

// ---------------------------------------------------------------- pseudonyms

/// Stable pseudonyms: patients ordered by blake3(seed ‖ 0x1f ‖ id) are named P-001, P-002 …
/// (at least three digits). The order depends only on the seed and the id, so a patient keeps
/// its pseudonym across runs with the same seed and cohort size.
#[derive(Debug, Clone)]
pub struct Pseudonyms {
    show: bool,
    patients: HashMap<String, String>,
    /// slide id → (patient id, stain)
    slides: HashMap<String, (String, String)>,
    slide_labels: HashMap<String, String>,
}

impl Pseudonyms {
    /// Pseudonyms for `patients`; `slides` maps slide id → (patient id, stain). With `show`,
    /// every label is the identifier itself.
    pub fn new(seed: u64, patients: &[String], slides: &[(String, String, String)], show: bool) -> Pseudonyms {
        let mut order: Vec<(String, &String)> = patients
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|id| {
                let mut h = blake3::Hasher::new();
                h.update(&seed.to_le_bytes());
                h.update(b"\x1f");
                h.update(id.as_bytes());
                (h.finalize().to_hex().to_string(), id)
            })
            .collect();
        order.sort();
        let width = order.len().to_string().len().max(3);
        let patients: HashMap<String, String> =
            order.iter().enumerate().map(|(i, (_, id))| ((*id).clone(), format!("P-{:0width$}", i + 1))).collect();
        let mut ps = Pseudonyms {
            show,
            patients,
            slides: slides.iter().map(|(s, p, st)| (s.clone(), (p.clone(), st.clone()))).collect(),
            slide_labels: HashMap::new(),
        };
        // slide labels: `<pseudonym>_<stain>`, numbered when a patient has several of a stain
        let mut sorted: Vec<&(String, String, String)> = slides.iter().collect();
        sorted.sort();
        let mut used: HashMap<String, usize> = HashMap::new();
        for (sid, pid, stain) in sorted {
            let base = format!("{}_{}", ps.patient(pid), stain);
            let n = used.entry(base.clone()).or_default();
            *n += 1;
            let label = if *n == 1 { base } else { format!("{base}_{n}") };
            ps.slide_labels.insert(sid.clone(), label);
        }
        ps
    }

    /// The label of a patient id (unknown ids get `P-?` plus a short hash when hidden).
    pub fn patient(&self, id: &str) -> String {
        if self.show {
            // bidi and control characters shown as `<U+XXXX>`: an id displays as what it is
            return crate::util::display_id(id);
        }
        match self.patients.get(id) {
            Some(p) => p.clone(),
            None => format!("P-?{}", &blake3::hash(id.as_bytes()).to_hex()[..6]),
        }
    }

    /// The label of a slide id.
    pub fn slide(&self, id: &str) -> String {
        if self.show {
            return crate::util::display_id(id);
        }
        match self.slide_labels.get(id) {
            Some(l) => l.clone(),
            None => format!("S-?{}", &blake3::hash(id.as_bytes()).to_hex()[..6]),
        }
    }

    /// The label of a shard's item, whichever kind of item it is.
    pub fn item(&self, id: &str) -> String {
        if self.slides.contains_key(id) {
            self.slide(id)
        } else {
            self.patient(id)
        }
    }
}

// ---------------------------------------------------------------- page model

#[derive(Debug, Serialize)]
struct Cell {
    all: String,
    event: String,
    censored: String,
}

#[derive(Debug, Serialize)]
struct CovRow {
    name: String,
    level: Option<String>,
    summary: String,
    cells: Cell,
    missing: usize,
}

#[derive(Debug, Serialize)]
struct CohortView {
    patients: usize,
    events: usize,
    censored: usize,
    dropped: usize,
    max_time: String,
    median_follow_up: String,
    median_time_events: String,
    missing_policy: String,
    rows: Vec<CovRow>,
}

#[derive(Debug, Serialize)]
struct SlideRow {
    label: String,
    patient: String,
    stain: String,
    vendor: String,
    size: String,
    mpp: String,
    tiles: String,
    tissue_mm2: String,
    level: String,
    ihc_index: String,
}

#[derive(Debug, Serialize)]
struct QcCard {
    label: String,
    stain: String,
    tiles: String,
    tissue_mm2: String,
    thumbnail: Option<String>,
    mask: Option<String>,
    overlay: Option<String>,
}

#[derive(Debug, Serialize)]
struct IhcCard {
    label: String,
    stain: String,
    index: String,
    tiles: String,
    map: String,
}

#[derive(Debug, Serialize)]
struct QcView {
    slides: Vec<SlideRow>,
    cards: Vec<QcCard>,
    ihc: Vec<IhcCard>,
    total_tiles: usize,
}

#[derive(Debug, Serialize)]
struct ArmRow {
    arm: String,
    shown: bool,
    reference: bool,
    n: usize,
    events: usize,
    repeats: String,
    harrell_c: String,
    uno_c: String,
    mean_auc: String,
    aucs: Vec<String>,
    briers: Vec<String>,
    ibs: String,
    hazard_ratio: String,
    logrank_p: String,
    delta_c: String,
    delta_p: String,
}

#[derive(Debug, Serialize)]
struct CalRow {
    arm: String,
    horizon: String,
    n: usize,
    events: usize,
    slope: String,
    intercept: String,
    ici: String,
    e50: String,
    e90: String,
    recal: Option<String>,
}

#[derive(Debug, Serialize)]
struct GroupRow {
    label: String,
    n: usize,
    events: usize,
}

#[derive(Debug, Serialize)]
struct PerfView {
    arm: String,
    arm_choice: String,
    reference: String,
    horizons: Vec<String>,
    bootstrap: String,
    ci: String,
    groups_method: String,
    arms: Vec<ArmRow>,
    groups: Vec<GroupRow>,
    logrank: String,
    hazard_ratio: String,
    aucs: Vec<String>,
    calibration: Vec<CalRow>,
    cal_horizon: String,
    cal_bin_sizes: String,
    has_metrics: bool,
    has_km: bool,
    has_roc: bool,
    has_forest: bool,
    has_calibration: bool,
    has_recalibrated: bool,
}

#[derive(Debug, Serialize)]
struct KeyRow {
    item: String,
    key: String,
    duration: String,
}

#[derive(Debug, Serialize)]
struct InputRow {
    role: String,
    path: String,
    blake3: String,
}

#[derive(Debug, Serialize)]
struct ProvRow {
    stage: String,
    kind: String,
    version: u32,
    arms: String,
    nodes: usize,
    key: String,
    keys: Vec<KeyRow>,
    params: String,
    inputs: Vec<InputRow>,
    inputs_elided: usize,
    duration: String,
    tool: String,
    libraries: String,
}

#[derive(Debug, Serialize)]
struct ProvView {
    rows: Vec<ProvRow>,
    command: String,
    report_key: String,
    report_stage: String,
    report_params: String,
    tool: String,
    libraries: String,
}

// ---------------------------------------------------------------- builders

/// Descriptive statistics of one covariate column.
fn quartiles(v: &mut [f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| {
        let h = (v.len() - 1) as f64 * p;
        let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
        v[lo] + (h - lo as f64) * (v[hi] - v[lo])
    };
    Some((q(0.25), q(0.5), q(0.75)))
}

fn fmt_q(v: &[f64]) -> String {
    let mut v = v.to_vec();
    match quartiles(&mut v) {
        Some((a, m, b)) => format!("{} [{}, {}]", g(m), g(a), g(b)),
        None => "—".into(),
    }
}

/// A short number: integers as integers, else 3 significant-ish digits.
fn g(x: f64) -> String {
    if (x.fract() == 0.0 && x.abs() < 1e9) || x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn count_pct(k: usize, n: usize) -> String {
    if n == 0 {
        "—".into()
    } else {
        format!("{k} ({:.0}%)", 100.0 * k as f64 / n as f64)
    }
}

struct Cohort {
    ids: Vec<String>,
    view: CohortView,
}

fn cohort(dir: &Path) -> Result<Cohort> {
    let csv_path = dir.join("cohort.csv");
    let json_path = dir.join("cohort.json");
    let summary: serde_json::Value = read_json(&json_path)?;
    let contract = |message: String| PageError::Contract { path: csv_path.clone(), message };
    let mut rdr = csv::Reader::from_path(&csv_path).map_err(|e| contract(format!("expected a readable CSV: {e}")))?;
    let headers = rdr.headers().map_err(|e| contract(format!("cannot read the header row: {e}")))?.clone();
    if headers.get(0) != Some("patient_id") || headers.get(1) != Some("time") || headers.get(2) != Some("event") {
        return Err(contract(format!(
            "expected columns `patient_id,time,event,…`, found `{}`",
            headers.iter().collect::<Vec<_>>().join(",")
        )));
    }
    let covs: Vec<String> = headers.iter().skip(3).map(str::to_string).collect();
    let (mut ids, mut time, mut event) = (Vec::new(), Vec::new(), Vec::new());
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); covs.len()];
    for (i, rec) in rdr.records().enumerate() {
        let row = i + 1;
        let rec = rec.map_err(|e| contract(format!("row {row} is not valid CSV: {e}")))?;
        ids.push(rec.get(0).unwrap_or("").to_string());
        let t = rec.get(1).unwrap_or("");
        time.push(t.parse::<f64>().map_err(|_| contract(format!("row {row}, column `time`: expected a number, found `{t}`")))?);
        let e = rec.get(2).unwrap_or("");
        event.push(match e {
            "1" => true,
            "0" => false,
            _ => return Err(contract(format!("row {row}, column `event`: expected 0 or 1, found `{e}`"))),
        });
        for (j, c) in cells.iter_mut().enumerate() {
            c.push(rec.get(j + 3).unwrap_or("").to_string());
        }
    }
    let n = ids.len();
    let n_ev = event.iter().filter(|&&e| e).count();
    let mut rows = Vec::new();
    for (j, name) in covs.iter().enumerate() {
        let ty = summary["covariates"][name]["type"].as_str().unwrap_or("numeric");
        let col = &cells[j];
        let missing = col.iter().filter(|s| s.is_empty()).count();
        if ty == "categorical" {
            let levels: BTreeSet<&String> = col.iter().filter(|s| !s.is_empty()).collect();
            for (li, lv) in levels.into_iter().enumerate() {
                let k = |want: Option<bool>| {
                    let mut num = 0;
                    let mut den = 0;
                    for (i, s) in col.iter().enumerate() {
                        if want.is_none_or(|w| event[i] == w) && !s.is_empty() {
                            den += 1;
                            num += usize::from(s == lv);
                        }
                    }
                    count_pct(num, den)
                };
                rows.push(CovRow {
                    name: if li == 0 { name.clone() } else { String::new() },
                    level: Some(lv.clone()),
                    summary: "n (%)".into(),
                    cells: Cell { all: k(None), event: k(Some(true)), censored: k(Some(false)) },
                    missing: if li == 0 { missing } else { 0 },
                });
            }
        } else {
            let vals: Vec<Option<f64>> = col.iter().map(|s| s.parse::<f64>().ok()).collect();
            let binary = vals.iter().flatten().all(|&v| v == 0.0 || v == 1.0);
            let pick = |want: Option<bool>| -> Vec<f64> {
                vals.iter().enumerate().filter(|(i, _)| want.is_none_or(|w| event[*i] == w)).filter_map(|(_, v)| *v).collect()
            };
            let cellf = |want: Option<bool>| {
                let v = pick(want);
                if binary {
                    count_pct(v.iter().filter(|&&x| x == 1.0).count(), v.len())
                } else {
                    fmt_q(&v)
                }
            };
            rows.push(CovRow {
                name: name.clone(),
                level: if binary { Some("= 1".into()) } else { None },
                summary: if binary { "n (%)".into() } else { "median [IQR]".into() },
                cells: Cell { all: cellf(None), event: cellf(Some(true)), censored: cellf(Some(false)) },
                missing,
            });
        }
    }
    // reverse Kaplan–Meier: censoring is the "event"
    let rev: Vec<bool> = event.iter().map(|e| !e).collect();
    let median_follow_up = if rev.iter().any(|&e| e) {
        KaplanMeier::fit(&time, &rev).ok().and_then(|k| k.median()).map(days).unwrap_or_else(|| "not reached".into())
    } else {
        "—".into()
    };
    let mut ev_times: Vec<f64> = time.iter().zip(&event).filter(|(_, &e)| e).map(|(&t, _)| t).collect();
    let median_time_events = quartiles(&mut ev_times).map(|(_, m, _)| days(m)).unwrap_or_else(|| "—".into());
    let view = CohortView {
        patients: n,
        events: n_ev,
        censored: n - n_ev,
        dropped: summary["dropped"].as_array().map_or(0, |a| a.len()),
        max_time: days(time.iter().cloned().fold(0.0, f64::max)),
        median_follow_up,
        median_time_events,
        missing_policy: summary["missing_policy"].as_str().unwrap_or("error").to_string(),
        rows,
    };
    Ok(Cohort { ids, view })
}

/// Slide rows of `slides.json`: (slide id, patient id, stain, the JSON row).
fn slide_manifest(dir: &Path) -> Result<Vec<(String, String, String, serde_json::Value)>> {
    let path = dir.join("slides.json");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let v: serde_json::Value = read_json(&path)?;
    let Some(rows) = v["slides"].as_array() else {
        return Err(PageError::Contract { path, message: "expected an object with a `slides` array".into() });
    };
    Ok(rows
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
            (s("slide_id"), s("patient_id"), s("stain"), r.clone())
        })
        .collect())
}

fn qc(sources: &Sources, manifest: &[(String, String, String, serde_json::Value)], ps: &Pseudonyms, n_cards: usize) -> Result<QcView> {
    let tiles: BTreeMap<&str, &PathBuf> = sources.tiles.iter().map(|(s, d)| (s.as_str(), d)).collect();
    let stains: BTreeMap<&str, &PathBuf> = sources.stains.iter().map(|(s, d)| (s.as_str(), d)).collect();
    let mut ids: BTreeSet<String> = manifest.iter().map(|m| m.0.clone()).collect();
    ids.extend(tiles.keys().map(|s| s.to_string()));
    ids.extend(stains.keys().map(|s| s.to_string()));
    let meta: HashMap<&str, &(String, String, String, serde_json::Value)> = manifest.iter().map(|m| (m.0.as_str(), m)).collect();
    // order by label so that the page does not list patients in identifier order
    let mut ordered: Vec<(String, String)> = ids.into_iter().map(|id| (ps.slide(&id), id)).collect();
    ordered.sort();
    let mut view = QcView { slides: Vec::new(), cards: Vec::new(), ihc: Vec::new(), total_tiles: 0 };
    for (label, id) in &ordered {
        let m = meta.get(id.as_str());
        let row = m.map(|m| &m.3);
        let stain = m.map(|m| m.2.clone()).unwrap_or_default();
        let patient = m.map(|m| ps.patient(&m.1)).unwrap_or_default();
        let qcj: Option<serde_json::Value> = match tiles.get(id.as_str()) {
            Some(d) => Some(read_json(&d.join("qc.json"))?),
            None => None,
        };
        let stj: Option<serde_json::Value> = match stains.get(id.as_str()) {
            Some(d) => Some(read_json(&d.join("stain.json"))?),
            None => None,
        };
        let n_tiles = qcj.as_ref().and_then(|q| q["tiles"].as_u64());
        view.total_tiles += n_tiles.unwrap_or(0) as usize;
        let tissue = qcj.as_ref().and_then(|q| q["tissue_area_mm2"].as_f64());
        let stain = if stain.is_empty() { stj.as_ref().and_then(|s| s["stain"].as_str()).unwrap_or("").to_string() } else { stain };
        view.slides.push(SlideRow {
            label: label.clone(),
            patient,
            stain: stain.clone(),
            vendor: row.and_then(|r| r["vendor"].as_str()).unwrap_or("").to_string(),
            size: row.map(|r| format!("{} × {}", r["width"], r["height"])).unwrap_or_default(),
            mpp: row.and_then(|r| r["mpp_x"].as_f64()).map(|x| format!("{x:.3}")).unwrap_or_else(|| "—".into()),
            tiles: n_tiles.map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
            tissue_mm2: num(tissue, 2),
            level: qcj.as_ref().and_then(|q| q["level"].as_u64()).map(|l| l.to_string()).unwrap_or_else(|| "—".into()),
            ihc_index: num(stj.as_ref().and_then(|s| s["index"].as_f64()), 3),
        });
        if let (Some(d), true) = (tiles.get(id.as_str()), view.cards.len() < n_cards) {
            let img = |f: &str| -> Result<Option<String>> {
                let p = d.join(f);
                if p.exists() {
                    png_data_uri(&p).map(Some)
                } else {
                    Ok(None)
                }
            };
            view.cards.push(QcCard {
                label: label.clone(),
                stain: stain.clone(),
                tiles: n_tiles.map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
                tissue_mm2: num(tissue, 2),
                thumbnail: img("thumbnail.png")?,
                mask: img("mask.png")?,
                overlay: img("overlay.png")?,
            });
        }
        if let (Some(d), Some(s), true) = (stains.get(id.as_str()), &stj, view.ihc.len() < n_cards) {
            let p = d.join("positivity.png");
            if p.exists() {
                view.ihc.push(IhcCard {
                    label: label.clone(),
                    stain,
                    index: num(s["index"].as_f64(), 3),
                    tiles: s["tiles"].as_u64().map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
                    map: png_data_uri(&p)?,
                });
            }
        }
    }
    Ok(view)
}

fn km_curve(path: &Path, label: &str, at_risk: Vec<usize>) -> Result<KmCurve> {
    let rows = read_csv(path, &["time", "survival", "lower", "upper"])?;
    if rows.is_empty() {
        return Err(PageError::Contract { path: path.to_path_buf(), message: "expected at least one row (time 0), found none".into() });
    }
    // a CI limit that is undefined (empty) is drawn at the estimate
    let points = rows
        .iter()
        .map(|r| {
            let s = r[1];
            (r[0], s, if r[2].is_finite() { r[2] } else { s }, if r[3].is_finite() { r[3] } else { s })
        })
        .collect();
    Ok(KmCurve { label: label.to_string(), points, at_risk })
}

fn roc_points(path: &Path) -> Result<Vec<(f64, f64)>> {
    let rows = read_csv(path, &["fpr", "tpr"])?;
    let mut pts: Vec<(f64, f64)> = rows.iter().map(|r| (r[0], r[1])).collect();
    if let Some(i) = pts.iter().position(|p| !(p.0.is_finite() && p.1.is_finite())) {
        return Err(PageError::Contract { path: path.to_path_buf(), message: format!("row {}: expected finite fpr and tpr", i + 1) });
    }
    if pts.is_empty() {
        pts.push((0.0, 0.0));
    }
    Ok(pts)
}

fn cal_bins(bins: &[CalBin]) -> Vec<CalibrationBin> {
    let finite = |x: Option<f64>| x.filter(|v| v.is_finite());
    bins.iter()
        .filter_map(|b| {
            let (p, o) = (finite(b.predicted)?, finite(b.observed)?);
            Some(CalibrationBin { predicted: p, observed: o, lower: finite(b.lower).unwrap_or(o), upper: finite(b.upper).unwrap_or(o) })
        })
        .collect()
}

struct Perf {
    view: PerfView,
    figures: Vec<(String, String)>,
}

fn performance(sources: &Sources, opts: &Options) -> Result<Option<Perf>> {
    let metrics: Option<(Metrics, PathBuf)> = match &sources.evaluate {
        Some(d) => Some((read_json(&d.join("metrics.json"))?, d.clone())),
        None => None,
    };
    let cals: Vec<(Calibration, PathBuf)> = sources
        .calibrate
        .iter()
        .map(|(arm, d)| {
            read_json::<Calibration>(&d.join("calibration.json")).map(|mut c| {
                c.arm = arm.clone();
                (c, d.clone())
            })
        })
        .collect::<Result<_>>()?;
    if metrics.is_none() && cals.is_empty() {
        return Ok(None);
    }
    // every arm known to the page, in matrix order
    let mut arms: Vec<String> = sources.arms.clone();
    for a in metrics.iter().flat_map(|(m, _)| m.arms.iter().map(|a| a.arm.clone())).chain(cals.iter().map(|(c, _)| c.arm.clone())) {
        if !arms.contains(&a) {
            arms.push(a);
        }
    }
    let (arm, arm_choice) = match &opts.arm {
        Some(a) if arms.contains(a) => (a.clone(), "chosen by the spec (`arm`)".to_string()),
        Some(a) => return Err(PageError::UnknownArm { arm: a.clone(), available: arms.join(", ") }),
        None => {
            // the last arm that has results: in a matrix it is the last combination listed
            let with_results: Vec<&String> = arms
                .iter()
                .filter(|a| metrics.iter().any(|(m, _)| m.arms.iter().any(|x| &x.arm == *a)) || cals.iter().any(|(c, _)| &c.arm == *a))
                .collect();
            let a = with_results.last().map(|s| (*s).clone()).unwrap_or_default();
            (a, "the last arm of the matrix (set `arm` to choose another)".to_string())
        }
    };
    let mut figures = Vec::new();
    let mut view = PerfView {
        arm: arm.clone(),
        arm_choice,
        reference: String::new(),
        horizons: Vec::new(),
        bootstrap: "—".into(),
        ci: "—".into(),
        groups_method: String::new(),
        arms: Vec::new(),
        groups: Vec::new(),
        logrank: "—".into(),
        hazard_ratio: "—".into(),
        aucs: Vec::new(),
        calibration: Vec::new(),
        cal_horizon: String::new(),
        cal_bin_sizes: String::new(),
        has_metrics: metrics.is_some(),
        has_km: false,
        has_roc: false,
        has_forest: false,
        has_calibration: false,
        has_recalibrated: false,
    };
    if let Some((m, dir)) = &metrics {
        let mpath = dir.join("metrics.json");
        let reference = m.reference.clone().or_else(|| m.arms.first().map(|a| a.arm.clone())).unwrap_or_default();
        view.reference = reference.clone();
        view.horizons = m.horizons.iter().map(|h| days(*h)).collect();
        view.bootstrap = m.bootstrap.map(|b| b.to_string()).unwrap_or_else(|| "—".into());
        view.ci = m.ci.map(|c| format!("{:.0}%", 100.0 * c)).unwrap_or_else(|| "—".into());
        view.groups_method = m.groups.clone().unwrap_or_default();
        let ordered: Vec<&ArmMetrics> = {
            let mut v: Vec<&ArmMetrics> = m.arms.iter().collect();
            v.sort_by_key(|a| arms.iter().position(|x| x == &a.arm).unwrap_or(usize::MAX));
            v
        };
        for a in &ordered {
            let cmp = m.comparisons.iter().find(|c| c.arm == a.arm);
            view.arms.push(ArmRow {
                arm: a.arm.clone(),
                shown: a.arm == arm,
                reference: a.arm == reference,
                n: a.n,
                events: a.events,
                repeats: a.repeats.map(|r| r.to_string()).unwrap_or_else(|| "—".into()),
                harrell_c: est(&a.harrell_c, 3),
                uno_c: a.uno_c.as_ref().map(|e| est(e, 3)).unwrap_or_else(|| "—".into()),
                mean_auc: num(a.mean_auc, 3),
                aucs: m.horizons.iter().map(|h| a.auc.iter().find(|x| x.horizon == *h).map(|x| est(&x.est, 3)).unwrap_or_else(|| "—".into())).collect(),
                briers: m.horizons.iter().map(|h| a.brier.iter().find(|x| x.horizon == *h).map(|x| est(&x.est, 3)).unwrap_or_else(|| "—".into())).collect(),
                ibs: a.ibs.as_ref().map(|e| est(e, 3)).unwrap_or_else(|| "—".into()),
                hazard_ratio: a.risk_groups.as_ref().and_then(|r| r.hazard_ratio.as_ref()).map(|e| est(e, 2)).unwrap_or_else(|| "—".into()),
                logrank_p: pval(a.risk_groups.as_ref().and_then(|r| r.logrank.as_ref()).and_then(|l| l.p)),
                delta_c: cmp.map(|c| est(&c.delta_c, 3)).unwrap_or_else(|| if a.arm == reference { "reference".into() } else { "—".into() }),
                delta_p: pval(cmp.and_then(|c| c.p)),
            });
        }
        // forest plot of ΔC against the reference
        let rows: Vec<ForestRow> = ordered
            .iter()
            .filter_map(|a| m.comparisons.iter().find(|c| c.arm == a.arm && c.reference == reference))
            .filter_map(|c| match (c.delta_c.estimate, c.delta_c.lower, c.delta_c.upper) {
                (Some(e), Some(l), Some(u)) if e.is_finite() && l.is_finite() && u.is_finite() => {
                    Some(ForestRow { label: c.arm.clone(), estimate: e, lower: l, upper: u })
                }
                _ => None,
            })
            .collect();
        if !rows.is_empty() {
            figures.push(("forest".to_string(), plots::forest_plot(&rows, 0.0, &format!("ΔC (Harrell) vs {reference}"))?));
            view.has_forest = true;
        }
        if let Some(a) = m.arms.iter().find(|x| x.arm == arm) {
            if let Some(rg) = &a.risk_groups {
                let mut curves = Vec::new();
                for g in &rg.groups {
                    if let Some(km) = &g.km {
                        let p = contained(dir, km, &mpath)?;
                        let at_risk = if g.at_risk.len() == rg.at_risk_times.len() { g.at_risk.clone() } else { vec![0; rg.at_risk_times.len()] };
                        curves.push(km_curve(&p, &g.label, at_risk)?);
                    }
                    view.groups.push(GroupRow { label: g.label.clone(), n: g.n, events: g.events });
                }
                let p = rg.logrank.as_ref().and_then(|l| l.p);
                view.logrank = match rg.logrank.as_ref() {
                    Some(l) => format!("χ² = {} (df {}), {}", num(l.chi2, 2), num(l.df, 0), p_eq(l.p)),
                    None => "—".into(),
                };
                view.hazard_ratio = rg.hazard_ratio.as_ref().map(|e| format!("{} ({})", est(e, 2), p_eq(e.p))).unwrap_or_else(|| "—".into());
                view.groups_method = rg.method.clone();
                if !curves.is_empty() {
                    figures.push(("km".to_string(), plots::km_plot(&curves, &rg.at_risk_times, &format!("Kaplan-Meier by risk group: {arm}"), p)?));
                    view.has_km = true;
                }
            }
            let mut rocs = Vec::new();
            for x in &a.auc {
                let p = contained(dir, &x.roc, &mpath)?;
                rocs.push(RocCurve { label: format!("{} d", days(x.horizon)), points: roc_points(&p)?, auc: x.est.estimate.unwrap_or(f64::NAN) });
                view.aucs.push(format!("{} d: AUC {}", days(x.horizon), est(&x.est, 3)));
            }
            if !rocs.is_empty() {
                if rocs.iter().any(|r| !r.auc.is_finite()) {
                    return Err(PageError::Contract { path: mpath.clone(), message: format!("arm {arm}: expected a finite AUC at every horizon") });
                }
                figures.push(("roc".to_string(), plots::roc_plot(&rocs, &format!("Time-dependent ROC: {arm}"))?));
                view.has_roc = true;
            }
        }
    }
    let mut ordered_cals: Vec<&(Calibration, PathBuf)> = cals.iter().collect();
    ordered_cals.sort_by_key(|(c, _)| arms.iter().position(|x| x == &c.arm).unwrap_or(usize::MAX));
    for (c, _) in &ordered_cals {
        view.calibration.push(CalRow {
            arm: c.arm.clone(),
            horizon: days(c.horizon),
            n: c.n,
            events: c.events,
            slope: num(c.stats.slope, 2),
            intercept: num(c.stats.intercept, 2),
            ici: num(c.stats.ici, 3),
            e50: num(c.stats.e50, 3),
            e90: num(c.stats.e90, 3),
            recal: c.recalibrated.as_ref().map(|r| format!("slope {}, ICI {}", num(r.slope, 2), num(r.ici, 3))),
        });
    }
    if let Some((c, dir)) = ordered_cals.iter().find(|(c, _)| c.arm == arm) {
        let bins = cal_bins(&c.stats.bins);
        if bins.is_empty() {
            return Err(PageError::Contract { path: dir.join("calibration.json"), message: "expected at least one bin with finite predicted and observed risk".into() });
        }
        view.cal_horizon = days(c.horizon);
        view.cal_bin_sizes = c.stats.bins.iter().map(|b| b.n.to_string()).collect::<Vec<_>>().join(", ");
        let rb = c.recalibrated.as_ref().map(|r| cal_bins(&r.bins)).unwrap_or_default();
        figures.push(("calibration".to_string(), plots::calibration_plot_over(&bins, c.horizon, &rb)?));
        view.has_calibration = true;
        if c.recalibrated.is_some() {
            if !rb.is_empty() {
                figures.push(("calibration_recalibrated".to_string(), plots::calibration_plot_over(&rb, c.horizon, &bins)?));
                view.has_recalibrated = true;
            }
        }
    }
    Ok(Some(Perf { view, figures }))
}

fn provenance(upstream: &[Upstream], ps: &Pseudonyms, opts: &Options) -> ProvView {
    // one row per (stage, kind, version, parameters): the shards of a per-slide stage collapse,
    // arms that differ in parameters stay apart
    let mut rows: Vec<ProvRow> = Vec::new();
    let mut index: HashMap<(String, String, u32, String), usize> = HashMap::new();
    let mut totals: Vec<f64> = Vec::new();
    for u in upstream {
        let r = &u.record;
        let params = serde_json::to_string(&r.params).unwrap_or_default();
        let k = (r.stage.clone(), r.kind.clone(), r.kind_version, params.clone());
        let i = *index.entry(k).or_insert_with(|| {
            rows.push(ProvRow {
                stage: r.stage.clone(),
                kind: r.kind.clone(),
                version: r.kind_version,
                arms: String::new(),
                nodes: 0,
                key: String::new(),
                keys: Vec::new(),
                params: serde_json::to_string_pretty(&r.params).unwrap_or_default(),
                inputs: Vec::new(),
                inputs_elided: 0,
                duration: String::new(),
                tool: r.tool.clone(),
                libraries: r.libraries.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
            });
            totals.push(0.0);
            rows.len() - 1
        });
        let row = &mut rows[i];
        row.nodes += 1;
        totals[i] += r.duration_s;
        let mut arms: BTreeSet<String> = row.arms.split(", ").filter(|s| !s.is_empty()).map(str::to_string).collect();
        arms.extend(u.arms.iter().cloned());
        row.arms = arms.into_iter().collect::<Vec<_>>().join(", ");
        row.keys.push(KeyRow { item: r.item.as_deref().map(|x| ps.item(x)).unwrap_or_default(), key: r.key.clone(), duration: format!("{:.2} s", r.duration_s) });
        for inp in &r.inputs {
            if row.inputs.len() < 8 {
                row.inputs.push(InputRow { role: inp.role.clone(), path: inp.path.clone(), blake3: inp.blake3.clone() });
            } else {
                row.inputs_elided += 1;
            }
        }
        if row.tool != r.tool && !row.tool.contains(&r.tool) {
            row.tool = format!("{}; {}", row.tool, r.tool);
        }
    }
    for (row, t) in rows.iter_mut().zip(&totals) {
        row.keys.sort_by(|a, b| a.item.cmp(&b.item).then(a.key.cmp(&b.key)));
        if row.nodes == 1 {
            row.key = row.keys[0].key.clone();
        }
        row.duration = format!("{t:.2} s");
    }
    ProvView {
        rows,
        command: format!("spatia run {}", shell_quote(&opts.spec_file)),
        report_key: opts.key.clone(),
        report_stage: opts.stage.clone(),
        report_params: serde_json::to_string_pretty(&opts.params).unwrap_or_default(),
        tool: crate::provenance::tool_version(),
        libraries: crate::provenance::library_versions().iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
    }
}

/// Builds the page from the stage outputs in `sources`.
///
/// # Errors
/// See [`PageError`].
pub fn build(sources: &Sources, opts: &Options, upstream: &[Upstream]) -> Result<Rendered> {
    let cohort = match &sources.ingest {
        Some(d) => Some(cohort(d)?),
        None => None,
    };
    let manifest = match &sources.ingest {
        Some(d) => slide_manifest(d)?,
        None => Vec::new(),
    };
    let patient_ids: Vec<String> = cohort.as_ref().map(|c| c.ids.clone()).unwrap_or_default();
    let slide_triples: Vec<(String, String, String)> = manifest.iter().map(|m| (m.0.clone(), m.1.clone(), m.2.clone())).collect();
    let ps = Pseudonyms::new(opts.seed, &patient_ids, &slide_triples, opts.show_patient_ids);
    let qc_view = if sources.tiles.is_empty() && sources.stains.is_empty() && manifest.is_empty() {
        None
    } else {
        Some(qc(sources, &manifest, &ps, opts.qc_slides)?)
    };
    let perf = performance(sources, opts)?;
    let prov = provenance(upstream, &ps, opts);
    let figures: Vec<(String, String)> = perf.as_ref().map(|p| p.figures.clone()).unwrap_or_default();
    let svg: BTreeMap<String, Value> = figures.iter().map(|(n, s)| (n.clone(), Value::from_safe_string(scalable(s)))).collect();
    let ctx = minijinja::context! {
        title => &opts.title,
        experiment => &opts.experiment,
        spec_file => &opts.spec_file,
        pseudonymised => !opts.show_patient_ids,
        arms => &sources.arms,
        cohort => cohort.as_ref().map(|c| Value::from(Serde(&c.view))),
        qc => qc_view.as_ref().map(|q| Value::from(Serde(q))),
        perf => perf.as_ref().map(|p| Value::from(Serde(&p.view))),
        prov => Value::from(Serde(&prov)),
        svg => Value::from(svg),
    };
    // data URIs are escaped like every other string (`/` becomes `&#x2f;`, which the browser
    // decodes back): a few percent larger, no exception to the escaping rule
    let html = render_embedded(TEMPLATES, "report.html", ctx)?;
    Ok(Rendered { html, figures })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_ordered_by_hash_and_hide_ids() {
        let ids: Vec<String> = (1..=12).map(|i| format!("PT{i:03}")).collect();
        let slides = vec![("PT001_HE".to_string(), "PT001".to_string(), "HE".to_string())];
        let a = Pseudonyms::new(7, &ids, &slides, false);
        let b = Pseudonyms::new(7, &ids.iter().rev().cloned().collect::<Vec<_>>(), &slides, false);
        let labels: BTreeSet<String> = ids.iter().map(|i| a.patient(i)).collect();
        assert_eq!(labels.len(), 12);
        assert!(labels.iter().all(|l| l.starts_with("P-0") && l.len() == 5), "{labels:?}");
        for i in &ids {
            assert_eq!(a.patient(i), b.patient(i), "input order must not matter");
        }
        let c = Pseudonyms::new(8, &ids, &slides, false);
        assert!(ids.iter().any(|i| a.patient(i) != c.patient(i)), "the seed changes the order");
        assert_eq!(a.slide("PT001_HE"), format!("{}_HE", a.patient("PT001")));
        assert!(!a.item("PT001_HE").contains("PT001"));
        assert!(!a.patient("unknown").contains("unknown"));
        let shown = Pseudonyms::new(7, &ids, &slides, true);
        assert_eq!(shown.patient("PT003"), "PT003");
        assert_eq!(shown.slide("PT001_HE"), "PT001_HE");
    }

    #[test]
    fn curve_paths_must_stay_inside_the_stage_directory() {
        let base = Path::new("/x");
        assert!(contained(base, "curves/a/roc_1095.csv", Path::new("m.json")).is_ok());
        assert!(contained(base, "../etc/passwd", Path::new("m.json")).is_err());
        assert!(contained(base, "/etc/passwd", Path::new("m.json")).is_err());
    }

    #[test]
    fn large_images_are_downscaled_small_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let big = d.path().join("big.png");
        image::RgbImage::from_fn(900, 450, |x, y| {
            let h = blake3::hash(&[(x % 251) as u8, (y % 241) as u8, (x / 251) as u8, (y / 241) as u8]);
            image::Rgb([h.as_bytes()[0], h.as_bytes()[1], h.as_bytes()[2]])
        }).save(&big).unwrap();
        assert!(std::fs::metadata(&big).unwrap().len() as usize > KEEP_BELOW_BYTES);
        let small = d.path().join("small.png");
        image::GrayImage::from_fn(400, 300, |x, _| image::Luma([if x > 20 { 255 } else { 0 }])).save(&small).unwrap();
        let decode = |uri: String| {
            let b64 = uri.strip_prefix("data:image/png;base64,").unwrap().to_string();
            image::load_from_memory(&base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
        };
        let b = decode(png_data_uri(&big).unwrap());
        assert_eq!((b.width(), b.height()), (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE / 2));
        let s = png_data_uri(&small).unwrap();
        assert!(s.ends_with(&base64::engine::general_purpose::STANDARD.encode(std::fs::read(&small).unwrap())), "small PNGs are embedded as they are");
        std::fs::write(d.path().join("fake.png"), b"not a png").unwrap();
        assert!(png_data_uri(&d.path().join("fake.png")).unwrap_err().to_string().contains("fake.png"));
    }

    #[test]
    fn svgs_get_a_view_box() {
        let s = scalable("<svg width=\"600\" height=\"400\" xmlns=\"http://www.w3.org/2000/svg\"><rect/></svg>");
        assert!(s.starts_with("<svg viewBox=\"0 0 600 400\" width=\"600\""), "{s}");
        assert_eq!(scalable("<g/>"), "<g/>");
    }

    #[test]
    fn formatting_helpers() {
        assert_eq!(pval(Some(0.0004)), "< 0.001");
        assert_eq!(pval(Some(0.0312)), "0.031");
        assert_eq!(pval(None), "—");
        assert_eq!(p_eq(Some(0.0004)), "p < 0.001");
        assert_eq!(p_eq(Some(0.0312)), "p = 0.031");
        assert_eq!(est(&Est { estimate: Some(0.7), lower: Some(0.6), upper: Some(0.8), p: None }, 2), "0.70 (0.60–0.80)");
        assert_eq!(shell_quote("experiments/demo.yaml"), "experiments/demo.yaml");
        assert_eq!(shell_quote("my spec's.yaml"), r"'my spec'\''s.yaml'");
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(quartiles(&mut v), Some((1.75, 2.5, 3.25)));
    }
}
