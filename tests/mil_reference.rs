//! Reference check of `model: mil` (cargo feature `torch`): an independent PyTorch implementation
//! of the attention-MIL network (tests/mil_reference.py) replays every outer-fold fit that
//! `spatia run` traced (`SPATIA_MIL_TRACE`) from the same initial weights and batches, and must
//! agree with the plugin on the loss of the first 20 optimiser steps (1e-5 relative), the final
//! weights (1e-4) and the test patients' out-of-fold risks in `oof.csv` (1e-4; centred on the
//! training patients for `cox`, 1 − S(τ_K) for `nll`). Measured: equal to the bit (the script's
//! docstring says why it replays libtorch's rounding rather than only meeting the tolerances).
//!
//! On a small generated cohort (36 patients; HE, ER and KI67 slides, a fifth of the KI67 slides
//! left out of the manifest so that the learned missing embedding is used), dropout 0, 3 folds:
//! - `concat` + `cox`, HE + ER + KI67 + clinical, the exact full-batch likelihood (a small learning
//!   rate, so that the epoch choice keeps at least one fit to 20 steps or more);
//! - `bilinear` + `nll`, HE + KI67 + clinical: the gated Kronecker fusion (3 modalities);
//! - `bilinear` + `cox` with mini-batches (`batch_size: 8`), 4 modalities: the low-rank fusion;
//! - `late` + `cox`, HE + ER + KI67 without clinical.
//!
//! The checker itself is shown to fail on a step loss, a weight and a risk tampered with.
#![cfg(feature = "torch")]
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mil_reference.py");

fn python() -> String {
    std::env::var("SPATIA_TORCH_PYTHON").unwrap_or_else(|_| {
        format!("{}/.cache/spatia/torch-2.11.0/bin/python", std::env::var("HOME").unwrap_or_default())
    })
}

/// Runs the reference checker on a trace and an `oof.csv`: (success, output).
fn reference(trace: &Path, oof: &Path) -> (bool, String) {
    let out = Command::new(python())
        // the kernels of the training child (the script's own default too): the same libtorch
        // then rounds the same way, so the replay is exact
        .env("ATEN_CPU_CAPABILITY", "default")
        .env("MKL_CBWR", "COMPATIBLE")
        .env("OMP_NUM_THREADS", "1")
        .arg(REFERENCE)
        .arg("check")
        .arg(trace)
        .arg(oof)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (run scripts/setup-torch.sh): {e}", python()));
    (out.status.success(), text(&out))
}

fn spec(name: &str, modalities: &str, fusion: &str, loss: &str, mil: &str) -> String {
    [
        &format!("name: {name}"),
        "seed: 5",
        "cohort:",
        "  clinical: demo-data/clinical.csv",
        "  slides: slides.csv",
        "  id: patient_id",
        "  time: dmfs_days",
        "  event: dm",
        "  causes: {1: metastasis, 2: death}",
        "  covariates: [age, tumor_size_mm, nodes_positive, grade]",
        "stages:",
        "  ingest: {kind: ingest}",
        // a low tissue threshold: the small ER-negative slides have too little stain otherwise
        "  tiles: {kind: tile, needs: [ingest], mpp: 0.5, size: 256, tissue: {threshold: 0.005}}",
        "  feats: {kind: extract, needs: [tiles], encoder: handcrafted}",
        "  model:",
        "    kind: train",
        "    needs: [feats]",
        "    model: mil",
        &format!("    modalities: {modalities}"),
        &format!("    fusion: {fusion}"),
        &format!("    loss: {loss}"),
        "    folds: 3",
        "    repeats: 1",
        &format!("    mil: {{dropout: 0, hidden: 16, attention: 8, inner_folds: 2, {mil}}}"),
    ]
    .join("\n")
        + "\n"
}

/// The `oof.csv` of the last run's `model` node.
fn oof_of(dir: &Path) -> PathBuf {
    let run = last_run(dir);
    let node = run["nodes"].as_array().unwrap().iter().find(|n| n["stage"] == "model").expect("a model node").clone();
    let k = node["key"].as_str().unwrap();
    dir.join("cache/entries").join(&k[..2]).join(k).join("out/oof.csv")
}

fn fit_json(trace: &Path, fit: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(trace.join(fit).join("fit.json")).unwrap()).unwrap()
}

#[test]
fn pytorch_reference_replays_the_traced_fits() {
    let d = project();
    let o = spatia(
        d.path(),
        &[
            "demo",
            "generate",
            "--patients",
            "36",
            "--size",
            "1024",
            "--stains",
            "HE,ER,KI67",
            "--seed",
            "3",
            "--out",
            "demo-data",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    // every fifth KI67 slide left out: those patients get the learned missing embedding
    let manifest = std::fs::read_to_string(d.path().join("demo-data/slides.csv")).unwrap();
    let mut lines = manifest.lines();
    let mut kept = vec![lines.next().unwrap().to_string()];
    let mut ki67 = 0;
    for l in lines {
        if l.ends_with(",KI67") {
            ki67 += 1;
            if ki67 % 5 == 1 {
                continue;
            }
        }
        kept.push(l.replace(",slides/", ",demo-data/slides/"));
    }
    assert!(ki67 >= 30, "{manifest}");
    std::fs::write(d.path().join("slides.csv"), kept.join("\n") + "\n").unwrap();

    let arms = [
        ("concat_cox", "[HE, IHC, clinical]", "concat", "cox", "epochs: 24, lr: 0.0005"),
        ("bilinear_nll", "[HE, KI67, clinical]", "bilinear", "nll", "epochs: 8, intervals: 4"),
        ("lmf_cox_batches", "[HE, IHC, clinical]", "bilinear", "cox", "epochs: 6, batch_size: 8"),
        ("late_cox", "[HE, IHC]", "late", "cox", "epochs: 6"),
    ];
    let mut twenty = false;
    for (name, modalities, fusion, loss, mil) in arms {
        std::fs::write(d.path().join(format!("{name}.yaml")), spec(name, modalities, fusion, loss, mil)).unwrap();
        let trace = d.path().join(format!("trace-{name}"));
        let o = Command::new(bin())
            .args(["run", &format!("{name}.yaml"), "--quiet"])
            .env("SPATIA_MIL_TRACE", &trace)
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {}", text(&o));
        let fits: Vec<String> = (0..3).map(|f| format!("r0_f{f}")).collect();
        for f in &fits {
            assert!(trace.join(f).join("final.safetensors").is_file(), "{name}: no trace of {f}");
        }
        // the trace holds what the arm asked for
        let j = fit_json(&trace, "r0_f0");
        assert_eq!((j["config"]["fusion"].as_str(), j["config"]["loss"].as_str()), (Some(fusion), Some(loss)));
        assert_eq!(j["config"]["dropout"].as_f64(), Some(0.0));
        let batches = j["config"]["batches"].as_array().unwrap();
        if name.contains("batches") {
            assert!(batches.iter().all(|e| e.as_array().is_some_and(|b| b.len() >= 2)), "{name}: {batches:?}");
        } else {
            assert!(batches.is_empty(), "{name}: {batches:?}");
        }
        let oof = oof_of(d.path());
        let (ok, out) = reference(&trace, &oof);
        assert!(ok, "{name}: the PyTorch reference disagrees with spatia:\n{out}");
        assert!(out.contains("checked 3 fit(s)"), "{name}:\n{out}");
        // the KI67 bags of some patients are missing (fit summaries list the count per stain)
        if modalities.contains("IHC") || modalities.contains("KI67") {
            assert!(
                out.lines().filter(|l| l.starts_with("ok ")).all(|l| !l.contains("without a bag per stain [0, 0, 0]")
                    && !l.contains("without a bag per stain [0, 0]")),
                "{name}: no patient without a KI67 bag:\n{out}"
            );
        }
        twenty |= out.contains("steps 1-20 ");
        eprintln!("{name}:\n{out}");

        if name == "concat_cox" {
            tampered_traces_fail(d.path(), &trace, &oof);
        }
    }
    assert!(twenty, "no fit ran the 20 steps the check compares (the epoch choice picked fewer everywhere)");
}

/// The checker is not vacuous: a step loss, a final weight or an out-of-fold risk changed by a
/// little more than the tolerance makes it fail, naming what differs.
fn tampered_traces_fail(dir: &Path, trace: &Path, oof: &Path) {
    let copy = |to: &str| -> PathBuf {
        let t = dir.join(to).join("r0_f1");
        std::fs::create_dir_all(&t).unwrap();
        for e in std::fs::read_dir(trace.join("r0_f1")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), t.join(e.file_name())).unwrap();
        }
        t
    };
    // a step loss 3e-5 off (relative)
    let t = copy("tamper-step");
    let mut j = fit_json(t.parent().unwrap(), "r0_f1");
    let l = j["step_loss"][2].as_f64().unwrap();
    j["step_loss"][2] = serde_json::json!(l * (1.0 + 3e-5));
    std::fs::write(t.join("fit.json"), j.to_string()).unwrap();
    let (ok, out) = reference(t.parent().unwrap(), oof);
    assert!(!ok && out.contains("r0_f1 step 3:"), "{out}");
    // the last float of the final weights (a bias) moved by 1e-3
    let t = copy("tamper-weights");
    let p = t.join("final.safetensors");
    let mut b = std::fs::read(&p).unwrap();
    let n = b.len();
    let v = f32::from_le_bytes(b[n - 4..].try_into().unwrap()) + 1e-3;
    b[n - 4..].copy_from_slice(&v.to_le_bytes());
    std::fs::write(&p, b).unwrap();
    let (ok, out) = reference(t.parent().unwrap(), oof);
    assert!(!ok && out.contains("r0_f1: final weight"), "{out}");
    // one out-of-fold risk of fold 1 moved by 2e-4
    let t = copy("tamper-oof");
    let rows = std::fs::read_to_string(oof).unwrap();
    let mut moved = false;
    let edited: Vec<String> = rows
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut c: Vec<String> = l.split(',').map(str::to_string).collect();
            if i > 0 && !moved && c[2] == "1" {
                c[3] = format!("{:?}", c[3].parse::<f64>().unwrap() + 2e-4);
                moved = true;
            }
            c.join(",")
        })
        .collect();
    assert!(rows.starts_with("repeat,patient,fold,risk,"), "{rows}");
    assert!(moved);
    let edited_path = dir.join("tamper-oof.csv");
    std::fs::write(&edited_path, edited.join("\n") + "\n").unwrap();
    let (ok, out) = reference(t.parent().unwrap(), &edited_path);
    assert!(!ok && out.contains("r0_f1: patient") && out.contains("oof.csv"), "{out}");
}
