//! Records, for provenance, the git commit of the source and the versions of the main
//! libraries (from Cargo.lock) into environment variables read at compile time.
use std::process::Command;

const LIBS: &[&str] = &[
    "blake3", "serde_yaml_ng", "petgraph", "rayon", "statrs", "csv", "minijinja", "plotters", "tch", "torch-sys",
    "openslide-rs", "tiff", "image", "imageproc", "hdf5-metno", "linfa", "ndarray",
];

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
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
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    println!("cargo:rustc-env=SPATIA_GIT_COMMIT={commit}{}", if dirty { "-dirty" } else { "" });
}
