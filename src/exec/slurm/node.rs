//! The node side: one array task computes one node (`spatia exec-node --manifest FILE`, the
//! task index from `SLURM_ARRAY_TASK_ID`). The manifest, written by the head into the shared
//! cache before `sbatch`, names the spec, project root, cache and one key per task; the task
//! compiles the spec, finds its key in the DAG and computes it exactly as the local executor
//! does ([`crate::exec::run_node`]: the key's lock, a check under the lock, the entry built in
//! `tmp/` and renamed into place, the log in the entry), then writes its outcome — the node's
//! summary, as in a run record — to `slurm/outcomes/<key>.<job>_<task>.json`, atomically.
//!
//! The exit status is 0 once an outcome is written, failed stage included (the outcome says
//! so); non-zero only when no outcome could be written (the head then reads Slurm's state).
use crate::cache::Cache;
use crate::provenance::{NodeSummary, Status};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Version of the manifest and outcome files.
pub const MANIFEST_SCHEMA_VERSION: u32 = 1;

/// One array's tasks: task `i` computes `keys[i]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    /// The spec, project root and cache, absolute.
    pub spec: PathBuf,
    pub root: PathBuf,
    pub cache: PathBuf,
    /// The stage kind and stage names of the array (for people reading it).
    pub kind: String,
    pub keys: Vec<String>,
    /// Per key: recompute even though the entry looks good (downstream of a damaged entry).
    pub forced: Vec<bool>,
}

/// What a task writes once its node is done (or failed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeOutcome {
    pub schema_version: u32,
    pub job: String,
    pub host: String,
    pub node: NodeSummary,
}

/// Directories of the Slurm executor inside the cache.
pub fn manifests_dir(cache: &Cache) -> PathBuf {
    cache.root.join("slurm").join("manifests")
}
pub fn outcomes_dir(cache: &Cache) -> PathBuf {
    cache.root.join("slurm").join("outcomes")
}
pub fn logs_dir(cache: &Cache) -> PathBuf {
    cache.root.join("slurm").join("logs")
}

/// The outcome file of `key` computed by array task `job_task` (`<job>_<task>`).
pub fn outcome_file(cache: &Cache, key: &str, job_task: &str) -> PathBuf {
    outcomes_dir(cache).join(format!("{key}.{job_task}.json"))
}

/// Writes `bytes` to `path` through a temporary file beside it and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| crate::cache::at(dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", crate::util::hostname(), std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| crate::cache::at(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        crate::cache::at(path, e)
    })
}

impl Manifest {
    pub fn read(path: &Path) -> Result<Manifest> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the manifest {}", path.display()))?;
        let m: Manifest =
            serde_json::from_str(&text).with_context(|| format!("{}: not a Spatia Slurm manifest", path.display()))?;
        if m.schema_version != MANIFEST_SCHEMA_VERSION {
            bail!(
                "{}: manifest schema_version {}; this spatia reads {MANIFEST_SCHEMA_VERSION}",
                path.display(),
                m.schema_version
            );
        }
        if m.keys.len() != m.forced.len() {
            bail!(
                "{}: {} keys but {} `forced` flags; expected one per key",
                path.display(),
                m.keys.len(),
                m.forced.len()
            );
        }
        Ok(m)
    }
}

/// `spatia exec-node`: computes task `index` of the manifest; the process exit code.
pub fn exec_node(manifest: &Path, index: Option<usize>) -> Result<u8> {
    let index = match index {
        Some(i) => i,
        None => std::env::var("SLURM_ARRAY_TASK_ID")
            .ok()
            .and_then(|v| v.parse().ok())
            .context("no task index: pass --index or run as a Slurm array task (SLURM_ARRAY_TASK_ID)")?,
    };
    let m = Manifest::read(manifest)?;
    let Some(key) = m.keys.get(index) else {
        bail!("{}: task {index} but the manifest has {} key(s)", manifest.display(), m.keys.len());
    };
    let job_task = match (std::env::var("SLURM_ARRAY_JOB_ID"), std::env::var("SLURM_ARRAY_TASK_ID")) {
        (Ok(j), Ok(t)) => format!("{j}_{t}"),
        _ => format!("local_{index}"),
    };
    let cache = Cache::new(m.cache.clone());
    let t0 = std::time::Instant::now();
    let node = compute(&m, &cache, key, m.forced[index]).unwrap_or_else(|e| NodeSummary {
        key: key.clone(),
        stage: String::new(),
        kind: m.kind.clone(),
        arms: Vec::new(),
        item: None,
        status: Status::Failed,
        duration_s: t0.elapsed().as_secs_f64(),
        error: Some(format!("on {}: {e:#}", crate::util::hostname())),
        log: None,
        warning: None,
    });
    let failed = node.status == Status::Failed;
    let out = NodeOutcome {
        schema_version: MANIFEST_SCHEMA_VERSION,
        job: job_task.clone(),
        host: crate::util::hostname(),
        node,
    };
    let file = outcome_file(&cache, key, &job_task);
    let bytes = serde_json::to_vec_pretty(&out)?;
    write_atomic(&file, &bytes).with_context(|| format!("cannot write the outcome of key {key}"))?;
    eprintln!(
        "spatia exec-node: key {key} {} in {:.2}s; outcome {}",
        if failed { "FAILED" } else { "done" },
        t0.elapsed().as_secs_f64(),
        file.display()
    );
    Ok(0)
}

/// Compiles the manifest's spec and computes `key` into the cache.
fn compute(m: &Manifest, cache: &Cache, key: &str, forced: bool) -> Result<NodeSummary> {
    super::sharedfs::check(&cache.root)?;
    // as `spatia run` compiles it (exec does not import cli: the same three steps)
    let spec = crate::spec::compile(&m.spec, Some(&m.root))?;
    let mut stat = crate::cache::hash::StatCache::load(&cache.stat_cache_file());
    let dag = crate::dag::build(&spec, &mut stat)?;
    if let Err(e) = stat.save() {
        eprintln!("spatia exec-node: warning: the stat cache was not saved: {e}");
    }
    let Some(i) = dag.nodes.iter().position(|n| n.key == key) else {
        bail!(
            "key {key} is not in the DAG of {} as it compiles now (the spec, its inputs or this binary changed since \
             the head submitted it?)",
            m.spec.display()
        );
    };
    Ok(crate::exec::run_node(&spec, &dag, cache, i, forced))
}
