//! Run journals, signals and gc through the binary: a run's `run.json` exists from the start
//! (`running`, pid, host, planned keys) and ends `ok`; SIGTERM and SIGINT end a run as
//! `interrupted` with a line on stderr and exit 143 / 130; a SIGKILLed run reads as `killed`;
//! gc keeps what a live, interrupted or killed run holds (unless `--include-interrupted`).
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `a` is quick; `slow` needs it and sleeps `secs` (after noting it started).
fn spec(secs: u32) -> String {
    format!(
        "name: j\nstages:\n  a: {{kind: command, cmd: 'echo a > a.txt'}}\n  slow: {{kind: command, needs: [a], cmd: 'touch \"$SPATIA_ROOT/slow.started\"; sleep {secs}; echo s > s.txt'}}\n  after: {{kind: command, needs: [slow], cmd: 'echo x > x.txt'}}\n"
    )
}

fn spawn_run(dir: &Path) -> Child {
    Command::new(bin())
        .args(["run", "s.yaml", "-q"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn journal_file(dir: &Path) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("runs"))
        .ok()?
        .map(|e| e.unwrap().path().join("run.json"))
        .filter(|p| p.exists())
        .collect();
    v.sort();
    v.pop()
}

fn journal(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(journal_file(dir).unwrap()).unwrap()).unwrap()
}

fn entry(dir: &Path, key: &str) -> PathBuf {
    dir.join("cache/entries").join(&key[..2]).join(key)
}

/// Starts a run of `spec(secs)` and waits until `slow` is running (so `a` is in the cache).
fn start_until_slow(dir: &Path, secs: u32) -> Child {
    std::fs::write(dir.join("s.yaml"), spec(secs)).unwrap();
    let child = spawn_run(dir);
    wait_for("the slow stage", || dir.join("slow.started").exists());
    child
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a child we spawned and have not reaped
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

#[test]
fn journal_says_running_with_pid_and_plan_then_ok() {
    let d = project();
    let child = start_until_slow(d.path(), 1);
    let j = journal(d.path());
    assert_eq!(j["schema_version"], 2);
    assert_eq!(j["status"], "running", "{j}");
    assert_eq!(j["pid"].as_u64(), Some(child.id() as u64));
    assert!(!j["host"].as_str().unwrap().is_empty());
    assert_eq!(j["nodes"].as_array().unwrap().len(), 3, "every planned node is in the journal: {j}");
    assert!(j["arms"]["main"]["after"].as_str().is_some_and(|k| k.len() == 64), "{j}");
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let j = journal(d.path());
    assert_eq!(j["status"], "ok", "{j}");
    assert!(j["nodes"].as_array().unwrap().iter().all(|n| n["status"] == "miss"), "{j}");
    assert!(!j["finished"].as_str().unwrap().is_empty());
    let o = spatia(d.path(), &["times", "--json"]);
    let t: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(t["status"], "ok");
}

fn interrupted_by(sig: i32, name: &str, code: i32) {
    let d = project();
    let child = start_until_slow(d.path(), 20);
    let t = Instant::now();
    signal(&child, sig);
    let o = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "the run did not stop promptly");
    assert_eq!(o.status.code(), Some(code), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("interrupted by {name}")) && err.contains("marked interrupted"), "{err}");
    let j = journal(d.path());
    assert_eq!(j["status"], "interrupted", "{j}");
    assert_eq!(j["stopped_by"], name);
    let st: Vec<&str> = j["nodes"].as_array().unwrap().iter().map(|n| n["status"].as_str().unwrap()).collect();
    assert_eq!(st, ["miss", "pending", "pending"], "{j}");
    // the interrupted run protects what it did
    let a = j["arms"]["main"]["a"].as_str().unwrap().to_string();
    let o = spatia(d.path(), &["gc"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("removed 0 entries"), "{}", text(&o));
    assert!(entry(d.path(), &a).join("record.json").exists());
    // the stage's command was stopped too: a rerun computes `slow` itself, nothing is in the way
    std::fs::write(d.path().join("s.yaml"), spec(0)).unwrap();
    let o = spatia(d.path(), &["run", "s.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(summary(&o)["cached"], 1);
}

#[test]
fn sigterm_marks_the_journal_interrupted_and_exits_143() {
    interrupted_by(libc::SIGTERM, "SIGTERM", 143);
}

#[test]
fn sigint_marks_the_journal_interrupted_and_exits_130() {
    interrupted_by(libc::SIGINT, "SIGINT", 130);
}

#[test]
fn a_killed_run_reads_as_killed_and_gc_keeps_its_entries_unless_asked() {
    let d = project();
    let mut child = start_until_slow(d.path(), 3);
    // an entry no run knows about: gc may remove it
    std::fs::write(d.path().join("o.yaml"), "name: other\nstages:\n  z: {kind: command, cmd: 'echo z > z.txt'}\n")
        .unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let j = journal(d.path());
    assert_eq!(j["status"], "running", "a SIGKILLed run cannot say more: {j}");
    let a = j["arms"]["main"]["a"].as_str().unwrap().to_string();
    let o = spatia(d.path(), &["times"]);
    assert!(text(&o).contains("killed"), "{}", text(&o));
    let o = spatia(d.path(), &["gc"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("removed 0 entries") && text(&o).contains("interrupted or killed"), "{}", text(&o));
    assert!(entry(d.path(), &a).join("record.json").exists());
    let o = spatia(d.path(), &["gc", "--include-interrupted"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(&format!("removed {a}")), "{}", text(&o));
    assert!(!entry(d.path(), &a).exists());
}

#[test]
fn gc_during_a_live_run_keeps_its_entries() {
    let d = project();
    // an older, finished run of another spec whose entry gc may remove once its record goes
    std::fs::write(d.path().join("o.yaml"), "name: other\nstages:\n  z: {kind: command, cmd: 'echo z > z.txt'}\n")
        .unwrap();
    assert!(spatia(d.path(), &["run", "o.yaml", "-q"]).status.success());
    let z = journal(d.path())["arms"]["main"]["z"].as_str().unwrap().to_string();
    std::fs::remove_dir_all(journal_file(d.path()).unwrap().parent().unwrap()).unwrap();
    let child = start_until_slow(d.path(), 2);
    let j = journal(d.path());
    let a = j["arms"]["main"]["a"].as_str().unwrap().to_string();
    let o = spatia(d.path(), &["gc"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("1 live run"), "{t}");
    assert!(t.contains(&format!("removed {z}")), "{t}");
    assert!(entry(d.path(), &a).join("record.json").exists(), "gc removed a live run's entry: {t}");
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(journal(d.path())["status"], "ok");
    let o = spatia(d.path(), &["verify"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_schema_1_record_is_still_read_and_a_future_one_refused() {
    let d = project();
    std::fs::write(d.path().join("s.yaml"), "name: old\nstages:\n  a: {kind: command, cmd: 'echo a > a.txt'}\n")
        .unwrap();
    assert!(spatia(d.path(), &["run", "s.yaml", "-q"]).status.success());
    let f = journal_file(d.path()).unwrap();
    let mut j = journal(d.path());
    let a = j["arms"]["main"]["a"].as_str().unwrap().to_string();
    // what spatia wrote before journals: no status, pid, updated
    let o = j.as_object_mut().unwrap();
    for k in ["status", "pid", "pid_start", "updated", "stopped_by"] {
        o.remove(k);
    }
    o.insert("schema_version".into(), 1.into());
    std::fs::write(&f, serde_json::to_string(&j).unwrap()).unwrap();
    let o = spatia(d.path(), &["times"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = spatia(d.path(), &["show", "a"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = spatia(d.path(), &["gc"]);
    assert!(text(&o).contains("removed 0 entries"), "{}", text(&o));
    assert!(entry(d.path(), &a).exists());
    j["schema_version"] = 9.into();
    std::fs::write(&f, serde_json::to_string(&j).unwrap()).unwrap();
    let o = spatia(d.path(), &["gc"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("run record schema 9") && text(&o).contains("run.json"), "{}", text(&o));
    assert!(entry(d.path(), &a).exists());
}

#[test]
fn gc_removes_temporary_directories_of_dead_processes_only() {
    let d = project();
    let tmp = d.path().join("cache/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let host: String = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .collect();
    // a pid that cannot exist (above pid_max), ours (alive), and a dead pid of another host
    let dead = tmp.join(format!(".k.{host}.4294967295.0.tmp"));
    let live = tmp.join(format!(".k.{host}.{}.0.tmp", std::process::id()));
    let other = tmp.join(".k.elsewhere.example.4294967295.0.tmp");
    for p in [&dead, &live, &other] {
        std::fs::create_dir_all(p.join("out")).unwrap();
    }
    let o = spatia(d.path(), &["gc"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!dead.exists());
    assert!(live.exists() && other.exists());
}
