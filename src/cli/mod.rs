//! Command-line interface: argument types and dispatch. Everything about flags lives here;
//! the work lives in the library modules. Exit codes: 0 ok, 1 a stage failed, 2 bad spec,
//! bad input or usage.
use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
    /// Survival statistics on any CSV (KM, log-rank, Cox, concordance, AUC, Brier, calibration)
    Survival(crate::survival::cli::SurvivalArgs),
    /// Whole-slide images: metadata and tiling
    Slide(crate::slide::cli::SlideArgs),
    /// Colour deconvolution of an image
    Stain(crate::slide::cli::StainArgs),
    /// The generated demo cohort
    Demo(crate::demo::cli::DemoArgs),
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
        Command::Survival(a) => crate::survival::cli::run(a).map(|_| 0),
        Command::Slide(a) => crate::slide::cli::run_slide(a).map(|_| 0),
        Command::Stain(a) => crate::slide::cli::run_stain(a).map(|_| 0),
        Command::Demo(a) => crate::demo::cli::run(a).map(|_| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("spatia: {e:#}");
            ExitCode::from(2)
        }
    }
}
