//! Records, for provenance, the git commit of the source and the versions of the main
//! libraries (from Cargo.lock) into environment variables read at compile time.
use std::process::Command;

const LIBS: &[&str] = &[
    "blake3",
    "serde_yaml_ng",
    "petgraph",
    "rayon",
    "statrs",
    "csv",
    "minijinja",
    "plotters",
    "tch",
    "torch-sys",
    "openslide-rs",
    "tiff",
    "image",
    "imageproc",
    "hdf5-metno",
    "linfa",
    "ndarray",
];

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    // the git directory of this checkout (`.git` is a file in a `git worktree`, and watching a
    // path that does not exist would rebuild the crate on every build)
    let git_dir = Command::new("git")
        .args(["rev-parse", "--absolute-git-dir"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(dir) = &git_dir {
        for f in ["HEAD", "index"] {
            if dir.join(f).exists() {
                println!("cargo:rerun-if-changed={}", dir.join(f).display());
            }
        }
    }
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let mut libs = Vec::new();
    let mut name: Option<String> = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let Some(v) = line.strip_prefix("version = ") {
            if let Some(n) = name.take() {
                if LIBS.contains(&n.as_str()) {
                    libs.push(format!("{n}={}", v.trim_matches('"')));
                }
            }
        }
    }
    println!("cargo:rustc-env=SPATIA_LIB_VERSIONS={}", libs.join(","));
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    // GIT_OPTIONAL_LOCKS=0: `git status` must not refresh .git/index, which would make this
    // script (and so the crate) rebuild on every build
    let dirty = Command::new("git")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    println!("cargo:rustc-env=SPATIA_GIT_COMMIT={commit}{}", if dirty { "-dirty" } else { "" });
    torch_rpath();
}

/// With the `torch` feature, embeds libtorch's library directory as an rpath of every binary
/// (torch-sys does not), so they run without LD_LIBRARY_PATH. The directory is `$LIBTORCH/lib`,
/// or, with `LIBTORCH_USE_PYTORCH=1`, that of the `torch` package of the `python3` on PATH.
fn torch_rpath() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    let root = match std::env::var("LIBTORCH") {
        Ok(p) if !p.is_empty() => Some(std::path::PathBuf::from(p)),
        _ if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() => Command::new("python3")
            .args(["-c", "import os, torch; print(os.path.dirname(torch.__file__))"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())),
        _ => None,
    };
    match root {
        Some(root) => {
            let lib = root.join("lib");
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        }
        None => println!(
            "cargo:warning=feature `torch` without LIBTORCH: binaries need LD_LIBRARY_PATH to find libtorch (run scripts/setup-torch.sh)"
        ),
    }
}
