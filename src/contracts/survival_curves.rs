//! `survival.csv` (written by `train`; read by `evaluate` and `calibrate` for the folds that
//! have no Breslow baseline — the discrete-time `loss: nll` networks — and by people and other
//! tools for every arm): each test patient's predicted survival curve.
//!
//! # Format
//! `repeat,fold,patient,time,survival`: for each (repeat, fold) and each of its test patients,
//! the predicted `S(t)` at the fold model's step times, ascending: a Cox arm's baseline event
//! times (`exp(−H₀(t)·e^{risk})`), a `loss: nll` network's interval ends (`Π_{k ≤ j}(1 − h_k)`).
//! `S` is a right-continuous step function, 1 before the first time. Numbers in Rust's shortest
//! round-trip form.
//!
//! # Validation
//! A non-integer index, an empty patient id, a negative or non-finite time, a survival outside
//! [0, 1], times that do not increase or survival that increases within one patient's curve.
use super::error::{indices, patients, shown, write_csv, ContractError, Result};
use crate::survival::CsvTable;
use std::collections::BTreeMap;
use std::path::Path;

/// One patient's curve in one repeat: her test fold and the `(time, survival)` steps.
pub type FoldCurve = (usize, Vec<(f64, f64)>);

/// The curves of `survival.csv`, by (repeat, patient).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SurvivalCurves {
    pub curves: BTreeMap<(usize, String), FoldCurve>,
}

fn num(x: f64) -> String {
    format!("{x:?}")
}

/// `S(t)` of a step curve (1 before its first time).
pub fn step_at(curve: &[(f64, f64)], t: f64) -> f64 {
    match curve.partition_point(|p| p.0 <= t) {
        0 => 1.0,
        k => curve[k - 1].1,
    }
}

impl SurvivalCurves {
    /// The file name in a `train` output.
    pub const FILE: &'static str = "survival.csv";
    /// The header.
    pub const HEADER: [&'static str; 5] = ["repeat", "fold", "patient", "time", "survival"];

    fn validate(&self, file: &str) -> Result<()> {
        for ((rep, patient), (_, c)) in &self.curves {
            for (k, &(t, s)) in c.iter().enumerate() {
                let bad = |msg: String| ContractError::Invalid {
                    file: file.to_string(),
                    msg: format!("repeat {rep}, patient `{patient}`, point {k}: {msg}"),
                };
                if !(t.is_finite() && t >= 0.0) {
                    return Err(bad(format!("expected a finite time ≥ 0, found {t}")));
                }
                if !(s.is_finite() && (0.0..=1.0).contains(&s)) {
                    return Err(bad(format!("expected a survival in [0, 1], found {s}")));
                }
                if k > 0 && (t <= c[k - 1].0 || s > c[k - 1].1) {
                    return Err(bad(format!(
                        "expected increasing times and non-increasing survival, found ({}, {}) then ({t}, {s})",
                        c[k - 1].0,
                        c[k - 1].1
                    )));
                }
            }
        }
        Ok(())
    }

    /// Writes the file, by repeat, fold, then the given patient order within each fold.
    pub fn write(&self, path: &Path, order: &[String]) -> Result<()> {
        self.validate(&shown(path))?;
        let rank: BTreeMap<&str, usize> = order.iter().enumerate().map(|(i, p)| (p.as_str(), i)).collect();
        let mut keys: Vec<(&(usize, String), &FoldCurve)> = self.curves.iter().collect();
        keys.sort_by_key(|((rep, p), (fold, _))| (*rep, *fold, rank.get(p.as_str()).copied().unwrap_or(usize::MAX)));
        let rows = keys.into_iter().flat_map(|((rep, p), (fold, c))| {
            c.iter().map(move |&(t, s)| vec![rep.to_string(), fold.to_string(), p.clone(), num(t), num(s)])
        });
        write_csv(path, &Self::HEADER, rows)
    }

    /// Reads and validates the file.
    pub fn read(path: &Path) -> Result<SurvivalCurves> {
        let t = CsvTable::read(path)?;
        let (repeat, fold, patient) = (indices(&t, "repeat")?, indices(&t, "fold")?, patients(&t, "patient")?);
        let (time, surv) = (t.numeric("time")?, t.numeric("survival")?);
        let mut out = SurvivalCurves::default();
        for i in 0..t.len() {
            let e = out.curves.entry((repeat[i], patient[i].clone())).or_insert_with(|| (fold[i], Vec::new()));
            if e.0 != fold[i] {
                return Err(ContractError::Row {
                    file: t.file().to_string(),
                    row: i + 1,
                    column: "fold".into(),
                    msg: format!("patient `{}` is in fold {} earlier in repeat {}", patient[i], e.0, repeat[i]),
                });
            }
            e.1.push((time[i], surv[i]));
        }
        out.validate(t.file())?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_golden_text_reads_back_and_steps() {
        let mut c = SurvivalCurves::default();
        c.curves.insert((0, "B".into()), (1, vec![(10.0, 0.9), (20.5, 0.5)]));
        c.curves.insert((0, "A".into()), (0, vec![(10.0, 0.8)]));
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("survival.csv");
        c.write(&p, &["B".into(), "A".into()]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, "repeat,fold,patient,time,survival\n0,0,A,10.0,0.8\n0,1,B,10.0,0.9\n0,1,B,20.5,0.5\n");
        assert_eq!(SurvivalCurves::read(&p).unwrap(), c);
        let b = &c.curves[&(0, "B".to_string())].1;
        assert_eq!((step_at(b, 5.0), step_at(b, 10.0), step_at(b, 20.0), step_at(b, 99.0)), (1.0, 0.9, 0.9, 0.5));
    }

    #[test]
    fn refuses_increasing_survival_and_moving_folds() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("survival.csv");
        std::fs::write(&p, "repeat,fold,patient,time,survival\n0,0,A,1,0.5\n0,0,A,2,0.6\n").unwrap();
        let e = SurvivalCurves::read(&p).unwrap_err().to_string();
        assert!(e.contains("patient `A`, point 1") && e.contains("non-increasing"), "{e}");
        std::fs::write(&p, "repeat,fold,patient,time,survival\n0,0,A,1,0.5\n0,1,A,2,0.4\n").unwrap();
        let e = SurvivalCurves::read(&p).unwrap_err().to_string();
        assert!(e.contains("data row 2") && e.contains("fold 0 earlier"), "{e}");
    }
}
