//! Model building blocks for the `train` stage: patient-level cross-validation
//! ([`cv`]), the training-fold design matrix ([`design`]), the leakage guard ([`leakage`]),
//! training-fold PCA ([`pca`]), cross-validated Cox arms ([`cox_cv`]) and the calibration of
//! out-of-fold predictions with inner-fold recalibration ([`calibrate`](mod@calibrate)).
//!
//! Everything here is a plain library over slices; it knows nothing about the orchestrator.
//! All randomness comes from a ChaCha generator seeded by the caller, and nothing runs in
//! parallel, so results depend on the seed only (never on the thread count).
pub mod calibrate;
pub mod cox_cv;
pub mod cv;
pub mod design;
pub mod error;
pub mod evaluation;
pub mod leakage;
pub mod pca;
pub mod train;

pub use cox_cv::{cox_cv, CoxCvOptions, CoxCvResult, FoldModel, OofRow};
pub use cv::{patient_events, split, CvOptions, FoldAssignment};
pub use design::{covariates_from_table, Column, Covariate, DesignMatrix, MissingPolicy, Standardizer};
pub use error::{ModelError, Result};
pub use leakage::{check_leakage, TransformRecord};
pub use pca::Pca;
pub use train::{train_cv, Block, Penalty, TrainData, TrainOptions, TrainResult};
