//! `spatia reproduce`: recompute every node of a recorded run in a fresh scratch cache and
//! compare each output file, byte for byte, with what the run's cache holds now.
//!
//! **Which run:** a run directory (or its `run.json`), or a published folder, whose publish
//! marker names its key: the newest run record that planned that key ([`locate`]).
//! **Spec:** the run's spec file must still hash to the digest the run recorded (the spec is
//! compiled again; a changed spec would compute something else).
//! **Scratch:** [`Scratch`] is a new directory under `<root>/.spatia-reproduce/` holding the
//! fresh cache and the scratch run's journal; it is removed when dropped. The user's cache is
//! only read; nothing is published.
//! **Comparison** ([`compare`]), per node of the run, by key:
//! - *identical*: the same output files with the same blake3 on both sides;
//! - *differs*: the files that differ (the first differing byte offset, or the file present on
//!   one side only); also when a cached file no longer matches its own record (tampered);
//! - *could not run*: the key is not in the spec's DAG now (an input changed: each changed
//!   input with its recorded and current digests), the recomputation failed, or the run's
//!   entry is gone from the cache (nothing to compare with).
//!
//! Nodes are compared bit for bit: on CPU every kind is deterministic whatever `--jobs` and
//! thread counts. A node that declares a tolerance (attention-MIL training on a CUDA device,
//! where kernels are not bit-reproducible) is reported as such by the caller.
use crate::cache::{hash::hash_file, Cache, Record};
use crate::dag::Dag;
use crate::provenance::RunSummary;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Finds the run record `target` names: a run directory, a `run.json`, or a published folder
/// (the newest run of `root` that planned the folder's key).
pub fn locate(root: &Path, target: &Path) -> Result<(PathBuf, RunSummary)> {
    let run_json = if target.is_dir() { target.join("run.json") } else { target.to_path_buf() };
    if run_json.is_file() {
        return Ok((run_json.clone(), RunSummary::read(&run_json)?));
    }
    let marker = target.join(crate::exec::publish::MARKER);
    let text = std::fs::read_to_string(&marker).with_context(|| {
        format!("{}: expected a run directory (with run.json) or a published folder (with {})", target.display(), crate::exec::publish::MARKER)
    })?;
    let m: crate::exec::publish::Marker =
        serde_json::from_str(&text).with_context(|| format!("{}: not a publish marker", marker.display()))?;
    let Some(key) = m.key else {
        bail!("{}: a folder of per-item publishes; name one item's folder or the run directory", target.display())
    };
    for p in super::list_runs(root).iter().rev() {
        if let Ok(r) = RunSummary::read(p) {
            if r.keys().any(|k| k == key) {
                return Ok((p.clone(), r));
            }
        }
    }
    bail!("no run record under {}/runs planned key {key} (published in {})", root.display(), target.display())
}

/// A scratch directory under `<root>/.spatia-reproduce/`, removed when dropped.
pub struct Scratch {
    pub dir: PathBuf,
    pub keep: bool,
}

impl Scratch {
    /// Creates a new, empty scratch directory (never an existing one).
    pub fn new(root: &Path) -> Result<Scratch> {
        let base = root.join(".spatia-reproduce");
        std::fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
        let stamp: String = crate::util::now_rfc3339().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        for n in 0..1000 {
            let dir = base.join(format!("{stamp}-{}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(Scratch { dir, keep: false }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => bail!("cannot create {}: {e}", dir.display()),
            }
        }
        bail!("cannot create a scratch directory under {}", base.display())
    }

    /// The fresh cache.
    pub fn cache(&self) -> Cache {
        Cache::new(self.dir.join("cache"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
            if let Some(base) = self.dir.parent() {
                // the base goes too when no other reproduction uses it
                let _ = std::fs::remove_dir(base);
            }
        }
    }
}

/// How one node compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Identical,
    Differs,
    CouldNotRun,
}

/// One differing file.
#[derive(Debug, Clone, Serialize)]
pub struct FileDiff {
    pub path: String,
    /// blake3 of the run's file now (None: absent).
    pub original: Option<String>,
    /// blake3 of the recomputed file (None: absent).
    pub reproduced: Option<String>,
    /// Offset of the first differing byte, when both files exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_difference: Option<u64>,
    /// Something more (a cached file that no longer matches its record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One node's line.
#[derive(Debug, Clone, Serialize)]
pub struct NodeResult {
    pub stage: String,
    pub kind: String,
    pub item: Option<String>,
    pub key: String,
    pub result: Verdict,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileDiff>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub nodes: usize,
    pub identical: usize,
    pub differ: usize,
    pub missing: usize,
    pub details: Vec<NodeResult>,
}

fn first_difference(a: &Path, b: &Path) -> Option<u64> {
    let (mut fa, mut fb) = (std::fs::File::open(a).ok()?, std::fs::File::open(b).ok()?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    let mut off = 0u64;
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        let n = na.min(nb);
        if let Some(i) = (0..n).find(|&i| ba[i] != bb[i]) {
            return Some(off + i as u64);
        }
        if na != nb {
            return Some(off + n as u64);
        }
        if na == 0 {
            return None;
        }
        off += n as u64;
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> Option<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(n)
}

/// Compares the outputs of the original entry `key` (its files as they are now) with the
/// fresh one.
fn compare_entry(original: &Cache, fresh: &Cache, key: &str, rec: &Record, new: &Record) -> Vec<FileDiff> {
    let (od, nd) = (original.out_dir(key), fresh.out_dir(key));
    let recorded: HashMap<&str, &str> = rec.outputs.iter().map(|o| (o.path.as_str(), o.blake3.as_str())).collect();
    let mut paths: BTreeMap<&str, ()> = BTreeMap::new();
    for o in rec.outputs.iter().chain(&new.outputs) {
        paths.insert(o.path.as_str(), ());
    }
    let fresh_digest: HashMap<&str, &str> = new.outputs.iter().map(|o| (o.path.as_str(), o.blake3.as_str())).collect();
    let mut diffs = Vec::new();
    for p in paths.keys() {
        let orig_now = hash_file(&od.join(p)).ok();
        let repro = fresh_digest.get(p).map(|s| s.to_string());
        let note = match (recorded.get(p), &orig_now) {
            (Some(r), Some(now)) if r != now => Some(format!("the cached file no longer matches its record ({r})")),
            (Some(_), None) => Some("the cached file is missing".to_string()),
            _ => None,
        };
        if orig_now == repro && note.is_none() {
            continue;
        }
        let first = match (&orig_now, &repro) {
            (Some(_), Some(_)) => first_difference(&od.join(p), &nd.join(p)),
            _ => None,
        };
        diffs.push(FileDiff { path: p.to_string(), original: orig_now, reproduced: repro, first_difference: first, note });
    }
    diffs
}

/// Why a node of the run is not in the DAG now: its recorded inputs whose files changed.
fn changed_inputs(rec: Option<&Record>) -> String {
    let Some(rec) = rec else {
        return "its key is not in the spec's DAG now (an input changed) and its record is gone from the cache".into();
    };
    let mut why = Vec::new();
    for i in &rec.inputs {
        match hash_file(Path::new(&i.path)) {
            Ok(d) if d == i.blake3 => {}
            Ok(d) => why.push(format!("input `{}` changed: recorded blake3 {}, now {d}", i.path, i.blake3)),
            Err(_) => why.push(format!("input `{}` is missing (recorded blake3 {})", i.path, i.blake3)),
        }
    }
    if why.is_empty() {
        "its key is not in the spec's DAG now (an upstream stage's key changed)".into()
    } else {
        why.join("; ")
    }
}

/// Compares every node of `run` (deduplicated by key) between the `original` cache and the
/// `fresh` one the spec's `dag` was just recomputed into (`errors`: key → why it failed).
pub fn compare(
    run: &RunSummary,
    dag: &Dag,
    original: &Cache,
    fresh: &Cache,
    errors: &HashMap<String, String>,
) -> Comparison {
    let in_dag: std::collections::HashSet<&str> = dag.nodes.iter().map(|n| n.key.as_str()).collect();
    let mut seen = std::collections::HashSet::new();
    let mut details = Vec::new();
    for n in &run.nodes {
        if !seen.insert(n.key.as_str()) {
            continue;
        }
        let rec = original.record(&n.key).ok();
        let mut r = NodeResult {
            stage: n.stage.clone(),
            kind: n.kind.clone(),
            item: n.item.clone(),
            key: n.key.clone(),
            result: Verdict::CouldNotRun,
            files: Vec::new(),
            reason: None,
        };
        if !in_dag.contains(n.key.as_str()) {
            r.reason = Some(changed_inputs(rec.as_ref()));
        } else if let Some(e) = errors.get(&n.key) {
            r.reason = Some(format!("the recomputation failed: {e}"));
        } else {
            match (rec, fresh.record(&n.key)) {
                (None, _) => {
                    r.reason = Some("the run's entry is gone from the cache (gc?): nothing to compare with".into())
                }
                (Some(_), Err(e)) => r.reason = Some(format!("no recomputed entry: {e}")),
                (Some(old), Ok(new)) => {
                    r.files = compare_entry(original, fresh, &n.key, &old, &new);
                    r.result = if r.files.is_empty() { Verdict::Identical } else { Verdict::Differs };
                }
            }
        }
        details.push(r);
    }
    let count = |v: Verdict| details.iter().filter(|d| d.result == v).count();
    Comparison {
        nodes: details.len(),
        identical: count(Verdict::Identical),
        differ: count(Verdict::Differs),
        missing: count(Verdict::CouldNotRun),
        details,
    }
}

impl Comparison {
    /// Whether every node is identical.
    pub fn all_identical(&self) -> bool {
        self.identical == self.nodes
    }

    /// The table and the summary line.
    pub fn table(&self) -> String {
        let mut s = String::new();
        for d in &self.details {
            let what = format!(
                "{}{}",
                d.stage,
                d.item.as_ref().map(|x| format!(" [{}]", crate::util::display_id(x))).unwrap_or_default()
            );
            let verdict = match d.result {
                Verdict::Identical => "identical",
                Verdict::Differs => "DIFFERS",
                Verdict::CouldNotRun => "COULD NOT RUN",
            };
            s.push_str(&format!("  {verdict:<14} {what:<32} {}\n", &d.key[..12.min(d.key.len())]));
            for f in &d.files {
                let at = f.first_difference.map(|o| format!(", first differing byte at offset {o}")).unwrap_or_default();
                let side = match (&f.original, &f.reproduced) {
                    (None, _) => " (only in the reproduction)".to_string(),
                    (_, None) => " (only in the original)".to_string(),
                    _ => String::new(),
                };
                let note = f.note.as_ref().map(|n| format!("; {n}")).unwrap_or_default();
                s.push_str(&format!("      {}{side}{at}{note}\n", f.path));
            }
            if let Some(r) = &d.reason {
                s.push_str(&format!("      {r}\n"));
            }
        }
        s.push_str(&format!(
            "{} node(s): {} identical, {} differ, {} could not run\n",
            self.nodes, self.identical, self.differ, self.missing
        ));
        s
    }
}
