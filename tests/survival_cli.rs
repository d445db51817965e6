//! `spatia survival …` end to end: runs the built binary on ../shared/data/clinical/gbsg2.csv
//! (and a CSV made from the reference's risk scores and predictions) and checks the JSON
//! against ../shared/reference/gbsg2.json; bad input exits 2 naming row and column.
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_spatia");
const GBSG2_CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/clinical/gbsg2.csv");
const GBSG2_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference/gbsg2.json");

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(GBSG2_JSON).unwrap()).unwrap()
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).arg("survival").args(args).output().expect("run spatia")
}

fn run_json(args: &[&str]) -> Value {
    let out = run(args);
    assert!(out.status.success(), "spatia survival {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim().lines().count(), 1, "expected exactly one JSON line, found {text}");
    let v: Value = serde_json::from_str(text.trim()).expect("one JSON object");
    assert!(v.is_object());
    v
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("expected a number, found {v}"))
}

fn fv(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(f).collect()
}

fn close(what: &str, got: f64, want: f64, rel: f64) {
    let err = (got - want).abs() / want.abs();
    assert!(err <= rel, "{what}: got {got:e}, want {want:e}, relative error {err:e}");
}

fn base<'a>(verb: &'a str, csv: &'a str) -> Vec<&'a str> {
    vec![verb, "--csv", csv, "--time", "time", "--event", "event", "--json"]
}

#[test]
fn km_json_matches_reference() {
    let r = reference();
    let k = &r["kaplan_meier"];
    let times: Vec<String> = fv(&k["times"]).iter().map(|t| t.to_string()).collect();
    let at = times.join(",");
    let mut args = base("km", GBSG2_CSV);
    args.extend(["--at", &at]);
    let v = run_json(&args);
    assert_eq!(v["n"], r["meta"]["n"]);
    assert_eq!(v["events"], r["meta"]["n_events"]);
    close("median", f(&v["median"]), f(&k["median_survival_time"]), 0.0);
    let rows = v["at"].as_array().unwrap();
    for (i, row) in rows.iter().enumerate() {
        close("time", f(&row["time"]), f(&k["times"][i]), 0.0);
        close("survival", f(&row["survival"]), f(&k["survival"][i]), 1e-9);
        close("se", f(&row["se"]), f(&k["greenwood_se"][i]), 1e-9);
        close("lower", f(&row["lower"]), f(&k["ci95_lower_loglog"][i]), 1e-9);
        close("upper", f(&row["upper"]), f(&k["ci95_upper_loglog"][i]), 1e-9);
        assert!(row["at_risk"].as_u64().unwrap() > 0);
    }
    // Whole curve for plots: (0, 1) then one point per distinct time.
    let mut cargs = base("km", GBSG2_CSV);
    cargs.push("--curve");
    let c = run_json(&cargs);
    let curve = c["curve"].as_array().unwrap();
    assert_eq!((f(&curve[0]["time"]), f(&curve[0]["survival"])), (0.0, 1.0));
    let n_event_times = r["kaplan_meier"]["curve_at_event_times"]["time"].as_array().unwrap().len();
    assert!(curve.len() > n_event_times);
    assert!(curve.windows(2).all(|w| f(&w[1]["survival"]) <= f(&w[0]["survival"])));
    // Groups
    args.extend(["--group", "horTh"]);
    let v = run_json(&args);
    let g = v["groups"].as_object().unwrap();
    assert_eq!(g.len(), 2);
    assert_eq!(g["1"]["n"], r["logrank"]["n_group1"]);
    assert_eq!(g["0"]["n"], r["logrank"]["n_group0"]);
}

#[test]
fn logrank_json_matches_reference() {
    let r = reference();
    let mut args = base("logrank", GBSG2_CSV);
    args.extend(["--group", "horTh"]);
    let v = run_json(&args);
    let l = &r["logrank"]["lifelines_logrank_test"];
    close("statistic", f(&v["statistic"]), f(&l["test_statistic"]), 1e-9);
    close("p", f(&v["p_value"]), f(&l["p_value"]), 1e-9);
    assert_eq!(v["df"], l["degrees_of_freedom"]);
}

#[test]
fn cox_json_matches_reference() {
    let r = reference();
    let cov: Vec<&str> = r["cox"]["covariates"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let list = cov.join(",");
    for (ties, key) in [("efron", "lifelines_efron"), ("breslow", "numpy_newton_breslow")] {
        let mut args = base("cox", GBSG2_CSV);
        args.extend(["--covariates", &list, "--ties", ties]);
        let v = run_json(&args);
        let want = &r["cox"][key];
        let coefs = v["coefficients"].as_array().unwrap();
        assert_eq!(coefs.len(), cov.len());
        for (i, c) in coefs.iter().enumerate() {
            assert_eq!(c["name"], cov[i]);
            close("coef", f(&c["coef"]), f(&want["coef"][i]), 1e-6);
            close("se", f(&c["se"]), f(&want["se"][i]), 1e-6);
            close("hr", f(&c["hr"]), f(&c["coef"]).exp(), 1e-12);
            assert!(f(&c["hr_lower"]) < f(&c["hr"]) && f(&c["hr"]) < f(&c["hr_upper"]));
            assert!(f(&c["p_value"]) > 0.0 && f(&c["p_value"]) < 1.0);
        }
        close("loglik", f(&v["log_likelihood"]), f(&want["log_partial_likelihood"]), 1e-6);
        assert!(v["iterations"].as_u64().unwrap() >= 1);
        assert_eq!(v["ties"], ties);
        if ties == "efron" {
            close("concordance", f(&v["concordance"]), f(&want["concordance_index_"]), 1e-9);
            for (i, c) in coefs.iter().enumerate() {
                close("p", f(&c["p_value"]), f(&want["p"][i]), 1e-6);
            }
        }
    }
    // Penalty is accepted and shrinks.
    let mut args = base("cox", GBSG2_CSV);
    args.extend(["--covariates", &list, "--penalty", "0.05"]);
    let v = run_json(&args);
    assert_eq!(v["penalty"], 0.05);
}

/// A CSV with time, event, the reference risk score and predicted survival columns.
fn metrics_csv(r: &Value) -> tempfile::NamedTempFile {
    let t = spatia::survival::CsvTable::read(GBSG2_CSV).unwrap();
    let d = t.survival_data("time", "event").unwrap();
    let risk = fv(&r["metrics"]["risk_score"]);
    let pred = r["metrics"]["brier"]["predicted_survival_at_times"].as_array().unwrap();
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "time,event,risk,s730,s1095,s1825").unwrap();
    for i in 0..d.len() {
        let p = fv(&pred[i]);
        writeln!(f, "{:?},{},{:?},{:?},{:?},{:?}", d.time[i], d.event[i] as u8, risk[i], p[0], p[1], p[2]).unwrap();
    }
    f.flush().unwrap();
    f
}

#[test]
fn metrics_json_match_reference() {
    let r = reference();
    let file = metrics_csv(&r);
    let csv = file.path().to_str().unwrap().to_string();
    let m = &r["metrics"];
    // concordance
    let tau = f(&m["uno_c"]["tau"]).to_string();
    let mut args = base("concordance", &csv);
    args.extend(["--risk", "risk", "--tau", &tau]);
    let v = run_json(&args);
    let h = &m["harrell_c"]["sksurv_concordance_index_censored"];
    close("harrell", f(&v["harrell"]), f(&h["cindex"]), 1e-9);
    close("uno", f(&v["uno"]), f(&m["uno_c"]["sksurv_concordance_index_ipcw"]["cindex"]), 1e-9);
    for k in ["concordant", "discordant", "tied_risk"] {
        assert_eq!(v[k], h[k], "{k}");
    }
    let mut args = base("concordance", &csv);
    args.extend(["--risk", "risk"]);
    let v = run_json(&args);
    close("uno without tau", f(&v["uno"]), f(&m["uno_c"]["tau_none_cindex"]), 1e-9);
    // auc
    let a = &m["cumulative_dynamic_auc"];
    let times = fv(&a["times"]).iter().map(|t| t.to_string()).collect::<Vec<_>>().join(",");
    let mut args = base("auc", &csv);
    args.extend(["--risk", "risk", "--times", &times]);
    let v = run_json(&args);
    for (g, w) in fv(&v["auc"]).iter().zip(fv(&a["auc"])) {
        close("auc", *g, w, 1e-6);
    }
    close("mean auc", f(&v["mean_auc"]), f(&a["mean_auc"]), 1e-6);
    let mut args = base("auc", &csv);
    args.extend(["--risk", "risk", "--times", &times, "--roc"]);
    let roc = run_json(&args);
    for c in roc["roc"].as_array().unwrap() {
        let pts = c["roc"].as_array().unwrap();
        assert_eq!((f(&pts[0]["fpr"]), f(&pts[0]["tpr"])), (0.0, 0.0));
        let last = pts.last().unwrap();
        assert!((f(&last["fpr"]) - 1.0).abs() < 1e-12 && (f(&last["tpr"]) - 1.0).abs() < 1e-12);
    }
    assert_eq!(fv(&v["times"]), fv(&a["times"]));
    // brier
    let b = &m["brier"];
    let mut args = base("brier", &csv);
    args.extend(["--surv", "730:s730,1095:s1095,1825:s1825"]);
    let v = run_json(&args);
    for (g, w) in fv(&v["brier"]).iter().zip(fv(&b["brier_score"])) {
        close("brier", *g, w, 1e-6);
    }
    close("ibs", f(&v["integrated"]), f(&b["integrated_brier_score_times_730_1095_1825"]), 1e-6);
    // calibration
    let mut args = base("calibration", &csv);
    args.extend(["--surv", "s1825", "--horizon", "1825", "--bins", "5"]);
    let v = run_json(&args);
    let bins = v["bins"].as_array().unwrap();
    assert_eq!(bins.len(), 5);
    assert_eq!(bins.iter().map(|b| b["n"].as_u64().unwrap()).sum::<u64>(), 686);
    for k in ["predicted", "observed", "lower", "upper"] {
        assert!(bins.iter().all(|b| b[k].is_f64()), "{k}");
    }
    for k in ["slope", "intercept", "ici", "e50", "e90"] {
        assert!(v[k].is_f64(), "{k}: {}", v[k]);
    }
    assert!((f(&v["slope"]) - 1.0).abs() < 0.01);
    // The readable table is the default.
    let out = run(&["concordance", "--csv", &csv, "--time", "time", "--event", "event", "--risk", "risk"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Harrell's C = 0.687928"), "{text}");
    assert!(serde_json::from_str::<Value>(&text).is_err());
}

#[test]
fn bad_input_exits_2_naming_row_and_column() {
    let cases: [(&str, &[&str], &str); 6] = [
        ("time,event,x\n1,1,0\n2,0,1\n", &["cox", "--covariates", "x,y"], "column 'y'"),
        ("time,event,x\n1,1,0\n2,0,abc\n", &["cox", "--covariates", "x"], "data row 2 (line 3), column 'x'"),
        ("time,event,x\n1,1,0\n-2,0,1\n", &["km"], "data row 2 (line 3), column 'time'"),
        ("time,event,x\n1,1,0\n2,3,1\n", &["km"], "data row 2 (line 3), column 'event'"),
        ("time,event,x\n1,1,0\nNaN,0,1\n", &["km"], "data row 2 (line 3), column 'time'"),
        ("time,event,x\n1,1,0\n2,0,nan\n", &["concordance", "--risk", "x"], "data row 2 (line 3), column 'x'"),
    ];
    for (text, verb, want) in cases {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let path = f.path().to_str().unwrap();
        let mut args: Vec<&str> = vec![verb[0], "--csv", path, "--time", "time", "--event", "event", "--json"];
        args.extend(&verb[1..]);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("spatia: ") && err.contains(want), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
    let out = run(&["km", "--csv", "/nonexistent.csv", "--time", "t", "--event", "e"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&[
        "logrank", "--csv", GBSG2_CSV, "--time", "time", "--event", "event", "--group", "horTh", "--json", "--bogus",
    ]);
    assert_eq!(out.status.code(), Some(2));
}
