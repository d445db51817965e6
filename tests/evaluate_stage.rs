//! The `evaluate` kind end to end on `train`-format output directories written here: a seeded
//! Cox cohort (one informative arm, one noise arm) and the real GSE7390 cohort (clinical vs
//! clinical + genes). Every value of `metrics.json` is checked against direct calls to
//! `spatia::survival` and against `spatia survival concordance|auc|brier|logrank|cox|km` run on
//! the same out-of-fold predictions; bad inputs must fail with the file, row and column named.
mod common;
use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use spatia::stages::{lookup, CheckCx, Need, RunCx};
use spatia::survival::{
    bootstrap_harrell, fit_cox_rows, harrell_and_uno, logrank, paired_concordance_difference, BootstrapOptions,
    CoxOptions, CsvTable, KaplanMeier,
};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Patients with outcomes and a row of covariates each.
struct Cohort {
    patients: Vec<String>,
    time: Vec<f64>,
    event: Vec<bool>,
    x: Vec<Vec<f64>>,
    names: Vec<String>,
}

/// Seeded Cox cohort: `signal` drives the hazard (log-HR 1 per SD), `noise` does not.
fn synthetic(n: usize, seed: u64) -> Cohort {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut c = Cohort {
        patients: vec![],
        time: vec![],
        event: vec![],
        x: vec![],
        names: vec!["signal".into(), "noise".into()],
    };
    for i in 0..n {
        let (s, z): (f64, f64) = (normal(&mut rng), normal(&mut rng));
        let t = -rng.gen::<f64>().ln() / (4e-4 * s.exp());
        let cens = 300.0 + rng.gen::<f64>() * 5000.0;
        c.patients.push(format!("S{i:03}"));
        c.time.push(t.min(cens).round().max(1.0));
        c.event.push(t <= cens);
        c.x.push(vec![s, z]);
    }
    c
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let (u, v): (f64, f64) = (rng.gen::<f64>().max(1e-300), rng.gen());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// GSE7390 with the given covariate columns.
fn gse7390(cols: &[&str]) -> Cohort {
    let t = CsvTable::read(shared().join("data/clinical/breast_cancer_gse7390.csv")).unwrap();
    let (time, event) = (t.times("time").unwrap(), t.events("event").unwrap());
    let colv: Vec<Vec<f64>> = cols.iter().map(|c| t.numeric(c).unwrap()).collect();
    Cohort {
        patients: (0..time.len()).map(|i| format!("G{i:03}")).collect(),
        x: (0..time.len()).map(|i| colv.iter().map(|c| c[i]).collect()).collect(),
        time,
        event,
        names: cols.iter().map(|s| s.to_string()).collect(),
    }
}

/// numpy's linear-interpolation quantile.
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let h = (s.len() - 1) as f64 * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    s[lo] + (h - lo as f64) * (s[hi] - s[lo])
}

/// One fold model as the test wrote it.
struct Fold {
    times: Vec<f64>,
    cumhaz: Vec<f64>,
    cut_median: f64,
    tertiles: [f64; 2],
}

/// What the test wrote for one arm: per patient its fold and risk (one repeat).
struct Written {
    dir: PathBuf,
    fold: Vec<usize>,
    risk: Vec<f64>,
    folds: Vec<Fold>,
}

impl Written {
    fn survival(&self, i: usize, t: f64) -> f64 {
        let f = &self.folds[self.fold[i]];
        let k = f.times.partition_point(|&s| s <= t);
        let h0 = if k == 0 { 0.0 } else { f.cumhaz[k - 1] };
        (-h0 * self.risk[i].exp()).exp()
    }
}

/// Writes a `train` output directory: 5-fold CV (folds from a seeded shuffle) of a Cox model
/// on covariates `cols` of the cohort.
fn write_train(dir: &Path, c: &Cohort, cols: &[usize], seed: u64) -> Written {
    std::fs::create_dir_all(dir).unwrap();
    let n = c.time.len();
    let k = 5;
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in (1..n).rev() {
        order.swap(i, rng.gen_range(0..=i));
    }
    let mut fold = vec![0; n];
    for (pos, &i) in order.iter().enumerate() {
        fold[i] = pos % k;
    }
    let names: Vec<String> = cols.iter().map(|&j| c.names[j].clone()).collect();
    let rows: Vec<Vec<f64>> = c.x.iter().map(|r| cols.iter().map(|&j| r[j]).collect()).collect();
    let mut risk = vec![0.0; n];
    let mut folds = Vec::new();
    let mut fold_json = Vec::new();
    let mut baseline = String::from("repeat,fold,time,cumhaz\n");
    for f in 0..k {
        let train: Vec<usize> = (0..n).filter(|&i| fold[i] != f).collect();
        let pick = |v: &[f64]| train.iter().map(|&i| v[i]).collect::<Vec<_>>();
        let tr_rows: Vec<Vec<f64>> = train.iter().map(|&i| rows[i].clone()).collect();
        let ev: Vec<bool> = train.iter().map(|&i| c.event[i]).collect();
        let fit = fit_cox_rows(&pick(&c.time), &ev, &tr_rows, &names, &CoxOptions::default()).unwrap();
        let beta = fit.beta();
        let lp = |r: &[f64]| r.iter().zip(&beta).map(|(a, b)| a * b).sum::<f64>();
        let train_risk: Vec<f64> = tr_rows.iter().map(|r| lp(r)).collect();
        for i in (0..n).filter(|&i| fold[i] == f) {
            risk[i] = lp(&rows[i]);
        }
        for (t, h) in fit.baseline_times.iter().zip(&fit.baseline_cumulative_hazard) {
            baseline.push_str(&format!("0,{f},{t},{h}\n"));
        }
        let (m, t1, t2) =
            (quantile(&train_risk, 0.5), quantile(&train_risk, 1.0 / 3.0), quantile(&train_risk, 2.0 / 3.0));
        fold_json.push(json!({"repeat": 0, "fold": f, "n_train": train.len(), "n_train_events": ev.iter().filter(|e| **e).count(),
            "n_test": n - train.len(), "penalty": 0.0, "names": names, "beta": beta, "cut_median": m, "cut_tertiles": [t1, t2]}));
        folds.push(Fold {
            times: fit.baseline_times.clone(),
            cumhaz: fit.baseline_cumulative_hazard.clone(),
            cut_median: m,
            tertiles: [t1, t2],
        });
    }
    let mut oof = String::from("repeat,patient,fold,risk,time,event\n");
    for i in 0..n {
        oof.push_str(&format!("0,{},{},{},{},{}\n", c.patients[i], fold[i], risk[i], c.time[i], c.event[i] as u8));
    }
    std::fs::write(dir.join("oof.csv"), oof).unwrap();
    std::fs::write(dir.join("baseline.csv"), baseline).unwrap();
    let model = json!({"schema": 1, "model": "cox", "modalities": names, "n_patients": n,
        "n_events": c.event.iter().filter(|e| **e).count(), "k": k, "repeats": 1, "folds": fold_json});
    std::fs::write(dir.join("model.json"), serde_json::to_string_pretty(&model).unwrap()).unwrap();
    Written { dir: dir.to_path_buf(), fold, risk, folds }
}

/// Checks the parameters and runs the kind as the executor would; returns the output dir.
fn run_evaluate(work: &Path, params: Value, arms: &[(&str, &Path)], seed: u64) -> anyhow::Result<PathBuf> {
    let kind = lookup("evaluate").expect("evaluate is registered");
    assert!(kind.gathers_arms());
    let checked = kind
        .check(&params, &CheckCx { stage: "eval", cohort: None, experiment: "t", spec_file: "s.yaml" })
        .map_err(|e| anyhow::anyhow!("{:?}: {}", e.path, e.msg))?;
    assert!(checked.uses_seed);
    let out = work.join("out");
    let scratch = work.join("scratch");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    std::fs::create_dir_all(&scratch)?;
    let log = Mutex::new(std::fs::File::create(work.join("log.txt"))?);
    let needs = [Need {
        name: "model".into(),
        kind: "train".into(),
        dirs: arms.iter().map(|(_, d)| (None, d.to_path_buf())).collect(),
        arms: arms.iter().map(|(a, _)| a.to_string()).collect(),
    }];
    let cx = RunCx {
        stage: "eval",
        key: "0000",
        params: &checked.params,
        typed: &checked.typed,
        out: &out,
        scratch: &scratch,
        root: work,
        needs: &needs,
        inputs: &[],
        item: None,
        seed,
        cohort: None,
        slides: &[],
        upstream: &[],
        log: &log,
    };
    kind.run(&cx)?;
    Ok(out)
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// `spatia survival …  --json` in `dir`.
fn cli(dir: &Path, args: &[&str]) -> Value {
    let o = spatia(dir, &[&["survival"], args, &["--json"]].concat());
    assert!(o.status.success(), "spatia survival {args:?}: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Equal to the last bit, up to serde_json's float parser (which may be 1 ulp off without its
/// `float_roundtrip` feature) when one side went through JSON text.
fn same(v: &Value, x: f64) {
    let y = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!(y == x || (y.to_bits() as i64 - x.to_bits() as i64).abs() <= 1, "metrics.json {y} != library {x}");
}

fn csv_rows(p: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    r.records().map(|x| x.unwrap().iter().map(String::from).collect()).collect()
}

fn num(s: &str) -> f64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s}"))
}

/// Checks one arm of `metrics.json` against the library and the `spatia survival` CLI.
fn check_arm(out: &Path, m: &Value, a: &Value, w: &Written, c: &Cohort, tertiles: bool) {
    let horizons: Vec<f64> = m["horizons"].as_array().unwrap().iter().map(|h| h.as_f64().unwrap()).collect();
    let hs: Vec<String> = horizons.iter().map(|h| h.to_string()).collect();
    let tau = *horizons.last().unwrap();
    let b = m["bootstrap"].as_u64().unwrap() as usize;
    let seed = m["seed"].as_u64().unwrap();
    let oof = w.dir.join("oof.csv");
    let oof_s = oof.to_str().unwrap();
    let dir = out.parent().unwrap();
    assert_eq!(a["n"], json!(c.time.len()));
    assert_eq!(a["events"], json!(c.event.iter().filter(|e| **e).count()));
    assert_eq!(a["repeats"], json!(1));

    // concordance: library and CLI
    let lib = harrell_and_uno(&c.time, &c.event, &w.risk, Some(tau)).unwrap();
    same(&a["harrell_c"]["estimate"], lib.harrell);
    same(&a["uno_c"]["estimate"], lib.uno.unwrap());
    assert_eq!(a["uno_c"]["tau"], json!(tau));
    let bh =
        bootstrap_harrell(&c.time, &c.event, &w.risk, &BootstrapOptions { n_boot: b, seed, confidence_level: 0.95 })
            .unwrap();
    same(&a["harrell_c"]["lower"], bh.lower);
    same(&a["harrell_c"]["upper"], bh.upper);
    let bs = b.to_string();
    let ss = seed.to_string();
    let taus = tau.to_string();
    let cc = cli(
        dir,
        &[
            "concordance",
            "--csv",
            oof_s,
            "--time",
            "time",
            "--event",
            "event",
            "--risk",
            "risk",
            "--tau",
            &taus,
            "--bootstrap",
            &bs,
            "--seed",
            &ss,
        ],
    );
    assert_eq!(a["harrell_c"]["estimate"], cc["harrell"]);
    assert_eq!(a["uno_c"]["estimate"], cc["uno"]);
    for k in ["lower", "upper", "se", "n_boot", "n_failed"] {
        assert_eq!(a["harrell_c"][k], cc["harrell_bootstrap"][k], "{k}");
    }
    assert_eq!(a["harrell_c"]["estimate"], cc["harrell_bootstrap"]["estimate"]);
    for k in ["estimate", "lower", "upper"] {
        let (lo, x, hi) = (
            a["uno_c"]["lower"].as_f64().unwrap(),
            a["uno_c"][k].as_f64().unwrap(),
            a["uno_c"]["upper"].as_f64().unwrap(),
        );
        assert!(lo <= x && x <= hi, "Uno interval {lo} {x} {hi}");
    }

    // AUC and ROC: CLI
    let auc = cli(
        dir,
        &[
            "auc",
            "--csv",
            oof_s,
            "--time",
            "time",
            "--event",
            "event",
            "--risk",
            "risk",
            "--times",
            &hs.join(","),
            "--roc",
        ],
    );
    assert_eq!(a["mean_auc"], auc["mean_auc"]);
    for (k, h) in horizons.iter().enumerate() {
        let got = &a["auc"][k];
        assert_eq!(got["horizon"], json!(h));
        assert_eq!(got["estimate"], auc["auc"][k]);
        assert_eq!(got["n_cases"], auc["roc"][k]["n_cases"]);
        let rel = got["roc"].as_str().unwrap();
        assert_eq!(rel, format!("curves/{}/roc_{}.csv", a["slug"].as_str().unwrap(), *h as i64));
        let rows = csv_rows(&out.join(rel));
        let pts = auc["roc"][k]["roc"].as_array().unwrap();
        assert_eq!(rows.len(), pts.len());
        for (r, p) in rows.iter().zip(pts) {
            same(&p["fpr"], num(&r[0]));
            same(&p["tpr"], num(&r[1]));
            match p["threshold"].as_f64() {
                Some(t) => same(&json!(t), num(&r[2])),
                None => assert_eq!(r[2], "inf"),
            }
        }
        let (lo, x, hi) =
            (got["lower"].as_f64().unwrap(), got["estimate"].as_f64().unwrap(), got["upper"].as_f64().unwrap());
        assert!(lo <= x && x <= hi && got["n_boot"].as_u64().unwrap() + got["n_failed"].as_u64().unwrap() == b as u64);
    }

    // Brier at the horizons and IBS over the grid: CLI on predicted survival written here from
    // the fold models the test fitted (not from evaluate's reading of baseline.csv)
    let from = a["ibs"]["from"].as_f64().unwrap();
    assert_eq!(from, quantile(&c.time, 0.05));
    assert_eq!(a["ibs"]["to"], json!(tau));
    let mut sorted = c.time.clone();
    sorted.sort_by(|x, y| x.total_cmp(y));
    sorted.dedup();
    let inner: Vec<f64> = sorted.into_iter().filter(|&t| t > from && t < tau).collect();
    let mut grid = vec![from];
    if inner.len() <= 98 {
        grid.extend(&inner);
    } else {
        grid.extend((0..98).map(|j| inner[(j as f64 * (inner.len() - 1) as f64 / 97.0).round() as usize]));
    }
    grid.push(tau);
    assert_eq!(a["ibs"]["grid_points"], json!(grid.len()));
    let cols: Vec<f64> = horizons.iter().chain(&grid).cloned().collect();
    let mut pred = String::from("time,event");
    for j in 0..cols.len() {
        pred.push_str(&format!(",S{j}"));
    }
    pred.push('\n');
    for i in 0..c.time.len() {
        pred.push_str(&format!("{},{}", c.time[i], c.event[i] as u8));
        for &t in &cols {
            pred.push_str(&format!(",{}", w.survival(i, t)));
        }
        pred.push('\n');
    }
    let pred_path = w.dir.join("pred_test.csv");
    std::fs::write(&pred_path, pred).unwrap();
    let ps = pred_path.to_str().unwrap();
    let spec_h: Vec<String> = horizons.iter().enumerate().map(|(j, h)| format!("{h}:S{j}")).collect();
    let br = cli(dir, &["brier", "--csv", ps, "--time", "time", "--event", "event", "--surv", &spec_h.join(",")]);
    for k in 0..horizons.len() {
        assert_eq!(a["brier"][k]["estimate"], br["brier"][k]);
        assert_eq!(a["brier"][k]["horizon"], json!(horizons[k]));
    }
    let spec_g: Vec<String> = grid.iter().enumerate().map(|(j, t)| format!("{t}:S{}", j + horizons.len())).collect();
    let ibs = cli(dir, &["brier", "--csv", ps, "--time", "time", "--event", "event", "--surv", &spec_g.join(",")]);
    assert_eq!(a["ibs"]["estimate"], ibs["integrated"]);

    // risk groups from the training cut-points of each patient's fold
    let labels: Vec<&str> = (0..c.time.len())
        .map(|i| {
            let f = &w.folds[w.fold[i]];
            let r = w.risk[i];
            if tertiles {
                if r > f.tertiles[1] {
                    "high"
                } else if r > f.tertiles[0] {
                    "mid"
                } else {
                    "low"
                }
            } else if r > f.cut_median {
                "high"
            } else {
                "low"
            }
        })
        .collect();
    let rg = &a["risk_groups"];
    assert_eq!(rg["method"], json!(if tertiles { "tertiles" } else { "median" }));
    let slug = a["slug"].as_str().unwrap();
    let assigned = csv_rows(&out.join(format!("curves/{slug}/groups.csv")));
    assert_eq!(assigned.iter().map(|r| r[3].as_str()).collect::<Vec<_>>(), labels);
    let mut gcsv = String::from("time,event,group,high\n");
    let mut hcsv = String::from("time,event,high\n");
    for (i, label) in labels.iter().enumerate() {
        let (t, e, high) = (c.time[i], c.event[i] as u8, (*label == "high") as u8);
        gcsv.push_str(&format!("{t},{e},{label},{high}\n"));
        if *label != "mid" {
            hcsv.push_str(&format!("{t},{e},{high}\n"));
        }
    }
    let (gp, hp) = (w.dir.join("groups_test.csv"), w.dir.join("hr_test.csv"));
    std::fs::write(&gp, gcsv).unwrap();
    std::fs::write(&hp, hcsv).unwrap();
    let lr = logrank(&c.time, &c.event, &labels).unwrap();
    same(&rg["logrank"]["chi2"], lr.statistic);
    let lc =
        cli(dir, &["logrank", "--csv", gp.to_str().unwrap(), "--time", "time", "--event", "event", "--group", "group"]);
    assert_eq!(rg["logrank"]["chi2"], lc["statistic"]);
    assert_eq!(rg["logrank"]["p"], lc["p_value"]);
    assert_eq!(rg["logrank"]["df"], lc["df"]);
    let cox =
        cli(dir, &["cox", "--csv", hp.to_str().unwrap(), "--time", "time", "--event", "event", "--covariates", "high"]);
    let co = &cox["coefficients"][0];
    for (mine, theirs) in [("estimate", "hr"), ("lower", "hr_lower"), ("upper", "hr_upper"), ("p", "p_value")] {
        assert_eq!(rg["hazard_ratio"][mine], co[theirs], "{mine}");
    }
    let km = cli(
        dir,
        &["km", "--csv", gp.to_str().unwrap(), "--time", "time", "--event", "event", "--group", "group", "--curve"],
    );
    let ticks: Vec<f64> = rg["at_risk_times"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
    assert_eq!(ticks[0], 0.0);
    assert!((4..=8).contains(&ticks.len()), "{ticks:?}");
    for g in rg["groups"].as_array().unwrap() {
        let label = g["label"].as_str().unwrap();
        let sel: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == label).collect();
        assert_eq!(g["n"], json!(sel.len()));
        let t: Vec<f64> = sel.iter().map(|&i| c.time[i]).collect();
        let e: Vec<bool> = sel.iter().map(|&i| c.event[i]).collect();
        let fit = KaplanMeier::fit(&t, &e).unwrap();
        assert_eq!(g["events"], json!(fit.n_events));
        let ar: Vec<usize> = ticks.iter().map(|&x| fit.at_risk_at(x)).collect();
        assert_eq!(g["at_risk"], json!(ar));
        let rows = csv_rows(&out.join(g["km"].as_str().unwrap()));
        let curve = km["groups"][label]["curve"].as_array().unwrap();
        assert_eq!(rows.len(), curve.len());
        assert_eq!(&rows[0][..2], ["0", "1"]);
        for (r, p) in rows.iter().zip(curve) {
            same(&p["time"], num(&r[0]));
            same(&p["survival"], num(&r[1]));
            same(&p["lower"], num(&r[2]));
            same(&p["upper"], num(&r[3]));
            assert_eq!(p["at_risk"], json!(num(&r[4]) as u64), "at risk at {}", r[0]);
            assert_eq!(p["censored"], json!(num(&r[6]) as u64));
        }
        assert_eq!(rows.iter().map(|r| num(&r[5])).sum::<f64>() as usize, fit.n_events);
    }
}

const ARMS: [&str; 2] = ["modalities=clinical", "modalities=HE+clinical"];

#[test]
fn synthetic_arms_match_the_survival_library_and_cli() {
    let d = tempfile::tempdir().unwrap();
    let c = synthetic(240, 11);
    let noise = write_train(&d.path().join("train_noise"), &c, &[1], 5);
    let signal = write_train(&d.path().join("train_signal"), &c, &[0], 5);
    let out = run_evaluate(
        d.path(),
        json!({"horizons": [1095, 1825], "bootstrap": 300}),
        &[(ARMS[0], &noise.dir), (ARMS[1], &signal.dir)],
        7,
    )
    .unwrap();
    let m = read_json(&out.join("metrics.json"));
    assert_eq!(m["schema"], json!(2));
    // no `refit` in the train outputs: conditional intervals; one comparison, exploratory, whose
    // Holm adjustment over one p is that p
    assert_eq!((m["intervals"].as_str(), m["refit_replicates"].as_u64()), (Some("conditional"), Some(0)));
    assert_eq!(m["comparisons"][0]["role"], json!("exploratory"));
    assert_eq!(m["comparisons"][0]["p_adjusted"], m["comparisons"][0]["p"]);
    assert_eq!(m["reference"], json!(ARMS[0]), "default reference: the first arm");
    assert_eq!(m["groups"], json!("median"));
    assert_eq!(m["ci"], json!(0.95));
    assert_eq!(m["seed"], json!(7));
    assert_eq!(m["arms"][0]["slug"], json!("modalities_clinical"));
    assert_eq!(m["arms"][1]["slug"], json!("modalities_HE_clinical"));
    assert_eq!(m["arms"][0]["ibs"]["grid_points"], json!(100), "more than 98 distinct times up to 1825: thinned grid");
    check_arm(&out, &m, &m["arms"][0], &noise, &c, false);
    check_arm(&out, &m, &m["arms"][1], &signal, &c, false);

    // the informative arm beats the noise arm: paired ΔC excludes 0, equal to the library's
    let cmp = &m["comparisons"].as_array().unwrap();
    assert_eq!(cmp.len(), 1);
    let x = &cmp[0];
    assert_eq!((x["arm"].as_str(), x["reference"].as_str()), (Some(ARMS[1]), Some(ARMS[0])));
    let lib = paired_concordance_difference(
        &c.time,
        &c.event,
        &signal.risk,
        &noise.risk,
        &BootstrapOptions { n_boot: 300, seed: 7, confidence_level: 0.95 },
    )
    .unwrap();
    same(&x["delta_c"]["estimate"], lib.difference.estimate);
    same(&x["delta_c"]["lower"], lib.difference.lower);
    same(&x["delta_c"]["upper"], lib.difference.upper);
    same(&x["p"], lib.p_value);
    assert!(x["delta_c"]["lower"].as_f64().unwrap() > 0.0, "ΔC CI should exclude 0: {x}");
    assert!(x["p"].as_f64().unwrap() < 0.05);
    let hr = &m["arms"][1]["risk_groups"]["hazard_ratio"];
    assert!(hr["lower"].as_f64().unwrap() > 1.0, "high vs low HR of the informative arm: {hr}");

    // the same inputs and seed give the same bytes; another seed other intervals, same estimates
    let w2 = d.path().join("w2");
    std::fs::create_dir_all(&w2).unwrap();
    let out2 = run_evaluate(
        &w2,
        json!({"horizons": [1095, 1825], "bootstrap": 300}),
        &[(ARMS[0], &noise.dir), (ARMS[1], &signal.dir)],
        7,
    )
    .unwrap();
    assert_eq!(std::fs::read(out.join("metrics.json")).unwrap(), std::fs::read(out2.join("metrics.json")).unwrap());
    let out3 = run_evaluate(
        &w2,
        json!({"horizons": [1095, 1825], "bootstrap": 300}),
        &[(ARMS[0], &noise.dir), (ARMS[1], &signal.dir)],
        8,
    )
    .unwrap();
    let m3 = read_json(&out3.join("metrics.json"));
    assert_eq!(m3["arms"][1]["harrell_c"]["estimate"], m["arms"][1]["harrell_c"]["estimate"]);
    assert_ne!(m3["arms"][1]["harrell_c"]["lower"], m["arms"][1]["harrell_c"]["lower"]);

    // an explicit reference flips the comparison
    let out4 = run_evaluate(
        &w2,
        json!({"horizons": [1095, 1825], "bootstrap": 300, "reference": ARMS[1]}),
        &[(ARMS[0], &noise.dir), (ARMS[1], &signal.dir)],
        7,
    )
    .unwrap();
    let m4 = read_json(&out4.join("metrics.json"));
    assert_eq!(m4["comparisons"][0]["arm"], json!(ARMS[0]));
    assert!(m4["comparisons"][0]["delta_c"]["upper"].as_f64().unwrap() < 0.0);
}

#[test]
fn gse7390_metrics_equal_spatia_survival_on_the_same_predictions() {
    let d = tempfile::tempdir().unwrap();
    // `grade` has two missing values: the clinical arm uses age, size and ER status
    let c = gse7390(&["age", "size", "er", "X204014_at", "X208683_at", "X219340_s_at"]);
    assert_eq!((c.time.len(), c.event.iter().filter(|e| **e).count()), (198, 51));
    let clin = write_train(&d.path().join("clinical"), &c, &[0, 1, 2], 3);
    let genes = write_train(&d.path().join("genes"), &c, &[0, 1, 2, 3, 4, 5], 3);
    let arms = [("modalities=clinical", clin.dir.as_path()), ("modalities=clinical+genes", genes.dir.as_path())];
    let out = run_evaluate(d.path(), json!({"horizons": [1095, 1825, 3650], "groups": "tertiles"}), &arms, 7).unwrap();
    let m = read_json(&out.join("metrics.json"));
    assert_eq!(m["bootstrap"], json!(1000));
    assert_eq!(m["arms"][0]["ibs"]["grid_points"], json!(67), "GSE7390: every distinct time up to 3650");
    check_arm(&out, &m, &m["arms"][0], &clin, &c, true);
    check_arm(&out, &m, &m["arms"][1], &genes, &c, true);
    let rg = &m["arms"][0]["risk_groups"];
    assert_eq!(rg["groups"].as_array().unwrap().len(), 3);
    assert_eq!(rg["logrank"]["df"], json!(2));
    let x = &m["comparisons"][0];
    let lib = paired_concordance_difference(
        &c.time,
        &c.event,
        &genes.risk,
        &clin.risk,
        &BootstrapOptions { n_boot: 1000, seed: 7, confidence_level: 0.95 },
    )
    .unwrap();
    same(&x["delta_c"]["estimate"], lib.difference.estimate);
    same(&x["delta_c"]["lower"], lib.difference.lower);
    same(&x["p"], lib.p_value);
}

fn err_of(r: anyhow::Result<PathBuf>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

#[test]
fn bad_inputs_name_the_file_row_column_or_arm() {
    let d = tempfile::tempdir().unwrap();
    let c = synthetic(80, 3);
    let a = write_train(&d.path().join("a"), &c, &[0], 1);
    let b = write_train(&d.path().join("b"), &c, &[1], 1);
    let params = json!({"horizons": [1095], "bootstrap": 20});
    let arms = [(ARMS[0], a.dir.as_path()), (ARMS[1], b.dir.as_path())];

    let e = err_of(run_evaluate(
        d.path(),
        json!({"horizons": [1095], "bootstrap": 20, "reference": "modalities=IHC"}),
        &arms,
        7,
    ));
    assert!(e.contains("`reference: modalities=IHC` is not an arm of this experiment; the arms are: modalities=clinical, modalities=HE+clinical"), "{e}");

    let e =
        err_of(run_evaluate(d.path(), params.clone(), &[("m=a+b", a.dir.as_path()), ("m=a_b", b.dir.as_path())], 7));
    assert!(e.contains("arms `m=a+b` and `m=a_b` would share the curve folder curves/m_a_b"), "{e}");

    // a missing column, a bad value, a bad model.json
    let oof = std::fs::read_to_string(b.dir.join("oof.csv")).unwrap();
    let no_risk: String = oof
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            format!("{},{},{},{},{}\n", f[0], f[1], f[2], f[4], f[5])
        })
        .collect();
    std::fs::write(b.dir.join("oof.csv"), &no_risk).unwrap();
    let e = err_of(run_evaluate(d.path(), params.clone(), &arms, 7));
    assert!(
        e.contains("arm `modalities=HE+clinical`")
            && e.contains("oof.csv")
            && e.contains("column 'risk'")
            && e.contains("repeat, patient, fold, time, event"),
        "{e}"
    );
    let bad_value = oof.replacen(",0,", ",zero,", 1);
    let row = bad_value.lines().position(|l| l.contains("zero")).unwrap();
    std::fs::write(b.dir.join("oof.csv"), &bad_value).unwrap();
    let e = err_of(run_evaluate(d.path(), params.clone(), &arms, 7));
    assert!(e.contains("oof.csv") && e.contains(&format!("data row {row}")), "{e}");
    std::fs::write(b.dir.join("oof.csv"), &oof).unwrap();
    let model = std::fs::read_to_string(b.dir.join("model.json")).unwrap();
    std::fs::write(b.dir.join("model.json"), model.replace("cut_median", "median")).unwrap();
    let e = err_of(run_evaluate(d.path(), params.clone(), &arms, 7));
    assert!(e.contains("model.json") && e.contains("cut_median"), "{e}");
    std::fs::write(b.dir.join("model.json"), &model).unwrap();
    let base = std::fs::read_to_string(b.dir.join("baseline.csv")).unwrap();
    std::fs::write(b.dir.join("baseline.csv"), base.replace("cumhaz", "H")).unwrap();
    let e = err_of(run_evaluate(d.path(), params.clone(), &arms, 7));
    assert!(e.contains("baseline.csv") && e.contains("column 'cumhaz'"), "{e}");
    std::fs::write(b.dir.join("baseline.csv"), &base).unwrap();
    // a patient missing from one arm
    let fewer: String = oof.lines().take(oof.lines().count() - 1).map(|l| format!("{l}\n")).collect();
    std::fs::write(b.dir.join("oof.csv"), &fewer).unwrap();
    let e = err_of(run_evaluate(d.path(), params.clone(), &arms, 7));
    assert!(e.contains("arm `modalities=HE+clinical`") && e.contains("expected the same patients in every arm"), "{e}");
    std::fs::write(b.dir.join("oof.csv"), &oof).unwrap();
    // a horizon beyond follow-up
    let e = err_of(run_evaluate(d.path(), json!({"horizons": [1e7], "bootstrap": 20}), &arms, 7));
    assert!(e.contains("time-dependent AUC") && e.contains("10000000"), "{e}");
    assert!(run_evaluate(d.path(), params.clone(), &arms, 7).is_ok(), "restored inputs evaluate");

    // parameters: strict, with the path named
    for (p, want) in [
        (json!({"horizons": [1095], "horizon": 5}), "unknown field `horizon`"),
        (json!({"bootstrap": 10}), "missing field `horizons`"),
        (json!({"horizons": []}), "at least one time > 0"),
        (json!({"horizons": [1825, 1095]}), "strictly increasing, found 1095 after 1825"),
        (json!({"horizons": [-1]}), "finite time > 0, found -1"),
        (
            json!({"horizons": [1095], "ci": 1.5}),
            "`ci` must be a number > 0 and ≤ 0.9999 (confidence level), found 1.5",
        ),
        (json!({"horizons": [1095], "bootstrap": 0}), "`bootstrap` must be an integer from 1 to 100000"),
        (json!({"horizons": [1095], "groups": "quartiles"}), "unknown variant `quartiles`"),
    ] {
        let e = err_of(run_evaluate(d.path(), p.clone(), &arms, 7));
        assert!(e.contains(want), "{p}: {e}");
    }

    // needs: exactly one train stage
    let kind = lookup("evaluate").unwrap();
    let log = Mutex::new(std::fs::File::create(d.path().join("l")).unwrap());
    let checked =
        kind.check(&params, &CheckCx { stage: "eval", cohort: None, experiment: "t", spec_file: "s.yaml" }).unwrap();
    let needs = [Need {
        name: "feats".into(),
        kind: "extract".into(),
        dirs: vec![(None, a.dir.clone())],
        arms: vec!["main".into()],
    }];
    let cx = RunCx {
        stage: "eval",
        key: "k",
        params: &checked.params,
        typed: &checked.typed,
        out: d.path(),
        scratch: d.path(),
        root: d.path(),
        needs: &needs,
        inputs: &[],
        item: None,
        seed: 7,
        cohort: None,
        slides: &[],
        upstream: &[],
        log: &log,
    };
    let e = format!("{:#}", kind.run(&cx).unwrap_err());
    assert!(e.contains("needs exactly one stage of kind `train`, found [`feats` (extract)]"), "{e}");
}
