//! Cross-validated Cox training of one arm on several modalities: the `train` stage's engine.
//!
//! Input ([`TrainData`]): one row per patient with follow-up, event, tabular covariates
//! (clinical ones and stain indices, [`Covariate`]) and feature blocks ([`Block`]: per-patient
//! mean-pooled slide features of one stain, or a gene-expression block), each reduced by PCA.
//!
//! For every repeat and outer fold of a patient-level split ([`crate::model::cv`]):
//! 1. the penalty is chosen by inner k-fold CV over the outer fold's training patients
//!    (largest cross-validated partial log-likelihood, below), unless it is fixed; a choice at
//!    the edge of the grid extends the grid geometrically beyond that edge until the choice is
//!    interior or a bound is reached, with a warning if it stays at a bound (`select_penalty`);
//! 2. every transform is fitted on the outer training patients only: the [`Standardizer`] of
//!    the covariates; per block, the column means (also imputing patients without the block),
//!    SDs and a PCA of the z-scored columns ([`Pca`]);
//! 3. the leakage guard ([`check_leakage`]) checks the split and every transform, outer and
//!    inner, before the fold's Cox model is fitted;
//! 4. an L2-penalised Cox model (Efron ties, [`fit_cox`]) is fitted on the training patients;
//!    the test patients get their linear predictor (the out-of-fold risk) and the fold keeps
//!    its Breslow baseline `H₀` (at zero design values), so `S(t | x) = exp(−H₀(t)·e^{risk})`.
//!
//! # Formula
//! Cross-validated partial log-likelihood (Verweij & van Houwelingen 1993) of a penalty λ over
//! inner folds `j`: `CVPL(λ) = Σ_j [ℓ(β̂₋ⱼ) − ℓ₋ⱼ(β̂₋ⱼ)]`, where `β̂₋ⱼ` (with its transforms) is
//! fitted without fold `j`, `ℓ` is Breslow's log partial likelihood over all training patients
//! and `ℓ₋ⱼ` over those outside fold `j`. Ties between penalties go to the larger one.
//! Risk-group cut-points of a fold are the median and tertiles (linear interpolation) of its
//! model's risk over its own training patients.
//!
//! # Assumptions
//! One row per patient (slides are pooled before), proportional hazards, independent censoring.
//! Everything runs sequentially with seeded splits: results depend on the seed only.
//!
//! # Errors
//! Mismatched lengths, split errors, a block without any training patient, a Cox fit failure at
//! every penalty of the grid (naming repeat and fold), a leak ([`ModelError::PatientInTwoFolds`],
//! [`ModelError::TransformSawTestFold`]).
//!
//! # References
//! Verweij PJM, van Houwelingen HC (1993) Cross-validation in survival analysis. Stat Med
//! 12:2305–2314.
use super::cv::{patient_events, split, CvOptions, FoldAssignment};
use super::design::{Column, Covariate, MissingPolicy, Standardizer};
use super::error::{ModelError, Result};
use super::leakage::{check_leakage, TransformRecord};
use super::pca::Pca;
use super::phenotype::{summary_names, SpatialInput};
use crate::contracts::baseline::{Baseline, Baselines, InnerBaselines};
pub use crate::contracts::model::TransformSummary;
use crate::contracts::oof::{InnerOof, InnerOofRow, Oof, OofRow};
use crate::survival::calibration::quantile_sorted as quantile;
use crate::survival::{fit_cox, CoxOptions};

/// A feature block reduced by PCA: one optional feature vector per patient.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Name (`HE`, `KI67`, `genes`, …); design columns are `<name>:pc<k>`.
    pub name: String,
    /// Feature vector of each patient (`None`: the patient has no slide of this stain; imputed
    /// with the training mean).
    pub rows: Vec<Option<Vec<f64>>>,
}

/// One arm's data, one row per patient.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainData {
    /// Patient ids.
    pub patients: Vec<String>,
    /// Follow-up times.
    pub time: Vec<f64>,
    /// Event indicators.
    pub event: Vec<bool>,
    /// Tabular covariates (clinical, stain indices), standardised / one-hot per fold.
    pub covariates: Vec<Covariate>,
    /// Feature blocks, each reduced by PCA per fold.
    pub blocks: Vec<Block>,
    /// The `spatial` modality: tissue phenotypes fitted per fold on the training patients' tiles,
    /// summarised per patient ([`super::phenotype`]) and standardised on the training patients.
    pub spatial: Option<SpatialInput>,
}

/// How the L2 penalty is set.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Penalty {
    /// Given.
    Fixed(f64),
    /// Chosen per outer fold by inner CV over this grid.
    InnerCv(Vec<f64>),
}

/// Options of [`train_cv`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TrainOptions {
    /// Outer folds, repeats, seed.
    pub cv: CvOptions,
    /// Inner folds (penalty choice and inner out-of-fold predictions for recalibration).
    pub inner_k: usize,
    /// The penalty.
    pub penalty: Penalty,
    /// PCA components kept per block (capped by the training rows and columns).
    pub pca: usize,
    /// Missing covariate values.
    pub missing: MissingPolicy,
}

/// One outer fold's model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FoldFit {
    /// Repeat.
    pub repeat: usize,
    /// Fold.
    pub fold: usize,
    /// Training patients.
    pub n_train: usize,
    /// Training events.
    pub n_train_events: usize,
    /// Test patients.
    pub n_test: usize,
    /// Penalty used.
    pub penalty: f64,
    /// CVPL of each penalty searched, ascending (empty for a fixed penalty); `None` where fits
    /// failed. The grid plus any extension beyond its edges.
    pub cvpl: Vec<(f64, Option<f64>)>,
    /// How many of the penalties searched extend the grid beyond its edges.
    pub grid_extended: usize,
    /// Design columns.
    pub names: Vec<String>,
    /// Coefficients.
    pub beta: Vec<f64>,
    /// Median of the training patients' risk.
    pub cut_median: f64,
    /// Tertiles of the training patients' risk.
    pub cut_tertiles: [f64; 2],
    /// Transforms fitted on the training patients.
    pub transforms: Vec<TransformSummary>,
    /// Warnings of the Cox fit.
    pub warnings: Vec<String>,
    /// The fitted transforms in full (standardiser; per block kept columns, means, SDs, PCA
    /// mean and components), so the model applies to a new patient.
    pub fitted: serde_json::Value,
}

/// Result of [`train_cv`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainResult {
    /// Outer out-of-fold predictions, by repeat then patient order (`oof.csv`).
    pub oof: Oof,
    /// Outer fold models.
    pub folds: Vec<FoldFit>,
    /// Outer fold baselines (`baseline.csv`).
    pub baselines: Baselines,
    /// Inner out-of-fold predictions at each outer fold's penalty (`inner_oof.csv`).
    pub inner_oof: InnerOof,
    /// Inner fold baselines (`inner_baseline.csv`).
    pub inner_baselines: InnerBaselines,
}

/// A model fitted on some rows, with the risk of other rows.
struct Fitted {
    names: Vec<String>,
    beta: Vec<f64>,
    /// Risk of the `predict` rows, in order.
    risk: Vec<f64>,
    /// Risk of the training rows, in order.
    train_risk: Vec<f64>,
    baseline_times: Vec<f64>,
    baseline_cumhaz: Vec<f64>,
    records: Vec<(String, Vec<usize>)>,
    transforms: Vec<TransformSummary>,
    warnings: Vec<String>,
    /// Everything needed to apply the fitted model to a new patient.
    full: serde_json::Value,
}

/// The design of one fit: every transform fitted on the training rows, applied to them and to
/// the rows to predict.
pub(crate) struct FoldDesign {
    /// Design columns.
    pub(crate) names: Vec<String>,
    /// Training rows' design, row-major.
    pub(crate) x_train: Vec<f64>,
    /// Predicted rows' design, row-major.
    pub(crate) x_predict: Vec<f64>,
    records: Vec<(String, Vec<usize>)>,
    transforms: Vec<TransformSummary>,
    dropped: Vec<String>,
    full: serde_json::Value,
}

/// Fits every transform on `train` and applies it to `train` and `predict` (the Cox fit's
/// design; the competing-risks models of [`super::competing`] use the same).
pub(crate) fn fold_design(
    data: &TrainData,
    train: &[usize],
    predict: &[usize],
    opts: &TrainOptions,
    context: &str,
) -> Result<FoldDesign> {
    let mut records = Vec::new();
    let mut transforms = Vec::new();
    let mut names = Vec::new();
    // columns of the design, each as (train values, predict values)
    let mut cols_train: Vec<Vec<f64>> = Vec::new();
    let mut cols_pred: Vec<Vec<f64>> = Vec::new();
    let mut full = serde_json::Map::new();
    // a numeric covariate constant on these training patients (e.g. a rare marker absent from
    // a small fold) carries no information here: it is left out of this fit, with a warning
    let mut dropped = Vec::new();
    let covariates: Vec<Covariate> = data
        .covariates
        .iter()
        .filter(|c| match &c.column {
            Column::Numeric(v) => {
                let mut vals = train.iter().filter_map(|&r| v[r]);
                let first = vals.next();
                let varies = first.is_some_and(|f| vals.any(|x| x != f));
                if !varies {
                    dropped.push(format!(
                        "covariate `{}` is {} on the {} training patients ({context}): left out of this fit",
                        c.name,
                        first.map_or("missing".to_string(), |f| format!("constant ({f})")),
                        train.len()
                    ));
                }
                varies
            }
            Column::Categorical(_) => true,
        })
        .cloned()
        .collect();
    if !covariates.is_empty() {
        let st = Standardizer::fit(&covariates, train, opts.missing)?;
        full.insert("standardizer".into(), serde_json::to_value(&st).unwrap_or_default());
        records.push(("standardizer".to_string(), st.fitted_rows.clone()));
        let dtr = st.transform(&covariates, train)?;
        let dpr = st.transform(&covariates, predict)?;
        let p = dtr.names.len();
        for j in 0..p {
            cols_train.push((0..dtr.n).map(|i| dtr.x[i * p + j]).collect());
            cols_pred.push((0..dpr.n).map(|i| dpr.x[i * p + j]).collect());
        }
        transforms.push(TransformSummary {
            name: "standardizer".into(),
            columns: p,
            explained: None,
            imputed_rows: None,
        });
        names.extend(dtr.names);
    }
    for b in &data.blocks {
        let dim = b.rows.iter().flatten().map(Vec::len).next().unwrap_or(0);
        let present: Vec<usize> = train.iter().copied().filter(|&r| b.rows[r].is_some()).collect();
        if present.len() < 2 || dim == 0 {
            return Err(ModelError::InvalidParameter {
                name: format!("block '{}' ({context})", b.name),
                expected: "features for at least 2 training patients".into(),
                found: format!("{} training patient(s) with features", present.len()),
            });
        }
        // column means and SDs over the training patients that have the block
        let mut mean = vec![0.0; dim];
        for &r in &present {
            for (m, v) in mean.iter_mut().zip(b.rows[r].as_deref().unwrap_or_default()) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= present.len() as f64);
        let value = |r: usize, j: usize| b.rows[r].as_ref().map_or(mean[j], |v| v[j]);
        let sd: Vec<f64> = (0..dim)
            .map(|j| {
                let ss: f64 = train.iter().map(|&r| (value(r, j) - mean[j]).powi(2)).sum();
                (ss / (train.len() as f64 - 1.0)).sqrt()
            })
            .collect();
        let keep: Vec<usize> = (0..dim).filter(|&j| sd[j] > 1e-12 * (1.0 + mean[j].abs())).collect();
        if keep.is_empty() {
            return Err(ModelError::InvalidParameter {
                name: format!("block '{}' ({context})", b.name),
                expected: "at least one feature varying over the training patients".into(),
                found: "every feature constant".into(),
            });
        }
        let n = data.patients.len();
        let p = keep.len();
        let mut z = vec![0.0; n * p];
        for r in train.iter().chain(predict) {
            for (k, &j) in keep.iter().enumerate() {
                z[r * p + k] = (value(*r, j) - mean[j]) / sd[j];
            }
        }
        let k = opts.pca.min(p).min(train.len() - 1).max(1);
        let pca = Pca::fit(&z, p, train, k)?;
        records.push((format!("scale:{}", b.name), train.to_vec()));
        records.push((format!("pca:{}", b.name), pca.fitted_rows.clone()));
        full.insert(
            format!("block:{}", b.name),
            serde_json::json!({"columns_kept": keep, "mean": keep.iter().map(|&j| mean[j]).collect::<Vec<_>>(), "sd": keep.iter().map(|&j| sd[j]).collect::<Vec<_>>(), "pca_mean": pca.mean, "pca_components": pca.components}),
        );
        let str_ = pca.transform(&z, train)?;
        let spr = pca.transform(&z, predict)?;
        for c in 0..k {
            cols_train.push((0..train.len()).map(|i| str_[i * k + c]).collect());
            cols_pred.push((0..predict.len()).map(|i| spr[i * k + c]).collect());
            names.push(format!("{}:pc{}", b.name, c + 1));
        }
        let explained = pca.explained_variance.iter().sum::<f64>() / pca.total_variance.max(f64::MIN_POSITIVE);
        transforms.push(TransformSummary {
            name: format!("pca:{}", b.name),
            columns: k,
            explained: Some(explained),
            imputed_rows: Some(train.len() - present.len()),
        });
    }
    if let Some(sp) = &data.spatial {
        spatial_columns(
            sp,
            train,
            predict,
            context,
            &mut SpatialDesign {
                cols_train: &mut cols_train,
                cols_pred: &mut cols_pred,
                names: &mut names,
                records: &mut records,
                transforms: &mut transforms,
                dropped: &mut dropped,
                full: &mut full,
            },
        )?;
    }
    if names.is_empty() {
        return Err(ModelError::InvalidParameter {
            name: format!("design ({context})"),
            expected: "at least one covariate or feature block".into(),
            found: "none".into(),
        });
    }
    let p = names.len();
    let row_major = |cols: &[Vec<f64>], m: usize| -> Vec<f64> {
        let mut x = vec![0.0; m * p];
        for (j, c) in cols.iter().enumerate() {
            for (i, v) in c.iter().enumerate() {
                x[i * p + j] = *v;
            }
        }
        x
    };
    let x_train = row_major(&cols_train, train.len());
    let x_predict = row_major(&cols_pred, predict.len());
    Ok(FoldDesign { names, x_train, x_predict, records, transforms, dropped, full: serde_json::Value::Object(full) })
}

/// Where [`spatial_columns`] adds to the design being built.
struct SpatialDesign<'a> {
    cols_train: &'a mut Vec<Vec<f64>>,
    cols_pred: &'a mut Vec<Vec<f64>>,
    names: &'a mut Vec<String>,
    records: &'a mut Vec<(String, Vec<usize>)>,
    transforms: &'a mut Vec<TransformSummary>,
    dropped: &'a mut Vec<String>,
    full: &'a mut serde_json::Map<String, serde_json::Value>,
}

/// The `spatial` modality's columns: phenotypes fitted on the training patients' tiles, each
/// patient's summaries (a patient without tiles gets the training mean), z-scored on the training
/// patients; a summary constant on them is left out of this fit, with a warning.
fn spatial_columns(
    sp: &SpatialInput,
    train: &[usize],
    predict: &[usize],
    context: &str,
    d: &mut SpatialDesign,
) -> Result<()> {
    let fit = sp.fit_on(train).map_err(|e| match e {
        ModelError::InvalidParameter { name, expected, found } => {
            ModelError::InvalidParameter { name: format!("{name} ({context})"), expected, found }
        }
        e => e,
    })?;
    let summary = |r: usize| fit.summaries.get(r).cloned().flatten();
    let rows_train: Vec<Option<Vec<f64>>> = train.iter().map(|&r| summary(r)).collect();
    let rows_pred: Vec<Option<Vec<f64>>> = predict.iter().map(|&r| summary(r)).collect();
    let present: Vec<&Vec<f64>> = rows_train.iter().flatten().collect();
    let names = summary_names(fit.fit.k());
    if present.len() < 2 {
        return Err(ModelError::InvalidParameter {
            name: format!("modality 'spatial' ({context})"),
            expected: "tiles for at least 2 training patients".into(),
            found: format!("{} training patient(s) with tiles", present.len()),
        });
    }
    let mut kept = 0;
    let (mut means, mut sds) = (Vec::new(), Vec::new());
    for (j, name) in names.iter().enumerate() {
        let mean = present.iter().map(|v| v[j]).sum::<f64>() / present.len() as f64;
        let value = |v: &Option<Vec<f64>>| v.as_ref().map_or(mean, |v| v[j]);
        let ss: f64 = rows_train.iter().map(|v| (value(v) - mean).powi(2)).sum();
        let sd = (ss / (train.len() as f64 - 1.0).max(1.0)).sqrt();
        if sd.is_nan() || sd <= 1e-12 * (1.0 + mean.abs()) {
            d.dropped.push(format!(
                "spatial summary `{name}` is constant on the {} training patients ({context}): left out of this fit",
                train.len()
            ));
            continue;
        }
        d.cols_train.push(rows_train.iter().map(|v| (value(v) - mean) / sd).collect());
        d.cols_pred.push(rows_pred.iter().map(|v| (value(v) - mean) / sd).collect());
        d.names.push(format!("spatial:{name}"));
        means.push(mean);
        sds.push(sd);
        kept += 1;
    }
    d.records.push(("phenotypes:spatial".to_string(), fit.fit.fitted_rows.clone()));
    d.records.push(("scale:spatial".to_string(), train.to_vec()));
    d.full.insert(
        "spatial".into(),
        serde_json::json!({"phenotypes": &fit.fit, "summary_mean": means, "summary_sd": sds}),
    );
    d.transforms.push(TransformSummary {
        name: "phenotypes:spatial".into(),
        columns: kept,
        explained: None,
        imputed_rows: Some(train.len() - present.len()),
    });
    Ok(())
}

/// Fits every transform and the Cox model on `train` and scores `predict`.
fn fit_rows(
    data: &TrainData,
    train: &[usize],
    predict: &[usize],
    penalty: f64,
    opts: &TrainOptions,
    context: &str,
) -> Result<Fitted> {
    let FoldDesign { names, x_train: xtr, x_predict: xpr, records, transforms, dropped, full } =
        fold_design(data, train, predict, opts, context)?;
    let t: Vec<f64> = train.iter().map(|&r| data.time[r]).collect();
    let e: Vec<bool> = train.iter().map(|&r| data.event[r]).collect();
    let cox = CoxOptions { l2_penalty: penalty, concordance: false, ..Default::default() };
    let surv = |source| ModelError::Survival { context: context.to_string(), source };
    let fit = fit_cox(&t, &e, &xtr, &names, &cox).map_err(surv)?;
    let risk = fit.linear_predictor(&xpr).map_err(surv)?;
    let train_risk = fit.linear_predictor(&xtr).map_err(surv)?;
    Ok(Fitted {
        names,
        beta: fit.beta(),
        risk,
        train_risk,
        baseline_times: fit.baseline_times.clone(),
        baseline_cumhaz: fit.baseline_cumulative_hazard.clone(),
        records,
        transforms,
        warnings: dropped.into_iter().chain(fit.warnings.iter().map(|w| w.to_string())).collect(),
        full,
    })
}

/// Breslow's log partial likelihood over `rows` (indices into `time`/`event`), `risk[k]` being
/// the linear predictor of `rows[k]`.
pub fn partial_log_likelihood(time: &[f64], event: &[bool], risk: &[f64], rows: &[usize]) -> f64 {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    // descending time, so the running sum is the risk set
    order.sort_by(|&a, &b| time[rows[b]].total_cmp(&time[rows[a]]));
    let mut ll = 0.0;
    let mut sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let t = time[rows[order[i]]];
        let mut j = i;
        while j < order.len() && time[rows[order[j]]] == t {
            sum += risk[order[j]].exp();
            j += 1;
        }
        for &o in &order[i..j] {
            if event[rows[o]] {
                ll += risk[o] - sum.ln();
            }
        }
        i = j;
    }
    ll
}

/// Checks the transforms of one fit against the folds of `rows` (fold per row of the data;
/// rows outside the CV carry `outside`).
fn guard(data: &TrainData, row_folds: &[usize], test_fold: usize, records: &[(String, Vec<usize>)]) -> Result<()> {
    let recs: Vec<TransformRecord> = records
        .iter()
        .map(|(name, rows)| TransformRecord { name: name.clone(), test_fold, fitted_rows: rows.clone() })
        .collect();
    check_leakage(&data.patients, row_folds, &recs)
}

/// Inner CV over `train` (rows of the data) at one penalty: CVPL, inner predictions, baselines.
struct Inner {
    cvpl: f64,
    preds: Vec<(usize, usize, f64)>, // (row, inner fold, risk)
    baselines: Vec<(usize, Vec<f64>, Vec<f64>)>,
}

fn inner_cv(
    data: &TrainData,
    train: &[usize],
    inner: &FoldAssignment,
    penalty: f64,
    opts: &TrainOptions,
    context: &str,
) -> Result<Inner> {
    let n = data.patients.len();
    // fold of every data row for the guard: inner folds for the outer training rows; the outer
    // test rows form one more fold that no inner transform may see either
    let outside = inner.k;
    let mut row_folds = vec![outside; n];
    for (i, &r) in train.iter().enumerate() {
        row_folds[r] = inner.fold[i];
    }
    let mut cvpl = 0.0;
    let mut preds = Vec::new();
    let mut baselines = Vec::new();
    for j in 0..inner.k {
        let fit_on: Vec<usize> = train.iter().copied().filter(|&r| row_folds[r] != j).collect();
        let ctx = format!("{context}, inner fold {j}");
        let f = fit_rows(data, &fit_on, train, penalty, opts, &ctx)?;
        guard(data, &row_folds, j, &f.records)?;
        guard(data, &row_folds, outside, &f.records)?;
        // ℓ over every training patient minus ℓ over those outside fold j, both at β̂₋ⱼ
        let outside_j: Vec<usize> = (0..train.len()).filter(|&i| row_folds[train[i]] != j).collect();
        let rows_j: Vec<usize> = outside_j.iter().map(|&i| train[i]).collect();
        let risk_j: Vec<f64> = outside_j.iter().map(|&i| f.risk[i]).collect();
        cvpl += partial_log_likelihood(&data.time, &data.event, &f.risk, train)
            - partial_log_likelihood(&data.time, &data.event, &risk_j, &rows_j);
        for (i, &r) in train.iter().enumerate() {
            if row_folds[r] == j {
                preds.push((r, j, f.risk[i]));
            }
        }
        baselines.push((j, f.baseline_times, f.baseline_cumhaz));
    }
    Ok(Inner { cvpl, preds, baselines })
}

/// A fitted model's Breslow baseline as the `train` contract's [`Baseline`].
fn baseline(time: Vec<f64>, cumhaz: Vec<f64>, context: &str) -> Result<Baseline> {
    Baseline::new(time, cumhaz).map_err(|e| ModelError::InvalidParameter {
        name: format!("Breslow baseline ({context}), point {}, {}", e.index, e.column),
        expected: "a cumulative hazard step function".into(),
        found: e.msg,
    })
}

/// The largest penalty the grid is extended to (the `train` stage's bound on a penalty).
pub const PENALTY_MAX: f64 = crate::bounds::TRAIN_PENALTY.hi;
/// Below this the downward extension tries the unpenalised fit (λ = 0) and stops.
pub const PENALTY_FLOOR: f64 = 1e-6;
/// Extension factor when the grid has no two positive values at that edge.
const DEFAULT_STEP: f64 = 10.0;

/// The smallest and largest penalty whose inner CV gave a finite CVPL.
fn fitted_range(scores: &[(f64, Option<f64>)]) -> (f64, f64) {
    scores
        .iter()
        .filter(|s| s.1.is_some_and(f64::is_finite))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| (lo.min(s.0), hi.max(s.0)))
}

/// The penalty chosen by inner CV, with every penalty searched and its CVPL (ascending).
struct Selection {
    penalty: f64,
    scores: Vec<(f64, Option<f64>)>,
    inner: Inner,
    warnings: Vec<String>,
    /// Penalties added beyond the grid's edges.
    extended: usize,
}

/// Chooses the penalty of largest CVPL (`score(λ)` runs the inner CV; ties go to the larger λ)
/// over `grid`, then, while the choice is at the edge of what was searched, extends the grid
/// geometrically beyond that edge (by the ratio of the two outermost grid values there, or
/// [`DEFAULT_STEP`]) until the choice is interior or a bound is reached: [`PENALTY_MAX`] above;
/// below, λ = 0 once a step would go under [`PENALTY_FLOOR`]. A choice still at a bound, or
/// at an edge where the extension's fits failed, is reported in `warnings`. A choice interior
/// to `grid` is never changed.
fn select_penalty(grid: &[f64], mut score: impl FnMut(f64) -> Result<Inner>) -> Result<Selection> {
    let mut best: Option<(f64, Inner)> = None;
    let mut scores: Vec<(f64, Option<f64>)> = Vec::new();
    let mut last_err = None;
    let mut try_one = |l: f64, best: &mut Option<(f64, Inner)>, scores: &mut Vec<(f64, Option<f64>)>| match score(l) {
        Ok(inn) => {
            scores.push((l, Some(inn.cvpl)));
            let better = match best {
                None => true,
                Some((bl, b)) => inn.cvpl > b.cvpl || (inn.cvpl == b.cvpl && l > *bl),
            };
            if better && inn.cvpl.is_finite() {
                *best = Some((l, inn));
            }
            Ok(true)
        }
        Err(e @ (ModelError::PatientInTwoFolds { .. } | ModelError::TransformSawTestFold { .. })) => Err(e),
        Err(e) => {
            scores.push((l, None));
            last_err = Some(e);
            Ok(false)
        }
    };
    for &l in grid {
        try_one(l, &mut best, &mut scores)?;
    }
    let mut sorted: Vec<f64> = grid.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.dedup();
    let positive: Vec<f64> = sorted.iter().copied().filter(|&l| l > 0.0).collect();
    let up = match positive.as_slice() {
        [.., a, b] if *a > 0.0 => b / a,
        _ => DEFAULT_STEP,
    };
    let down = match positive.as_slice() {
        [a, b, ..] => b / a,
        _ => DEFAULT_STEP,
    };
    let (mut up_done, mut down_done) = (false, false);
    let mut extended = (0usize, 0usize);
    let mut failed_edge = None;
    while let Some(b) = best.as_ref().map(|b| b.0) {
        let (lo, hi) = fitted_range(&scores);
        let next = if b >= hi && !up_done {
            if b >= PENALTY_MAX {
                up_done = true;
                continue;
            }
            extended.0 += 1;
            (b * up).min(PENALTY_MAX)
        } else if b <= lo && !down_done {
            if b <= 0.0 {
                down_done = true;
                continue;
            }
            extended.1 += 1;
            let v = b / down;
            if v < PENALTY_FLOOR {
                0.0
            } else {
                v
            }
        } else {
            break;
        };
        if !try_one(next, &mut best, &mut scores)? {
            // a failed fit ends the extension on that side
            failed_edge = Some(next);
            if next > b {
                up_done = true;
            } else {
                down_done = true;
            }
        }
    }
    let Some((penalty, inner)) = best else {
        return Err(last_err.unwrap_or(ModelError::InvalidParameter {
            name: "penalty grid".into(),
            expected: "at least one penalty".into(),
            found: "an empty grid".into(),
        }));
    };
    scores.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (lo, hi) = fitted_range(&scores);
    let mut warnings = Vec::new();
    if lo < hi && (penalty >= hi || penalty <= lo) {
        let why = match failed_edge {
            Some(f) if (penalty >= hi) == (f > penalty) => format!("the fits at penalty {f} failed"),
            _ if penalty >= PENALTY_MAX => format!(
                "the bound {PENALTY_MAX} was reached: the data favour a model \
                                                    close to the null model (every coefficient near 0)"
            ),
            _ if penalty <= 0.0 => "the bound 0 (no penalty) was reached".to_string(),
            _ => "the grid could not be extended".to_string(),
        };
        warnings.push(format!(
            "penalty_at_bound: the chosen penalty {penalty} is still at the {} edge of the searched penalties \
             ({lo} to {hi}): {why}",
            if penalty >= hi { "upper" } else { "lower" }
        ));
    }
    Ok(Selection { penalty, scores, inner, warnings, extended: extended.0 + extended.1 })
}

/// A stratified split of the distinct patients of `ids` (first-seen order) expanded to one fold
/// per row, so that the rows of one patient (the copies of a bootstrap resample) share a fold;
/// without repeated ids it is exactly [`split`]'s.
fn split_rows(ids: &[String], events: &[bool], cv: &CvOptions) -> Result<FoldAssignment> {
    let (distinct, ev) = patient_events(ids, events)?;
    if distinct.len() == ids.len() {
        return Ok(split(ids, events, cv)?.remove(0));
    }
    let s = split(&distinct, &ev, cv)?.remove(0);
    let fold = s.row_folds(ids)?;
    Ok(FoldAssignment { repeat: s.repeat, k: s.k, patients: ids.to_vec(), fold })
}

/// Runs patient-level cross-validated Cox training of one arm.
pub fn train_cv(data: &TrainData, opts: &TrainOptions) -> Result<TrainResult> {
    let n = data.patients.len();
    for (what, len) in [("times (one per patient)", data.time.len()), ("events (one per patient)", data.event.len())] {
        if len != n {
            return Err(ModelError::LengthMismatch { what: what.into(), expected: n, found: len });
        }
    }
    for b in &data.blocks {
        if b.rows.len() != n {
            return Err(ModelError::LengthMismatch {
                what: format!("block '{}' (one row per patient)", b.name),
                expected: n,
                found: b.rows.len(),
            });
        }
    }
    if let Some(sp) = &data.spatial {
        if sp.patients.len() != n {
            return Err(ModelError::LengthMismatch {
                what: "spatial tiles (one entry per patient)".into(),
                expected: n,
                found: sp.patients.len(),
            });
        }
    }
    let splits = split(&data.patients, &data.event, &opts.cv)?;
    train_with_splits(data, &splits, opts)
}

/// [`train_cv`] with given outer splits (one per repeat). A split listing exactly the data's
/// patient rows is taken row by row, so a patient given two rows in two folds is a leak the
/// guard stops.
pub fn train_with_splits(data: &TrainData, splits: &[FoldAssignment], opts: &TrainOptions) -> Result<TrainResult> {
    let n = data.patients.len();
    let mut res = TrainResult {
        oof: Oof::default(),
        folds: Vec::new(),
        baselines: Baselines::default(),
        inner_oof: InnerOof::default(),
        inner_baselines: InnerBaselines::default(),
    };
    for a in splits {
        // positional when the split lists the data's rows (as `train_cv` makes it); by patient otherwise
        let row_folds = if a.patients == data.patients { a.fold.clone() } else { a.row_folds(&data.patients)? };
        let mut risk = vec![f64::NAN; n];
        for f in 0..a.k {
            let context = format!("repeat {} fold {f}", a.repeat);
            let train: Vec<usize> = (0..n).filter(|&r| row_folds[r] != f).collect();
            let test: Vec<usize> = (0..n).filter(|&r| row_folds[r] == f).collect();
            let train_ids: Vec<String> = train.iter().map(|&r| data.patients[r].clone()).collect();
            let train_ev: Vec<bool> = train.iter().map(|&r| data.event[r]).collect();
            let inner_split = split_rows(
                &train_ids,
                &train_ev,
                &CvOptions {
                    k: opts.inner_k,
                    repeats: 1,
                    seed: opts.cv.seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul((a.repeat * a.k + f + 1) as u64)),
                },
            )?;
            let mut grid_warnings = Vec::new();
            let mut grid_extended = 0;
            let (penalty, cvpl, inner) = match &opts.penalty {
                Penalty::Fixed(l) => (*l, Vec::new(), inner_cv(data, &train, &inner_split, *l, opts, &context)?),
                Penalty::InnerCv(grid) => {
                    let mut sel = select_penalty(grid, |l| inner_cv(data, &train, &inner_split, l, opts, &context))?;
                    grid_warnings.append(&mut sel.warnings);
                    grid_extended = sel.extended;
                    (sel.penalty, sel.scores, sel.inner)
                }
            };
            let fit = fit_rows(data, &train, &test, penalty, opts, &context)?;
            guard(data, &row_folds, f, &fit.records)?;
            for (i, &r) in test.iter().enumerate() {
                risk[r] = fit.risk[i];
            }
            let mut sorted = fit.train_risk.clone();
            sorted.sort_by(f64::total_cmp);
            res.folds.push(FoldFit {
                repeat: a.repeat,
                fold: f,
                n_train: train.len(),
                n_train_events: train_ev.iter().filter(|&&e| e).count(),
                n_test: test.len(),
                penalty,
                cvpl,
                grid_extended,
                names: fit.names,
                beta: fit.beta,
                cut_median: quantile(&sorted, 0.5),
                cut_tertiles: [quantile(&sorted, 1.0 / 3.0), quantile(&sorted, 2.0 / 3.0)],
                transforms: fit.transforms,
                warnings: grid_warnings.into_iter().chain(fit.warnings).collect(),
                fitted: fit.full,
            });
            res.baselines.folds.insert((a.repeat, f), baseline(fit.baseline_times, fit.baseline_cumhaz, &context)?);
            let mut preds = inner.preds;
            preds.sort_by_key(|p| p.0);
            for (r, j, rk) in preds {
                res.inner_oof.rows.push(InnerOofRow {
                    repeat: a.repeat,
                    outer_fold: f,
                    inner_fold: j,
                    patient: data.patients[r].clone(),
                    risk: rk,
                    time: data.time[r],
                    event: data.event[r],
                });
            }
            for (j, times, cumhaz) in inner.baselines {
                let b = baseline(times, cumhaz, &format!("{context}, inner fold {j}"))?;
                res.inner_baselines.folds.insert((a.repeat, f, j), b);
            }
        }
        for r in 0..n {
            res.oof.rows.push(OofRow {
                repeat: a.repeat,
                fold: row_folds[r],
                patient: data.patients[r].clone(),
                risk: risk[r],
                time: data.time[r],
                event: data.event[r],
            });
        }
    }
    Ok(res)
}

/// Each out-of-fold patient's predicted survival `exp(−H₀(t)·e^{risk})` at its fold's baseline
/// times (`survival.csv`).
pub fn cox_curves(oof: &Oof, baselines: &Baselines) -> crate::contracts::survival_curves::SurvivalCurves {
    let mut out = crate::contracts::survival_curves::SurvivalCurves::default();
    for o in &oof.rows {
        if let Some(b) = baselines.folds.get(&(o.repeat, o.fold)) {
            let c = b.time().iter().zip(b.cumhaz()).map(|(t, h)| (*t, (-h * o.risk.exp()).exp())).collect();
            out.curves.insert((o.repeat, o.patient.clone()), (o.fold, c));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, StandardNormal};

    /// 120 patients: a 10-d block whose first two columns carry the hazard, one noise covariate.
    fn data(seed: u64) -> TrainData {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = 120;
        let mut rows = Vec::new();
        let mut time = Vec::new();
        let mut event = Vec::new();
        let mut noise = Vec::new();
        for _ in 0..n {
            let x: Vec<f64> = (0..10).map(|_| StandardNormal.sample(&mut rng)).collect();
            let eta = 1.0 * x[0] + 0.7 * x[1];
            let u: f64 = rng.gen_range(1e-9..1.0);
            let t = -u.ln() / (0.1 * f64::exp(eta));
            let c = rng.gen_range(2.0..30.0);
            time.push(t.min(c));
            event.push(t <= c);
            rows.push(Some(x));
            noise.push(Some(StandardNormal.sample(&mut rng)));
        }
        TrainData {
            patients: (0..n).map(|i| format!("P{i:03}")).collect(),
            time,
            event,
            covariates: vec![Covariate { name: "noise".into(), column: Column::Numeric(noise) }],
            blocks: vec![Block { name: "HE".into(), rows }],
            spatial: None,
        }
    }

    fn opts() -> TrainOptions {
        TrainOptions {
            cv: CvOptions { k: 5, repeats: 1, seed: 3 },
            inner_k: 4,
            penalty: Penalty::InnerCv(vec![0.01, 0.1, 1.0]),
            pca: 4,
            missing: MissingPolicy::Impute,
        }
    }

    #[test]
    fn recovers_signal_out_of_fold_and_is_deterministic() {
        let d = data(1);
        let r = train_cv(&d, &opts()).unwrap();
        assert_eq!(r.oof.rows.len(), 120);
        assert_eq!(r.folds.len(), 5);
        assert_eq!(r.inner_oof.rows.len(), 5 * 96);
        assert_eq!(r.inner_baselines.folds.len(), 5 * 4);
        let t: Vec<f64> = r.oof.rows.iter().map(|p| p.time).collect();
        let e: Vec<bool> = r.oof.rows.iter().map(|p| p.event).collect();
        let k: Vec<f64> = r.oof.rows.iter().map(|p| p.risk).collect();
        let c = crate::survival::harrell(&t, &e, &k).unwrap().harrell;
        assert!(c > 0.7, "out-of-fold C {c}");
        assert_eq!(r, train_cv(&d, &opts()).unwrap());
        // every inner prediction belongs to a training patient of its outer fold
        for p in &r.inner_oof.rows {
            let outer = r.oof.rows.iter().find(|o| o.patient == p.patient).unwrap();
            assert_ne!(outer.fold, p.outer_fold);
        }
        for f in &r.folds {
            assert!(f.cut_tertiles[0] <= f.cut_median && f.cut_median <= f.cut_tertiles[1]);
            assert_eq!(f.cvpl.len(), 3 + f.grid_extended);
        }
    }

    /// [`select_penalty`] with a made-up CVPL curve (`None`: the fits fail).
    fn select(grid: &[f64], curve: impl Fn(f64) -> Option<f64>) -> Selection {
        select_penalty(grid, |l| match curve(l) {
            Some(cvpl) => Ok(Inner { cvpl, preds: Vec::new(), baselines: Vec::new() }),
            None => Err(ModelError::InvalidParameter { name: "fit".into(), expected: "x".into(), found: "y".into() }),
        })
        .unwrap()
    }

    #[test]
    fn penalty_selection_extends_the_grid_only_from_an_edge() {
        let grid = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0];
        // interior optimum: nothing added, nothing said
        let s = select(&grid, |l: f64| Some(-(l.ln() - 0.1f64.ln()).powi(2)));
        assert_eq!((s.penalty, s.extended, s.scores.len()), (0.1, 0, 8));
        assert!(s.warnings.is_empty());
        // optimum near 40: extended upwards by 3 until 81 shows the peak was passed
        let s = select(&grid, |l: f64| Some(-(l.ln() - 40f64.ln()).powi(2)));
        let added: Vec<f64> = s.scores.iter().map(|c| c.0).filter(|&l| l > 3.0).collect();
        assert_eq!(s.penalty, 27.0);
        assert!(added.iter().zip([9.0, 27.0, 81.0]).all(|(a, b)| (a - b).abs() < 1e-9), "{added:?}");
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        // optimum near 1e-4: extended downwards by 3
        let s = select(&grid, |l: f64| Some(-(l.ln() - 1e-4f64.ln()).powi(2)));
        assert!(s.penalty < 0.001 && s.penalty > s.scores[0].0 && s.warnings.is_empty(), "{}", s.penalty);
        assert!(s.scores.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn penalty_selection_warns_when_the_choice_stays_at_a_bound() {
        let grid = [0.01, 0.1, 1.0];
        // rising for ever: up to the stage's bound
        let s = select(&grid, |l: f64| Some(-1.0 / (1.0 + l)));
        assert_eq!(s.penalty, PENALTY_MAX);
        assert_eq!(s.scores.last().unwrap().0, PENALTY_MAX);
        assert!(
            s.warnings.len() == 1 && s.warnings[0].starts_with("penalty_at_bound") && s.warnings[0].contains("upper")
        );
        // falling for ever: down to no penalty at all
        let s = select(&grid, |l: f64| Some(-l));
        assert_eq!((s.penalty, s.scores[0].0), (0.0, 0.0));
        assert!(s.scores[1].0 >= PENALTY_FLOOR);
        assert!(s.warnings.len() == 1 && s.warnings[0].contains("the bound 0"), "{:?}", s.warnings);
        // the first extension's fits fail: stays at the edge, says why
        let s = select(&grid, |l: f64| if l > 1.0 { None } else { Some(l) });
        assert_eq!((s.penalty, s.scores.len()), (1.0, 4));
        assert!(s.warnings[0].contains("the fits at penalty 10 failed"), "{:?}", s.warnings);
        // a grid containing 0 that chooses 0 is at the bound already: nothing to extend
        let s = select(&[0.0, 1.0], |l: f64| Some(-l));
        assert_eq!((s.penalty, s.extended), (0.0, 0));
        assert!(s.warnings[0].contains("the bound 0"));
    }

    #[test]
    fn a_covariate_constant_in_a_training_fold_is_left_out_with_a_warning() {
        let mut d = data(4);
        // a rare marker: present in one patient only, so the fold testing her trains without it
        let rare: Vec<Option<f64>> = (0..d.patients.len()).map(|i| Some(if i == 0 { 1.0 } else { 0.0 })).collect();
        d.covariates.push(Covariate { name: "rare".into(), column: Column::Numeric(rare) });
        let r = train_cv(&d, &opts()).unwrap();
        let warned: Vec<&FoldFit> = r
            .folds
            .iter()
            .filter(|f| f.warnings.iter().any(|w| w.contains("covariate `rare` is constant (0)")))
            .collect();
        assert_eq!(warned.len(), 1, "{:?}", r.folds.iter().map(|f| &f.warnings).collect::<Vec<_>>());
        for f in &r.folds {
            assert_eq!(f.names.contains(&"rare".to_string()), !warned.iter().any(|w| w.fold == f.fold));
        }
    }

    #[test]
    fn partial_likelihood_matches_cox_fit() {
        let d = data(2);
        let x: Vec<f64> = d.blocks[0].rows.iter().map(|r| r.as_ref().unwrap()[0]).collect();
        let names = vec!["x".to_string()];
        let opts = CoxOptions { ties: crate::survival::Ties::Breslow, ..Default::default() };
        let fit = fit_cox(&d.time, &d.event, &x, &names, &opts).unwrap();
        let lp = fit.linear_predictor(&x).unwrap();
        let rows: Vec<usize> = (0..d.time.len()).collect();
        let ll = partial_log_likelihood(&d.time, &d.event, &lp, &rows);
        assert!((ll - fit.log_likelihood).abs() < 1e-9 * ll.abs(), "{ll} vs {}", fit.log_likelihood);
    }

    /// The `spatial` modality: per patient 4 × 4 tiles, the share of "tumour-like" tiles (feature
    /// near 3) following the block's first column, which carries the hazard.
    #[test]
    fn spatial_phenotypes_are_fitted_per_fold_and_carry_signal() {
        use crate::model::phenotype::{PatientTiles, SpatialInput};
        let mut d = data(3);
        let tiles = d.blocks[0]
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let share = 1.0 / (1.0 + (-r.as_ref().unwrap()[0]).exp()); // in (0, 1), rises with risk
                let hot = (share * 16.0).round() as usize;
                let x: Vec<f32> = (0..16)
                    .flat_map(|t| {
                        let j = ((i * 7 + t * 3) % 5) as f32 * 0.05;
                        if t < hot {
                            [3.0 + j, 3.0 - j]
                        } else {
                            [j, -j]
                        }
                    })
                    .collect();
                let cells = (0..16).map(|t| (0, (t % 4) as i64, (t / 4) as i64)).collect();
                (i % 17 != 0).then(|| std::sync::Arc::new(PatientTiles { dim: 2, x, cells }))
            })
            .collect();
        d.blocks.clear();
        d.spatial = Some(SpatialInput::new(2, 5, tiles));
        let res = train_cv(&d, &opts()).unwrap();
        let f = &res.folds[0];
        assert!(f.names.iter().any(|n| n == "spatial:frac0"), "{:?}", f.names);
        assert!(f.transforms.iter().any(|t| t.name == "phenotypes:spatial" && t.imputed_rows.unwrap() > 0));
        // the tumour-like share tracks the hazard: the out-of-fold risk ranks patients
        let t: Vec<f64> = res.oof.rows.iter().map(|p| p.time).collect();
        let e: Vec<bool> = res.oof.rows.iter().map(|p| p.event).collect();
        let k: Vec<f64> = res.oof.rows.iter().map(|p| p.risk).collect();
        let c = crate::survival::harrell(&t, &e, &k).unwrap().harrell;
        assert!(c > 0.6, "out-of-fold C {c}");
        // the same result from the same seed
        assert_eq!(train_cv(&d, &opts()).unwrap().oof, res.oof);
    }

    #[test]
    fn patient_split_across_folds_is_refused() {
        let d = data(3);
        let mut a = split(&d.patients, &d.event, &CvOptions { k: 5, repeats: 1, seed: 1 }).unwrap().remove(0);
        // plant a duplicate patient row landing in another fold (as a slide-level split would)
        let mut d2 = d.clone();
        d2.patients.push(d.patients[0].clone());
        d2.time.push(d.time[0]);
        d2.event.push(d.event[0]);
        if let Column::Numeric(v) = &mut d2.covariates[0].column {
            v.push(Some(0.0));
        }
        d2.blocks[0].rows.push(d.blocks[0].rows[0].clone());
        a.patients.push(d.patients[0].clone());
        a.fold.push((a.fold[0] + 1) % 5);
        let err = train_with_splits(&d2, &[a], &opts()).unwrap_err().to_string();
        assert!(err.contains("P000"), "{err}");
    }
}
