//! Spatia: a declarative, reproducible-experiment orchestrator for AI spatial pathomics.
//!
//! A YAML experiment spec ([`spec`]) compiles into a content-hashed DAG of stages ([`dag`])
//! that the executor ([`exec`]) runs against a content-addressed cache ([`cache`]). Each stage
//! kind lives in one file under [`stages`]; the files stages exchange are typed in
//! [`contracts`]. The domain libraries — whole-slide images
//! ([`slide`]), survival statistics ([`survival`]), feature extraction ([`features`]),
//! cross-validated models ([`model`]), report plots and pages ([`report`]) and the demo cohort
//! ([`demo`]) — know nothing about the orchestrator.
pub mod audit;
pub mod bounds;
pub mod cache;
pub mod cli;
pub mod cohort;
pub mod contracts;
pub mod dag;
pub mod demo;
pub mod docpath;
pub mod exec;
pub mod features;
pub mod interrupt;
pub mod model;
pub mod provenance;
pub mod report;
pub mod slide;
pub mod spec;
pub mod stages;
pub mod survival;
pub mod util;
