//! Principal component analysis fitted on the training fold only (for pooled slide features
//! and expression blocks), written here with an exact symmetric eigensolver (nalgebra's
//! `SymmetricEigen`) and a fixed sign convention, and free of `linfa-reduction`'s iterative truncated SVD (LOBPCG from
//! a fixed random start) and its `ndarray` 0.16 (the crate uses 0.17). `tests/pca_linfa.rs`
//! checks components, eigenvalues and scores against `linfa-reduction` on GSE7390's expression
//! block, in both regimes below.
//!
//! # Formula
//! With the training rows centred by their mean `μ` (`m` rows, `p` columns), the components are
//! the leading eigenvectors of the covariance `C = XcᵀXc / (m − 1)` (`p × p`) when `p ≤ m`, or
//! obtained from the Gram matrix `G = Xc Xcᵀ / (m − 1)` (`m × m`) as `v = Xcᵀu / √((m − 1) λ)`
//! when `p > m` (same components, cheaper). Scores are `(x − μ) · v`. Each component's sign is
//! fixed so that its largest-magnitude loading is positive (deterministic output).
//!
//! # Assumptions
//! Dense `f64` features, row-major. The eigensolver is `O(d³)` with `d = min(m, p)`: fine for a
//! few hundred patients or features, not for tens of thousands of both.
//!
//! # Errors
//! Fewer than 2 training rows, more components than `min(m − 1, p)`, non-finite values,
//! out-of-range rows, mismatched lengths.
//!
//! # References
//! Golub GH, Van Loan CF, Matrix Computations (4th ed.), §8.3 (the symmetric QR algorithm).
use super::error::{ModelError, Result};

/// A PCA fitted on some rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Pca {
    /// Training mean of each input column.
    pub mean: Vec<f64>,
    /// Components, `k` rows of `p` loadings (unit norm, orthogonal).
    pub components: Vec<Vec<f64>>,
    /// Variance of the training scores along each component (the eigenvalues).
    pub explained_variance: Vec<f64>,
    /// Total variance of the training rows (trace of the covariance).
    pub total_variance: f64,
    /// The rows it was fitted on (for the leakage guard).
    pub fitted_rows: Vec<usize>,
}

/// Eigen-decomposition of a symmetric `d × d` row-major matrix (nalgebra's `SymmetricEigen`:
/// Householder tridiagonalisation and implicit symmetric QR); returns eigenvalues (descending,
/// ties by index) and unit eigenvectors as rows.
fn symmetric_eigen(a: Vec<f64>, d: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let e = nalgebra::DMatrix::from_row_slice(d, d, &a).symmetric_eigen();
    let mut idx: Vec<usize> = (0..d).collect();
    idx.sort_by(|&i, &j| e.eigenvalues[j].total_cmp(&e.eigenvalues[i]).then(i.cmp(&j)));
    let vals = idx.iter().map(|&i| e.eigenvalues[i]).collect();
    let vecs = idx.iter().map(|&i| e.eigenvectors.column(i).iter().copied().collect()).collect();
    (vals, vecs)
}

impl Pca {
    /// Fits `n_components` components on `rows` of the row-major matrix `x` (`p` columns).
    pub fn fit(x: &[f64], p: usize, rows: &[usize], n_components: usize) -> Result<Self> {
        Self::fit_inner(x, p, rows, n_components, None)
    }

    fn fit_inner(x: &[f64], p: usize, rows: &[usize], k: usize, force_gram: Option<bool>) -> Result<Self> {
        if p == 0 || !x.len().is_multiple_of(p) {
            return Err(ModelError::LengthMismatch {
                what: format!("feature matrix (row-major, {p} columns)"),
                expected: (x.len() / p.max(1) + 1) * p,
                found: x.len(),
            });
        }
        let n = x.len() / p;
        let m = rows.len();
        if m < 2 {
            return Err(ModelError::InvalidParameter {
                name: "PCA training rows".into(),
                expected: "at least 2".into(),
                found: m.to_string(),
            });
        }
        if k == 0 || k > (m - 1).min(p) {
            return Err(ModelError::InvalidParameter {
                name: "PCA components".into(),
                expected: format!("1 to min(training rows − 1, features) = {}", (m - 1).min(p)),
                found: k.to_string(),
            });
        }
        for &r in rows {
            if r >= n {
                return Err(ModelError::RowOutOfRange { what: "PCA training rows".into(), row: r, n });
            }
            if let Some(j) = x[r * p..(r + 1) * p].iter().position(|v| !v.is_finite()) {
                return Err(ModelError::InvalidParameter {
                    name: format!("feature {j} of row {r}"),
                    expected: "a finite value".into(),
                    found: x[r * p + j].to_string(),
                });
            }
        }
        let mut mean = vec![0.0; p];
        for &r in rows {
            for j in 0..p {
                mean[j] += x[r * p + j];
            }
        }
        mean.iter_mut().for_each(|v| *v /= m as f64);
        let xc: Vec<f64> =
            rows.iter().flat_map(|&r| (0..p).map(move |j| (r, j))).map(|(r, j)| x[r * p + j] - mean[j]).collect();
        let denom = (m - 1) as f64;
        let gram = force_gram.unwrap_or(p > m);
        let (vals, mut comps) = if !gram {
            let mut c = vec![0.0; p * p];
            for i in 0..m {
                let row = &xc[i * p..(i + 1) * p];
                for a in 0..p {
                    for b in a..p {
                        c[a * p + b] += row[a] * row[b];
                    }
                }
            }
            for a in 0..p {
                for b in a..p {
                    c[a * p + b] /= denom;
                    c[b * p + a] = c[a * p + b];
                }
            }
            let (vals, vecs) = symmetric_eigen(c, p);
            (vals[..k].to_vec(), vecs[..k].to_vec())
        } else {
            let mut g = vec![0.0; m * m];
            for i in 0..m {
                for j in i..m {
                    let s: f64 = (0..p).map(|a| xc[i * p + a] * xc[j * p + a]).sum::<f64>() / denom;
                    g[i * m + j] = s;
                    g[j * m + i] = s;
                }
            }
            let (vals, vecs) = symmetric_eigen(g, m);
            let comps = vecs[..k]
                .iter()
                .map(|u| {
                    let mut v: Vec<f64> = (0..p).map(|a| (0..m).map(|i| xc[i * p + a] * u[i]).sum()).collect();
                    let nv = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                    if nv > 0.0 {
                        v.iter_mut().for_each(|x| *x /= nv);
                    }
                    v
                })
                .collect();
            (vals[..k].to_vec(), comps)
        };
        for v in comps.iter_mut() {
            let big = v.iter().copied().fold(0.0f64, |acc, x| if x.abs() > acc.abs() { x } else { acc });
            if big < 0.0 {
                v.iter_mut().for_each(|x| *x = -*x);
            }
        }
        let total_variance = xc.iter().map(|v| v * v).sum::<f64>() / denom;
        Ok(Self {
            mean,
            components: comps,
            explained_variance: vals.into_iter().map(|v| v.max(0.0)).collect(),
            total_variance,
            fitted_rows: rows.to_vec(),
        })
    }

    /// Scores of `rows` of `x` (row-major, same `p` as at fit time): row-major `rows × k`.
    pub fn transform(&self, x: &[f64], rows: &[usize]) -> Result<Vec<f64>> {
        let p = self.mean.len();
        if !x.len().is_multiple_of(p) {
            return Err(ModelError::LengthMismatch {
                what: format!("feature matrix (row-major, {p} columns as at fit time)"),
                expected: (x.len() / p + 1) * p,
                found: x.len(),
            });
        }
        let n = x.len() / p;
        let mut out = Vec::with_capacity(rows.len() * self.components.len());
        for &r in rows {
            if r >= n {
                return Err(ModelError::RowOutOfRange { what: "PCA rows to transform".into(), row: r, n });
            }
            let row = &x[r * p..(r + 1) * p];
            for v in &self.components {
                out.push(row.iter().zip(&self.mean).zip(v).map(|((a, mu), l)| (a - mu) * l).sum());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// n rows, p columns: a strong latent factor along (1, 1, 0, …)/√2, a weaker one along e3.
    fn data(n: usize, p: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Vec::with_capacity(n * p);
        for _ in 0..n {
            let z1: f64 = rng.gen_range(-3.0..3.0);
            let z2: f64 = rng.gen_range(-1.0..1.0);
            for j in 0..p {
                let noise: f64 = rng.gen_range(-0.05..0.05);
                let v = match j {
                    0 | 1 => z1 / 2f64.sqrt(),
                    2 => z2,
                    _ => 0.0,
                } + noise
                    + 10.0;
                x.push(v);
            }
        }
        x
    }

    #[test]
    fn recovers_latent_directions_and_variances() {
        let (n, p) = (200, 5);
        let x = data(n, p, 1);
        let rows: Vec<usize> = (0..n).collect();
        let pca = Pca::fit(&x, p, &rows, 2).unwrap();
        let h = 1.0 / 2f64.sqrt();
        for (a, b) in pca.components[0].iter().zip([h, h, 0.0, 0.0, 0.0]) {
            assert!((a - b).abs() < 0.01, "{:?}", pca.components[0]);
        }
        assert!((pca.components[1][2] - 1.0).abs() < 0.01, "{:?}", pca.components[1]);
        // scores: mean 0, variance = eigenvalue, uncorrelated
        let s = pca.transform(&x, &rows).unwrap();
        for c in 0..2 {
            let m: f64 = (0..n).map(|i| s[i * 2 + c]).sum::<f64>() / n as f64;
            let v: f64 = (0..n).map(|i| (s[i * 2 + c] - m).powi(2)).sum::<f64>() / (n - 1) as f64;
            assert!(m.abs() < 1e-9 && (v - pca.explained_variance[c]).abs() < 1e-9 * v, "{m} {v}");
        }
        let cov: f64 = (0..n).map(|i| s[i * 2] * s[i * 2 + 1]).sum();
        assert!(cov.abs() < 1e-8 * n as f64, "{cov}");
        assert!(pca.explained_variance.iter().sum::<f64>() <= pca.total_variance);
        assert!(pca.explained_variance[0] > 2.5 && pca.explained_variance[0] < 3.5);
    }

    #[test]
    fn gram_path_matches_covariance_path() {
        let (n, p) = (12, 8);
        let x = data(n, p, 9);
        let rows: Vec<usize> = (0..n).collect();
        let a = Pca::fit_inner(&x, p, &rows, 3, Some(false)).unwrap();
        let b = Pca::fit_inner(&x, p, &rows, 3, Some(true)).unwrap();
        for c in 0..3 {
            assert!((a.explained_variance[c] - b.explained_variance[c]).abs() < 1e-9, "{c}");
            for j in 0..p {
                assert!((a.components[c][j] - b.components[c][j]).abs() < 1e-6, "{c} {j}");
            }
        }
    }

    #[test]
    fn training_rows_only_and_errors() {
        let (n, p) = (50, 4);
        let mut x = data(n, p, 3);
        // outliers in test rows 40.. must not move the mean
        for r in 40..50 {
            x[r * p] = 1e6;
        }
        let train: Vec<usize> = (0..40).collect();
        let pca = Pca::fit(&x, p, &train, 2).unwrap();
        assert!((pca.mean[0] - 10.0).abs() < 1.0, "{}", pca.mean[0]);
        assert_eq!(pca.fitted_rows, train);
        let err = Pca::fit(&x, p, &train, 5).unwrap_err().to_string();
        assert!(err.contains("PCA components") && err.contains("= 4") && err.contains("found 5"), "{err}");
        let err = Pca::fit(&x, p, &[0], 1).unwrap_err().to_string();
        assert!(err.contains("at least 2"), "{err}");
        let err = pca.transform(&x, &[50]).unwrap_err().to_string();
        assert!(err.contains("row 50") && err.contains("< 50"), "{err}");
    }
}
