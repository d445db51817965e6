//! `refit_oof.csv` and `refit_baseline.csv` (written by `train` when `refit` > 0, read by
//! `evaluate`): the out-of-fold predictions and fold baselines of every whole-procedure
//! bootstrap replicate ([`crate::model::refit`]), from which `evaluate` forms intervals that
//! include the variability of the split and of the fitted models.
//!
//! # Format
//! `refit_oof.csv`: `replicate,patient,copy,fold,risk,time,event`, one row per drawn copy of a
//! patient (`copy` 1, 2, … for a patient drawn several times), replicates ascending, patients
//! sorted by id within a replicate; `risk`, `time` and `event` as in `oof.csv`.
//! `refit_baseline.csv`: `replicate,fold,time,cumhaz`, as `baseline.csv` with the replicate in
//! place of the repeat. A replicate that failed has no row in either file; `model.json`'s
//! `refit` block lists it with its reason.
//!
//! # Validation
//! Indices non-negative integers, `copy ≥ 1` and each `(replicate, patient, copy)` once, risks
//! finite, times `≥ 0`, events 0/1, a replicate's copies of one patient in one fold, every
//! replicate with rows having a baseline for each of its folds (each baseline checked as
//! [`Baseline::new`]). Errors name the file, data row and column.
use super::baseline::{Baseline, Baselines};
use super::error::{indices, patients, shown, write_csv, ContractError, Result};
use crate::survival::CsvTable;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Most whole-procedure bootstrap replicates a `train` stage runs.
pub const MAX_REPLICATES: usize = 10_000;

/// One out-of-fold prediction of a replicate.
#[derive(Debug, Clone, PartialEq)]
pub struct RefitRow {
    /// 0-based replicate.
    pub replicate: usize,
    /// Patient id (of the cohort).
    pub patient: String,
    /// 1 for the first draw of the patient, 2 for the second, …
    pub copy: usize,
    /// Fold that tested the copy.
    pub fold: usize,
    /// Linear predictor of that fold's model.
    pub risk: f64,
    /// Follow-up time.
    pub time: f64,
    /// Event indicator.
    pub event: bool,
}

/// The content of both files.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Refit {
    /// Rows, by replicate.
    pub rows: Vec<RefitRow>,
    /// Fold baselines by (replicate, fold).
    pub baselines: BTreeMap<(usize, usize), Baseline>,
}

fn num(x: f64) -> String {
    format!("{x:?}")
}

impl Refit {
    /// The predictions' file name in a `train` output.
    pub const FILE: &'static str = "refit_oof.csv";
    /// The baselines' file name.
    pub const BASELINE_FILE: &'static str = "refit_baseline.csv";
    /// The predictions' header.
    pub const HEADER: [&'static str; 7] = ["replicate", "patient", "copy", "fold", "risk", "time", "event"];

    /// Checks the rows (see the module's Validation); `file` names the predictions' file.
    pub fn validate(&self, file: &str) -> Result<()> {
        let bad = |r: usize, column: &str, msg: String| ContractError::Row {
            file: file.to_string(),
            row: r + 1,
            column: column.into(),
            msg,
        };
        let mut seen: BTreeSet<(usize, &str, usize)> = BTreeSet::new();
        let mut fold_of: BTreeMap<(usize, &str), usize> = BTreeMap::new();
        for (r, o) in self.rows.iter().enumerate() {
            if o.patient.is_empty() {
                return Err(bad(r, "patient", "expected a patient id, found an empty value".into()));
            }
            if o.copy == 0 {
                return Err(bad(r, "copy", "expected a copy number >= 1, found 0".into()));
            }
            if !o.risk.is_finite() {
                return Err(bad(r, "risk", format!("expected a finite number, found {}", o.risk)));
            }
            if !(o.time.is_finite() && o.time >= 0.0) {
                return Err(bad(r, "time", format!("expected a time >= 0, found {}", o.time)));
            }
            if !seen.insert((o.replicate, &o.patient, o.copy)) {
                return Err(bad(
                    r,
                    "copy",
                    format!("copy {} of '{}' listed twice in replicate {}", o.copy, o.patient, o.replicate),
                ));
            }
            let f = *fold_of.entry((o.replicate, &o.patient)).or_insert(o.fold);
            if f != o.fold {
                return Err(bad(
                    r,
                    "fold",
                    format!(
                        "expected every copy of '{}' in replicate {} in one fold ({f}), found fold {}",
                        o.patient, o.replicate, o.fold
                    ),
                ));
            }
            if !self.baselines.contains_key(&(o.replicate, o.fold)) {
                return Err(bad(
                    r,
                    "fold",
                    format!("replicate {} fold {} has no baseline in {}", o.replicate, o.fold, Self::BASELINE_FILE),
                ));
            }
        }
        Ok(())
    }

    /// Writes both files into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(Self::FILE);
        self.validate(&shown(&path))?;
        let rows = self.rows.iter().map(|o| {
            vec![
                o.replicate.to_string(),
                o.patient.clone(),
                o.copy.to_string(),
                o.fold.to_string(),
                num(o.risk),
                num(o.time),
                (o.event as usize).to_string(),
            ]
        });
        write_csv(&path, &Self::HEADER, rows)?;
        let b = Baselines { folds: self.baselines.clone() };
        b.write_with_header(&dir.join(Self::BASELINE_FILE), "replicate")
    }

    /// Reads and validates both files from `dir`; `None` when the predictions' file is absent
    /// (a `train` stage run without `refit`).
    pub fn read(dir: &Path) -> Result<Option<Refit>> {
        let path = dir.join(Self::FILE);
        if !path.exists() {
            return Ok(None);
        }
        let t = CsvTable::read(&path)?;
        let (replicate, patient) = (indices(&t, "replicate")?, patients(&t, "patient")?);
        let (copy, fold) = (indices(&t, "copy")?, indices(&t, "fold")?);
        let (risk, time, event) = (t.numeric("risk")?, t.times("time")?, t.events("event")?);
        let rows = (0..t.len())
            .map(|i| RefitRow {
                replicate: replicate[i],
                patient: patient[i].clone(),
                copy: copy[i],
                fold: fold[i],
                risk: risk[i],
                time: time[i],
                event: event[i],
            })
            .collect();
        let baselines = Baselines::read_with_header(&dir.join(Self::BASELINE_FILE), "replicate")?.folds;
        let r = Refit { rows, baselines };
        r.validate(t.file())?;
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(replicate: usize, patient: &str, copy: usize, fold: usize) -> RefitRow {
        RefitRow { replicate, patient: patient.into(), copy, fold, risk: 0.5, time: 10.0, event: true }
    }

    fn refit(rows: Vec<RefitRow>) -> Refit {
        let b = Baseline::new(vec![5.0, 10.0], vec![0.1, 0.2]).unwrap();
        let baselines = [(0, 0), (0, 1), (1, 0)].into_iter().map(|k| (k, b.clone())).collect();
        Refit { rows, baselines }
    }

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let r = refit(vec![row(0, "a", 1, 0), row(0, "a", 2, 0), row(0, "b,c", 1, 1), row(1, "a", 1, 0)]);
        r.write(dir.path()).unwrap();
        assert_eq!(Refit::read(dir.path()).unwrap().unwrap(), r);
        let text = std::fs::read_to_string(dir.path().join(Refit::BASELINE_FILE)).unwrap();
        assert!(text.starts_with("replicate,fold,time,cumhaz\n"), "{text}");
        assert_eq!(Refit::read(&dir.path().join("absent")).unwrap(), None);
    }

    #[test]
    fn copies_in_two_folds_are_refused() {
        let e = refit(vec![row(0, "a", 1, 0), row(0, "a", 2, 1)]).validate("refit_oof.csv").unwrap_err().to_string();
        assert!(e.contains("refit_oof.csv") && e.contains("row 2") && e.contains("in one fold"), "{e}");
        let e = refit(vec![row(0, "a", 1, 0), row(0, "a", 1, 0)]).validate("f").unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
        let e = refit(vec![row(1, "a", 1, 1)]).validate("f").unwrap_err().to_string();
        assert!(e.contains("no baseline"), "{e}");
        let e = refit(vec![row(0, "a", 0, 0)]).validate("f").unwrap_err().to_string();
        assert!(e.contains("copy number"), "{e}");
    }
}
