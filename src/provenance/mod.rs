//! Provenance: what the tool records about itself and about each run.
//!
//! [`RunSummary`] is the versioned `runs/<time>-<name>/run.json`, mapping every arm/stage
//! name to its key(s) so reports, `show` and `plan` can find results. It is a *journal*:
//! [`Journal::create`] makes the run directory (atomically, never shared with another run)
//! and writes it with status `running`, the pid, host and every planned node before anything
//! runs; the executor rewrites it atomically as nodes finish and at the end (`ok`, `failed`,
//! `interrupted`). A journal still saying `running` whose process is gone reads as `killed`
//! ([`RunSummary::state`]). Readers accept schema 1 (finished runs only, written before
//! journals existed) and 2.
pub mod facts;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Version of `run.json`'s shape. Readers accept this one and 1.
pub const RUN_SCHEMA_VERSION: u32 = 2;

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
    /// Planned, not finished when the journal was written (still running, or the run was
    /// interrupted or killed first).
    Pending,
}

/// Where a run stands, as its journal says.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Ok,
    Failed,
    /// Stopped by SIGINT or SIGTERM.
    Interrupted,
    /// Never written: a `running` journal whose process is gone reads as killed.
    Killed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Killed => "killed",
        }
    }
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
    /// Something the run noticed about this node (e.g. a damaged entry quarantined).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub warning: Option<String>,
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
    /// Empty while running (and in a killed run's journal).
    #[serde(default)]
    pub finished: String,
    /// Seconds since the start, as of the last write.
    pub duration_s: f64,
    pub tool: String,
    pub host: String,
    pub jobs: usize,
    /// `running` until the end (schema 1 records have none: read from `ok`).
    #[serde(default = "legacy_status")]
    pub status: RunStatus,
    /// The process running it, with its start time in clock ticks since boot (from
    /// /proc/<pid>/stat) so a reused pid is not taken for it.
    #[serde(default)]
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    /// When the journal was last written.
    #[serde(default)]
    pub updated: String,
    /// Why the run ended early: the signal, or the error that stopped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
    /// arm → stage → key (single) or keys (one per shard, in item order).
    pub arms: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// arm → matrix settings.
    pub settings: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    pub nodes: Vec<NodeSummary>,
    /// Every node hit, ran or reused (false while running).
    pub ok: bool,
}

fn legacy_status() -> RunStatus {
    RunStatus::Failed
}

/// Start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat), if it
/// exists.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) is parenthesised and may hold spaces
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether a process recorded as (pid, start) is alive on this host.
pub fn process_alive(pid: u32, start: Option<u64>) -> bool {
    if pid == 0 {
        return false;
    }
    match (process_start(pid), start) {
        (None, _) => false,
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
    }
}

fn valid_key(k: &str) -> bool {
    k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit())
}

impl RunSummary {
    /// Where the run stands: its journal's status, except that a `running` journal whose
    /// process is gone (same host, pid dead or reused) is `killed`. A run on another host
    /// cannot be checked and stays `running`.
    pub fn state(&self) -> RunStatus {
        if self.status == RunStatus::Running
            && self.host == crate::util::hostname()
            && !process_alive(self.pid, self.pid_start)
        {
            return RunStatus::Killed;
        }
        self.status
    }

    /// Every key the run planned (and, if it finished, produced or reused).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.key.as_str())
    }

    /// Reads a run record (schema 2, or 1 from before journals).
    pub fn read(path: &Path) -> anyhow::Result<RunSummary> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not a run record: {e}", path.display()))?;
        match v.get("schema_version").and_then(|x| x.as_u64()) {
            Some(1) | Some(2) => {}
            Some(n) => anyhow::bail!("{}: run record schema {n} (this spatia reads 1 and {RUN_SCHEMA_VERSION}); use the spatia that wrote it", path.display()),
            None => anyhow::bail!("{}: not a run record: no schema_version", path.display()),
        }
        let mut s: RunSummary =
            serde_json::from_value(v).map_err(|e| anyhow::anyhow!("{}: not a run record: {e}", path.display()))?;
        if s.schema_version == 1 {
            s.status = if s.ok { RunStatus::Ok } else { RunStatus::Failed };
        }
        if let Some(n) = s.nodes.iter().find(|n| !valid_key(&n.key)) {
            anyhow::bail!(
                "{}: not a run record: node `{}` has key {:?}, expected 64 hex digits",
                path.display(),
                crate::util::display_id(&n.stage),
                n.key
            );
        }
        Ok(s)
    }
}

/// A run's journal file: created at the start, rewritten atomically as the run goes.
pub struct Journal {
    pub file: PathBuf,
    last: Instant,
}

/// Minimum time between two journal writes while nodes finish (the start and the end are
/// always written).
pub const JOURNAL_INTERVAL: Duration = Duration::from_millis(500);

impl Journal {
    /// Creates `runs/<time>-<name>[-n]/` with `create_dir` (so two runs never share one, even
    /// in the same millisecond) and writes the first journal.
    pub fn create(root: &Path, s: &RunSummary) -> anyhow::Result<Journal> {
        let stamp: String = s.started.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '.').collect();
        let safe: String = s
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .take(80)
            .collect();
        let runs = root.join("runs");
        std::fs::create_dir_all(&runs)
            .map_err(|e| anyhow::anyhow!("cannot create the run directory {}: {e}", runs.display()))?;
        let mut n = 0u64;
        let dir = loop {
            let dir = runs.join(if n == 0 { format!("{stamp}-{safe}") } else { format!("{stamp}-{safe}-{n}") });
            n += 1;
            match std::fs::create_dir(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => anyhow::bail!("cannot create the run directory {}: {e}", dir.display()),
            }
        };
        let mut j = Journal { file: dir.join("run.json"), last: Instant::now() };
        j.write(s)?;
        Ok(j)
    }

    /// Rewrites the journal now (tmp file + rename).
    pub fn write(&mut self, s: &RunSummary) -> anyhow::Result<()> {
        let tmp = self.file.with_file_name(".run.json.tmp");
        let text = serde_json::to_string_pretty(s)? + "\n";
        std::fs::write(&tmp, text)
            .map_err(|e| anyhow::anyhow!("cannot write the run journal {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &self.file)
            .map_err(|e| anyhow::anyhow!("cannot write the run journal {}: {e}", self.file.display()))?;
        self.last = Instant::now();
        Ok(())
    }

    /// Whether enough time passed since the last write to write again.
    pub fn due(&self) -> bool {
        self.last.elapsed() >= JOURNAL_INTERVAL
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let pid = std::process::id();
        let start = process_start(pid);
        assert!(start.is_some());
        assert!(process_alive(pid, start));
        assert!(!process_alive(pid, start.map(|s| s + 1)), "another start time means another process");
        assert!(!process_alive(0, None));
        assert!(!process_alive(u32::MAX, None));
    }
}
