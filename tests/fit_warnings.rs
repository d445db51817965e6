//! Cox fit diagnostics ([`spatia::survival::FitWarning`]): separation (no finite maximum) is
//! detected and named, in the library and in `spatia survival cox --json` (a `warnings` array,
//! each warning on stderr, exit 0); ordinary fits of real data warn about nothing.
use serde_json::Value;
use spatia::survival::*;
use std::io::Write;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_spatia");
const GBSG2_CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/clinical/gbsg2.csv");
const GSE7390_CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/clinical/breast_cancer_gse7390.csv");

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Time, event and the named columns (row-major) of a CSV.
fn load(path: &str, cols: &[&str]) -> (Vec<f64>, Vec<bool>, Vec<f64>) {
    let t = CsvTable::read(path).unwrap();
    let d = t.survival_data("time", "event").unwrap();
    let c: Vec<Vec<f64>> = cols.iter().map(|c| t.numeric(c).unwrap()).collect();
    let x = (0..d.len()).flat_map(|i| c.iter().map(move |col| col[i])).collect();
    (d.time, d.event, x)
}

/// GBSG2's age, tsize, pnodes and `early` = 1 exactly for the patients with an event before day
/// 300 (36 of 686): every `early` patient fails while everyone else at risk survives, so the
/// partial likelihood rises for ever with the coefficient of `early`.
fn gbsg2_with_early() -> (Vec<f64>, Vec<bool>, Vec<f64>, Vec<String>) {
    let (time, event, x3) = load(GBSG2_CSV, &["age", "tsize", "pnodes"]);
    let mut x = Vec::new();
    for i in 0..time.len() {
        x.extend_from_slice(&x3[i * 3..i * 3 + 3]);
        x.push(if event[i] && time[i] < 300.0 { 1.0 } else { 0.0 });
    }
    (time, event, x, names(&["age", "tsize", "pnodes", "early"]))
}

#[test]
fn gbsg2_early_event_indicator_is_separation() {
    let (time, event, x, nm) = gbsg2_with_early();
    let fit = fit_cox(&time, &event, &x, &nm, &CoxOptions::default()).unwrap();
    // Today's estimate: a huge coefficient with a meaningless SE, which used to pass silently.
    let early = &fit.coefficients[3];
    assert!(early.coef > 20.0 && early.se > 1e4, "{early:?}");
    assert_eq!(fit.warnings.len(), 1, "{:?}", fit.warnings);
    let w = &fit.warnings[0];
    assert_eq!((w.code, w.covariate.as_str()), (WarningCode::Separation, "early"));
    assert!(w.message.contains("'early'") && w.message.contains("no finite maximum"), "{w}");
    // A penalty gives the maximum back: finite, no warning.
    let pen = fit_cox(&time, &event, &x, &nm, &CoxOptions { l2_penalty: 0.01, ..Default::default() }).unwrap();
    assert!(pen.warnings.is_empty(), "{:?}", pen.warnings);
    assert!(pen.coefficients[3].coef.abs() < 20.0 && pen.coefficients[3].se < 1.0, "{:?}", pen.coefficients[3]);
}

#[test]
fn separation_towards_minus_infinity_is_detected() {
    // `never` = 1 only for censored patients: its coefficient runs to −∞.
    let (time, event, x1) = load(GBSG2_CSV, &["pnodes"]);
    let x: Vec<f64> = (0..time.len()).flat_map(|i| [x1[i], if !event[i] && i % 3 == 0 { 1.0 } else { 0.0 }]).collect();
    let fit = fit_cox(&time, &event, &x, &names(&["pnodes", "never"]), &CoxOptions::default()).unwrap();
    assert_eq!(fit.warnings.len(), 1, "{:?}", fit.warnings);
    assert_eq!(fit.warnings[0].code, WarningCode::Separation);
    assert_eq!(fit.warnings[0].covariate, "never");
    assert!(fit.warnings[0].message.contains("down"), "{}", fit.warnings[0]);
    assert!(fit.coefficients[1].coef < -10.0);
}

#[test]
fn nearly_collinear_covariates_are_ill_conditioned() {
    // tsize2 = tsize + noise of ~5e-5 SDs: accepted by the collinearity check (1 − R² ≈ 2e-9 >
    // 1e-10) but barely identified.
    let (time, event, x1) = load(GBSG2_CSV, &["tsize"]);
    let x: Vec<f64> =
        x1.iter().enumerate().flat_map(|(i, &v)| [v, v + 7e-4 * (((i * 37) % 11) as f64 - 5.0) / 5.0]).collect();
    let fit = fit_cox(&time, &event, &x, &names(&["tsize", "tsize2"]), &CoxOptions::default()).unwrap();
    let ill: Vec<&str> =
        fit.warnings.iter().filter(|w| w.code == WarningCode::IllConditioned).map(|w| w.covariate.as_str()).collect();
    assert_eq!(ill, ["tsize", "tsize2"], "{:?}", fit.warnings);
    assert!(!fit.warnings.iter().any(|w| w.code == WarningCode::Separation), "{:?}", fit.warnings);
}

#[test]
fn ordinary_fits_do_not_warn() {
    let all = ["age", "estrec", "horTh", "menostat", "pnodes", "progrec", "tgrade", "tsize"];
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (GBSG2_CSV, all.to_vec()),
        (GBSG2_CSV, vec!["horTh"]),
        (GBSG2_CSV, vec!["pnodes", "tgrade"]),
        (GSE7390_CSV, vec!["age", "er", "size"]),
        (GSE7390_CSV, vec!["age", "er", "size", "X200726_at", "X201068_s_at", "X204014_at", "X221928_at"]),
    ];
    for (path, cols) in cases {
        let (time, event, x) = load(path, &cols);
        for ties in [Ties::Efron, Ties::Breslow] {
            for l2_penalty in [0.0, 0.001, 0.1, 3.0] {
                let o = CoxOptions { ties, l2_penalty, ..Default::default() };
                let fit = fit_cox(&time, &event, &x, &names(&cols), &o).unwrap();
                assert!(fit.warnings.is_empty(), "{path} {cols:?} {ties:?} λ={l2_penalty}: {:?}", fit.warnings);
            }
        }
    }
}

#[test]
fn cli_cox_reports_warnings_in_json_and_on_stderr_and_exits_0() {
    let (time, event, x, nm) = gbsg2_with_early();
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "time,event,{}", nm.join(",")).unwrap();
    for i in 0..time.len() {
        let row: Vec<String> = x[i * 4..i * 4 + 4].iter().map(|v| v.to_string()).collect();
        writeln!(f, "{},{},{}", time[i], event[i] as u8, row.join(",")).unwrap();
    }
    let path = f.path().to_str().unwrap();
    let args = ["cox", "--csv", path, "--time", "time", "--event", "event", "--covariates", "age,tsize,pnodes,early"];
    let out = Command::new(BIN).arg("survival").args(args).arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let w = v["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!((w[0]["code"].as_str(), w[0]["covariate"].as_str()), (Some("separation"), Some("early")));
    assert!(w[0]["message"].as_str().unwrap().contains("'early'"));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().filter(|l| l.starts_with("spatia: warning:") && l.contains("'early'")).count(), 1, "{err}");
    // The readable table warns on stderr too; an ordinary fit prints an empty array and nothing.
    let out = Command::new(BIN).arg("survival").args(args).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no finite maximum"));
    let args =
        ["cox", "--csv", GBSG2_CSV, "--time", "time", "--event", "event", "--covariates", "age,pnodes", "--json"];
    let out = Command::new(BIN).arg("survival").args(args).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["warnings"], serde_json::json!([]));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The predictions of tests/calibration_slope_r.R on GBSG2.
fn gbsg2_predictions() -> (Vec<f64>, Vec<bool>, Vec<f64>, Vec<f64>) {
    let (time, event, x) = load(GBSG2_CSV, &["pnodes", "age", "horTh"]);
    let s: Vec<f64> = x
        .chunks_exact(3)
        .map(|r| (-0.35 * (0.04 * (r[0] - 5.0) + 0.01 * (r[1] - 50.0) - 0.5 * r[2]).exp()).exp())
        .collect();
    let s2 = s.iter().map(|v| (-(0.6 * (-v.ln()).ln() - 0.2).exp()).exp()).collect();
    (time, event, s, s2)
}

#[test]
fn calibration_slope_and_se_equal_r_coxph() {
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/calibration_slope_r.json")).unwrap(),
    )
    .unwrap();
    let (time, event, s, s2) = gbsg2_predictions();
    for (surv, k) in [(&s, ""), (&s2, "_2")] {
        let c = calibration(&time, &event, surv, 1825.0, 10).unwrap();
        let (slope, se) = (r[format!("slope{k}")].as_f64().unwrap(), r[format!("slope_se{k}")].as_f64().unwrap());
        assert!((c.slope - slope).abs() <= 1e-9 * slope.abs(), "slope{k}: {} vs R {slope}", c.slope);
        assert!((c.slope_se - se).abs() <= 1e-9 * se, "slope_se{k}: {} vs R {se}", c.slope_se);
    }
    // The CLI's JSON carries the same `slope_se`.
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "time,event,s").unwrap();
    for i in 0..time.len() {
        writeln!(f, "{},{},{:?}", time[i], event[i] as u8, s2[i]).unwrap();
    }
    let path = f.path().to_str().unwrap();
    let args = ["calibration", "--csv", path, "--time", "time", "--event", "event", "--surv", "s", "--horizon", "1825"];
    let out = Command::new(BIN).arg("survival").args(args).arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (got, want) = (v["slope_se"].as_f64().unwrap(), r["slope_se_2"].as_f64().unwrap());
    assert!((got - want).abs() <= 1e-9 * want, "CLI slope_se {got} vs R {want}");
    assert!((v["slope"].as_f64().unwrap() - r["slope_2"].as_f64().unwrap()).abs() <= 1e-9 * 2.0);
}
