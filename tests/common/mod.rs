//! Shared test helpers: run the built `spatia` binary in a project directory.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_spatia")
}

pub fn shared() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared"))
}

/// A fresh project directory with a `spatia.toml` marker that declares the shared test data
/// (`../shared/data`) as a data root, so specs and manifests may name files there.
pub fn project() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    let data = shared().join("data");
    let data = data.canonicalize().unwrap_or(data);
    std::fs::write(d.path().join("spatia.toml"), format!("data_roots = [{:?}]\n", data.display().to_string())).unwrap();
    d
}

pub fn spatia(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin()).args(args).current_dir(dir).output().expect("spawn spatia")
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The last line of `--json` output (the summary event).
pub fn summary(o: &Output) -> serde_json::Value {
    let s = String::from_utf8_lossy(&o.stdout);
    let last = s.lines().last().unwrap_or_else(|| panic!("no output: {}", text(o)));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {last}"))
}

/// The most recent run record of a project.
pub fn last_run(dir: &Path) -> serde_json::Value {
    let mut runs: Vec<_> = std::fs::read_dir(dir.join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    runs.sort();
    let p = runs.last().unwrap().join("run.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A CSV file as rows of column → value.
pub fn csv_rows(p: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let h = r.headers().unwrap().clone();
    r.records()
        .map(|x| h.iter().zip(x.unwrap().iter()).map(|(a, b)| (a.to_string(), b.to_string())).collect())
        .collect()
}
