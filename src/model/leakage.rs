//! The leakage guard: checks, before any model is fitted, that the cross-validation cannot
//! see its test folds.
//!
//! Two leaks are detected, each with an error naming the patient / transform:
//! - a patient whose rows fall in two folds (e.g. a split done over slides, not patients);
//! - a fitted transform (normalisation, PCA, …) for test fold `f` whose fitting rows include a
//!   row of fold `f` (e.g. a standardiser fitted on all rows).
//!
//! The caller records each transform with [`TransformRecord`] (name, its test fold, the rows
//! it was fitted on — [`crate::model::Standardizer::fitted_rows`]) and calls
//! [`check_leakage`] with the per-row fold and patient.
//!
//! # Errors
//! [`ModelError::PatientInTwoFolds`], [`ModelError::TransformSawTestFold`], mismatched lengths,
//! out-of-range rows.
use std::collections::HashMap;

use super::error::{ModelError, Result};

/// One fitted transform and the rows it saw.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TransformRecord {
    /// Name (e.g. `standardizer`, `pca:HE`).
    pub name: String,
    /// The test fold it was fitted for (it must not have seen this fold).
    pub test_fold: usize,
    /// 0-based rows it was fitted on.
    pub fitted_rows: Vec<usize>,
}

/// Checks per-row folds for patients in two folds and transforms that saw their test fold.
pub fn check_leakage(row_patients: &[String], row_folds: &[usize], transforms: &[TransformRecord]) -> Result<()> {
    let n = row_patients.len();
    if row_folds.len() != n {
        return Err(ModelError::LengthMismatch {
            what: "row folds (one per row)".into(),
            expected: n,
            found: row_folds.len(),
        });
    }
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (row, p) in row_patients.iter().enumerate() {
        match first.get(p.as_str()) {
            Some(&r0) if row_folds[r0] != row_folds[row] => {
                return Err(ModelError::PatientInTwoFolds {
                    patient: p.clone(),
                    fold_a: row_folds[r0],
                    row_a: r0,
                    fold_b: row_folds[row],
                    row_b: row,
                })
            }
            Some(_) => {}
            None => {
                first.insert(p.as_str(), row);
            }
        }
    }
    for t in transforms {
        let mut bad = None;
        let mut count = 0;
        for &r in &t.fitted_rows {
            if r >= n {
                return Err(ModelError::RowOutOfRange { what: format!("rows of transform '{}'", t.name), row: r, n });
            }
            if row_folds[r] == t.test_fold {
                count += 1;
                bad.get_or_insert(r);
            }
        }
        if let Some(row) = bad {
            return Err(ModelError::TransformSawTestFold {
                transform: t.name.clone(),
                fold: t.test_fold,
                count,
                row,
                patient: row_patients[row].clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cv::{patient_events, split, CvOptions};
    use crate::model::design::{Column, Covariate, MissingPolicy, Standardizer};

    fn setup() -> (Vec<String>, Vec<usize>, Vec<Covariate>) {
        // 40 patients, 2 slides each
        let rows: Vec<String> = (0..80).map(|i| format!("PT-{:02}", i / 2)).collect();
        let ev: Vec<bool> = (0..80).map(|i| (i / 2) % 3 == 0).collect();
        let (p, e) = patient_events(&rows, &ev).unwrap();
        let f = split(&p, &e, &CvOptions { k: 4, repeats: 1, seed: 3 }).unwrap();
        let folds = f[0].row_folds(&rows).unwrap();
        let covs =
            vec![Covariate { name: "x".into(), column: Column::Numeric((0..80).map(|i| Some(i as f64)).collect()) }];
        (rows, folds, covs)
    }

    #[test]
    fn clean_cv_passes() {
        let (rows, folds, covs) = setup();
        let mut ts = Vec::new();
        for f in 0..4 {
            let train: Vec<usize> = (0..80).filter(|&r| folds[r] != f).collect();
            let s = Standardizer::fit(&covs, &train, MissingPolicy::Impute).unwrap();
            ts.push(TransformRecord { name: "standardizer".into(), test_fold: f, fitted_rows: s.fitted_rows });
        }
        check_leakage(&rows, &folds, &ts).unwrap();
    }

    #[test]
    fn planted_patient_in_two_folds() {
        let (rows, mut folds, _) = setup();
        // second slide of PT-07 moved to another fold, as a slide-level split would do
        folds[15] = (folds[14] + 1) % 4;
        let err = check_leakage(&rows, &folds, &[]).unwrap_err().to_string();
        assert!(err.contains("leakage: patient 'PT-07'"), "{err}");
        assert!(err.contains(&format!("fold {} (row 14)", folds[14])), "{err}");
        assert!(err.contains(&format!("fold {} (row 15)", folds[15])), "{err}");
    }

    #[test]
    fn planted_normalisation_on_all_rows() {
        let (rows, folds, covs) = setup();
        let all: Vec<usize> = (0..80).collect();
        let s = Standardizer::fit(&covs, &all, MissingPolicy::Impute).unwrap();
        let t = TransformRecord { name: "standardizer".into(), test_fold: 2, fitted_rows: s.fitted_rows };
        let err = check_leakage(&rows, &folds, &[t]).unwrap_err().to_string();
        let n2 = folds.iter().filter(|&&f| f == 2).count();
        let r0 = folds.iter().position(|&f| f == 2).unwrap();
        assert!(err.contains("transform 'standardizer' for test fold 2"), "{err}");
        assert!(err.contains(&format!("{n2} row(s)")), "{err}");
        assert!(err.contains(&format!("row {r0}, patient '{}'", rows[r0])), "{err}");
        // a PCA fitted with just one test row is caught too
        let mut train: Vec<usize> = (0..80).filter(|&r| folds[r] != 1).collect();
        let leak = folds.iter().position(|&f| f == 1).unwrap();
        train.push(leak);
        let t = TransformRecord { name: "pca:HE".into(), test_fold: 1, fitted_rows: train };
        let err = check_leakage(&rows, &folds, &[t]).unwrap_err().to_string();
        assert!(err.contains("'pca:HE'") && err.contains("1 row(s)"), "{err}");
    }
}
