//! Command-line interface: argument types and dispatch. Everything about flags lives here;
//! the work lives in the library modules. Exit codes: 0 ok, 1 a stage failed, 2 bad spec,
//! bad input or usage.
use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub mod core;
pub mod doctor;
pub mod explain;
pub mod export;
pub mod extract;
pub mod figure;
pub mod lineage;
pub mod reproduce;
pub mod slurm;

/// Spatia: declarative, reproducible experiments for AI spatial pathomics.
#[derive(Parser, Debug)]
#[command(name = "spatia", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run an experiment spec: every stage whose key is not cached
    Run(core::RunArgs),
    /// What would run and why (new key, changed input or parameter)
    Plan(core::PlanArgs),
    /// The DAG as a text tree (or Graphviz DOT) with keys and cached/stale state
    Dag(core::DagArgs),
    /// The record of a stage or key
    Show(core::ShowArgs),
    /// Where a run's time went, stage by stage (from its run record)
    Times(core::TimesArgs),
    /// Remove cache entries not reachable from given specs or run records
    Gc(core::GcArgs),
    /// Re-hash every cache entry against its record
    Verify(core::VerifyArgs),
    /// Recompute a run in a fresh scratch cache and compare every output bit for bit
    Reproduce(reproduce::ReproduceArgs),
    /// The chain behind a file, key or metric, back to the input files and their digests
    Lineage(lineage::LineageArgs),
    /// Why a stage would run: the exact components of its key that changed since the last run
    Explain(explain::ExplainArgs),
    /// A recorded run as a Workflow Run RO-Crate (`export ro-crate RUN --out DIR`)
    Export(export::ExportArgs),
    /// List the stage kinds
    Kinds,
    /// blake3 of files (b3sum format), optionally through the stat cache
    Hash(core::HashArgs),
    /// Survival statistics on any CSV (KM, log-rank, Cox, concordance, AUC, Brier, calibration)
    Survival(crate::survival::cli::SurvivalArgs),
    /// Whole-slide images: metadata and tiling
    Slide(crate::slide::cli::SlideArgs),
    /// Colour deconvolution of an image
    Stain(crate::slide::cli::StainArgs),
    /// Extract one slide's feature bag (CLAM/TRIDENT HDF5) with a built-in or TorchScript encoder
    Extract(extract::ExtractArgs),
    /// One figure of a run or report at a journal's width, as SVG, PNG or PDF
    Figure(figure::FigureArgs),
    /// The generated demo cohort
    Demo(crate::demo::cli::DemoArgs),
    /// What this installation can run: libtorch plugin, torch version, CUDA device, cuDNN
    Doctor(doctor::DoctorArgs),
    /// (internal) trains a `model: mil` arm: the job as JSON on stdin (see stages::train_mil)
    #[command(name = "__train-mil", hide = true)]
    TrainMil,
    /// (internal) computes one node of a Slurm array's manifest into the shared cache
    #[command(name = "exec-node", hide = true)]
    ExecNode(slurm::ExecNodeArgs),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let result = match &cli.command {
        Command::Run(a) => core::run(a),
        Command::Plan(a) => core::plan(a),
        Command::Dag(a) => core::dag_cmd(a),
        Command::Show(a) => core::show(a),
        Command::Times(a) => core::times(a),
        Command::Gc(a) => core::gc(a),
        Command::Verify(a) => core::verify(a),
        Command::Reproduce(a) => reproduce::run(a),
        Command::Lineage(a) => lineage::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Export(a) => export::run(a),
        Command::Kinds => core::kinds(),
        Command::Hash(a) => core::hash(a),
        Command::Extract(a) => extract::run(a),
        Command::Survival(a) => crate::survival::cli::run(a).map(|_| 0),
        Command::Slide(a) => crate::slide::cli::run_slide(a).map(|_| 0),
        Command::Stain(a) => crate::slide::cli::run_stain(a).map(|_| 0),
        Command::Figure(a) => figure::run(a),
        Command::Demo(a) => crate::demo::cli::run(a).map(|_| 0),
        Command::Doctor(a) => doctor::run(a),
        Command::TrainMil => crate::stages::train_mil::child_main(),
        Command::ExecNode(a) => slurm::exec_node(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // an id quoted anywhere in the chain shows its bidi controls as `<U+202E>`
            eprintln!("spatia: {}", crate::util::display_text(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}
