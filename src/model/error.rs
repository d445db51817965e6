//! The one error type of [`crate::model`].
use thiserror::Error;

/// Result alias of the model module.
pub type Result<T> = std::result::Result<T, ModelError>;

/// Everything that can go wrong building folds, design matrices or cross-validated models.
#[derive(Debug, Error)]
pub enum ModelError {
    /// Two inputs describing the same rows have different lengths.
    #[error("{what}: expected {expected} values, found {found}")]
    LengthMismatch {
        /// Which input.
        what: String,
        /// Expected length.
        expected: usize,
        /// Actual length.
        found: usize,
    },
    /// A parameter outside its domain.
    #[error("{name}: expected {expected}, found {found}")]
    InvalidParameter {
        /// Parameter name.
        name: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// A patient listed twice in the per-patient table of a split.
    #[error(
        "patient '{patient}' listed at positions {first} and {second}: expected each patient once in the split table"
    )]
    DuplicatePatient {
        /// Patient id.
        patient: String,
        /// First 0-based position.
        first: usize,
        /// Second 0-based position.
        second: usize,
    },
    /// Rows of one patient disagree on the event indicator.
    #[error("patient '{patient}': rows {first} and {second} have different event indicators: expected one outcome per patient")]
    InconsistentOutcome {
        /// Patient id.
        patient: String,
        /// First 0-based row.
        first: usize,
        /// Conflicting 0-based row.
        second: usize,
    },
    /// A patient with no fold.
    #[error("patient '{patient}' (row {row}) has no fold: expected every row's patient in the split")]
    UnknownPatient {
        /// Patient id.
        patient: String,
        /// 0-based row.
        row: usize,
    },
    /// A missing value where the policy forbids one.
    #[error("covariate '{covariate}' is missing at row {row}: expected a value (missing policy is 'error')")]
    Missing {
        /// Covariate name.
        covariate: String,
        /// 0-based row.
        row: usize,
    },
    /// A covariate that cannot be fitted on the training rows.
    #[error("covariate '{covariate}' on the training rows: expected {expected}, found {found}")]
    Unfittable {
        /// Covariate name.
        covariate: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// A CSV problem (file, row, column named).
    #[error("{path}: row {row}, column '{column}': expected {expected}, found '{found}'")]
    Csv {
        /// File.
        path: String,
        /// 1-based data row (0 = header).
        row: usize,
        /// Column name.
        column: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// I/O or CSV reader failure.
    #[error("{path}: {message}")]
    Io {
        /// File.
        path: String,
        /// Underlying message.
        message: String,
    },
    /// A patient appears in more than one fold (leakage).
    #[error("leakage: patient '{patient}' is in fold {fold_a} (row {row_a}) and fold {fold_b} (row {row_b}): expected every row of a patient in one fold")]
    PatientInTwoFolds {
        /// Patient id.
        patient: String,
        /// First fold.
        fold_a: usize,
        /// Row of the first fold.
        row_a: usize,
        /// Second fold.
        fold_b: usize,
        /// Row of the second fold.
        row_b: usize,
    },
    /// A fitted transform saw rows of its own test fold (leakage).
    #[error("leakage: transform '{transform}' for test fold {fold} was fitted on {count} row(s) of that test fold (first: row {row}, patient '{patient}'): expected training-fold rows only")]
    TransformSawTestFold {
        /// Transform name.
        transform: String,
        /// Its test fold.
        fold: usize,
        /// Number of test rows it saw.
        count: usize,
        /// First offending row.
        row: usize,
        /// Patient of that row.
        patient: String,
    },
    /// A row index out of range.
    #[error("{what}: row {row} out of range: expected < {n}")]
    RowOutOfRange {
        /// What referenced it.
        what: String,
        /// The index.
        row: usize,
        /// Number of rows.
        n: usize,
    },
    /// A network fit failed (attention-MIL, through the libtorch plugin), with where.
    #[error("{context}: {message}")]
    Network {
        /// Where (e.g. `repeat 0 fold 3, inner fold 1`).
        context: String,
        /// What went wrong.
        message: String,
    },
    /// A survival statistics error (Cox fit, concordance), with the fold it happened in.
    #[error("{context}: {source}")]
    Survival {
        /// Where (e.g. `repeat 0 fold 3`).
        context: String,
        /// Underlying error.
        #[source]
        source: crate::survival::SurvivalError,
    },
}
