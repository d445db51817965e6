//! Spatia's training-fold PCA (exact symmetric eigensolver, `src/model/pca.rs`) against linfa's
//! (`linfa-reduction`, truncated SVD by LOBPCG) on real data: the 76 expression columns of
//! GSE7390, z-scored, fitted on a training subset, in both the `p ≤ m` (covariance) and the
//! `p > m` (Gram) regimes. Components and scores must agree up to sign.
use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use ndarray016::Array2;
use spatia::model::Pca;

fn genes() -> (Vec<f64>, usize, usize) {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/clinical/breast_cancer_gse7390.csv");
    let mut r = csv::Reader::from_path(p).unwrap();
    let h = r.headers().unwrap().clone();
    let cols: Vec<usize> = (0..h.len()).filter(|&j| h[j].starts_with('X')).collect();
    let mut x = Vec::new();
    let mut n = 0;
    for rec in r.records() {
        let rec = rec.unwrap();
        for &j in &cols {
            x.push(rec[j].parse::<f64>().unwrap());
        }
        n += 1;
    }
    // z-score each column over all rows, as `train` does over its training rows
    let p = cols.len();
    for j in 0..p {
        let m = (0..n).map(|i| x[i * p + j]).sum::<f64>() / n as f64;
        let sd = ((0..n).map(|i| (x[i * p + j] - m).powi(2)).sum::<f64>() / (n as f64 - 1.0)).sqrt();
        for i in 0..n {
            x[i * p + j] = (x[i * p + j] - m) / sd;
        }
    }
    (x, n, p)
}

fn compare(rows: &[usize], k: usize) {
    let (x, _n, p) = genes();
    let ours = Pca::fit(&x, p, rows, k).unwrap();
    let train = Array2::from_shape_fn((rows.len(), p), |(i, j)| x[rows[i] * p + j]);
    let ds = DatasetBase::from(train.clone());
    let theirs = linfa_reduction::Pca::params(k).fit(&ds).unwrap();
    let comps = theirs.components();
    for c in 0..k {
        let a = &ours.components[c];
        let b: Vec<f64> = comps.row(c).to_vec();
        let dot: f64 = a.iter().zip(&b).map(|(u, v)| u * v).sum();
        assert!((dot.abs() - 1.0).abs() < 1e-6, "component {c}: |cos| = {}", dot.abs());
        // eigenvalue = σ² / (m − 1) (linfa's `explained_variance` divides by k − 1 instead)
        let s = theirs.singular_values()[c];
        let ev = s * s / (rows.len() as f64 - 1.0);
        assert!(
            (ev - ours.explained_variance[c]).abs() < 1e-6 * ev,
            "component {c}: {ev} vs {}",
            ours.explained_variance[c]
        );
    }
    let scores = ours.transform(&x, rows).unwrap();
    let theirs_scores = theirs.predict(&train);
    for c in 0..k {
        let sign = if (0..rows.len()).map(|i| scores[i * k + c] * theirs_scores[[i, c]]).sum::<f64>() < 0.0 {
            -1.0
        } else {
            1.0
        };
        for i in 0..rows.len() {
            let d = (scores[i * k + c] - sign * theirs_scores[[i, c]]).abs();
            assert!(
                d < 1e-5 * (1.0 + scores[i * k + c].abs()),
                "score row {i} comp {c}: {} vs {}",
                scores[i * k + c],
                theirs_scores[[i, c]]
            );
        }
    }
}

#[test]
fn matches_linfa_on_a_training_fold() {
    // 4/5 of the cohort: more rows than columns (covariance route)
    let rows: Vec<usize> = (0..198).filter(|i| i % 5 != 2).collect();
    compare(&rows, 5);
}

#[test]
fn matches_linfa_with_more_columns_than_rows() {
    // 50 rows, 76 columns (Gram route, as for 64-d slide features on a small cohort)
    let rows: Vec<usize> = (0..198).filter(|i| i % 4 == 1).take(50).collect();
    compare(&rows, 4);
}
