//! `oof.csv` and `inner_oof.csv` (written by `train`, read by `evaluate` and `calibrate`): the
//! out-of-fold predictions of the outer cross-validation, and those of the inner
//! cross-validation of every outer fold's training patients.
//!
//! # Format
//! `oof.csv`: `repeat,patient,fold,risk,time,event`, one row per patient per repeat;
//! `inner_oof.csv`: `repeat,outer_fold,inner_fold,patient,risk,time,event`, one row per
//! training patient per (repeat, outer fold). `repeat` and the folds are 0-based integers below
//! 10⁹; `risk` is the linear predictor of the fold model that tested the patient (higher =
//! higher hazard), finite; `time` the follow-up (≥ 0); `event` 1 (distant metastasis) or 0
//! (censored). Numbers are written in Rust's shortest round-trip form (`{:?}`); a patient id is
//! quoted only when it must be.
//!
//! # Validation
//! A non-integer or negative index, an empty patient id, a non-finite risk, a negative time, an
//! event other than 0/1, a patient listed twice in one repeat (in one repeat and outer fold for
//! the inner file; both rows named).
use super::error::{indices, patients, shown, write_csv, ContractError, Result};
use crate::survival::CsvTable;
use std::collections::BTreeMap;
use std::path::Path;

/// One out-of-fold prediction (a row of `oof.csv`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OofRow {
    /// CV repeat (0-based).
    pub repeat: usize,
    /// Patient id.
    pub patient: String,
    /// Fold the patient was tested in (0-based).
    pub fold: usize,
    /// Linear predictor of that fold's model.
    pub risk: f64,
    /// Follow-up time.
    pub time: f64,
    /// Event indicator.
    pub event: bool,
}

/// One inner out-of-fold prediction (a row of `inner_oof.csv`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InnerOofRow {
    /// CV repeat (0-based).
    pub repeat: usize,
    /// Outer fold whose training patients the inner CV splits.
    pub outer_fold: usize,
    /// Inner fold the patient was tested in.
    pub inner_fold: usize,
    /// Patient id.
    pub patient: String,
    /// Linear predictor of the inner fold model.
    pub risk: f64,
    /// Follow-up time.
    pub time: f64,
    /// Event indicator.
    pub event: bool,
}

/// The content of `oof.csv`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Oof {
    /// Rows, in file order (by repeat, then patient order).
    pub rows: Vec<OofRow>,
}

/// The content of `inner_oof.csv`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InnerOof {
    /// Rows, in file order.
    pub rows: Vec<InnerOofRow>,
}

fn num(x: f64) -> String {
    format!("{x:?}")
}

/// Row checks shared by both files: `key` is the scope in which a patient appears once.
fn check_rows<'a, K: Ord + Copy>(
    file: &str,
    rows: impl Iterator<Item = (K, &'a str, f64, f64)>,
    scope: &str,
    show: impl Fn(K) -> String,
) -> Result<()> {
    let bad = |r: usize, column: &str, msg: String| ContractError::Row {
        file: file.to_string(),
        row: r + 1,
        column: column.into(),
        msg,
    };
    let mut seen: BTreeMap<(K, &str), usize> = BTreeMap::new();
    for (r, (key, patient, risk, time)) in rows.enumerate() {
        if patient.is_empty() {
            return Err(bad(r, "patient", "expected a patient id, found an empty value".into()));
        }
        if !risk.is_finite() {
            return Err(bad(r, "risk", format!("expected a finite number, found {risk}")));
        }
        if !(time.is_finite() && time >= 0.0) {
            return Err(bad(r, "time", format!("expected a time >= 0, found {time}")));
        }
        if let Some(first) = seen.insert((key, patient), r) {
            return Err(bad(
                r,
                "patient",
                format!(
                    "expected each patient once per {scope}, found '{patient}' again (first at data row {}, {})",
                    first + 1,
                    show(key)
                ),
            ));
        }
    }
    Ok(())
}

impl Oof {
    /// The file name in a `train` output.
    pub const FILE: &'static str = "oof.csv";
    /// The header.
    pub const HEADER: [&'static str; 6] = ["repeat", "patient", "fold", "risk", "time", "event"];

    /// Checks every row (see the module's Validation); `file` names the file in errors.
    pub fn validate(&self, file: &str) -> Result<()> {
        let rows = self.rows.iter().map(|o| (o.repeat, o.patient.as_str(), o.risk, o.time));
        check_rows(file, rows, "repeat", |r| format!("repeat {r}"))
    }

    /// Writes the file.
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate(&shown(path))?;
        let rows = self.rows.iter().map(|o| {
            vec![
                o.repeat.to_string(),
                o.patient.clone(),
                o.fold.to_string(),
                num(o.risk),
                num(o.time),
                (o.event as usize).to_string(),
            ]
        });
        write_csv(path, &Self::HEADER, rows)
    }

    /// Reads and validates the file.
    pub fn read(path: &Path) -> Result<Oof> {
        let t = CsvTable::read(path)?;
        let (repeat, patient, fold) = (indices(&t, "repeat")?, patients(&t, "patient")?, indices(&t, "fold")?);
        let (risk, time, event) = (t.numeric("risk")?, t.times("time")?, t.events("event")?);
        let rows = (0..t.len())
            .map(|i| OofRow {
                repeat: repeat[i],
                patient: patient[i].clone(),
                fold: fold[i],
                risk: risk[i],
                time: time[i],
                event: event[i],
            })
            .collect();
        let oof = Oof { rows };
        oof.validate(t.file())?;
        Ok(oof)
    }
}

impl InnerOof {
    /// The file name in a `train` output.
    pub const FILE: &'static str = "inner_oof.csv";
    /// The header.
    pub const HEADER: [&'static str; 7] = ["repeat", "outer_fold", "inner_fold", "patient", "risk", "time", "event"];

    /// Checks every row (see the module's Validation); `file` names the file in errors.
    pub fn validate(&self, file: &str) -> Result<()> {
        let rows = self.rows.iter().map(|o| ((o.repeat, o.outer_fold), o.patient.as_str(), o.risk, o.time));
        check_rows(file, rows, "repeat and outer fold", |(r, f)| format!("repeat {r} outer fold {f}"))
    }

    /// Writes the file.
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate(&shown(path))?;
        let rows = self.rows.iter().map(|o| {
            vec![
                o.repeat.to_string(),
                o.outer_fold.to_string(),
                o.inner_fold.to_string(),
                o.patient.clone(),
                num(o.risk),
                num(o.time),
                (o.event as usize).to_string(),
            ]
        });
        write_csv(path, &Self::HEADER, rows)
    }

    /// Reads and validates the file.
    pub fn read(path: &Path) -> Result<InnerOof> {
        let t = CsvTable::read(path)?;
        let (repeat, outer, inner) = (indices(&t, "repeat")?, indices(&t, "outer_fold")?, indices(&t, "inner_fold")?);
        let (patient, risk, time, event) =
            (patients(&t, "patient")?, t.numeric("risk")?, t.times("time")?, t.events("event")?);
        let rows = (0..t.len())
            .map(|i| InnerOofRow {
                repeat: repeat[i],
                outer_fold: outer[i],
                inner_fold: inner[i],
                patient: patient[i].clone(),
                risk: risk[i],
                time: time[i],
                event: event[i],
            })
            .collect();
        let inner = InnerOof { rows };
        inner.validate(t.file())?;
        Ok(inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(repeat: usize, patient: &str, fold: usize, risk: f64) -> OofRow {
        OofRow { repeat, patient: patient.into(), fold, risk, time: 365.0, event: fold == 0 }
    }

    #[test]
    fn oof_golden_text_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("oof.csv");
        let oof = Oof { rows: vec![row(0, "P1", 0, 0.1), row(0, "P,2", 1, -1e-20)] };
        oof.write(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, "repeat,patient,fold,risk,time,event\n0,P1,0,0.1,365.0,1\n0,\"P,2\",1,-1e-20,365.0,0\n");
        assert_eq!(Oof::read(&p).unwrap(), oof);
    }

    #[test]
    fn inner_oof_golden_text_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("inner_oof.csv");
        let r = InnerOofRow {
            repeat: 1,
            outer_fold: 2,
            inner_fold: 0,
            patient: "P9".into(),
            risk: 1.5,
            time: 10.25,
            event: false,
        };
        let inner = InnerOof { rows: vec![r] };
        inner.write(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, "repeat,outer_fold,inner_fold,patient,risk,time,event\n1,2,0,P9,1.5,10.25,0\n");
        assert_eq!(InnerOof::read(&p).unwrap(), inner);
    }

    fn read_err(text: &str) -> String {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("oof.csv");
        std::fs::write(&p, text).unwrap();
        Oof::read(&p).unwrap_err().to_string()
    }

    #[test]
    fn malformed_oof_names_file_row_and_column() {
        let head = "repeat,patient,fold,risk,time,event\n";
        let e = read_err(&format!("{head}0,P1,0,0.1,1,1\n0.5,P2,0,0.1,1,1\n"));
        assert!(e.contains("oof.csv, data row 2, column 'repeat'") && e.contains("non-negative integer"), "{e}");
        let e = read_err(&format!("{head}0,P1,1e9,0.1,1,1\n"));
        assert!(e.contains("data row 1, column 'fold'") && e.contains("below 1000000000"), "{e}");
        let e = read_err(&format!("{head}0,P1,0,high,1,1\n"));
        assert!(e.contains("oof.csv, data row 1 (line 2), column 'risk'") && e.contains("'high'"), "{e}");
        let e = read_err(&format!("{head}0,,0,0.1,1,1\n"));
        assert!(e.contains("data row 1, column 'patient'") && e.contains("empty"), "{e}");
        let e = read_err(&format!("{head}0,P1,0,0.1,1,1\n1,P1,0,0.1,1,1\n0,P1,1,0.2,1,1\n"));
        assert!(
            e.contains("data row 3, column 'patient'")
                && e.contains("once per repeat")
                && e.contains("first at data row 1"),
            "{e}"
        );
        let e = read_err("repeat,patient,fold,score,time,event\n0,P1,0,0.1,1,1\n");
        assert!(e.contains("column 'risk'") && e.contains("found only repeat, patient, fold, score"), "{e}");
        let e = read_err(&format!("{head}0,P1,0,0.1,-1,1\n"));
        assert!(e.contains("column 'time'") && e.contains("expected a time >= 0"), "{e}");
        let e = read_err(&format!("{head}0,P1,0,0.1,1,2\n"));
        assert!(e.contains("column 'event'") && e.contains("0 (censored) or 1 (event)"), "{e}");
    }

    #[test]
    fn inner_oof_refuses_a_patient_twice_in_one_outer_fold() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("inner_oof.csv");
        let head = "repeat,outer_fold,inner_fold,patient,risk,time,event\n";
        std::fs::write(&p, format!("{head}0,0,0,P1,0.1,1,1\n0,1,0,P1,0.1,1,1\n0,0,1,P1,0.1,1,1\n")).unwrap();
        let e = InnerOof::read(&p).unwrap_err().to_string();
        assert!(e.contains("data row 3, column 'patient'") && e.contains("repeat 0 outer fold 0"), "{e}");
    }
}
