//! Cross-validated Cox arms: out-of-fold risk per patient and per-fold predicted survival.
//!
//! For each repeat and fold of a patient-level split ([`crate::model::cv`]): a
//! [`Standardizer`] is fitted on the training patients only, the leakage guard
//! ([`crate::model::leakage`]) checks the split and the standardiser, a Cox model with the
//! given L2 penalty ([`crate::survival::fit_cox`], Efron ties) is fitted on the training
//! patients, and the test patients get their linear predictor (the out-of-fold risk) and
//! their predicted survival `S(t | x) = exp(−H₀(t) e^{xᵀβ})` at the requested times from the
//! fold's Breslow baseline.
//!
//! # Assumptions
//! One row per patient (patient-level covariates, e.g. clinical ones or mean-pooled slide
//! features). The penalty is given; choosing it by inner CV is left to the caller.
//!
//! # Errors
//! Mismatched lengths, duplicate patients, split errors, a covariate unfittable on a training
//! fold, a Cox fit failure (with repeat and fold named), leakage.
use super::cv::{split, CvOptions};
use super::design::{Covariate, MissingPolicy, Standardizer};
use super::error::{ModelError, Result};
use super::leakage::{check_leakage, TransformRecord};
use crate::survival::{fit_cox, CoxOptions};

/// Options of [`cox_cv`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CoxCvOptions {
    /// Folds, repeats, seed.
    pub cv: CvOptions,
    /// L2 penalty (lifelines' convention, see [`crate::survival::cox`]).
    pub l2_penalty: f64,
    /// Times at which to predict survival of the test patients.
    pub times: Vec<f64>,
    /// Missing-value policy of the design matrix.
    pub missing: MissingPolicy,
}

impl Default for CoxCvOptions {
    fn default() -> Self {
        Self {
            cv: CvOptions::default(),
            l2_penalty: 0.0,
            times: Vec::new(),
            missing: MissingPolicy::Impute,
        }
    }
}

/// One out-of-fold prediction (one per patient per repeat).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OofRow {
    /// Repeat index.
    pub repeat: usize,
    /// Patient id.
    pub patient: String,
    /// Fold the patient was tested in.
    pub fold: usize,
    /// Linear predictor of the fold's model (standardised covariates).
    pub risk: f64,
    /// Follow-up time.
    pub time: f64,
    /// Event indicator.
    pub event: bool,
}

/// One fold's fitted model and its predictions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FoldModel {
    /// Repeat index.
    pub repeat: usize,
    /// Fold index.
    pub fold: usize,
    /// Design column names.
    pub names: Vec<String>,
    /// Coefficients on the standardised design.
    pub beta: Vec<f64>,
    /// Number of training patients.
    pub n_train: usize,
    /// Number of training events.
    pub n_train_events: usize,
    /// Times of `survival`.
    pub times: Vec<f64>,
    /// `(patient, S(t) at each time)` for each test patient.
    pub survival: Vec<(String, Vec<f64>)>,
}

/// Result of [`cox_cv`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CoxCvResult {
    /// Out-of-fold rows, by repeat then input order.
    pub oof: Vec<OofRow>,
    /// Fold models, by repeat then fold.
    pub folds: Vec<FoldModel>,
}

/// Runs cross-validated Cox on one row per patient.
pub fn cox_cv(
    patients: &[String],
    time: &[f64],
    event: &[bool],
    covariates: &[Covariate],
    options: &CoxCvOptions,
) -> Result<CoxCvResult> {
    let n = patients.len();
    for (what, len) in [
        ("times (one per patient)", time.len()),
        ("events (one per patient)", event.len()),
    ] {
        if len != n {
            return Err(ModelError::LengthMismatch {
                what: what.into(),
                expected: n,
                found: len,
            });
        }
    }
    let splits = split(patients, event, &options.cv)?;
    let cox_opts = CoxOptions {
        l2_penalty: options.l2_penalty,
        concordance: false,
        ..Default::default()
    };
    let mut oof_by_repeat = Vec::new();
    let mut folds = Vec::new();
    for a in &splits {
        let row_folds = a.fold.clone();
        let mut risk = vec![f64::NAN; n];
        let mut fold_of = vec![0usize; n];
        for f in 0..a.k {
            let train: Vec<usize> = (0..n).filter(|&r| row_folds[r] != f).collect();
            let test: Vec<usize> = (0..n).filter(|&r| row_folds[r] == f).collect();
            let st = Standardizer::fit(covariates, &train, options.missing)?;
            check_leakage(
                patients,
                &row_folds,
                &[TransformRecord {
                    name: "standardizer".into(),
                    test_fold: f,
                    fitted_rows: st.fitted_rows.clone(),
                }],
            )?;
            let dtr = st.transform(covariates, &train)?;
            let dte = st.transform(covariates, &test)?;
            let context = format!("repeat {} fold {f}", a.repeat);
            let t_tr: Vec<f64> = train.iter().map(|&r| time[r]).collect();
            let e_tr: Vec<bool> = train.iter().map(|&r| event[r]).collect();
            let fit = fit_cox(&t_tr, &e_tr, &dtr.x, &dtr.names, &cox_opts).map_err(|source| {
                ModelError::Survival {
                    context: context.clone(),
                    source,
                }
            })?;
            let lp = fit
                .linear_predictor(&dte.x)
                .map_err(|source| ModelError::Survival {
                    context: context.clone(),
                    source,
                })?;
            let surv = fit
                .predict_survival(&dte.x, &options.times)
                .map_err(|source| ModelError::Survival { context, source })?;
            for (k, &r) in test.iter().enumerate() {
                risk[r] = lp[k];
                fold_of[r] = f;
            }
            folds.push(FoldModel {
                repeat: a.repeat,
                fold: f,
                names: dtr.names.clone(),
                beta: fit.beta(),
                n_train: train.len(),
                n_train_events: e_tr.iter().filter(|&&e| e).count(),
                times: options.times.clone(),
                survival: test
                    .iter()
                    .map(|&r| patients[r].clone())
                    .zip(surv)
                    .collect(),
            });
        }
        for r in 0..n {
            oof_by_repeat.push(OofRow {
                repeat: a.repeat,
                patient: patients[r].clone(),
                fold: fold_of[r],
                risk: risk[r],
                time: time[r],
                event: event[r],
            });
        }
    }
    Ok(CoxCvResult {
        oof: oof_by_repeat,
        folds,
    })
}
