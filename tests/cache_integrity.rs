//! Cache integrity through the binary: an entry whose output bytes changed is noticed on
//! reuse, quarantined (not deleted) and recomputed with what depends on it; a touched but
//! equal entry is reused; an entry directory without record heals; an input edited in place
//! with the same size and mtime is caught (ctime/inode), and `--rehash` ignores the stat cache.
mod common;
use common::*;
use std::path::{Path, PathBuf};

const SPEC: &str = "name: i\nstages:\n  a: {kind: command, cmd: 'echo aaaa > a.txt'}\n  b: {kind: command, needs: [a], cmd: 'cat $SPATIA_NEEDS_A/a.txt > b.txt; echo b >> \"$SPATIA_ROOT/b.calls\"'}\n  c: {kind: command, cmd: 'echo c > c.txt'}\n";

fn entry(dir: &Path, key: &str) -> PathBuf {
    dir.join("cache/entries").join(&key[..2]).join(key)
}

fn setup() -> (tempfile::TempDir, String, String) {
    let d = project();
    std::fs::write(d.path().join("s.yaml"), SPEC).unwrap();
    let o = spatia(d.path(), &["run", "s.yaml", "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = last_run(d.path());
    (d, run["arms"]["main"]["a"].as_str().unwrap().to_string(), run["arms"]["main"]["b"].as_str().unwrap().to_string())
}

fn quarantined(dir: &Path, key: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("cache/quarantine"))
        .map(|rd| {
            rd.map(|e| e.unwrap().path())
                .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(key))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_tampered_output_is_quarantined_and_recomputed_with_its_dependents() {
    let (d, a, b) = setup();
    // same size, so only the bytes differ
    std::fs::write(entry(d.path(), &a).join("out/a.txt"), "AAAA\n").unwrap();
    let o = spatia(d.path(), &["plan", "s.yaml"]);
    assert!(text(&o).contains("cache entry damaged") && text(&o).contains("2 of 3 stage(s) to run"), "{}", text(&o));
    let o = spatia(d.path(), &["run", "s.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning") && err.contains(&a) && err.contains("out/a.txt") && err.contains("quarantine"),
        "{err}"
    );
    let s = summary(&o);
    assert_eq!((s["ran"].as_u64(), s["cached"].as_u64()), (Some(2), Some(1)), "{s}");
    // the damaged entry was kept aside, with the tampered bytes
    let q = quarantined(d.path(), &a);
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(std::fs::read_to_string(q[0].join("out/a.txt")).unwrap(), "AAAA\n");
    assert_eq!(std::fs::read_to_string(entry(d.path(), &a).join("out/a.txt")).unwrap(), "aaaa\n");
    assert_eq!(std::fs::read_to_string(entry(d.path(), &b).join("out/b.txt")).unwrap(), "aaaa\n");
    assert_eq!(std::fs::read_to_string(d.path().join("b.calls")).unwrap(), "b\nb\n", "b was not recomputed");
    assert!(spatia(d.path(), &["verify"]).status.success());
    // and the next run is a no-op again
    let s = summary(&spatia(d.path(), &["run", "s.yaml", "--json"]));
    assert_eq!(s["ran"].as_u64(), Some(0), "{s}");
}

#[test]
fn a_touched_but_equal_entry_is_reused() {
    let (d, a, _) = setup();
    let f = entry(d.path(), &a).join("out/a.txt");
    std::fs::write(&f, "aaaa\n").unwrap(); // same bytes, new mtime and ctime
    let o = spatia(d.path(), &["run", "s.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(summary(&o)["ran"].as_u64(), Some(0), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("warning"), "{}", text(&o));
    assert!(quarantined(d.path(), &a).is_empty());
}

#[test]
fn an_extra_or_missing_output_file_is_damage() {
    let (d, a, _) = setup();
    std::fs::write(entry(d.path(), &a).join("out/extra.txt"), "x").unwrap();
    let o = spatia(d.path(), &["run", "s.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("out/extra.txt"), "{}", text(&o));
    assert!(!entry(d.path(), &a).join("out/extra.txt").exists());
    std::fs::remove_file(entry(d.path(), &a).join("out/a.txt")).unwrap();
    let o = spatia(d.path(), &["run", "s.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("out/a.txt"), "{}", text(&o));
    assert_eq!(quarantined(d.path(), &a).len(), 2);
}

#[test]
fn an_entry_directory_without_record_heals() {
    let (d, a, _) = setup();
    let e = entry(d.path(), &a);
    std::fs::remove_dir_all(&e).unwrap();
    std::fs::create_dir_all(e.join("out")).unwrap();
    std::fs::write(e.join("out/a.txt"), "half").unwrap();
    for _ in 0..2 {
        let o = spatia(d.path(), &["run", "s.yaml", "-q"]);
        assert!(o.status.success(), "{}", text(&o));
    }
    assert!(e.join("record.json").exists());
    assert_eq!(std::fs::read_to_string(e.join("out/a.txt")).unwrap(), "aaaa\n");
    let q = quarantined(d.path(), &a);
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(std::fs::read_to_string(q[0].join("out/a.txt")).unwrap(), "half");
    assert!(spatia(d.path(), &["verify"]).status.success());
}

#[test]
fn an_input_edited_with_same_size_and_mtime_is_caught_and_rehash_ignores_the_stat_cache() {
    let d = project();
    std::fs::write(d.path().join("in.txt"), "one\n").unwrap();
    std::fs::write(
        d.path().join("s.yaml"),
        "name: p\nstages:\n  a: {kind: command, cmd: 'cat $SPATIA_INPUT_0 > o', inputs: [in.txt]}\n",
    )
    .unwrap();
    assert!(spatia(d.path(), &["run", "s.yaml", "-q"]).status.success());
    let f = d.path().join("in.txt");
    let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
    std::fs::write(&f, "two\n").unwrap();
    std::fs::File::options().write(true).open(&f).unwrap().set_modified(mtime).unwrap();
    assert_eq!(std::fs::metadata(&f).unwrap().modified().unwrap(), mtime);
    let o = spatia(d.path(), &["plan", "s.yaml"]);
    assert!(text(&o).contains("input file `in.txt` changed"), "{}", text(&o));

    // a stat cache that lies (the new stamp with the old digest) fools plan, not plan --rehash
    let old = blake3::hash(b"one\n").to_hex().to_string();
    let new = blake3::hash(b"two\n").to_hex().to_string();
    let sc = d.path().join("cache/statcache.tsv");
    let t = std::fs::read_to_string(&sc).unwrap();
    assert!(t.contains(&new), "{t}");
    std::fs::write(&sc, t.replace(&new, &old)).unwrap();
    let o = spatia(d.path(), &["plan", "s.yaml"]);
    assert!(text(&o).contains("0 of 1 stage(s) to run"), "{}", text(&o));
    let o = spatia(d.path(), &["plan", "s.yaml", "--rehash"]);
    assert!(text(&o).contains("input file `in.txt` changed"), "{}", text(&o));
    let o = spatia(d.path(), &["run", "s.yaml", "--rehash", "--json"]);
    assert_eq!(summary(&o)["ran"].as_u64(), Some(1), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(d.path().join("cache/statcache.tsv")).unwrap().matches(&new).count(), 1);
}
