//! The built-in `handcrafted` encoder: 64 interpretable features per tile, pure Rust, no
//! weights, deterministic (each tile is computed sequentially in f64; batches are spread over
//! rayon's pool but results do not depend on the thread count).
//!
//! # Formula
//! Features are listed, index by index, in [`FEATURES`] (and in docs/features.md). Groups:
//! - 0–11 RGB statistics (mean, std, 10th and 90th percentile per channel, values in [0, 1]);
//! - 12–26 H, E, DAB optical density from colour deconvolution ([`crate::slide::hed`], as
//!   scikit-image `rgb2hed`): mean, std, 10th, 50th, 90th percentile;
//! - 27–34 grey level, saturation, background fraction, grey entropy, Sobel gradient;
//! - 35–46 grey-level co-occurrence matrix (8 levels, symmetric, normalised, averaged over
//!   0°, 45°, 90°, 135°) at distances 1 and 3: contrast, dissimilarity, homogeneity, ASM,
//!   correlation, entropy (as scikit-image `graycoprops`, entropy in nats);
//! - 47–56 rotation-invariant uniform local binary patterns (`riu2`, 8 neighbours at distance
//!   1 on the square grid): fraction of pixels per code 0–8 and non-uniform (9);
//! - 57–63 nuclei-density proxy from the hematoxylin channel and DAB positivity.
//!
//! Percentiles are the lower nearest rank: the value at sorted index ⌊q·(n−1)⌋.
//!
//! # Assumptions
//! Tiles are 8-bit RGB brightfield images at roughly 0.5 µm/px (the nuclei thresholds
//! [`H_THRESHOLD`], [`MIN_NUCLEUS_AREA`] assume it); at least 3×3 pixels. Features depend on
//! the tile's pixel size, so one cohort must use one tile size and resolution.
//!
//! # Errors
//! [`FeatureError::InvalidInput`] for a tile smaller than 3×3.
//!
//! # References
//! Haralick, Shanmugam, Dinstein, "Textural features for image classification", IEEE SMC 3
//! (1973); Ojala, Pietikäinen, Mäenpää, "Multiresolution gray-scale and rotation invariant
//! texture classification with local binary patterns", IEEE PAMI 24 (2002); Ruifrok and
//! Johnston (2001) for colour deconvolution.
use super::{Encoder, FeatureError, Prepared, RgbImage};
use crate::slide::hed::rgb2hed_lut;
use rayon::prelude::*;

/// Hematoxylin concentration (scikit-image `rgb2hed` units) above which a pixel counts as
/// hematoxylin-dark (nuclear).
pub const H_THRESHOLD: f64 = 0.06;
/// DAB concentration above which a pixel counts as DAB-positive.
pub const DAB_THRESHOLD: f64 = 0.15;
/// Smallest connected hematoxylin-dark blob (pixels, 4-connectivity) counted as a nucleus.
pub const MIN_NUCLEUS_AREA: usize = 20;
/// Version of the feature definitions; part of the digest.
pub const VERSION: u32 = 1;

/// Index, name and meaning of every feature, in output order.
pub const FEATURES: [(&str, &str); 64] = [
    ("r_mean", "mean red, [0,1]"),
    ("r_std", "standard deviation of red"),
    ("r_p10", "10th percentile of red"),
    ("r_p90", "90th percentile of red"),
    ("g_mean", "mean green, [0,1]"),
    ("g_std", "standard deviation of green"),
    ("g_p10", "10th percentile of green"),
    ("g_p90", "90th percentile of green"),
    ("b_mean", "mean blue, [0,1]"),
    ("b_std", "standard deviation of blue"),
    ("b_p10", "10th percentile of blue"),
    ("b_p90", "90th percentile of blue"),
    ("h_mean", "mean hematoxylin optical density (rgb2hed)"),
    ("h_std", "standard deviation of hematoxylin OD"),
    ("h_p10", "10th percentile of hematoxylin OD"),
    ("h_p50", "median hematoxylin OD"),
    ("h_p90", "90th percentile of hematoxylin OD"),
    ("e_mean", "mean eosin optical density"),
    ("e_std", "standard deviation of eosin OD"),
    ("e_p10", "10th percentile of eosin OD"),
    ("e_p50", "median eosin OD"),
    ("e_p90", "90th percentile of eosin OD"),
    ("dab_mean", "mean DAB optical density"),
    ("dab_std", "standard deviation of DAB OD"),
    ("dab_p10", "10th percentile of DAB OD"),
    ("dab_p50", "median DAB OD"),
    ("dab_p90", "90th percentile of DAB OD"),
    ("grey_mean", "mean grey level (0.299R+0.587G+0.114B), [0,1]"),
    ("grey_std", "standard deviation of grey level"),
    ("sat_mean", "mean HSV saturation"),
    ("sat_std", "standard deviation of HSV saturation"),
    ("background_frac", "fraction of bright unsaturated pixels (grey ≥ 220/255 and saturation < 0.15)"),
    ("grey_entropy", "entropy of the 32-bin grey histogram, bits / 5 (so in [0,1])"),
    ("grad_mean", "mean Sobel gradient magnitude of grey / 1020"),
    ("grad_std", "standard deviation of the Sobel gradient magnitude / 1020"),
    ("glcm1_contrast", "GLCM contrast, distance 1"),
    ("glcm1_dissimilarity", "GLCM dissimilarity, distance 1"),
    ("glcm1_homogeneity", "GLCM homogeneity, distance 1"),
    ("glcm1_asm", "GLCM angular second moment, distance 1"),
    ("glcm1_correlation", "GLCM correlation, distance 1 (1 when a marginal is constant)"),
    ("glcm1_entropy", "GLCM entropy (nats), distance 1"),
    ("glcm3_contrast", "GLCM contrast, distance 3"),
    ("glcm3_dissimilarity", "GLCM dissimilarity, distance 3"),
    ("glcm3_homogeneity", "GLCM homogeneity, distance 3"),
    ("glcm3_asm", "GLCM angular second moment, distance 3"),
    ("glcm3_correlation", "GLCM correlation, distance 3"),
    ("glcm3_entropy", "GLCM entropy (nats), distance 3"),
    ("lbp_0", "fraction of interior pixels with uniform LBP code 0 (no neighbour ≥ centre)"),
    ("lbp_1", "fraction with uniform LBP code 1"),
    ("lbp_2", "fraction with uniform LBP code 2"),
    ("lbp_3", "fraction with uniform LBP code 3"),
    ("lbp_4", "fraction with uniform LBP code 4"),
    ("lbp_5", "fraction with uniform LBP code 5"),
    ("lbp_6", "fraction with uniform LBP code 6"),
    ("lbp_7", "fraction with uniform LBP code 7"),
    ("lbp_8", "fraction with uniform LBP code 8 (all neighbours ≥ centre)"),
    ("lbp_nonuniform", "fraction of non-uniform LBP patterns"),
    ("h_pos_frac", "fraction of pixels with hematoxylin OD > H_THRESHOLD"),
    ("nuclei_per_10k_px", "hematoxylin-dark blobs of ≥ MIN_NUCLEUS_AREA px per 10,000 pixels"),
    ("nucleus_area_mean", "mean area of those blobs, pixels (0 when none)"),
    ("nucleus_area_std", "standard deviation of their areas, pixels"),
    ("nuclear_area_frac", "fraction of the tile covered by those blobs"),
    ("dab_pos_frac", "fraction of pixels with DAB OD > DAB_THRESHOLD"),
    ("h_over_he", "mean H / (mean H + mean E), 0 when both are 0"),
];

/// The built-in encoder.
#[derive(Debug, Clone, Default)]
pub struct Handcrafted;

impl Handcrafted {
    /// A new encoder (stateless).
    pub fn new() -> Self {
        Handcrafted
    }
}

impl Encoder for Handcrafted {
    fn name(&self) -> String {
        "handcrafted".into()
    }
    fn digest(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(
            format!("spatia-handcrafted-v{VERSION};H>{H_THRESHOLD};DAB>{DAB_THRESHOLD};area>={MIN_NUCLEUS_AREA}")
                .as_bytes(),
        );
        h.finalize().to_hex().to_string()
    }
    fn dim(&self) -> usize {
        FEATURES.len()
    }
    fn prepare(&self, tile: &RgbImage) -> Result<Prepared, FeatureError> {
        tile_features(tile).map(Prepared::F32)
    }
    fn encode_prepared(&self, batch: &[Prepared]) -> Result<Vec<Vec<f32>>, FeatureError> {
        batch
            .iter()
            .map(|p| match p {
                Prepared::F32(v) => Ok(v.clone()),
                Prepared::U8(_) => Err(FeatureError::InvalidInput("handcrafted: expected prepared features".into())),
            })
            .collect()
    }
    fn encode_batch(&self, tiles: &[RgbImage]) -> Result<Vec<Vec<f32>>, FeatureError> {
        tiles.par_iter().map(tile_features).collect()
    }
}

fn mean_std(sum: f64, sum_sq: f64, n: f64) -> (f64, f64) {
    let m = sum / n;
    (m, (sum_sq / n - m * m).max(0.0).sqrt())
}

/// Lower nearest-rank percentile from a 256-bin histogram of `n` values.
fn hist_percentile(hist: &[u64; 256], n: u64, q: f64) -> f64 {
    let rank = (q * (n - 1) as f64).floor() as u64;
    let mut acc = 0u64;
    for (v, &c) in hist.iter().enumerate() {
        acc += c;
        if acc > rank {
            return v as f64;
        }
    }
    255.0
}

/// Lower nearest-rank percentiles of a float slice (reorders it); `qs` ascending. Each
/// selection runs on the part right of the previous one, so the order statistics are exact
/// and the work is about one pass per percentile over a shrinking slice.
fn percentiles(values: &mut [f32], qs: &[f64]) -> Vec<f64> {
    let n = values.len();
    let mut lo = 0usize;
    qs.iter()
        .map(|&q| {
            let rank = ((q * (n - 1) as f64).floor() as usize).max(lo);
            let (_, v, _) = values[lo..].select_nth_unstable_by(rank - lo, |a, b| a.total_cmp(b));
            let v = *v as f64;
            lo = rank;
            v
        })
        .collect()
}

const GLCM_LEVELS: usize = 8;

/// scikit-image-style GLCM properties averaged over 0°, 45°, 90°, 135° at distance `d`.
fn glcm_props(q: &[u8], w: usize, h: usize, d: usize) -> [f64; 6] {
    let d = d as isize;
    let offsets: [(isize, isize); 4] = [(d, 0), (d, -d), (0, -d), (-d, -d)];
    let mut acc = [0.0f64; 6];
    let mut used = 0usize;
    for (dx, dy) in offsets {
        let mut m = [[0u64; GLCM_LEVELS]; GLCM_LEVELS];
        let mut total = 0u64;
        // Pixel pairs (x, y) → (x + dx, y + dy) with both inside the tile.
        let (x0, x1) = ((-dx).max(0) as usize, (w as isize - dx.max(0)).max(0) as usize);
        let (y0, y1) = ((-dy).max(0) as usize, (h as isize - dy.max(0)).max(0) as usize);
        if x0 < x1 && y0 < y1 {
            let mut counts = [0u32; GLCM_LEVELS * GLCM_LEVELS];
            for y in y0..y1 {
                let row = &q[y * w + x0..y * w + x1];
                let y2 = (y as isize + dy) as usize;
                let x2 = (x0 as isize + dx) as usize;
                let row2 = &q[y2 * w + x2..y2 * w + x2 + (x1 - x0)];
                for (&a, &b) in row.iter().zip(row2) {
                    counts[(a as usize) * GLCM_LEVELS + b as usize] += 1;
                }
            }
            for a in 0..GLCM_LEVELS {
                for b in 0..GLCM_LEVELS {
                    let c = counts[a * GLCM_LEVELS + b] as u64;
                    m[a][b] += c;
                    m[b][a] += c;
                    total += 2 * c;
                }
            }
        }
        if total == 0 {
            continue;
        }
        used += 1;
        let t = total as f64;
        let (mut contrast, mut dissim, mut homog, mut asm, mut ent) = (0.0, 0.0, 0.0, 0.0, 0.0);
        let (mut mu_i, mut mu_j) = (0.0, 0.0);
        for (i, row) in m.iter().enumerate() {
            for (j, &c) in row.iter().enumerate() {
                let p = c as f64 / t;
                mu_i += i as f64 * p;
                mu_j += j as f64 * p;
            }
        }
        let (mut var_i, mut var_j, mut cov) = (0.0, 0.0, 0.0);
        for (i, row) in m.iter().enumerate() {
            for (j, &c) in row.iter().enumerate() {
                if c == 0 {
                    continue;
                }
                let p = c as f64 / t;
                let diff = i as f64 - j as f64;
                contrast += p * diff * diff;
                dissim += p * diff.abs();
                homog += p / (1.0 + diff * diff);
                asm += p * p;
                ent -= p * p.ln();
                var_i += p * (i as f64 - mu_i).powi(2);
                var_j += p * (j as f64 - mu_j).powi(2);
                cov += p * (i as f64 - mu_i) * (j as f64 - mu_j);
            }
        }
        let corr = if var_i < 1e-15 || var_j < 1e-15 { 1.0 } else { cov / (var_i * var_j).sqrt() };
        for (a, v) in acc.iter_mut().zip([contrast, dissim, homog, asm, corr, ent]) {
            *a += v;
        }
    }
    if used > 0 {
        for a in acc.iter_mut() {
            *a /= used as f64;
        }
    }
    acc
}

/// Computes the 64 features of one tile.
pub fn tile_features(tile: &RgbImage) -> Result<Vec<f32>, FeatureError> {
    let (w, h) = (tile.width() as usize, tile.height() as usize);
    if w < 3 || h < 3 {
        return Err(FeatureError::InvalidInput(format!(
            "handcrafted encoder: expected a tile of at least 3×3 pixels, found {w}×{h}"
        )));
    }
    let n = w * h;
    let nf = n as f64;
    let raw = tile.as_raw();
    let hed = rgb2hed_lut();

    let mut hist = [[0u64; 256]; 3];
    let mut grey = vec![0u8; n];
    let mut stains: [Vec<f32>; 3] = [vec![0.0; n], vec![0.0; n], vec![0.0; n]];
    let (mut s_sum, mut s_sq) = ([0.0f64; 3], [0.0f64; 3]);
    let (mut sat_sum, mut sat_sq, mut background) = (0.0f64, 0.0f64, 0usize);
    let mut grey_hist = [0u64; 32];
    let (mut h_pos, mut dab_pos) = (0usize, 0usize);
    let mut h_mask = vec![false; n];
    for i in 0..n {
        let px = [raw[3 * i], raw[3 * i + 1], raw[3 * i + 2]];
        for c in 0..3 {
            hist[c][px[c] as usize] += 1;
        }
        let g = ((77 * px[0] as u32 + 150 * px[1] as u32 + 29 * px[2] as u32 + 128) >> 8) as u8;
        grey[i] = g;
        grey_hist[(g >> 3) as usize] += 1;
        let mx = px[0].max(px[1]).max(px[2]) as f64;
        let mn = px[0].min(px[1]).min(px[2]) as f64;
        let sat = if mx > 0.0 { (mx - mn) / mx } else { 0.0 };
        sat_sum += sat;
        sat_sq += sat * sat;
        if g >= 220 && sat < 0.15 {
            background += 1;
        }
        let c = hed.hed(px);
        for k in 0..3 {
            stains[k][i] = c[k] as f32;
            s_sum[k] += c[k];
            s_sq[k] += c[k] * c[k];
        }
        if c[0] > H_THRESHOLD {
            h_pos += 1;
            h_mask[i] = true;
        }
        if c[2] > DAB_THRESHOLD {
            dab_pos += 1;
        }
    }

    let mut f: Vec<f64> = Vec::with_capacity(64);
    // 0–11: RGB.
    for ch in &hist {
        let (mut s, mut sq) = (0.0, 0.0);
        for (v, &c) in ch.iter().enumerate() {
            let x = v as f64 / 255.0;
            s += x * c as f64;
            sq += x * x * c as f64;
        }
        let (m, sd) = mean_std(s, sq, nf);
        f.extend([m, sd, hist_percentile(ch, n as u64, 0.10) / 255.0, hist_percentile(ch, n as u64, 0.90) / 255.0]);
    }
    // 12–26: H, E, DAB.
    let mut means = [0.0; 3];
    for k in 0..3 {
        let (m, sd) = mean_std(s_sum[k], s_sq[k], nf);
        means[k] = m;
        let p = percentiles(&mut stains[k], &[0.10, 0.50, 0.90]);
        f.extend([m, sd, p[0], p[1], p[2]]);
    }
    // 27–34: grey, saturation, background, entropy, gradient.
    let (gs, gsq) = grey.iter().fold((0.0, 0.0), |(s, q), &g| {
        let x = g as f64 / 255.0;
        (s + x, q + x * x)
    });
    let (gm, gsd) = mean_std(gs, gsq, nf);
    let (sm, ssd) = mean_std(sat_sum, sat_sq, nf);
    let entropy = grey_hist
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / nf;
            -p * p.log2()
        })
        .sum::<f64>()
        / 5.0;
    let (mut gr_s, mut gr_sq, mut interior) = (0.0f64, 0.0f64, 0usize);
    let mut lbp = [0u64; 10];
    // riu2 code of every 8-bit neighbour pattern (bit k = ring neighbour k ≥ centre).
    let riu2: [u8; 256] = std::array::from_fn(|p| {
        let ones = (p as u32).count_ones() as u8;
        let transitions = (p as u8 ^ (p as u8).rotate_left(1)).count_ones();
        if transitions <= 2 {
            ones
        } else {
            9
        }
    });
    for y in 1..h - 1 {
        let (up, mid, down) = (&grey[(y - 1) * w..y * w], &grey[y * w..(y + 1) * w], &grey[(y + 1) * w..(y + 2) * w]);
        for x in 1..w - 1 {
            let (ul, u, ur) = (up[x - 1] as i32, up[x] as i32, up[x + 1] as i32);
            let (l, c, r) = (mid[x - 1] as i32, mid[x] as i32, mid[x + 1] as i32);
            let (dl, d, dr) = (down[x - 1] as i32, down[x] as i32, down[x + 1] as i32);
            let gx = (ur + 2 * r + dr) - (ul + 2 * l + dl);
            let gy = (dl + 2 * d + dr) - (ul + 2 * u + ur);
            let mag = ((gx * gx + gy * gy) as f64).sqrt() / 1020.0;
            gr_s += mag;
            gr_sq += mag * mag;
            interior += 1;
            // Neighbours in circular order: right, up-right, up, up-left, left, down-left, down, down-right.
            let ring = [r, ur, u, ul, l, dl, d, dr];
            let mut pattern = 0u8;
            for (k, v) in ring.iter().enumerate() {
                pattern |= ((*v >= c) as u8) << k;
            }
            lbp[riu2[pattern as usize] as usize] += 1;
        }
    }
    let (grm, grsd) = mean_std(gr_s, gr_sq, interior as f64);
    f.extend([gm, gsd, sm, ssd, background as f64 / nf, entropy, grm, grsd]);
    // 35–46: GLCM.
    let q: Vec<u8> = grey.iter().map(|&g| g >> 5).collect();
    f.extend(glcm_props(&q, w, h, 1));
    f.extend(glcm_props(&q, w, h, 3));
    // 47–56: LBP riu2.
    f.extend(lbp.iter().map(|&c| c as f64 / interior as f64));
    // 57–63: nuclei proxy, DAB, H/E.
    let areas = blob_areas(&mut h_mask, w, h);
    let nuclei: Vec<f64> = areas.into_iter().filter(|&a| a >= MIN_NUCLEUS_AREA).map(|a| a as f64).collect();
    let count = nuclei.len() as f64;
    let (am, asd) = if nuclei.is_empty() {
        (0.0, 0.0)
    } else {
        let s: f64 = nuclei.iter().sum();
        let sq: f64 = nuclei.iter().map(|a| a * a).sum();
        mean_std(s, sq, count)
    };
    let covered: f64 = nuclei.iter().sum();
    let he = means[0] + means[1];
    f.extend([
        h_pos as f64 / nf,
        count * 1e4 / nf,
        am,
        asd,
        covered / nf,
        dab_pos as f64 / nf,
        if he > 0.0 { means[0] / he } else { 0.0 },
    ]);
    debug_assert_eq!(f.len(), FEATURES.len());
    Ok(f.into_iter().map(|v| v as f32).collect())
}

/// Areas of the 4-connected components of `mask` (consumed: cleared as visited), in scan order.
fn blob_areas(mask: &mut [bool], w: usize, h: usize) -> Vec<usize> {
    let mut areas = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] {
            continue;
        }
        mask[start] = false;
        stack.push(start);
        let mut area = 0usize;
        while let Some(i) = stack.pop() {
            area += 1;
            let (x, y) = (i % w, i / w);
            let mut visit = |j: usize| {
                if mask[j] {
                    mask[j] = false;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        areas.push(area);
    }
    areas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(w: u32, h: u32, rgb: [u8; 3]) -> RgbImage {
        RgbImage::from_pixel(w, h, image::Rgb(rgb))
    }

    #[test]
    fn dimension_and_names() {
        assert_eq!(Handcrafted.dim(), 64);
        let mut names: Vec<_> = FEATURES.iter().map(|f| f.0).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 64, "feature names must be unique");
    }

    #[test]
    fn uniform_white_tile() {
        let f = tile_features(&uniform(16, 16, [255, 255, 255])).unwrap();
        assert_eq!(f.len(), 64);
        assert!((f[0] - 1.0).abs() < 1e-6 && f[1].abs() < 1e-6);
        assert!(f[12].abs() < 1e-9, "white has no hematoxylin");
        assert_eq!(f[31], 1.0, "white is background");
        assert_eq!(f[35], 0.0, "no contrast");
        assert_eq!(f[38], 1.0, "one GLCM cell: ASM 1");
        assert_eq!(f[47 + 8], 1.0, "all neighbours equal: LBP code 8");
        assert_eq!(f[58], 0.0, "no nuclei");
    }

    #[test]
    fn dark_blobs_are_counted_as_nuclei() {
        // Pink background with 3 dark purple squares of 6×6 = 36 px and one of 3×3 (too small).
        let mut img = uniform(40, 40, [230, 170, 200]);
        let purple = image::Rgb([60, 30, 120]);
        for &(x0, y0, s) in &[(2u32, 2u32, 6u32), (20, 5, 6), (10, 25, 6), (30, 30, 3)] {
            for y in y0..y0 + s {
                for x in x0..x0 + s {
                    img.put_pixel(x, y, purple);
                }
            }
        }
        let hed = rgb2hed_lut();
        assert!(hed.hed([60, 30, 120])[0] > H_THRESHOLD);
        assert!(hed.hed([230, 170, 200])[0] < H_THRESHOLD);
        let f = tile_features(&img).unwrap();
        assert!((f[58] - 3.0 * 1e4 / 1600.0).abs() < 1e-3, "nuclei per 10k px: {}", f[58]);
        assert!((f[59] - 36.0).abs() < 1e-6, "mean area {}", f[59]);
        assert!((f[57] - (3.0 * 36.0 + 9.0) / 1600.0).abs() < 1e-6);
    }

    #[test]
    fn tiny_tile_is_an_error() {
        let e = tile_features(&uniform(2, 5, [0, 0, 0])).unwrap_err();
        assert!(e.to_string().contains("found 2×5"), "{e}");
    }

    #[test]
    fn glcm_checkerboard() {
        // Alternating levels 0 and 7: at distance 1 horizontally/vertically contrast 49,
        // diagonally equal neighbours.
        let (w, h) = (8, 8);
        let q: Vec<u8> = (0..w * h).map(|i| if (i % w + i / w) % 2 == 0 { 0 } else { 7 }).collect();
        let p = glcm_props(&q, w, h, 1);
        assert!((p[0] - 49.0 / 2.0).abs() < 1e-12, "contrast {}", p[0]);
    }
}
