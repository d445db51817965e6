//! Patient-level k-fold splits stratified by event, seeded, optionally repeated.
//!
//! The split is over *patients*, never rows: [`patient_events`] collapses slide rows to one
//! entry per patient (and refuses rows of one patient with different outcomes), [`split`]
//! assigns folds to patients, and [`FoldAssignment::row_folds`] maps rows back, so every
//! slide of a patient lands in the same fold by construction.
//!
//! # Algorithm
//! For each repeat `r`, a `ChaCha8Rng` seeded with `seed + r` (wrapping) shuffles the patients
//! of each stratum (events first, then censored), after sorting them by id so the result does
//! not depend on input order. Events are dealt round-robin to folds `0, 1, …, k−1, 0, …`; the
//! censored patients continue the deal where the events stopped. Hence fold sizes differ by at
//! most one and per-fold event counts differ by at most one.
//!
//! # Errors
//! `k < 2`, fewer patients than folds, `repeats = 0`, duplicate patients, mismatched lengths.
use std::collections::HashMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::error::{ModelError, Result};

/// Options of [`split`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CvOptions {
    /// Number of folds (default 5).
    pub k: usize,
    /// Number of repeats of the whole k-fold split (default 1).
    pub repeats: usize,
    /// Seed of the ChaCha generator.
    pub seed: u64,
}

impl Default for CvOptions {
    fn default() -> Self {
        Self { k: 5, repeats: 1, seed: 0 }
    }
}

/// The folds of one repeat: a fold index per patient.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FoldAssignment {
    /// 0-based repeat index.
    pub repeat: usize,
    /// Number of folds.
    pub k: usize,
    /// Patient ids, in the order given to [`split`].
    pub patients: Vec<String>,
    /// Fold of each patient (`0..k`), parallel to `patients`.
    pub fold: Vec<usize>,
}

impl FoldAssignment {
    /// Fold of a patient, `None` if the patient is not in the split.
    pub fn fold_of(&self, patient: &str) -> Option<usize> {
        self.patients.iter().position(|p| p == patient).map(|i| self.fold[i])
    }

    /// Fold of each row given the patient of each row (several rows may share a patient).
    pub fn row_folds(&self, row_patients: &[String]) -> Result<Vec<usize>> {
        let map: HashMap<&str, usize> = self.patients.iter().zip(&self.fold).map(|(p, &f)| (p.as_str(), f)).collect();
        row_patients
            .iter()
            .enumerate()
            .map(|(row, p)| {
                map.get(p.as_str()).copied().ok_or_else(|| ModelError::UnknownPatient { patient: p.clone(), row })
            })
            .collect()
    }

    /// Number of patients in each fold.
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = vec![0; self.k];
        for &f in &self.fold {
            s[f] += 1;
        }
        s
    }
}

/// Collapses rows (e.g. slides) to one `(patient, event)` per patient, in first-seen order.
/// Errors if two rows of one patient disagree on the event.
pub fn patient_events(row_patients: &[String], row_events: &[bool]) -> Result<(Vec<String>, Vec<bool>)> {
    if row_patients.len() != row_events.len() {
        return Err(ModelError::LengthMismatch {
            what: "event indicators (one per row)".into(),
            expected: row_patients.len(),
            found: row_events.len(),
        });
    }
    let mut first: HashMap<&str, usize> = HashMap::new();
    let mut patients = Vec::new();
    let mut events = Vec::new();
    for (row, (p, &e)) in row_patients.iter().zip(row_events).enumerate() {
        match first.get(p.as_str()) {
            Some(&r0) => {
                if row_events[r0] != e {
                    return Err(ModelError::InconsistentOutcome { patient: p.clone(), first: r0, second: row });
                }
            }
            None => {
                first.insert(p.as_str(), row);
                patients.push(p.clone());
                events.push(e);
            }
        }
    }
    Ok((patients, events))
}

/// Splits patients (one entry each) into `k` folds stratified by `events`, once per repeat.
pub fn split(patients: &[String], events: &[bool], options: &CvOptions) -> Result<Vec<FoldAssignment>> {
    let n = patients.len();
    if events.len() != n {
        return Err(ModelError::LengthMismatch {
            what: "event indicators (one per patient)".into(),
            expected: n,
            found: events.len(),
        });
    }
    if options.k < 2 {
        return Err(ModelError::InvalidParameter {
            name: "k (number of folds)".into(),
            expected: "at least 2".into(),
            found: options.k.to_string(),
        });
    }
    if n < options.k {
        return Err(ModelError::InvalidParameter {
            name: "patients".into(),
            expected: format!("at least k = {} patients", options.k),
            found: n.to_string(),
        });
    }
    if options.repeats == 0 {
        return Err(ModelError::InvalidParameter {
            name: "repeats".into(),
            expected: "at least 1".into(),
            found: "0".into(),
        });
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, p) in patients.iter().enumerate() {
        if let Some(&j) = seen.get(p.as_str()) {
            return Err(ModelError::DuplicatePatient { patient: p.clone(), first: j, second: i });
        }
        seen.insert(p.as_str(), i);
    }
    // Sort by id so the split does not depend on input order.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| patients[a].cmp(&patients[b]));
    let ev: Vec<usize> = order.iter().copied().filter(|&i| events[i]).collect();
    let ce: Vec<usize> = order.iter().copied().filter(|&i| !events[i]).collect();
    let mut out = Vec::with_capacity(options.repeats);
    for r in 0..options.repeats {
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed.wrapping_add(r as u64));
        let mut ev = ev.clone();
        let mut ce = ce.clone();
        ev.shuffle(&mut rng);
        ce.shuffle(&mut rng);
        let mut fold = vec![0usize; n];
        for (j, &i) in ev.iter().chain(ce.iter()).enumerate() {
            fold[i] = j % options.k;
        }
        out.push(FoldAssignment { repeat: r, k: options.k, patients: patients.to_vec(), fold });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cohort(n: usize, every: usize) -> (Vec<String>, Vec<bool>) {
        let p = (0..n).map(|i| format!("P{i:04}")).collect();
        let e = (0..n).map(|i| i % every == 0).collect();
        (p, e)
    }

    fn spread(v: &[usize]) -> usize {
        v.iter().max().unwrap() - v.iter().min().unwrap()
    }

    #[test]
    fn balanced_sizes_and_events() {
        for (n, every, k) in [(103, 3, 5), (686, 2, 5), (47, 7, 4), (10, 4, 3)] {
            let (p, e) = cohort(n, every);
            let f = split(&p, &e, &CvOptions { k, repeats: 2, seed: 7 }).unwrap();
            assert_eq!(f.len(), 2);
            for a in &f {
                assert!(spread(&a.sizes()) <= 1, "sizes {:?}", a.sizes());
                let mut evs = vec![0; k];
                for (i, &fo) in a.fold.iter().enumerate() {
                    if e[i] {
                        evs[fo] += 1;
                    }
                }
                assert!(spread(&evs) <= 1, "events {evs:?}");
                assert_eq!(a.sizes().iter().sum::<usize>(), n);
            }
            assert_ne!(f[0].fold, f[1].fold, "repeats must differ");
        }
    }

    #[test]
    fn seed_determinism_and_order_independence() {
        let (p, e) = cohort(200, 3);
        let o = CvOptions { k: 5, repeats: 1, seed: 42 };
        let a = split(&p, &e, &o).unwrap();
        let b = split(&p, &e, &o).unwrap();
        assert_eq!(a, b);
        let c = split(&p, &e, &CvOptions { seed: 43, ..o.clone() }).unwrap();
        assert_ne!(a[0].fold, c[0].fold);
        // Reversed input order: same fold per patient.
        let pr: Vec<String> = p.iter().rev().cloned().collect();
        let er: Vec<bool> = e.iter().rev().copied().collect();
        let d = split(&pr, &er, &o).unwrap();
        for pid in &p {
            assert_eq!(a[0].fold_of(pid), d[0].fold_of(pid));
        }
    }

    #[test]
    fn slides_of_a_patient_share_a_fold() {
        // three slides for some patients
        let rows: Vec<String> = (0..60).map(|i| format!("P{}", i / 3)).collect();
        let ev: Vec<bool> = (0..60).map(|i| (i / 3) % 2 == 0).collect();
        let (p, e) = patient_events(&rows, &ev).unwrap();
        assert_eq!(p.len(), 20);
        let f = split(&p, &e, &CvOptions::default()).unwrap();
        let rf = f[0].row_folds(&rows).unwrap();
        for i in 0..60 {
            assert_eq!(rf[i], rf[i / 3 * 3]);
        }
        let err = f[0].row_folds(&["P99".to_string()]).unwrap_err().to_string();
        assert!(err.contains("'P99'"), "{err}");
    }

    #[test]
    fn bad_inputs() {
        let (p, e) = cohort(4, 2);
        let err = split(&p, &e, &CvOptions { k: 5, ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("at least k = 5") && err.contains("found 4"), "{err}");
        let err = split(&p, &e, &CvOptions { k: 1, ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("k (number of folds)"), "{err}");
        let dup = vec!["A".to_string(), "B".into(), "A".into()];
        let err = split(&dup, &[true, false, true], &CvOptions { k: 2, ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("'A'") && err.contains("0 and 2"), "{err}");
        let err = patient_events(&dup, &[true, false, false]).unwrap_err().to_string();
        assert!(err.contains("'A'") && err.contains("rows 0 and 2"), "{err}");
    }
}
