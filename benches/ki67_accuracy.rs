//! Accuracy of the nuclear Ki-67 labelling index against the demo generator's ground truth:
//! a small demo cohort (H&E + Ki-67), every Ki-67 slide tiled and scored as the `tile` and
//! `stain` stages do (tissue mask for Ki-67, 256 px tiles at 0.5 µm/px, slide QC at its
//! defaults, `score_tiling` with the
//! stage's default nuclear parameters), compared with the fraction of DAB-positive nuclei the
//! generator painted (`cohort.json` → `ground_truth[].ki67_painted`): Spearman's rank
//! correlation and the mean absolute error, against `all_fraction` (positive / all painted
//! nuclei, tumour and stromal: what the score counts) and, for information, `tumour_fraction`.
//! Targets: Spearman ≥ 0.95, MAE ≤ 0.05 against `all_fraction`.
//!
//! Run: `cargo bench --bench ki67_accuracy` (env `KI67_BENCH_PATIENTS`, default 24;
//! `KI67_BENCH_SIZE`, default 2000 px; `KI67_BENCH_SEED`, default 7).
use spatia::demo::{generate, DemoParams};
use spatia::slide::nuclei::{score_tiling, NucleiParams};
use spatia::slide::qc::QcParams;
use spatia::slide::tiling::{exclude_tiles, tile_slide, TileParams};
use spatia::slide::tissue::{detect_tissue, TissueParams};
use spatia::slide::{Slide, Stain};
use std::time::Instant;

/// Average ranks (ties share their mean rank).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            r[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k).ok().and_then(|s| s.parse().ok()).unwrap_or(d)
}

fn main() {
    let patients: usize = env("KI67_BENCH_PATIENTS", 24);
    let size: u32 = env("KI67_BENCH_SIZE", 2000);
    let seed: u64 = env("KI67_BENCH_SEED", 7);
    let dir = tempfile::tempdir().expect("temporary directory");
    let params = DemoParams { patients, size, seed, stains: vec![Stain::HE, Stain::KI67], ..DemoParams::default() };
    let t0 = Instant::now();
    generate(&params, dir.path()).expect("generate");
    let t_gen = t0.elapsed().as_secs_f64();
    let cohort: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("cohort.json")).expect("cohort.json")).expect("json");
    let np = NucleiParams::default();
    let (mut est, mut all, mut tum) = (Vec::new(), Vec::new(), Vec::new());
    let t1 = Instant::now();
    for g in cohort["ground_truth"].as_array().expect("ground_truth") {
        let id = g["patient_id"].as_str().expect("patient_id");
        let Some(k) = g.get("ki67_painted") else { continue };
        let path = dir.path().join("slides").join(format!("{id}_KI67.tif"));
        let slide = Slide::open(&path, None).expect("slide");
        let mask = detect_tissue(&slide, &TissueParams::for_stain(Stain::KI67)).expect("tissue");
        let mut tiling = tile_slide(&slide, &mask, &TileParams::new(0.5, 256)).expect("tiling");
        exclude_tiles(&slide, &mut tiling, &QcParams::default(), 64).expect("slide QC");
        let s = score_tiling(&slide, &tiling, &np, 16).expect("nuclei");
        let li = s.score.labelling_index.unwrap_or(0.0);
        let (a, t) = (k["all_fraction"].as_f64().unwrap_or(0.0), k["tumour_fraction"].as_f64().unwrap_or(0.0));
        let painted = ["tumour_positive", "tumour_negative", "other_negative"].map(|f| k[f].as_u64().unwrap_or(0));
        println!(
            "{id}: {} nuclei ({} positive), labelling index {li:.3}; painted {} + {} tumour, {} other: \
             all {a:.3}, tumour {t:.3}",
            s.score.nuclei, s.score.positive_nuclei, painted[0], painted[1], painted[2]
        );
        est.push(li);
        all.push(a);
        tum.push(t);
    }
    let t_score = t1.elapsed().as_secs_f64();
    let mae = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| (a - b).abs()).sum::<f64>() / x.len() as f64;
    println!(
        "ki67_accuracy: {} Ki-67 slides ({patients} patients, size {size}, seed {seed}): \
         vs painted all-nuclei fraction \
         Spearman {:.3}, MAE {:.3} (targets ≥ 0.95, ≤ 0.05); vs painted tumour fraction Spearman {:.3}, MAE {:.3}; \
         generate {t_gen:.1} s, scoring {t_score:.1} s",
        est.len(),
        spearman(&est, &all),
        mae(&est, &all),
        spearman(&est, &tum),
        mae(&est, &tum)
    );
}
