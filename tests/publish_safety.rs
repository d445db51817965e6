//! Publishing through the binary: a `publish:` directory never destroys what Spatia did not
//! create, never leaves the project (symlinks, `..`, ids) and stays complete when runs race.
mod common;
use common::*;
use std::path::Path;
use std::process::Command;

const CLIN: &str = "patient_id,age,time,event\nP1,50,100,1\nP2,60,200,0\n";

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    v.sort();
    v
}

#[test]
fn publish_onto_inputs_cache_runs_or_spec_is_refused_and_nothing_deleted() {
    let d = project();
    let root = d.path();
    write(&root.join("demo-data/clinical.csv"), CLIN);
    let good = "name: t\ncohort: {clinical: demo-data/clinical.csv, covariates: [age]}\nstages:\n  ingest: {kind: ingest}\n  note: {kind: command, inputs: [notes/n.txt], cmd: 'echo hi > hi.txt'}\n";
    write(&root.join("notes/n.txt"), "input");
    write(&root.join("experiments/t.yaml"), good);
    let o = spatia(root, &["run", "experiments/t.yaml", "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    let before = tree(root);
    assert!(before.iter().any(|p| p.starts_with("cache/entries/")), "{before:?}");
    for (stage, target, what) in [
        ("ingest", "demo-data", "the clinical table"),
        ("ingest", "demo-data/clinical.csv", "the clinical table"),
        ("ingest", "cache", "cache directory"),
        ("ingest", "cache/entries", "cache directory"),
        ("ingest", "runs", "run records"),
        ("ingest", "experiments", "the spec"),
        ("ingest", "./experiments/../experiments", "the spec"),
        ("note", "notes", "input `inputs[0]` of stage `note`"),
    ] {
        let spec = good.replace(&format!("{stage}: {{kind:"), &format!("{stage}: {{publish: '{target}', kind:"));
        assert_ne!(spec, good);
        write(&root.join("experiments/t.yaml"), &spec);
        let o = spatia(root, &["run", "experiments/t.yaml", "-q"]);
        let err = text(&o);
        assert_eq!(o.status.code(), Some(2), "publish: {target}: {err}");
        assert!(
            err.contains("experiments/t.yaml:") && err.contains(what) && err.contains("publish directory"),
            "publish: {target}: {err}"
        );
        write(&root.join("experiments/t.yaml"), good);
        assert_eq!(tree(root), before, "publish: {target} changed the project");
    }
    assert_eq!(read(&root.join("demo-data/clinical.csv")), CLIN);
}

#[test]
fn symlink_escaping_the_project_is_refused() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("proj");
    let outside = outer.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    write(&root.join("spatia.toml"), "");
    std::os::unix::fs::symlink(&outside, root.join("linkout")).unwrap();
    write(
        &root.join("s.yaml"),
        "name: t\nstages:\n  a: {kind: command, cmd: 'echo secret > p.txt', publish: linkout/x}\n",
    );
    let o = spatia(&root, &["run", "s.yaml", "-q"]);
    let err = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("s.yaml:3:") && err.contains("outside the project"), "{err}");
    assert!(listing(&outside).is_empty(), "wrote outside the project: {:?}", listing(&outside));
}

#[test]
fn dotdot_alias_of_another_publish_is_refused() {
    let d = project();
    write(
        &d.path().join("s.yaml"),
        "name: t\nstages:\n  a: {kind: command, cmd: 'echo a > a.txt', publish: reports/b}\n  b: {kind: command, cmd: 'echo b > b.txt', publish: reports/a/../b}\n",
    );
    let o = spatia(d.path(), &["run", "s.yaml", "-q"]);
    let err = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("s.yaml:4:") && err.contains("same directory as `reports/b` of stage `a`"), "{err}");
    assert!(!d.path().join("reports").exists());
}

#[test]
fn per_item_ids_never_leave_the_project() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("proj");
    // what `reports/pp/<raw id>` would be for the id below
    let victim = outer.path().join("victim");
    write(&victim.join("keep.txt"), "precious");
    write(&root.join("spatia.toml"), "");
    write(&root.join("clin.csv"), "patient_id,time,event\n../../../victim,10,1\nP2,20,0\n");
    write(
        &root.join("s.yaml"),
        "name: t\ncohort: {clinical: clin.csv}\nstages:\n  per: {kind: command, foreach: patient, cmd: 'echo \"$SPATIA_ITEM\" > id.txt', publish: reports/pp}\n",
    );
    let o = spatia(&root, &["run", "s.yaml", "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(listing(outer.path()), ["proj", "victim"]);
    assert_eq!(listing(&victim), ["keep.txt"]);
    assert_eq!(read(&victim.join("keep.txt")), "precious");
    let pp = root.join("reports/pp");
    let items: Vec<String> = listing(&pp).into_iter().filter(|n| !n.starts_with('.')).collect();
    assert_eq!(items.len(), 2, "{items:?}");
    let ids: Vec<String> = items.iter().map(|i| read(&pp.join(i).join("id.txt"))).collect();
    assert!(ids.contains(&"../../../victim\n".to_string()) && ids.contains(&"P2\n".to_string()), "{ids:?}");
    assert!(items.iter().all(|i| !i.contains('/') && !i.starts_with('.')), "{items:?}");
}

#[test]
fn foreign_directory_is_refused_partial_publish_repaired_legacy_replaced() {
    let d = project();
    let root = d.path();
    write(&root.join("s.yaml"), "name: t\nstages:\n  a: {kind: command, cmd: 'for i in 1 2 3; do echo $i > f$i.txt; done', publish: reports/x}\n");
    // the user's own directory
    write(&root.join("reports/x/notes.txt"), "mine");
    let o = spatia(root, &["run", "s.yaml", "-q"]);
    let err = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("reports/x") && err.contains("not a Spatia publish") && err.contains("move it away"), "{err}");
    assert_eq!(tree(&root.join("reports")), ["x/notes.txt"]);

    // moved away: it publishes
    std::fs::rename(root.join("reports/x"), root.join("mine")).unwrap();
    let o = spatia(root, &["run", "s.yaml", "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(tree(&root.join("reports")), ["x/.spatia-publish.json", "x/f1.txt", "x/f2.txt", "x/f3.txt"]);

    // a partial copy with a valid marker is detected and repaired
    std::fs::remove_file(root.join("reports/x/f2.txt")).unwrap();
    write(&root.join("reports/x/f3.txt"), "damaged");
    let o = spatia(root, &["run", "s.yaml", "-q"]);
    assert!(o.status.success() && text(&o).contains("published it again"), "{}", text(&o));
    assert_eq!(read(&root.join("reports/x/f2.txt")), "2\n");
    assert_eq!(read(&root.join("reports/x/f3.txt")), "3\n");

    // an earlier version's publish (`.spatia-key` stamp) keeps updating
    std::fs::remove_dir_all(root.join("reports/x")).unwrap();
    write(&root.join("reports/x/.spatia-key"), "0000");
    write(&root.join("reports/x/old.txt"), "old");
    let o = spatia(root, &["run", "s.yaml", "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(tree(&root.join("reports")), ["x/.spatia-publish.json", "x/f1.txt", "x/f2.txt", "x/f3.txt"]);
}

#[test]
fn cache_moved_into_a_publish_directory_is_refused() {
    let d = project();
    write(
        &d.path().join("s.yaml"),
        "name: t\nstages:\n  a: {kind: command, cmd: 'echo a > a.txt', publish: reports/x}\n",
    );
    let o = spatia(d.path(), &["run", "s.yaml", "-q", "--cache", "reports/x/cache"]);
    let err = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("contains the cache directory") && err.contains("--cache"), "{err}");
    assert!(d.path().join("reports/x/cache/entries").is_dir(), "the cache was touched");
}

/// Starts `n` runs at once and waits for all; each must succeed.
fn race(root: &Path, specs: &[&str]) {
    let kids: Vec<_> = specs
        .iter()
        .map(|s| {
            Command::new(bin())
                .args(["run", s, "-q"])
                .current_dir(root)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert!(o.status.success(), "a concurrent run failed: {}", String::from_utf8_lossy(&o.stderr));
    }
}

/// The published directory is one complete copy: every file of one letter, and the marker.
fn complete(dir: &Path, n: usize) -> char {
    let files = tree(dir);
    assert_eq!(files.len(), n + 1, "{files:?}");
    assert_eq!(files[0], ".spatia-publish.json");
    let bodies: Vec<String> = files[1..].iter().map(|f| read(&dir.join(f))).collect();
    let first = bodies[0].clone();
    assert!(bodies.iter().all(|b| *b == first), "a mix of two publishes");
    let marker: serde_json::Value = serde_json::from_str(&read(&dir.join(".spatia-publish.json"))).unwrap();
    assert_eq!(marker["files"].as_array().map(|a| a.len()), Some(n));
    first.chars().next().unwrap()
}

#[test]
fn concurrent_runs_publishing_one_target_leave_it_complete() {
    let d = project();
    let root = d.path();
    let n = 150;
    for (name, letter) in [("a.yaml", 'a'), ("b.yaml", 'b')] {
        write(
            &root.join(name),
            &format!("name: {letter}\nstages:\n  s: {{kind: command, cmd: 'for i in $(seq {n}); do echo {letter} > f$i.txt; done', publish: reports/shared}}\n"),
        );
    }
    // one spec, four runs at once on an empty cache
    race(root, &["a.yaml"; 4]);
    assert_eq!(complete(&root.join("reports/shared"), n), 'a');
    // two specs with different results, twice each, three rounds: the last rename wins whole
    for _ in 0..3 {
        race(root, &["a.yaml", "b.yaml", "a.yaml", "b.yaml"]);
        complete(&root.join("reports/shared"), n);
        assert_eq!(listing(&root.join("reports")), ["shared"], "staging left behind");
    }
}
