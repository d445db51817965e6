//! The `spatia` binary: parse arguments, dispatch, print errors as `spatia: {:#}`.
use std::process::ExitCode;

// Spec compilation allocates many small values; mimalloc halves its cost over glibc malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of stdout goes away (`spatia dag | head`)
    // instead of panicking on the failed write.
    // SAFETY: called first thing in main, before any thread exists; restores the default action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    spatia::cli::main()
}
