//! `cargo bench --bench calibrate`: the `calibrate` stage's library on synthetic cross-validated
//! predictions (seeded ChaCha8), against the survival library's `calibration` on the same pooled
//! predicted survival (what `spatia survival calibration` runs) as the in-process baseline.
//!
//! Data: `n` patients, 5 outer folds, 5 inner folds per outer fold, risk ~ U(−1.5, 1.5),
//! exponential event times with hazard `e^{risk}/2000`, uniform censoring on [0, 4000] rounded to
//! whole days; each fold baseline (outer and its inner ones alike) has one point per day up to
//! 4000, scaled by 1 + 0.05·fold (mildly mis-calibrated folds). Horizon 1825,
//! 10 bins. Each figure is the minimum wall time over the runs (the machine is shared).
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spatia::contracts::oof::{InnerOofRow, OofRow};
use spatia::model::calibrate::{self as cal, Baseline, CalibrateOptions};
use std::collections::BTreeMap;
use std::time::Instant;

fn min_time<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(v);
    }
    (best, out.expect("at least one run"))
}

type Fixture =
    (Vec<OofRow>, BTreeMap<(usize, usize), Baseline>, Vec<InnerOofRow>, BTreeMap<(usize, usize, usize), Baseline>);

fn fixture(n: usize, seed: u64) -> Fixture {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k = 5;
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let risk: f64 = rng.gen_range(-1.5..1.5);
        let u: f64 = rng.gen_range(1e-12..1.0);
        let t = -u.ln() / (risk.exp() / 2000.0);
        let c: f64 = rng.gen_range(0.0..4000.0);
        rows.push(OofRow {
            repeat: 0,
            fold: i % k,
            patient: format!("P{i}"),
            risk,
            time: t.min(c).round().max(1.0),
            event: t <= c,
        });
    }
    let curve = |scale: f64| {
        let times: Vec<f64> = (1..=4000).map(|d| d as f64).collect();
        let h: Vec<f64> = times.iter().map(|t| scale * t / 2000.0).collect();
        Baseline::new(times, h).expect("valid baseline")
    };
    let mut bl = BTreeMap::new();
    let mut ibl = BTreeMap::new();
    let mut inner = Vec::new();
    for f in 0..k {
        bl.insert((0, f), curve(1.0 + 0.05 * f as f64));
        for (pos, r) in rows.iter().filter(|r| r.fold != f).enumerate() {
            inner.push(InnerOofRow {
                repeat: 0,
                outer_fold: f,
                inner_fold: pos % k,
                patient: r.patient.clone(),
                risk: r.risk,
                time: r.time,
                event: r.event,
            });
        }
        for g in 0..k {
            ibl.insert((0, f, g), curve(1.0 + 0.05 * f as f64));
        }
    }
    (rows, bl, inner, ibl)
}

fn main() {
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let opts = CalibrateOptions { horizon: 1825.0, bins: 10, level: 0.95 };
    println!("calibrate bench: min wall time over runs; ratio = / survival::calibration on the same pooled S(h)");
    for &n in &[2_000usize, 20_000, 100_000] {
        if let Some(f) = &filter {
            if n.to_string() != *f {
                continue;
            }
        }
        let runs = if n >= 100_000 { 3 } else { 7 };
        let (rows, bl, inner, ibl) = fixture(n, 7);
        let surv = cal::predicted_survival(&rows, &bl, opts.horizon).expect("survival");
        let time: Vec<f64> = rows.iter().map(|r| r.time).collect();
        let event: Vec<bool> = rows.iter().map(|r| r.event).collect();
        let (t_lib, lib) = min_time(runs, || {
            spatia::survival::calibration(&time, &event, &surv, opts.horizon, opts.bins).expect("library calibration")
        });
        let (t_cal, c) = min_time(runs, || cal::calibrate(&rows, &bl, &opts).expect("calibrate"));
        assert_eq!(c.slope, lib.slope);
        let (t_rec, r) = min_time(runs, || cal::recalibrate(&rows, &bl, &inner, &ibl, &opts).expect("recalibrate"));
        println!(
            "n = {n:>7}: survival::calibration {:>8.2} ms | calibrate {:>8.2} ms (×{:.2}) | recalibrate (5 inner Cox fits + calibration after) {:>8.2} ms (×{:.2}) | slope {:.3} → {:.3}",
            t_lib * 1e3,
            t_cal * 1e3,
            t_cal / t_lib,
            t_rec * 1e3,
            t_rec / t_lib,
            c.slope,
            r.summary.slope
        );
    }
}
