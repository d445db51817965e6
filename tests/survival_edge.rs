//! Edge cases of the survival module: all censored, one event, ties everywhere, a time of 0,
//! a single log-rank group, degenerate Cox designs, CSV errors, bootstrap determinism,
//! calibration identities on GBSG2.
use spatia::survival::*;
use std::io::Write;

const GBSG2_CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/clinical/gbsg2.csv");

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn gbsg2() -> (Vec<f64>, Vec<bool>, Vec<String>, Vec<f64>) {
    let t = CsvTable::read(GBSG2_CSV).unwrap();
    let d = t.survival_data("time", "event").unwrap();
    let cov = names(&["age", "tsize", "pnodes", "progrec", "estrec", "tgrade", "horTh", "menostat"]);
    let cols: Vec<Vec<f64>> = cov.iter().map(|c| t.numeric(c).unwrap()).collect();
    let x = (0..d.len()).flat_map(|i| cols.iter().map(move |c| c[i])).collect();
    (d.time, d.event, cov, x)
}

#[test]
fn all_censored() {
    let time = [1.0, 2.0, 3.0, 4.0];
    let event = [false; 4];
    let km = KaplanMeier::fit(&time, &event).unwrap();
    assert!(km.steps.iter().all(|s| s.survival == 1.0 && s.se == 0.0));
    assert_eq!(km.median(), None);
    assert_eq!(km.estimate_at(2.5).lower, 1.0);
    assert!(matches!(harrell(&time, &event, &[1.0, 2.0, 3.0, 4.0]), Err(SurvivalError::AllCensored { n: 4 })));
    assert!(matches!(logrank(&time, &event, &[0, 0, 1, 1]), Err(SurvivalError::AllCensored { .. })));
    assert!(matches!(
        fit_cox(&time, &event, &[1.0, 2.0, 0.0, 1.0], &names(&["x"]), &CoxOptions::default()),
        Err(SurvivalError::AllCensored { .. })
    ));
    assert!(cumulative_dynamic_auc(&time, &event, &[1.0, 2.0, 3.0, 4.0], &[2.0]).is_err());
    let g = CensoringKm::fit(&time, &event).unwrap();
    assert_eq!(g.g_at(4.0), 0.0);
}

#[test]
fn one_event() {
    // One event at t=1 with x=1; risk set x = {1, 0, 2}: the Cox MLE is exactly 0 and the
    // information at 0 is the risk-set variance of x, 2/3.
    let time = [1.0, 2.0, 3.0];
    let event = [true, false, false];
    let x = [1.0, 0.0, 2.0];
    let fit = fit_cox(&time, &event, &x, &names(&["x"]), &CoxOptions::default()).unwrap();
    assert!(fit.coefficients[0].coef.abs() < 1e-10, "{:?}", fit.coefficients);
    assert!((fit.coefficients[0].se - 1.5f64.sqrt()).abs() < 1e-9);
    assert!(fit.lr_test.statistic.abs() < 1e-12);
    let km = KaplanMeier::fit(&time, &event).unwrap();
    assert!((km.survival_at(1.0) - 2.0 / 3.0).abs() < 1e-15);
    assert_eq!(km.survival_at(0.999), 1.0);
    let c = harrell(&time, &event, &[3.0, 1.0, 2.0]).unwrap();
    assert_eq!((c.concordant, c.discordant, c.tied_risk, c.comparable), (2, 0, 0, 2));
    assert_eq!(c.harrell, 1.0);
    let lr = logrank(&time, &event, &["a", "b", "b"]).unwrap();
    // O−E = 1 − 1/3, V = 1·(3−1)/(3−1)·(1/3)(2/3) = 2/9 ⇒ χ² = (4/9)/(2/9) = 2
    assert!((lr.statistic - 2.0).abs() < 1e-12);
}

#[test]
fn ties_everywhere() {
    let time = [5.0; 6];
    let event = [true; 6];
    let km = KaplanMeier::fit(&time, &event).unwrap();
    assert_eq!(km.steps.len(), 1);
    assert_eq!(km.survival_at(5.0), 0.0);
    assert_eq!(km.median(), Some(5.0));
    let e = km.estimate_at(5.0);
    assert_eq!((e.lower, e.upper, e.at_risk), (0.0, 0.0, 6));
    assert!(matches!(
        harrell(&time, &event, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        Err(SurvivalError::NoComparablePairs { .. })
    ));
    // Everybody fails at once: the log-rank variance is 0, an error rather than a number.
    assert!(matches!(logrank(&time, &event, &[0, 0, 0, 1, 1, 1]), Err(SurvivalError::Singular { .. })));
    // Events tied with censorings and tied risks: counts by brute force.
    let time = [2.0, 2.0, 2.0, 2.0, 3.0, 3.0];
    let event = [true, true, false, false, true, false];
    let risk = [1.0, 1.0, 1.0, 0.0, 1.0, 1.0];
    let c = harrell(&time, &event, &risk).unwrap();
    // events at 2 (two of them): partners = 2 censored at 2 + 2 later = 4 each ⇒ 8 pairs;
    // event at 3: censored at 3 ⇒ 1 pair. Tied risk: each event at 2 ties with 1 censored at 2
    // and 2 later ones (3 ties), concordant with risk 0 (1); event at 3 ties with its partner.
    assert_eq!((c.comparable, c.concordant, c.tied_risk, c.discordant, c.tied_time), (9, 2, 7, 0, 5));
    // Breslow and Efron differ when events are tied, and both converge.
    let x = [0.5, 1.5, 0.0, 2.0, 1.0, 0.2];
    let e = fit_cox(&time, &event, &x, &names(&["x"]), &CoxOptions::default()).unwrap();
    let b =
        fit_cox(&time, &event, &x, &names(&["x"]), &CoxOptions { ties: Ties::Breslow, ..Default::default() }).unwrap();
    assert!((e.coefficients[0].coef - b.coefficients[0].coef).abs() > 1e-6);
}

#[test]
fn time_zero() {
    let time = [0.0, 0.0, 1.0, 2.0, 3.0];
    let event = [true, false, true, false, true];
    let km = KaplanMeier::fit(&time, &event).unwrap();
    assert!((km.survival_at(0.0) - 0.8).abs() < 1e-15);
    assert_eq!(km.at_risk_at(0.0), 5);
    assert_eq!(km.at_risk_at(0.5), 3);
    assert_eq!(km.curve()[0].time, 0.0);
    assert_eq!(km.curve()[0].survival, 1.0);
    let c = harrell(&time, &event, &[5.0, 1.0, 3.0, 2.0, 1.0]).unwrap();
    assert!(c.comparable > 0);
    assert!(SurvivalData::new(vec![0.0, -0.0], vec![true, false]).is_ok());
    assert!(SurvivalData::new(vec![0.0, -1e-300], vec![true, false]).is_err());
}

#[test]
fn single_group_logrank() {
    let err = logrank(&[1.0, 2.0, 3.0], &[true, false, true], &["only", "only", "only"]).unwrap_err();
    assert!(matches!(err, SurvivalError::TooFewGroups { found: 1, .. }));
    assert!(err.to_string().contains("'only'"), "{err}");
}

#[test]
fn logrank_three_groups_matches_two_group_special_case() {
    let (time, event, _, x) = gbsg2();
    let grade: Vec<i64> = (0..time.len()).map(|i| x[i * 8 + 5] as i64).collect();
    let lr = logrank(&time, &event, &grade).unwrap();
    assert_eq!(lr.df, 2);
    assert_eq!(lr.groups.len(), 3);
    let obs: f64 = lr.groups.iter().map(|g| g.observed).sum();
    let exp: f64 = lr.groups.iter().map(|g| g.expected).sum();
    assert!((obs - exp).abs() < 1e-9 && obs == 299.0);
    assert!(lr.p_value < 1e-3 && lr.statistic > 0.0);
}

#[test]
fn cox_degenerate_designs_name_the_covariate() {
    let (time, event, _, x) = gbsg2();
    let n = time.len();
    // constant
    let xc: Vec<f64> = (0..n).flat_map(|i| [x[i * 8], 3.0]).collect();
    let err = fit_cox(&time, &event, &xc, &names(&["age", "const"]), &CoxOptions::default()).unwrap_err();
    assert!(matches!(&err, SurvivalError::ConstantCovariate { name, .. } if name == "const"), "{err}");
    // collinear: c = age + 2·tsize
    let xl: Vec<f64> = (0..n).flat_map(|i| [x[i * 8], x[i * 8 + 1], x[i * 8] + 2.0 * x[i * 8 + 1]]).collect();
    let err = fit_cox(&time, &event, &xl, &names(&["age", "tsize", "c"]), &CoxOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("'c'") && msg.contains("'age'") && msg.contains("'tsize'"), "{msg}");
    // non-convergence
    let err = fit_cox(
        &time,
        &event,
        &x,
        &names(&["age", "tsize", "pnodes", "progrec", "estrec", "tgrade", "horTh", "menostat"]),
        &CoxOptions { max_iter: 1, ..Default::default() },
    )
    .unwrap_err();
    assert!(matches!(err, SurvivalError::NotConverged { iterations: 1, .. }), "{err}");
    // non-finite covariate
    let mut xb = x.clone();
    xb[5 * 8 + 2] = f64::NAN;
    let err = fit_cox(
        &time,
        &event,
        &xb,
        &names(&["age", "tsize", "pnodes", "progrec", "estrec", "tgrade", "horTh", "menostat"]),
        &CoxOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("'pnodes'") && err.to_string().contains("observation 5"), "{err}");
}

#[test]
fn cox_separation_is_a_warning_naming_the_covariate() {
    // Every subject with flag = 1 fails before anyone with flag = 0: monotone likelihood.
    let time: Vec<f64> = (1..=20).map(|t| t as f64).collect();
    let event = vec![true; 20];
    let x: Vec<f64> = (0..20).flat_map(|i| [if i < 10 { 1.0 } else { 0.0 }, ((i * 7) % 5) as f64]).collect();
    let fit = fit_cox(&time, &event, &x, &names(&["flag", "noise"]), &CoxOptions::default()).unwrap();
    assert_eq!(fit.warnings.len(), 1, "{:?}", fit.warnings);
    let w = &fit.warnings[0];
    assert_eq!((w.code, w.covariate.as_str()), (WarningCode::Separation, "flag"), "{w}");
    assert!(w.message.contains("'flag'") && w.message.contains("separation"), "{w}");
    // An L2 penalty gives a finite, warning-free estimate.
    let pen =
        fit_cox(&time, &event, &x, &names(&["flag", "noise"]), &CoxOptions { l2_penalty: 0.1, ..Default::default() })
            .unwrap();
    assert!(pen.warnings.is_empty() && pen.coefficients[0].coef > 0.0 && pen.coefficients[0].coef < 10.0);
}

#[test]
fn cox_l2_penalty_shrinks_standardised_coefficients() {
    let (time, event, cov, x) = gbsg2();
    let n = time.len() as f64;
    let mut prev = f64::INFINITY;
    for lambda in [0.0, 0.001, 0.01, 0.1] {
        let fit = fit_cox(&time, &event, &x, &cov, &CoxOptions { l2_penalty: lambda, ..Default::default() }).unwrap();
        let sd: Vec<f64> = (0..8)
            .map(|a| {
                let m = fit.means[a];
                ((0..time.len()).map(|i| (x[i * 8 + a] - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
            })
            .collect();
        let norm: f64 = fit.coefficients.iter().zip(&sd).map(|(c, s)| (c.coef * s).powi(2)).sum();
        assert!(norm < prev, "lambda {lambda}: {norm} !< {prev}");
        prev = norm;
        let pen = fit.log_likelihood - 0.5 * n * lambda * norm;
        assert!((pen - fit.penalized_log_likelihood).abs() < 1e-9 * pen.abs());
        assert!(fit.log_likelihood <= -1737.17449039);
    }
}

#[test]
fn cox_rows_api_and_prediction_shapes() {
    let time = [1.0, 2.0, 3.0, 4.0, 5.0];
    let event = [true, false, true, true, false];
    let rows = vec![vec![1.0, 0.5], vec![0.0, 1.5], vec![2.0, 0.1], vec![1.0, 1.0], vec![0.5, 0.2]];
    let fit = fit_cox_rows(&time, &event, &rows, &names(&["a", "b"]), &CoxOptions::default()).unwrap();
    let s = fit.predict_survival(&[0.0, 0.0, 1.0, 1.0], &[0.5, 1.0, 4.0, 10.0]).unwrap();
    assert_eq!((s.len(), s[0].len()), (2, 4));
    assert_eq!(s[0][0], 1.0);
    assert!(s.iter().all(|r| r.windows(2).all(|w| w[1] <= w[0])));
    assert!(fit.predict_survival(&[0.0, 0.0, 1.0], &[1.0]).is_err());
    assert!(fit_cox_rows(&time, &event, &rows[..4], &names(&["a", "b"]), &CoxOptions::default()).is_err());
}

#[test]
fn bootstrap_is_deterministic_whatever_the_thread_count() {
    let (time, event, cov, x) = gbsg2();
    let fit = fit_cox(&time, &event, &x, &cov, &CoxOptions::default()).unwrap();
    let risk = fit.linear_predictor(&x).unwrap();
    let age: Vec<f64> = (0..time.len()).map(|i| x[i * 8]).collect();
    let opts = BootstrapOptions { n_boot: 200, seed: 11, confidence_level: 0.95 };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            (
                bootstrap_harrell(&time, &event, &risk, &opts).unwrap(),
                paired_concordance_difference(&time, &event, &risk, &age, &opts).unwrap(),
            )
        })
    };
    let (a1, p1) = run(1);
    let (a3, p3) = run(3);
    assert_eq!(a1, a3);
    assert_eq!(p1, p3);
    assert!(a1.lower < a1.estimate && a1.estimate < a1.upper && a1.n_boot == 200);
    assert!((a1.estimate - fit.concordance).abs() < 1e-15);
    assert!(p1.difference.estimate > 0.0 && p1.p_value < 0.05, "{p1:?}");
    let other = bootstrap_harrell(&time, &event, &risk, &BootstrapOptions { seed: 12, ..opts.clone() }).unwrap();
    assert_ne!(other.lower, a1.lower);
    let same = paired_concordance_difference(&time, &event, &risk, &risk, &opts).unwrap();
    assert_eq!((same.difference.estimate, same.p_value), (0.0, 1.0));
    assert_eq!(resample_indices(10, 3, 4), resample_indices(10, 3, 4));
    // generic statistic: KM survival at 730
    let ci = bootstrap(time.len(), &opts, |idx| {
        let t: Vec<f64> = idx.iter().map(|&i| time[i]).collect();
        let e: Vec<bool> = idx.iter().map(|&i| event[i]).collect();
        Ok(vec![KaplanMeier::fit(&t, &e)?.survival_at(730.0)])
    })
    .unwrap();
    assert!(ci[0].lower < ci[0].estimate && ci[0].estimate < ci[0].upper);
}

#[test]
fn calibration_of_the_in_sample_cox_model() {
    // In sample (Efron fit, Efron calibration model), Cox on the model's own cloglog(1 − S(t)) = log H0(t) + lp has slope exactly 1,
    // and the Breslow offset intercept is exactly log(H0(t)/H0(t)) = 0.
    let (time, event, cov, x) = gbsg2();
    let fit = fit_cox(&time, &event, &x, &cov, &CoxOptions::default()).unwrap();
    let surv: Vec<f64> = fit.predict_survival(&x, &[1825.0]).unwrap().into_iter().map(|r| r[0]).collect();
    let c = calibration(&time, &event, &surv, 1825.0, 10).unwrap();
    assert!((c.slope - 1.0).abs() < 1e-6, "slope {}", c.slope);
    assert!(c.intercept.abs() < 1e-9, "intercept {}", c.intercept);
    assert_eq!(c.bins.len(), 10);
    assert_eq!(c.bins.iter().map(|b| b.n).sum::<usize>(), 686);
    assert!(c.bins.windows(2).all(|w| w[0].predicted <= w[1].predicted));
    assert!(c.bins.iter().all(|b| b.lower <= b.observed && b.observed <= b.upper));
    assert!(c.ici > 0.0 && c.ici < 0.05 && c.e50 <= c.e90, "{c:?}");
    assert!(c.notes.is_empty(), "{:?}", c.notes);
    // Miscalibrated predictions (risk doubled on the hazard scale) give a positive-offset
    // intercept of log(1/2).
    let worse: Vec<f64> = surv.iter().map(|s| s * s).collect();
    let w = calibration(&time, &event, &worse, 1825.0, 10).unwrap();
    assert!((w.intercept - 0.5f64.ln()).abs() < 1e-9);
    assert!(w.ici > c.ici);
    assert!(calibration(&time, &event, &surv, 1825.0, 0).is_err());
}

#[test]
fn auc_per_time_equals_static_and_brier_layouts_agree() {
    let (time, event, cov, x) = gbsg2();
    let fit = fit_cox(&time, &event, &x, &cov, &CoxOptions::default()).unwrap();
    let risk = fit.linear_predictor(&x).unwrap();
    let times = [730.0, 1095.0];
    let a = cumulative_dynamic_auc(&time, &event, &risk, &times).unwrap();
    let b = cumulative_dynamic_auc_per_time(&time, &event, &[&risk, &risk], &times).unwrap();
    assert_eq!(a, b);
    assert!(cumulative_dynamic_auc(&time, &event, &risk, &[1095.0, 730.0]).is_err());
    assert!(cumulative_dynamic_auc(&time, &event, &risk, &[5000.0]).is_err());
    let rows = fit.predict_survival(&x, &times).unwrap();
    let cols: Vec<Vec<f64>> = (0..2).map(|k| rows.iter().map(|r| r[k]).collect()).collect();
    assert_eq!(
        brier_score_rows(&time, &event, &rows, &times).unwrap(),
        brier_score(&time, &event, &cols, &times).unwrap()
    );
    let one = brier_score(&time, &event, &cols[..1], &times[..1]).unwrap();
    assert_eq!(one.integrated, None);
    let mut bad = cols.clone();
    bad[0][3] = 1.5;
    assert!(brier_score(&time, &event, &bad, &times).is_err());
}

fn write_csv(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn csv_errors_name_row_and_column() {
    let cases = [
        (
            "time,event\n1,1\n2,0\nabc,1\n",
            "time",
            "data row 3 (line 4), column 'time'",
            "expected a number, found 'abc'",
        ),
        ("time,event\n1,1\nNaN,0\n", "time", "data row 2 (line 3), column 'time'", "finite"),
        ("time,event\n1,1\n-3,0\n", "time", "data row 2 (line 3), column 'time'", "expected a time >= 0, found -3"),
        ("time,event\n1,1\n2,2\n", "event", "data row 2 (line 3), column 'event'", "found '2'"),
        ("time,event\n1,\n", "event", "data row 1 (line 2), column 'event'", "empty value"),
        ("time,event\n1,1\n2\n", "time", "data row 2 (line 3)", "expected 2 fields"),
    ];
    for (text, _col, location, what) in cases {
        let f = write_csv(text);
        let err = CsvTable::read(f.path()).and_then(|t| t.survival_data("time", "event")).unwrap_err().to_string();
        assert!(err.contains(location) && err.contains(what), "{err}");
    }
    let f = write_csv("time,event\n1,1\n");
    let err = CsvTable::read(f.path()).unwrap().numeric("age").unwrap_err().to_string();
    assert!(err.contains("column 'age'") && err.contains("time, event"), "{err}");
    let f = write_csv("\u{feff}time,event\n3,1\n");
    assert_eq!(CsvTable::read(f.path()).unwrap().times("time").unwrap(), vec![3.0]);
    let f = write_csv("time,event\n");
    assert!(CsvTable::read(f.path()).unwrap_err().to_string().contains("at least one data row"));
}

/// Random small data sets (ties, zeros, censoring patterns, extreme covariates): every public
/// function returns `Ok` or `Err`, never panics, and what it returns is finite where defined.
#[test]
fn random_inputs_never_panic() {
    let mut x: u64 = 0xD1B54A32D192ED03;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for case in 0..300 {
        let n = 1 + (next() % 40) as usize;
        let distinct = 1 + next() % 8;
        let time: Vec<f64> = (0..n).map(|_| (next() % distinct) as f64 * 0.5).collect();
        let event: Vec<bool> = (0..n).map(|_| next() % 3 != 0).collect();
        let scale = [1.0, 1e-6, 1e6][case % 3];
        let risk: Vec<f64> = (0..n).map(|_| ((next() % 7) as f64 - 3.0) * scale).collect();
        let groups: Vec<u8> = (0..n).map(|_| (next() % 3) as u8).collect();
        let xs: Vec<f64> = (0..2 * n).map(|_| ((next() % 11) as f64 - 5.0) * scale).collect();
        let surv: Vec<f64> = (0..n).map(|_| (next() % 1001) as f64 / 1000.0).collect();
        if let Ok(km) = KaplanMeier::fit(&time, &event) {
            for p in km.curve() {
                assert!((0.0..=1.0).contains(&p.survival) && p.lower <= p.upper);
            }
            let _ = km.median();
        }
        if let Ok(c) = harrell_and_uno(&time, &event, &risk, Some(1.5)) {
            assert!((0.0..=1.0).contains(&c.harrell));
            assert!(c.uno.unwrap().is_finite());
        }
        if let Ok(lr) = logrank(&time, &event, &groups) {
            assert!(lr.statistic.is_finite() && (0.0..=1.0).contains(&lr.p_value));
        }
        for ties in [Ties::Efron, Ties::Breslow] {
            let opts = CoxOptions { ties, ..Default::default() };
            if let Ok(fit) = fit_cox(&time, &event, &xs, &names(&["a", "b"]), &opts) {
                assert!(fit.log_likelihood.is_finite());
                let _ = fit.predict_survival(&xs, &[0.0, 1.0, 100.0]).unwrap();
            }
        }
        let _ = cumulative_dynamic_auc(&time, &event, &risk, &[0.5, 1.0]);
        let _ = brier_score(&time, &event, &[surv.clone(), surv.clone()], &[0.5, 1.0]);
        let _ = calibration(&time, &event, &surv, 1.0, 4);
        let opts = BootstrapOptions { n_boot: 5, seed: case as u64, confidence_level: 0.9 };
        let _ = bootstrap_harrell(&time, &event, &risk, &opts);
        let _ = paired_concordance_difference(&time, &event, &risk, &surv, &opts);
    }
}
