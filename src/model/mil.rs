//! Cross-validated attention-MIL survival model of one arm (`train` with `model: mil`): the
//! study logic around the networks the libtorch plugin fits (crates/spatia-torch/src/mil.rs,
//! where the architecture and losses are documented).
//!
//! For every repeat and outer fold of the same patient-level stratified split as the Cox arms
//! ([`crate::model::cv`]):
//! 1. **Inputs, fitted on the training patients only**: every stain's tile features are
//!    z-scored with the mean and SD over the training patients' tiles; the clinical covariates
//!    go through the fold's [`Standardizer`] (one-hot, imputation by policy). The leakage guard
//!    ([`check_leakage`]) checks the split and both transforms before the fold's network is fitted.
//! 2. **Epochs, chosen on the training patients only**: inner k-fold CV over the outer training
//!    patients (`EpochSelection::InnerCv`, the default), each inner network trained for
//!    `max_epochs` and scored after every epoch on its held-out patients (their contribution to
//!    the cross-validated partial likelihood for `cox`, minus their loss for `nll`); the epoch
//!    count with the best summed score wins (ties: fewer epochs). `EpochSelection::Validation`
//!    uses the first inner fold alone (cheaper, noisier). The test fold is never seen.
//! 3. The fold's network is trained on all its training patients for that many epochs.
//! 4. **Pooling out-of-fold risks**: a Cox network's output has an arbitrary offset, different
//!    in every fold, so each fold's risks are centred on the mean risk of its own training
//!    patients before folds are pooled (without it, one fold's shift ruins the pooled C-index
//!    while every within-fold C is good). The fold keeps the Breslow baseline of its training
//!    patients at those centred risks, so `S(t | x) = exp(−H₀(t)·e^{risk})` as for the Cox arms.
//! 5. With inner CV, the inner networks' held-out outputs at the chosen epoch are the inner
//!    out-of-fold predictions `calibrate` recalibrates with (centred and with baselines the same
//!    way): no extra fits.
//!
//! Mini-batches (`batch_size > 0`) are drawn per epoch by an event-stratified sampler: events
//! and censored patients are shuffled separately and dealt round-robin into batches, so every
//! batch holds at least two events (fewer, larger batches when events are scarce).
//!
//! # Determinism
//! Every random draw (splits, batches, each network's initial weights and dropout, through the
//! seed passed to the plugin) derives from the spec seed, the repeat, the fold and the inner
//! fold. Fits run one after another; the caller runs them in a process whose libtorch uses one
//! intra-op thread, so on CPU the outputs are a function of the inputs.
//!
//! # Errors
//! A bag whose feature width differs across a patient's slides (naming the slide), a stain with
//! no tile among a fold's training patients, a fold whose training patients have no event, a
//! non-finite loss (naming repeat, fold and the learning rate), the leakage guard's errors.
//!
//! # References
//! Ilse M, Tomczak J, Welling M (2018) Attention-based deep multiple instance learning. ICML.
//! Verweij PJM, van Houwelingen HC (1993) Cross-validation in survival analysis. Stat Med 12.
//! Gensheimer MF, Narasimhan B (2019) A scalable discrete-time survival model for neural
//! networks. PeerJ 7:e6257.
use super::cv::{patient_events, split, CvOptions, FoldAssignment};
use super::design::{Covariate, MissingPolicy, Standardizer};
use super::error::{ModelError, Result};
use super::leakage::{check_leakage, TransformRecord};
use crate::contracts::baseline::{Baseline, Baselines, InnerBaselines};
use crate::contracts::oof::{InnerOof, InnerOofRow, Oof, OofRow};
use crate::contracts::survival_curves::SurvivalCurves;
use crate::features::torch_plugin::{self, MilData, MilStain};
use crate::survival::calibration::quantile_sorted as quantile;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::PathBuf;

/// One slide's tiles in a patient's bag.
#[derive(Debug, Clone, PartialEq)]
pub struct SlideBag {
    /// Slide id.
    pub slide: String,
    /// Level-0 coordinates of each tile.
    pub coords: Vec<[i64; 2]>,
    /// Tile features, row-major (`coords.len() × dim`).
    pub feats: Vec<f32>,
}

/// One stain's bags: per patient (row order of [`MilInput`]) her slides of that stain.
#[derive(Debug, Clone, PartialEq)]
pub struct StainBags {
    /// `HE`, `KI67`, …
    pub name: String,
    /// Feature width.
    pub dim: usize,
    /// Per patient, her slides (empty: no slide of this stain).
    pub bags: Vec<Vec<SlideBag>>,
}

/// One arm's data, one row per patient.
#[derive(Debug, Clone, PartialEq)]
pub struct MilInput {
    /// Patient ids.
    pub patients: Vec<String>,
    /// Follow-up times.
    pub time: Vec<f64>,
    /// Event indicators.
    pub event: Vec<bool>,
    /// Image stains.
    pub stains: Vec<StainBags>,
    /// Clinical covariates (empty: no clinical block).
    pub covariates: Vec<Covariate>,
}

/// How the number of epochs is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EpochSelection {
    /// Inner k-fold CV over the training patients.
    InnerCv,
    /// One inner split (the first inner fold held out).
    Validation,
}

/// The network and its optimiser (the plugin's configuration, without the per-fit fields).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetOptions {
    pub hidden: usize,
    pub attention: usize,
    pub dropout: f64,
    /// `concat`, `bilinear` or `late`.
    pub fusion: String,
    pub bilinear_dim: usize,
    pub rank: usize,
    /// `cox` or `nll`.
    pub loss: String,
    /// Time intervals of `nll` (cut at quantiles of the training patients' event times).
    pub intervals: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub clip: f64,
    /// −1 CPU, k CUDA device k.
    pub device: i32,
}

/// Options of [`train_mil`].
#[derive(Debug, Clone, PartialEq)]
pub struct MilOptions {
    /// Outer folds, repeats, seed (the same splits as the Cox arms).
    pub cv: CvOptions,
    /// Inner folds of the epoch choice.
    pub inner_k: usize,
    pub select: EpochSelection,
    pub max_epochs: usize,
    /// Patients per mini-batch (0: the whole training set, the exact likelihood).
    pub batch_size: usize,
    pub net: NetOptions,
    pub missing: MissingPolicy,
    /// Where to save each outer fold's weights (`r<r>_f<f>.safetensors`).
    pub weights_dir: Option<PathBuf>,
    /// Where to write a replayable trace of every outer fit (`r<r>_f<f>/`).
    pub trace_dir: Option<PathBuf>,
}

/// One outer fold's network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MilFold {
    pub repeat: usize,
    pub fold: usize,
    pub n_train: usize,
    pub n_train_events: usize,
    pub n_test: usize,
    /// Epochs chosen on the training patients.
    pub epochs: usize,
    /// Summed inner validation score per epoch (1-based epoch = index + 1).
    pub inner_score: Vec<f64>,
    /// Training loss per epoch of the fold's network.
    pub train_loss: Vec<f64>,
    /// The mean raw output over the training patients, subtracted from every risk.
    pub centre: f64,
    pub cut_median: f64,
    pub cut_tertiles: [f64; 2],
    /// Warnings (stains without tiles in the fold, …).
    pub warnings: Vec<String>,
}

/// The attention of one tile in the fold model that tested its patient.
#[derive(Debug, Clone, PartialEq)]
pub struct TileAttention {
    pub repeat: usize,
    pub fold: usize,
    /// Index into [`MilInput::stains`].
    pub stain: usize,
    pub slide: String,
    pub x: i64,
    pub y: i64,
    /// Softmax weight over the patient's bag of that stain (all her slides of it).
    pub weight: f64,
}

/// Result of [`train_mil`].
#[derive(Debug, Clone, PartialEq)]
pub struct MilResult {
    pub oof: Oof,
    pub baselines: Baselines,
    /// Inner out-of-fold predictions at the chosen epoch (inner CV only; empty otherwise).
    pub inner_oof: InnerOof,
    pub inner_baselines: InnerBaselines,
    pub folds: Vec<MilFold>,
    pub attention: Vec<TileAttention>,
    /// `loss: nll`: each test patient's predicted survival at its fold's interval ends.
    pub curves: SurvivalCurves,
}

fn net_err(context: &str, message: impl Into<String>) -> ModelError {
    ModelError::Network { context: context.to_string(), message: message.into() }
}

/// A per-fit seed from the spec seed and the fit's place (repeat, fold, inner fold + 1 or 0).
fn fit_seed(seed: u64, repeat: usize, fold: usize, inner: usize) -> i64 {
    let mut h = blake3::Hasher::new();
    for v in [seed, repeat as u64, fold as u64, inner as u64] {
        h.update(&v.to_le_bytes());
    }
    let b = h.finalize();
    (u64::from_le_bytes(b.as_bytes()[..8].try_into().unwrap_or_default()) >> 1) as i64
}

/// The data of one fit: `rows` (patient rows of the input), standardised on `fit_rows`.
struct Prepared {
    data: MilData,
    /// Per stain, the z-scoring's training rows; the clinical standardiser's.
    records: Vec<TransformRecord>,
}

fn prepare(
    input: &MilInput,
    rows: &[usize],
    fit_rows: &[usize],
    test_fold: usize,
    opts: &MilOptions,
    context: &str,
) -> Result<Prepared> {
    let plugin = torch_plugin::get().map_err(|e| net_err(context, e))?;
    let mut owned: Vec<(usize, Vec<f32>, Vec<i64>)> = Vec::new();
    let mut records = Vec::new();
    for s in &input.stains {
        // z-scoring statistics over the training patients' tiles
        let d = s.dim;
        let mut sum = vec![0f64; d];
        let mut sq = vec![0f64; d];
        let mut count = 0usize;
        for &r in fit_rows {
            for b in &s.bags[r] {
                for t in b.feats.chunks_exact(d) {
                    for j in 0..d {
                        sum[j] += t[j] as f64;
                        sq[j] += (t[j] as f64) * (t[j] as f64);
                    }
                    count += 1;
                }
            }
        }
        if count == 0 {
            return Err(net_err(
                context,
                format!("stain {}: no training patient of this fold has a tile of it", s.name),
            ));
        }
        let mean: Vec<f64> = sum.iter().map(|v| v / count as f64).collect();
        let sd: Vec<f64> = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| {
                let v = (q / count as f64 - m * m).max(0.0) * count as f64 / (count.max(2) - 1) as f64;
                if v.sqrt() > 1e-12 {
                    v.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        let mut feats = Vec::new();
        let mut offsets = vec![0i64];
        for &r in rows {
            for b in &s.bags[r] {
                for t in b.feats.chunks_exact(d) {
                    feats.extend(t.iter().enumerate().map(|(j, v)| ((*v as f64 - mean[j]) / sd[j]) as f32));
                }
            }
            offsets.push((feats.len() / d) as i64);
        }
        owned.push((d, feats, offsets));
        records.push(TransformRecord {
            name: format!("tile z-score:{}", s.name),
            test_fold,
            fitted_rows: fit_rows.to_vec(),
        });
    }
    let mut clin = Vec::new();
    let mut clin_dim = 0;
    if !input.covariates.is_empty() {
        let st = Standardizer::fit(&input.covariates, fit_rows, opts.missing)?;
        let m = st.transform(&input.covariates, rows)?;
        clin_dim = m.names.len();
        clin = m.x.iter().map(|&v| v as f32).collect();
        records.push(TransformRecord { name: "standardizer".into(), test_fold, fitted_rows: st.fitted_rows.clone() });
    }
    let stains: Vec<MilStain> = owned.iter().map(|(d, f, o)| MilStain { dim: *d, feats: f, offsets: o }).collect();
    let time: Vec<f64> = rows.iter().map(|&r| input.time[r]).collect();
    let event: Vec<bool> = rows.iter().map(|&r| input.event[r]).collect();
    let clinical = (clin_dim > 0).then_some((clin.as_slice(), clin_dim));
    let data = plugin.mil_data(&time, &event, &stains, clinical).map_err(|e| net_err(context, e))?;
    Ok(Prepared { data, records })
}

/// Interval ends of `nll`: quantiles of the training patients' event times (distinct, ≥ 1).
fn cuts(input: &MilInput, train: &[usize], k: usize) -> Vec<f64> {
    let mut ev: Vec<f64> = train.iter().filter(|&&r| input.event[r]).map(|&r| input.time[r]).collect();
    ev.sort_by(f64::total_cmp);
    let mut c: Vec<f64> = (1..=k).map(|i| quantile(&ev, i as f64 / k as f64)).collect();
    c.dedup();
    c
}

/// The logit of each interval's pooled hazard among `rows` (events in the interval over those
/// who entered it, censored patients counted by the half-interval rule of the loss), clamped to
/// [0.001, 0.999]; empty without cuts.
fn pooled_hazard_logits(input: &MilInput, rows: &[usize], cuts: &[f64]) -> Vec<f64> {
    let k = cuts.len();
    let (mut events, mut exposed) = (vec![0.0f64; k], vec![0.0f64; k]);
    for &r in rows {
        let t = input.time[r];
        let kappa = cuts.iter().position(|&c| t <= c).unwrap_or(k);
        for e in exposed.iter_mut().take(kappa.min(k)) {
            *e += 1.0;
        }
        if kappa < k {
            let lo = if kappa == 0 { 0.0 } else { cuts[kappa - 1] };
            if input.event[r] {
                events[kappa] += 1.0;
                exposed[kappa] += 1.0;
            } else if t >= 0.5 * (lo + cuts[kappa]) {
                exposed[kappa] += 1.0;
            }
        }
    }
    events
        .iter()
        .zip(&exposed)
        .map(|(&d, &n)| {
            let h: f64 = if n > 0.0 { (d / n).clamp(0.001, 0.999) } else { 0.001 };
            (h / (1.0 - h)).ln()
        })
        .collect()
}

/// The event-stratified mini-batches of every epoch (positions into `train`).
fn batches(input: &MilInput, train: &[usize], opts: &MilOptions, seed: i64) -> Vec<Vec<Vec<usize>>> {
    if opts.batch_size == 0 || opts.batch_size >= train.len() {
        return Vec::new();
    }
    let ev: Vec<usize> = (0..train.len()).filter(|&k| input.event[train[k]]).collect();
    let ce: Vec<usize> = (0..train.len()).filter(|&k| !input.event[train[k]]).collect();
    let nb = train.len().div_ceil(opts.batch_size).min(ev.len() / 2).max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed as u64 ^ 0x0ba7_c4e5);
    (0..opts.max_epochs)
        .map(|_| {
            let (mut e, mut c) = (ev.clone(), ce.clone());
            e.shuffle(&mut rng);
            c.shuffle(&mut rng);
            let mut out = vec![Vec::new(); nb];
            for (i, k) in e.into_iter().chain(c).enumerate() {
                out[i % nb].push(k);
            }
            out
        })
        .collect()
}

/// One network fit through the plugin.
struct Fit {
    net: torch_plugin::MilNet,
    train_loss: Vec<f64>,
    val_score: Vec<f64>,
    /// With validation patients: per epoch, the outputs of the training then validation patients.
    scored: Vec<Vec<f32>>,
}

#[allow(clippy::too_many_arguments)]
fn fit(
    input: &MilInput,
    prep: &Prepared,
    train_pos: &[usize],
    val_pos: &[usize],
    train_rows: &[usize],
    epochs: usize,
    seed: i64,
    opts: &MilOptions,
    context: &str,
    trace: Option<PathBuf>,
) -> Result<Fit> {
    let plugin = torch_plugin::get().map_err(|e| net_err(context, e))?;
    let n = &opts.net;
    let cuts = if n.loss == "nll" { cuts(input, train_rows, n.intervals) } else { Vec::new() };
    let out_bias = pooled_hazard_logits(input, train_rows, &cuts);
    let cfg = serde_json::json!({
        "hidden": n.hidden, "attention": n.attention, "dropout": n.dropout, "fusion": n.fusion,
        "bilinear_dim": n.bilinear_dim, "rank": n.rank, "loss": n.loss, "cuts": cuts, "out_bias": out_bias, "lr": n.lr,
        "weight_decay": n.weight_decay, "clip": n.clip, "epochs": epochs, "seed": seed, "device": n.device,
        "batches": batches(input, train_rows, opts, seed), "context": context,
        "trace": trace.map(|p| p.display().to_string()),
    });
    let net = plugin.mil_fit(&prep.data, &cfg.to_string(), train_pos, val_pos).map_err(|e| net_err(context, e))?;
    let c = net.curves().map_err(|e| net_err(context, e))?;
    let nums = |k: &str| -> Vec<f64> {
        c.get(k).and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|x| x.as_f64()).collect()).unwrap_or_default()
    };
    let scored = c
        .get("scored")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .map(|e| {
                    e.as_array()
                        .map(|r| r.iter().filter_map(|x| x.as_f64()).map(|x| x as f32).collect())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Fit { train_loss: nums("train_loss"), val_score: nums("val_score"), scored, net })
}

/// The error of a network whose outputs overflowed (the training diverged).
fn diverged(context: &str, lr: f64, what: &str) -> ModelError {
    net_err(
        context,
        format!("the training diverged ({what}): lower `mil.lr` (now {lr}) or keep `mil.clip` (gradient clipping) on"),
    )
}

/// Checks centred Cox risks: finite, and spanning less than e^300 (so that `exp` stays finite
/// in the baselines).
fn check_risks(eta: &[f64], context: &str, lr: f64) -> Result<()> {
    if let Some(v) = eta.iter().find(|v| !v.is_finite()) {
        return Err(diverged(context, lr, &format!("a risk is {v}")));
    }
    let (lo, hi) = eta.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if hi - lo > 300.0 {
        return Err(diverged(context, lr, &format!("risks span {lo:.3e} to {hi:.3e}")));
    }
    Ok(())
}

/// Risk of each output row: the Cox output, or for `nll` `1 − S(τ_K)` from the hazards.
fn risks(out: &[f32], out_dim: usize) -> Vec<f64> {
    if out_dim == 1 {
        return out.iter().map(|&v| v as f64).collect();
    }
    out.chunks_exact(out_dim)
        .map(|row| 1.0 - row.iter().map(|&l| 1.0 - 1.0 / (1.0 + (-(l as f64)).exp())).product::<f64>())
        .collect()
}

/// Breslow's cumulative baseline hazard of risks `eta` (log relative hazards) over `rows`:
/// at each distinct event time, events / Σ_{at risk} exp(eta), accumulated.
fn breslow(time: &[f64], event: &[bool], rows: &[usize], eta: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| time[rows[a]].total_cmp(&time[rows[b]]));
    let mut at_risk: f64 = eta.iter().map(|e| e.exp()).sum();
    let (mut times, mut cum) = (Vec::new(), Vec::new());
    let mut acc = 0.0;
    let mut i = 0;
    while i < order.len() {
        let t = time[rows[order[i]]];
        let mut j = i;
        let (mut d, mut leaving) = (0usize, 0.0);
        while j < order.len() && time[rows[order[j]]] == t {
            d += event[rows[order[j]]] as usize;
            leaving += eta[order[j]].exp();
            j += 1;
        }
        if d > 0 {
            acc += d as f64 / at_risk;
            times.push(t);
            cum.push(acc);
        }
        at_risk -= leaving;
        i = j;
    }
    (times, cum)
}

/// A stratified split of `rows` (patient order) for the inner CV of one outer fold.
fn inner_split(input: &MilInput, rows: &[usize], k: usize, seed: u64) -> Result<FoldAssignment> {
    let ids: Vec<String> = rows.iter().map(|&r| input.patients[r].clone()).collect();
    let ev: Vec<bool> = rows.iter().map(|&r| input.event[r]).collect();
    let _ = patient_events(&ids, &ev)?;
    Ok(split(&ids, &ev, &CvOptions { k, repeats: 1, seed })?.remove(0))
}

/// Checks the input's shapes: lengths, bag widths (naming the slide), tile counts.
fn check_input(input: &MilInput) -> Result<()> {
    let n = input.patients.len();
    for (what, len) in [("times", input.time.len()), ("events", input.event.len())] {
        if len != n {
            return Err(ModelError::LengthMismatch {
                what: format!("{what} (one per patient)"),
                expected: n,
                found: len,
            });
        }
    }
    for s in &input.stains {
        if s.bags.len() != n {
            return Err(ModelError::LengthMismatch {
                what: format!("{} bags (one list per patient)", s.name),
                expected: n,
                found: s.bags.len(),
            });
        }
        for (r, slides) in s.bags.iter().enumerate() {
            for b in slides {
                if s.dim == 0 || b.feats.len() != b.coords.len() * s.dim {
                    return Err(net_err(
                        &format!("patient {}", input.patients[r]),
                        format!(
                            "slide `{}` ({}): {} feature values for {} tiles of width {}; every {} slide must have the same width",
                            b.slide,
                            s.name,
                            b.feats.len(),
                            b.coords.len(),
                            s.dim,
                            s.name
                        ),
                    ));
                }
            }
        }
    }
    if input.stains.is_empty() && input.covariates.is_empty() {
        return Err(ModelError::InvalidParameter {
            name: "modalities".into(),
            expected: "at least one stain or clinical covariates".into(),
            found: "none".into(),
        });
    }
    Ok(())
}

/// Runs patient-level cross-validated attention-MIL training of one arm; `log` receives one
/// line per outer fold.
pub fn train_mil(input: &MilInput, opts: &MilOptions, log: &mut dyn FnMut(&str)) -> Result<MilResult> {
    check_input(input)?;
    let n = input.patients.len();
    let splits = split(&input.patients, &input.event, &opts.cv)?;
    let mut res = MilResult {
        oof: Oof::default(),
        baselines: Baselines::default(),
        inner_oof: InnerOof::default(),
        inner_baselines: InnerBaselines::default(),
        folds: Vec::new(),
        attention: Vec::new(),
        curves: SurvivalCurves::default(),
    };
    let cox = opts.net.loss == "cox";
    for a in &splits {
        let row_folds = a.fold.clone();
        let mut risk = vec![f64::NAN; n];
        for f in 0..a.k {
            let context = format!("repeat {} fold {f}", a.repeat);
            let train: Vec<usize> = (0..n).filter(|&r| row_folds[r] != f).collect();
            let test: Vec<usize> = (0..n).filter(|&r| row_folds[r] == f).collect();
            let n_events = train.iter().filter(|&&r| input.event[r]).count();
            if n_events == 0 {
                return Err(net_err(&context, "the training patients have no event"));
            }
            // 1–2: epochs from inner folds over the training patients
            let inner_seed = opts.cv.seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul((a.repeat * a.k + f + 1) as u64));
            let is = inner_split(input, &train, opts.inner_k, inner_seed)?;
            let inner_folds = match opts.select {
                EpochSelection::InnerCv => opts.inner_k,
                EpochSelection::Validation => 1,
            };
            let mut score = vec![0.0; opts.max_epochs];
            let mut inner_fits = Vec::new();
            for j in 0..inner_folds {
                let ctx = format!("{context}, inner fold {j}");
                let itrain: Vec<usize> = (0..train.len()).filter(|&k| is.fold[k] != j).map(|k| train[k]).collect();
                let ival: Vec<usize> = (0..train.len()).filter(|&k| is.fold[k] == j).map(|k| train[k]).collect();
                if !itrain.iter().any(|&r| input.event[r]) {
                    return Err(net_err(&ctx, "the inner training patients have no event"));
                }
                let rows: Vec<usize> = itrain.iter().chain(&ival).copied().collect();
                let prep = prepare(input, &rows, &itrain, usize::MAX, opts, &ctx)?;
                let tp: Vec<usize> = (0..itrain.len()).collect();
                let vp: Vec<usize> = (itrain.len()..rows.len()).collect();
                let seed = fit_seed(opts.cv.seed, a.repeat, f, j + 1);
                let fit = fit(input, &prep, &tp, &vp, &itrain, opts.max_epochs, seed, opts, &ctx, None)?;
                for (s, v) in score.iter_mut().zip(&fit.val_score) {
                    *s += v;
                }
                inner_fits.push((j, itrain, ival, fit.scored));
            }
            let mut best = 0;
            for e in 0..score.len() {
                if score[e] > score[best] {
                    best = e;
                }
            }
            let epochs = best + 1;
            // inner out-of-fold predictions: each inner network's outputs after the chosen epoch
            if opts.select == EpochSelection::InnerCv && cox {
                for (j, itrain, ival, scored) in &inner_fits {
                    let ctx = format!("{context}, inner fold {j}");
                    let out = scored
                        .get(epochs - 1)
                        .filter(|o| o.len() == itrain.len() + ival.len())
                        .ok_or_else(|| net_err(&ctx, format!("the plugin returned no outputs for epoch {epochs}")))?;
                    let r = risks(out, 1);
                    let centre = r[..itrain.len()].iter().sum::<f64>() / itrain.len() as f64;
                    let eta: Vec<f64> = r.iter().map(|v| v - centre).collect();
                    check_risks(&eta, &ctx, opts.net.lr)?;
                    let (bt, bc) = breslow(&input.time, &input.event, itrain, &eta[..itrain.len()]);
                    let b = Baseline::new(bt, bc).map_err(|e| net_err(&ctx, format!("baseline: {}", e.msg)))?;
                    res.inner_baselines.folds.insert((a.repeat, f, *j), b);
                    for (k, &row) in ival.iter().enumerate() {
                        res.inner_oof.rows.push(InnerOofRow {
                            repeat: a.repeat,
                            outer_fold: f,
                            inner_fold: *j,
                            patient: input.patients[row].clone(),
                            risk: eta[itrain.len() + k],
                            time: input.time[row],
                            event: input.event[row],
                        });
                    }
                }
            }
            drop(inner_fits);
            // 3: the fold's network
            let rows: Vec<usize> = train.iter().chain(&test).copied().collect();
            let prep = prepare(input, &rows, &train, f, opts, &context)?;
            check_leakage(&input.patients, &row_folds, &prep.records)?;
            let tp: Vec<usize> = (0..train.len()).collect();
            let seed = fit_seed(opts.cv.seed, a.repeat, f, 0);
            let trace = opts.trace_dir.as_ref().map(|d| d.join(format!("r{}_f{f}", a.repeat)));
            if let Some(dir) = &trace {
                // a trace never overwrites (another arm's, or an earlier run's)
                if dir.exists() {
                    return Err(net_err(
                        &context,
                        format!(
                            "the trace directory {} exists already: expected a new one per traced arm",
                            dir.display()
                        ),
                    ));
                }
                // the fit's patients in the data's order (training patients first), for a replay
                let ids: Vec<&str> = rows.iter().map(|&r| input.patients[r].as_str()).collect();
                std::fs::create_dir_all(dir)
                    .and_then(|_| std::fs::write(dir.join("patients.json"), serde_json::json!(ids).to_string()))
                    .map_err(|e| net_err(&context, format!("cannot write the trace in {}: {e}", dir.display())))?;
            }
            let fit = fit(input, &prep, &tp, &[], &train, epochs, seed, opts, &context, trace)?;
            if let Some(dir) = &opts.weights_dir {
                fit.net.save(&dir.join(format!("r{}_f{f}.safetensors", a.repeat))).map_err(|e| net_err(&context, e))?;
            }
            let out_dim = if cox { 1 } else { cuts(input, &train, opts.net.intervals).len() };
            let all: Vec<usize> = (0..rows.len()).collect();
            let (out, att) = fit.net.predict(&prep.data, &all, out_dim).map_err(|e| net_err(&context, e))?;
            let r = risks(&out, out_dim);
            // 4: centre on the training patients (Cox outputs only: 1 − S(τ) has a scale)
            let centre = if cox { r[..train.len()].iter().sum::<f64>() / train.len() as f64 } else { 0.0 };
            let eta: Vec<f64> = r.iter().map(|v| v - centre).collect();
            if cox {
                check_risks(&eta, &context, opts.net.lr)?;
            } else if let Some(v) = eta.iter().find(|v| !v.is_finite()) {
                return Err(diverged(&context, opts.net.lr, &format!("a risk is {v}")));
            }
            for (k, &row) in test.iter().enumerate() {
                risk[row] = eta[train.len() + k];
            }
            if cox {
                let (bt, bc) = breslow(&input.time, &input.event, &train, &eta[..train.len()]);
                let b = Baseline::new(bt, bc).map_err(|e| net_err(&context, format!("baseline: {}", e.msg)))?;
                res.baselines.folds.insert((a.repeat, f), b);
            } else {
                // S(τ_j) = Π_{k ≤ j} (1 − h_k) at the interval ends
                let cuts = cuts(input, &train, opts.net.intervals);
                for (k, &row) in test.iter().enumerate() {
                    let logits = &out[(train.len() + k) * out_dim..(train.len() + k + 1) * out_dim];
                    let mut s = 1.0;
                    let curve: Vec<(f64, f64)> = cuts
                        .iter()
                        .zip(logits)
                        .map(|(&t, &l)| {
                            s *= 1.0 - 1.0 / (1.0 + (-(l as f64)).exp());
                            (t, s)
                        })
                        .collect();
                    res.curves.curves.insert((a.repeat, input.patients[row].clone()), (f, curve));
                }
            }
            // attention of the test patients' tiles (the plugin's order: patient, stain, tile)
            let mut pos = 0;
            for &row in &rows {
                let tested = row_folds[row] == f;
                for (si, s) in input.stains.iter().enumerate() {
                    for b in &s.bags[row] {
                        for (t, c) in b.coords.iter().enumerate() {
                            if tested {
                                res.attention.push(TileAttention {
                                    repeat: a.repeat,
                                    fold: f,
                                    stain: si,
                                    slide: b.slide.clone(),
                                    x: c[0],
                                    y: c[1],
                                    weight: att.get(pos + t).copied().unwrap_or(f32::NAN) as f64,
                                });
                            }
                        }
                        pos += b.coords.len();
                    }
                }
            }
            let mut sorted = eta[..train.len()].to_vec();
            sorted.sort_by(f64::total_cmp);
            let mut warnings = Vec::new();
            for s in &input.stains {
                let without = train.iter().filter(|&&r| s.bags[r].iter().all(|b| b.coords.is_empty())).count();
                if without > 0 {
                    warnings.push(format!(
                        "{without} training patient(s) without a {} tile: learned missing embedding",
                        s.name
                    ));
                }
            }
            log(&format!(
                "{context}: {epochs} epoch(s) chosen of {} ({}), training loss {:.4}, {} train / {} test patients",
                opts.max_epochs,
                match opts.select {
                    EpochSelection::InnerCv => format!("{}-fold inner CV", opts.inner_k),
                    EpochSelection::Validation => "one inner validation fold".into(),
                },
                fit.train_loss.last().copied().unwrap_or(f64::NAN),
                train.len(),
                test.len()
            ));
            res.folds.push(MilFold {
                repeat: a.repeat,
                fold: f,
                n_train: train.len(),
                n_train_events: n_events,
                n_test: test.len(),
                epochs,
                inner_score: score,
                train_loss: fit.train_loss,
                centre,
                cut_median: quantile(&sorted, 0.5),
                cut_tertiles: [quantile(&sorted, 1.0 / 3.0), quantile(&sorted, 2.0 / 3.0)],
                warnings,
            });
        }
        for r in 0..n {
            res.oof.rows.push(OofRow {
                repeat: a.repeat,
                fold: row_folds[r],
                patient: input.patients[r].clone(),
                risk: risk[r],
                time: input.time[r],
                event: input.event[r],
            });
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breslow_matches_the_cox_fit_baseline_at_zero_risk() {
        // with all risks 0 Breslow's estimator is Nelson–Aalen
        let time = [1.0, 2.0, 2.0, 3.0, 5.0];
        let event = [true, true, false, true, false];
        let rows: Vec<usize> = (0..5).collect();
        let (t, h) = breslow(&time, &event, &rows, &[0.0; 5]);
        assert_eq!(t, vec![1.0, 2.0, 3.0]);
        let want = [1.0 / 5.0, 1.0 / 5.0 + 1.0 / 4.0, 1.0 / 5.0 + 1.0 / 4.0 + 1.0 / 2.0];
        for (a, b) in h.iter().zip(want) {
            assert!((a - b).abs() < 1e-15);
        }
        // a risk shifts the at-risk sums
        let (_, h2) = breslow(&time, &event, &rows, &[1.0, 0.0, 0.0, 0.0, 0.0]);
        assert!((h2[0] - 1.0 / (1f64.exp() + 4.0)).abs() < 1e-15);
    }

    #[test]
    fn a_bag_of_another_width_names_its_slide_and_patient() {
        let bag = |slide: &str, tiles: usize, dim: usize| SlideBag {
            slide: slide.into(),
            coords: (0..tiles as i64).map(|t| [256 * t, 0]).collect(),
            feats: vec![0.5; tiles * dim],
        };
        let mut input = MilInput {
            patients: vec!["P1".into(), "P2".into()],
            time: vec![10.0, 20.0],
            event: vec![true, false],
            stains: vec![StainBags {
                name: "HE".into(),
                dim: 4,
                bags: vec![vec![bag("P1_HE_a", 3, 4), bag("P1_HE_b", 2, 3)], vec![bag("P2_HE", 2, 4)]],
            }],
            covariates: Vec::new(),
        };
        let e = check_input(&input).unwrap_err().to_string();
        assert!(e.contains("patient P1") && e.contains("slide `P1_HE_b`") && e.contains("width 4"), "{e}");
        input.stains[0].bags[0].pop();
        check_input(&input).unwrap();
        // a patient without slides of a stain is fine (the missing embedding); no modality is not
        input.stains[0].bags[1].clear();
        check_input(&input).unwrap();
        input.stains.clear();
        assert!(check_input(&input).unwrap_err().to_string().contains("at least one stain or clinical"));
    }

    #[test]
    fn batches_hold_two_events_each_and_cover_the_training_set() {
        let input = MilInput {
            patients: (0..20).map(|i| format!("P{i}")).collect(),
            time: (0..20).map(|i| i as f64).collect(),
            event: (0..20).map(|i| i % 4 == 0).collect(), // 5 events
            stains: Vec::new(),
            covariates: Vec::new(),
        };
        let train: Vec<usize> = (0..20).collect();
        let net = NetOptions {
            hidden: 8,
            attention: 4,
            dropout: 0.0,
            fusion: "concat".into(),
            bilinear_dim: 4,
            rank: 2,
            loss: "cox".into(),
            intervals: 4,
            lr: 1e-3,
            weight_decay: 0.0,
            clip: 0.0,
            device: -1,
        };
        let opts = MilOptions {
            cv: CvOptions { k: 2, repeats: 1, seed: 1 },
            inner_k: 2,
            select: EpochSelection::InnerCv,
            max_epochs: 3,
            batch_size: 4,
            net,
            missing: MissingPolicy::Error,
            weights_dir: None,
            trace_dir: None,
        };
        let b = batches(&input, &train, &opts, 7);
        assert_eq!(b.len(), 3);
        for epoch in &b {
            assert_eq!(epoch.len(), 2, "5 events allow 2 batches of ≥ 2 events");
            let mut all: Vec<usize> = epoch.iter().flatten().copied().collect();
            all.sort();
            assert_eq!(all, train);
            for batch in epoch {
                assert!(batch.iter().filter(|&&k| input.event[k]).count() >= 2);
            }
        }
        assert_eq!(b, batches(&input, &train, &opts, 7), "seeded");
        assert_ne!(b, batches(&input, &train, &opts, 8));
    }
}
