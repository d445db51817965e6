//! Cross-validated Cox training (`model::train_cv`, the `train` stage's engine) on the real
//! GBSG2 cohort (686 patients) with a fixed penalty: out-of-fold Harrell's C in a plausible
//! range, deterministic for a seed, every patient tested exactly once per repeat, every fold's
//! baseline a proper cumulative hazard giving survival curves in [0, 1].
use std::path::Path;

use spatia::model::{covariates_from_table, train_cv, CvOptions, MissingPolicy, Penalty, TrainData, TrainOptions};
use spatia::survival::harrell;

const GBSG2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/clinical/gbsg2.csv");

fn load() -> TrainData {
    // the table as `ingest` validates it, then its covariates as design columns
    let cohort = spatia::cohort::Cohort {
        clinical: "gbsg2.csv".into(),
        id: spatia::cohort::ROW_IDS.into(),
        time: "time".into(),
        event: "event".into(),
        causes: None,
        covariates: ["age", "tsize", "pnodes", "progrec", "estrec", "horTh", "menostat", "tgrade"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        categorical: vec!["horTh".into(), "menostat".into(), "tgrade".into()],
        missing: None,
        slides: None,
        mpp_override: None,
    };
    let table = spatia::cohort::read_clinical(Path::new(GBSG2), &cohort).unwrap();
    let covariates = covariates_from_table(&table, &cohort.categorical);
    let patients = (0..table.time.len()).map(|i| format!("GBSG2-{i:03}")).collect();
    TrainData { patients, time: table.time, event: table.event, covariates, blocks: Vec::new(), spatial: None }
}

fn opts(seed: u64) -> TrainOptions {
    TrainOptions {
        cv: CvOptions { k: 5, repeats: 2, seed },
        inner_k: 3,
        penalty: Penalty::Fixed(0.1),
        pca: 5,
        missing: MissingPolicy::Impute,
    }
}

#[test]
fn gbsg2_oof_concordance_plausible_and_deterministic() {
    let d = load();
    let r = train_cv(&d, &opts(2026)).unwrap();
    assert_eq!(r.oof.rows.len(), 2 * 686);
    assert_eq!(r.folds.len(), 10);
    for rep in 0..2 {
        let rows: Vec<_> = r.oof.rows.iter().filter(|o| o.repeat == rep).collect();
        assert_eq!(rows.len(), 686);
        assert!(rows.iter().all(|o| o.risk.is_finite() && o.fold < 5));
        let risk: Vec<f64> = rows.iter().map(|o| o.risk).collect();
        let cidx = harrell(&d.time, &d.event, &risk).unwrap().harrell;
        assert!((0.6..=0.75).contains(&cidx), "repeat {rep}: OOF Harrell C = {cidx}");
        let tested: usize = r.folds.iter().filter(|f| f.repeat == rep).map(|f| f.n_test).sum();
        assert_eq!(tested, 686);
    }
    for f in &r.folds {
        assert_eq!(f.names.len(), 9, "{:?}", f.names); // 5 numeric + horTh + menostat + tgrade(2)
        let b = &r.baselines.folds[&(f.repeat, f.fold)];
        let s: Vec<f64> = [365.0, 1095.0, 1825.0].iter().map(|&t| b.survival(0.0, t)).collect();
        assert!(s.windows(2).all(|w| w[1] <= w[0]) && s.iter().all(|&v| (0.0..=1.0).contains(&v)), "{s:?}");
    }
    assert_eq!(r, train_cv(&d, &opts(2026)).unwrap(), "same seed must give identical results");
    let other = train_cv(&d, &opts(7)).unwrap();
    assert_ne!(
        r.oof.rows.iter().map(|o| o.fold).collect::<Vec<_>>(),
        other.oof.rows.iter().map(|o| o.fold).collect::<Vec<_>>()
    );
}

#[test]
fn mismatched_lengths_are_named() {
    let mut d = load();
    d.time.truncate(10);
    let err = train_cv(&d, &opts(1)).unwrap_err().to_string();
    assert!(
        err.contains("times (one per patient)") && err.contains("expected 686") && err.contains("found 10"),
        "{err}"
    );
}
