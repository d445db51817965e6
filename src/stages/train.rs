//! `train`: one arm's cross-validated survival model, from the modalities the spec names.
//!
//! `model: mil` is an attention-MIL network over the tile bags (`super::train_mil`,
//! docs/mil.md); everything below is `model: cox`, which builds one row per patient from the
//! chosen modalities:
//! - `clinical`: the cohort's covariates (categorical ones one-hot), standardised per fold;
//! - `HE`, `ER`, `PR`, `HER2`, `KI67` (or `IHC` for every IHC stain of the cohort): the
//!   patient's slides of that stain from the `extract` stage, mean-pooled over all their
//!   tiles, then z-scored and reduced by PCA fitted on the training fold (`pca` components);
//! - `stain`: per IHC stain from the `stain` stage (mean over the patient's slides of that
//!   stain), standardised per fold: the nuclear labelling index for ER, PR and KI67 (plus the
//!   H-score for ER and PR), the DAB-positive pixel index for HER2 (a membrane stain);
//! - any block declared under `blocks:` (columns of the clinical table, e.g. a gene-expression
//!   block), reduced by PCA like a stain.
//!
//! Patient-level k-fold CV stratified by event, optionally repeated, with the L2 penalty
//! chosen by inner CV ([`crate::model::train`]). Outputs (the contracts `evaluate` and
//! `calibrate` read, [`crate::contracts`]): `oof.csv`, `inner_oof.csv` ([`crate::contracts::oof`]),
//! `baseline.csv`, `inner_baseline.csv` ([`crate::contracts::baseline`]), `model.json`
//! ([`crate::contracts::model`]); in a competing-risks cohort `competing.json`
//! ([`crate::contracts::competing`]: the per-fold models of every cause, or the Fine–Gray model,
//! from which consumers compute the cumulative incidence of cause 1); `survival.csv`
//! ([`crate::contracts::survival_curves`]); and, read by no stage, `folds/r<r>_f<f>.json`.
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

use super::{
    in_range_f64, in_range_usize, resolved, typed, CheckCx, Checked, Fanout, InputRef, Item, Need, ParamError, RunCx,
    StageKind, Typed,
};
use crate::cohort::Cohort;
use crate::cohort::{read_clinical, Cell, ClinicalTable};
use crate::contracts::baseline::{Baselines, InnerBaselines};
use crate::contracts::competing::CompetingJson;
use crate::contracts::extract::ExtractOutput;
use crate::contracts::model::{CvplPoint, FoldSummary, ModelJson, RefitFailure, RefitSummary, SCHEMA as MODEL_SCHEMA};
use crate::contracts::oof::{InnerOof, Oof};
use crate::contracts::refit::Refit;
use crate::contracts::stain::{StainOutput, StainSummary};
use crate::contracts::survival_curves::SurvivalCurves;
use crate::contracts::{Output, EXTRACT, STAIN, TRAIN};
use crate::docpath::Seg;
use crate::model::competing::{fit_competing, CompetingMethod};
use crate::model::phenotype::{PatientTiles, SpatialInput};
use crate::model::refit::refit_bootstrap;
use crate::model::{
    covariates_from_table, Block, Column, Covariate, CvOptions, MissingPolicy, Penalty, TrainData, TrainOptions,
    TrainResult,
};
use crate::slide::Stain;
use std::path::{Path, PathBuf};

use super::train_mil::{self, MilParams};

/// Relative tolerance `spatia reproduce` compares a CUDA-trained network's numbers with
/// (float32 reductions in another order: ~1e-6 per operation, accumulated over epochs).
pub const CUDA_RTOL: f64 = 1e-3;

pub struct Train;

/// Whether a modality names an image stain (spelled exactly as [`Stain::as_str`]).
fn is_stain(m: &str) -> bool {
    Stain::ALL.iter().any(|s| s.as_str() == m)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
enum PenaltyParam {
    Fixed(f64),
    Auto(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct BlockSpec {
    /// Columns of the clinical table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    columns: Option<Vec<String>>,
    /// Every column whose name starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
}

fn d_model() -> String {
    "cox".into()
}
fn d_fusion() -> String {
    "concat".into()
}
fn d_folds() -> usize {
    5
}
fn d_repeats() -> usize {
    1
}
fn d_penalty() -> PenaltyParam {
    PenaltyParam::Auto("auto".into())
}
fn d_grid() -> Vec<f64> {
    vec![0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
}
fn d_pca() -> usize {
    5
}
/// Tissue phenotypes of the `spatial` modality unless `phenotypes` is given.
const DEFAULT_PHENOTYPES: usize = 6;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainParams {
    #[serde(default = "d_model")]
    model: String,
    /// Loss (`cox`: partial likelihood; the MIL model will add `nll`, discrete-time).
    #[serde(default = "d_model")]
    loss: String,
    /// How modalities are fused (`concat` for the Cox model: one design matrix).
    #[serde(default = "d_fusion")]
    fusion: String,
    modalities: Vec<String>,
    #[serde(default = "d_folds")]
    folds: usize,
    #[serde(default = "d_repeats")]
    repeats: usize,
    /// Whole-procedure bootstrap replicates with refitting (0: none), for split-aware intervals.
    #[serde(default)]
    refit: usize,
    #[serde(default = "d_folds")]
    inner_folds: usize,
    #[serde(default = "d_penalty")]
    penalty: PenaltyParam,
    #[serde(default = "d_grid")]
    penalties: Vec<f64>,
    #[serde(default = "d_pca")]
    pca: usize,
    /// Tissue phenotypes of the `spatial` modality (k-means clusters; default 6 with `spatial`,
    /// dropped without it, so other arms' keys do not change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phenotypes: Option<usize>,
    #[serde(default)]
    blocks: BTreeMap<String, BlockSpec>,
    /// In a competing-risks cohort (`cohort.causes`): `cause_specific` (default) or `fine_gray`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    competing: Option<String>,
    /// The attention-MIL network (`model: mil` only; dropped from a Cox stage's parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mil: Option<MilParams>,
    /// Filled from the cohort block (the key covers how the table is read).
    #[serde(default)]
    cohort: Value,
}

impl StageKind for Train {
    fn name(&self) -> &'static str {
        TRAIN
    }
    fn version(&self) -> u32 {
        // 4: a penalty chosen at the edge of the grid extends the grid (model.json's
        // `cvpl`/`grid_extended`, a `penalty_at_bound` warning), and Cox fit diagnostics
        // (`separation`, …) are fold warnings: outputs change where a fold hit an edge or warned.
        // 5: `refit` (whole-procedure bootstrap: refit_oof.csv, refit_baseline.csv, model.json's
        //    `refit`), and `competing.json` in a competing-risks cohort.
        // 6: the `stain` modality's ER/PR/KI67 covariates are nuclear labelling indices (was
        //    the DAB-positive pixel index), plus `hscore:ER`/`hscore:PR`.
        6
    }
    fn about(&self) -> &'static str {
        "cross-validated survival model of one arm: Cox on clinical, slide-feature, stain-index and tabular blocks (model: cox) or an attention-MIL network on tile bags and clinical data (model: mil)"
    }

    fn check(&self, params: &Value, cx: &CheckCx) -> Result<Checked, ParamError> {
        let mut p: TrainParams = typed(params)?;
        if p.model == "mil" {
            return check_mil(p, cx);
        }
        if p.model != "cox" {
            return Err(ParamError::at(
                vec![Seg::key("model")],
                format!("unknown model `{}`; expected `cox` or `mil` (attention-MIL network)", p.model),
            ));
        }
        // the `mil:` block (shared by a matrix over `model`) does not change a Cox arm
        p.mil = None;
        if p.loss != "cox" {
            return Err(ParamError::at(
                vec![Seg::key("loss")],
                format!("loss `{}` is not available for `model: cox`; expected `cox` (partial likelihood)", p.loss),
            ));
        }
        // `fusion` is the MIL network's (a matrix over `model` shares it); a Cox model always
        // concatenates its modalities into one design matrix, so the value is checked, then
        // left out of the Cox arm's key
        if !train_mil::FUSIONS.contains(&p.fusion.as_str()) {
            return Err(ParamError::at(
                vec![Seg::key("fusion")],
                format!("unknown fusion `{}`; expected `concat`, `bilinear` or `late` (used by `model: mil`; a Cox model concatenates its modalities)", p.fusion),
            ));
        }
        p.fusion = d_fusion();
        let Some(c) = cx.cohort else {
            return Err(ParamError::at(vec![], "`train` needs a `cohort` block (outcome and covariates)"));
        };
        check_modalities(
            &p.modalities,
            c,
            "clinical, HE, ER, PR, HER2, KI67, IHC, stain, spatial or a declared block",
            |m| {
                let known =
                    ["clinical", "IHC", "stain", "spatial"].contains(&m) || is_stain(m) || p.blocks.contains_key(m);
                (!known).then(|| {
                    let blocks: Vec<&str> = p.blocks.keys().map(String::as_str).collect();
                    format!(
                        "unknown modality `{m}`; expected clinical, HE, ER, PR, HER2, KI67, IHC, stain, spatial{}",
                        if blocks.is_empty() {
                            " or a block declared under `blocks:`".to_string()
                        } else {
                            format!(" or a declared block ({})", blocks.join(", "))
                        }
                    )
                })
            },
        )?;
        for (name, b) in &p.blocks {
            if name == "clinical" || name == "IHC" || name == "stain" || is_stain(name) {
                return Err(ParamError::at(
                    vec![Seg::key("blocks"), Seg::key(name)],
                    format!("block name `{name}` is reserved for a built-in modality"),
                ));
            }
            match (&b.columns, &b.prefix) {
                (Some(cols), None) if !cols.is_empty() => {}
                (None, Some(pre)) if !pre.is_empty() => {}
                _ => {
                    return Err(ParamError::at(
                        vec![Seg::key("blocks"), Seg::key(name)],
                        "expected exactly one of `columns: [..]` (non-empty) or `prefix: \"..\"`",
                    ))
                }
            }
        }
        use crate::bounds as b;
        for (key, r, v) in [
            ("folds", &b::TRAIN_FOLDS, p.folds),
            ("inner_folds", &b::TRAIN_INNER_FOLDS, p.inner_folds),
            ("repeats", &b::TRAIN_REPEATS, p.repeats),
            ("refit", &b::TRAIN_REFIT, p.refit),
            ("pca", &b::TRAIN_PCA, p.pca),
        ] {
            in_range_usize(vec![Seg::key(key)], r, v)?;
        }
        if p.modalities.iter().any(|m| m == "spatial") {
            let k = *p.phenotypes.get_or_insert(DEFAULT_PHENOTYPES);
            in_range_usize(vec![Seg::key("phenotypes")], &b::TRAIN_PHENOTYPES, k)?;
        } else {
            p.phenotypes = None;
        }
        match &p.penalty {
            PenaltyParam::Fixed(l) => in_range_f64(vec![Seg::key("penalty")], &b::TRAIN_PENALTY, *l)
                .map_err(|e| ParamError::at(e.path, format!("{} (or `auto`)", e.msg)))?,
            PenaltyParam::Auto(s) if s != "auto" => {
                return Err(ParamError::at(
                    vec![Seg::key("penalty")],
                    format!("`penalty` must be `auto` or a number from 0 to 1000000, found `{s}`"),
                ))
            }
            _ => {}
        }
        if p.penalties.is_empty() {
            return Err(ParamError::at(vec![Seg::key("penalties")], "empty grid; expected at least one penalty"));
        }
        in_range_usize(vec![Seg::key("penalties")], &b::TRAIN_GRID_LEN, p.penalties.len())?;
        for (i, l) in p.penalties.iter().enumerate() {
            in_range_f64(vec![Seg::key("penalties"), Seg::Index(i)], &b::TRAIN_PENALTIES, *l)?;
        }
        if c.is_competing() {
            let m = p.competing.get_or_insert_with(|| "cause_specific".into());
            if !crate::contracts::competing::METHODS.contains(&m.as_str()) {
                return Err(ParamError::at(
                    vec![Seg::key("competing")],
                    format!("unknown competing-risks method `{m}`; expected `cause_specific` or `fine_gray`"),
                ));
            }
        } else if p.competing.is_some() {
            return Err(ParamError::at(
                vec![Seg::key("competing")],
                "`competing` needs a competing-risks cohort: declare `cohort.causes` (e.g. `{1: metastasis, 2: death}`)",
            ));
        }
        Ok(checked(p, c))
    }

    fn reproduce_tolerance(&self, out: &std::path::Path) -> Option<f64> {
        // an attention-MIL network trained on a CUDA device (its kernels are not bit-reproducible)
        let m = crate::contracts::model::ModelJson::read(&out.join(crate::contracts::model::ModelJson::FILE)).ok()?;
        (m.network.as_ref()?.get("device")?.as_str()? == "cuda").then_some(CUDA_RTOL)
    }

    fn run(&self, cx: &RunCx) -> anyhow::Result<()> {
        let p = cx.typed::<TrainParams>()?;
        let cohort = cx.cohort.context("train needs a cohort block")?;
        if p.model == "mil" {
            return run_mil(cx, p, cohort);
        }
        let clinical = cx.input("clinical")?;
        let block_cols = block_columns(p, &clinical.path)?;
        let table = read_table(&clinical.path, cohort, &block_cols)?;
        let mut arm = Arm::new(&table);
        if p.modalities.iter().any(|m| m == "clinical") {
            let all = covariates_from_table(&table, &cohort.categorical);
            arm.data.covariates.extend(all.into_iter().filter(|c| cohort.covariates.contains(&c.name)));
            arm.inputs.push(json!({"modality": "clinical", "covariates": cohort.covariates}));
        }
        let stains = image_stains(p, cx.slides)?;
        if !stains.is_empty() {
            add_slide_features(cx, &stains, p.pca, &mut arm)?;
        }
        if p.modalities.iter().any(|m| m == "stain") {
            add_stain_indices(cx, &mut arm)?;
        }
        if let Some(k) = p.phenotypes {
            add_spatial(cx, k, &mut arm)?;
        }
        add_blocks(p, &block_cols, &table, &mut arm);
        let opts = train_options(p, cohort, cx.seed);
        let mut res = crate::model::train_cv(&arm.data, &opts).context("cross-validated Cox training")?;
        let competing = competing_models(p, cohort, &table, &arm.data, &mut res, &opts)?;
        let refit = if p.refit > 0 { Some(run_refit(cx, p, &arm.data, &opts)?) } else { None };
        write_outputs(cx, p, &arm.data, &res, arm.inputs, refit)?;
        if let Some(c) = competing {
            c.write(&cx.out.join(CompetingJson::FILE))?;
            cx.log(&format!(
                "competing risks ({}): cumulative incidence of `{}` modelled with {} model(s) per fold",
                c.method,
                cohort.cause_name(1),
                c.folds.first().map_or(0, |f| f.models.len())
            ));
        }
        Ok(())
    }
}

/// Checks an arm's modality list: not empty, each known (`unknown` returns the message for one
/// that is not), none twice, `clinical` only with covariates, slide modalities only with a
/// slide manifest.
fn check_modalities(
    modalities: &[String],
    c: &Cohort,
    expected: &str,
    unknown: impl Fn(&str) -> Option<String>,
) -> Result<(), ParamError> {
    if modalities.is_empty() {
        return Err(ParamError::at(
            vec![Seg::key("modalities")],
            format!("empty list; expected at least one of {expected}"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, m) in modalities.iter().enumerate() {
        let at = || vec![Seg::key("modalities"), Seg::Index(i)];
        if let Some(msg) = unknown(m) {
            return Err(ParamError::at(at(), msg));
        }
        if !seen.insert(m.as_str()) {
            return Err(ParamError::at(at(), format!("modality `{m}` is listed twice")));
        }
        if m == "clinical" && c.covariates.is_empty() {
            return Err(ParamError::at(at(), "modality `clinical` but the cohort declares no `covariates`"));
        }
    }
    if modalities.iter().any(|m| m == "IHC" || m == "stain" || m == "spatial" || is_stain(m)) && c.slides.is_none() {
        return Err(ParamError::at(
            vec![Seg::key("modalities")],
            "slide modalities need a slide manifest (`cohort.slides`)",
        ));
    }
    Ok(())
}

/// Checks a `model: mil` stage: modalities are clinical and image stains; the `mil:` block.
fn check_mil(mut p: TrainParams, cx: &CheckCx) -> Result<Checked, ParamError> {
    if !cfg!(feature = "torch") {
        return Err(ParamError::at(vec![Seg::key("model")], train_mil::NO_TORCH));
    }
    let Some(c) = cx.cohort else {
        return Err(ParamError::at(vec![], "`train` needs a `cohort` block (outcome and covariates)"));
    };
    check_modalities(&p.modalities, c, "clinical, HE, ER, PR, HER2, KI67 or IHC", |m| {
        (!(m == "clinical" || m == "IHC" || is_stain(m))).then(|| {
            format!("modality `{m}` is not available for `model: mil`; expected clinical, HE, ER, PR, HER2, KI67 or IHC (stain indices and tabular blocks: `model: cox`)")
        })
    })?;
    let m = p.mil.get_or_insert_with(MilParams::default);
    train_mil::check(m, &p.loss, &p.fusion)?;
    use crate::bounds as b;
    for (key, r, v) in [
        ("folds", &b::TRAIN_FOLDS, p.folds),
        ("repeats", &b::TRAIN_REPEATS, p.repeats),
        ("refit", &b::TRAIN_REFIT, p.refit),
    ] {
        in_range_usize(vec![Seg::key(key)], r, v)?;
    }
    // what does not change a MIL arm is left out of its key
    p.competing = None;
    p.blocks.clear();
    p.phenotypes = None;
    p.inner_folds = d_folds();
    p.penalty = d_penalty();
    p.penalties = d_grid();
    p.pca = d_pca();
    Ok(checked(p, c))
}

/// The checked stage: the cohort block folded into the parameters (the key covers how the
/// table is read) and the clinical table as the input.
fn checked(mut p: TrainParams, c: &Cohort) -> Checked {
    p.cohort = json!({
        "id": c.id, "time": c.time, "event": c.event, "covariates": c.covariates,
        "categorical": c.categorical, "missing": c.missing.as_deref().unwrap_or("error"),
    });
    if let (Some(causes), Some(o)) = (&c.causes, p.cohort.as_object_mut()) {
        o.insert("causes".into(), json!(causes));
    }
    let inputs = vec![InputRef {
        role: "clinical".into(),
        path: c.clinical.clone(),
        at: vec![Seg::key("cohort"), Seg::key("clinical")],
        absolute: true,
    }];
    Checked {
        params: resolved(&p),
        typed: Typed::none(),
        inputs,
        fanout: Fanout::Single,
        uses_seed: true,
        stains: None,
    }
    .with_typed(p)
}

/// Runs a `model: mil` stage in a child process ([`train_mil`]).
fn run_mil(cx: &RunCx, p: &TrainParams, cohort: &Cohort) -> anyhow::Result<()> {
    let clinical = cx.input("clinical")?;
    let stains = image_stains(p, cx.slides)?;
    let mut slides = Vec::new();
    if !stains.is_empty() {
        let need = cx.needs_of(EXTRACT).next().with_context(|| {
            format!("modalities {} need slide features: add a stage of kind `{EXTRACT}` to `needs`", stains.join(", "))
        })?;
        let slide_of: BTreeMap<&str, (&str, &str)> = cx
            .slides
            .iter()
            .filter_map(|s| Some((s.id.as_str(), (s.patient.as_str(), s.slide.as_ref()?.stain.as_str()))))
            .collect();
        for (item, dir) in &need.dirs {
            let Some(id) = item else { continue };
            let Some(&(patient, stain)) = slide_of.get(id.as_str()) else { continue };
            if stains.iter().any(|s| s == stain) {
                slides.push(train_mil::JobSlide {
                    id: id.clone(),
                    patient: patient.to_string(),
                    stain: stain.to_string(),
                    features: ExtractOutput::at(dir).features_path(),
                });
            }
        }
    }
    let mil = p.mil.clone().unwrap_or_default();
    let job = train_mil::MilJob {
        out: cx.out.to_path_buf(),
        clinical: clinical.path.clone(),
        cohort: cohort.clone(),
        seed: cx.seed,
        use_clinical: p.modalities.iter().any(|m| m == "clinical"),
        stains,
        slides,
        loss: p.loss.clone(),
        fusion: p.fusion.clone(),
        folds: p.folds,
        repeats: p.repeats,
        mil,
        refit: p.refit,
        modalities: p.modalities.clone(),
        trace: std::env::var_os("SPATIA_MIL_TRACE").filter(|v| !v.is_empty()).map(PathBuf::from),
    };
    train_mil::run_in_child(cx, &job)
}

/// The whole-procedure bootstrap: `refit_oof.csv`, `refit_baseline.csv` and `model.json`'s
/// `refit` block. The replicates are seeded by the spec seed alone (not the arm), so every arm
/// of a cohort draws the same patients and splits.
fn run_refit(cx: &RunCx, p: &TrainParams, data: &TrainData, options: &TrainOptions) -> anyhow::Result<RefitSummary> {
    let reps = refit_bootstrap(data, options, p.refit, cx.seed).context("whole-procedure bootstrap")?;
    let mut out = Refit::default();
    let mut failed = Vec::new();
    for r in reps {
        match r.failed {
            Some(reason) => failed.push(RefitFailure { replicate: r.replicate, reason }),
            None => {
                out.rows.extend(r.rows);
                out.baselines.extend(r.baselines.into_iter().map(|(f, b)| ((r.replicate, f), b)));
            }
        }
    }
    out.write(cx.out).context("writing the refit replicates")?;
    cx.log(&format!(
        "whole-procedure bootstrap: {} replicates refitted, {} failed{}",
        p.refit - failed.len(),
        failed.len(),
        failed.first().map(|f| format!(" (first: replicate {}: {})", f.replicate, f.reason)).unwrap_or_default()
    ));
    Ok(RefitSummary { replicates: p.refit, failed })
}

/// In a competing-risks cohort, the models of `p.competing` per outer fold (their fit warnings
/// become fold warnings of `model.json`).
fn competing_models(
    p: &TrainParams,
    cohort: &Cohort,
    table: &ClinicalTable,
    data: &TrainData,
    res: &mut TrainResult,
    opts: &TrainOptions,
) -> anyhow::Result<Option<CompetingJson>> {
    let (Some(causes), Some(method)) = (&cohort.causes, p.competing.as_deref()) else { return Ok(None) };
    let method = if method == "fine_gray" { CompetingMethod::FineGray } else { CompetingMethod::CauseSpecific };
    let causes: Vec<(u32, String)> = causes.iter().map(|(k, v)| (*k, v.clone())).collect();
    let m = fit_competing(data, &table.status, &causes, res, opts, method)
        .with_context(|| format!("competing-risks models ({})", method.as_str()))?;
    for (i, w) in m.warnings {
        if let Some(f) = res.folds.get_mut(i) {
            f.warnings.push(w);
        }
    }
    Ok(Some(m.json))
}

/// The design of one arm being assembled: one row per patient of the clinical table.
struct Arm {
    data: TrainData,
    /// Row of each patient id.
    index: BTreeMap<String, usize>,
    /// What each modality contributed (`model.json`'s `inputs`).
    inputs: Vec<Value>,
}

impl Arm {
    fn new(table: &ClinicalTable) -> Arm {
        let data = TrainData {
            patients: table.ids.clone(),
            time: table.time.clone(),
            event: table.event.clone(),
            covariates: Vec::new(),
            blocks: Vec::new(),
            spatial: None,
        };
        let index = table.ids.iter().enumerate().map(|(i, id)| (id.clone(), i)).collect();
        Arm { data, index, inputs: Vec::new() }
    }
}

/// The columns of every declared block, resolved against the clinical table's header.
fn block_columns(p: &TrainParams, clinical: &Path) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let header: Vec<String> = csv::Reader::from_path(clinical)
        .and_then(|mut r| r.headers().cloned())
        .with_context(|| format!("cannot read the header of {}", clinical.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut block_cols = BTreeMap::new();
    for (name, b) in &p.blocks {
        let cols: Vec<String> = match (&b.columns, &b.prefix) {
            (Some(cols), _) => {
                if let Some(missing) = cols.iter().find(|c| !header.contains(c)) {
                    bail!("block `{name}`: {} has no column `{missing}`", clinical.display());
                }
                cols.clone()
            }
            (None, Some(pre)) => header.iter().filter(|h| h.starts_with(pre.as_str())).cloned().collect(),
            _ => Vec::new(),
        };
        if cols.is_empty() {
            bail!(
                "block `{name}`: no column of {} starts with `{}`",
                clinical.display(),
                b.prefix.as_deref().unwrap_or("")
            );
        }
        block_cols.insert(name.clone(), cols);
    }
    Ok(block_cols)
}

/// The clinical table with the block columns read as covariates too: every arm reads the same
/// columns, so `missing: drop` keeps the same patients in all.
fn read_table(
    clinical: &Path,
    cohort: &Cohort,
    block_cols: &BTreeMap<String, Vec<String>>,
) -> anyhow::Result<ClinicalTable> {
    let mut c2 = cohort.clone();
    for col in block_cols.values().flatten() {
        if !c2.covariates.contains(col) {
            c2.covariates.push(col.clone());
        }
    }
    read_clinical(clinical, &c2)
}

/// The image stains the modalities name, `IHC` expanded to every IHC stain of the cohort.
fn image_stains(p: &TrainParams, slides: &[Item]) -> anyhow::Result<Vec<String>> {
    let cohort_stains: BTreeSet<String> =
        slides.iter().filter_map(|s| Some(s.slide.as_ref()?.stain.to_string())).collect();
    let mut stains: Vec<String> = Vec::new();
    for m in &p.modalities {
        if is_stain(m) {
            stains.push(m.clone());
        } else if m == "IHC" {
            let ihc: Vec<String> = cohort_stains.iter().filter(|s| s.as_str() != "HE").cloned().collect();
            if ihc.is_empty() {
                let all: Vec<&str> = cohort_stains.iter().map(String::as_str).collect();
                bail!("modality `IHC`: the cohort's slide manifest has no IHC slide (stains: {})", all.join(", "));
            }
            stains.extend(ihc);
        }
    }
    stains.dedup();
    Ok(stains)
}

/// One block per stain: each patient's tile features of that stain from the `extract` stage,
/// mean-pooled over all their slides' tiles (`None` without such a slide).
fn add_slide_features(cx: &RunCx, stains: &[String], pca: usize, arm: &mut Arm) -> anyhow::Result<()> {
    let need = cx.needs_of(EXTRACT).next().with_context(|| {
        format!("modalities {} need slide features: add a stage of kind `{EXTRACT}` to `needs`", stains.join(", "))
    })?;
    let slide_of: BTreeMap<&str, (&str, &str)> = cx
        .slides
        .iter()
        .filter_map(|s| Some((s.id.as_str(), (s.patient.as_str(), s.slide.as_ref()?.stain.as_str()))))
        .collect();
    for stain in stains {
        let (rows, slides) = pooled_features(need, &slide_of, stain, &arm.index)?;
        if slides == 0 {
            bail!("modality `{stain}`: stage `{}` has no {stain} slide of a cohort patient", need.name);
        }
        let without = rows.iter().filter(|r| r.is_none()).count();
        if without > 0 {
            cx.log(&format!(
                "modality {stain}: {without} patient(s) without a {stain} slide (or tiles): features imputed with the training-fold mean"
            ));
        }
        arm.inputs.push(json!({"modality": stain, "slides": slides, "patients_without": without, "pca": pca}));
        arm.data.blocks.push(Block { name: stain.clone(), rows });
    }
    Ok(())
}

/// Per patient row: the mean tile feature vector over all their slides of `stain`; and the
/// number of slides read.
fn pooled_features(
    need: &Need,
    slide_of: &BTreeMap<&str, (&str, &str)>,
    stain: &str,
    index: &BTreeMap<String, usize>,
) -> anyhow::Result<(Vec<Option<Vec<f64>>>, usize)> {
    // per patient: sum of tile features and tile count over all their slides of `stain`
    let mut sums: Vec<Option<(Vec<f64>, usize)>> = vec![None; index.len()];
    let mut slides = 0;
    for (item, dir) in &need.dirs {
        let Some(id) = item else { continue };
        let Some(&(patient, s)) = slide_of.get(id.as_str()) else { continue };
        if s != stain {
            continue;
        }
        let Some(&row) = index.get(patient) else { continue }; // dropped by `missing: drop`
        let out = ExtractOutput::at(dir);
        let path = out.features_path();
        let bag = out.features().with_context(|| format!("slide `{id}` (patient {patient})"))?;
        let d = bag.features.ncols();
        let entry = sums[row].get_or_insert_with(|| (vec![0.0; d], 0));
        if entry.0.len() != d {
            bail!(
                "slide `{id}`: {} has {d} features per tile, other {stain} slides have {}",
                path.display(),
                entry.0.len()
            );
        }
        for r in bag.features.rows() {
            for (acc, v) in entry.0.iter_mut().zip(r.iter()) {
                *acc += *v as f64;
            }
        }
        entry.1 += bag.features.nrows();
        slides += 1;
    }
    let rows = sums
        .into_iter()
        .map(|s| s.filter(|(_, k)| *k > 0).map(|(v, k)| v.into_iter().map(|x| x / k as f64).collect()))
        .collect();
    Ok((rows, slides))
}

/// The `spatial` modality: every patient's H&E tiles (features and tile-grid cells) from the
/// `extract` stage; the phenotypes are fitted per fold inside the CV ([`crate::model::phenotype`]).
fn add_spatial(cx: &RunCx, k: usize, arm: &mut Arm) -> anyhow::Result<()> {
    let need = cx.needs_of(EXTRACT).next().with_context(|| {
        format!("modality `spatial` needs H&E tile features: add a stage of kind `{EXTRACT}` to `needs`")
    })?;
    let mut per: Vec<Option<PatientTiles>> = vec![None; arm.data.patients.len()];
    let mut slides = 0;
    for (item, dir) in &need.dirs {
        let Some(id) = item else { continue };
        let Some(s) = cx.slides.iter().find(|s| &s.id == id) else { continue };
        if s.slide.as_ref().map(|x| x.stain.as_str()) != Some(Stain::HE.as_str()) {
            continue;
        }
        let Some(&row) = arm.index.get(s.patient.as_str()) else { continue };
        let out = ExtractOutput::at(dir);
        let bag = out.features().with_context(|| format!("slide `{id}` (patient {})", s.patient))?;
        let cells = crate::model::phenotype::grid_cells(
            bag.coords.rows().into_iter().map(|r| [r[0], r[1]]),
            bag.meta.patch_size_level0,
        );
        let p = per[row].get_or_insert_with(|| PatientTiles { dim: bag.dim(), x: Vec::new(), cells: Vec::new() });
        if p.dim != bag.dim() {
            bail!(
                "slide `{id}`: {} has {} features per tile, other H&E slides have {}",
                out.features_path().display(),
                bag.dim(),
                p.dim
            );
        }
        let si = p.cells.last().map_or(0, |c| c.0 + 1);
        p.x.extend(bag.features.iter().copied());
        p.cells.extend(cells.into_iter().map(|(c, r)| (si, c, r)));
        slides += 1;
    }
    if slides == 0 {
        bail!("modality `spatial`: stage `{}` has no H&E slide of a cohort patient", need.name);
    }
    let without = per.iter().filter(|p| p.as_ref().is_none_or(|p| p.is_empty())).count();
    if without > 0 {
        cx.log(&format!(
            "modality spatial: {without} patient(s) without H&E tiles: summaries imputed with the training-fold mean"
        ));
    }
    arm.inputs.push(json!({"modality": "spatial", "phenotypes": k, "slides": slides, "patients_without": without}));
    let patients = per.into_iter().map(|p| p.filter(|p| !p.is_empty()).map(std::sync::Arc::new)).collect();
    arm.data.spatial = Some(SpatialInput::new(k, cx.seed, patients));
    Ok(())
}

/// One covariate per IHC stain from the `stain` stage, the mean over the patient's slides of
/// that stain: `stain:<S>` is the nuclear labelling index (positive / all nuclei) for the
/// nuclear stains ER, PR and KI67 and the DAB-positive pixel index for HER2 (a membrane
/// stain); ER and PR add `hscore:<S>` (0–300). A slide without nuclei gives no value.
fn add_stain_indices(cx: &RunCx, arm: &mut Arm) -> anyhow::Result<()> {
    let need = cx
        .needs_of(STAIN)
        .next()
        .with_context(|| format!("modality `stain` needs stain indices: add a stage of kind `{STAIN}` to `needs`"))?;
    let n = arm.data.patients.len();
    let mut per: BTreeMap<String, Vec<Vec<f64>>> = BTreeMap::new();
    for (item, dir) in &need.dirs {
        let Some(id) = item else { continue };
        let Some(s) = cx.slides.iter().find(|s| &s.id == id) else { continue };
        let (patient, Some(stain)) = (&s.patient, s.slide.as_ref().map(|x| x.stain.as_str())) else { continue };
        let Some(&row) = arm.index.get(patient.as_str()) else { continue };
        let summary = StainOutput::at(dir).summary().with_context(|| format!("slide `{id}`"))?;
        let mut push = |name: String, v: Option<f64>| {
            let col = per.entry(name).or_insert_with(|| vec![Vec::new(); n]);
            if let Some(v) = v.filter(|x| x.is_finite()) {
                col[row].push(v);
            }
        };
        if stain == "HER2" {
            let idx = Some(summary.index).filter(|x| x.is_finite()).with_context(|| {
                format!("slide `{id}`: {} has no numeric `index`", dir.join(StainSummary::FILE).display())
            })?;
            push(format!("stain:{stain}"), Some(idx));
        } else {
            push(format!("stain:{stain}"), summary.labelling_index);
        }
        if stain == "ER" || stain == "PR" {
            push(format!("hscore:{stain}"), summary.h_score);
        }
    }
    if per.is_empty() {
        bail!("modality `stain`: stage `{}` has no slide of a cohort patient", need.name);
    }
    for (name, vals) in per {
        let col: Vec<Option<f64>> =
            vals.iter().map(|v| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)).collect();
        let without = col.iter().filter(|c| c.is_none()).count();
        arm.inputs.push(json!({"modality": "stain", "covariate": name, "patients_without": without}));
        arm.data.covariates.push(Covariate { name, column: Column::Numeric(col) });
    }
    Ok(())
}

/// The declared blocks the modalities name, in modality order (PCA per fold, like a stain).
fn add_blocks(p: &TrainParams, block_cols: &BTreeMap<String, Vec<String>>, table: &ClinicalTable, arm: &mut Arm) {
    for m in &p.modalities {
        if let Some(cols) = block_cols.get(m) {
            let js: Vec<usize> =
                cols.iter().map(|c| table.covariates.iter().position(|x| x == c).unwrap_or(usize::MAX)).collect();
            let rows: Vec<Option<Vec<f64>>> = table
                .cells
                .iter()
                .map(|r| {
                    js.iter()
                        .map(|&j| if let Some(Cell::Num(x)) = r.get(j) { Some(*x) } else { None })
                        .collect::<Option<Vec<f64>>>()
                })
                .collect();
            arm.inputs.push(json!({"modality": m, "columns": cols.len(), "pca": p.pca}));
            arm.data.blocks.push(Block { name: m.clone(), rows });
        }
    }
}

/// The engine's options from the parameters and the cohort's missing-value policy.
fn train_options(p: &TrainParams, cohort: &Cohort, seed: u64) -> TrainOptions {
    TrainOptions {
        cv: CvOptions { k: p.folds, repeats: p.repeats, seed },
        inner_k: p.inner_folds,
        penalty: match p.penalty {
            PenaltyParam::Fixed(l) => Penalty::Fixed(l),
            PenaltyParam::Auto(_) => Penalty::InnerCv(p.penalties.clone()),
        },
        pca: p.pca,
        missing: if cohort.missing.as_deref() == Some("error") || cohort.missing.is_none() {
            MissingPolicy::Error
        } else {
            MissingPolicy::Impute
        },
    }
}

/// `model.json`: the model's inputs and every outer fold's fit.
fn model_json(cx: &RunCx, p: &TrainParams, data: &TrainData, res: &TrainResult, inputs: Vec<Value>) -> ModelJson {
    let folds = res
        .folds
        .iter()
        .map(|f| FoldSummary {
            repeat: f.repeat,
            fold: f.fold,
            n_train: f.n_train,
            n_train_events: f.n_train_events,
            n_test: f.n_test,
            penalty: f.penalty,
            cvpl: f.cvpl.iter().map(|&(penalty, cvpl)| CvplPoint { penalty, cvpl }).collect(),
            grid_extended: f.grid_extended,
            names: f.names.clone(),
            beta: f.beta.clone(),
            cut_median: f.cut_median,
            cut_tertiles: f.cut_tertiles,
            transforms: f.transforms.clone(),
            warnings: f.warnings.clone(),
            mil: None,
        })
        .collect();
    ModelJson {
        schema: MODEL_SCHEMA,
        model: p.model.clone(),
        modalities: p.modalities.clone(),
        inputs,
        n_patients: data.patients.len(),
        n_events: data.event.iter().filter(|&&e| e).count(),
        k: p.folds,
        repeats: p.repeats,
        inner_k: p.inner_folds,
        penalty: match &p.penalty {
            PenaltyParam::Fixed(l) => json!(l),
            PenaltyParam::Auto(_) => {
                json!({"chosen_by": "inner CV (cross-validated partial likelihood)", "grid": p.penalties})
            }
        },
        pca: p.pca,
        seed: cx.seed,
        folds,
        refit: None,
        refit_skipped: None,
        network: None,
    }
}

fn write_outputs(
    cx: &RunCx,
    p: &TrainParams,
    data: &TrainData,
    res: &TrainResult,
    inputs: Vec<Value>,
    refit: Option<RefitSummary>,
) -> anyhow::Result<()> {
    res.oof.write(&cx.out.join(Oof::FILE))?;
    res.inner_oof.write(&cx.out.join(InnerOof::FILE))?;
    res.baselines.write(&cx.out.join(Baselines::FILE))?;
    res.inner_baselines.write(&cx.out.join(InnerBaselines::FILE))?;
    write_survival(cx, data, res)?;
    let mut model = model_json(cx, p, data, res, inputs);
    model.refit = refit;
    model.write(&cx.out.join(ModelJson::FILE))?;
    // each fold's fitted model in full: transforms, coefficients, baseline
    std::fs::create_dir_all(cx.out.join("folds"))?;
    for (f, b) in res.folds.iter().zip(res.baselines.folds.values()) {
        let v = json!({
            "repeat": f.repeat, "fold": f.fold, "penalty": f.penalty, "names": f.names, "beta": f.beta,
            "transforms": f.fitted, "baseline": {"time": b.time(), "cumhaz": b.cumhaz()},
        });
        crate::util::write_file(
            cx.out.join("folds").join(format!("r{}_f{}.json", f.repeat, f.fold)),
            serde_json::to_string_pretty(&v)?,
        )?;
    }
    for f in &res.folds {
        cx.log(&format!(
            "repeat {} fold {}: penalty {} on {} columns, {} train / {} test patients",
            f.repeat,
            f.fold,
            f.penalty,
            f.names.len(),
            f.n_train,
            f.n_test
        ));
        if f.grid_extended > 0 {
            let (lo, hi) = (f.cvpl.first().map_or(f.penalty, |c| c.0), f.cvpl.last().map_or(f.penalty, |c| c.0));
            cx.log(&format!(
                "  the chosen penalty was at the edge of the grid: {} penalties added, searched {lo} to {hi}",
                f.grid_extended
            ));
        }
        for w in &f.warnings {
            cx.log(&format!("  warning: {w}"));
        }
    }
    Ok(())
}

/// `survival.csv` ([`crate::contracts::survival_curves`]): the test patients' predicted survival
/// at their fold's baseline times.
fn write_survival(cx: &RunCx, data: &TrainData, res: &TrainResult) -> anyhow::Result<()> {
    crate::model::train::cox_curves(&res.oof, &res.baselines)
        .write(&cx.out.join(SurvivalCurves::FILE), &data.patients)
        .context("writing survival.csv")
}
