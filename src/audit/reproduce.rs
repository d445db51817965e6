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
//! thread counts. Where bit identity cannot hold the kind says so
//! ([`crate::stages::StageKind::reproduce_tolerance`]: `train` for an attention-MIL network
//! trained on a CUDA device): that node and everything downstream of it are compared with the
//! declared relative tolerance ([`close_enough`] on JSON and CSV numbers; figures and other
//! files not compared) and reported as *within tolerance*.
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
        format!(
            "{}: expected a run directory (with run.json) or a published folder (with {})",
            target.display(),
            crate::exec::publish::MARKER
        )
    })?;
    let m: crate::exec::publish::Marker =
        serde_json::from_str(&text).with_context(|| format!("{}: not a publish marker", marker.display()))?;
    let Some(key) = m.key else {
        bail!("{}: a folder of per-item publishes; name one item's folder or the run directory", target.display())
    };
    for p in crate::provenance::list_runs(root).iter().rev() {
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
    /// Numbers within the kind's declared tolerance (a node computed on CUDA, or downstream of
    /// one); files that are not JSON or CSV not compared.
    WithinTolerance,
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
    /// The relative tolerance compared with (None: bit for bit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub nodes: usize,
    pub identical: usize,
    pub differ: usize,
    pub missing: usize,
    /// Nodes compared with a tolerance (CUDA), all within it.
    pub within_tolerance: usize,
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

/// Whether two texts are the same but for numbers within relative tolerance `rtol` (tokens
/// split at whitespace and JSON/CSV punctuation; a non-number token must be equal).
pub fn close_enough(a: &str, b: &str, rtol: f64) -> bool {
    let split = |s: &str| -> Vec<String> {
        s.split(|c: char| c.is_whitespace() || ",:;[]{}\"".contains(c))
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    };
    let (x, y) = (split(a), split(b));
    x.len() == y.len()
        && x.iter().zip(&y).all(|(u, v)| {
            u == v
                || match (u.parse::<f64>(), v.parse::<f64>()) {
                    (Ok(p), Ok(q)) if p.is_finite() && q.is_finite() => {
                        (p - q).abs() <= rtol * p.abs().max(q.abs()) + f64::EPSILON
                    }
                    _ => false,
                }
        })
}

/// Whether a differing file, compared with tolerance `rtol`, passes: JSON/CSV numbers within
/// it, or a file of another type (a figure, a page, a tensor: drawn from such numbers).
fn tolerated(a: &Path, b: &Path, rtol: f64) -> bool {
    let text = matches!(a.extension().and_then(|e| e.to_str()), Some("json" | "csv" | "tsv" | "txt"));
    if !text {
        return true;
    }
    match (std::fs::read_to_string(a), std::fs::read_to_string(b)) {
        (Ok(x), Ok(y)) => close_enough(&x, &y, rtol),
        _ => false,
    }
}

/// Compares the outputs of the original entry `key` (its files as they are now) with the
/// fresh one (with relative tolerance `tol`, if any: the differing files it tolerates are
/// returned in the second list).
fn compare_entry(
    original: &Cache,
    fresh: &Cache,
    key: &str,
    rec: &Record,
    new: &Record,
    tol: Option<f64>,
) -> (Vec<FileDiff>, usize) {
    let (od, nd) = (original.out_dir(key), fresh.out_dir(key));
    let recorded: HashMap<&str, &str> = rec.outputs.iter().map(|o| (o.path.as_str(), o.blake3.as_str())).collect();
    let mut paths: BTreeMap<&str, ()> = BTreeMap::new();
    for o in rec.outputs.iter().chain(&new.outputs) {
        paths.insert(o.path.as_str(), ());
    }
    let fresh_digest: HashMap<&str, &str> = new.outputs.iter().map(|o| (o.path.as_str(), o.blake3.as_str())).collect();
    let mut diffs = Vec::new();
    let mut tolerated_files = 0;
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
        if let (Some(rtol), Some(_), Some(_), None) = (tol, &orig_now, &repro, &note) {
            if tolerated(&od.join(p), &nd.join(p), rtol) {
                tolerated_files += 1;
                continue;
            }
        }
        let first = match (&orig_now, &repro) {
            (Some(_), Some(_)) => first_difference(&od.join(p), &nd.join(p)),
            _ => None,
        };
        diffs.push(FileDiff {
            path: p.to_string(),
            original: orig_now,
            reproduced: repro,
            first_difference: first,
            note,
        });
    }
    (diffs, tolerated_files)
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
    // the kinds' declared tolerances, inherited downstream (nodes are in topological order)
    let mut tol: Vec<Option<f64>> = Vec::with_capacity(dag.nodes.len());
    for n in &dag.nodes {
        let own = n.decl.kind.reproduce_tolerance(&original.out_dir(&n.key));
        let t = n.deps.iter().filter_map(|&d| tol[d]).chain(own).reduce(f64::max);
        tol.push(t);
    }
    let tol_of: HashMap<&str, Option<f64>> = dag.nodes.iter().zip(&tol).map(|(n, t)| (n.key.as_str(), *t)).collect();
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
            tolerance: tol_of.get(n.key.as_str()).copied().flatten(),
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
                    let (files, tolerated) = compare_entry(original, fresh, &n.key, &old, &new, r.tolerance);
                    r.files = files;
                    r.result = match (r.files.is_empty(), tolerated) {
                        (false, _) => Verdict::Differs,
                        (true, 0) => Verdict::Identical,
                        (true, _) => Verdict::WithinTolerance,
                    };
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
        within_tolerance: count(Verdict::WithinTolerance),
        details,
    }
}

impl Comparison {
    /// Whether every node is identical (or, for a node computed on CUDA and those downstream
    /// of it, within the tolerance its kind declares).
    pub fn all_identical(&self) -> bool {
        self.identical + self.within_tolerance == self.nodes
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
                Verdict::WithinTolerance => "within tol.",
                Verdict::Differs => "DIFFERS",
                Verdict::CouldNotRun => "COULD NOT RUN",
            };
            s.push_str(&format!("  {verdict:<14} {what:<32} {}\n", &d.key[..12.min(d.key.len())]));
            for f in &d.files {
                let at =
                    f.first_difference.map(|o| format!(", first differing byte at offset {o}")).unwrap_or_default();
                let side = match (&f.original, &f.reproduced) {
                    (None, _) => " (only in the reproduction)".to_string(),
                    (_, None) => " (only in the original)".to_string(),
                    _ => String::new(),
                };
                let note = f.note.as_ref().map(|n| format!("; {n}")).unwrap_or_default();
                s.push_str(&format!("      {}{side}{at}{note}\n", f.path));
            }
            if let (Some(t), Verdict::WithinTolerance) = (d.tolerance, d.result) {
                s.push_str(&format!(
                    "      computed on CUDA (or from such a node): numbers within relative tolerance {t:e}, figures not compared\n"
                ));
            }
            if let Some(r) = &d.reason {
                s.push_str(&format!("      {r}\n"));
            }
        }
        let tol = if self.within_tolerance > 0 {
            format!(", {} within tolerance (CUDA)", self.within_tolerance)
        } else {
            String::new()
        };
        s.push_str(&format!(
            "{} node(s): {} identical{tol}, {} differ, {} could not run\n",
            self.nodes, self.identical, self.differ, self.missing
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::close_enough;

    #[test]
    fn numbers_within_tolerance_and_nothing_else() {
        let a = r#"{"harrell_c": 0.71234, "n": 24, "arm": "HE"}"#;
        assert!(close_enough(a, r#"{"harrell_c": 0.71235, "n": 24, "arm": "HE"}"#, 1e-3));
        assert!(!close_enough(a, r#"{"harrell_c": 0.72, "n": 24, "arm": "HE"}"#, 1e-3), "beyond the tolerance");
        assert!(!close_enough(a, r#"{"harrell_c": 0.71234, "n": 24, "arm": "IHC"}"#, 1e-3), "a word differs");
        assert!(!close_enough("1,2,3", "1,2", 1e-3), "another token count");
        assert!(close_enough("id,risk\nP1,-1.5e-3\n", "id,risk\nP1,-1.5000001e-3\n", 1e-3));
    }
}
