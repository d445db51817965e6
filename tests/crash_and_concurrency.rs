//! Robustness of the cache: `spatia run` SIGKILLed at random points never leaves a partial
//! entry visible and loses no completed work; two and four concurrent runs of one spec or of
//! overlapping specs all succeed, each with its own journal, and compute every key once.
mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A spec of chains and fan-in whose stages take a little time and write a few files.
fn spec(n_chains: usize, len: usize) -> String {
    let mut s = String::from("name: crash\nstages:\n");
    for c in 0..n_chains {
        for i in 0..len {
            let needs = if i == 0 { String::new() } else { format!(", needs: [c{c}s{}]", i - 1) };
            s.push_str(&format!(
                "  c{c}s{i}: {{kind: command{needs}, cmd: 'echo $PPID-$$ >> \"$SPATIA_ROOT/calls.log\"; sleep 0.05; seq 1 {} > a.txt; mkdir -p sub; echo c{c}s{i} > sub/b.txt'}}\n",
                2000 + 100 * i
            ));
        }
    }
    let last: Vec<String> = (0..n_chains).map(|c| format!("c{c}s{}", len - 1)).collect();
    s.push_str(&format!(
        "  join: {{kind: command, needs: [{}], cmd: 'cat $SPATIA_NEEDS_C0S{}/sub/b.txt > j.txt'}}\n",
        last.join(", "),
        len - 1
    ));
    s
}

/// Every visible entry is complete and matches its record.
fn assert_no_partial_entry(dir: &Path) {
    if let Ok(shards) = std::fs::read_dir(dir.join("cache/entries")) {
        for shard in shards {
            for e in std::fs::read_dir(shard.unwrap().path()).unwrap() {
                let e = e.unwrap().path();
                assert!(e.join("record.json").exists(), "partial entry visible: {}", e.display());
            }
        }
    }
    let o = spatia(dir, &["verify"]);
    assert!(o.status.success(), "verify failed after a kill: {}", text(&o));
}

fn keys_and_digests(dir: &Path) -> Vec<(String, String)> {
    let run = last_run(dir);
    let mut v: Vec<(String, String)> = run["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let k = n["key"].as_str().unwrap().to_string();
            let rec: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join("cache/entries").join(&k[..2]).join(&k).join("record.json")).unwrap(),
            )
            .unwrap();
            (k, rec["output_digest"].as_str().unwrap().to_string())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn sigkill_at_random_points_never_corrupts_the_cache() {
    let yaml = spec(4, 6);
    let clean = project();
    std::fs::write(clean.path().join("s.yaml"), &yaml).unwrap();
    let o = spatia(clean.path(), &["run", "s.yaml", "-q", "-j", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    let want = keys_and_digests(clean.path());

    let d = project();
    std::fs::write(d.path().join("s.yaml"), &yaml).unwrap();
    let mut rng: u64 = 0x9e3779b97f4a7c15;
    let mut entries_before = 0usize;
    for round in 0..20 {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = 20 + (rng >> 33) % 250; // ms
        let mut child = Command::new(bin())
            .args(["run", "s.yaml", "-q", "-j", "2"])
            .current_dir(d.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_no_partial_entry(d.path());
        let now = std::fs::read_dir(d.path().join("cache/entries"))
            .map(|r| r.flat_map(|s| std::fs::read_dir(s.unwrap().path()).unwrap()).count())
            .unwrap_or(0);
        assert!(now >= entries_before, "round {round}: entries went from {entries_before} to {now}");
        entries_before = now;
    }
    // completed stages are reused, and the end result equals a clean run's
    let o = spatia(d.path(), &["run", "s.yaml", "--json", "-j", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = summary(&o);
    assert_eq!(s["cached"].as_u64().unwrap() as usize, entries_before.min(25), "{s}");
    assert_eq!(keys_and_digests(d.path()), want);
}

#[test]
fn two_concurrent_runs_compute_every_key_once() {
    two_concurrent_runs(false);
}

/// The same with the lock files a cache uses where flock is not supported (`SPATIA_LOCKS=file`;
/// src/cache/lockfile.rs): still once per key, and no lock file left behind.
#[test]
fn two_concurrent_runs_with_lock_files_compute_every_key_once() {
    let d = two_concurrent_runs(true);
    let left: Vec<_> = std::fs::read_dir(d.path().join("cache/locks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".excl"))
        .collect();
    assert!(left.is_empty(), "lock files left: {left:?}");
    assert!(!d.path().join("cache/gc.lock.excl").exists());
}

fn two_concurrent_runs(lock_files: bool) -> tempfile::TempDir {
    let d = project();
    let mut yaml = String::from("name: conc\nstages:\n");
    for i in 0..12 {
        let needs = if i >= 4 { format!(", needs: [s{}]", i - 4) } else { String::new() };
        yaml.push_str(&format!("  s{i}: {{kind: command{needs}, cmd: 'echo s{i} >> \"$SPATIA_ROOT/calls.log\"; sleep 0.1; echo {i} > o.txt'}}\n"));
    }
    std::fs::write(d.path().join("s.yaml"), &yaml).unwrap();
    let spawn = || {
        Command::new(bin())
            .args(["run", "s.yaml", "--json", "-j", "2"])
            .env("SPATIA_LOCKS", if lock_files { "file" } else { "flock" })
            .current_dir(d.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(oa.status.success(), "{}", text(&oa));
    assert!(ob.status.success(), "{}", text(&ob));
    let calls = std::fs::read_to_string(d.path().join("calls.log")).unwrap();
    let mut lines: Vec<&str> = calls.lines().collect();
    lines.sort();
    let n = lines.len();
    lines.dedup();
    assert_eq!(n, 12, "some key was computed twice:\n{calls}");
    assert_eq!(lines.len(), 12);
    let (sa, sb) = (summary(&oa), summary(&ob));
    let ran = sa["ran"].as_u64().unwrap() + sb["ran"].as_u64().unwrap();
    assert_eq!(ran, 12, "{sa} {sb}");
    d
}

/// Spawns `n` `spatia run <spec> --json` at once in `dir`; returns their outputs.
fn run_concurrently(dir: &Path, specs: &[&str]) -> Vec<std::process::Output> {
    let children: Vec<_> = specs
        .iter()
        .map(|s| {
            Command::new(bin())
                .args(["run", s, "--json", "-j", "3"])
                .current_dir(dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children.into_iter().map(|c| c.wait_with_output().unwrap()).collect()
}

/// Stage `s<i>` of a chain family: same name and command in every spec, so equal keys.
fn chain_stage(i: usize) -> String {
    let needs = if i >= 3 { format!(", needs: [s{}]", i - 3) } else { String::new() };
    format!("  s{i}: {{kind: command{needs}, cmd: 'echo s{i} >> \"$SPATIA_ROOT/calls.log\"; sleep 0.05; seq 1 {} > o.txt; mkdir -p d; echo {i} > d/x.txt'}}\n", 500 + i)
}

fn assert_each_once(dir: &Path, expect: usize) {
    let calls = std::fs::read_to_string(dir.join("calls.log")).unwrap();
    let mut lines: Vec<&str> = calls.lines().collect();
    let n = lines.len();
    lines.sort();
    lines.dedup();
    assert_eq!((n, lines.len()), (expect, expect), "some key was computed twice:\n{calls}");
}

#[test]
fn four_concurrent_runs_of_one_spec_all_succeed_with_their_own_journal() {
    let d = project();
    let mut yaml = String::from("name: same\nstages:\n");
    for i in 0..12 {
        yaml.push_str(&chain_stage(i));
    }
    std::fs::write(d.path().join("s.yaml"), &yaml).unwrap();
    let outs = run_concurrently(d.path(), &["s.yaml"; 4]);
    let mut ran = 0;
    let mut journals = std::collections::BTreeSet::new();
    for o in &outs {
        assert!(o.status.success(), "{}", text(o));
        let s = summary(o);
        assert_eq!(s["ok"], true, "{s}");
        ran += s["ran"].as_u64().unwrap();
        let run: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.path().join(s["run"].as_str().unwrap())).unwrap()).unwrap();
        assert_eq!(run["status"], "ok", "{run}");
        journals.insert(s["run"].as_str().unwrap().to_string());
    }
    assert_eq!(journals.len(), 4, "runs shared a journal: {journals:?}");
    assert_eq!(ran, 12);
    assert_each_once(d.path(), 12);
    assert_no_partial_entry(d.path());
}

#[test]
fn four_concurrent_runs_of_overlapping_specs_compute_each_key_once() {
    let d = project();
    // a: s0..s8, c and e: s0..s11, d: s0..s5 — every key is planned by two to four runs
    let make = |name: &str, range: std::ops::Range<usize>| {
        let mut y = format!("name: {name}\nstages:\n");
        for i in range {
            y.push_str(&chain_stage(i));
        }
        y
    };
    std::fs::write(d.path().join("a.yaml"), make("a", 0..9)).unwrap();
    std::fs::write(d.path().join("c.yaml"), make("c", 0..12)).unwrap();
    std::fs::write(d.path().join("d.yaml"), make("d", 0..6)).unwrap();
    std::fs::write(d.path().join("e.yaml"), make("e", 0..12)).unwrap();
    let outs = run_concurrently(d.path(), &["a.yaml", "c.yaml", "d.yaml", "e.yaml"]);
    let mut ran = 0;
    for o in &outs {
        assert!(o.status.success(), "{}", text(o));
        ran += summary(o)["ran"].as_u64().unwrap();
    }
    // 12 distinct keys in all (the stage name is not in the key; equal commands and needs are)
    assert_eq!(ran, 12);
    assert_each_once(d.path(), 12);
    assert_no_partial_entry(d.path());
}
