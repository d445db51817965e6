//! Moran's I of a per-tile value on a slide's tile grid (rook neighbours, binary weights): the
//! spatial autocorrelation the `maps` stage reports for DAB positivity, nuclear density and (for
//! display only) attention, and the `spatial` modality may use for stain measures.
//!
//! # Formula
//! Over the `N` grid cells that hold a value `x_i` (empty cells — no tile kept — are left out,
//! with their links), with `z_i = x_i − x̄` and binary rook weights (`w_ij = 1` when cells `i`
//! and `j` share an edge, both present, else 0; `W = Σ_i Σ_j w_ij`, each edge counted twice):
//!
//! `I = (N / W) · Σ_i Σ_j w_ij z_i z_j / Σ_i z_i²`
//!
//! and its expectation under no autocorrelation `E[I] = −1 / (N − 1)`. A present cell without
//! a present neighbour (an island) still counts in `N` and `Σ z_i²`. This is PySAL's
//! `esda.Moran(y, w, transformation="B")` with `libpysal.weights.lat2W(rows, cols, rook=True)`
//! restricted to the present cells (`tests/data/moran_pysal.json` holds its values).
//! `I` is near +1 for smooth maps (hotspots, gradients), near `E[I]` for noise and negative
//! for a checkerboard.
//!
//! # Assumptions
//! The grid is row-major `rows × cols`; values are finite where present.
//!
//! # Errors
//! None: a value that does not exist — fewer than 2 present cells, no pair of present
//! neighbours (`W = 0`), or no variation (`Σ z_i² = 0`) — is `None`; a grid of the wrong
//! length or a non-finite value is `None` too (the caller validated its grid).
//!
//! # References
//! Moran PAP (1950) Notes on continuous stochastic phenomena. Biometrika 37:17–23.
//! Cliff AD, Ord JK (1981) Spatial Processes: Models and Applications. Pion, London (§1.5).
//! Rey SJ, Anselin L (2007) PySAL: a Python library of spatial analytical methods. Review of
//! Regional Studies 37:5–27.

/// Moran's I of one map, with what it was computed on.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Moran {
    /// Moran's I.
    pub i: f64,
    /// Its expectation without autocorrelation, `−1 / (N − 1)`.
    pub expected: f64,
    /// Present cells `N`.
    pub n: usize,
    /// Sum of the weights `W` (twice the number of neighbouring present pairs).
    pub weights: f64,
}

/// Moran's I of the row-major `rows × cols` grid `values` (`None`: no tile); `None` where it
/// does not exist (see the module's errors).
pub fn morans_i(values: &[Option<f64>], rows: usize, cols: usize) -> Option<Moran> {
    if rows.checked_mul(cols)? != values.len() || values.iter().flatten().any(|v| !v.is_finite()) {
        return None;
    }
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let n = present.len();
    if n < 2 {
        return None;
    }
    let mean = present.iter().sum::<f64>() / n as f64;
    let z = |k: usize| values[k].map(|v| v - mean);
    let ss: f64 = present.iter().map(|v| (v - mean).powi(2)).sum();
    // each unordered neighbouring pair once (right and down), counted twice in the sums
    let (mut cross, mut pairs) = (0.0, 0usize);
    for r in 0..rows {
        for c in 0..cols {
            let Some(zi) = z(r * cols + c) else { continue };
            let right = (c + 1 < cols).then(|| r * cols + c + 1);
            let down = (r + 1 < rows).then(|| (r + 1) * cols + c);
            for zj in [right, down].into_iter().flatten().filter_map(z) {
                cross += zi * zj;
                pairs += 1;
            }
        }
    }
    let w = 2.0 * pairs as f64;
    if pairs == 0 || ss <= 0.0 {
        return None;
    }
    let i = (n as f64 / w) * (2.0 * cross) / ss;
    Some(Moran { i, expected: -1.0 / (n as f64 - 1.0), n, weights: w })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(v: &[f64]) -> Vec<Option<f64>> {
        v.iter().map(|&x| Some(x)).collect()
    }

    #[test]
    fn hand_computed_values() {
        // 1 × 3 line [1, 2, 3]: z = (−1, 0, 1), Σz² = 2, pairs (1,2),(2,3): Σ w z z = 2·(0 + 0) = 0
        assert_eq!(morans_i(&grid(&[1.0, 2.0, 3.0]), 1, 3).map(|m| m.i), Some(0.0));
        // 2 × 2 checkerboard [1, 0; 0, 1]: every neighbour pair is (+½)(−½): I = (4/8)·(8·−¼)/1 = −1
        let m = morans_i(&grid(&[1.0, 0.0, 0.0, 1.0]), 2, 2).unwrap();
        assert!((m.i + 1.0).abs() < 1e-12, "{m:?}");
        assert_eq!((m.n, m.weights), (4, 8.0));
        assert!((m.expected + 1.0 / 3.0).abs() < 1e-12);
        // 2 × 2 halves [1, 1; 0, 0]: horizontal pairs +¼ twice, vertical −¼ twice: I = 0
        assert!(morans_i(&grid(&[1.0, 1.0, 0.0, 0.0]), 2, 2).unwrap().i.abs() < 1e-12);
    }

    #[test]
    fn empty_cells_and_degenerate_maps() {
        // the empty cell breaks the only link: W = 0
        assert_eq!(morans_i(&[Some(1.0), None, Some(2.0)], 1, 3), None);
        assert_eq!(morans_i(&grid(&[2.0, 2.0, 2.0, 2.0]), 2, 2), None);
        assert_eq!(morans_i(&grid(&[1.0]), 1, 1), None);
        assert_eq!(morans_i(&grid(&[1.0, 2.0]), 2, 2), None);
        assert_eq!(morans_i(&grid(&[1.0, f64::NAN]), 1, 2), None);
        assert_eq!(morans_i(&[], usize::MAX, 2), None);
        // an island counts in N and the variance
        let m = morans_i(&[Some(1.0), Some(0.0), None, None, None, Some(5.0)], 2, 3).unwrap();
        assert_eq!((m.n, m.weights), (3, 2.0));
    }
}
