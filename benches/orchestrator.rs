//! Orchestrator benchmarks (run with `cargo bench --bench orchestrator [NAME]`, NAME one of
//! `noop-1k`, `noop-10k`, `hash`, or a part of them such as `noop`):
//! 1. no-op re-run of a fully cached generated spec of 1,000 and 10,000 `command` stages
//!    (chains with fan-out and fan-in), wall time of the whole `spatia run` process; with
//!    `SPATIA_BENCH_BASELINE=<another spatia binary>` also 21 runs alternating with that build;
//! 2. hashing a 1 GiB file: `spatia hash` vs `b3sum` (when on PATH) in the same process, and a
//!    second `spatia hash --cached` of the unchanged file (which must not read it).
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_spatia")
}

/// Groups of 10 stages: a chain of 5, a fan-out of 4 from the chain's end, a join.
fn spec(n: usize) -> String {
    let mut s = String::from("name: bench\nstages:\n");
    for g in 0..n / 10 {
        for i in 0..5 {
            let needs = if i > 0 {
                format!(", needs: [g{g}c{}]", i - 1)
            } else if g > 0 {
                format!(", needs: [g{}j]", g - 1)
            } else {
                String::new()
            };
            s.push_str(&format!("  g{g}c{i}: {{kind: command{needs}, cmd: 'echo {g}.{i} > o'}}\n"));
        }
        for f in 0..4 {
            s.push_str(&format!("  g{g}f{f}: {{kind: command, needs: [g{g}c4], cmd: 'echo {f} > o'}}\n"));
        }
        s.push_str(&format!(
            "  g{g}j: {{kind: command, needs: [g{g}f0, g{g}f1, g{g}f2, g{g}f3], cmd: 'echo j > o'}}\n"
        ));
    }
    s
}

fn wall(cmd: &mut Command) -> f64 {
    let t = Instant::now();
    let o = cmd.output().expect("spawn");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn noop(n: usize) {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("spatia.toml"), "").unwrap();
    std::fs::write(d.path().join("s.yaml"), spec(n)).unwrap();
    let t = Instant::now();
    let o = Command::new(bin()).args(["run", "s.yaml", "-q"]).current_dir(d.path()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let populate = t.elapsed().as_secs_f64();
    if let Some(base) = std::env::var_os("SPATIA_BENCH_BASELINE") {
        // the same no-op re-run by another build (its cache entries are the same), alternating
        // with this one so both see the same load
        let run = |b: &std::ffi::OsStr| wall(Command::new(b).args(["run", "s.yaml", "-q"]).current_dir(d.path()));
        let (mut theirs, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..21 {
            theirs.push(run(base.as_os_str()));
            ours.push(run(std::ffi::OsStr::new(bin())));
        }
        let (t, o) = (median(theirs), median(ours));
        println!(
            "noop n={n:>6}: 21 alternating runs: this build {:.1} ms, baseline {} {:.1} ms (medians), ratio {:.2}",
            o * 1e3,
            base.to_string_lossy(),
            t * 1e3,
            o / t
        );
    }
    let runs: Vec<f64> =
        (0..7).map(|_| wall(Command::new(bin()).args(["run", "s.yaml", "-q"]).current_dir(d.path()))).collect();
    let plans: Vec<f64> =
        (0..5).map(|_| wall(Command::new(bin()).args(["plan", "s.yaml", "--json"]).current_dir(d.path()))).collect();
    let spawn: Vec<f64> = (0..7).map(|_| wall(Command::new(bin()).arg("--version"))).collect();
    println!(
        "noop n={n:>6}: spatia run (all cached) median {:>7.1} ms, min {:>7.1} ms | plan {:>7.1} ms | process start (spatia --version) {:.1} ms | first run {populate:.1} s",
        median(runs.clone()) * 1e3,
        runs.iter().cloned().fold(f64::INFINITY, f64::min) * 1e3,
        median(plans) * 1e3,
        median(spawn) * 1e3
    );
}

fn hashing() {
    let dir = std::env::var("SPATIA_BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    let f = Path::new(&dir).join("spatia-bench-1GiB.bin");
    if std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0) != 1 << 30 {
        let mut data = vec![0u8; 1 << 20];
        let mut x: u64 = 1;
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&f).unwrap());
        for _ in 0..1024 {
            for b in data.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            w.write_all(&data).unwrap();
        }
    }
    // warm the page cache once so both tools read from memory
    let _ = wall(Command::new(bin()).arg("hash").arg(&f));
    let ours: Vec<f64> = (0..5).map(|_| wall(Command::new(bin()).arg("hash").arg(&f))).collect();
    let b3 = Command::new("b3sum").arg("--version").output().is_ok();
    let theirs: Vec<f64> = if b3 { (0..5).map(|_| wall(Command::new("b3sum").arg(&f))).collect() } else { vec![] };
    let proj = tempfile::tempdir().unwrap();
    std::fs::write(proj.path().join("spatia.toml"), "").unwrap();
    let first = wall(Command::new(bin()).args(["hash", "--cached"]).arg(&f).current_dir(proj.path()));
    let second = median(
        (0..5).map(|_| wall(Command::new(bin()).args(["hash", "--cached"]).arg(&f).current_dir(proj.path()))).collect(),
    );
    let (m, gib) = (median(ours), 1.0);
    print!("hash 1 GiB: spatia {:.3} s ({:.2} GiB/s)", m, gib / m);
    if b3 {
        let t = median(theirs);
        print!(" | b3sum {:.3} s ({:.2} GiB/s) | spatia/b3sum throughput {:.2}", t, gib / t, t / m);
    } else {
        print!(" | b3sum not on PATH (cargo install b3sum)");
    }
    println!(" | --cached first {:.3} s, unchanged re-run {:.1} ms", first, second * 1e3);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let only = |name: &str| args.iter().skip(1).filter(|a| !a.starts_with('-')).all(|a| name.contains(a.as_str()));
    if only("noop-1k") {
        noop(1_000);
    }
    if only("noop-10k") {
        noop(10_000);
    }
    if only("hash") {
        hashing();
    }
}
