//! The generated demo cohort: seeded synthetic pyramidal TIFF slides and a clinical
//! table in which both the clinical covariates and slide-visible tumour properties carry
//! signal on time to distant metastasis.
//!
//! Entry point: [`generate`] (CLI: `spatia demo generate`). It writes, under the output
//! directory:
//! - `slides/<patient>_<stain>.tif`: pyramidal tiled TIFF, JPEG 256×256 tiles, ≥ 3 levels
//!   (4× apart), an Aperio-style description so that OpenSlide reports vendor `aperio`,
//!   0.5 µm/px and objective 20× ([`tiff_writer`], pixels from [`texture`]);
//! - `slides.csv`: `patient_id,path,stain` (paths relative to the manifest);
//! - `clinical.csv`: `patient_id,age,tumor_size_mm,nodes_positive,grade,er,pr,her2,ki67,
//!   dmfs_days,dm` ([`clinical`]; `dm` 0 = censored, 1 = distant metastasis, 2 = death without
//!   metastasis, a competing event: declare `cohort.causes: {1: metastasis, 2: death}`);
//! - `cohort.json`: parameters, seed, Spatia version, blake3 digest of every file and the
//!   per-patient ground truth (latent values, uncensored metastasis, death and censoring
//!   times; for a patient with a Ki-67 slide `ki67_painted`: the tumour and other (stromal)
//!   nuclei painted on it, positive and negative, each counted once, with `tumour_fraction`
//!   and `all_fraction` = positive / all; pipelines must not read them).
//!
//! Every byte is a function of the parameters and the seed: the same inputs give identical
//! files whatever the number of rayon threads.
//!
//! Missing IHC ([`DemoParams::missing_ihc`], `--missing-ihc f`): round(f × number of IHC slides)
//! IHC slides, chosen by [`left_out_slides`] from the seed alone, are neither written nor listed
//! in `slides.csv`; H&E slides are never left out. Nothing else moves: the patients (clinical
//! table, outcome, latent truth) come from their own per-patient streams and every slide from
//! its own per-(patient, stain) seed, so `clinical.csv` and the slides that are written are the
//! same bytes as with f = 0 — the truth is unchanged, only data are missing. With f = 0 the
//! output, `cohort.json` included, is the same as before the option existed; with f > 0
//! `cohort.json` records `params.missing_ihc` and the `left_out` slides.
//!
//! demo never reads slides back; `slide` does that.
pub mod cli;
pub mod clinical;
pub mod texture;
pub mod tiff_writer;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use texture::{derive, hash2, Lut, Painted, SlidePlan, SplitMix, Stain, TILE};

/// Schema version of `cohort.json`.
pub const COHORT_SCHEMA_VERSION: u32 = 1;
/// Level-0 resolution of every demo slide, µm/px.
pub const MPP: f64 = 0.5;
/// Objective power recorded in every demo slide.
pub const OBJECTIVE_POWER: u32 = 20;
/// Smallest accepted `size` (level-0 long side, px): gives 3 levels of ≥ 64 px.
pub const MIN_SIZE: u32 = 1024;
/// Largest accepted `size`.
pub const MAX_SIZE: u32 = 100_000;

/// Errors of the demo generator.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A parameter out of its range.
    #[error("invalid demo parameter {name}: expected {expected}, found {found}")]
    Param {
        /// Parameter name as on the command line.
        name: &'static str,
        /// What is allowed.
        expected: String,
        /// What was given.
        found: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A slide would exceed the 4 GiB limit of classic TIFF.
    #[error("{path}: slide would exceed the 4 GiB classic-TIFF limit ({bytes} bytes written); use a smaller --size")]
    TooLarge {
        /// The slide file.
        path: PathBuf,
        /// Bytes written so far.
        bytes: u64,
    },
    /// The JPEG encoder failed.
    #[error("JPEG encoding failed: {0}")]
    Jpeg(String),
    /// Writing a CSV or JSON file failed.
    #[error("{path}: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A broken internal invariant (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl DemoError {
    fn io(path: &Path, source: std::io::Error) -> DemoError {
        DemoError::Io { path: path.to_path_buf(), source }
    }
}

/// Parameters of a demo cohort.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemoParams {
    /// Number of patients.
    pub patients: usize,
    /// Seed of everything.
    pub seed: u64,
    /// Nominal level-0 side of a slide, px (each slide's width and height vary ±10 % around it).
    pub size: u32,
    /// Stains scanned for every patient (H&E first by convention).
    pub stains: Vec<Stain>,
    /// JPEG quality of the tiles (1–100).
    pub jpeg_quality: u8,
    /// Fraction of the IHC slides left out (0 ≤ f < 1; see [`left_out_slides`]).
    #[serde(default)]
    pub missing_ihc: f64,
}

impl Default for DemoParams {
    fn default() -> Self {
        DemoParams {
            patients: 60,
            seed: 2,
            size: 3500,
            stains: vec![Stain::HE, Stain::KI67],
            jpeg_quality: 75,
            missing_ihc: 0.0,
        }
    }
}

impl DemoParams {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), DemoError> {
        if self.patients == 0 || self.patients > 100_000 {
            return Err(DemoError::Param {
                name: "--patients",
                expected: "1 to 100000".into(),
                found: self.patients.to_string(),
            });
        }
        if !(MIN_SIZE..=MAX_SIZE).contains(&self.size) {
            return Err(DemoError::Param {
                name: "--size",
                expected: format!("{MIN_SIZE} to {MAX_SIZE} px"),
                found: self.size.to_string(),
            });
        }
        if self.stains.is_empty() {
            return Err(DemoError::Param {
                name: "--stains",
                expected: "at least one of HE, ER, PR, HER2, KI67".into(),
                found: "none".into(),
            });
        }
        let mut seen = self.stains.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != self.stains.len() {
            return Err(DemoError::Param {
                name: "--stains",
                expected: "each stain once".into(),
                found: self.stains.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","),
            });
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return Err(DemoError::Param {
                name: "--quality",
                expected: "1 to 100".into(),
                found: self.jpeg_quality.to_string(),
            });
        }
        let range = crate::bounds::CLI_DEMO_MISSING_IHC;
        if range.check_f64(self.missing_ihc).is_err() {
            return Err(DemoError::Param {
                name: "--missing-ihc",
                expected: format!("{} {}", range.describe(), range.unit),
                found: self.missing_ihc.to_string(),
            });
        }
        if self.missing_ihc > 0.0 && !self.stains.contains(&Stain::HE) {
            return Err(DemoError::Param {
                name: "--missing-ihc",
                expected: "0 when HE is not among --stains (every patient keeps her H&E slide)".into(),
                found: self.missing_ihc.to_string(),
            });
        }
        Ok(())
    }
}

/// One generated slide.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlideRecord {
    /// Patient identifier.
    pub patient_id: String,
    /// Stain.
    pub stain: Stain,
    /// Path relative to the output directory.
    pub path: String,
    /// Level-0 width, px.
    pub width: u32,
    /// Level-0 height, px.
    pub height: u32,
    /// Dimensions of every level.
    pub levels: Vec<(u32, u32)>,
    /// File size, bytes.
    pub bytes: u64,
}

/// What [`generate`] wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemoSummary {
    /// The output directory.
    pub out: PathBuf,
    /// Number of patients.
    pub patients: usize,
    /// Number of slides written.
    pub slides: usize,
    /// Number of IHC slides left out (`missing_ihc`).
    pub slides_left_out: usize,
    /// Number of distant metastases.
    pub events: usize,
    /// Fraction of patients with the event.
    pub event_fraction: f64,
    /// Total bytes of the slides.
    pub slide_bytes: u64,
    /// Manifest path.
    pub manifest: PathBuf,
    /// Clinical table path.
    pub clinical: PathBuf,
    /// Ground-truth and digest file.
    pub cohort_json: PathBuf,
}

/// Number of pyramid levels for a level 0 of long side `long`: down to ≤ 512 px, at least 3.
pub fn n_levels(long: u32) -> usize {
    let mut n = 1;
    let mut l = long;
    while l > 512 {
        l /= 4;
        n += 1;
    }
    n.max(3)
}

/// The seed of the slide of patient `index` (0-based) in `stain`.
pub fn slide_seed(seed: u64, index: usize, stain: Stain) -> u64 {
    hash2(derive(seed, "slide"), index as i64, stain as i64)
}

/// The IHC slides left out, as (patient index, stain), sorted: round(`missing_ihc` × number of
/// IHC slides) of them (half-way rounds up), those with the smallest
/// `hash2(derive(seed, "missing-ihc"), patient, stain)`. A function of the seed, the patient
/// count and the stains only; a larger fraction leaves out a superset. H&E is never chosen.
pub fn left_out_slides(params: &DemoParams) -> Vec<(usize, Stain)> {
    if params.missing_ihc <= 0.0 || !params.missing_ihc.is_finite() {
        return Vec::new();
    }
    let stream = derive(params.seed, "missing-ihc");
    let mut ihc: Vec<(u64, usize, Stain)> = (0..params.patients)
        .flat_map(|p| params.stains.iter().filter(|s| s.is_ihc()).map(move |s| (p, *s)))
        .map(|(p, s)| (hash2(stream, p as i64, s as i64), p, s))
        .collect();
    ihc.sort();
    let k = ((params.missing_ihc * ihc.len() as f64).round() as usize).min(ihc.len());
    let mut out: Vec<(usize, Stain)> = ihc[..k].iter().map(|&(_, p, s)| (p, s)).collect();
    out.sort();
    out
}

/// Generates the cohort described by `params` into `out` (created if missing; files of a
/// previous run there are overwritten, and a previous run's copy of a left-out slide is
/// removed).
pub fn generate(params: &DemoParams, out: &Path) -> Result<DemoSummary, DemoError> {
    params.validate()?;
    let slides_dir = out.join("slides");
    std::fs::create_dir_all(&slides_dir).map_err(|e| DemoError::io(&slides_dir, e))?;
    let n = params.patients;
    let patients: Vec<clinical::Patient> = (0..n).map(|i| clinical::draw_patient(params.seed, i, n)).collect();

    struct Job {
        patient: usize,
        stain: Stain,
    }
    let left_out = left_out_slides(params);
    let jobs: Vec<Job> = (0..n)
        .flat_map(|p| params.stains.iter().map(move |s| Job { patient: p, stain: *s }))
        .filter(|j| left_out.binary_search(&(j.patient, j.stain)).is_err())
        .collect();
    // a left-out slide of an earlier run into the same directory would contradict slides.csv
    for &(p, s) in &left_out {
        let stale = slides_dir.join(format!("{}_{}.tif", patients[p].clinical.patient_id, s.as_str()));
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DemoError::io(&stale, e)),
        }
    }
    let lut = Lut::default();
    let records: Vec<Result<(SlideRecord, String, Painted), DemoError>> = jobs
        .par_iter()
        .map(|job| {
            let p = &patients[job.patient];
            let slide_seed = slide_seed(params.seed, job.patient, job.stain);
            let mut r = SplitMix(derive(slide_seed, "dims"));
            let w = (params.size as f32 * (0.9 + 0.2 * r.unit())).round() as u32;
            let h = (params.size as f32 * (0.9 + 0.2 * r.unit())).round() as u32;
            let look = clinical::look_of(&p.latent, job.stain);
            let plan = SlidePlan::new(slide_seed, w, h, job.stain, look);
            let name = format!("{}_{}.tif", p.clinical.patient_id, job.stain.as_str());
            let path = slides_dir.join(&name);
            let (levels, painted) = write_slide(&plan, &lut, &path, params)?;
            let bytes = std::fs::metadata(&path).map_err(|e| DemoError::io(&path, e))?.len();
            let digest = digest_file(&path)?;
            Ok((
                SlideRecord {
                    patient_id: p.clinical.patient_id.clone(),
                    stain: job.stain,
                    path: format!("slides/{name}"),
                    width: w,
                    height: h,
                    levels,
                    bytes,
                },
                digest,
                painted,
            ))
        })
        .collect();
    let mut slides = Vec::with_capacity(records.len());
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    // the nuclei painted on each patient's Ki-67 slide
    let mut ki67_painted: BTreeMap<String, Painted> = BTreeMap::new();
    for r in records {
        let (rec, digest, painted) = r?;
        files.insert(rec.path.clone(), digest);
        if rec.stain == Stain::KI67 {
            ki67_painted.insert(rec.patient_id.clone(), painted);
        }
        slides.push(rec);
    }

    // slides.csv
    let manifest = out.join("slides.csv");
    write_csv(&manifest, |w| {
        w.write_record(["patient_id", "path", "stain"])?;
        for s in &slides {
            w.write_record([s.patient_id.as_str(), s.path.as_str(), s.stain.as_str()])?;
        }
        Ok(())
    })?;
    files.insert("slides.csv".into(), digest_file(&manifest)?);

    // clinical.csv
    let clinical_path = out.join("clinical.csv");
    write_csv(&clinical_path, |w| {
        for p in &patients {
            w.serialize(&p.clinical)?;
        }
        Ok(())
    })?;
    files.insert("clinical.csv".into(), digest_file(&clinical_path)?);

    let events = patients.iter().filter(|p| p.clinical.dm == 1).count();
    let event_fraction = events as f64 / n as f64;
    let cohort_json = out.join("cohort.json");
    let truth: Vec<serde_json::Value> = patients
        .iter()
        .map(|p| {
            let mut v = serde_json::to_value(&p.latent).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("patient_id".into(), p.clinical.patient_id.clone().into());
                o.insert("eta_image".into(), p.eta_image.into());
                o.insert("eta_clinical".into(), p.eta_clinical.into());
                o.insert("event_time_days".into(), p.event_time_days.into());
                o.insert("censor_time_days".into(), p.censor_time_days.into());
                o.insert("death_time_days".into(), p.death_time_days.into());
                if let Some(k) = ki67_painted.get(&p.clinical.patient_id) {
                    o.insert(
                        "ki67_painted".into(),
                        serde_json::json!({
                            "tumour_positive": k.tumour_positive,
                            "tumour_negative": k.tumour_negative,
                            "other_positive": k.other_positive,
                            "other_negative": k.other_negative,
                            "tumour_fraction": k.tumour_fraction(),
                            "all_fraction": k.all_fraction(),
                        }),
                    );
                }
            }
            v
        })
        .collect();
    let mut doc = serde_json::json!({
        "schema_version": COHORT_SCHEMA_VERSION,
        "generator": "spatia demo generate",
        "spatia_version": env!("CARGO_PKG_VERSION"),
        "seed": params.seed,
        "params": {
            "patients": params.patients,
            "size": params.size,
            "stains": params.stains.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "jpeg_quality": params.jpeg_quality,
            "mpp": MPP,
            "objective_power": OBJECTIVE_POWER,
            "tile_size": TILE,
            "level_downsample": 4,
        },
        "model": {
            "baseline": "weibull",
            "weibull_shape": clinical::WEIBULL_SHAPE,
            "weibull_scale_per_year": clinical::WEIBULL_SCALE,
            "eta_image": "0.9*density_z + 0.7*atypia_z + 0.6*proliferation_z",
            "eta_clinical": "0.30*z_log_size + 0.45*(ln(1+nodes)-0.6)/0.75 - 0.25*er + 0.25*her2 - 0.10*(age-58)/12",
            "censoring": "min(U(1,10) years administrative, Exp(mean 30 years) loss to follow-up)",
            "competing_death": format!(
                "death from other causes (dm = 2): exponential, rate {}/year * exp({}*(age-58))",
                clinical::DEATH_RATE,
                clinical::DEATH_AGE_LOG_HR
            ),
            "event_coding": "dm: 0 = censored, 1 = distant metastasis, 2 = death without metastasis",
        },
        "summary": {
            "patients": n,
            "slides": slides.len(),
            "events": events,
            "event_fraction": event_fraction,
            "competing_deaths": patients.iter().filter(|p| p.clinical.dm == 2).count(),
        },
        "slides": slides,
        "files": files,
        "ground_truth_note": "latent values are the generator's ground truth for checks; a pipeline must not read them",
        "ground_truth": truth,
    });
    if params.missing_ihc > 0.0 {
        // only then, so that the default cohort.json stays as it was before the option
        let listed: Vec<serde_json::Value> = left_out
            .iter()
            .map(|&(p, s)| {
                let id = &patients[p].clinical.patient_id;
                serde_json::json!({
                    "patient_id": id,
                    "stain": s.as_str(),
                    "path": format!("slides/{id}_{}.tif", s.as_str()),
                })
            })
            .collect();
        doc["params"]["missing_ihc"] = params.missing_ihc.into();
        doc["summary"]["slides_left_out"] = left_out.len().into();
        doc["left_out_note"] =
            "IHC slides not written and not in slides.csv (--missing-ihc); the patients' truth is unchanged".into();
        doc["left_out"] = listed.into();
    }
    let text = serde_json::to_string_pretty(&doc)
        .map_err(|e| DemoError::Write { path: cohort_json.clone(), message: e.to_string() })?;
    write_atomic(&cohort_json, format!("{text}\n").as_bytes())?;

    Ok(DemoSummary {
        out: out.to_path_buf(),
        patients: n,
        slides: slides.len(),
        slides_left_out: left_out.len(),
        events,
        event_fraction,
        slide_bytes: slides.iter().map(|s| s.bytes).sum(),
        manifest,
        clinical: clinical_path,
        cohort_json,
    })
}

/// Renders and writes one slide (to a temporary name, renamed into place when complete).
/// Returns the level dimensions and the nuclei painted.
pub fn write_slide(
    plan: &SlidePlan,
    lut: &Lut,
    path: &Path,
    params: &DemoParams,
) -> Result<(Vec<(u32, u32)>, Painted), DemoError> {
    let (w, h) = (plan.width, plan.height);
    let n = n_levels(w.max(h));
    let name = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let description = format!(
        "Aperio Image Library v10.0.51\n{w}x{h} [0,0 {w}x{h}] ({TILE}x{TILE}) JPEG/RGB Q={q}|AppMag = {OBJECTIVE_POWER}|MPP = {MPP}|Filename = {name}|Generator = spatia demo (synthetic)",
        q = params.jpeg_quality
    );
    let tmp = path.with_extension("tif.tmp");
    let mut writer = tiff_writer::PyramidWriter::create(
        &tmp,
        tiff_writer::PyramidOptions {
            width: w,
            height: h,
            n_levels: n,
            mpp: MPP,
            quality: params.jpeg_quality,
            description,
            software: format!("spatia {} demo generator", env!("CARGO_PKG_VERSION")),
        },
    )?;
    let mut painted = Painted::default();
    for ty in 0..writer.tiles_y() {
        let row: Vec<(Vec<u8>, Painted)> = (0..writer.tiles_x())
            .into_par_iter()
            .map(|tx| {
                let mut buf = vec![0u8; (TILE * TILE * 3) as usize];
                let (_, p) = texture::render_tile_counted(plan, lut, tx, ty, &mut buf);
                (buf, p)
            })
            .collect();
        painted = row.iter().fold(painted, |a, (_, p)| a.plus(*p));
        writer.push_row(row.into_iter().map(|(b, _)| b).collect())?;
    }
    writer.finish()?;
    std::fs::rename(&tmp, path).map_err(|e| DemoError::io(path, e))?;
    Ok((tiff_writer::level_dims(w, h, n), painted))
}

fn digest_file(path: &Path) -> Result<String, DemoError> {
    let mut h = blake3::Hasher::new();
    h.update_mmap(path).map_err(|e| DemoError::io(path, e))?;
    Ok(crate::util::hex(&h.finalize()))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DemoError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| DemoError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| DemoError::io(path, e))
}

fn write_csv(
    path: &Path,
    body: impl FnOnce(&mut csv::Writer<Vec<u8>>) -> Result<(), csv::Error>,
) -> Result<(), DemoError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    body(&mut w).map_err(|e| DemoError::Write { path: path.to_path_buf(), message: e.to_string() })?;
    let bytes = w.into_inner().map_err(|e| DemoError::Write { path: path.to_path_buf(), message: e.to_string() })?;
    write_atomic(path, &bytes)
}
