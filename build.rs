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
}
