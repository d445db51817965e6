//! The `model: mil` half of the `train` kind: an attention-MIL network per outer fold
//! ([`crate::model::mil`]), trained in a child process.
//!
//! **Why a child process.** libtorch's CPU thread count is process-wide (a concurrent `extract`
//! node would change it) and tch has no switch for deterministic algorithms, so the stage runs
//! `spatia __train-mil` with the job as JSON on stdin and `ATEN_CPU_CAPABILITY=default`,
//! `MKL_CBWR=COMPATIBLE` and one OpenMP thread in its environment; the child opens the libtorch
//! plugin, pins libtorch to one intra-op thread and writes the outputs into the stage's
//! directory. On CPU the bytes are then the same for any `--jobs`, any thread count and any
//! x86-64 CPU. The child's stderr lines go to the stage log; its last `spatia:` line is the
//! stage's error.
//!
//! Outputs (the same contracts as a Cox arm, so `evaluate`, `calibrate` and `report` need no
//! special case): `oof.csv`, `baseline.csv` (each fold's Breslow baseline at its centred
//! risks; absent for `loss: nll`, whose `survival.csv` curves take its place),
//! `inner_oof.csv` and `inner_baseline.csv` (the inner networks' held-out predictions at the
//! chosen epoch; absent with `select: validation` or `loss: nll`), `model.json` (with each fold's
//! `mil` block: epochs, curves, weights file; and the arm's `network`), `folds/r<r>_f<f>.safetensors`,
//! `attention/` ([`crate::contracts::attention`]) and `survival.csv`.
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use super::{in_range_f64, in_range_usize, ParamError, RunCx};
use crate::cohort::Cohort;
use crate::docpath::Seg;

/// The `mil:` block of a `train` stage (used by `model: mil` only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MilParams {
    /// Units of each modality embedding.
    pub hidden: usize,
    /// Units of the gated attention.
    pub attention: usize,
    pub dropout: f64,
    pub lr: f64,
    pub weight_decay: f64,
    pub clip: f64,
    /// Largest number of epochs the choice considers.
    pub epochs: usize,
    /// `inner_cv` or `validation`.
    pub select: String,
    pub inner_folds: usize,
    pub batch_size: usize,
    /// Time intervals of `loss: nll`.
    pub intervals: usize,
    pub bilinear_dim: usize,
    pub rank: usize,
    /// `auto`, `cpu` or `cuda`.
    pub device: String,
}

impl Default for MilParams {
    fn default() -> Self {
        MilParams {
            hidden: 32,
            attention: 16,
            dropout: 0.25,
            lr: 2e-3,
            weight_decay: 1e-2,
            clip: 1.0,
            epochs: 60,
            select: "inner_cv".into(),
            inner_folds: 3,
            batch_size: 0,
            intervals: 8,
            bilinear_dim: 8,
            rank: 4,
            device: "auto".into(),
        }
    }
}

/// The fusions of `fusion:` (a Cox arm checks the value too, then concatenates).
pub const FUSIONS: [&str; 3] = ["concat", "bilinear", "late"];

/// Checks the `mil:` block, the loss and the fusion of a `model: mil` stage.
pub fn check(m: &MilParams, loss: &str, fusion: &str) -> Result<(), ParamError> {
    use crate::bounds as b;
    let at = |k: &str| vec![Seg::key("mil"), Seg::key(k)];
    for (k, r, v) in [
        ("hidden", &b::MIL_HIDDEN, m.hidden),
        ("attention", &b::MIL_ATTENTION, m.attention),
        ("epochs", &b::MIL_EPOCHS, m.epochs),
        ("inner_folds", &b::MIL_INNER_FOLDS, m.inner_folds),
        ("batch_size", &b::MIL_BATCH, m.batch_size),
        ("intervals", &b::MIL_INTERVALS, m.intervals),
        ("bilinear_dim", &b::MIL_BILINEAR_DIM, m.bilinear_dim),
        ("rank", &b::MIL_RANK, m.rank),
    ] {
        in_range_usize(at(k), r, v)?;
    }
    for (k, r, v) in [
        ("dropout", &b::MIL_DROPOUT, m.dropout),
        ("lr", &b::MIL_LR, m.lr),
        ("weight_decay", &b::MIL_WEIGHT_DECAY, m.weight_decay),
        ("clip", &b::MIL_CLIP, m.clip),
    ] {
        in_range_f64(at(k), r, v)?;
    }
    if !["inner_cv", "validation"].contains(&m.select.as_str()) {
        return Err(ParamError::at(
            at("select"),
            format!("unknown epoch choice `{}`; expected `inner_cv` or `validation`", m.select),
        ));
    }
    if !["auto", "cpu", "cuda"].contains(&m.device.as_str()) {
        return Err(ParamError::at(at("device"), format!("`device` must be auto, cpu or cuda, found `{}`", m.device)));
    }
    if !["cox", "nll"].contains(&loss) {
        return Err(ParamError::at(
            vec![Seg::key("loss")],
            format!("unknown loss `{loss}` for `model: mil`; expected `cox` or `nll`"),
        ));
    }
    if !FUSIONS.contains(&fusion) {
        return Err(ParamError::at(
            vec![Seg::key("fusion")],
            format!("unknown fusion `{fusion}` for `model: mil`; expected `concat`, `bilinear` or `late`"),
        ));
    }
    Ok(())
}

/// A slide of the job: its id, patient, stain and feature bag.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSlide {
    pub id: String,
    pub patient: String,
    pub stain: String,
    pub features: PathBuf,
}

/// What the child process needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MilJob {
    pub out: PathBuf,
    pub clinical: PathBuf,
    pub cohort: Cohort,
    pub seed: u64,
    /// Whether the clinical covariates are a modality.
    pub use_clinical: bool,
    /// Image stains, in modality order (`IHC` expanded).
    pub stains: Vec<String>,
    pub slides: Vec<JobSlide>,
    pub loss: String,
    pub fusion: String,
    pub folds: usize,
    pub repeats: usize,
    pub mil: MilParams,
    /// The spec's `refit` (not run for a MIL arm; said in `model.json`).
    pub refit: usize,
    pub modalities: Vec<String>,
    /// A directory for a replayable trace of the outer fits (`SPATIA_MIL_TRACE`), for the
    /// reference check.
    #[serde(default)]
    pub trace: Option<PathBuf>,
}

/// The environment variable naming the `spatia` executable the child runs (default: this
/// executable when it is `spatia`, else `spatia` beside it or its parent directory).
pub const EXE_ENV: &str = "SPATIA_EXE";

fn spatia_exe() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(EXE_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe().context("cannot find the running executable")?;
    if me.file_name().is_some_and(|n| n == "spatia") {
        return Ok(me);
    }
    let dir = me.parent().map(Path::to_path_buf).unwrap_or_default();
    for cand in [dir.join("spatia"), dir.parent().map(|d| d.join("spatia")).unwrap_or_default()] {
        if cand.is_file() {
            return Ok(cand);
        }
    }
    bail!(
        "cannot find the `spatia` executable to train the MIL model in (looked beside {}); set {EXE_ENV}",
        me.display()
    )
}

/// Runs the job in a child process (see the module docs), relaying its log.
pub fn run_in_child(cx: &RunCx, job: &MilJob) -> anyhow::Result<()> {
    let exe = spatia_exe()?;
    let mut c = std::process::Command::new(&exe);
    c.arg("__train-mil")
        .env("ATEN_CPU_CAPABILITY", "default")
        .env("MKL_CBWR", "COMPATIBLE")
        .env("OMP_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    let mut child = c.spawn().with_context(|| format!("cannot start {} __train-mil", exe.display()))?;
    let _tracked = crate::interrupt::track_child(child.id());
    {
        let mut stdin = child.stdin.take().context("no stdin for the MIL child")?;
        stdin.write_all(serde_json::to_string(job)?.as_bytes()).context("sending the job to the MIL child")?;
    }
    let mut last_error = None;
    if let Some(err) = child.stderr.take() {
        for line in std::io::BufReader::new(err).lines() {
            let line = line.unwrap_or_default();
            if let Some(m) = line.strip_prefix("spatia: ") {
                last_error = Some(m.to_string());
            } else {
                cx.log(&line);
            }
        }
    }
    let status = child.wait().context("waiting for the MIL child")?;
    if !status.success() {
        match last_error {
            Some(m) => bail!("{m}"),
            None => bail!("the MIL training process {} ended with {status}", exe.display()),
        }
    }
    Ok(())
}

/// The child's entry point (`spatia __train-mil`): reads the job from stdin and runs it.
#[cfg(feature = "torch")]
pub fn child_main() -> anyhow::Result<u8> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("reading the MIL job from stdin")?;
    let job: MilJob = serde_json::from_str(&text).context("the MIL job on stdin is not valid")?;
    child::run(&job)?;
    Ok(0)
}

/// Without libtorch there is no child to run.
#[cfg(not(feature = "torch"))]
pub fn child_main() -> anyhow::Result<u8> {
    bail!("{}", NO_TORCH)
}

/// The message of a build without libtorch.
pub const NO_TORCH: &str = "`model: mil` needs libtorch, and this spatia was built without the `torch` feature: build with `make build` (it installs libtorch and builds the plugin)";

#[cfg(feature = "torch")]
mod child {
    use super::*;
    use crate::cohort::read_clinical;
    use crate::contracts::attention::{AttentionMaps, AttentionRow, SlideAttention};
    use crate::contracts::baseline::{Baselines, InnerBaselines};
    use crate::contracts::model::{FoldSummary, MilFoldSummary, ModelJson, SCHEMA as MODEL_SCHEMA};
    use crate::contracts::oof::{InnerOof, Oof};
    use crate::contracts::survival_curves::SurvivalCurves;
    use crate::features::bag::Bag;
    use crate::features::torch_plugin;
    use crate::model::mil::{train_mil, EpochSelection, MilInput, MilOptions, NetOptions, SlideBag, StainBags};
    use crate::model::train::cox_curves;
    use crate::model::{covariates_from_table, CvOptions, MissingPolicy};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn eprint(line: &str) {
        let mut e = std::io::stderr().lock();
        let _ = writeln!(e, "{line}");
    }

    pub fn run(job: &MilJob) -> anyhow::Result<()> {
        let plugin = torch_plugin::get().map_err(anyhow::Error::msg)?;
        plugin.set_threads(1);
        let cuda = plugin.cuda_device_count();
        let device = match (job.mil.device.as_str(), cuda) {
            ("cuda", 0) => bail!("`mil.device: cuda` but libtorch sees no CUDA device (`spatia doctor` says why)"),
            ("cpu", _) | ("auto", 0) => -1,
            _ => 0,
        };
        eprint(&format!(
            "attention-MIL on {} (libtorch from {}, 1 CPU thread)",
            if device < 0 { "CPU".to_string() } else { "CUDA device 0".to_string() },
            plugin.path().display()
        ));
        let table = read_clinical(&job.clinical, &job.cohort)?;
        let index: BTreeMap<&str, usize> = table.ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
        let covariates = if job.use_clinical {
            covariates_from_table(&table, &job.cohort.categorical)
                .into_iter()
                .filter(|c| job.cohort.covariates.contains(&c.name))
                .collect()
        } else {
            Vec::new()
        };
        let mut stains = Vec::new();
        for stain in &job.stains {
            let mut bags: Vec<Vec<SlideBag>> = vec![Vec::new(); table.ids.len()];
            let mut dim: Option<(usize, String)> = None;
            let mut slides: Vec<&JobSlide> = job.slides.iter().filter(|s| &s.stain == stain).collect();
            slides.sort_by(|a, b| a.id.cmp(&b.id));
            let mut read = 0;
            for s in slides {
                let Some(&row) = index.get(s.patient.as_str()) else { continue };
                let bag =
                    Bag::read(&s.features).with_context(|| format!("slide `{}` (patient {})", s.id, s.patient))?;
                let d = bag.features.ncols();
                match &dim {
                    None => dim = Some((d, s.id.clone())),
                    Some((d0, first)) if *d0 != d => bail!(
                        "slide `{}` (patient {}): {} has {d} features per tile, {stain} slide `{first}` has {d0}: every {stain} bag must have the same width",
                        s.id,
                        s.patient,
                        s.features.display()
                    ),
                    _ => {}
                }
                if bag.features.nrows() == 0 {
                    eprint(&format!(
                        "warning: slide `{}` (patient {}) has no tiles: left out of her {stain} bag",
                        s.id, s.patient
                    ));
                    continue;
                }
                let coords = bag.coords.rows().into_iter().map(|r| [r[0], r[1]]).collect();
                let feats = bag.features.iter().copied().collect();
                bags[row].push(SlideBag { slide: s.id.clone(), coords, feats });
                read += 1;
            }
            let Some((d, _)) = dim else {
                bail!("modality `{stain}`: no {stain} slide of a cohort patient has features")
            };
            let without = bags.iter().filter(|b| b.is_empty()).count();
            eprint(&format!(
                "modality {stain}: {read} slides, {without} patient(s) without one (learned missing embedding)"
            ));
            stains.push(StainBags { name: stain.clone(), dim: d, bags });
        }
        let input = MilInput {
            patients: table.ids.clone(),
            time: table.time.clone(),
            event: table.event.clone(),
            stains,
            covariates,
        };
        let m = &job.mil;
        let opts = MilOptions {
            cv: CvOptions { k: job.folds, repeats: job.repeats, seed: job.seed },
            inner_k: m.inner_folds,
            select: if m.select == "validation" { EpochSelection::Validation } else { EpochSelection::InnerCv },
            max_epochs: m.epochs,
            batch_size: m.batch_size,
            net: NetOptions {
                hidden: m.hidden,
                attention: m.attention,
                dropout: m.dropout,
                fusion: job.fusion.clone(),
                bilinear_dim: m.bilinear_dim,
                rank: m.rank,
                loss: job.loss.clone(),
                intervals: m.intervals,
                lr: m.lr,
                weight_decay: m.weight_decay,
                clip: m.clip,
                device,
            },
            missing: if job.cohort.missing.as_deref().is_none_or(|m| m == "error") {
                MissingPolicy::Error
            } else {
                MissingPolicy::Impute
            },
            weights_dir: Some(job.out.join("folds")),
            trace_dir: job.trace.clone(),
        };
        std::fs::create_dir_all(job.out.join("folds"))?;
        let res = train_mil(&input, &opts, &mut |l| eprint(l)).context("cross-validated attention-MIL training")?;
        res.oof.write(&job.out.join(Oof::FILE))?;
        // a `loss: nll` network has no baselines, `select: validation` no inner predictions:
        // those files are then absent (readers take them as empty for a MIL arm)
        if !res.baselines.folds.is_empty() {
            res.baselines.write(&job.out.join(Baselines::FILE))?;
        }
        if !res.inner_oof.rows.is_empty() {
            res.inner_oof.write(&job.out.join(InnerOof::FILE))?;
            res.inner_baselines.write(&job.out.join(InnerBaselines::FILE))?;
        }
        // attention, per slide
        let mut per: BTreeMap<&str, SlideAttention> = BTreeMap::new();
        for s in &job.slides {
            if !job.stains.contains(&s.stain) || !index.contains_key(s.patient.as_str()) {
                continue;
            }
            per.insert(
                s.id.as_str(),
                SlideAttention {
                    slide: s.id.clone(),
                    patient: s.patient.clone(),
                    stain: s.stain.clone(),
                    tiles: 0,
                    rows: Vec::new(),
                },
            );
        }
        for a in &res.attention {
            if let Some(e) = per.get_mut(a.slide.as_str()) {
                e.rows.push(AttentionRow { repeat: a.repeat, fold: a.fold, x: a.x, y: a.y, attention: a.weight });
            }
        }
        for e in per.values_mut() {
            e.tiles = e.rows.iter().filter(|r| r.repeat == 0).count();
        }
        AttentionMaps { slides: per.into_values().filter(|s| !s.rows.is_empty()).collect() }.write(&job.out)?;
        let folds = res
            .folds
            .iter()
            .map(|f| FoldSummary {
                repeat: f.repeat,
                fold: f.fold,
                n_train: f.n_train,
                n_train_events: f.n_train_events,
                n_test: f.n_test,
                penalty: 0.0,
                cvpl: Vec::new(),
                grid_extended: 0,
                names: Vec::new(),
                beta: Vec::new(),
                cut_median: f.cut_median,
                cut_tertiles: f.cut_tertiles,
                transforms: Vec::new(),
                warnings: f.warnings.clone(),
                mil: Some(MilFoldSummary {
                    epochs: f.epochs,
                    inner_score: f.inner_score.clone(),
                    train_loss: f.train_loss.clone(),
                    centre: f.centre,
                    weights: format!("folds/r{}_f{}.safetensors", f.repeat, f.fold),
                }),
            })
            .collect();
        let model = ModelJson {
            schema: MODEL_SCHEMA,
            model: "mil".into(),
            modalities: job.modalities.clone(),
            inputs: job.stains.iter().map(|s| json!({"modality": s, "pooling": "gated attention"})).collect(),
            n_patients: input.patients.len(),
            n_events: input.event.iter().filter(|&&e| e).count(),
            k: job.folds,
            repeats: job.repeats,
            inner_k: m.inner_folds,
            penalty: json!(null),
            pca: 0,
            seed: job.seed,
            folds,
            refit: None,
            refit_skipped: (job.refit > 0).then(|| {
                format!(
                    "refit: {} was not run for this attention-MIL arm (each replicate would train {} networks); its intervals are conditional on the fitted networks (paired bootstrap of the out-of-fold predictions)",
                    job.refit,
                    job.repeats * job.folds * (m.inner_folds + 1)
                )
            }),
            network: Some(json!({
                "loss": job.loss, "fusion": job.fusion, "params": m, "device": if device < 0 { "cpu" } else { "cuda" },
                "select": m.select, "stains": job.stains, "clinical": job.use_clinical,
            })),
        };
        model.write(&job.out.join(ModelJson::FILE))?;
        let mut curves = res.curves.clone();
        curves.curves.extend(cox_curves(&res.oof, &res.baselines).curves);
        curves.write(&job.out.join(SurvivalCurves::FILE), &input.patients)?;
        Ok(())
    }
}
