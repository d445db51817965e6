//! The `spatia` binary: parse arguments, dispatch, print errors as `spatia: {:#}`.
use std::process::ExitCode;

fn main() -> ExitCode {
    spatia::cli::main()
}
