//! Soak benchmark: `spatia run` of the demo experiment killed with SIGKILL at random moments,
//! again and again, then one full run and `spatia verify`. Not part of `make test`; run with
//! `make soak` (or `cargo bench --bench soak`). Takes 15–30 minutes on 2 cores.
//!
//! What it counts, over `SOAK_KILLS` kills (default 100) delivered while a run was computing:
//! - **resumed**: kills after which the next run that got as far as planning started from
//!   every entry the cache held (its `plan` event counts them all as cached) — out of the kills
//!   that came after at least one completed node (a run killed before it planned, while it
//!   hashed its inputs, passes the check on to the next one);
//! - **lost**: nodes a killed run reported finished (`--json` `finish` events with status
//!   `miss`) whose entry was not in the cache afterwards — completed work thrown away;
//! - **corrupt**: entries `spatia verify` finds differing from their record after a kill, plus
//!   entry directories visible without `record.json`;
//! - at the end, the full run must succeed and every node's output digest must equal that of
//!   an uninterrupted reference run in a separate project (bit-identical results), except the
//!   `report` page, which carries the recorded stage durations (docs/report.md).
//!
//! A run that ends by itself with an error is counted and its stderr printed (a failed run).
//! When a run finishes before its kill moment, the cache is emptied (it is the benchmark's own
//! temporary project) and the soak goes on, so every counted kill hits a run mid-way.
//! Environment: `SOAK_KILLS` (100), `SOAK_PATIENTS` (60, the demo's cohort), `SOAK_SEED` (1).
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_spatia")
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn must(cmd: &mut Command) -> String {
    let o = cmd.output().expect("spawn spatia");
    assert!(
        o.status.success(),
        "{:?} failed: {}{}",
        cmd,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// A project holding the demo spec and a generated cohort.
fn project(patients: u64, cohort: Option<&Path>) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(d.path().join("spatia.toml"), "").unwrap();
    std::fs::create_dir_all(d.path().join("experiments")).unwrap();
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/demo.yaml")).unwrap();
    std::fs::write(d.path().join("experiments/demo.yaml"), spec).unwrap();
    match cohort {
        Some(src) => {
            must(Command::new("cp").arg("-a").arg(src).arg(d.path().join("demo-data")));
        }
        None => {
            must(
                Command::new(bin())
                    .args(["demo", "generate", "--out", "demo-data", "--patients", &patients.to_string()])
                    .current_dir(d.path()),
            );
        }
    }
    d
}

/// key → (kind, output digest) of every entry in a project's cache.
fn digests(dir: &Path) -> BTreeMap<String, (String, String)> {
    let mut m = BTreeMap::new();
    let Ok(shards) = std::fs::read_dir(dir.join("cache/entries")) else { return m };
    for shard in shards.flatten() {
        for e in std::fs::read_dir(shard.path()).into_iter().flatten().flatten() {
            let rec = e.path().join("record.json");
            if let Ok(t) = std::fs::read_to_string(&rec) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) {
                    let (kind, digest) = (v["kind"].as_str().unwrap_or(""), v["output_digest"].as_str().unwrap_or(""));
                    m.insert(e.file_name().to_string_lossy().to_string(), (kind.to_string(), digest.to_string()));
                }
            }
        }
    }
    m
}

fn partial_entries(dir: &Path) -> usize {
    let mut n = 0;
    let Ok(shards) = std::fs::read_dir(dir.join("cache/entries")) else { return 0 };
    for shard in shards.flatten() {
        for e in std::fs::read_dir(shard.path()).into_iter().flatten().flatten() {
            if !e.path().join("record.json").exists() {
                n += 1;
            }
        }
    }
    n
}

fn main() {
    let kills = env_or("SOAK_KILLS", 100);
    let patients = env_or("SOAK_PATIENTS", 60);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(env_or("SOAK_SEED", 1));

    // the uninterrupted reference
    let reference = project(patients, None);
    let t = Instant::now();
    must(Command::new(bin()).args(["run", "experiments/demo.yaml", "-q"]).current_dir(reference.path()));
    let full = t.elapsed().as_secs_f64();
    let want = digests(reference.path());
    println!("soak: reference run of the demo ({patients} patients): {full:.1} s, {} entries", want.len());

    let soak = project(patients, Some(&reference.path().join("demo-data")));
    let (mut delivered, mut resumed, mut lost, mut corrupt, mut finished_early) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut with_work, mut failed_runs) = (0u64, 0u64);
    // entries present after the last kill, which the next run must find cached
    let mut pending: Option<usize> = None;
    let t_soak = Instant::now();
    while delivered < kills {
        let mut child = Command::new(bin())
            .args(["run", "experiments/demo.yaml", "--json"])
            .current_dir(soak.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn spatia run");
        // read plan and finish events on a thread so the pipe never blocks the run
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });
        let reader = std::thread::spawn(move || {
            let (mut done, mut cached) = (Vec::new(), None);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["event"] == "plan" {
                        cached = v["cached"].as_u64();
                    }
                    if v["event"] == "finish" && v["status"] == "miss" {
                        if let Some(k) = v["key"].as_str() {
                            done.push(k.to_string());
                        }
                    }
                }
            }
            (done, cached)
        });
        let at = Duration::from_secs_f64(rng.gen_range(0.05..full.max(0.2)));
        let start = Instant::now();
        let mut exited = false;
        while start.elapsed() < at {
            if child.try_wait().ok().flatten().is_some() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if !exited {
            let _ = child.kill(); // SIGKILL
        }
        let code = child.wait().ok().and_then(|s| s.code());
        let (done, cached) = reader.join().unwrap_or_default();
        let err = err_reader.join().unwrap_or_default();
        if let (Some(want), Some(got)) = (pending, cached) {
            pending = None;
            if got as usize >= want {
                resumed += 1;
            }
        }
        if exited && code != Some(0) {
            // a run that ended by itself with an error after a kill is a defect the soak must show
            failed_runs += 1;
            println!("soak: a run exited with {code:?} before its kill moment: {}", err.trim());
            continue;
        }
        if exited {
            // the run completed before its kill moment: start over from an empty cache
            finished_early += 1;
            let _ = std::fs::remove_dir_all(soak.path().join("cache"));
            let _ = std::fs::remove_dir_all(soak.path().join("runs"));
            continue;
        }
        delivered += 1;
        let after = digests(soak.path());
        lost += done.iter().filter(|k| !after.contains_key(*k)).count() as u64;
        let o = Command::new(bin()).args(["verify", "--json"]).current_dir(soak.path()).output().expect("verify");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
        corrupt += v["tampered"].as_array().map(|a| a.len()).unwrap_or(0) as u64 + partial_entries(soak.path()) as u64;
        if !after.is_empty() && pending.is_none() {
            with_work += 1;
            pending = Some(after.len());
        } else if let Some(p) = pending.as_mut() {
            // the run was killed before it planned: the next one must find at least as much
            *p = (*p).max(after.len());
        }
        if delivered % 10 == 0 {
            println!("soak: {delivered}/{kills} kills, {resumed} of {with_work} resumed, {lost} lost, {corrupt} corrupt ({:.0} s)", t_soak.elapsed().as_secs_f64());
        }
    }
    // the full run after the last kill
    let last = must(Command::new(bin()).args(["run", "experiments/demo.yaml", "--json"]).current_dir(soak.path()));
    let cached = last
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "plan")
        .and_then(|v| v["cached"].as_u64());
    if let (Some(want), Some(got)) = (pending, cached) {
        if got as usize >= want {
            resumed += 1;
        }
    }
    let got = digests(soak.path());
    let o = Command::new(bin()).args(["verify"]).current_dir(soak.path()).output().expect("verify");
    let verify_ok = o.status.success();
    // a `report` page carries its upstream stages' recorded durations (docs/report.md): it is
    // byte-identical over the same cache entries, not over a recomputation, so it is left out
    let compared: Vec<_> = want.iter().filter(|(_, (kind, _))| kind != "report").collect();
    let differing: Vec<_> = compared.iter().filter(|(k, d)| got.get(*k) != Some(d)).collect();
    for (k, (kind, _)) in &differing {
        println!("soak: entry {k} ({kind}) differs from the uninterrupted run");
    }
    let (differing, want) = (differing.len(), compared);
    println!(
        "soak: {kills} kills mid-run ({finished_early} runs finished before their kill moment; each time the cache was emptied): \
         {resumed} of {with_work} resumed, {lost} lost, {corrupt} corrupt, {failed_runs} runs failed; final run + verify: {}; {} of {} entries (the report page aside) differ from the uninterrupted run ({:.0} s)",
        if verify_ok { "ok" } else { "FAILED" },
        differing,
        want.len(),
        t_soak.elapsed().as_secs_f64()
    );
    assert!(
        verify_ok && differing == 0 && lost == 0 && corrupt == 0 && failed_runs == 0 && resumed == with_work,
        "soak found damage"
    );
}
