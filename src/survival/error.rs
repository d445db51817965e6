//! The one error type of [`crate::survival`]: every estimator, metric, the CSV loader and the
//! command line return [`SurvivalError`]. Messages say what was expected and what was found and
//! name the observation, covariate, file, row or column concerned.
//!
//! Row convention: library functions work on slices and name an observation by its **0-based
//! index**; the CSV loader names a **1-based data row** (the header is not counted, so data row 1
//! is line 2 of the file) and gives the file line as well.

/// Errors of the survival module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SurvivalError {
    /// Two inputs that must describe the same observations have different lengths.
    #[error("{what}: expected {expected} values (one per observation), found {found}")]
    LengthMismatch {
        /// Which input.
        what: String,
        /// Expected length.
        expected: usize,
        /// Actual length.
        found: usize,
    },
    /// No observations at all.
    #[error("{what}: expected at least one observation, found none")]
    Empty {
        /// What was empty.
        what: String,
    },
    /// A time that is negative, NaN or infinite.
    #[error("time of observation {index} (0-based) is {value}: expected a finite number >= 0")]
    InvalidTime {
        /// 0-based observation index.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// A non-finite value in an input that must be finite (risk score, covariate, prediction).
    #[error("{what} of observation {index} (0-based) is {value}: expected {expected}")]
    InvalidValue {
        /// Which input (e.g. `risk score`, `covariate 'age'`).
        what: String,
        /// 0-based observation index.
        index: usize,
        /// The offending value.
        value: f64,
        /// What was expected.
        expected: String,
    },
    /// Every observation is censored, so the statistic is undefined.
    #[error("all {n} observations are censored: expected at least one event")]
    AllCensored {
        /// Number of observations.
        n: usize,
    },
    /// No comparable pair exists (concordance undefined).
    #[error("no comparable pairs: expected at least one event followed by a longer follow-up{detail}")]
    NoComparablePairs {
        /// Extra context (e.g. the truncation time).
        detail: String,
    },
    /// Fewer than two groups in a comparison of groups.
    #[error("log-rank test needs at least two groups, found {found}{detail}")]
    TooFewGroups {
        /// Number of distinct groups.
        found: usize,
        /// The single group's label, if any.
        detail: String,
    },
    /// A covariate that takes one value only.
    #[error("covariate '{name}' is constant (every value is {value}): expected it to vary; drop it")]
    ConstantCovariate {
        /// Covariate name.
        name: String,
        /// Its only value.
        value: f64,
    },
    /// A covariate that is a linear combination of others.
    #[error("covariate '{name}' is collinear with {with}: expected linearly independent covariates; drop one of them")]
    CollinearCovariate {
        /// Covariate name.
        name: String,
        /// The covariates that explain it, quoted and comma separated.
        with: String,
    },
    /// An iterative fit that did not converge.
    #[error("Cox fit did not converge after {iterations} Newton-Raphson iterations (largest remaining step {step:e}, on covariate '{covariate}'): expected convergence; check for separation or extreme values, or add an L2 penalty")]
    NotConverged {
        /// Iterations done.
        iterations: usize,
        /// Largest remaining step.
        step: f64,
        /// Covariate with the largest step.
        covariate: String,
    },
    /// An iterative fit other than Cox (e.g. Fine–Gray) that did not converge.
    #[error("{model} fit did not converge after {iterations} Newton-Raphson iterations (largest remaining step {step:e}, on covariate '{covariate}'): expected convergence; check for separation or extreme values")]
    FitNotConverged {
        /// Which model.
        model: String,
        /// Iterations done.
        iterations: usize,
        /// Largest remaining step.
        step: f64,
        /// Covariate with the largest step.
        covariate: String,
    },
    /// A matrix that should be invertible is not.
    #[error("{what} is singular: expected an invertible matrix{detail}")]
    Singular {
        /// Which matrix.
        what: String,
        /// Extra context.
        detail: String,
    },
    /// A parameter outside its allowed range.
    #[error("{name} should be {expected}, found {found}")]
    InvalidParameter {
        /// Parameter name.
        name: String,
        /// What is allowed.
        expected: String,
        /// What was given.
        found: String,
    },
    /// An evaluation time outside the follow-up range (time-dependent AUC / Brier).
    #[error("{what} time {time} is outside the follow-up range: expected {min} <= t < {max}")]
    TimeOutOfRange {
        /// Which metric.
        what: String,
        /// The requested time.
        time: f64,
        /// Smallest observed time.
        min: f64,
        /// Largest observed time.
        max: f64,
    },
    /// The censoring survival function is zero where an inverse weight is needed.
    #[error("censoring survival G(t) is 0 at time {time}: expected G > 0 for inverse-probability-of-censoring weights (every subject still at risk is censored there); use a smaller horizon or tau")]
    CensoringSurvivalZero {
        /// The time at which G is zero.
        time: f64,
    },
    /// A problem with a CSV input, located by file, data row and column.
    #[error("{file}{location}: {message}")]
    Csv {
        /// The file.
        file: String,
        /// `, data row R (line L), column 'C'` or a subset of it.
        location: String,
        /// What was expected and found.
        message: String,
    },
}

/// Result alias of the survival module.
pub type Result<T> = std::result::Result<T, SurvivalError>;
