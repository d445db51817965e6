//! `spatia demo generate` as a user runs it: JSON summary, exit codes and error messages.
use std::process::Command;

fn spatia() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spatia"))
}

#[test]
fn generate_prints_a_json_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = spatia()
        .args(["demo", "generate", "--patients", "2", "--size", "1024", "--stains", "HE,Ki-67"])
        .args(["--seed", "3", "--threads", "1", "--json", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["patients"], 2);
    assert_eq!(v["slides"], 4);
    assert!(v["wall_s"].as_f64().unwrap() > 0.0);
    assert!(dir.path().join("slides/P002_KI67.tif").is_file());
    let manifest = std::fs::read_to_string(dir.path().join("slides.csv")).unwrap();
    assert!(manifest.contains("P002,slides/P002_KI67.tif,KI67"), "{manifest}");
}

#[test]
fn bad_flags_exit_2_with_a_named_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = spatia().args(["demo", "generate", "--size", "100", "--out"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spatia: invalid demo parameter --size: expected 1024 to 100000 px, found 100"), "{err}");
    let out = spatia().args(["demo", "generate", "--stains", "HE,CD8", "--out"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown stain \"CD8\" (expected one of HE, ER, PR, HER2, KI67)"), "{err}");
}
