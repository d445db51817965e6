//! The study in a competing-risks cohort (Melanoma: 1 = death from melanoma, 2 = death from
//! other causes, tests/data/melanoma.csv): the `cohort.causes` coding and its errors, `train`'s
//! `competing.json` (cause-specific and Fine–Gray), and `evaluate`'s `competing_metrics.json`,
//! whose AUC and Brier score must equal riskRegression's `Score(…, cause = 1)` on the same
//! predicted cumulative incidences (live `Rscript tests/competing_score.R`, skipped with a loud
//! message only when Rscript is missing and SPATIA_REQUIRE_R is unset). Tolerance 1e-6.
mod common;
use common::*;
use spatia::contracts::competing::CompetingJson;
use spatia::contracts::competing_calibration::CompetingCalibration;
use spatia::contracts::competing_metrics::CompetingMetrics;
use spatia::model::competing::predicted_cif;
use spatia::survival::{competing_auc, competing_brier, CompetingRisksData, CumulativeIncidence};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const HORIZONS: [f64; 3] = [365.0, 1000.0, 1826.0];

fn cohort(causes: &str) -> String {
    format!(
        "cohort:\n  clinical: melanoma.csv\n  id: \"@row\"\n  time: time\n  event: status\n{causes}  covariates: [age, sex, thick, ulcer]\n"
    )
}

fn melanoma_project(causes: &str, stages: &str) -> tempfile::TempDir {
    let d = project();
    std::fs::copy(format!("{ROOT}/tests/data/melanoma.csv"), d.path().join("melanoma.csv")).unwrap();
    let spec = format!("name: cr\nseed: 3\n{}stages:\n{stages}", cohort(causes));
    std::fs::write(d.path().join("s.yaml"), spec).unwrap();
    d
}

const STAGES: &str = "  model:\n    kind: train\n    modalities: [clinical]\n    competing: cause_specific\n    folds: 4\n    inner_folds: 3\n    penalties: [0.01, 0.1, 1.0]\n  eval:\n    kind: evaluate\n    needs: [model]\n    horizons: [365, 1000, 1826]\n    bootstrap: 40\n  calib:\n    kind: calibrate\n    needs: [model]\n    horizon: 1826\n    bins: 4\nmatrix:\n  model.competing: [cause_specific, fine_gray]\n";

/// Output directory of each node of `stage`, by arm.
fn out_dirs(dir: &Path, stage: &str) -> BTreeMap<String, PathBuf> {
    let run = last_run(dir);
    let mut m = BTreeMap::new();
    for n in run["nodes"].as_array().unwrap().iter().filter(|n| n["stage"] == stage) {
        let k = n["key"].as_str().unwrap();
        for a in n["arms"].as_array().unwrap() {
            m.insert(a.as_str().unwrap().to_string(), dir.join("cache/entries").join(&k[..2]).join(k).join("out"));
        }
    }
    m
}

/// riskRegression's Score of the predictions, or `None` when Rscript is absent and not required.
fn r_score(csv: &Path) -> Option<serde_json::Value> {
    match Command::new("Rscript").arg("tests/competing_score.R").arg(csv).current_dir(ROOT).output() {
        Ok(o) if o.status.success() => Some(serde_json::from_slice(&o.stdout).expect("R printed JSON")),
        Ok(o) => panic!("tests/competing_score.R failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            assert!(
                std::env::var_os("SPATIA_REQUIRE_R").is_none(),
                "Rscript is required (SPATIA_REQUIRE_R is set) but cannot be run: {e}"
            );
            eprintln!("\n!!!!!!!! SKIPPING the live R comparison: Rscript not found ({e}) !!!!!!!!\n");
            None
        }
    }
}

fn nums(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn train_and_evaluate_in_a_competing_risks_cohort_agree_with_risk_regression() {
    let d = melanoma_project("  causes: {1: melanoma, 2: other}\n", STAGES);
    let o = spatia(d.path(), &["run", "s.yaml", "--quiet"]);
    assert!(o.status.success(), "{}", text(&o));
    let trains = out_dirs(d.path(), "model");
    assert_eq!(trains.len(), 2, "{trains:?}");
    let eval = out_dirs(d.path(), "eval");
    let metrics = CompetingMetrics::read(&eval.values().next().unwrap().join(CompetingMetrics::FILE)).unwrap();
    assert_eq!(metrics.arms.len(), 2);
    let mut report = Vec::new();
    for arm in &metrics.arms {
        let c = CompetingJson::read(&trains[&arm.arm].join(CompetingJson::FILE)).unwrap();
        assert_eq!(c.method, arm.method);
        assert_eq!(c.folds.len(), 4);
        assert_eq!(c.folds[0].models.len(), if c.method == "fine_gray" { 1 } else { 2 });
        assert_eq!((arm.n, arm.events, arm.competing_events, arm.censored), (205, 57, 14, 134));
        // the cohort table carries the codes: oof.csv's event is cause 1 only
        let oof = csv_rows(&trains[&arm.arm].join("oof.csv"));
        assert_eq!(oof.iter().filter(|r| r["event"] == "1").count(), 57);
        // predicted CIF at the horizons, and Rust's metrics on it
        let cif = predicted_cif(&c, &HORIZONS).unwrap().remove(&0).unwrap();
        let data = CompetingRisksData::new(c.patients.iter().map(|p| p.time).collect(), c.status()).unwrap();
        let refs: Vec<&[f64]> = cif.iter().map(Vec::as_slice).collect();
        let auc = competing_auc(&data, 1, &refs, &HORIZONS).unwrap();
        let brier = competing_brier(&data, 1, &refs, &HORIZONS).unwrap();
        for k in 0..HORIZONS.len() {
            // the same numbers up to the order of a floating-point sum
            assert!((arm.horizons[k].auc.estimate - auc[k].auc).abs() < 1e-12, "{:?} vs {:?}", arm.horizons[k], auc[k]);
            assert!((arm.horizons[k].brier.estimate - brier[k]).abs() < 1e-12, "{:?} vs {}", arm.horizons[k], brier[k]);
            let h = &arm.horizons[k];
            assert!(h.auc.lower <= h.auc.estimate && h.auc.estimate <= h.auc.upper, "{h:?}");
            assert!(h.auc.estimate > 0.6, "{h:?}");
        }
        // per risk group, the Aalen–Johansen curves of both causes
        assert_eq!(arm.groups.len(), 2);
        assert!(arm.groups.iter().all(|g| g.curves.len() == 2 && g.curves[1].name == "other"));
        assert!(arm.gray.as_ref().is_some_and(|g| g.p < 0.05), "{:?}", arm.gray);
        // riskRegression's Score on the same predictions
        let csv = d.path().join(format!("{}.csv", arm.slug));
        let mut text = String::from("time,status,365,1000,1826\n");
        for (i, p) in c.patients.iter().enumerate() {
            text += &format!("{},{},{:?},{:?},{:?}\n", p.time, p.status, cif[0][i], cif[1][i], cif[2][i]);
        }
        std::fs::write(&csv, text).unwrap();
        if let Some(r) = r_score(&csv) {
            let (ra, rb) = (nums(&r["auc"]), nums(&r["brier"]));
            let mut da: f64 = 0.0;
            let mut db: f64 = 0.0;
            for k in 0..HORIZONS.len() {
                da = da.max((arm.horizons[k].auc.estimate - ra[k]).abs());
                db = db.max((arm.horizons[k].brier.estimate - rb[k]).abs());
            }
            assert!(da <= 1e-6 && db <= 1e-6, "{}: AUC {:?} vs R {ra:?}, Brier vs R {rb:?}", arm.arm, arm.horizons);
            report.push(format!("{}: AUC {da:.1e}, Brier {db:.1e}", arm.method));
        }
    }
    eprintln!("max |diff| vs riskRegression::Score: {}", report.join("; "));
    // calibrate: predicted CIF at the horizon against the Aalen–Johansen estimate
    for (arm, dir) in out_dirs(d.path(), "calib") {
        let cal = CompetingCalibration::read(&dir.join(CompetingCalibration::FILE)).unwrap();
        let c = CompetingJson::read(&trains[&arm].join(CompetingJson::FILE)).unwrap();
        let data = CompetingRisksData::new(c.patients.iter().map(|p| p.time).collect(), c.status()).unwrap();
        let aj = CumulativeIncidence::fit(&data, 1).unwrap();
        assert!((cal.observed - aj.value_at(1826.0).0).abs() < 1e-12);
        let cif = predicted_cif(&c, &[1826.0]).unwrap().remove(&0).unwrap();
        assert!((cal.mean_predicted - cif[0].iter().sum::<f64>() / 205.0).abs() < 1e-12);
        assert_eq!(cal.bins.len(), 4);
        assert!(cal.bins.windows(2).all(|w| w[0].predicted <= w[1].predicted), "{:?}", cal.bins);
        // 1 − KM of cause 1 (competing events censored) overstates the observed risk
        let km = spatia::survival::KaplanMeier::fit(&data.time, &data.cause_specific_events(1)).unwrap();
        assert!(1.0 - km.survival_at(1826.0) > cal.observed);
        assert!((0.7..1.4).contains(&cal.observed_expected), "{arm}: O/E {}", cal.observed_expected);
    }
}

#[test]
fn event_codes_outside_the_declared_causes_are_errors() {
    // no `causes`: a 2 in the event column names file, row, column, value and the fix
    let d = melanoma_project("", "  ingest: {kind: ingest}\n");
    let o = spatia(d.path(), &["run", "s.yaml", "--quiet"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("melanoma.csv: row 1, column `status`: event `2` is not 0 or 1") && t.contains("cohort.causes"),
        "{t}"
    );
    // a code not declared
    let d = melanoma_project("  causes: {1: melanoma, 3: other}\n", "  ingest: {kind: ingest}\n");
    let o = spatia(d.path(), &["run", "s.yaml", "--quiet"]);
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("row 1, column `status`: event `2` is not 0 (censored) or a cause declared"),
        "{t}"
    );
    // `causes` without 1, and `competing` without `causes`
    let d = melanoma_project("  causes: {2: other}\n", "  ingest: {kind: ingest}\n");
    let t = text(&spatia(d.path(), &["plan", "s.yaml"]));
    assert!(t.contains("s.yaml:") && t.contains("must declare code 1"), "{t}");
    let d = project();
    std::fs::copy(format!("{ROOT}/tests/data/melanoma.csv"), d.path().join("m.csv")).unwrap();
    std::fs::write(
        d.path().join("s.yaml"),
        "name: cr\ncohort:\n  clinical: m.csv\n  id: \"@row\"\n  event: status\n  covariates: [age]\nstages:\n  model: {kind: train, modalities: [clinical], competing: fine_gray}\n",
    )
    .unwrap();
    let t = text(&spatia(d.path(), &["plan", "s.yaml"]));
    assert!(t.contains("`competing` needs a competing-risks cohort"), "{t}");
    // with causes, ingest writes the codes and cohort.json counts the competing events
    let d = melanoma_project("  causes: {1: melanoma, 2: other}\n", "  ingest: {kind: ingest}\n");
    let o = spatia(d.path(), &["run", "s.yaml", "--quiet"]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = out_dirs(d.path(), "ingest").into_values().next().unwrap();
    let rows = csv_rows(&dir.join("cohort.csv"));
    assert_eq!(rows.iter().filter(|r| r["event"] == "2").count(), 14);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cohort.json")).unwrap()).unwrap();
    assert_eq!(
        (j["events"].as_u64(), j["censored"].as_u64(), j["competing"]["other"].as_u64()),
        (Some(57), Some(134), Some(14))
    );
}

#[test]
fn with_repeats_each_estimate_is_the_mean_over_repeats() {
    let stages = STAGES
        .replace("    folds: 4\n", "    folds: 4\n    repeats: 2\n")
        .replace("matrix:\n  model.competing: [cause_specific, fine_gray]\n", "");
    let d = melanoma_project("  causes: {1: melanoma, 2: other}\n", &stages);
    let o = spatia(d.path(), &["run", "s.yaml", "--quiet"]);
    assert!(o.status.success(), "{}", text(&o));
    let train = out_dirs(d.path(), "model").into_values().next().unwrap();
    let eval = out_dirs(d.path(), "eval").into_values().next().unwrap();
    let m = CompetingMetrics::read(&eval.join(CompetingMetrics::FILE)).unwrap();
    let c = CompetingJson::read(&train.join(CompetingJson::FILE)).unwrap();
    assert_eq!((m.arms[0].repeats, c.folds.len()), (2, 8));
    let data = CompetingRisksData::new(c.patients.iter().map(|p| p.time).collect(), c.status()).unwrap();
    let cif = predicted_cif(&c, &HORIZONS).unwrap();
    let mut mean = [0.0; 3];
    for per in cif.values() {
        let refs: Vec<&[f64]> = per.iter().map(Vec::as_slice).collect();
        for (k, a) in competing_auc(&data, 1, &refs, &HORIZONS).unwrap().iter().enumerate() {
            mean[k] += a.auc / 2.0;
        }
    }
    for k in 0..3 {
        assert!((m.arms[0].horizons[k].auc.estimate - mean[k]).abs() < 1e-12, "{:?} vs {mean:?}", m.arms[0].horizons);
    }
    // the two repeats' splits differ, so their predictions do
    assert_ne!(cif[&0], cif[&1]);
}
