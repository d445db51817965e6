//! `train` with `model: mil` (cargo feature `torch`, the plugin built by `make build`) end to end
//! through the binary on a small generated cohort with half its Ki-67 slides left out: the
//! contracts a Cox arm writes plus attention and weights, every fusion, byte-identical outputs
//! whatever `--jobs` and thread count, and the errors a user meets (learning rate too high, a
//! stain without a slide in a fold's training patients).
#![cfg(feature = "torch")]
mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const COHORT: &str = "cohort: {clinical: demo/clinical.csv, slides: demo/slides.csv, time: dmfs_days, event: dm, causes: {1: metastasis, 2: death}, covariates: [age, nodes_positive]}";

fn generated(patients: &str, missing: &str) -> tempfile::TempDir {
    let d = project();
    let gen = ["demo", "generate", "--out", "demo", "--patients", patients, "--size", "1600", "--missing-ihc", missing];
    let o = spatia(d.path(), &gen);
    assert!(o.status.success(), "{}", text(&o));
    d
}

fn spec(d: &Path, model: &str, matrix: &str) {
    std::fs::write(
        d.join("s.yaml"),
        format!(
            "name: mil\nseed: 7\n{COHORT}\nstages:\n  ingest: {{kind: ingest}}\n  tiles: {{kind: tile, needs: [ingest], mpp: 0.5, size: 256}}\n  feats: {{kind: extract, needs: [tiles], encoder: handcrafted}}\n  model: {model}\n{matrix}"
        ),
    )
    .unwrap();
}

fn out_of(dir: &Path, arm: &str) -> PathBuf {
    let run = last_run(dir);
    let key = run["arms"][arm]["model"].as_str().unwrap_or_else(|| panic!("no arm {arm} in {run}")).to_string();
    dir.join("cache/entries").join(&key[..2]).join(&key).join("out")
}

/// Every file of a directory tree, by relative path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap().path();
            if e.is_dir() {
                stack.push(e);
            } else {
                out.insert(e.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&e).unwrap());
            }
        }
    }
    out
}

const MIL: &str = "{kind: train, needs: [feats], model: mil, fusion: concat, modalities: [HE, KI67, clinical], folds: 3, repeats: 1, mil: {epochs: 6, inner_folds: 2, hidden: 8, attention: 4}}";

#[test]
fn mil_arms_write_the_cox_contracts_attention_and_weights_deterministically() {
    let a = generated("24", "0.5");
    spec(a.path(), MIL, "matrix:\n  model.fusion: [concat, bilinear, late]\n");
    let o = spatia(a.path(), &["run", "s.yaml", "--jobs", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = out_of(a.path(), "fusion=concat");
    let log = std::fs::read_to_string(dir.parent().unwrap().join("log.txt")).unwrap();
    assert!(log.contains("modality KI67: 12 slides, 12 patient(s) without one"), "{log}");
    assert!(log.contains("1 CPU thread"), "{log}");

    // the Cox arms' contracts
    let oof = csv_rows(&dir.join("oof.csv"));
    assert_eq!(oof.len(), 24);
    assert!(oof.iter().all(|r| r["risk"].parse::<f64>().unwrap().is_finite()));
    assert!(!csv_rows(&dir.join("inner_oof.csv")).is_empty(), "inner out-of-fold predictions for recalibration");
    assert!(csv_rows(&dir.join("baseline.csv")).len() > 3);
    let model: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
    assert_eq!(model["model"], "mil");
    let folds = model["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 3);
    for f in folds {
        let m = &f["mil"];
        let e = m["epochs"].as_u64().unwrap();
        assert!((1..=6).contains(&e), "{m}");
        assert_eq!(m["inner_score"].as_array().unwrap().len(), 6, "{m}");
        assert_eq!(m["train_loss"].as_array().unwrap().len() as u64, e, "{m}");
        assert!(dir.join(m["weights"].as_str().unwrap()).is_file(), "{m}");
    }
    // centring: each fold's test risks are relative to its training patients' mean, so they
    // straddle 0 across the pooled folds
    let risks: Vec<f64> = oof.iter().map(|r| r["risk"].parse().unwrap()).collect();
    assert!(risks.iter().any(|&r| r < 0.0) && risks.iter().any(|&r| r > 0.0), "{risks:?}");

    // attention: every slide of every patient, weights of a patient's bag of a stain sum to 1
    let index = csv_rows(&dir.join("attention/index.csv"));
    assert_eq!(index.len(), 24 + 12, "24 H&E and 12 Ki-67 slides");
    let mut per_bag: BTreeMap<(String, String), f64> = BTreeMap::new();
    for s in &index {
        let rows = csv_rows(&dir.join("attention").join(&s["file"]));
        assert_eq!(rows.len().to_string(), s["tiles"], "{s:?}");
        *per_bag.entry((s["patient"].clone(), s["stain"].clone())).or_default() +=
            rows.iter().map(|r| r["attention"].parse::<f64>().unwrap()).sum::<f64>();
    }
    for (k, sum) in &per_bag {
        assert!((sum - 1.0).abs() < 1e-4, "{k:?}: attention sums to {sum}");
    }
    for arm in ["fusion=bilinear", "fusion=late"] {
        assert_eq!(csv_rows(&out_of(a.path(), arm).join("oof.csv")).len(), 24, "{arm}");
    }

    // the same bytes with two jobs and more threads asked for
    let b = generated("24", "0.5");
    spec(b.path(), MIL, "matrix:\n  model.fusion: [concat, bilinear, late]\n");
    let cmd = std::process::Command::new(bin())
        .current_dir(b.path())
        .args(["run", "s.yaml", "--jobs", "2"])
        .env("OMP_NUM_THREADS", "2")
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap();
    assert!(cmd.status.success(), "{}", text(&cmd));
    for arm in ["fusion=concat", "fusion=bilinear", "fusion=late"] {
        let (x, y) = (files(&out_of(a.path(), arm)), files(&out_of(b.path(), arm)));
        assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>(), "{arm}");
        for (k, v) in &x {
            assert!(v == &y[k], "{arm}: {k} differs between --jobs 1 and --jobs 2");
        }
    }
}

#[test]
fn mil_errors_name_the_fold_and_what_to_change() {
    let d = generated("12", "0");
    // a learning rate that makes the loss overflow
    let nan = "{kind: train, needs: [feats], model: mil, modalities: [HE, clinical], folds: 3, repeats: 1, mil: {epochs: 30, lr: 10, clip: 0, inner_folds: 2, hidden: 8, attention: 4, dropout: 0}}";
    spec(d.path(), nan, "");
    let o = spatia(d.path(), &["run", "s.yaml"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("repeat 0 fold") && t.contains("diverged") && t.contains("mil.lr"), "{t}");

    // a modality the spec names that no slide of the cohort has
    spec(d.path(), &MIL.replace("KI67", "ER"), "");
    let o = spatia(d.path(), &["run", "s.yaml"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("ER"), "{t}");

    // a modality MIL does not take
    spec(d.path(), &MIL.replace("KI67", "stain"), "");
    let o = spatia(d.path(), &["run", "s.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not available for `model: mil`"), "{}", text(&o));
}
