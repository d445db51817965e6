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
            // a grid value, or (the choice being at an edge) a value the grid was extended to
            let chosen = f["penalty"].as_f64().unwrap();
            assert!(f["cvpl"].as_array().unwrap().iter().any(|c| c["penalty"].as_f64() == Some(chosen)), "{f}");
            assert!([0.01, 0.1, 1.0].contains(&chosen) || f["grid_extended"].as_u64() > Some(0), "{f}");
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
        ("[clinical]", "    fusion: gated\n", "unknown fusion `gated`"),
        ("[genes]", "    model: mil\n", "modality `genes` is not available for `model: mil`"),
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

/// A generated cohort of 120 patients with 6 covariates `x1..x6` (uniform on [−1, 1]): event
/// times exponential with log-hazard `signal · x1`, censoring uniform (deterministic LCG).
fn generated_project(signal: f64, penalties: &str, extra: &str) -> tempfile::TempDir {
    let d = project();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut unif = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut csv = String::from("id,time,event,x1,x2,x3,x4,x5,x6\n");
    for i in 0..120 {
        let x: Vec<f64> = (0..6).map(|_| 2.0 * unif() - 1.0).collect();
        let t = -unif().ln() / (signal * x[0]).exp() * 1000.0;
        let c = 3000.0 * unif();
        let row: Vec<String> = x.iter().map(|v| format!("{v:.6}")).collect();
        csv.push_str(&format!("p{i},{:.3},{},{}\n", t.min(c), (t <= c) as u8, row.join(",")));
    }
    std::fs::write(d.path().join("gen.csv"), csv).unwrap();
    let spec = format!(
        "name: g\nseed: 3\ncohort:\n  clinical: gen.csv\n  id: id\n  time: time\n  event: event\n  covariates: [x1, x2, x3, x4, x5, x6]\nstages:\n  model:\n    kind: train\n    modalities: [clinical]\n    folds: 3\n    inner_folds: 3\n    penalties: {penalties}\n{extra}"
    );
    std::fs::write(d.path().join("s.yaml"), spec).unwrap();
    d
}

fn run_model(d: &tempfile::TempDir) -> (serde_json::Value, String) {
    let o = spatia(d.path(), &["run", "s.yaml", "--quiet"]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = out_dirs(d.path()).into_values().next().unwrap();
    let model = serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
    (model, std::fs::read_to_string(dir.parent().unwrap().join("log.txt")).unwrap())
}

#[test]
fn a_penalty_at_the_grid_edge_extends_the_grid_until_interior() {
    // A real effect and a grid of heavy penalties: every fold's choice is the grid's lowest
    // value, so the grid is extended downwards (by 100/30) until the choice is interior.
    let d = generated_project(1.5, "[30, 100]", "");
    let (model, log) = run_model(&d);
    for f in model["folds"].as_array().unwrap() {
        let searched: Vec<f64> = f["cvpl"].as_array().unwrap().iter().map(|c| c["penalty"].as_f64().unwrap()).collect();
        assert!(searched.windows(2).all(|w| w[0] < w[1]), "{searched:?}");
        let chosen = f["penalty"].as_f64().unwrap();
        assert!(chosen < 30.0 && f["grid_extended"].as_u64().unwrap() >= 2, "{f}");
        assert_eq!(f["grid_extended"].as_u64().unwrap() as usize, searched.len() - 2);
        // interior: something smaller and something larger was searched, with a lower CVPL
        let best = f["cvpl"].as_array().unwrap().iter().find(|c| c["penalty"] == chosen).unwrap()["cvpl"].as_f64();
        assert!(searched[0] < chosen && chosen < searched[searched.len() - 1], "{searched:?} {chosen}");
        for c in f["cvpl"].as_array().unwrap() {
            assert!(c["cvpl"].as_f64() <= best, "{f}");
        }
        // each step divides by 100/30
        let below: Vec<f64> = searched.iter().copied().filter(|&l| l < 30.0).collect();
        for w in below.windows(2) {
            assert!((w[1] / w[0] - 100.0 / 30.0).abs() < 1e-9, "{below:?}");
        }
        assert!(f["warnings"].as_array().unwrap().is_empty(), "{f}");
    }
    assert!(log.contains("the chosen penalty was at the edge of the grid"), "{log}");
    assert!(!log.contains("penalty_at_bound"), "{log}");
}

#[test]
fn a_penalty_still_at_a_bound_is_a_warning_in_model_json_and_the_log() {
    // No effect at all: the cross-validated likelihood keeps rising towards the null model, so
    // the extension runs to the bound (10⁶) and the fold says so.
    let stages = "  ingest: {kind: ingest}\n  eval: {kind: evaluate, needs: [model], horizons: [500, 1000], bootstrap: 20}\n  calib: {kind: calibrate, needs: [model], horizon: 1000}\n  report: {kind: report, needs: [ingest, eval, calib], publish: rep}\n";
    let d = generated_project(0.0, "[0.01, 0.1, 1.0]", stages);
    let (model, log) = run_model(&d);
    let at_bound: Vec<&serde_json::Value> = model["folds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().starts_with("penalty_at_bound"))
        })
        .collect();
    assert!(!at_bound.is_empty(), "{model}");
    for f in at_bound {
        assert_eq!(f["penalty"].as_f64(), Some(1e6), "{f}");
        let cvpl = f["cvpl"].as_array().unwrap();
        assert_eq!(cvpl.last().unwrap()["penalty"].as_f64(), Some(1e6));
    }
    assert!(log.contains("warning: penalty_at_bound: the chosen penalty 1000000"), "{log}");
    // … and in the report's Warnings list, via metrics.json
    let page = std::fs::read_to_string(d.path().join("rep/index.html")).unwrap();
    let list = &page[page.find("<h3 id=\"warnings\">Warnings</h3>").expect("a Warnings list")..];
    let list = &list[..list.find("</ul>").unwrap()];
    assert!(list.contains("(model): repeat 0 fold") && list.contains("penalty_at_bound"), "{list}");
}
