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
    // A write past `ulimit -f` would kill the process with SIGXFSZ and no message; ignored, the
    // write fails with EFBIG ("File too large") and the error names the file like any other.
    // SAFETY: as above, before any thread exists; SIG_IGN is a valid disposition.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    spatia::cli::main()
}
