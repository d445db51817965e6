//! Survival statistics: the numbers every Spatia result is made of.
//!
//! One file per estimator or metric, each a set of plain functions over slices (`&[f64]` times,
//! `&[bool]` events — [`data::events_from_u8`] converts 0/1 codes —, `&[f64]` risk scores, a
//! row-major `n × p` covariate matrix) returning a named, `serde::Serialize` result struct:
//!
//! | file | what | key type |
//! |---|---|---|
//! | [`data`] | validated data, CSV columns with row/column errors | [`SurvivalData`], [`CsvTable`] |
//! | [`kaplan_meier`] | Kaplan–Meier, Greenwood, log(−log) CI, Nelson–Aalen, censoring KM | [`KaplanMeier`] |
//! | [`logrank`](mod@logrank) | log-rank test, K groups | [`LogRank`] |
//! | [`cox`] | Cox PH (Efron/Breslow, L2), baseline, predicted survival | [`CoxFit`] |
//! | [`concordance`] | Harrell's C (O(n log n)), Uno's C | [`Concordance`] |
//! | [`auc`] | cumulative/dynamic AUC with ROC curves | [`CumulativeDynamicAuc`] |
//! | [`brier`] | IPCW Brier score, integrated Brier score | [`BrierScore`] |
//! | [`calibration`](mod@calibration) | bins vs KM, slope, intercept, ICI/E50/E90 | [`Calibration`] |
//! | [`competing`] | competing-risks data (0 = censored, 1, 2, … = causes) | [`CompetingRisksData`] |
//! | [`cif`] | Aalen–Johansen cumulative incidence, cmprsk variance, log(−log) CI | [`CumulativeIncidence`] |
//! | [`gray`](mod@gray) | Gray's K-sample test of cumulative incidence | [`GrayTest`] |
//! | [`finegray`] | Fine–Gray subdistribution-hazard regression, robust SE, predicted CIF | [`FineGrayFit`] |
//! | [`cause_specific`] | cause-specific Cox (other causes censored), absolute risk | [`fit_cause_specific_cox`] |
//! | [`competing_auc`] | time-dependent AUC with competing risks (Blanche 2013, def. 2) | [`competing_auc`] |
//! | [`competing_brier`] | IPCW Brier score of a predicted cumulative incidence | [`competing_brier`] |
//! | [`bootstrap`](mod@bootstrap) | seeded parallel percentile CIs, paired C difference | [`BootstrapCi`] |
//! | [`cli`] | `spatia survival VERB …` | [`cli::SurvivalArgs`] |
//!
//! Conventions (shared with `../shared/reference/README.md`): risk scores are *higher = earlier
//! event*; all step functions are right-continuous; the censoring distribution `G` is the
//! Kaplan–Meier of censoring times with events leaving the risk set first at tied times.
//!
//! This module knows nothing about the orchestrator: no files except in [`data::CsvTable`] and
//! [`cli`], no global state, deterministic output for given inputs (and seed).
pub mod auc;
pub mod bootstrap;
pub mod brier;
pub mod calibration;
pub mod cause_specific;
pub mod cif;
pub mod cli;
pub mod competing;
pub mod competing_auc;
pub mod competing_brier;
pub mod concordance;
pub mod cox;
pub mod data;
pub mod error;
pub mod finegray;
pub mod gray;
pub mod kaplan_meier;
mod linalg;
pub mod logrank;
mod sort;

pub use auc::{cumulative_dynamic_auc, cumulative_dynamic_auc_per_time, AucAtTime, CumulativeDynamicAuc, RocPoint};
pub use bootstrap::{
    bootstrap, bootstrap_harrell, paired_concordance_difference, resample_indices, BootstrapCi, BootstrapOptions,
    PairedDifference,
};
pub use brier::{brier_score, brier_score_rows, BrierScore};
pub use calibration::{calibration, Calibration, CalibrationBin, CalibrationPoint};
pub use cause_specific::{
    cause_specific_cif, fit_all_cause_specific_cox, fit_cause_specific_cox, CauseHazard, SurvivalForm,
};
pub use cif::{CifEstimate, CifStep, CumulativeIncidence};
pub use competing::CompetingRisksData;
pub use competing_auc::{competing_auc, CompetingAucAtTime};
pub use competing_brier::competing_brier;
pub use concordance::{harrell, harrell_and_uno, uno, Concordance};
pub use cox::{
    fit_cox, fit_cox_rows, CoxCoefficient, CoxFit, CoxOptions, FitWarning, LikelihoodRatioTest, Ties, WarningCode,
};
pub use data::{CsvTable, SurvivalData};
pub use error::{Result, SurvivalError};
pub use finegray::{fit_fine_gray, FineGrayCoefficient, FineGrayFit, FineGrayOptions};
pub use gray::{gray_test, GrayTest};
pub use kaplan_meier::{CensoringKm, KaplanMeier, KmCurvePoint, KmEstimate, KmStep};
pub use logrank::{logrank, LogRank, LogRankGroup};
