//! Exactness against ../shared/reference/gbsg2.json and ties.json (lifelines 0.30.3,
//! scikit-survival 0.28.0). Every expected number is read from those files.
use serde_json::Value;
use spatia::survival::*;

const GBSG2_CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/clinical/gbsg2.csv");
const GBSG2_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference/gbsg2.json");
const TIES_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference/ties.json");

fn load(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference file")).expect("reference json")
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("expected a number, found {v}"))
}

fn fv(v: &Value) -> Vec<f64> {
    v.as_array().unwrap_or_else(|| panic!("expected an array, found {v}")).iter().map(f).collect()
}

fn close(what: &str, got: f64, want: f64, rel: f64) {
    let err = if want == 0.0 { got.abs() } else { (got - want).abs() / want.abs() };
    if std::env::var_os("SPATIA_PRINT_ERRORS").is_some() {
        eprintln!("{what}: relative error {err:e}");
    }
    assert!(err <= rel, "{what}: got {got:e}, want {want:e}, relative error {err:e} > {rel:e}");
}

fn close_all(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        close(&format!("{what}[{k}]"), *g, *w, rel);
    }
}

struct Gbsg2 {
    time: Vec<f64>,
    event: Vec<bool>,
    table: CsvTable,
    r: Value,
}

fn gbsg2() -> Gbsg2 {
    let table = CsvTable::read(GBSG2_CSV).expect("gbsg2.csv");
    let d = table.survival_data("time", "event").expect("survival data");
    Gbsg2 { time: d.time, event: d.event, table, r: load(GBSG2_JSON) }
}

fn covariates(g: &Gbsg2) -> (Vec<String>, Vec<f64>) {
    let names: Vec<String> =
        g.r["cox"]["covariates"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let cols: Vec<Vec<f64>> = names.iter().map(|n| g.table.numeric(n).unwrap()).collect();
    let n = g.time.len();
    let mut x = Vec::with_capacity(n * names.len());
    for i in 0..n {
        for c in &cols {
            x.push(c[i]);
        }
    }
    (names, x)
}

#[test]
fn gbsg2_meta() {
    let g = gbsg2();
    let m = &g.r["meta"];
    assert_eq!(g.time.len() as u64, m["n"].as_u64().unwrap());
    assert_eq!(g.event.iter().filter(|&&e| e).count() as u64, m["n_events"].as_u64().unwrap());
}

#[test]
fn gbsg2_kaplan_meier() {
    let g = gbsg2();
    let r = &g.r["kaplan_meier"];
    let km = KaplanMeier::fit(&g.time, &g.event).unwrap();
    let times = fv(&r["times"]);
    let est: Vec<KmEstimate> = times.iter().map(|&t| km.estimate_at(t)).collect();
    close_all("KM survival", &est.iter().map(|e| e.survival).collect::<Vec<_>>(), &fv(&r["survival"]), 1e-9);
    close_all("KM greenwood se", &est.iter().map(|e| e.se).collect::<Vec<_>>(), &fv(&r["greenwood_se"]), 1e-9);
    close_all("KM lower", &est.iter().map(|e| e.lower).collect::<Vec<_>>(), &fv(&r["ci95_lower_loglog"]), 1e-9);
    close_all("KM upper", &est.iter().map(|e| e.upper).collect::<Vec<_>>(), &fv(&r["ci95_upper_loglog"]), 1e-9);
    let gs: Vec<f64> = times.iter().map(|&t| km.steps.iter().rfind(|s| s.time <= t).unwrap().greenwood_sum).collect();
    close_all("KM greenwood sum", &gs, &fv(&r["greenwood_sum"]), 1e-9);
    match r["median_survival_time"].as_f64() {
        Some(m) => close("median", km.median().unwrap(), m, 1e-12),
        None => assert_eq!(km.median(), None),
    }
    let c = &r["curve_at_event_times"];
    let ev: Vec<&KmStep> = km.event_steps().collect();
    close_all("curve time", &ev.iter().map(|s| s.time).collect::<Vec<_>>(), &fv(&c["time"]), 0.0);
    close_all("curve n_at_risk", &ev.iter().map(|s| s.at_risk as f64).collect::<Vec<_>>(), &fv(&c["n_at_risk"]), 0.0);
    close_all("curve n_events", &ev.iter().map(|s| s.events as f64).collect::<Vec<_>>(), &fv(&c["n_events"]), 0.0);
    close_all("curve survival", &ev.iter().map(|s| s.survival).collect::<Vec<_>>(), &fv(&c["survival"]), 1e-9);
    close_all("curve se", &ev.iter().map(|s| s.se).collect::<Vec<_>>(), &fv(&c["greenwood_se"]), 1e-9);
    // at_risk_at agrees with the curve's numbers at risk at each event time
    for s in &ev {
        assert_eq!(km.at_risk_at(s.time), s.at_risk);
    }
}

#[test]
fn gbsg2_logrank() {
    let g = gbsg2();
    let r = &g.r["logrank"];
    let col = r["group_column"].as_str().unwrap();
    let groups = g.table.strings(col).unwrap();
    let lr = logrank(&g.time, &g.event, &groups).unwrap();
    let l = &r["lifelines_logrank_test"];
    close("logrank statistic", lr.statistic, f(&l["test_statistic"]), 1e-9);
    close("logrank p", lr.p_value, f(&l["p_value"]), 1e-9);
    assert_eq!(lr.df as u64, l["degrees_of_freedom"].as_u64().unwrap());
    let g1 = lr.groups.iter().find(|x| x.group == "1").unwrap();
    close("group1 observed", g1.observed, f(&r["group1_observed"]), 1e-12);
    close("group1 expected", g1.expected, f(&r["group1_expected"]), 1e-9);
    assert_eq!(g1.n as u64, r["n_group1"].as_u64().unwrap());
    close("variance", lr.variance[0], f(&r["variance"]), 1e-9);
    let s = &r["sksurv_compare_survival"];
    close("sksurv chisq", lr.statistic, f(&s["chisq"]), 1e-9);
    for grp in &lr.groups {
        let st = &s["stats"][grp.group.as_str()];
        close("sksurv expected", grp.expected, f(&st["expected"]), 1e-9);
        close("sksurv observed", grp.observed, f(&st["observed"]), 1e-12);
    }
}

fn check_cox(fit: &CoxFit, coef: &Value, se: &Value, ll: &Value, what: &str) {
    close_all(&format!("{what} coef"), &fit.beta(), &fv(coef), 1e-6);
    close_all(&format!("{what} se"), &fit.se(), &fv(se), 1e-6);
    close(&format!("{what} loglik"), fit.log_likelihood, f(ll), 1e-6);
}

#[test]
fn gbsg2_cox_efron() {
    let g = gbsg2();
    let (names, x) = covariates(&g);
    let fit = fit_cox(&g.time, &g.event, &x, &names, &CoxOptions::default()).unwrap();
    let l = &g.r["cox"]["lifelines_efron"];
    check_cox(&fit, &l["coef"], &l["se"], &l["log_partial_likelihood"], "efron/lifelines");
    let nn = &g.r["cox"]["numpy_newton_efron"];
    check_cox(&fit, &nn["coef"], &nn["se"], &nn["log_partial_likelihood"], "efron/numpy");
    close_all("efron z", &fit.coefficients.iter().map(|c| c.z).collect::<Vec<_>>(), &fv(&l["z"]), 1e-6);
    close_all("efron p", &fit.coefficients.iter().map(|c| c.p_value).collect::<Vec<_>>(), &fv(&l["p"]), 1e-6);
    close("null loglik", fit.log_likelihood_null, f(&l["log_partial_likelihood_null"]), 1e-9);
    close("LR statistic", fit.lr_test.statistic, f(&l["log_likelihood_ratio_test"]["statistic"]), 1e-6);
    close("LR p", fit.lr_test.p_value, f(&l["log_likelihood_ratio_test"]["p_value"]), 1e-5);
    close("concordance", fit.concordance, f(&l["concordance_index_"]), 1e-9);
    assert!(fit.warnings.is_empty(), "{:?}", fit.warnings);
    for c in &fit.coefficients {
        close("hr", c.hr, c.coef.exp(), 1e-15);
        assert!(c.hr_lower < c.hr && c.hr < c.hr_upper);
    }
    // Breslow baseline at zero covariates and at the means.
    let b = &g.r["baseline"];
    let times = fv(&b["times"]);
    let h0: Vec<f64> = times.iter().map(|&t| fit.baseline_cumulative_hazard_at(t)).collect();
    close_all("H0 at zero", &h0, &fv(&b["at_zero_covariates"]["cumulative_hazard"]), 1e-6);
    let s0: Vec<f64> = times.iter().map(|&t| fit.baseline_survival_at(t)).collect();
    close_all("S0 at zero", &s0, &fv(&b["at_zero_covariates"]["survival"]), 1e-6);
    close_all("S0 sksurv", &s0, &fv(&b["at_zero_covariates"]["sksurv_baseline_survival"]), 1e-6);
    let sm: Vec<f64> = times.iter().map(|&t| fit.baseline_survival_at_means(t)).collect();
    close_all("S0 at means", &sm, &fv(&b["at_covariate_means"]["survival"]), 1e-6);
    close_all("S0 lifelines", &sm, &fv(&b["at_covariate_means"]["lifelines_baseline_survival"]), 1e-6);
    close_all("means", &fit.means, &fv(&b["at_covariate_means"]["covariate_means"]), 1e-12);
    let full = &b["full_cumulative_hazard_at_zero_covariates"];
    close_all("baseline event times", &fit.baseline_times, &fv(&full["event_times"]), 0.0);
    close_all("full H0", &fit.baseline_cumulative_hazard, &fv(&full["H0"]), 1e-6);
    // Predicted survival for the patients equals the reference predictions.
    let pred = fit.predict_survival(&x, &fv(&g.r["metrics"]["brier"]["times"])).unwrap();
    let want = g.r["metrics"]["brier"]["predicted_survival_at_times"].as_array().unwrap();
    for (i, row) in pred.iter().enumerate() {
        close_all(&format!("S_{i}(t)"), row, &fv(&want[i]), 1e-6);
    }
    // Linear predictor equals the reference risk score.
    let lp = fit.linear_predictor(&x).unwrap();
    let risk = fv(&g.r["metrics"]["risk_score"]);
    for (a, b) in lp.iter().zip(&risk) {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0));
    }
}

#[test]
fn gbsg2_cox_breslow() {
    let g = gbsg2();
    let (names, x) = covariates(&g);
    let opts = CoxOptions { ties: Ties::Breslow, ..CoxOptions::default() };
    let fit = fit_cox(&g.time, &g.event, &x, &names, &opts).unwrap();
    let nn = &g.r["cox"]["numpy_newton_breslow"];
    check_cox(&fit, &nn["coef"], &nn["se"], &nn["log_partial_likelihood"], "breslow/numpy");
    let s = &g.r["cox"]["sksurv_breslow"];
    check_cox(
        &fit,
        &s["coef"],
        &s["se_numpy_hessian_at_sksurv_coef"],
        &s["log_partial_likelihood_numpy"],
        "breslow/sksurv",
    );
    close("breslow concordance", fit.concordance, f(&s["concordance_score"]), 1e-9);
}

#[test]
fn gbsg2_concordance() {
    let g = gbsg2();
    let m = &g.r["metrics"];
    let risk = fv(&m["risk_score"]);
    let h = &m["harrell_c"]["sksurv_concordance_index_censored"];
    let tau = f(&m["uno_c"]["tau"]);
    let c = harrell_and_uno(&g.time, &g.event, &risk, Some(tau)).unwrap();
    close("harrell", c.harrell, f(&h["cindex"]), 1e-9);
    close("harrell lifelines", c.harrell, f(&m["harrell_c"]["lifelines_concordance_index_neg_risk"]), 1e-9);
    assert_eq!(c.concordant, h["concordant"].as_u64().unwrap());
    assert_eq!(c.discordant, h["discordant"].as_u64().unwrap());
    assert_eq!(c.tied_risk, h["tied_risk"].as_u64().unwrap());
    assert_eq!(c.tied_time, h["tied_time"].as_u64().unwrap());
    close("uno tau", c.uno.unwrap(), f(&m["uno_c"]["sksurv_concordance_index_ipcw"]["cindex"]), 1e-9);
    let u = uno(&g.time, &g.event, &risk, None).unwrap();
    close("uno no tau", u, f(&m["uno_c"]["tau_none_cindex"]), 1e-9);
    let h2 = harrell(&g.time, &g.event, &risk).unwrap();
    assert_eq!(h2.harrell, c.harrell);
    assert_eq!(h2.uno, None);
}

#[test]
fn gbsg2_auc() {
    let g = gbsg2();
    let m = &g.r["metrics"];
    let risk = fv(&m["risk_score"]);
    let a = &m["cumulative_dynamic_auc"];
    let res = cumulative_dynamic_auc(&g.time, &g.event, &risk, &fv(&a["times"])).unwrap();
    close_all("auc", &res.auc, &fv(&a["auc"]), 1e-6);
    close("mean auc", res.mean_auc, f(&a["mean_auc"]), 1e-6);
    for c in &res.curves {
        let first = c.roc.first().unwrap();
        let last = c.roc.last().unwrap();
        assert_eq!((first.fpr, first.tpr), (0.0, 0.0));
        assert!((last.fpr - 1.0).abs() < 1e-12 && (last.tpr - 1.0).abs() < 1e-12);
        assert!(c.roc.windows(2).all(|w| w[1].fpr >= w[0].fpr && w[1].tpr >= w[0].tpr));
    }
}

#[test]
fn gbsg2_brier() {
    let g = gbsg2();
    let b = &g.r["metrics"]["brier"];
    let times = fv(&b["times"]);
    let rows: Vec<Vec<f64>> = b["predicted_survival_at_times"].as_array().unwrap().iter().map(fv).collect();
    let res = brier_score_rows(&g.time, &g.event, &rows, &times).unwrap();
    close_all("brier", &res.brier, &fv(&b["brier_score"]), 1e-6);
    close("ibs 3 times", res.integrated.unwrap(), f(&b["integrated_brier_score_times_730_1095_1825"]), 1e-6);
    // Daily grid 365..=1825 from the reference baseline and risk scores.
    let full = &g.r["baseline"]["full_cumulative_hazard_at_zero_covariates"];
    let (et, h0) = (fv(&full["event_times"]), fv(&full["H0"]));
    let risk = fv(&g.r["metrics"]["risk_score"]);
    let grid: Vec<f64> = (365..=1825).map(|d| d as f64).collect();
    let surv: Vec<Vec<f64>> = grid
        .iter()
        .map(|&t| {
            let k = et.partition_point(|&s| s <= t);
            let h = if k == 0 { 0.0 } else { h0[k - 1] };
            risk.iter().map(|r| (-h * r.exp()).exp()).collect()
        })
        .collect();
    let daily = brier_score(&g.time, &g.event, &surv, &grid).unwrap();
    close("ibs daily", daily.integrated.unwrap(), f(&b["integrated_brier_score_daily_365_to_1825"]), 1e-6);
}

#[test]
fn ties_concordance_and_km() {
    let r = load(TIES_JSON);
    let time = fv(&r["data"]["time"]);
    let event: Vec<bool> = r["data"]["event"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() == 1).collect();
    let risk = fv(&r["data"]["risk"]);
    let h = &r["harrell_c"]["sksurv_concordance_index_censored"];
    let c = harrell(&time, &event, &risk).unwrap();
    close("ties harrell", c.harrell, f(&h["cindex"]), 1e-9);
    assert_eq!(c.concordant, h["concordant"].as_u64().unwrap());
    assert_eq!(c.discordant, h["discordant"].as_u64().unwrap());
    assert_eq!(c.tied_risk, h["tied_risk"].as_u64().unwrap());
    assert_eq!(c.tied_time, h["tied_time"].as_u64().unwrap());
    assert_eq!(c.comparable, r["harrell_c"]["bruteforce_numpy"]["comparable_pairs"].as_u64().unwrap());
    for (key, v) in r["uno_c"].as_object().unwrap() {
        if !key.starts_with("tau_") {
            continue;
        }
        let tau = v["tau"].as_f64();
        let u = harrell_and_uno(&time, &event, &risk, tau).unwrap();
        close(&format!("uno {key}"), u.uno.unwrap(), f(&v["cindex"]), 1e-9);
        assert_eq!(u.concordant, v["concordant"].as_u64().unwrap());
        assert_eq!(u.tied_risk, v["tied_risk"].as_u64().unwrap());
        assert_eq!(u.tied_time, v["tied_time"].as_u64().unwrap());
    }
    let ck = &r["uno_c"]["censoring_km"];
    let g = CensoringKm::fit(&time, &event).unwrap();
    let gt: Vec<f64> = fv(&ck["times"]).iter().map(|&t| g.g_at(t)).collect();
    close_all("censoring G", &gt, &fv(&ck["G"]), 1e-12);
    close_all("censoring G sksurv", &gt, &fv(&ck["sksurv_G"]), 1e-12);
    let k = &r["kaplan_meier"];
    let km = KaplanMeier::fit(&time, &event).unwrap();
    close_all("ties km times", &km.steps.iter().map(|s| s.time).collect::<Vec<_>>(), &fv(&k["times"]), 0.0);
    close_all(
        "ties km at risk",
        &km.steps.iter().map(|s| s.at_risk as f64).collect::<Vec<_>>(),
        &fv(&k["n_at_risk"]),
        0.0,
    );
    close_all(
        "ties km events",
        &km.steps.iter().map(|s| s.events as f64).collect::<Vec<_>>(),
        &fv(&k["n_events"]),
        0.0,
    );
    close_all(
        "ties km censored",
        &km.steps.iter().map(|s| s.censored as f64).collect::<Vec<_>>(),
        &fv(&k["n_censored"]),
        0.0,
    );
    close_all("ties km survival", &km.steps.iter().map(|s| s.survival).collect::<Vec<_>>(), &fv(&k["survival"]), 1e-9);
    close_all(
        "ties km lifelines",
        &km.steps.iter().map(|s| s.survival).collect::<Vec<_>>(),
        &fv(&k["lifelines_survival"]),
        1e-9,
    );
    let se: Vec<f64> = km.steps.iter().map(|s| s.se).collect();
    close_all("ties km se", &se, &fv(&k["greenwood_se"]), 1e-9);
}

/// L2 penalty against lifelines' `penalizer` (fixture generated by
/// tests/survival_lifelines_penalized.py with lifelines 0.30.3).
#[test]
fn gbsg2_cox_l2_penalty_matches_lifelines() {
    let g = gbsg2();
    let r = load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/survival_lifelines_penalized.json"));
    let names: Vec<String> =
        r["covariates"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let cols: Vec<Vec<f64>> = names.iter().map(|n| g.table.numeric(n).unwrap()).collect();
    let x: Vec<f64> = (0..g.time.len()).flat_map(|i| cols.iter().map(move |c| c[i])).collect();
    for fit_ref in r["fits"].as_array().unwrap() {
        let lambda = f(&fit_ref["penalizer"]);
        let opts = CoxOptions { l2_penalty: lambda, ..CoxOptions::default() };
        let fit = fit_cox(&g.time, &g.event, &x, &names, &opts).unwrap();
        close_all(&format!("penalised coef λ={lambda}"), &fit.beta(), &fv(&fit_ref["coef"]), 1e-6);
        close_all(&format!("penalised se λ={lambda}"), &fit.se(), &fv(&fit_ref["se"]), 1e-6);
        close(
            &format!("penalised objective λ={lambda}"),
            fit.penalized_log_likelihood,
            f(&fit_ref["log_likelihood_penalized"]),
            1e-9,
        );
    }
}
