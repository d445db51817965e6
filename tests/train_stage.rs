//! The `train` kind on real data (GSE7390): patient-level folds, output contract, determinism
//! across thread counts, and parameter errors that point into the spec.
mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn gse_project(modalities: &str, extra: &str) -> tempfile::TempDir {
    let d = project();
    std::fs::copy(shared().join("data/clinical/breast_cancer_gse7390.csv"), d.path().join("gse.csv")).unwrap();
    let spec = format!(
        "name: t\nseed: 11\ncohort:\n  clinical: gse.csv\n  id: \"@row\"\n  time: time\n  event: event\n  covariates: [age, er, grade, size]\n  missing: drop\nstages:\n  model:\n    kind: train\n    modalities: {modalities}\n    blocks:\n      genes: {{prefix: X}}\n    folds: 4\n    inner_folds: 3\n    penalties: [0.01, 0.1, 1.0]\n{extra}"
    );
    std::fs::write(d.path().join("s.yaml"), spec).unwrap();
    d
}

fn out_dirs(dir: &Path) -> BTreeMap<String, PathBuf> {
    let run = last_run(dir);
    run["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["stage"] == "model")
        .map(|n| {
            let k = n["key"].as_str().unwrap();
            (n["arms"][0].as_str().unwrap().to_string(), dir.join("cache/entries").join(&k[..2]).join(k).join("out"))
        })
        .collect()
}

#[test]
fn gse7390_arms_follow_the_contract() {
    let d = gse_project("[clinical]", "matrix:\n  model.modalities: [[clinical], [clinical, genes]]\n");
    let o = spatia(d.path(), &["run", "s.yaml", "--quiet"]);
    assert!(o.status.success(), "{}", text(&o));
    let dirs = out_dirs(d.path());
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    let mut patients_by_arm = Vec::new();
    for (arm, dir) in &dirs {
        let oof = csv_rows(&dir.join("oof.csv"));
        // 198 rows, 2 without grade dropped
        assert_eq!(oof.len(), 196, "{arm}");
        let ids: BTreeSet<&str> = oof.iter().map(|r| r["patient"].as_str()).collect();
        assert_eq!(ids.len(), 196);
        patients_by_arm.push(ids.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        // stratified: events per fold differ by at most one
        let mut ev = [0usize; 4];
        for r in &oof {
            ev[r["fold"].parse::<usize>().unwrap()] += (r["event"] == "1") as usize;
        }
        assert!(ev.iter().max().unwrap() - ev.iter().min().unwrap() <= 1, "{ev:?}");
        // out-of-fold risk carries signal on real data
        let t: Vec<f64> = oof.iter().map(|r| r["time"].parse().unwrap()).collect();
        let e: Vec<bool> = oof.iter().map(|r| r["event"] == "1").collect();
        let k: Vec<f64> = oof.iter().map(|r| r["risk"].parse().unwrap()).collect();
        let c = spatia::survival::harrell(&t, &e, &k).unwrap().harrell;
        assert!(c > 0.55, "{arm}: out-of-fold C {c}");
        // survival.csv is exp(-H0(t) e^risk) from the fold's baseline
        let base = csv_rows(&dir.join("baseline.csv"));
        let surv = csv_rows(&dir.join("survival.csv"));
        let r0 = &oof[0];
        let fold = &r0["fold"];
        let risk: f64 = r0["risk"].parse().unwrap();
        let mine: Vec<_> = surv.iter().filter(|s| s["patient"] == r0["patient"]).collect();
        let bl: Vec<_> = base.iter().filter(|b| &b["fold"] == fold).collect();
        assert_eq!(mine.len(), bl.len());
        let mut prev = 0.0;
        for (s, b) in mine.iter().zip(&bl) {
            let h: f64 = b["cumhaz"].parse().unwrap();
            assert!(h >= prev);
            prev = h;
            let want = (-h * risk.exp()).exp();
            assert!((s["survival"].parse::<f64>().unwrap() - want).abs() < 1e-12);
        }
        // inner predictions: each outer fold's training patients once, never its test patients
        let inner = csv_rows(&dir.join("inner_oof.csv"));
        let fold_of: BTreeMap<&str, &str> = oof.iter().map(|r| (r["patient"].as_str(), r["fold"].as_str())).collect();
        for f in 0..4 {
            let f = f.to_string();
            let mine: Vec<_> = inner.iter().filter(|r| r["outer_fold"] == f).collect();
            assert_eq!(mine.len(), oof.iter().filter(|r| r["fold"] != f).count());
            assert!(mine.iter().all(|r| fold_of[r["patient"].as_str()] != f));
        }
        let model: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
        assert_eq!(model["folds"].as_array().unwrap().len(), 4);
        for f in model["folds"].as_array().unwrap() {
            let m = f["cut_median"].as_f64().unwrap();
            let t = f["cut_tertiles"].as_array().unwrap();
            assert!(t[0].as_f64().unwrap() <= m && m <= t[1].as_f64().unwrap());
            assert!([0.01, 0.1, 1.0].contains(&f["penalty"].as_f64().unwrap()));
        }
        if arm.contains("genes") {
            let names = model["folds"][0]["names"].as_array().unwrap();
            assert!(names.iter().any(|n| n == "genes:pc1"), "{names:?}");
        }
    }
    // same patients in both arms (paired comparison possible)
    assert_eq!(patients_by_arm[0], patients_by_arm[1]);
    // `spatia times` splits the run by stage
    let o = spatia(d.path(), &["times", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let t: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let model = t["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "model").unwrap().clone();
    assert_eq!(
        (model["nodes"].as_u64(), model["ran"].as_u64(), model["kind"].as_str()),
        (Some(2), Some(2), Some("train"))
    );
    assert!(model["seconds"].as_f64().unwrap() > 0.0);
    // a second run is all cached
    let o = spatia(d.path(), &["run", "s.yaml", "--quiet"]);
    assert!(o.status.success());
    let o = spatia(d.path(), &["times", "--json"]);
    let t: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(t["stages"].as_array().unwrap().iter().all(|s| s["ran"] == 0), "{t}");
}

#[test]
fn outputs_do_not_depend_on_threads() {
    let mut digests = Vec::new();
    for jobs in ["1", "2"] {
        let d = gse_project("[clinical, genes]", "");
        let o = std::process::Command::new(bin())
            .args(["run", "s.yaml", "--quiet", "--jobs", jobs])
            .env("RAYON_NUM_THREADS", jobs)
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let dir = out_dirs(d.path()).into_values().next().unwrap();
        let mut all = Vec::new();
        for f in ["oof.csv", "baseline.csv", "inner_oof.csv", "inner_baseline.csv", "survival.csv", "model.json"] {
            all.push(blake3::hash(&std::fs::read(dir.join(f)).unwrap()).to_hex().to_string());
        }
        digests.push(all);
    }
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn bad_parameters_point_into_the_spec() {
    for (mods, extra, want) in [
        ("[clinical, HEE]", "", "unknown modality `HEE`"),
        ("[clinical, clinical]", "", "modality `clinical` is listed twice"),
        ("[HE]", "", "slide modalities need a slide manifest"),
        ("[clinical]", "    folds: 1\n", "`folds` must be an integer from 2 to 100"),
        ("[clinical]", "    fusion: bilinear\n", "fusion `bilinear` is not available for `model: cox`"),
    ] {
        let d = gse_project(mods, extra);
        // `folds: 4` is already in the spec: a second `folds` is a duplicate key, so replace it
        if extra.contains("folds") {
            let s = std::fs::read_to_string(d.path().join("s.yaml")).unwrap().replace("    folds: 4\n", "");
            std::fs::write(d.path().join("s.yaml"), s).unwrap();
        }
        let o = spatia(d.path(), &["run", "s.yaml"]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let t = text(&o);
        assert!(t.contains(want), "{t}");
        assert!(t.contains("s.yaml:"), "{t}");
    }
    // a block matching no column fails at run time naming the block and the file
    let d = gse_project("[clinical, genes]", "");
    let s = std::fs::read_to_string(d.path().join("s.yaml")).unwrap().replace("prefix: X", "prefix: ZZ");
    std::fs::write(d.path().join("s.yaml"), s).unwrap();
    let o = spatia(d.path(), &["run", "s.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("block `genes`: no column of") && text(&o).contains("gse.csv"), "{}", text(&o));
}
