//! The orchestrator end to end through the binary: running, caching, failure isolation,
//! fan-out, plan reasons, verify, gc and determinism across directories.
mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;

const CLIN: &str = "patient_id,age,time,event\np1,50,100,1\np2,60,200,0\np3,70,50,1\n";

fn write(dir: &Path, name: &str, s: &str) {
    std::fs::write(dir.join(name), s).unwrap();
}

const SPEC: &str = r#"
name: t
seed: 1
cohort: {clinical: clin.csv, covariates: [age]}
stages:
  ingest: {kind: ingest}
  a: {kind: command, cmd: "echo hello > out.txt"}
  b: {kind: command, needs: [a], cmd: "wc -l < $SPATIA_NEEDS_A/out.txt > count.txt"}
  per: {kind: command, needs: [ingest], foreach: patient, cmd: "grep -c $SPATIA_ITEM $SPATIA_NEEDS_INGEST/cohort.csv > n.txt; echo $SPATIA_ITEM > id.txt"}
  all: {kind: command, needs: [per, b], cmd: "cat $SPATIA_NEEDS_PER/*/id.txt | sort > ids.txt"}
"#;

#[test]
fn run_then_noop_then_fanout_adds_only_new_shard() {
    let d = project();
    write(d.path(), "clin.csv", CLIN);
    write(d.path(), "s.yaml", SPEC);
    let o = spatia(d.path(), &["run", "s.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = summary(&o);
    assert_eq!((s["ran"].as_u64(), s["cached"].as_u64()), (Some(7), Some(0)), "{s}");
    let o = spatia(d.path(), &["run", "s.yaml", "--json"]);
    let s = summary(&o);
    assert_eq!((s["ran"].as_u64(), s["cached"].as_u64()), (Some(0), Some(7)), "{s}");

    // the gather saw every shard
    let run = last_run(d.path());
    let all = run["arms"]["main"]["all"].as_str().unwrap();
    let ids =
        std::fs::read_to_string(d.path().join("cache/entries").join(&all[..2]).join(all).join("out/ids.txt")).unwrap();
    assert_eq!(ids, "p1\np2\np3\n");

    // one more patient: ingest, its shard and the gather run; the other shards are reused
    write(d.path(), "clin.csv", &format!("{CLIN}p4,55,20,1\n"));
    let o = spatia(d.path(), &["plan", "s.yaml", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let torun: Vec<String> = plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| !x["cached"].as_bool().unwrap())
        .map(|x| {
            format!(
                "{}{}",
                x["stage"].as_str().unwrap(),
                x["item"].as_str().map(|i| format!("/{i}")).unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(torun, vec!["ingest", "per/p4", "all"]);
    let o = spatia(d.path(), &["run", "s.yaml", "--json"]);
    let s = summary(&o);
    assert_eq!((s["ran"].as_u64(), s["cached"].as_u64()), (Some(3), Some(5)), "{s}");
}

#[test]
fn plan_names_the_changed_parameter_and_input() {
    let d = project();
    write(d.path(), "in.txt", "one\n");
    write(d.path(), "s.yaml", "name: p\nstages:\n  a: {kind: command, cmd: 'cat $SPATIA_INPUT_0 > o', inputs: [in.txt]}\n  b: {kind: command, cmd: 'echo 1 > o'}\n");
    assert!(spatia(d.path(), &["run", "s.yaml", "-q"]).status.success());
    write(d.path(), "in.txt", "two\n");
    write(d.path(), "s.yaml", "name: p\nstages:\n  a: {kind: command, cmd: 'cat $SPATIA_INPUT_0 > o', inputs: [in.txt]}\n  b: {kind: command, cmd: 'echo 2 > o'}\n");
    let o = spatia(d.path(), &["plan", "s.yaml"]);
    let t = text(&o);
    assert!(t.contains("input file `in.txt` changed"), "{t}");
    assert!(t.contains("parameter `cmd`: \"echo 1 > o\" → \"echo 2 > o\""), "{t}");
    assert!(t.contains("2 of 2 stage(s) to run"), "{t}");
}

#[test]
fn a_failed_stage_stops_its_dependents_only() {
    let d = project();
    write(
        d.path(),
        "s.yaml",
        "name: f\nstages:\n  bad: {kind: command, cmd: 'echo oops >&2; exit 3'}\n  after: {kind: command, needs: [bad], cmd: 'true'}\n  later: {kind: command, needs: [after], cmd: 'true'}\n  good: {kind: command, cmd: 'echo ok > ok.txt'}\n",
    );
    let o = spatia(d.path(), &["run", "s.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("FAILED bad: command exited with status 3"), "{t}");
    assert!(t.contains("skipped after: needs `bad`"), "{t}");
    assert!(t.contains("skipped later: needs `bad` which failed"), "{t}");
    let log = t.lines().find_map(|l| l.trim().strip_prefix("log: ")).expect("log path printed").to_string();
    assert!(std::fs::read_to_string(&log).unwrap().contains("oops"));
    let run = last_run(d.path());
    let st: BTreeMap<String, String> = run["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["stage"].as_str().unwrap().to_string(), n["status"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(st["good"], "miss");
    assert_eq!(st["bad"], "failed");
    assert_eq!(st["later"], "skipped");
    // no entry was published for the failed key
    let bad = run["arms"]["main"]["bad"].as_str().unwrap();
    assert!(!d.path().join("cache/entries").join(&bad[..2]).join(bad).exists());
}

#[test]
fn verify_names_a_tampered_file_and_gc_removes_unreachable_entries() {
    let d = project();
    write(d.path(), "s.yaml", "name: v\nstages:\n  a: {kind: command, cmd: 'echo a > a.txt'}\n  b: {kind: command, needs: [a], cmd: 'echo b > b.txt'}\n");
    assert!(spatia(d.path(), &["run", "s.yaml", "-q"]).status.success());
    let o = spatia(d.path(), &["verify"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = last_run(d.path());
    let a = run["arms"]["main"]["a"].as_str().unwrap().to_string();
    let f = d.path().join("cache/entries").join(&a[..2]).join(&a).join("out/a.txt");
    std::fs::write(&f, "tampered\n").unwrap();
    let o = spatia(d.path(), &["verify"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains(&format!("TAMPERED {a} out/a.txt")), "{}", text(&o));

    // change b: the old b is unreachable from the spec as it is now
    write(d.path(), "s.yaml", "name: v\nstages:\n  a: {kind: command, cmd: 'echo a > a.txt'}\n  b: {kind: command, needs: [a], cmd: 'echo B > b.txt'}\n");
    let old_b = run["arms"]["main"]["b"].as_str().unwrap().to_string();
    let o = spatia(d.path(), &["gc", "--spec", "s.yaml", "--dry-run"]);
    assert!(text(&o).contains(&format!("would remove {old_b}")), "{}", text(&o));
    assert!(!text(&o).contains(&format!("would remove {a}")));
    let o = spatia(d.path(), &["gc", "--spec", "s.yaml"]);
    assert!(o.status.success());
    assert!(!d.path().join("cache/entries").join(&old_b[..2]).join(&old_b).exists());
    assert!(d.path().join("cache/entries").join(&a[..2]).join(&a).exists());
}

#[test]
fn keys_do_not_depend_on_the_directory() {
    let (d1, d2) = (project(), project());
    let mut keys = Vec::new();
    for d in [&d1, &d2] {
        write(d.path(), "clin.csv", CLIN);
        write(d.path(), "s.yaml", SPEC);
        let o = spatia(d.path(), &["run", "s.yaml", "-q", "-j", "1"]);
        assert!(o.status.success(), "{}", text(&o));
        let run = last_run(d.path());
        let mut k: Vec<(String, String)> = run["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["key"].as_str().unwrap().to_string(), n["stage"].as_str().unwrap().to_string()))
            .collect();
        k.sort();
        // and the outputs are the same bytes
        let digests: Vec<String> = k
            .iter()
            .map(|(key, _)| {
                let rec: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(
                        d.path().join("cache/entries").join(&key[..2]).join(key).join("record.json"),
                    )
                    .unwrap(),
                )
                .unwrap();
                rec["output_digest"].as_str().unwrap().to_string()
            })
            .collect();
        keys.push((k, digests));
    }
    assert_eq!(keys[0], keys[1]);
}

#[test]
fn show_prints_the_record_of_a_stage_and_of_a_key() {
    let d = project();
    write(d.path(), "s.yaml", "name: sh\nstages:\n  a: {kind: command, cmd: 'echo a > a.txt'}\n");
    assert!(spatia(d.path(), &["run", "s.yaml", "-q"]).status.success());
    let o = spatia(d.path(), &["show", "a"]);
    assert!(o.status.success(), "{}", text(&o));
    let rec: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rec["kind"], "command");
    assert_eq!(rec["outputs"][0]["path"], "a.txt");
    let key = rec["key"].as_str().unwrap();
    let o = spatia(d.path(), &["show", &key[..10]]);
    let rec2: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rec, rec2);
}

#[test]
fn dag_prints_a_tree_and_dot() {
    let d = project();
    write(d.path(), "clin.csv", CLIN);
    write(d.path(), "s.yaml", &format!("{SPEC}matrix:\n  a.cmd: ['echo x > out.txt', 'echo y > out.txt']\n"));
    let o = spatia(d.path(), &["dag", "s.yaml"]);
    let t = text(&o);
    assert!(t.contains("t (2 arm(s), 10 node(s))"), "{t}");
    assert!(t.contains("per [command] 3 shard(s), 0 cached ← ingest (shared by 2 arms)"), "{t}");
    let o = spatia(d.path(), &["dag", "s.yaml", "--dot"]);
    let t = text(&o);
    assert!(t.starts_with("digraph spatia {"), "{t}");
    assert_eq!(t.matches(" -> ").count(), 3 + 2 * (1 + 4), "{t}");
}

#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    // a DAG printout larger than a pipe's buffer, read by nobody (as `spatia dag s.yaml | head -1`)
    let d = project();
    let mut spec = String::from("name: big\nstages:\n");
    for i in 0..1500 {
        spec.push_str(&format!("  stage_with_a_long_name_{i}: {{kind: command, cmd: 'echo {i} > o.txt'}}\n"));
    }
    write(d.path(), "s.yaml", &spec);
    let mut child = std::process::Command::new(bin())
        .args(["dag", "s.yaml"])
        .current_dir(d.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
