//! Provenance: what the tool records about itself and about each run.
//!
//! [`RunTracker`] collects per-node outcomes while the executor runs; [`RunSummary`] is the
//! versioned, serialisable `runs/<time>-<name>/run.json` written at the end, mapping every
//! arm/stage name to its key(s) so reports, `show` and `plan` can find results.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of `run.json`'s shape. Readers accept this version only.
pub const RUN_SCHEMA_VERSION: u32 = 1;

/// `spatia <version> (<git commit>)`.
pub fn tool_version() -> String {
    format!("spatia {} ({})", env!("CARGO_PKG_VERSION"), env!("SPATIA_GIT_COMMIT"))
}

/// Versions of the main libraries compiled in.
pub fn library_versions() -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = env!("SPATIA_LIB_VERSIONS")
        .split(',')
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    m.insert("rustc".into(), option_env!("RUSTC_VERSION").unwrap_or("1.95").to_string());
    m
}

/// What happened to one node in a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Found in the cache.
    Hit,
    /// Computed by this run.
    Miss,
    /// Another process computed it while this one waited for the key's lock.
    Waited,
    Failed,
    /// Not run because something it needs failed.
    Skipped,
}

/// One node's line in `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeSummary {
    pub key: String,
    pub stage: String,
    pub kind: String,
    pub arms: Vec<String>,
    pub item: Option<String>,
    pub status: Status,
    pub duration_s: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub log: Option<String>,
}

/// `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub schema_version: u32,
    pub name: String,
    /// Spec path relative to the project root.
    pub spec: String,
    pub spec_blake3: String,
    pub seed: u64,
    pub command: Vec<String>,
    pub started: String,
    pub finished: String,
    pub duration_s: f64,
    pub tool: String,
    pub host: String,
    pub jobs: usize,
    /// arm → stage → key (single) or keys (one per shard, in item order).
    pub arms: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// arm → matrix settings.
    pub settings: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    pub nodes: Vec<NodeSummary>,
    pub ok: bool,
}

/// Collects node outcomes during a run.
#[derive(Debug, Default)]
pub struct RunTracker {
    pub nodes: Vec<Option<NodeSummary>>,
}

impl RunSummary {
    /// Writes `runs/<time>-<name>/run.json` atomically; returns its path.
    pub fn write(&self, root: &Path) -> std::io::Result<PathBuf> {
        let stamp: String = self.started.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '.').collect();
        let safe: String = self.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let mut dir = root.join("runs").join(format!("{stamp}-{safe}"));
        let mut n = 1;
        while dir.exists() {
            dir = root.join("runs").join(format!("{stamp}-{safe}-{n}"));
            n += 1;
        }
        std::fs::create_dir_all(&dir).map_err(crate::util::io_at("cannot create the run directory", &dir))?;
        let tmp = dir.join(".run.json.tmp");
        crate::util::write_file(&tmp, serde_json::to_string_pretty(self).map_err(std::io::Error::other)? + "\n")?;
        let dst = dir.join("run.json");
        std::fs::rename(&tmp, &dst).map_err(crate::util::io_at("cannot write the run record", &dst))?;
        Ok(dst)
    }

    /// Reads a run record.
    pub fn read(path: &Path) -> anyhow::Result<RunSummary> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let s: RunSummary = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not a run record: {e}", path.display()))?;
        if s.schema_version != RUN_SCHEMA_VERSION {
            anyhow::bail!("{}: run record schema {} (this spatia reads {RUN_SCHEMA_VERSION})", path.display(), s.schema_version);
        }
        Ok(s)
    }
}

/// All run records under `root/runs`, oldest first (directory names start with the time).
pub fn list_runs(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("runs"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path().join("run.json")).filter(|p| p.exists()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The latest run record of an experiment name.
pub fn latest_run(root: &Path, name: &str) -> Option<RunSummary> {
    list_runs(root).iter().rev().filter_map(|p| RunSummary::read(p).ok()).find(|r| r.name == name)
}
