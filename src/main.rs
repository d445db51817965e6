//! The `spatia` binary: parse arguments, dispatch, print errors as `spatia: {:#}`.
use std::process::ExitCode;

// Spec compilation allocates many small values; mimalloc halves its cost over glibc malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    spatia::cli::main()
}
