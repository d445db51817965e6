//! Tissue phenotypes: k-means clusters of tile features fitted on the training patients of a fold,
//! and the per-patient summaries of the `spatial` modality (phenotype composition and spatial
//! mixing on the tile grid).
//!
//! # Method
//! 1. Fit ([`Phenotypes::fit`]) on the tiles of the training rows only: each feature is z-scored
//!    by its mean and SD over those tiles (SD 0 → 1); at most [`MAX_FIT_TILES`] tiles per patient
//!    enter the fit (evenly strided over the patient's tiles, so every patient weighs about the
//!    same and the cost is bounded); linfa-clustering's k-means (Lloyd iterations, k-means++
//!    initialisation, one ChaCha8 generator seeded by the caller, one run,
//!    at most 100 iterations, tolerance 1e-3 on the centroids' move). Clusters are then renumbered by decreasing
//!    size on the fitted tiles (ties by the first coordinate of the centroid), so numbering does
//!    not depend on the initialisation order.
//! 2. Every tile of every patient is assigned the nearest centroid (squared Euclidean distance,
//!    ties to the lower cluster) — training and test patients alike.
//! 3. Per patient ([`Phenotypes::summary`]): the fraction of tiles in each phenotype but the
//!    last, the smallest (`frac<c>`, `c < k − 1`: the fractions sum to 1, so the last is the
//!    reference and a Cox design stays of full rank); the Shannon entropy of that composition (`composition_entropy`, nats); over
//!    pairs of rook-neighbouring tiles of one slide (cells sharing an edge on the tile grid),
//!    the fraction of pairs of the same phenotype (`same_neighbour`) and the Shannon entropy of
//!    the unordered pair-type distribution (`mixing_entropy`, nats; 0 without a pair).
//!
//! # Determinism
//! linfa's k-means++ initialisation and Lloyd loop draw from the one generator sequentially; its
//! parallel loops (rayon `par_for_each`) only fill each observation's own membership and distance,
//! and the sums are sequential, so the result depends on the seed only, never on the thread
//! count. (Its `KMeansPara` initialisation is not used: it is not deterministic.)
//!
//! # Errors
//! Fewer training tiles than clusters, a `k` below 2, features of unequal width or non-finite.
//!
//! # References
//! Arthur D, Vassilvitskii S (2007) k-means++: the advantages of careful seeding. SODA'07,
//! 1027–1035. Lloyd SP (1982) Least squares quantization in PCM. IEEE Trans Inf Theory 28:129–137.
use super::error::{ModelError, Result};
use linfa::traits::Fit;
use linfa::DatasetBase;
use linfa_clustering::{KMeans, KMeansInit};
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Tiles of one patient entering a k-means fit, at most (evenly strided).
pub const MAX_FIT_TILES: usize = 64;

/// One patient's tiles: row-major features (`dim` per tile) and each tile's grid cell.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientTiles {
    /// Features per tile.
    pub dim: usize,
    /// Row-major `tiles × dim` features.
    pub x: Vec<f32>,
    /// Each tile's `(slide, col, row)`: slide index within the patient and its tile-grid cell.
    pub cells: Vec<(u32, i64, i64)>,
}

impl PatientTiles {
    /// Number of tiles.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether there is no tile.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    fn row(&self, t: usize) -> &[f32] {
        &self.x[t * self.dim..(t + 1) * self.dim]
    }
}

/// The tile-grid cell `(col, row)` of each tile from its level-0 top-left corner: the corner
/// divided by the tile's level-0 size (`step`; without it, the smallest positive gap between the
/// corners' x or y values, else 1), rounded down.
pub fn grid_cells(corners: impl Iterator<Item = [i64; 2]> + Clone, step: Option<i64>) -> Vec<(i64, i64)> {
    let step = step.filter(|&s| s > 0).unwrap_or_else(|| {
        let mut gaps = i64::MAX;
        for axis in 0..2 {
            let mut v: Vec<i64> = corners.clone().map(|c| c[axis]).collect();
            v.sort_unstable();
            v.dedup();
            gaps = v.windows(2).map(|w| w[1].saturating_sub(w[0])).fold(gaps, i64::min);
        }
        if gaps == i64::MAX {
            1
        } else {
            gaps.max(1)
        }
    });
    corners.map(|[x, y]| (x.div_euclid(step), y.div_euclid(step))).collect()
}

/// The `spatial` modality's input: every patient's tiles, the number of phenotypes, the seed;
/// the fits made on a set of training rows are kept (inner CV refits the same rows for every
/// penalty of the grid).
pub struct SpatialInput {
    /// Phenotypes `k`.
    pub k: usize,
    /// Seed of the k-means generator.
    pub seed: u64,
    /// One entry per patient row (`None`: no tile; the summaries are imputed with the training mean).
    pub patients: Vec<Option<Arc<PatientTiles>>>,
    fits: Mutex<BTreeMap<Vec<usize>, Arc<FoldPhenotypes>>>,
}

/// Phenotypes fitted on some rows and every patient's summaries under them.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldPhenotypes {
    /// The fit.
    pub fit: Phenotypes,
    /// Per patient row: [`Phenotypes::summary`] (`None` without tiles).
    pub summaries: Vec<Option<Vec<f64>>>,
}

impl SpatialInput {
    /// A new input (no fit kept yet).
    pub fn new(k: usize, seed: u64, patients: Vec<Option<Arc<PatientTiles>>>) -> SpatialInput {
        SpatialInput { k, seed, patients, fits: Mutex::new(BTreeMap::new()) }
    }

    /// The phenotypes fitted on `train` and every patient's summaries (kept for the next call
    /// with the same rows).
    pub fn fit_on(&self, train: &[usize]) -> Result<Arc<FoldPhenotypes>> {
        let mut key = train.to_vec();
        key.sort_unstable();
        if let Some(f) = self.fits.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(f);
        }
        let fit = Phenotypes::fit(&self.patients, train, self.k, self.seed)?;
        let summaries = self.patients.iter().map(|p| p.as_ref().and_then(|t| fit.summary(t))).collect();
        let f = Arc::new(FoldPhenotypes { fit, summaries });
        if let Ok(mut m) = self.fits.lock() {
            m.insert(key, f.clone());
        }
        Ok(f)
    }

    /// The same input for other rows (a bootstrap resample: row `i` is `rows[i]`), without kept fits.
    pub fn select(&self, rows: &[usize]) -> SpatialInput {
        SpatialInput::new(self.k, self.seed, rows.iter().map(|&r| self.patients.get(r).cloned().flatten()).collect())
    }
}

impl Clone for SpatialInput {
    fn clone(&self) -> Self {
        SpatialInput::new(self.k, self.seed, self.patients.clone())
    }
}

impl PartialEq for SpatialInput {
    fn eq(&self, o: &Self) -> bool {
        self.k == o.k && self.seed == o.seed && self.patients == o.patients
    }
}

impl std::fmt::Debug for SpatialInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpatialInput")
            .field("k", &self.k)
            .field("seed", &self.seed)
            .field("patients", &self.patients.iter().filter(|p| p.is_some()).count())
            .finish()
    }
}

/// Phenotypes fitted on some rows: the feature scaling and the centroids (in z-scored units).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Phenotypes {
    /// Mean of each feature over the fitted tiles.
    pub mean: Vec<f64>,
    /// SD of each feature over the fitted tiles (1 where 0).
    pub sd: Vec<f64>,
    /// `k` centroids of `dim` z-scored features, numbered by decreasing size.
    pub centroids: Vec<Vec<f64>>,
    /// Tiles of each cluster among the fitted tiles.
    pub sizes: Vec<usize>,
    /// The patient rows it was fitted on (for the leakage guard).
    pub fitted_rows: Vec<usize>,
}

/// The names of the per-patient summaries of `k` phenotypes, in [`Phenotypes::summary`]'s order.
pub fn summary_names(k: usize) -> Vec<String> {
    let mut names: Vec<String> = (0..k.saturating_sub(1)).map(|c| format!("frac{c}")).collect();
    names.extend(["composition_entropy", "same_neighbour", "mixing_entropy"].map(String::from));
    names
}

fn entropy(counts: impl Iterator<Item = f64>) -> f64 {
    let c: Vec<f64> = counts.filter(|&x| x > 0.0).collect();
    let total: f64 = c.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    -c.iter().map(|&x| (x / total) * (x / total).ln()).sum::<f64>()
}

impl Phenotypes {
    /// Fits `k` phenotypes on the tiles of the patient rows `train` (see the module doc).
    pub fn fit(patients: &[Option<Arc<PatientTiles>>], train: &[usize], k: usize, seed: u64) -> Result<Phenotypes> {
        let invalid = |expected: &str, found: String| ModelError::InvalidParameter {
            name: "tissue phenotypes (k-means)".into(),
            expected: expected.into(),
            found,
        };
        if k < 2 {
            return Err(invalid("at least 2 phenotypes", k.to_string()));
        }
        let mut rows = train.to_vec();
        rows.sort_unstable();
        rows.dedup();
        let fitted: Vec<(usize, &PatientTiles)> = rows
            .iter()
            .filter_map(|&r| Some((r, patients.get(r)?.as_deref()?)))
            .filter(|(_, p)| !p.is_empty())
            .collect();
        let dim = fitted.first().map_or(0, |(_, p)| p.dim);
        if let Some((r, p)) = fitted.iter().find(|(_, p)| p.dim != dim || p.x.len() != p.len() * dim) {
            return Err(invalid(&format!("{dim} features per tile"), format!("row {r}: {} per tile", p.dim)));
        }
        let mut sample: Vec<&[f32]> = Vec::new();
        for (_, p) in &fitted {
            let take = p.len().min(MAX_FIT_TILES);
            sample.extend((0..take).map(|i| p.row(i * p.len() / take)));
        }
        if sample.len() < k || dim == 0 {
            return Err(invalid(
                &format!("at least {k} training tiles with features"),
                format!("{} tiles of {} training patients", sample.len(), fitted.len()),
            ));
        }
        if sample.iter().any(|t| t.iter().any(|v| !v.is_finite())) {
            return Err(invalid("finite tile features", "a non-finite value".into()));
        }
        let m = sample.len() as f64;
        let mean: Vec<f64> = (0..dim).map(|j| sample.iter().map(|t| t[j] as f64).sum::<f64>() / m).collect();
        let sd: Vec<f64> = (0..dim)
            .map(|j| {
                let v = sample.iter().map(|t| (t[j] as f64 - mean[j]).powi(2)).sum::<f64>() / m;
                if v > 0.0 {
                    v.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        let mut z = ndarray016::Array2::<f64>::zeros((sample.len(), dim));
        for (i, t) in sample.iter().enumerate() {
            for j in 0..dim {
                z[[i, j]] = (t[j] as f64 - mean[j]) / sd[j];
            }
        }
        let rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let model = KMeans::params_with_rng(k, rng)
            .init_method(KMeansInit::KMeansPlusPlus)
            .n_runs(1)
            .max_n_iterations(100)
            .tolerance(1e-3)
            .fit(&DatasetBase::from(z.clone()))
            .map_err(|e| invalid("a k-means fit", e.to_string()))?;
        let raw: Vec<Vec<f64>> = model.centroids().rows().into_iter().map(|r| r.to_vec()).collect();
        let mut fit = Phenotypes { mean, sd, centroids: raw, sizes: vec![0; k], fitted_rows: Vec::new() };
        let mut sizes = vec![0usize; k];
        for row in z.rows() {
            sizes[fit.nearest(row.iter().copied())] += 1;
        }
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&a, &b| {
            sizes[b].cmp(&sizes[a]).then(fit.centroids[a][0].total_cmp(&fit.centroids[b][0])).then(a.cmp(&b))
        });
        fit.centroids = order.iter().map(|&c| fit.centroids[c].clone()).collect();
        fit.sizes = order.iter().map(|&c| sizes[c]).collect();
        fit.fitted_rows = fitted.iter().map(|(r, _)| *r).collect();
        Ok(fit)
    }

    /// Number of phenotypes.
    pub fn k(&self) -> usize {
        self.centroids.len()
    }

    /// The nearest centroid of a z-scored tile (ties to the lower cluster).
    fn nearest(&self, z: impl Iterator<Item = f64> + Clone) -> usize {
        let mut best = (f64::INFINITY, 0);
        for (c, cen) in self.centroids.iter().enumerate() {
            let d: f64 = z.clone().zip(cen).map(|(a, b)| (a - b).powi(2)).sum();
            if d < best.0 {
                best = (d, c);
            }
        }
        best.1
    }

    /// The phenotype of every tile (features of width `mean.len()`; a tile of another width or
    /// with a non-finite value gets phenotype 0 only if nothing is nearer, as NaN distances lose).
    pub fn assign(&self, tiles: &PatientTiles) -> Vec<usize> {
        (0..tiles.len())
            .map(|t| {
                let row = tiles.row(t);
                self.nearest(row.iter().zip(self.mean.iter().zip(&self.sd)).map(|(&v, (m, s))| (v as f64 - m) / s))
            })
            .collect()
    }

    /// The per-patient summaries ([`summary_names`]); `None` for a patient without tiles.
    pub fn summary(&self, tiles: &PatientTiles) -> Option<Vec<f64>> {
        if tiles.is_empty() || tiles.dim != self.mean.len() {
            return None;
        }
        let k = self.k();
        let labels = self.assign(tiles);
        let mut counts = vec![0.0; k];
        labels.iter().for_each(|&c| counts[c] += 1.0);
        let n = labels.len() as f64;
        let mut out: Vec<f64> = counts[..k - 1].iter().map(|c| c / n).collect();
        out.push(entropy(counts.iter().copied()));
        let at: BTreeMap<(u32, i64, i64), usize> = tiles.cells.iter().zip(&labels).map(|(&c, &l)| (c, l)).collect();
        let mut pairs = vec![0.0; k * k];
        for (&(s, col, row), &a) in &at {
            for nb in [(s, col + 1, row), (s, col, row + 1)] {
                if let Some(&b) = at.get(&nb) {
                    pairs[a.min(b) * k + a.max(b)] += 1.0;
                }
            }
        }
        let total: f64 = pairs.iter().sum();
        let same: f64 = (0..k).map(|c| pairs[c * k + c]).sum();
        out.push(if total > 0.0 { same / total } else { 0.0 });
        out.push(entropy(pairs.into_iter()));
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A patient on a `side × side` grid whose left half is near (0, 0) and right half near (5, 5)
    /// (or a checkerboard of the two when `mixed`).
    fn patient(side: i64, mixed: bool, jitter: f32) -> Arc<PatientTiles> {
        let (mut x, mut cells) = (Vec::new(), Vec::new());
        for row in 0..side {
            for col in 0..side {
                let hi = if mixed { (row + col) % 2 == 0 } else { col >= side / 2 };
                let base = if hi { 5.0 } else { 0.0 };
                let j = jitter * (((row * 7 + col * 3) % 5) as f32 - 2.0);
                x.extend([base + j, base - j]);
                cells.push((0, col, row));
            }
        }
        Arc::new(PatientTiles { dim: 2, x, cells })
    }

    #[test]
    fn two_phenotypes_composition_and_mixing() {
        let ps = vec![Some(patient(6, false, 0.1)), Some(patient(6, true, 0.1)), None];
        let fit = Phenotypes::fit(&ps, &[0, 1, 2], 2, 7).unwrap();
        assert_eq!(fit.fitted_rows, vec![0, 1]);
        assert_eq!(fit.sizes, vec![36, 36]);
        let halves = fit.summary(ps[0].as_ref().unwrap()).unwrap();
        let board = fit.summary(ps[1].as_ref().unwrap()).unwrap();
        assert_eq!(summary_names(2).len(), halves.len());
        assert!((halves[0] - 0.5).abs() < 1e-12 && (board[0] - 0.5).abs() < 1e-12);
        assert!((halves[1] - 2f64.ln()).abs() < 1e-12, "composition entropy {halves:?}");
        // halves: 60 neighbour pairs, 6 across the border; checkerboard: none alike
        assert!((halves[2] - 54.0 / 60.0).abs() < 1e-12, "{halves:?}");
        assert_eq!(board[2], 0.0);
        assert_eq!(board[3], 0.0, "one pair type only");
        assert!(halves[3] > 0.0);
    }

    #[test]
    fn grid_cells_from_corners() {
        let c = [[0, 0], [448, 0], [224, 448]];
        assert_eq!(grid_cells(c.iter().copied(), Some(224)), vec![(0, 0), (2, 0), (1, 2)]);
        assert_eq!(grid_cells(c.iter().copied(), None), vec![(0, 0), (2, 0), (1, 2)]);
        assert_eq!(grid_cells([[5, 7]].into_iter(), None), vec![(5, 7)]);
    }

    #[test]
    fn deterministic_for_a_seed_and_checked() {
        let ps: Vec<_> = (0..4).map(|i| Some(patient(5 + i, i % 2 == 0, 0.3))).collect();
        let a = Phenotypes::fit(&ps, &[0, 1, 2, 3], 3, 11).unwrap();
        let b = Phenotypes::fit(&ps, &[3, 2, 1, 0], 3, 11).unwrap();
        assert_eq!(a, b);
        assert!(Phenotypes::fit(&ps, &[0], 1, 1).is_err());
        assert!(Phenotypes::fit(&[None], &[0], 2, 1).is_err());
        // the same fit whatever rayon's thread count (linfa's assignment loops are parallel)
        let in_pool = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| Phenotypes::fit(&ps, &[0, 1, 2, 3], 3, 11).unwrap())
        };
        assert_eq!(in_pool(1), a);
        assert_eq!(in_pool(3), a);
        let input = SpatialInput::new(3, 11, ps);
        let f = input.fit_on(&[0, 1, 2, 3]).unwrap();
        assert_eq!(f.fit, a);
        assert_eq!(f.summaries[2], a.summary(input.patients[2].as_ref().unwrap()));
        assert_eq!(input.select(&[1, 1]).patients.len(), 2);
    }
}
