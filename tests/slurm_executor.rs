//! The Slurm executor on a real Slurm: `scripts/slurm-test.sh` starts a single-node cluster
//! (munged, slurmctld, slurmd) and runs this file with SPATIA_REQUIRE_SLURM=1; `make test`
//! runs that script. Without a Slurm that answers (`sinfo` lists no idle node) each test
//! prints why and passes, unless SPATIA_REQUIRE_SLURM=1: then it fails.
//!
//! The spec is a small one (24 generated patients, H&E + Ki-67, two Cox arms: 125 nodes), so
//! the file takes well under a minute of Slurm time. `sbatch` is called through a wrapper that
//! logs every call, so the counts below are Slurm's, not Spatia's own bookkeeping.
mod common;
use common::{bin, text};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SPEC: &str = "name: small
seed: 7
cohort:
  clinical: data/clinical.csv
  slides: data/slides.csv
  id: patient_id
  time: dmfs_days
  event: dm
  causes: {1: metastasis, 2: death}
  covariates: [age, tumor_size_mm, nodes_positive, grade]
stages:
  ingest: {kind: ingest}
  tiles: {kind: tile, needs: [ingest], mpp: 0.5, size: 256}
  ihc: {kind: stain, needs: [tiles]}
  feats: {kind: extract, needs: [tiles], encoder: handcrafted, slurm: {cpus: 1}}
  model: {kind: train, needs: [feats, ihc], modalities: [HE], folds: 3, repeats: 2}
  eval: {kind: evaluate, needs: [model], horizons: [1095, 1825], bootstrap: 50, reference: modalities=clinical}
  report: {kind: report, needs: [ingest, tiles, ihc, model, eval]}
matrix:
  model.modalities: [[clinical], [HE]]
";

/// The stage kinds of SPEC: one array each when waves are not split.
const KINDS: usize = 7;

/// Whether a Slurm answers here; `false` (after saying why) when the test should pass untested.
fn slurm_or_skip(test: &str) -> bool {
    let require = std::env::var("SPATIA_REQUIRE_SLURM").is_ok_and(|v| v == "1");
    let why = match Command::new("sinfo").args(["-h", "-o", "%T"]).output() {
        Err(e) => format!("cannot run sinfo: {e}"),
        Ok(o) if !o.status.success() => format!("sinfo failed: {}", String::from_utf8_lossy(&o.stderr).trim()),
        Ok(o) => {
            let states = String::from_utf8_lossy(&o.stdout).to_string();
            if states.lines().any(|s| s.starts_with("idle") || s.starts_with("mix") || s.starts_with("alloc")) {
                return true;
            }
            format!("no usable Slurm node (sinfo: {:?})", states.trim())
        }
    };
    assert!(!require, "{test}: SPATIA_REQUIRE_SLURM=1 but {why}; scripts/slurm-test.sh starts a test cluster");
    eprintln!("{test}: skipped: {why} (scripts/slurm-test.sh runs it on a real single-node Slurm)");
    false
}

/// A project with the generated cohort, the spec, `[executor.slurm]` and an `sbatch` wrapper
/// (in `bin/`) that logs each call's arguments, one line per call, to `sbatch.log`.
fn project() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(bin())
        .args(["demo", "generate", "--patients", "24", "--size", "2000", "--out", "data"])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "demo generate: {}", text(&o));
    std::fs::write(d.path().join("small.yaml"), SPEC).unwrap();
    // wave_wait long enough that every wave goes out whole: the sbatch count is exact
    std::fs::write(
        d.path().join("spatia.toml"),
        "[executor.slurm]\npoll = 0.3\noutcome_grace = 3\nwave_wait = 120\ntime = \"10\"\n",
    )
    .unwrap();
    let real = Command::new("sh").args(["-c", "command -v sbatch"]).output().unwrap();
    let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
    assert!(!real.is_empty(), "no sbatch on PATH");
    std::fs::create_dir(d.path().join("bin")).unwrap();
    let w = d.path().join("bin/sbatch");
    std::fs::write(
        &w,
        format!("#!/bin/sh\necho \"$*\" >> '{}/sbatch.log'\nexec '{real}' \"$@\"\n", d.path().display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn head(dir: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(["run", "small.yaml", "--executor", "slurm", "--json", "--cache", "cache-slurm"]).args(extra);
    let path = format!("{}:{}", dir.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    c.env("PATH", path).current_dir(dir);
    c
}

/// Every sbatch call logged: the keys of its manifest.
fn submitted(dir: &Path) -> Vec<Vec<String>> {
    let log = std::fs::read_to_string(dir.join("sbatch.log")).unwrap_or_default();
    log.lines()
        .map(|l| {
            let m = l.split("--manifest '").nth(1).and_then(|r| r.split('\'').next()).unwrap_or_else(|| panic!("{l}"));
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(m).unwrap()).unwrap();
            v["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect()
        })
        .collect()
}

fn run_record(dir: &Path, out: &std::process::Output) -> serde_json::Value {
    let s = common::summary(out);
    let p = dir.join(s["run"].as_str().unwrap());
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// key → (stage, output digest, outputs other than the report page) of every entry of a cache.
fn entries(cache: &Path) -> BTreeMap<String, (String, String, Vec<serde_json::Value>)> {
    let mut m = BTreeMap::new();
    for shard in std::fs::read_dir(cache.join("entries")).unwrap() {
        for e in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let p: PathBuf = e.unwrap().path().join("record.json");
            let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            // the report page shows stage durations and the build (docs/report.md): compare its figures
            let outs = r["outputs"].as_array().unwrap().iter().filter(|o| o["path"] != "index.html").cloned().collect();
            m.insert(
                r["key"].as_str().unwrap().to_string(),
                (r["stage"].as_str().unwrap().to_string(), r["output_digest"].as_str().unwrap().to_string(), outs),
            );
        }
    }
    m
}

#[test]
fn slurm_gives_the_local_keys_and_digests_in_one_array_per_stage_kind() {
    if !slurm_or_skip("slurm_gives_the_local_keys_and_digests_in_one_array_per_stage_kind") {
        return;
    }
    let d = project();
    let local = common::spatia(d.path(), &["run", "small.yaml", "--json", "--cache", "cache-local"]);
    assert!(local.status.success(), "local run: {}", text(&local));
    let slurm = head(d.path(), &[]).output().unwrap();
    assert!(slurm.status.success(), "slurm run: {}", text(&slurm));
    let (lr, sr) = (run_record(d.path(), &local), run_record(d.path(), &slurm));
    let keys = |r: &serde_json::Value| -> BTreeSet<String> {
        r["nodes"].as_array().unwrap().iter().map(|n| n["key"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(keys(&lr), keys(&sr), "the two executors planned different keys");
    assert_eq!(keys(&sr).len(), 125);
    assert!(sr["nodes"].as_array().unwrap().iter().all(|n| n["status"] == "miss"), "{sr}");
    let (le, se) = (entries(&d.path().join("cache-local")), entries(&d.path().join("cache-slurm")));
    assert_eq!(le.len(), 125);
    for (k, (stage, digest, outs)) in &le {
        let (_, sd, so) = se.get(k).unwrap_or_else(|| panic!("key {k} ({stage}) missing from the Slurm cache"));
        if stage == "report" {
            assert_eq!(outs, so, "report figures differ");
        } else {
            assert_eq!(digest, sd, "stage {stage} key {k}: output digests differ");
        }
    }
    // one sbatch --array per stage kind, every key in exactly one array
    let calls = submitted(d.path());
    assert_eq!(calls.len(), KINDS, "sbatch calls: {calls:?}");
    let all: Vec<&String> = calls.iter().flatten().collect();
    let distinct: BTreeSet<&String> = all.iter().copied().collect();
    assert_eq!((all.len(), distinct.len()), (125, 125));
    let log = std::fs::read_to_string(d.path().join("sbatch.log")).unwrap();
    assert!(log.lines().all(|l| l.contains("--array=0-")), "{log}");
    assert!(
        log.contains("--cpus-per-task=1") && log.contains("--time=10"),
        "per-stage and spatia.toml resources: {log}"
    );
    // --json: the local executor's events (a start and a finish per node), plus Slurm's counts
    let events: Vec<serde_json::Value> =
        String::from_utf8_lossy(&slurm.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for ev in ["start", "finish"] {
        assert_eq!(events.iter().filter(|e| e["event"] == ev).count(), 125, "{ev} events");
    }
    assert!(events.iter().any(|e| e["event"] == "slurm" && e["pending"].as_u64().is_some()));
    assert!(events
        .iter()
        .filter(|e| e["event"] == "start")
        .all(|e| e["job"].as_str().is_some_and(|j| j.contains('_'))));
    // logs land in the entries, as with the local executor
    let k = se.keys().next().unwrap();
    assert!(d.path().join("cache-slurm/entries").join(&k[..2]).join(k).join("log.txt").is_file());
    // a second run is all cached and submits nothing
    let again = head(d.path(), &[]).output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(common::summary(&again)["cached"], 125);
    assert_eq!(submitted(d.path()).len(), KINDS);
    let o = common::spatia(d.path(), &["verify", "--cache", "cache-slurm"]);
    assert!(o.status.success(), "verify: {}", text(&o));
}

#[test]
fn a_head_killed_with_sigkill_and_rerun_submits_no_key_twice() {
    if !slurm_or_skip("a_head_killed_with_sigkill_and_rerun_submits_no_key_twice") {
        return;
    }
    let d = project();
    let mut first = head(d.path(), &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // kill it once its second array (the tiles, 48 tasks) is submitted: mid-run
    let t0 = Instant::now();
    while submitted(d.path()).len() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(120), "the head submitted no second array in 120 s");
        assert!(first.try_wait().unwrap().is_none(), "the head ended before its second submission");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap(); // SIGKILL
    let _ = first.wait();
    let before: usize = submitted(d.path()).iter().map(Vec::len).sum();
    let second = head(d.path(), &[]).output().unwrap();
    assert!(second.status.success(), "rerun: {}", text(&second));
    let calls = submitted(d.path());
    let all: Vec<&String> = calls.iter().flatten().collect();
    let distinct: BTreeSet<&String> = all.iter().copied().collect();
    assert_eq!(all.len(), distinct.len(), "a key was submitted twice: {calls:?}");
    assert_eq!(distinct.len(), 125, "every key submitted once in all");
    let r = run_record(d.path(), &second);
    let nodes = r["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 125);
    assert!(nodes.iter().all(|n| ["hit", "miss", "waited"].contains(&n["status"].as_str().unwrap())), "{r}");
    // what the first head submitted was reused (cached) or attached to (waited), never run again by the second
    let second_ran = nodes.iter().filter(|n| n["status"] == "miss").count();
    assert_eq!(second_ran, 125 - before, "the rerun computed {second_ran} node(s), the first head submitted {before}");
    let o = common::spatia(d.path(), &["verify", "--cache", "cache-slurm"]);
    assert!(o.status.success(), "verify: {}", text(&o));
}

/// What needs no Slurm: a bad `slurm:` in a spec is reported at its place, a bad
/// `[executor.slurm]` names the file and key, `slurm:` is in no key, and a machine without
/// the Slurm commands gets a message saying so (exit 2).
#[test]
fn settings_errors_and_a_missing_slurm_are_reported_plainly() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(dir.join("spatia.toml"), "").unwrap();
    let spec = |slurm: &str| {
        format!(
            "name: t\nstages:\n  a: {{kind: command, cmd: \"echo hi > x\"{slurm}}}\n  \
             b: {{kind: command, needs: [a], cmd: \"true\"}}\n"
        )
    };
    std::fs::write(dir.join("bad.yaml"), spec(", slurm: {gpus: 1}")).unwrap();
    let o = common::spatia(dir, &["plan", "bad.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("bad.yaml:3:") && text(&o).contains("gpus"), "{}", text(&o));
    std::fs::write(dir.join("mem.yaml"), spec(", slurm: {mem: 8 GB}")).unwrap();
    let o = common::spatia(dir, &["plan", "mem.yaml"]);
    assert!(text(&o).contains("mem.yaml:3:") && text(&o).contains("`mem`"), "{}", text(&o));
    // resources are in no key
    std::fs::write(dir.join("plain.yaml"), spec("")).unwrap();
    std::fs::write(dir.join("gpu.yaml"), spec(", slurm: {partition: gpu, gres: \"gpu:1\"}")).unwrap();
    let keys = |f: &str| {
        let o = common::spatia(dir, &["plan", f, "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let mut k: Vec<String> =
            v["stages"].as_array().unwrap().iter().map(|n| n["key"].as_str().unwrap().to_string()).collect();
        k.sort();
        k
    };
    let plain = keys("plain.yaml");
    assert_eq!(plain.len(), 2, "keys of plain.yaml");
    assert_eq!(plain, keys("gpu.yaml"), "slurm: changed a key");
    // spatia.toml: file and key named
    std::fs::write(dir.join("spatia.toml"), "[executor.slurm]\nqueue = \"x\"\n").unwrap();
    let o = common::spatia(dir, &["run", "plain.yaml", "--executor", "slurm"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("spatia.toml: [executor.slurm]") && text(&o).contains("queue"), "{}", text(&o));
    // no Slurm commands on PATH
    std::fs::write(dir.join("spatia.toml"), "[executor.slurm]\npartition = \"cpu\"\n").unwrap();
    let o = Command::new(bin())
        .args(["run", "plain.yaml", "--executor", "slurm"])
        .env("PATH", dir.join("no-such-dir"))
        .current_dir(dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cannot run `scontrol`") && text(&o).contains("Slurm"), "{}", text(&o));
    assert!(!dir.join("runs").exists(), "a run record was written although nothing could be submitted");
}

#[test]
fn scancel_of_the_heads_jobs_then_a_rerun_completes() {
    if !slurm_or_skip("scancel_of_the_heads_jobs_then_a_rerun_completes") {
        return;
    }
    let d = project();
    let mut first = head(d.path(), &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    while submitted(d.path()).len() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(120), "the head submitted no second array in 120 s");
        assert!(first.try_wait().unwrap().is_none(), "the head ended before its second submission");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap();
    let _ = first.wait();
    // cancel every array this project submitted, by the job names the manifests give
    for m in std::fs::read_dir(d.path().join("cache-slurm/slurm/manifests")).unwrap() {
        let name = m.unwrap().path().file_stem().unwrap().to_string_lossy().to_string();
        let o = Command::new("scancel").arg(format!("--name=spatia-{name}")).output().unwrap();
        assert!(o.status.success(), "scancel: {}", text(&o));
    }
    let second = head(d.path(), &[]).output().unwrap();
    assert!(second.status.success(), "rerun after scancel: {}", text(&second));
    let r = run_record(d.path(), &second);
    let nodes = r["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 125);
    assert!(nodes.iter().all(|n| ["hit", "miss", "waited"].contains(&n["status"].as_str().unwrap())), "{r}");
    // every node the cancelled arrays did not finish went out again, once; at least one did
    let calls = submitted(d.path());
    let first_keys: BTreeSet<&String> = calls[..2].iter().flatten().collect();
    let count = |k: &String| calls.iter().flatten().filter(|x| *x == k).count();
    let mut again = 0;
    for n in nodes {
        let k = n["key"].as_str().unwrap().to_string();
        let want = match (first_keys.contains(&k), n["status"] == "hit") {
            (true, true) => 1,  // finished before the scancel
            (true, false) => 2, // cancelled, submitted again
            (false, _) => 1,
        };
        assert_eq!(count(&k), want, "key {k} ({}, {}) submitted {} time(s)", n["stage"], n["status"], count(&k));
        again += usize::from(want == 2);
    }
    assert!(again > 0, "nothing was cancelled before it finished: the test did not exercise scancel");
    let o = common::spatia(d.path(), &["verify", "--cache", "cache-slurm"]);
    assert!(o.status.success(), "verify: {}", text(&o));
}

/// A node taken down under running tasks (`scontrol update state=down`): with `--no-requeue`
/// Slurm ends them `NODE_FAIL`; the head resubmits those nodes (bounded) and the run completes.
#[test]
fn tasks_ended_by_a_node_failure_are_resubmitted() {
    if !slurm_or_skip("tasks_ended_by_a_node_failure_are_resubmitted") {
        return;
    }
    let d = project();
    std::fs::write(
        d.path().join("spatia.toml"),
        "[executor.slurm]\npoll = 0.3\noutcome_grace = 2\nwave_wait = 120\nresubmit = 2\n\
         sbatch_args = [\"--no-requeue\"]\n",
    )
    .unwrap();
    let first = head(d.path(), &[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // wait for running tiles tasks (the second array), then take the node down under them
    let t0 = Instant::now();
    let node = loop {
        assert!(t0.elapsed() < Duration::from_secs(120), "no task of the second array ran in 120 s");
        let calls = std::fs::read_to_string(d.path().join("sbatch.log")).unwrap_or_default();
        if calls.lines().count() >= 2 {
            let o = Command::new("squeue").args(["-h", "-r", "-t", "RUNNING", "-o", "%j %N"]).output().unwrap();
            let out = String::from_utf8_lossy(&o.stdout).to_string();
            if let Some(l) = out.lines().find(|l| l.starts_with("spatia-")) {
                break l.split_whitespace().nth(1).unwrap().to_string();
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let o = Command::new("scontrol")
        .args(["update", &format!("nodename={node}"), "state=down", "reason=spatia-test"])
        .output()
        .unwrap();
    assert!(o.status.success(), "scontrol down: {}", text(&o));
    // back up (ReturnToService=2 may already have done it: then resume is refused)
    let t1 = Instant::now();
    loop {
        let _ = Command::new("scontrol").args(["update", &format!("nodename={node}"), "state=resume"]).output();
        let s = Command::new("sinfo").args(["-h", "-n", &node, "-o", "%T"]).output().unwrap();
        let s = String::from_utf8_lossy(&s.stdout).to_string();
        if ["idle", "mix", "alloc"].iter().any(|x| s.starts_with(x)) {
            break;
        }
        assert!(t1.elapsed() < Duration::from_secs(60), "node {node} not back after 60 s: {s}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "the run did not complete after the node failure: {}", text(&out));
    let warnings: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "warning")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        warnings.iter().any(|w| w.contains("ended NODE_FAIL") && w.contains("resubmitting it (1 of at most 2)")),
        "no NODE_FAIL resubmission: {warnings:?}"
    );
    let r = run_record(d.path(), &out);
    assert!(r["nodes"].as_array().unwrap().iter().all(|n| n["status"] == "miss"), "{r}");
    // each resubmitted key went out twice at most (once more per NODE_FAIL), the rest once
    let calls = submitted(d.path());
    let mut per_key: BTreeMap<&String, usize> = BTreeMap::new();
    for k in calls.iter().flatten() {
        *per_key.entry(k).or_default() += 1;
    }
    assert_eq!(per_key.len(), 125);
    let resubmitted = per_key.values().filter(|&&c| c > 1).count();
    assert!(resubmitted >= 1 && per_key.values().all(|&c| c <= 3), "{per_key:?}");
    let o = common::spatia(d.path(), &["verify", "--cache", "cache-slurm"]);
    assert!(o.status.success(), "verify: {}", text(&o));
}

/// `sbatch` refusing every array (here a fake one, as a submit limit would) with nothing in
/// flight: after a few tries the nodes fail with sbatch's message, their dependents are
/// skipped, and the run ends with exit 1 — no hang, no panic. Needs no Slurm.
#[test]
fn an_sbatch_that_keeps_refusing_fails_the_nodes_with_its_message() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(dir.join("spatia.toml"), "[executor.slurm]\npoll = 0.1\n").unwrap();
    std::fs::write(
        dir.join("s.yaml"),
        "name: t\nstages:\n  a: {kind: command, cmd: \"echo hi > x\"}\n  \
         b: {kind: command, needs: [a], cmd: \"true\"}\n",
    )
    .unwrap();
    let bin_dir = dir.join("fake");
    std::fs::create_dir(&bin_dir).unwrap();
    for (name, body) in [
        ("scontrol", "echo 'MaxArraySize            = 1001'"),
        ("squeue", "exit 0"),
        ("sbatch", "echo 'sbatch: error: QOSMaxSubmitJobPerUserLimit' >&2; exit 1"),
    ] {
        let p = bin_dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let o = Command::new(bin())
        .args(["run", "s.yaml", "--executor", "slurm"])
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .current_dir(dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("FAILED a") && t.contains("QOSMaxSubmitJobPerUserLimit") && t.contains("3 tries"), "{t}");
    assert!(t.contains("skipped b"), "{t}");
}
