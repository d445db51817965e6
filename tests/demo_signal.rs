//! The slide-visible latent variables of the demo cohort are readable from the slides as a
//! pathology pipeline reads them: OpenSlide decodes the JPEG tiles, Ruifrok–Johnston colour
//! deconvolution (scikit-image's `rgb2hed` matrix) separates the stains, and the measured
//! quantities rank the patients as their ground truth in `cohort.json` does.
use openslide_rs::{Address, OpenSlide, Region, Size};
use spatia::demo::texture::Stain;
use spatia::demo::{generate, DemoParams};

/// Inverse of a 3×3 matrix (rows).
#[allow(clippy::needless_range_loop)]
fn inverse(m: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let mut r = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            let (a, b) = ((j + 1) % 3, (j + 2) % 3);
            let (c, d) = ((i + 1) % 3, (i + 2) % 3);
            r[i][j] = (m[a][c] * m[b][d] - m[a][d] * m[b][c]) / det;
        }
    }
    r
}

/// Stain amounts (natural optical density units, scikit-image's values × ln 10⁶) per pixel.
fn hed(rgb: [u8; 3], inv: &[[f64; 3]; 3]) -> [f64; 3] {
    let od: Vec<f64> = rgb.iter().map(|&v| -((v.max(1) as f64) / 255.0).ln()).collect();
    let mut c = [0.0; 3];
    for (j, cj) in c.iter_mut().enumerate() {
        *cj = (0..3).map(|i| od[i] * inv[i][j]).sum();
    }
    c
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let rank = |v: &[f64]| {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        for (k, &i) in idx.iter().enumerate() {
            r[i] = k as f64;
        }
        r
    };
    let (ra, rb) = (rank(a), rank(b));
    let n = a.len() as f64;
    let m = (n - 1.0) / 2.0;
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - m) * (y - m)).sum();
    let var: f64 = ra.iter().map(|x| (x - m) * (x - m)).sum();
    cov / var
}

#[test]
fn deconvolution_recovers_the_latent_ranking() {
    let n = 12;
    let params = DemoParams {
        patients: n,
        seed: 5,
        size: 1024,
        stains: vec![Stain::HE, Stain::KI67],
        jpeg_quality: 75,
        missing_ihc: 0.0,
    };
    let dir = tempfile::tempdir().unwrap();
    generate(&params, dir.path()).unwrap();
    let cohort: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("cohort.json")).unwrap()).unwrap();
    let truth = cohort["ground_truth"].as_array().unwrap();
    let inv = inverse([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]]);

    let (mut dab_pos, mut ki_true, mut nuc_frac, mut he_latent) = (vec![], vec![], vec![], vec![]);
    let (mut he_dab_max, mut he_pos_max, mut ki_eosin) = (0.0f64, 0.0f64, 0.0f64);
    for t in truth {
        let pid = t["patient_id"].as_str().unwrap();
        for stain in ["HE", "KI67"] {
            let slide = OpenSlide::new(dir.path().join(format!("slides/{pid}_{stain}.tif"))).unwrap();
            let s = slide.level_dimensions(0).unwrap();
            let bgra = slide
                .read_region(&Region { size: Size { w: s.w, h: s.h }, level: 0, address: Address { x: 0, y: 0 } })
                .unwrap();
            let (mut tissue, mut positive, mut nuclear, mut dab_sum, mut eos_sum) = (0usize, 0usize, 0usize, 0.0, 0.0);
            for q in bgra.chunks_exact(4) {
                let c = hed([q[2], q[1], q[0]], &inv);
                let od: f64 = [q[2], q[1], q[0]].iter().map(|&v| -((v.max(1) as f64) / 255.0).ln()).sum();
                if od < 0.35 {
                    continue; // glass (the background itself has OD ≈ 0.14)
                }
                tissue += 1;
                dab_sum += c[2];
                eos_sum += c[1];
                if c[2] > 0.25 {
                    positive += 1;
                } else if c[0] > if stain == "KI67" { 0.3 } else { 0.45 } {
                    nuclear += 1;
                }
            }
            assert!(tissue > 10_000, "{pid} {stain}: only {tissue} tissue pixels");
            if stain == "KI67" {
                // a Ki-67 index: DAB-positive nuclear area over all nuclear area
                dab_pos.push(positive as f64 / (positive + nuclear).max(1) as f64);
                ki_true.push(t["ki67_fraction"].as_f64().unwrap());
                ki_eosin = ki_eosin.max(eos_sum / tissue as f64);
            } else {
                nuc_frac.push(nuclear as f64 / tissue as f64);
                he_latent.push(t["density_z"].as_f64().unwrap() + t["atypia_z"].as_f64().unwrap());
                he_dab_max = he_dab_max.max(dab_sum / tissue as f64);
                he_pos_max = he_pos_max.max(positive as f64 / tissue as f64);
            }
        }
    }
    let r_ki = spearman(&dab_pos, &ki_true);
    let r_he = spearman(&nuc_frac, &he_latent);
    eprintln!("Ki-67: DAB+ nuclear area fractions {dab_pos:?} vs truth {ki_true:?}: rho {r_ki:.3}");
    eprintln!("H&E: nuclear pixel fractions {nuc_frac:?} vs density+atypia {he_latent:?}: rho {r_he:.3}");
    assert!(r_ki > 0.7, "Ki-67 DAB-positive nuclear fraction vs true Ki-67: Spearman {r_ki}");
    assert!(r_he > 0.6, "H&E nuclear area vs density + atypia: Spearman {r_he}");
    // no DAB on H&E, no eosin on IHC (beyond JPEG and background noise)
    assert!(he_dab_max < 0.1, "mean DAB on H&E {he_dab_max}");
    assert!(he_pos_max < 0.02, "DAB-positive pixel fraction on H&E {he_pos_max}");
    assert!(ki_eosin < 0.08, "mean eosin on Ki-67 {ki_eosin}");
}
