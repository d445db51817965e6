//! The generated demo cohort (issue 4): seeded synthetic pyramidal TIFF slides and a clinical
//! table with signal in both. Placeholder until that work lands.
pub mod cli;
