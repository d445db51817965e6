//! Model building blocks for the `train`, `evaluate` and `calibrate` stages: patient-level
//! cross-validation ([`cv`]), the training-fold design matrix ([`design`]), the leakage guard
//! ([`leakage`]), training-fold PCA ([`pca`]), cross-validated Cox training of one arm
//! ([`train`](mod@train)), the evaluation of out-of-fold predictions ([`evaluation`]) and their
//! calibration with inner-fold recalibration ([`calibrate`](mod@calibrate)), and in a
//! competing-risks cohort the models of the other causes and the predicted cumulative incidence
//! ([`competing`]); with the `torch` feature, the cross-validated attention-MIL networks
//! (`mil`, fitted through the libtorch plugin). What these read and
//! produce for other stages are the types of [`crate::contracts`].
//!
//! Everything here is a plain library over slices; it knows nothing about the orchestrator.
//! All randomness comes from a ChaCha generator seeded by the caller; the only parallel loops
//! (bootstrap replicates, [`refit`]) keep their results in replicate order, so results depend on
//! the seed only (never on the thread count).
pub mod calibrate;
pub mod competing;
pub mod competing_calibration;
pub mod competing_evaluation;
pub mod cv;
pub mod design;
pub mod error;
pub mod evaluation;
pub mod leakage;
#[cfg(feature = "torch")]
pub mod mil;
pub mod pca;
pub mod phenotype;
pub mod refit;
pub mod split_intervals;
pub mod train;

pub use cv::{patient_events, split, CvOptions, FoldAssignment};
pub use design::{covariates_from_table, Column, Covariate, DesignMatrix, MissingPolicy, Standardizer};
pub use error::{ModelError, Result};
pub use leakage::{check_leakage, TransformRecord};
pub use pca::Pca;
pub use train::{train_cv, Block, Penalty, TrainData, TrainOptions, TrainResult};
