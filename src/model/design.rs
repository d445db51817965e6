//! The clinical design matrix, fitted on the training fold only.
//!
//! A [`Standardizer`] is fitted on the training rows of a set of [`Covariate`]s and applied to
//! any rows (training or test):
//! - numeric covariates become `(x − mean) / sd` with the training mean and sample sd (n − 1);
//! - categorical covariates become one-hot columns for every level seen in training except
//!   the reference level, which is dropped; the reference is the first level in byte order
//!   (R's default for factors). A level never seen in training (possible in a test fold)
//!   encodes as all zeros, i.e. as the reference level;
//! - missing values are imputed with the training mean (numeric) or mode (categorical, ties
//!   to the first level in byte order) under [`MissingPolicy::Impute`], and are an error under
//!   [`MissingPolicy::Error`].
//!
//! The standardiser remembers the rows it was fitted on, for the leakage guard
//! ([`crate::model::leakage`]).
//!
//! # Errors
//! Out-of-range rows, a missing value under `Error`, a numeric covariate constant (sd = 0),
//! beyond ±[`MAX_ABS`] (its square would overflow) or entirely missing on the training rows,
//! unparseable CSV cells.
use crate::cohort::{Cell, ClinicalTable};
use std::collections::BTreeMap;

use super::error::{ModelError, Result};

/// The largest magnitude a numeric covariate may take (the cohort refuses larger values when
/// it reads the clinical table): the sum of squares of a training fold stays finite below it.
pub use crate::cohort::MAX_ABS;

/// Values of one covariate, one per row (`None` = missing).
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// A numeric covariate.
    Numeric(Vec<Option<f64>>),
    /// A categorical covariate (level labels).
    Categorical(Vec<Option<String>>),
}

impl Column {
    fn len(&self) -> usize {
        match self {
            Column::Numeric(v) => v.len(),
            Column::Categorical(v) => v.len(),
        }
    }
}

/// A named covariate column.
#[derive(Debug, Clone, PartialEq)]
pub struct Covariate {
    /// Name (used for design column names).
    pub name: String,
    /// Values.
    pub column: Column,
}

/// What to do with missing values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingPolicy {
    /// Impute with the training-fold mean (numeric) or mode (categorical).
    #[default]
    Impute,
    /// Refuse missing values.
    Error,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
enum Fitted {
    Numeric { mean: f64, sd: f64 },
    Categorical { levels: Vec<String>, mode: String },
}

/// A design matrix: row-major `n × p` values with column names.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DesignMatrix {
    /// Column names (`age`, `tgrade=2`, …).
    pub names: Vec<String>,
    /// Row-major values.
    pub x: Vec<f64>,
    /// Number of rows.
    pub n: usize,
}

/// Training-fold statistics of each covariate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Standardizer {
    names: Vec<String>,
    fitted: Vec<Fitted>,
    policy: MissingPolicy,
    /// The rows it was fitted on (for the leakage guard).
    pub fitted_rows: Vec<usize>,
}

fn check_columns(covariates: &[Covariate]) -> Result<usize> {
    let n = covariates.first().map(|c| c.column.len()).unwrap_or(0);
    for c in covariates {
        if c.column.len() != n {
            return Err(ModelError::LengthMismatch {
                what: format!("covariate '{}' (one value per row)", c.name),
                expected: n,
                found: c.column.len(),
            });
        }
    }
    Ok(n)
}

fn check_rows(what: &str, rows: &[usize], n: usize) -> Result<()> {
    match rows.iter().find(|&&r| r >= n) {
        Some(&row) => Err(ModelError::RowOutOfRange { what: what.into(), row, n }),
        None => Ok(()),
    }
}

impl Standardizer {
    /// Fits means, sds, levels and modes on `train_rows` only.
    pub fn fit(covariates: &[Covariate], train_rows: &[usize], policy: MissingPolicy) -> Result<Self> {
        if covariates.is_empty() {
            return Err(ModelError::InvalidParameter {
                name: "covariates".into(),
                expected: "at least one covariate".into(),
                found: "none".into(),
            });
        }
        let n = check_columns(covariates)?;
        check_rows("training rows", train_rows, n)?;
        let mut fitted = Vec::with_capacity(covariates.len());
        for c in covariates {
            match &c.column {
                Column::Numeric(v) => {
                    let mut vals = Vec::with_capacity(train_rows.len());
                    for &r in train_rows {
                        match v[r] {
                            // beyond this a square (the variance) overflows to infinity
                            Some(x) if x.is_finite() && x.abs() > MAX_ABS => {
                                return Err(ModelError::Unfittable {
                                    covariate: c.name.clone(),
                                    expected: format!("values within ±{MAX_ABS:e} (larger ones overflow when squared for the standard deviation)"),
                                    found: format!("{x:e} at row {r}"),
                                })
                            }
                            Some(x) if x.is_finite() => vals.push(x),
                            Some(x) => {
                                return Err(ModelError::Unfittable {
                                    covariate: c.name.clone(),
                                    expected: "finite values".into(),
                                    found: format!("{x} at row {r}"),
                                })
                            }
                            None if policy == MissingPolicy::Error => {
                                return Err(ModelError::Missing {
                                    covariate: c.name.clone(),
                                    row: r,
                                })
                            }
                            None => {}
                        }
                    }
                    if vals.len() < 2 {
                        return Err(ModelError::Unfittable {
                            covariate: c.name.clone(),
                            expected: "at least 2 non-missing values".into(),
                            found: vals.len().to_string(),
                        });
                    }
                    let m = vals.iter().sum::<f64>() / vals.len() as f64;
                    let var = vals.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (vals.len() - 1) as f64;
                    let sd = var.sqrt();
                    if !m.is_finite() || !sd.is_finite() {
                        return Err(ModelError::Unfittable {
                            covariate: c.name.clone(),
                            expected: "values whose mean and standard deviation are finite".into(),
                            found: format!(
                                "values from {:e} to {:e}",
                                vals.iter().cloned().fold(f64::INFINITY, f64::min),
                                vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                            ),
                        });
                    }
                    if sd <= 0.0 {
                        return Err(ModelError::Unfittable {
                            covariate: c.name.clone(),
                            expected: "a finite non-zero standard deviation".into(),
                            found: format!("constant value {m}"),
                        });
                    }
                    fitted.push(Fitted::Numeric { mean: m, sd });
                }
                Column::Categorical(v) => {
                    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                    for &r in train_rows {
                        match &v[r] {
                            Some(s) => *counts.entry(s.as_str()).or_insert(0) += 1,
                            None if policy == MissingPolicy::Error => {
                                return Err(ModelError::Missing { covariate: c.name.clone(), row: r })
                            }
                            None => {}
                        }
                    }
                    if counts.is_empty() {
                        return Err(ModelError::Unfittable {
                            covariate: c.name.clone(),
                            expected: "at least one non-missing level".into(),
                            found: "none".into(),
                        });
                    }
                    // max_by_key keeps the last maximum; iterate reversed to keep the first level.
                    let mode =
                        counts.iter().rev().max_by_key(|(_, &k)| k).map(|(l, _)| l.to_string()).unwrap_or_default();
                    let levels = counts.keys().map(|s| s.to_string()).collect();
                    fitted.push(Fitted::Categorical { levels, mode });
                }
            }
        }
        Ok(Self {
            names: covariates.iter().map(|c| c.name.clone()).collect(),
            fitted,
            policy,
            fitted_rows: train_rows.to_vec(),
        })
    }

    /// Design column names: a numeric covariate keeps its name, a categorical one gives
    /// `name=level` for each non-reference level.
    pub fn column_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, f) in self.names.iter().zip(&self.fitted) {
            match f {
                Fitted::Numeric { .. } => out.push(name.clone()),
                Fitted::Categorical { levels, .. } => out.extend(levels.iter().skip(1).map(|l| format!("{name}={l}"))),
            }
        }
        out
    }

    /// Training mean and sd of a numeric covariate (`None` if absent or categorical).
    pub fn mean_sd(&self, covariate: &str) -> Option<(f64, f64)> {
        let i = self.names.iter().position(|n| n == covariate)?;
        match self.fitted[i] {
            Fitted::Numeric { mean, sd } => Some((mean, sd)),
            Fitted::Categorical { .. } => None,
        }
    }

    /// Applies the training statistics to `rows` of `covariates` (same covariates, same order
    /// as at fit time).
    pub fn transform(&self, covariates: &[Covariate], rows: &[usize]) -> Result<DesignMatrix> {
        let n = check_columns(covariates)?;
        if covariates.len() != self.names.len() {
            return Err(ModelError::LengthMismatch {
                what: "covariates (as at fit time)".into(),
                expected: self.names.len(),
                found: covariates.len(),
            });
        }
        for (c, name) in covariates.iter().zip(&self.names) {
            if &c.name != name {
                return Err(ModelError::InvalidParameter {
                    name: "covariate order".into(),
                    expected: format!("'{name}' as at fit time"),
                    found: format!("'{}'", c.name),
                });
            }
        }
        check_rows("rows to transform", rows, n)?;
        let names = self.column_names();
        let p = names.len();
        let mut x = Vec::with_capacity(rows.len() * p);
        for &r in rows {
            for (c, f) in covariates.iter().zip(&self.fitted) {
                match (&c.column, f) {
                    (Column::Numeric(v), Fitted::Numeric { mean, sd }) => {
                        let val = match v[r] {
                            Some(val) if val.is_finite() => val,
                            Some(val) => {
                                return Err(ModelError::InvalidParameter {
                                    name: format!("covariate '{}' at row {r}", c.name),
                                    expected: "a finite value".into(),
                                    found: val.to_string(),
                                })
                            }
                            None if self.policy == MissingPolicy::Error => {
                                return Err(ModelError::Missing { covariate: c.name.clone(), row: r })
                            }
                            None => *mean,
                        };
                        x.push((val - mean) / sd);
                    }
                    (Column::Categorical(v), Fitted::Categorical { levels, mode }) => {
                        let level = match &v[r] {
                            Some(s) => s.as_str(),
                            None if self.policy == MissingPolicy::Error => {
                                return Err(ModelError::Missing { covariate: c.name.clone(), row: r })
                            }
                            None => mode.as_str(),
                        };
                        // Unseen level: all zeros (same coding as the reference level).
                        x.extend(levels.iter().skip(1).map(|l| if l == level { 1.0 } else { 0.0 }));
                    }
                    _ => {
                        return Err(ModelError::InvalidParameter {
                            name: format!("covariate '{}'", c.name),
                            expected: "the same kind (numeric/categorical) as at fit time".into(),
                            found: "the other kind".into(),
                        })
                    }
                }
            }
        }
        Ok(DesignMatrix { names, x, n: rows.len() })
    }
}

/// The covariates of a clinical table validated by `ingest` ([`ClinicalTable`]), as design
/// columns: covariates listed in `categorical` become level labels, the others numbers;
/// missing cells are `None` (imputed or refused by the [`Standardizer`]'s policy).
pub fn covariates_from_table(t: &ClinicalTable, categorical: &[String]) -> Vec<Covariate> {
    t.covariates
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let column = if categorical.contains(name) {
                Column::Categorical(
                    t.cells
                        .iter()
                        .map(|r| match &r[j] {
                            Cell::Level(s) => Some(s.clone()),
                            Cell::Num(x) => Some(x.to_string()),
                            Cell::Missing => None,
                        })
                        .collect(),
                )
            } else {
                Column::Numeric(t.cells.iter().map(|r| if let Cell::Num(x) = r[j] { Some(x) } else { None }).collect())
            };
            Covariate { name: name.clone(), column }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn covs() -> Vec<Covariate> {
        vec![
            Covariate {
                name: "age".into(),
                column: Column::Numeric(vec![Some(40.0), Some(50.0), None, Some(60.0), Some(1000.0)]),
            },
            Covariate {
                name: "grade".into(),
                column: Column::Categorical(vec![
                    Some("2".into()),
                    Some("1".into()),
                    Some("2".into()),
                    None,
                    Some("3".into()),
                ]),
            },
        ]
    }

    #[test]
    fn huge_values_name_the_row_not_a_constant() {
        for x in [1e308, -1e308, 2e154] {
            let c =
                vec![Covariate { name: "age".into(), column: Column::Numeric(vec![Some(40.0), Some(x), Some(37.0)]) }];
            let e = Standardizer::fit(&c, &[0, 1, 2], MissingPolicy::Error).unwrap_err().to_string();
            assert!(e.contains("'age'") && e.contains("at row 1") && e.contains("overflow"), "{e}");
            assert!(!e.contains("constant"), "{e}");
        }
        // below the bound the sd is finite
        let c =
            vec![Covariate { name: "age".into(), column: Column::Numeric(vec![Some(-1e150), Some(1e150), Some(0.0)]) }];
        let s = Standardizer::fit(&c, &[0, 1, 2], MissingPolicy::Error).unwrap();
        assert!(s.mean_sd("age").unwrap().1.is_finite());
    }

    #[test]
    fn training_statistics_only() {
        let c = covs();
        let s = Standardizer::fit(&c, &[0, 1, 2, 3], MissingPolicy::Impute).unwrap();
        // mean of 40, 50, 60 (row 4's 1000 is a test row and must not count)
        let (m, sd) = s.mean_sd("age").unwrap();
        assert!((m - 50.0).abs() < 1e-12 && (sd - 10.0).abs() < 1e-12, "{m} {sd}");
        assert_eq!(s.column_names(), vec!["age", "grade=2"]);
        let d = s.transform(&c, &[0, 2, 3, 4]).unwrap();
        assert_eq!(d.n, 4);
        // row 0: -1, grade 2; row 2: age imputed -> 0; row 3: grade imputed with mode '2';
        // row 4: unseen level '3' -> all zeros
        assert_eq!(d.x, vec![-1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 95.0, 0.0]);
        assert_eq!(s.fitted_rows, vec![0, 1, 2, 3]);
    }

    #[test]
    fn errors_name_covariate_and_row() {
        let c = covs();
        let err = Standardizer::fit(&c, &[0, 1, 2], MissingPolicy::Error).unwrap_err().to_string();
        assert!(err.contains("'age'") && err.contains("row 2"), "{err}");
        let err = Standardizer::fit(&c, &[0, 9], MissingPolicy::Impute).unwrap_err().to_string();
        assert!(err.contains("row 9") && err.contains("< 5"), "{err}");
        let flat = vec![Covariate { name: "k".into(), column: Column::Numeric(vec![Some(1.0); 3]) }];
        let err = Standardizer::fit(&flat, &[0, 1, 2], MissingPolicy::Impute).unwrap_err().to_string();
        assert!(err.contains("'k'") && err.contains("non-zero standard deviation"), "{err}");
    }

    #[test]
    fn reads_gbsg2() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/clinical/gbsg2.csv"));
        let cohort = crate::cohort::Cohort {
            clinical: "gbsg2.csv".into(),
            id: crate::cohort::ROW_IDS.into(),
            time: "time".into(),
            event: "event".into(),
            causes: None,
            covariates: vec!["age".into(), "tsize".into(), "tgrade".into()],
            categorical: vec!["tgrade".into()],
            missing: None,
            slides: None,
            mpp_override: None,
        };
        let table = crate::cohort::read_clinical(path, &cohort).unwrap();
        let c = covariates_from_table(&table, &cohort.categorical);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].column.len(), 686);
        let rows: Vec<usize> = (0..686).collect();
        let s = Standardizer::fit(&c, &rows, MissingPolicy::Impute).unwrap();
        let d = s.transform(&c, &rows).unwrap();
        // standardised on the same rows: column mean 0
        let mean_age: f64 = (0..686).map(|i| d.x[i * d.names.len()]).sum::<f64>() / 686.0;
        assert!(mean_age.abs() < 1e-10, "{mean_age}");
        assert_eq!(d.names.len(), 4, "{:?}", d.names);
    }
}
