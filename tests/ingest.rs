//! `ingest` validation of clinical tables: every bad input names its row and column.
mod common;
use common::*;
use spatia::cohort::Cohort;
use spatia::cohort::{read_clinical, Cell};

fn cohort(covs: &[&str], missing: Option<&str>) -> Cohort {
    Cohort {
        clinical: "c.csv".into(),
        id: "patient_id".into(),
        time: "time".into(),
        event: "event".into(),
        causes: None,
        covariates: covs.iter().map(|s| s.to_string()).collect(),
        categorical: vec![],
        missing: missing.map(str::to_string),
        slides: None,
        mpp_override: None,
    }
}

fn err(csv: &str, c: &Cohort) -> String {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c.csv");
    std::fs::write(&p, csv).unwrap();
    format!("{:#}", read_clinical(&p, c).expect_err("expected an error"))
}

const H: &str = "patient_id,age,time,event\n";

#[test]
fn each_bad_value_is_named_by_row_and_column() {
    let c = cohort(&["age"], None);
    let cases = [
        (format!("{H}p1,50,100,1\np2,,200,0\n"), "row 2, column `age`: missing value (patient p2)"),
        (format!("{H}p1,50,-3,1\n"), "row 1, column `time`: time -3 is negative"),
        (format!("{H}p1,50,abc,1\n"), "row 1, column `time`: time `abc` is not a finite number"),
        (format!("{H}p1,50,NaN,1\n"), "row 1, column `time`: time `NaN` is not a finite number"),
        (format!("{H}p1,50,10,2\n"), "row 1, column `event`: event `2` is not 0 or 1"),
        (
            format!("{H}p1,50,10,1\np1,51,11,0\n"),
            "row 2, column `patient_id`: duplicate patient id `p1` (first seen in row 1)",
        ),
        (format!("{H}p1,50,10,0\np2,51,11,0\n"), "has no events (all 2 patients censored)"),
        (format!("{H}p1,old,10,1\n"), "row 1, column `age`: `old` is not a number"),
        (format!("{H},50,10,1\n"), "row 1 (line 2), column `patient_id`: empty id"),
        (format!("{H}p1,1e308,10,1\n"), "row 1, column `age`: `1e308` is too large to standardise"),
        (format!("{H}p1,-1e308,10,1\n"), "row 1, column `age`: `-1e308` is too large to standardise"),
    ];
    for (csv, want) in cases {
        let e = err(&csv, &c);
        assert!(e.contains(want), "expected `{want}` in `{e}`");
        assert!(e.contains("c.csv"), "error does not name the file: {e}");
    }
    let e = err(&format!("{H}p1,50,10,1\n"), &cohort(&["size"], None));
    assert!(e.contains("no column `size` (the cohort's covariate) among the header's 4 column(s)"), "{e}");
    let e = err(&format!("{H}p1,50,10,1\n"), &cohort(&["Age"], None));
    assert!(e.contains("no column `Age`") && e.contains("did you mean `age`?"), "{e}");
    // a duplicated column is an error, not silently the first one
    let e = err("patient_id,age,time,event,age\np1,50,10,1,60\n", &cohort(&["age"], None));
    assert!(e.contains("column `age` is written twice in the header (columns 2 and 5)") && e.contains("c.csv"), "{e}");
    // ids with control characters are refused, naming file, row and column
    let e = err(&format!("{H}p\u{7}1,50,10,1\n"), &cohort(&["age"], None));
    assert!(e.contains("row 1 (line 2), column `patient_id`") && e.contains("U+0007"), "{e}");
}

#[test]
fn missing_values_follow_the_declared_policy() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c.csv");
    std::fs::write(&p, format!("{H}p1,50,100,1\np2,NA,200,0\np3,70,50,1\n")).unwrap();
    let t = read_clinical(&p, &cohort(&["age"], Some("drop"))).unwrap();
    assert_eq!(t.ids, vec!["p1", "p3"]);
    assert_eq!(t.dropped.len(), 1);
    assert_eq!(t.dropped[0].row, 2);
    let t = read_clinical(&p, &cohort(&["age"], Some("impute"))).unwrap();
    assert_eq!(t.ids.len(), 3);
    assert_eq!(t.cells[1][0], Cell::Missing);
}

#[test]
fn real_gse7390_table_ingests_with_drop_policy() {
    let p = shared().join("data/clinical/breast_cancer_gse7390.csv");
    let mut c = cohort(&["age", "er", "grade", "size"], None);
    c.id = "@row".into();
    let e = format!("{:#}", read_clinical(&p, &c).unwrap_err());
    assert!(e.contains("column `grade`: missing value"), "{e}");
    c.missing = Some("drop".into());
    let t = read_clinical(&p, &c).unwrap();
    assert_eq!(t.ids.len(), 196);
    assert_eq!(t.event.iter().filter(|&&e| e).count(), 51);
    assert_eq!(t.dropped.len(), 2);
}

#[test]
fn failing_ingest_fails_the_run_with_the_row() {
    let d = project();
    std::fs::write(d.path().join("c.csv"), format!("{H}p1,50,100,1\np2,60,-1,0\n")).unwrap();
    std::fs::write(
        d.path().join("s.yaml"),
        "name: i\ncohort: {clinical: c.csv, covariates: [age]}\nstages:\n  ingest: {kind: ingest}\n",
    )
    .unwrap();
    let o = spatia(d.path(), &["run", "s.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("row 2, column `time`: time -1 is negative"), "{}", text(&o));
}
