//! Contracts: the files one stage writes and another stage (or the report) reads, each as one
//! Rust type shared by its producer and every consumer, with its format, validation and errors
//! ([`ContractError`]: the file, and for a CSV the data row and column) in one place.
//!
//! Contracts know nothing about the orchestrator: no stage, spec or DAG type appears here.
pub mod error;
pub mod extract;
pub mod ingest;
pub mod stain;
pub mod tiles;

pub use error::{ContractError, Result};
