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

#[test]
fn missing_ihc_is_the_same_whatever_the_thread_count() {
    let run = |threads: &str| {
        let dir = tempfile::tempdir().unwrap();
        let out = spatia()
            .args(["demo", "generate", "--patients", "4", "--size", "1024", "--stains", "HE,KI67", "--seed", "3"])
            .args(["--missing-ihc", "0.5", "--threads", threads, "--json", "--out"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!((v["slides"].as_u64(), v["slides_left_out"].as_u64()), (Some(6), Some(2)));
        let mut files = std::collections::BTreeMap::new();
        for sub in ["", "slides"] {
            for e in std::fs::read_dir(dir.path().join(sub)).unwrap() {
                let p = e.unwrap().path();
                if p.is_file() {
                    files.insert(p.strip_prefix(dir.path()).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
                }
            }
        }
        files
    };
    let (one, two) = (run("1"), run("2"));
    assert_eq!(one.len(), 3 + 6);
    assert_eq!(one.keys().collect::<Vec<_>>(), two.keys().collect::<Vec<_>>());
    for (k, v) in &one {
        assert!(v == &two[k], "{} differs between 1 and 2 threads", k.display());
    }
}

#[test]
fn missing_ihc_out_of_range_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["1", "-0.2", "NaN", "half"] {
        let out = spatia().args(["demo", "generate", "--missing-ihc", bad, "--out"]).arg(dir.path()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("invalid value '{bad}' for '--missing-ihc <FRACTION>'"))
                && err.contains("expected a number ≥ 0 and < 1 (fraction of the IHC slides left out)"),
            "{err}"
        );
    }
    assert!(!dir.path().join("slides.csv").exists());
}
