//! Whole-procedure bootstrap with refitting: the replicates behind the `evaluate` stage's
//! split-aware intervals.
//!
//! A cross-validated performance estimate varies with the patients sampled, with the models
//! fitted on them and with the random split; the patient bootstrap of fixed out-of-fold
//! predictions only sees the first. Here every replicate `b` repeats the **whole** procedure
//! on a bootstrap sample of the patients: a fresh stratified k-fold split, and in every fold the
//! inner-CV penalty choice, the transforms (standardiser, PCA) and the Cox fit, exactly as
//! [`train_with_splits`] does for the real data. The replicate's out-of-fold predictions and
//! fold baselines ([`RefitReplicate`]) let `evaluate` recompute every metric on it.
//!
//! # Formula
//! Replicate `b` (0-based) draws `n` patients with replacement from the patients sorted by id,
//! with a ChaCha8 generator seeded by `seed` on stream `b` ([`resample_indices`]), so two arms
//! of one cohort draw the same patients and get the same split (their comparison is paired).
//! A patient drawn `m` times gives `m` copies that are always in the same fold (a copy in the
//! training and the test fold would leak); the folds are a stratified split of the distinct
//! patients drawn ([`split`], seed `seed ⊕ (b + 1)·φ` with φ the 64-bit golden ratio).
//!
//! # Assumptions
//! One row per patient. The procedure is deterministic given its inputs, so replicates can run
//! in parallel: each depends on `(seed, b)` only and the results are kept in replicate order,
//! whatever the thread count.
//!
//! # Errors
//! Invalid options (no replicate). A replicate whose training fails (a fold without events, a
//! Cox fit failing at every penalty) is kept as failed with its reason, not an error: the
//! caller reports how many failed.
//!
//! # References
//! Efron B, Tibshirani RJ (1997) Improvements on cross-validation: the .632+ bootstrap method.
//! JASA 92:548–560. Bates S, Hastie T, Tibshirani R (2024) Cross-validation: what does it
//! estimate and how well does it do it? JASA 119:1434–1445.
use super::cv::{split, CvOptions, FoldAssignment};
use super::design::{Column, Covariate};
use super::error::{ModelError, Result};
use super::train::{train_with_splits, Block, TrainData, TrainOptions};
use crate::contracts::baseline::Baseline;
use crate::contracts::refit::{RefitRow, MAX_REPLICATES};
use crate::survival::bootstrap::resample_indices;
use rayon::prelude::*;
use std::collections::BTreeMap;

/// The out-of-fold predictions of one bootstrap replicate, or why it failed.
#[derive(Debug, Clone, PartialEq)]
pub struct RefitReplicate {
    /// 0-based replicate.
    pub replicate: usize,
    /// One row per drawn copy (patients sorted by id, copies in order).
    pub rows: Vec<RefitRow>,
    /// Fold baselines by fold.
    pub baselines: BTreeMap<usize, Baseline>,
    /// Why the replicate could not be trained (`rows` is then empty).
    pub failed: Option<String>,
}

/// The golden-ratio constant that decorrelates the split seed from the resampling seed.
const PHI: u64 = 0x9e37_79b9_7f4a_7c15;

/// The data rows of replicate `b`: indices into `data` (with repeats), by patient id then copy.
pub fn replicate_rows(data: &TrainData, seed: u64, b: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..data.patients.len()).collect();
    order.sort_by(|&x, &y| data.patients[x].cmp(&data.patients[y]));
    let mut rows: Vec<usize> = resample_indices(order.len(), seed, b as u64).into_iter().map(|i| order[i]).collect();
    rows.sort_by(|&x, &y| data.patients[x].cmp(&data.patients[y]));
    rows
}

fn gather_column(c: &Column, rows: &[usize]) -> Column {
    match c {
        Column::Numeric(v) => Column::Numeric(rows.iter().map(|&r| v[r]).collect()),
        Column::Categorical(v) => Column::Categorical(rows.iter().map(|&r| v[r].clone()).collect()),
    }
}

/// The training data of the given rows (the copies of a patient keep its id, so every split and
/// the leakage guard keep them together) and the copy number of each row.
fn gather(data: &TrainData, rows: &[usize]) -> (TrainData, Vec<usize>) {
    let mut copy: Vec<usize> = Vec::with_capacity(rows.len());
    for (i, &r) in rows.iter().enumerate() {
        copy.push(if i > 0 && rows[i - 1] == r { copy[i - 1] + 1 } else { 1 });
    }
    let d = TrainData {
        patients: rows.iter().map(|&r| data.patients[r].clone()).collect(),
        time: rows.iter().map(|&r| data.time[r]).collect(),
        event: rows.iter().map(|&r| data.event[r]).collect(),
        covariates: data
            .covariates
            .iter()
            .map(|c| Covariate { name: c.name.clone(), column: gather_column(&c.column, rows) })
            .collect(),
        blocks: data
            .blocks
            .iter()
            .map(|b| Block { name: b.name.clone(), rows: rows.iter().map(|&r| b.rows[r].clone()).collect() })
            .collect(),
        spatial: data.spatial.as_ref().map(|s| s.select(rows)),
    };
    (d, copy)
}

/// The split of a replicate: a stratified split of its distinct patients (the copies of a
/// patient follow it, as [`train_with_splits`] maps rows to folds by patient id).
fn replicate_split(data: &TrainData, rows: &[usize], opts: &TrainOptions, b: usize) -> Result<FoldAssignment> {
    let mut distinct: Vec<usize> = rows.to_vec();
    distinct.dedup();
    let ids: Vec<String> = distinct.iter().map(|&r| data.patients[r].clone()).collect();
    let ev: Vec<bool> = distinct.iter().map(|&r| data.event[r]).collect();
    let cv = CvOptions { k: opts.cv.k, repeats: 1, seed: opts.cv.seed ^ PHI.wrapping_mul(b as u64 + 1) };
    Ok(split(&ids, &ev, &cv)?.remove(0))
}

/// Runs replicate `b`.
fn one(data: &TrainData, opts: &TrainOptions, seed: u64, b: usize) -> RefitReplicate {
    let rows = replicate_rows(data, seed, b);
    let (d, copy) = gather(data, &rows);
    let mut one_split = opts.clone();
    one_split.cv.repeats = 1;
    let res = replicate_split(data, &rows, &one_split, b).and_then(|s| train_with_splits(&d, &[s], &one_split));
    match res {
        Err(e) => {
            RefitReplicate { replicate: b, rows: Vec::new(), baselines: BTreeMap::new(), failed: Some(e.to_string()) }
        }
        Ok(t) => {
            let out = t
                .oof
                .rows
                .iter()
                .zip(rows.iter().zip(&copy))
                .map(|(o, (&r, &k))| RefitRow {
                    replicate: b,
                    patient: data.patients[r].clone(),
                    copy: k,
                    fold: o.fold,
                    risk: o.risk,
                    time: o.time,
                    event: o.event,
                })
                .collect();
            let baselines = t.baselines.folds.into_iter().map(|((_, f), bl)| (f, bl)).collect();
            RefitReplicate { replicate: b, rows: out, baselines, failed: None }
        }
    }
}

/// Runs `replicates` whole-procedure bootstrap replicates of [`train_with_splits`] with the
/// options of the real run (one split per replicate, whatever `opts.cv.repeats`).
pub fn refit_bootstrap(
    data: &TrainData,
    opts: &TrainOptions,
    replicates: usize,
    seed: u64,
) -> Result<Vec<RefitReplicate>> {
    if replicates == 0 || replicates > MAX_REPLICATES {
        return Err(ModelError::InvalidParameter {
            name: "refit".into(),
            expected: format!("1 to {MAX_REPLICATES} bootstrap replicates"),
            found: replicates.to_string(),
        });
    }
    Ok((0..replicates).into_par_iter().map(|b| one(data, opts, seed, b)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cv::CvOptions;
    use crate::model::design::MissingPolicy;
    use crate::model::train::Penalty;

    fn data(n: usize) -> TrainData {
        let x: Vec<f64> = (0..n).map(|i| ((i * 37) % 19) as f64 / 19.0 - 0.5).collect();
        TrainData {
            patients: (0..n).map(|i| format!("p{i:03}")).collect(),
            time: (0..n).map(|i| 100.0 + ((i * 53) % 97) as f64 * 10.0 * (1.0 - x[i] * 0.8)).collect(),
            event: (0..n).map(|i| i % 3 != 0).collect(),
            covariates: vec![Covariate {
                name: "x".into(),
                column: Column::Numeric(x.iter().map(|&v| Some(v)).collect()),
            }],
            blocks: Vec::new(),
            spatial: None,
        }
    }

    fn opts() -> TrainOptions {
        TrainOptions {
            cv: CvOptions { k: 3, repeats: 2, seed: 5 },
            inner_k: 3,
            penalty: Penalty::InnerCv(vec![0.1, 1.0]),
            pca: 2,
            missing: MissingPolicy::Error,
        }
    }

    #[test]
    fn copies_share_a_fold_and_rows_follow_the_draw() {
        let d = data(40);
        let reps = refit_bootstrap(&d, &opts(), 3, 11).unwrap();
        assert_eq!(reps.len(), 3);
        for r in &reps {
            assert!(r.failed.is_none(), "{:?}", r.failed);
            assert_eq!(r.rows.len(), 40);
            let mut fold_of: BTreeMap<&str, usize> = BTreeMap::new();
            for row in &r.rows {
                assert_eq!(*fold_of.entry(&row.patient).or_insert(row.fold), row.fold, "copies split across folds");
            }
            // a bootstrap sample repeats some patients
            assert!(fold_of.len() < 40);
            assert_eq!(r.baselines.len(), 3);
        }
        // each replicate draws other patients; the same seed draws the same ones
        assert_ne!(reps[0].rows, reps[1].rows);
        assert_eq!(refit_bootstrap(&d, &opts(), 3, 11).unwrap(), reps);
    }

    #[test]
    fn independent_of_the_thread_count() {
        let d = data(30);
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let a = one.install(|| refit_bootstrap(&d, &opts(), 4, 3).unwrap());
        let b = refit_bootstrap(&d, &opts(), 4, 3).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn zero_replicates_is_an_error() {
        assert!(refit_bootstrap(&data(20), &opts(), 0, 1).is_err());
    }
}
