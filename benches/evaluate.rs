//! Benchmark of the `evaluate` library (plain `std::time::Instant`, no harness).
//!
//! Run: `cargo bench --bench evaluate` (release). One arm of seeded synthetic OOF predictions
//! (ChaCha8, seed 7): risk `x + noise`, exponential event times with hazard `1e-3·e^x`, uniform
//! censoring, times rounded to whole days; 5 folds with a Breslow-like baseline `H₀(t) = 1e-3·t`
//! listed at each training event time; horizons 1095, 1825 (and 3650 where follow-up allows).
//! Reported: `evaluate_prepared` (all metrics, 1000 bootstrap replicates each) and `compare`
//! (paired ΔC) with 1 thread and with every thread, the minimum of 3 runs, and whether both
//! thread counts gave identical results.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spatia::contracts::{baseline::Baseline, oof::OofRow};
use spatia::model::evaluation::*;
use std::collections::BTreeMap;
use std::time::Instant;

fn arm(name: &str, n: usize, noise: f64, seed: u64) -> ArmInput {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k = 5;
    let mut oof = Vec::new();
    let mut out = ChaCha8Rng::seed_from_u64(7);
    for i in 0..n {
        let x: f64 = out.gen_range(-2.0..2.0);
        let t = -(out.gen::<f64>().ln()) / (1e-3 * x.exp());
        let c = 200.0 + out.gen::<f64>() * 6000.0;
        let risk = x + noise * rng.gen_range(-2.0..2.0);
        oof.push(OofRow {
            repeat: 0,
            patient: format!("P{i}"),
            fold: i % k,
            risk,
            time: t.min(c).round().max(1.0),
            event: t <= c,
        });
    }
    let mut baselines = BTreeMap::new();
    let mut cuts = Vec::new();
    for f in 0..k {
        let mut ev: Vec<f64> = oof.iter().filter(|r| r.fold != f && r.event).map(|r| r.time).collect();
        ev.sort_by(|a, b| a.total_cmp(b));
        ev.dedup();
        let h: Vec<f64> = ev.iter().map(|t| 1e-3 * t).collect();
        baselines.insert((0, f), Baseline::new(ev, h).expect("a valid baseline"));
        cuts.push(FoldCuts { repeat: 0, fold: f, cut_median: 0.0, cut_tertiles: [-0.7, 0.7] });
    }
    ArmInput { name: name.into(), oof, baselines, cuts, curves: Default::default() }
}

fn time_min<T>(runs: usize, f: impl Fn() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..runs {
        let t0 = Instant::now();
        let r = f();
        best = best.min(t0.elapsed().as_secs_f64());
        last = Some(r);
    }
    (best, last.expect("at least one run"))
}

fn main() {
    let threads = rayon::current_num_threads();
    println!("threads available: {threads}");
    println!(
        "{:>6} {:>10} {:>16} {:>16} {:>14} {:>14} {:>10}",
        "n",
        "ibs grid",
        "evaluate 1 thr",
        &format!("evaluate {threads} thr"),
        "ΔC 1 thr",
        &format!("ΔC {threads} thr"),
        "identical"
    );
    for &n in &[198usize, 400, 1000] {
        let a = Prepared::new(&arm("a", n, 0.5, 1)).expect("arm a");
        let b = Prepared::new(&arm("b", n, 2.0, 2)).expect("arm b");
        let horizons = if n >= 400 { vec![1095.0, 1825.0, 3650.0] } else { vec![1095.0, 1825.0] };
        let o = EvalOptions { horizons, bootstrap: 1000, ci: 0.95, seed: 7, groups: GroupMethod::Median };
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
        let (t1, e1) = one.install(|| time_min(3, || evaluate_prepared(&a, &o).expect("evaluate")));
        let (tn, en) = time_min(3, || evaluate_prepared(&a, &o).expect("evaluate"));
        let (c1, d1) = one.install(|| time_min(3, || compare(&a, &b, &o).expect("compare")));
        let (cn, dn) = time_min(3, || compare(&a, &b, &o).expect("compare"));
        println!(
            "{n:>6} {:>10} {:>14.3} s {:>14.3} s {:>12.3} s {:>12.3} s {:>10}",
            e1.ibs_grid.len(),
            t1,
            tn,
            c1,
            cn,
            e1 == en && d1 == dn
        );
    }
}
