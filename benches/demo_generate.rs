//! Timing of `spatia::demo::generate`: a cohort at the default slide size, once on one rayon
//! thread (the baseline) and once on all cores, in the same process. Checks that both runs
//! wrote identical bytes (cohort.json holds every file's blake3 digest).
//!
//! Run: `cargo bench --bench demo_generate` (env `DEMO_BENCH_PATIENTS`, default 10;
//! `DEMO_BENCH_SIZE`, default 3500).
use spatia::demo::{generate, DemoParams};
use std::time::Instant;

fn main() {
    let patients: usize = std::env::var("DEMO_BENCH_PATIENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let size: u32 = std::env::var("DEMO_BENCH_SIZE").ok().and_then(|s| s.parse().ok()).unwrap_or(3500);
    let params = DemoParams { patients, size, ..DemoParams::default() };
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut results = Vec::new();
    let mut cohorts = Vec::new();
    for threads in [1, cores] {
        let dir = tempfile::tempdir().expect("temporary directory");
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        let t0 = Instant::now();
        let summary = pool.install(|| generate(&params, dir.path())).expect("generate");
        let wall = t0.elapsed().as_secs_f64();
        let cohort = std::fs::read(dir.path().join("cohort.json")).expect("cohort.json");
        let cohort: serde_json::Value = serde_json::from_slice(&cohort).expect("cohort.json parses");
        let px: f64 = cohort["slides"]
            .as_array()
            .map(|a| a.iter().map(|s| s["width"].as_f64().unwrap_or(0.0) * s["height"].as_f64().unwrap_or(0.0)).sum())
            .unwrap_or(0.0);
        println!(
            "demo_generate: {patients} patients × {} stains, size {size}, {threads} thread(s): {wall:.2} s wall, {:.2} s/slide, {:.1} Mpx/s level 0, {:.1} MB",
            params.stains.len(),
            wall / summary.slides as f64,
            px / wall / 1e6,
            summary.slide_bytes as f64 / 1e6
        );
        results.push(wall);
        cohorts.push(cohort["files"].clone());
    }
    assert_eq!(cohorts[0], cohorts[1], "1-thread and {cores}-thread runs wrote different bytes");
    println!("demo_generate: speed-up {cores} threads vs 1: {:.2}×; outputs identical", results[0] / results[1]);
}
