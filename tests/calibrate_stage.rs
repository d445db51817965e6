//! The `calibrate` stage on generated `train` output directories: seeded Cox data with
//! deliberately mis-calibrated predictions (baseline hazard × 2, linear predictor × 1.5) and
//! honest cross-validated Cox predictions on the real GBSG2 cohort.
//!
//! Checks: bins against a Kaplan–Meier computed here, slope / intercept / ICI / E50 / E90 against
//! `spatia survival calibration` run on the same predictions, recalibration moving the slope
//! toward 1 and reducing ICI, each fold's (a, b) against a direct computation, determinism, and
//! the bad inputs (missing file or column, bad values, a horizon past follow-up, wrong needs,
//! bad parameters).
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use spatia::contracts::{baseline::Baselines, oof::Oof};
use spatia::stages::{calibrate::Calibrate, CheckCx, Need, RunCx, StageKind};
use spatia::survival::{self, fit_cox, CoxOptions, KaplanMeier};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

const BIN: &str = env!("CARGO_BIN_EXE_spatia");
const GBSG2_CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/clinical/gbsg2.csv");

/// Survival data with a row-major covariate matrix.
struct Data {
    time: Vec<f64>,
    event: Vec<bool>,
    x: Vec<f64>,
    p: usize,
}

impl Data {
    fn n(&self) -> usize {
        self.time.len()
    }
    fn subset(&self, idx: &[usize]) -> Data {
        Data {
            time: idx.iter().map(|&i| self.time[i]).collect(),
            event: idx.iter().map(|&i| self.event[i]).collect(),
            x: idx.iter().flat_map(|&i| self.x[i * self.p..(i + 1) * self.p].to_vec()).collect(),
            p: self.p,
        }
    }
}

/// Seeded Cox data: 3 standard-normal-ish covariates, β = (0.8, −0.5, 0.3), baseline hazard
/// 1/2000 per day, uniform censoring on [500, 4000] days, times rounded to whole days.
fn cox_data(n: usize, seed: u64) -> Data {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let beta = [0.8, -0.5, 0.3];
    let (mut time, mut event, mut x) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let xi: Vec<f64> = (0..3).map(|_| rng.gen_range(-1.7..1.7)).collect();
        let lp: f64 = xi.iter().zip(beta).map(|(a, b)| a * b).sum();
        let u: f64 = rng.gen_range(1e-12..1.0);
        let t = -u.ln() / (lp.exp() / 2000.0);
        let c: f64 = rng.gen_range(500.0..4000.0);
        time.push(t.min(c).round().max(1.0));
        event.push(t <= c);
        x.extend(xi);
    }
    Data { time, event, x, p: 3 }
}

fn gbsg2() -> Data {
    let t = survival::CsvTable::read(GBSG2_CSV).unwrap();
    let cols = ["age", "tsize", "pnodes", "progrec", "estrec", "tgrade", "horTh", "menostat"];
    let colv: Vec<Vec<f64>> = cols.iter().map(|c| t.numeric(c).unwrap()).collect();
    let n = t.len();
    // log1p of the skewed counts/receptors keeps the Cox fit well conditioned.
    let x = (0..n)
        .flat_map(|i| {
            colv.iter()
                .enumerate()
                .map(move |(j, c)| if (2..=4).contains(&j) { c[i].ln_1p() } else { c[i] })
                .collect::<Vec<_>>()
        })
        .collect();
    Data { time: t.times("time").unwrap(), event: t.events("event").unwrap(), x, p: cols.len() }
}

/// A fold model as written: risk = rf·xᵀβ̂ and baseline = hf·Ĥ₀ (hf = rf = 1: honest).
struct Model {
    beta: Vec<f64>,
    times: Vec<f64>,
    cumhaz: Vec<f64>,
}

fn fit(d: &Data, hf: f64) -> Model {
    let names: Vec<String> = (0..d.p).map(|j| format!("x{j}")).collect();
    let f =
        fit_cox(&d.time, &d.event, &d.x, &names, &CoxOptions { concordance: false, ..CoxOptions::default() }).unwrap();
    Model {
        beta: f.beta(),
        times: f.baseline_times.clone(),
        cumhaz: f.baseline_cumulative_hazard.iter().map(|h| h * hf).collect(),
    }
}

impl Model {
    fn risk(&self, d: &Data, i: usize, rf: f64) -> f64 {
        rf * d.x[i * d.p..(i + 1) * d.p].iter().zip(&self.beta).map(|(a, b)| a * b).sum::<f64>()
    }
    fn h(&self, t: f64) -> f64 {
        let k = self.times.partition_point(|&s| s <= t);
        if k == 0 {
            0.0
        } else {
            self.cumhaz[k - 1]
        }
    }
}

/// One outer fold's inner predictions: ((repeat, fold), time, event, S(h)).
type InnerTruth = ((usize, usize), Vec<f64>, Vec<bool>, Vec<f64>);

/// What the fixture knows about its predictions, to check the stage independently.
struct Truth {
    /// Per repeat: (time, event, S(h)) of every patient.
    surv: Vec<(Vec<f64>, Vec<bool>, Vec<f64>)>,
    /// Per (repeat, outer fold): inner (time, event, S(h)).
    inner: Vec<InnerTruth>,
}

/// Writes a `train` output directory (the `train` contract's oof.csv, baseline.csv,
/// inner_oof.csv, inner_baseline.csv) for `k`-fold CV with `inner_k` inner folds.
#[allow(clippy::too_many_arguments)]
fn write_train_dir(
    dir: &Path,
    d: &Data,
    k: usize,
    inner_k: usize,
    repeats: usize,
    hf: f64,
    rf: f64,
    horizon: f64,
    seed: u64,
) -> Truth {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut oof = String::from("repeat,patient,fold,risk,time,event\n");
    let mut base = String::from("repeat,fold,time,cumhaz\n");
    let mut ioof = String::from("repeat,outer_fold,inner_fold,patient,risk,time,event\n");
    let mut ibase = String::from("repeat,outer_fold,inner_fold,time,cumhaz\n");
    let mut truth = Truth { surv: Vec::new(), inner: Vec::new() };
    for rep in 0..repeats {
        let mut perm: Vec<usize> = (0..d.n()).collect();
        perm.shuffle(&mut rng);
        let mut fold = vec![0usize; d.n()];
        for (pos, &i) in perm.iter().enumerate() {
            fold[i] = pos % k;
        }
        let mut s_rep = vec![0.0; d.n()];
        for f in 0..k {
            let train: Vec<usize> = (0..d.n()).filter(|&i| fold[i] != f).collect();
            let m = fit(&d.subset(&train), hf);
            for (t, h) in m.times.iter().zip(&m.cumhaz) {
                base += &format!("{rep},{f},{t},{h}\n");
            }
            for i in (0..d.n()).filter(|&i| fold[i] == f) {
                let r = m.risk(d, i, rf);
                oof += &format!("{rep},P{i:04},{f},{r},{},{}\n", d.time[i], d.event[i] as u8);
                s_rep[i] = (-m.h(horizon) * r.exp()).exp();
            }
            // Inner CV over the training patients.
            let (mut it, mut ie, mut is) = (Vec::new(), Vec::new(), Vec::new());
            for g in 0..inner_k {
                let itrain: Vec<usize> =
                    train.iter().enumerate().filter(|(pos, _)| pos % inner_k != g).map(|(_, &i)| i).collect();
                let im = fit(&d.subset(&itrain), hf);
                for (t, h) in im.times.iter().zip(&im.cumhaz) {
                    ibase += &format!("{rep},{f},{g},{t},{h}\n");
                }
                for (_, &i) in train.iter().enumerate().filter(|(pos, _)| pos % inner_k == g) {
                    let r = im.risk(d, i, rf);
                    ioof += &format!("{rep},{f},{g},P{i:04},{r},{},{}\n", d.time[i], d.event[i] as u8);
                    it.push(d.time[i]);
                    ie.push(d.event[i]);
                    is.push((-im.h(horizon) * r.exp()).exp());
                }
            }
            truth.inner.push(((rep, f), it, ie, is));
        }
        truth.surv.push((d.time.clone(), d.event.clone(), s_rep));
    }
    std::fs::write(dir.join("oof.csv"), oof).unwrap();
    std::fs::write(dir.join("baseline.csv"), base).unwrap();
    std::fs::write(dir.join("inner_oof.csv"), ioof).unwrap();
    std::fs::write(dir.join("inner_baseline.csv"), ibase).unwrap();
    truth
}

/// Checks and runs the stage on `train_dir` as the `train` need of arm `arm`.
fn run_stage(params: Value, train_dir: &Path, kind: &str, work: &Path) -> anyhow::Result<PathBuf> {
    let cx = CheckCx { stage: "calib", cohort: None, experiment: "test", spec_file: "test.yaml" };
    let checked = Calibrate.check(&params, &cx).map_err(|e| anyhow::anyhow!("{:?}: {}", e.path, e.msg))?;
    let out = work.join(format!("out{}", std::fs::read_dir(work).map(|r| r.count()).unwrap_or(0)));
    let scratch = work.join("scratch");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&scratch).unwrap();
    let log = Mutex::new(std::fs::File::create(work.join("log.txt")).unwrap());
    let needs = vec![Need {
        name: "model".into(),
        kind: kind.into(),
        dirs: vec![(None, train_dir.to_path_buf())],
        arms: vec!["modalities=clinical".into()],
    }];
    let rc = RunCx {
        stage: "calib",
        key: "k",
        params: &checked.params,
        typed: &checked.typed,
        out: &out,
        scratch: &scratch,
        root: work,
        needs: &needs,
        inputs: &[],
        item: None,
        seed: 7,
        cohort: None,
        slides: &[],
        upstream: &[],
        log: &log,
    };
    Calibrate.run(&rc)?;
    Ok(out)
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

/// Bins computed here: stable sort by predicted risk, equal-count cuts, KM at the horizon.
fn direct_bins(
    time: &[f64],
    event: &[bool],
    surv: &[f64],
    horizon: f64,
    bins: usize,
    level: f64,
) -> Vec<(usize, f64, f64, f64, f64)> {
    let n = time.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| (1.0 - surv[a]).partial_cmp(&(1.0 - surv[b])).unwrap());
    (0..bins)
        .map(|b| {
            let idx = &order[b * n / bins..(b + 1) * n / bins];
            let t: Vec<f64> = idx.iter().map(|&i| time[i]).collect();
            let e: Vec<bool> = idx.iter().map(|&i| event[i]).collect();
            let km = KaplanMeier::fit_with_level(&t, &e, level).unwrap();
            let est = km.estimate_at(horizon);
            let pred = idx.iter().map(|&i| 1.0 - surv[i]).sum::<f64>() / idx.len() as f64;
            (idx.len(), pred, 1.0 - est.survival, 1.0 - est.upper, 1.0 - est.lower)
        })
        .collect()
}

/// `spatia survival calibration --json` on (time, event, S(h)) written here.
fn cli_calibration(work: &Path, time: &[f64], event: &[bool], surv: &[f64], horizon: f64, bins: usize) -> Value {
    let csv = work.join("cli_input.csv");
    let mut s = String::from("time,event,surv\n");
    for i in 0..time.len() {
        s += &format!("{},{},{}\n", time[i], event[i] as u8, surv[i]);
    }
    std::fs::write(&csv, s).unwrap();
    let out = Command::new(BIN)
        .args([
            "survival",
            "calibration",
            "--csv",
            csv.to_str().unwrap(),
            "--time",
            "time",
            "--event",
            "event",
            "--surv",
            "surv",
        ])
        .args(["--horizon", &horizon.to_string(), "--bins", &bins.to_string(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Independent recalibration fit: b from a Cox fit of cloglog(S), a by a quadratic-time Breslow sum.
fn direct_recalibration(time: &[f64], event: &[bool], surv: &[f64], horizon: f64) -> (f64, f64) {
    let c: Vec<f64> = surv.iter().map(|s| (-s.clamp(1e-10, 1.0 - 1e-10).ln()).ln()).collect();
    let fit = fit_cox(time, event, &c, &["c".to_string()], &CoxOptions::default()).unwrap();
    let b = fit.beta()[0];
    let mut event_times: Vec<f64> =
        (0..time.len()).filter(|&i| event[i] && time[i] <= horizon).map(|i| time[i]).collect();
    event_times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    event_times.dedup();
    let h: f64 = event_times
        .iter()
        .map(|&t| {
            let d = (0..time.len()).filter(|&i| event[i] && time[i] == t).count() as f64;
            let r: f64 = (0..time.len()).filter(|&i| time[i] >= t).map(|i| (b * c[i]).exp()).sum();
            d / r
        })
        .sum();
    (h.ln(), b)
}

#[test]
fn miscalibrated_cox_predictions_bins_statistics_and_recalibration() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train");
    let horizon = 1825.0;
    let d = cox_data(400, 7);
    let truth = write_train_dir(&train, &d, 5, 4, 1, 2.0, 1.5, horizon, 11);
    let work = tmp.path().join("w");
    std::fs::create_dir_all(&work).unwrap();
    let out = run_stage(json!({"horizon": horizon}), &train, "train", &work).unwrap();
    let j = read_json(&out.join("calibration.json"));
    assert_eq!(j["schema"], 1);
    assert!(j.get("arm").is_none(), "an arm label would depend on which arm first made a shared node");
    assert_eq!(f(&j["horizon"]), horizon);
    assert_eq!(j["n"], 400);
    assert_eq!(j["events"], d.event.iter().filter(|&&e| e).count());
    assert_eq!(j["repeats"], 1);

    // Bins against a Kaplan–Meier computed here, in the JSON and in bins.csv.
    let (t, e, s) = &truth.surv[0];
    let direct = direct_bins(t, e, s, horizon, 5, 0.95);
    let bins = j["bins"].as_array().unwrap();
    assert_eq!(bins.len(), 5);
    let csv = std::fs::read_to_string(out.join("bins.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("bin,n,events,at_risk,predicted,observed,lower,upper"));
    for (b, (jb, (n, pred, obs, lo, hi))) in bins.iter().zip(&direct).enumerate() {
        assert_eq!(jb["bin"], b);
        assert_eq!(jb["n"], *n);
        for (key, want) in [("predicted", pred), ("observed", obs), ("lower", lo), ("upper", hi)] {
            assert!(close(f(&jb[key]), *want, 1e-12), "bin {b} {key}: {} vs {want}", jb[key]);
        }
        let row: Vec<f64> = lines.next().unwrap().split(',').map(|v| v.parse().unwrap()).collect();
        assert_eq!(row[0] as usize, b);
        assert_eq!(row[1] as usize, *n);
        assert!(
            close(row[4], *pred, 1e-15)
                && close(row[5], *obs, 1e-15)
                && close(row[6], *lo, 1e-15)
                && close(row[7], *hi, 1e-15)
        );
        assert!(f(&jb["lower"]) <= f(&jb["observed"]) && f(&jb["observed"]) <= f(&jb["upper"]));
    }
    // Mis-calibration is visible: a doubled hazard → predicted above observed in every bin
    // (least at the saturated top, where both approach 1).
    let over: Vec<f64> = bins.iter().map(|b| f(&b["predicted"]) - f(&b["observed"])).collect();
    assert!(over.iter().all(|&v| v > 0.0) && over.iter().cloned().fold(0.0, f64::max) > 0.1, "{over:?}");

    // Statistics equal `spatia survival calibration` on the same predictions.
    let cli = cli_calibration(&work, t, e, s, horizon, 5);
    for key in ["slope", "intercept", "ici", "e50", "e90"] {
        assert!(close(f(&j[key]), f(&cli[key]), 1e-12), "{key}: stage {} vs CLI {}", j[key], cli[key]);
    }
    for (jb, cb) in bins.iter().zip(cli["bins"].as_array().unwrap()) {
        for key in ["n", "predicted", "observed", "lower", "upper"] {
            assert!(close(f(&jb[key]), f(&cb[key]), 1e-12), "{key}: {} vs {}", jb[key], cb[key]);
        }
    }
    let (slope, intercept, ici) = (f(&j["slope"]), f(&j["intercept"]), f(&j["ici"]));
    assert!(slope < 0.85, "a 1.5× steeper score should give a slope well below 1, found {slope}");
    assert!(intercept < -0.3, "a doubled hazard should give an intercept near log ½, found {intercept}");

    // Recalibration: per-fold (a, b) equal a direct fit on the inner predictions, and the
    // recalibrated predictions are better calibrated.
    let r = &j["recalibrated"];
    let folds = r["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 5);
    for (fj, ((rep, fold), it, ie, is)) in folds.iter().zip(&truth.inner) {
        assert_eq!((fj["repeat"].as_u64().unwrap() as usize, fj["fold"].as_u64().unwrap() as usize), (*rep, *fold));
        assert_eq!(fj["n_inner"], 320);
        let (a, b) = direct_recalibration(it, ie, is, horizon);
        assert!(
            close(f(&fj["a"]), a, 1e-9) && close(f(&fj["b"]), b, 1e-9),
            "fold {fold}: ({}, {}) vs ({a}, {b})",
            fj["a"],
            fj["b"]
        );
        assert!(b < 1.0, "fold {fold}: inner slope {b}");
    }
    let (slope2, intercept2, ici2) = (f(&r["slope"]), f(&r["intercept"]), f(&r["ici"]));
    eprintln!(
        "n {} events {} bin0 {} fold0 {} slope_se {}",
        j["n"], j["events"], j["bins"][0], folds[0], j["slope_se"]
    );
    eprintln!("seeded Cox ×2 hazard ×1.5 score: slope {slope:.4} → {slope2:.4}, intercept {intercept:.4} → {intercept2:.4}, ICI {ici:.4} → {ici2:.4}, E90 {:.4} → {:.4}", f(&j["e90"]), f(&r["e90"]));
    assert!((slope2 - 1.0).abs() < (slope - 1.0).abs(), "slope {slope} → {slope2}");
    assert!(intercept2.abs() < intercept.abs(), "intercept {intercept} → {intercept2}");
    assert!(ici2 < ici * 0.6, "ICI {ici} → {ici2}");
    // The recalibrated statistics are the CLI's on the recalibrated predictions.
    let pred = std::fs::read_to_string(out.join("predictions.csv")).unwrap();
    let mut pl = pred.lines();
    assert_eq!(pl.next(), Some("repeat,patient,fold,time,event,survival,survival_recalibrated"));
    let s2: Vec<f64> = pl.map(|l| l.rsplit(',').next().unwrap().parse().unwrap()).collect();
    let t2: Vec<f64> = pred.lines().skip(1).map(|l| l.split(',').nth(3).unwrap().parse().unwrap()).collect();
    let e2: Vec<bool> = pred.lines().skip(1).map(|l| l.split(',').nth(4).unwrap() == "1").collect();
    let cli2 = cli_calibration(&work, &t2, &e2, &s2, horizon, 5);
    for key in ["slope", "intercept", "ici", "e50", "e90"] {
        assert!(close(f(&r[key]), f(&cli2[key]), 1e-12), "recalibrated {key}: {} vs CLI {}", r[key], cli2[key]);
    }
    // The documented command, literally, on predictions.csv.
    for (col, doc) in [("survival", &j), ("survival_recalibrated", r)] {
        let o = Command::new(BIN)
            .args(["survival", "calibration", "--csv"])
            .arg(out.join("predictions.csv"))
            .args(["--time", "time", "--event", "event", "--surv", col, "--horizon", "1825", "--bins", "5", "--json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        for key in ["slope", "intercept", "ici", "e50", "e90"] {
            assert_eq!(f(&doc[key]), f(&v[key]), "{col} {key}");
        }
        for (a, b) in doc["bins"].as_array().unwrap().iter().zip(v["bins"].as_array().unwrap()) {
            assert_eq!((f(&a["observed"]), f(&a["upper"])), (f(&b["observed"]), f(&b["upper"])), "{col}");
        }
    }
    let rb = std::fs::read_to_string(out.join("bins_recalibrated.csv")).unwrap();
    assert_eq!(rb.lines().count(), 6);

    // Deterministic: a second run writes identical bytes.
    let again = run_stage(json!({"horizon": horizon}), &train, "train", &work).unwrap();
    for file in ["calibration.json", "bins.csv", "bins_recalibrated.csv", "predictions.csv"] {
        assert_eq!(std::fs::read(out.join(file)).unwrap(), std::fs::read(again.join(file)).unwrap(), "{file}");
    }

    // Another CI level and bin count; no recalibration.
    let out3 = run_stage(json!({"horizon": 1000, "bins": 4, "ci": 0.8, "recalibrate": false}), &train, "train", &work)
        .unwrap();
    let j3 = read_json(&out3.join("calibration.json"));
    assert!(j3["recalibrated"].is_null());
    assert!(!out3.join("bins_recalibrated.csv").exists());
    let s1000: Vec<f64> = {
        // S(1000) = S(1825)^(H0(1000)/H0(1825)) per fold is not available here: recompute from files.
        let oof = Oof::read(&train.join("oof.csv")).unwrap().rows;
        let bl = Baselines::read(&train.join("baseline.csv")).unwrap().folds;
        oof.iter().map(|r| bl[&(r.repeat, r.fold)].survival(r.risk, 1000.0)).collect()
    };
    let oof = Oof::read(&train.join("oof.csv")).unwrap().rows;
    let (t3, e3): (Vec<f64>, Vec<bool>) = oof.iter().map(|r| (r.time, r.event)).unzip();
    let d3 = direct_bins(&t3, &e3, &s1000, 1000.0, 4, 0.8);
    for (jb, (n, pred, obs, lo, hi)) in j3["bins"].as_array().unwrap().iter().zip(&d3) {
        assert_eq!(jb["n"], *n);
        for (key, want) in [("predicted", pred), ("observed", obs), ("lower", lo), ("upper", hi)] {
            assert!(close(f(&jb[key]), *want, 1e-12), "{key}: {} vs {want}", jb[key]);
        }
    }
}

#[test]
fn gbsg2_cross_validated_cox_with_repeats() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train");
    let d = gbsg2();
    let horizon = 1825.0;
    let truth = write_train_dir(&train, &d, 5, 3, 2, 1.0, 1.0, horizon, 3);
    let work = tmp.path().join("w");
    std::fs::create_dir_all(&work).unwrap();
    let out = run_stage(json!({"horizon": horizon, "bins": 10}), &train, "train", &work).unwrap();
    let j = read_json(&out.join("calibration.json"));
    assert_eq!((j["n"].as_u64(), j["events"].as_u64(), j["repeats"].as_u64()), (Some(686), Some(299), Some(2)));
    let per = j["per_repeat"].as_array().unwrap();
    assert_eq!(per.len(), 2);
    for (rep, pr) in per.iter().enumerate() {
        let (t, e, s) = &truth.surv[rep];
        let cli = cli_calibration(&work, t, e, s, horizon, 10);
        for key in ["slope", "intercept", "ici", "e50", "e90"] {
            assert!(close(f(&pr[key]), f(&cli[key]), 1e-12), "repeat {rep} {key}: {} vs {}", pr[key], cli[key]);
        }
        if rep == 0 {
            for (jb, cb) in j["bins"].as_array().unwrap().iter().zip(cli["bins"].as_array().unwrap()) {
                assert!(close(f(&jb["observed"]), f(&cb["observed"]), 1e-12));
            }
        }
    }
    for key in ["slope", "intercept", "ici", "e50", "e90"] {
        let mean = (f(&per[0][key]) + f(&per[1][key])) / 2.0;
        assert!(close(f(&j[key]), mean, 1e-12), "{key} is the mean over repeats");
    }
    // Honest cross-validated Cox on GBSG2 is roughly calibrated.
    let slope = f(&j["slope"]);
    let r = &j["recalibrated"];
    eprintln!(
        "GBSG2 5-fold × 2 repeats: slope {slope:.4} → {:.4}, intercept {:.4} → {:.4}, ICI {:.4} → {:.4}",
        f(&r["slope"]),
        f(&j["intercept"]),
        f(&r["intercept"]),
        f(&j["ici"]),
        f(&r["ici"])
    );
    assert!((0.6..1.4).contains(&slope), "slope {slope}");
    assert!(f(&j["ici"]) < 0.1, "ICI {}", j["ici"]);
    assert_eq!(j["recalibrated"]["folds"].as_array().unwrap().len(), 10);
}

/// Copies the fixture into a fresh directory, applies `edit` to one file, runs the stage.
fn run_edited(base: &Path, work: &Path, file: &str, edit: impl Fn(String) -> Option<String>, params: Value) -> String {
    let dir = work.join(format!("edit{}", std::fs::read_dir(work).map(|r| r.count()).unwrap_or(0)));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(base).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    match edit(text) {
        Some(t) => std::fs::write(dir.join(file), t).unwrap(),
        None => std::fs::remove_file(dir.join(file)).unwrap(),
    }
    let w = dir.join("work");
    std::fs::create_dir_all(&w).unwrap();
    match run_stage(params, &dir, "train", &w) {
        Ok(_) => "ok".to_string(),
        Err(e) => {
            eprintln!("error: {e:#}");
            format!("{e:#}")
        }
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train");
    let d = cox_data(120, 9);
    write_train_dir(&train, &d, 3, 2, 1, 1.0, 1.0, 1000.0, 5);
    let work = tmp.path().join("w");
    std::fs::create_dir_all(&work).unwrap();
    let p = json!({"horizon": 1000});

    let e = run_edited(&train, &work, "oof.csv", |_| None, p.clone());
    assert!(e.contains("oof.csv") && e.contains("cannot open"), "{e}");
    let e = run_edited(&train, &work, "oof.csv", |t| Some(t.replacen("risk", "score", 1)), p.clone());
    assert!(
        e.contains("oof.csv") && e.contains("column 'risk'") && e.contains("found only repeat, patient, fold, score"),
        "{e}"
    );
    let e = run_edited(
        &train,
        &work,
        "oof.csv",
        |t| {
            let mut l: Vec<String> = t.lines().map(String::from).collect();
            let mut f: Vec<String> = l[3].split(',').map(String::from).collect();
            f[3] = "high".into();
            l[3] = f.join(",");
            Some(l.join("\n") + "\n")
        },
        p.clone(),
    );
    assert!(
        e.contains("oof.csv") && e.contains("data row 3") && e.contains("column 'risk'") && e.contains("'high'"),
        "{e}"
    );
    let e = run_edited(&train, &work, "oof.csv", |t| Some(t.replacen("\n0,P", "\n0.5,P", 1)), p.clone());
    assert!(e.contains("data row 1, column 'repeat'") && e.contains("non-negative integer"), "{e}");
    let e = run_edited(
        &train,
        &work,
        "oof.csv",
        |t| {
            let second = t.lines().nth(1).unwrap().to_string();
            Some(format!("{t}{second}\n"))
        },
        p.clone(),
    );
    assert!(e.contains("once per repeat") && e.contains("data row 121") && e.contains("data row 1"), "{e}");
    // A decreasing cumulative hazard in baseline.csv names its data row and column.
    let e = run_edited(
        &train,
        &work,
        "baseline.csv",
        |t| {
            let mut l: Vec<String> = t.lines().map(String::from).collect();
            let mut f: Vec<String> = l[5].split(',').map(String::from).collect();
            f[3] = "0".into();
            l[5] = f.join(",");
            Some(l.join("\n") + "\n")
        },
        p.clone(),
    );
    assert!(e.contains("baseline.csv, data row 5, column 'cumhaz'") && e.contains("repeat 0 fold 0"), "{e}");
    // A fold without baseline rows.
    let e = run_edited(
        &train,
        &work,
        "baseline.csv",
        |t| Some(t.lines().filter(|l| !l.starts_with("0,2,")).map(|l| format!("{l}\n")).collect()),
        p.clone(),
    );
    assert!(e.contains("baseline.csv") && e.contains("no baseline for repeat 0 fold 2"), "{e}");
    // Recalibration needs the inner files; without recalibration they are not read.
    let e = run_edited(&train, &work, "inner_oof.csv", |_| None, p.clone());
    assert!(e.contains("inner_oof.csv") && e.contains("cannot open"), "{e}");
    let e = run_edited(&train, &work, "inner_oof.csv", |_| None, json!({"horizon": 1000, "recalibrate": false}));
    assert_eq!(e, "ok");
    let e = run_edited(&train, &work, "inner_baseline.csv", |t| Some(t.replace("cumhaz", "H")), p.clone());
    assert!(e.contains("inner_baseline.csv") && e.contains("column 'cumhaz'"), "{e}");
    // A test patient among the inner predictions (leakage) is refused.
    let oof = std::fs::read_to_string(train.join("oof.csv")).unwrap();
    let test_patient =
        oof.lines().skip(1).find(|l| l.split(',').nth(2) == Some("0")).unwrap().split(',').nth(1).unwrap().to_string();
    let e = run_edited(
        &train,
        &work,
        "inner_oof.csv",
        |t| {
            let mut l: Vec<String> = t.lines().map(String::from).collect();
            let mut f: Vec<String> = l[1].split(',').map(String::from).collect();
            f[3] = test_patient.clone();
            l[1] = f.join(",");
            Some(l.join("\n") + "\n")
        },
        p.clone(),
    );
    assert!(e.contains("inner_oof.csv") && e.contains("repeat 0 outer fold 0") && e.contains(&test_patient), "{e}");
    // Horizon past follow-up.
    let max = d.time.iter().cloned().fold(0.0, f64::max);
    let e = run_edited(&train, &work, "oof.csv", Some, json!({"horizon": max + 1.0}));
    assert!(e.contains("oof.csv, column 'time'") && e.contains("past the longest follow-up"), "{e}");

    // Needs other than one `train` stage.
    let w = work.join("needs");
    std::fs::create_dir_all(&w).unwrap();
    let e = format!("{:#}", run_stage(p.clone(), &train, "extract", &w).unwrap_err());
    assert!(e.contains("exactly one stage of kind `train`") && e.contains("`model` (extract)"), "{e}");
}

#[test]
fn parameters_are_checked() {
    let cx = CheckCx { stage: "calib", cohort: None, experiment: "x", spec_file: "x.yaml" };
    let ok = Calibrate.check(&json!({"horizon": 1825}), &cx).unwrap();
    assert_eq!(ok.params, json!({"horizon": 1825, "bins": 5, "ci": 0.95, "recalibrate": true}));
    assert!(!ok.uses_seed);
    let err = |v: Value| Calibrate.check(&v, &cx).unwrap_err();
    let e = err(json!({}));
    assert!(e.path.is_empty() && e.msg.contains("needs `horizon`"), "{}", e.msg);
    let e = err(json!({"horizon": 1825, "bin": 3}));
    assert_eq!(format!("{:?}", e.path), "[Key(\"bin\")]");
    assert!(e.msg.contains("unknown field `bin`"), "{}", e.msg);
    for (v, key, text) in [
        (json!({"horizon": 0}), "horizon", "finite time > 0"),
        (json!({"horizon": -5.0}), "horizon", "finite time > 0"),
        (json!({"horizon": 100, "bins": 0}), "bins", "`bins` must be an integer from 1 to 100"),
        (json!({"horizon": 100, "ci": 1.0}), "ci", "`ci` must be a number > 0 and ≤ 0.9999"),
        (json!({"horizon": 100, "ci": 0}), "ci", "`ci` must be a number > 0 and ≤ 0.9999"),
        (json!({"horizon": "5y"}), "horizon", "expected a number"),
        (json!({"horizon": 100, "recalibrate": "yes"}), "recalibrate", "expected a boolean"),
    ] {
        let e = err(v.clone());
        assert_eq!(format!("{:?}", e.path), format!("[Key(\"{key}\")]"), "{v}");
        assert!(e.msg.contains(text), "{v}: {}", e.msg);
    }
}

/// Compiles a spec with a `calibrate` stage and returns `line:col: message` of its error.
fn spec_error(calib: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("clin.csv"), "patient_id,time,event\np1,1,1\n").unwrap();
    let yaml = format!("name: x\nstages:\n  a: {{kind: command, cmd: x}}\n  calib: {calib}\n");
    match spatia::spec::compile_str(&yaml, "spec.yaml", dir.path().join("spec.yaml"), dir.path().to_path_buf()) {
        Ok(_) => "ok".into(),
        Err(spatia::spec::SpecError::At { line, col, msg, .. }) => format!("{line}:{col}: {msg}"),
        Err(e) => format!("{e}"),
    }
}

#[test]
fn spec_errors_point_at_the_parameter() {
    assert_eq!(spec_error("{kind: calibrate, needs: [a], horizon: 1825}"), "ok");
    let e = spec_error("{kind: calibrate, needs: [a], horizon: 1825, bin: 3}");
    assert!(e.starts_with("4:55:") && e.contains("unknown field `bin`"), "{e}");
    let e = spec_error("{kind: calibrate, needs: [a], horizon: -1}");
    assert!(e.starts_with("4:49:") && e.contains("finite time > 0"), "{e}");
    let e = spec_error("{kind: calibrate, needs: [a]}");
    assert!(e.starts_with("4:") && e.contains("needs `horizon`"), "{e}");
}
