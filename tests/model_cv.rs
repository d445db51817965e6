//! Cross-validated Cox on the real GBSG2 cohort (686 patients): out-of-fold Harrell's C in a
//! plausible range, deterministic for a seed, every patient tested exactly once per repeat,
//! predicted survival a proper (decreasing, in [0, 1]) curve.
use std::path::Path;

use spatia::model::{covariates_from_table, cox_cv, CoxCvOptions, CvOptions};
use spatia::survival::harrell;

const GBSG2: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/clinical/gbsg2.csv"
);

fn load() -> (
    Vec<String>,
    Vec<f64>,
    Vec<bool>,
    Vec<spatia::model::Covariate>,
) {
    // the table as `ingest` validates it, then its covariates as design columns
    let cohort = spatia::cohort::Cohort {
        clinical: "gbsg2.csv".into(),
        id: spatia::cohort::ROW_IDS.into(),
        time: "time".into(),
        event: "event".into(),
        covariates: ["age", "tsize", "pnodes", "progrec", "estrec", "horTh", "menostat", "tgrade"].iter().map(|s| s.to_string()).collect(),
        categorical: vec!["horTh".into(), "menostat".into(), "tgrade".into()],
        missing: None,
        slides: None,
        mpp_override: None,
    };
    let table = spatia::cohort::read_clinical(Path::new(GBSG2), &cohort).unwrap();
    let c = covariates_from_table(&table, &cohort.categorical);
    let patients = (0..table.time.len()).map(|i| format!("GBSG2-{i:03}")).collect();
    (patients, table.time, table.event, c)
}

#[test]
fn gbsg2_oof_concordance_plausible_and_deterministic() {
    let (p, t, e, c) = load();
    let opts = CoxCvOptions {
        cv: CvOptions {
            k: 5,
            repeats: 2,
            seed: 2026,
        },
        l2_penalty: 0.1,
        times: vec![365.0, 1095.0, 1825.0],
        ..Default::default()
    };
    let r = cox_cv(&p, &t, &e, &c, &opts).unwrap();
    assert_eq!(r.oof.len(), 2 * 686);
    assert_eq!(r.folds.len(), 10);
    for rep in 0..2 {
        let rows: Vec<_> = r.oof.iter().filter(|o| o.repeat == rep).collect();
        assert_eq!(rows.len(), 686);
        assert!(rows.iter().all(|o| o.risk.is_finite() && o.fold < 5));
        let risk: Vec<f64> = rows.iter().map(|o| o.risk).collect();
        let cidx = harrell(&t, &e, &risk).unwrap().harrell;
        eprintln!("repeat {rep}: OOF Harrell C = {cidx:.4}");
        assert!(
            (0.6..=0.75).contains(&cidx),
            "repeat {rep}: OOF Harrell C = {cidx}"
        );
        // each fold's survival covers exactly its test patients
        let tested: usize = r
            .folds
            .iter()
            .filter(|f| f.repeat == rep)
            .map(|f| f.survival.len())
            .sum();
        assert_eq!(tested, 686);
    }
    for f in &r.folds {
        assert_eq!(f.names.len(), 9, "{:?}", f.names); // 5 numeric + horTh + menostat + tgrade(2)
        for (_, s) in &f.survival {
            assert!(
                s.windows(2).all(|w| w[1] <= w[0]) && s.iter().all(|&v| (0.0..=1.0).contains(&v)),
                "{s:?}"
            );
        }
    }
    let again = cox_cv(&p, &t, &e, &c, &opts).unwrap();
    assert_eq!(r, again, "same seed must give identical results");
    let other = cox_cv(
        &p,
        &t,
        &e,
        &c,
        &CoxCvOptions {
            cv: CvOptions {
                seed: 7,
                ..opts.cv.clone()
            },
            ..opts.clone()
        },
    )
    .unwrap();
    assert_ne!(
        r.oof.iter().map(|o| o.fold).collect::<Vec<_>>(),
        other.oof.iter().map(|o| o.fold).collect::<Vec<_>>()
    );
}

#[test]
fn mismatched_lengths_are_named() {
    let (p, t, e, c) = load();
    let err = cox_cv(&p, &t[..10], &e, &c, &CoxCvOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("times (one per patient)")
            && err.contains("expected 686")
            && err.contains("found 10"),
        "{err}"
    );
}
