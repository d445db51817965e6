//! Survival statistics (issue 3): Kaplan–Meier, log-rank, Cox PH, concordance, time-dependent
//! AUC, Brier, calibration and bootstrap. Placeholder until that work lands.
pub mod cli;
