//! The Slurm commands the head calls, and what it reads from their output: `sbatch` (one call
//! per array), `squeue` (one call per poll for every job in flight), `scontrol show config`
//! (once per run, for `MaxArraySize`). No `sacct`: it needs slurmdbd, which small clusters and
//! the test cluster lack; `squeue --states=all` shows a finished job for `MinJobAge` seconds,
//! and the nodes' outcome files say the rest.
//!
//! Every call passes its arguments as a list (never through a shell).
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::process::Command;

/// The array-task states that end a task (`squeue --states=all` still lists them a while).
pub fn is_terminal(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "OUT_OF_MEMORY"
            | "DEADLINE"
            | "NODE_FAIL"
            | "PREEMPTED"
            | "BOOT_FAIL"
            | "REVOKED"
            | "SPECIAL_EXIT"
    )
}

/// States that say the node, not the work, failed: the task is resubmitted (a bounded number of times).
pub fn is_node_failure(state: &str) -> bool {
    matches!(state, "NODE_FAIL" | "PREEMPTED" | "BOOT_FAIL")
}

/// Runs a Slurm client command; its stdout, or an error naming the command and its stderr.
fn call(prog: &str, args: &[String]) -> Result<String> {
    let out = Command::new(prog).args(args).output().with_context(|| {
        format!("cannot run `{prog}` (is this machine a Slurm submit host with the Slurm client commands on PATH?)")
    })?;
    if !out.status.success() {
        bail!("`{prog} {}` failed ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The cluster limits the head respects.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `MaxArraySize`: array indices must be below it.
    pub max_array_size: usize,
}

/// `scontrol show config`, once: also the check that Slurm answers at all.
pub fn limits() -> Result<Limits> {
    let text = call("scontrol", &["show".into(), "config".into()])?;
    let mut max_array_size = 1001;
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == "MaxArraySize" {
                max_array_size = v.trim().parse().unwrap_or(max_array_size);
            }
        }
    }
    Ok(Limits { max_array_size: max_array_size.max(1) })
}

/// One array task as `squeue -r` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub job: u64,
    pub task: usize,
    pub name: String,
    pub state: String,
    pub reason: String,
}

fn parse_tasks(text: &str) -> Vec<Task> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.trim().splitn(5, '|').collect();
        if f.len() < 5 {
            continue;
        }
        // a job that is not an array shows `N/A` as its task id: not one of ours
        let (Ok(job), Ok(task)) = (f[0].parse::<u64>(), f[1].parse::<usize>()) else { continue };
        out.push(Task { job, task, name: f[2].to_string(), state: f[3].to_string(), reason: f[4].to_string() });
    }
    out
}

const FORMAT: &str = "%F|%K|%j|%T|%r";

/// Every array task of this user still queued or running whose job name starts with `prefix`:
/// what an earlier head left behind.
pub fn queued_with_prefix(prefix: &str) -> Result<Vec<Task>> {
    let text = call("squeue", &["--me".into(), "-h".into(), "-r".into(), "-o".into(), FORMAT.into()])?;
    Ok(parse_tasks(&text).into_iter().filter(|t| t.name.starts_with(prefix) && !is_terminal(&t.state)).collect())
}

/// One batched `squeue` for the given jobs, finished ones included: (job, task) → task.
/// `None` when Slurm did not answer (the caller keeps what it knew).
pub fn tasks_of(jobs: &[u64]) -> Option<HashMap<(u64, usize), Task>> {
    if jobs.is_empty() {
        return Some(HashMap::new());
    }
    let ids: Vec<String> = jobs.iter().map(u64::to_string).collect();
    let args: Vec<String> =
        vec!["-h".into(), "-r".into(), "--states=all".into(), "-j".into(), ids.join(","), "-o".into(), FORMAT.into()];
    let out = Command::new("squeue").args(&args).output().ok()?;
    if !out.status.success() {
        // every job id already purged from slurmctld (older than MinJobAge): nothing to list
        let err = String::from_utf8_lossy(&out.stderr);
        return if err.contains("Invalid job id") { Some(HashMap::new()) } else { None };
    }
    Some(parse_tasks(&String::from_utf8_lossy(&out.stdout)).into_iter().map(|t| ((t.job, t.task), t)).collect())
}

/// `sbatch --parsable`: the job id.
pub fn sbatch(args: &[String]) -> Result<u64> {
    let text = call("sbatch", args)?;
    let first = text.trim().split(';').next().unwrap_or("");
    first.parse::<u64>().with_context(|| format!("sbatch printed {:?}; expected a job id", text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_squeue_lines() {
        let t =
            parse_tasks("12|0|spatia-ab|PENDING|None\n12|1|spatia-ab|RUNNING|None\n13|N/A|other|RUNNING|None\nbad\n");
        assert_eq!(t.len(), 2);
        assert_eq!(
            t[1],
            Task { job: 12, task: 1, name: "spatia-ab".into(), state: "RUNNING".into(), reason: "None".into() }
        );
        assert!(is_terminal("NODE_FAIL") && is_node_failure("NODE_FAIL") && !is_terminal("PENDING"));
        assert!(!is_node_failure("TIMEOUT"));
    }
}
