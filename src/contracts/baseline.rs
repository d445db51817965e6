//! `baseline.csv` and `inner_baseline.csv` (written by `train`, read by `evaluate` and
//! `calibrate`): the Breslow cumulative baseline hazard `H₀` of every outer fold model, and of
//! every inner fold model of every outer fold.
//!
//! # Format
//! `baseline.csv`: `repeat,fold,time,cumhaz`; `inner_baseline.csv`:
//! `repeat,outer_fold,inner_fold,time,cumhaz`. One row per step of a fold model's `H₀` (its
//! distinct training event times), rows of one model together and ordered by time; models by
//! ascending key. Numbers in Rust's shortest round-trip form.
//!
//! # Validation
//! Per model ([`Baseline::new`]): times finite, `≥ 0` and strictly ascending; cumulative hazards
//! finite, `≥ 0` and non-decreasing. Errors name the file's data row and column and the model.
use super::error::{indices, write_csv, ContractError, Result};
use crate::survival::CsvTable;
use std::collections::BTreeMap;
use std::path::Path;

/// A fold model's Breslow cumulative baseline hazard: a right-continuous step function.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Baseline {
    time: Vec<f64>,
    cumhaz: Vec<f64>,
}

/// Why a baseline is not a cumulative hazard: the 0-based point, the column, the message.
#[derive(Debug, Clone, PartialEq)]
pub struct BadPoint {
    /// 0-based point of the curve.
    pub index: usize,
    /// `time` or `cumhaz`.
    pub column: &'static str,
    /// What was expected and found.
    pub msg: String,
}

impl Baseline {
    /// Checks and wraps a baseline: `time` strictly ascending, finite and `≥ 0`; `cumhaz`
    /// finite, `≥ 0` and non-decreasing, one per time.
    pub fn new(time: Vec<f64>, cumhaz: Vec<f64>) -> std::result::Result<Self, BadPoint> {
        let bad = |index: usize, column: &'static str, msg: String| BadPoint { index, column, msg };
        if time.len() != cumhaz.len() {
            return Err(bad(
                0,
                "cumhaz",
                format!("expected {} cumulative hazards (one per time), found {}", time.len(), cumhaz.len()),
            ));
        }
        for i in 0..time.len() {
            if !time[i].is_finite() || time[i] < 0.0 {
                return Err(bad(i, "time", format!("expected a finite time >= 0, found {}", time[i])));
            }
            if !cumhaz[i].is_finite() || cumhaz[i] < 0.0 {
                return Err(bad(i, "cumhaz", format!("expected a finite cumulative hazard >= 0, found {}", cumhaz[i])));
            }
            if i > 0 && time[i] <= time[i - 1] {
                return Err(bad(
                    i,
                    "time",
                    format!("expected a time after the previous one ({}), found {}", time[i - 1], time[i]),
                ));
            }
            if i > 0 && cumhaz[i] < cumhaz[i - 1] {
                return Err(bad(
                    i,
                    "cumhaz",
                    format!(
                        "expected a cumulative hazard >= the previous one ({}), found {}",
                        cumhaz[i - 1],
                        cumhaz[i]
                    ),
                ));
            }
        }
        Ok(Baseline { time, cumhaz })
    }

    /// The step times, ascending.
    pub fn time(&self) -> &[f64] {
        &self.time
    }

    /// `H₀` at [`Baseline::time`].
    pub fn cumhaz(&self) -> &[f64] {
        &self.cumhaz
    }

    /// `H₀(t)`: the cumulative hazard at the last listed time `≤ t`, 0 before the first.
    pub fn cumhaz_at(&self, t: f64) -> f64 {
        let k = self.time.partition_point(|&s| s <= t);
        if k == 0 {
            0.0
        } else {
            self.cumhaz[k - 1]
        }
    }

    /// Predicted survival `exp(−H₀(t)·e^{risk})` of a patient with linear predictor `risk`.
    pub fn survival(&self, risk: f64, t: f64) -> f64 {
        (-self.cumhaz_at(t) * risk.exp()).exp()
    }
}

fn num(x: f64) -> String {
    format!("{x:?}")
}

/// Groups rows by model key into checked baselines; errors name the data row and the model.
fn group<K: Ord + Copy>(t: &CsvTable, keys: Vec<K>, label: impl Fn(K) -> String) -> Result<BTreeMap<K, Baseline>> {
    let (time, cumhaz) = (t.times("time")?, t.numeric("cumhaz")?);
    let mut rows: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (r, k) in keys.iter().enumerate() {
        rows.entry(*k).or_default().push(r);
    }
    let mut out = BTreeMap::new();
    for (k, rs) in rows {
        let b = Baseline::new(rs.iter().map(|&r| time[r]).collect(), rs.iter().map(|&r| cumhaz[r]).collect()).map_err(
            |e| ContractError::Row {
                file: t.file().to_string(),
                row: rs[e.index] + 1,
                column: e.column.to_string(),
                msg: format!("baseline of {}: {}", label(k), e.msg),
            },
        )?;
        out.insert(k, b);
    }
    Ok(out)
}

/// The content of `baseline.csv`: each outer fold model's baseline by (repeat, fold).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Baselines {
    /// Baselines by (repeat, fold).
    pub folds: BTreeMap<(usize, usize), Baseline>,
}

/// The content of `inner_baseline.csv`: by (repeat, outer fold, inner fold).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InnerBaselines {
    /// Baselines by (repeat, outer fold, inner fold).
    pub folds: BTreeMap<(usize, usize, usize), Baseline>,
}

impl Baselines {
    /// The file name in a `train` output.
    pub const FILE: &'static str = "baseline.csv";
    /// The header.
    pub const HEADER: [&'static str; 4] = ["repeat", "fold", "time", "cumhaz"];

    /// Writes the file (baselines are checked when built).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.write_with_header(path, "repeat")
    }

    /// Reads and validates the file.
    pub fn read(path: &Path) -> Result<Baselines> {
        Self::read_with_header(path, "repeat")
    }

    /// [`Baselines::write`] with another name for the first key column (`replicate` in
    /// `refit_baseline.csv`).
    pub(crate) fn write_with_header(&self, path: &Path, first: &str) -> Result<()> {
        let rows = self.folds.iter().flat_map(|(&(r, f), b)| {
            b.time.iter().zip(&b.cumhaz).map(move |(t, h)| vec![r.to_string(), f.to_string(), num(*t), num(*h)])
        });
        write_csv(path, &[first, "fold", "time", "cumhaz"], rows)
    }

    /// [`Baselines::read`] with another name for the first key column.
    pub(crate) fn read_with_header(path: &Path, first: &str) -> Result<Baselines> {
        let t = CsvTable::read(path)?;
        let keys = indices(&t, first)?.into_iter().zip(indices(&t, "fold")?).collect();
        let folds = group(&t, keys, |(r, f)| format!("{first} {r} fold {f}"))?;
        Ok(Baselines { folds })
    }
}

impl InnerBaselines {
    /// The file name in a `train` output.
    pub const FILE: &'static str = "inner_baseline.csv";
    /// The header.
    pub const HEADER: [&'static str; 5] = ["repeat", "outer_fold", "inner_fold", "time", "cumhaz"];

    /// Writes the file (baselines are checked when built).
    pub fn write(&self, path: &Path) -> Result<()> {
        let rows = self.folds.iter().flat_map(|(&(r, o, i), b)| {
            b.time
                .iter()
                .zip(&b.cumhaz)
                .map(move |(t, h)| vec![r.to_string(), o.to_string(), i.to_string(), num(*t), num(*h)])
        });
        write_csv(path, &Self::HEADER, rows)
    }

    /// Reads and validates the file.
    pub fn read(path: &Path) -> Result<InnerBaselines> {
        let t = CsvTable::read(path)?;
        let (r, o, i) = (indices(&t, "repeat")?, indices(&t, "outer_fold")?, indices(&t, "inner_fold")?);
        let keys = (0..r.len()).map(|k| (r[k], o[k], i[k])).collect();
        let folds = group(&t, keys, |(r, o, i)| format!("repeat {r} outer fold {o} inner fold {i}"))?;
        Ok(InnerBaselines { folds })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_is_a_right_continuous_step() {
        let b = Baseline::new(vec![10.0, 20.0], vec![0.1, 0.3]).unwrap();
        assert_eq!(b.cumhaz_at(9.9), 0.0);
        assert_eq!(b.cumhaz_at(10.0), 0.1);
        assert_eq!(b.cumhaz_at(25.0), 0.3);
        assert!((b.survival(0.5, 20.0) - (-0.3 * 0.5f64.exp()).exp()).abs() < 1e-15);
        let e = Baseline::new(vec![10.0, 5.0], vec![0.1, 0.3]).unwrap_err();
        assert_eq!((e.index, e.column), (1, "time"));
        assert!(e.msg.contains("after the previous one (10)"), "{}", e.msg);
        assert!(Baseline::new(vec![1.0, 2.0], vec![0.3, 0.2]).is_err());
        assert!(Baseline::new(vec![1.0], vec![-0.1]).is_err());
        assert!(Baseline::new(vec![1.0], vec![0.1, 0.2]).is_err());
    }

    #[test]
    fn golden_text_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let mut b = Baselines::default();
        b.folds.insert((0, 1), Baseline::new(vec![3.0, 7.5], vec![0.01, 0.25]).unwrap());
        b.folds.insert((0, 0), Baseline::new(vec![2.0], vec![0.1]).unwrap());
        let p = d.path().join("baseline.csv");
        b.write(&p).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "repeat,fold,time,cumhaz\n0,0,2.0,0.1\n0,1,3.0,0.01\n0,1,7.5,0.25\n"
        );
        assert_eq!(Baselines::read(&p).unwrap(), b);
        let mut i = InnerBaselines::default();
        i.folds.insert((0, 1, 2), Baseline::new(vec![4.0], vec![0.5]).unwrap());
        let p = d.path().join("inner_baseline.csv");
        i.write(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "repeat,outer_fold,inner_fold,time,cumhaz\n0,1,2,4.0,0.5\n");
        assert_eq!(InnerBaselines::read(&p).unwrap(), i);
    }

    #[test]
    fn malformed_baselines_name_row_column_and_model() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("baseline.csv");
        std::fs::write(&p, "repeat,fold,time,cumhaz\n0,0,1,0.1\n0,1,1,0.2\n0,0,2,0.05\n").unwrap();
        let e = Baselines::read(&p).unwrap_err().to_string();
        assert!(e.contains("baseline.csv, data row 3, column 'cumhaz'") && e.contains("repeat 0 fold 0"), "{e}");
        std::fs::write(&p, "repeat,fold,time,H\n0,0,1,0.1\n").unwrap();
        let e = Baselines::read(&p).unwrap_err().to_string();
        assert!(e.contains("column 'cumhaz'") && e.contains("found only repeat, fold, time, H"), "{e}");
        std::fs::write(&p, "repeat,fold,time,cumhaz\n0,-1,1,0.1\n").unwrap();
        let e = Baselines::read(&p).unwrap_err().to_string();
        assert!(e.contains("data row 1, column 'fold'") && e.contains("non-negative integer"), "{e}");
        let p = d.path().join("inner_baseline.csv");
        std::fs::write(&p, "repeat,outer_fold,inner_fold,time,cumhaz\n0,0,1,5,0.1\n0,0,1,5,0.2\n").unwrap();
        let e = InnerBaselines::read(&p).unwrap_err().to_string();
        assert!(e.contains("data row 2, column 'time'") && e.contains("repeat 0 outer fold 0 inner fold 1"), "{e}");
    }
}
