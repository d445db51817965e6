//! The Slurm executor: runs a [`Dag`] on a Slurm cluster, the cache on a file system the head
//! and the compute nodes share. The head (`spatia run SPEC --executor slurm`) plans exactly as
//! the local executor does (same keys, same journal, same cache check), then:
//!
//! - submits the ready nodes as **job arrays**, one `sbatch --array` per stage kind and
//!   resources per wave (split at `max_array_size` and the cluster's `MaxArraySize`; never more
//!   than `max_in_flight` tasks pending or running), each from a manifest written into the
//!   cache (`slurm/manifests/<id>.json`; the job is named `spatia-<id>`); each task runs
//!   `spatia exec-node` ([`node`]), which computes its node with the local executor's
//!   [`super::run_node`] (key lock, atomic publish, log in the entry) and writes an outcome file;
//! - holds a ready node up to `wave_wait` seconds while other nodes of its group still wait
//!   for upstream work, so that a wave goes out as one array rather than one per poll;
//! - polls with one `squeue` per interval for all its jobs and reads the outcome files, settles
//!   finished nodes, submits what became ready; a task that ended `NODE_FAIL`, `PREEMPTED` or
//!   `BOOT_FAIL` without an outcome is resubmitted up to `resubmit` times;
//! - on start **attaches** to array tasks an earlier head left queued or running (job names
//!   carry the manifest, the manifest the keys), so a head killed by SIGKILL and started again
//!   never submits a key twice; SIGINT/SIGTERM stop the head, not the jobs.
//!
//! Settings: [`settings`]. The Slurm commands: [`cluster`]. The cache checks: [`sharedfs`].
//! Deliberately absent: Slurm job dependencies (the head submits a node once what it needs is
//! in the cache, so a failed upstream never leaves jobs pending forever) and `sacct`.
pub mod cluster;
pub mod node;
pub mod settings;
pub mod sharedfs;

use super::{conclude, emit, emit_start, plan, progress_bars, settle, summary, Options, Outcome, Output};
use crate::cache::Cache;
use crate::dag::Dag;
use crate::interrupt;
use crate::provenance::{NodeSummary, Status};
use crate::spec::Spec;
use anyhow::{Context, Result};
use settings::{Resources, Settings};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `sbatch` refusals in a row, with nothing in flight, before the queued nodes fail.
const SBATCH_TRIES: u32 = 3;

/// How long `squeue` may fail before the head says so (once).
const SQUEUE_SILENCE: Duration = Duration::from_secs(120);

/// The job-name prefix of every array Spatia submits.
pub const JOB_PREFIX: &str = "spatia-";

/// One node's array task, submitted by this head or found queued by an earlier one.
#[derive(Debug, Clone)]
struct InFlight {
    job: u64,
    task: usize,
    attached: bool,
    /// Slurm's last state for it (`PENDING` until the first poll says otherwise).
    state: String,
    /// When the task was first seen ended (or gone) without an outcome file.
    ended: Option<Instant>,
    group: String,
}

impl InFlight {
    fn job_task(&self) -> String {
        format!("{}_{}", self.job, self.task)
    }
}

/// Shell-quotes one word for `sbatch --wrap`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn abs(p: &std::path::Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| std::env::current_dir().unwrap_or_default().join(p))
}

/// Runs the DAG through Slurm; the outcome as [`super::run`]'s.
pub fn run(spec: &Spec, dag: &Dag, cache: &Cache, opts: &Options, settings: &Settings) -> Result<Outcome> {
    std::fs::create_dir_all(&cache.root)
        .with_context(|| format!("cannot create the cache {}", cache.root.display()))?;
    sharedfs::check(&cache.root)?;
    let limits = cluster::limits()?;
    let spatia = match &settings.spatia {
        Some(s) => PathBuf::from(s),
        None => std::env::current_exe()
            .context("cannot tell where this spatia binary is (set `spatia` in [executor.slurm])")?,
    };
    let cache_abs = abs(&cache.root);
    let cache = &Cache::new(cache_abs.clone());
    for d in [node::manifests_dir(cache), node::outcomes_dir(cache), node::logs_dir(cache)] {
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    }

    let mut st = plan(spec, dag, cache, opts)?;
    let (mp, bars) = progress_bars(dag, &st.status, opts.output, st.todo);
    let n = dag.nodes.len();
    let by_key: HashMap<&str, usize> = dag.nodes.iter().enumerate().map(|(i, x)| (x.key.as_str(), i)).collect();
    // per node: its resources and group (kind + resources), resubmissions so far
    let resources: Vec<Resources> =
        dag.nodes.iter().map(|x| settings.resources.overridden(x.decl.slurm.as_ref())).collect();
    let groups_v: Vec<String> = (0..n)
        .map(|i| {
            format!("{}{}", dag.nodes[i].decl.kind.name(), serde_json::to_string(&resources[i]).unwrap_or_default())
        })
        .collect();
    let group_of = |i: usize| -> String { groups_v[i].clone() };
    let mut attempts = vec![0u32; n];
    let mut inflight: BTreeMap<usize, InFlight> = BTreeMap::new();
    let mut queue: VecDeque<usize> = VecDeque::new();
    // per group: when its oldest queued node became ready
    let mut queued_since: HashMap<String, Instant> = HashMap::new();
    let mut submissions = 0usize;

    // attach to what an earlier head left queued or running for these keys
    if st.todo > 0 {
        let mut manifests: HashMap<String, Option<node::Manifest>> = HashMap::new();
        for t in cluster::queued_with_prefix(JOB_PREFIX)? {
            let id = t.name[JOB_PREFIX.len()..].to_string();
            let m = manifests
                .entry(id.clone())
                .or_insert_with(|| node::Manifest::read(&node::manifests_dir(cache).join(format!("{id}.json"))).ok());
            let Some(key) = m.as_ref().and_then(|m| m.keys.get(t.task)) else { continue };
            let Some(&i) = by_key.get(key.as_str()) else { continue };
            if st.status[i].is_some() || inflight.contains_key(&i) {
                continue;
            }
            let f =
                InFlight { job: t.job, task: t.task, attached: true, state: t.state, ended: None, group: group_of(i) };
            emit_start(opts.output, dag, i, Some(&f.job_task()));
            inflight.insert(i, f);
        }
        if !inflight.is_empty() && opts.output != Output::Json {
            mp.suspend(|| {
                eprintln!(
                    "spatia: attached to {} array task(s) already queued or running for this spec's keys",
                    inflight.len()
                )
            });
        }
    }
    for i in 0..n {
        if st.status[i].is_none() && st.pending_deps[i] == 0 && !inflight.contains_key(&i) {
            queue.push_back(i);
        }
    }

    let max_in_flight = settings.resources.max_in_flight.unwrap_or(settings::DEFAULT_MAX_IN_FLIGHT);
    let mut last_counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let (mut silent_since, mut said_silent): (Option<Instant>, bool) = (None, false);
    let mut refusals = 0u32;
    loop {
        if let Some(sig) = interrupt::received() {
            stop(&mut st, sig, &inflight, &mp);
        }
        // submit: group the queue by kind and resources, in order of first appearance
        if !queue.is_empty() {
            let mut refused: Option<String> = None;
            let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
            let mut rest = VecDeque::new();
            for i in queue.drain(..) {
                let g = group_of(i);
                match groups.iter_mut().find(|(k, _)| *k == g) {
                    Some((_, v)) => v.push(i),
                    None => groups.push((g, vec![i])),
                }
            }
            for (g, nodes) in groups {
                let since = *queued_since.entry(g.clone()).or_insert_with(Instant::now);
                // hold while nodes of this group still wait for upstream work in flight (a
                // failed upstream skips them: they stop holding the wave)
                let blocked = (0..n).any(|j| {
                    st.status[j].is_none() && st.pending_deps[j] > 0 && !inflight.contains_key(&j) && groups_v[j] == g
                });
                let full =
                    nodes.len() >= resources[nodes[0]].max_array_size.unwrap_or(settings::DEFAULT_MAX_ARRAY_SIZE);
                if blocked && !full && since.elapsed() < settings.wave_wait() && !inflight.is_empty() {
                    rest.extend(nodes);
                    continue;
                }
                queued_since.remove(&g);
                let r = &resources[nodes[0]];
                let in_group = inflight.values().filter(|f| f.group == g).count();
                let room_group = r.max_in_flight.unwrap_or(max_in_flight).saturating_sub(in_group);
                let room = max_in_flight.saturating_sub(inflight.len()).min(room_group);
                let take = nodes.len().min(room);
                let size =
                    r.max_array_size.unwrap_or(settings::DEFAULT_MAX_ARRAY_SIZE).min(limits.max_array_size).max(1);
                let mut sent = 0;
                for chunk in nodes[..take].chunks(size) {
                    let job = match submit(spec, dag, cache, settings, &spatia, r, chunk, &st.forced) {
                        Ok(job) => job,
                        Err(e) => {
                            refused = Some(format!("{e:#}"));
                            break;
                        }
                    };
                    refusals = 0;
                    submissions += 1;
                    sent += chunk.len();
                    for (t, &i) in chunk.iter().enumerate() {
                        let f = InFlight {
                            job,
                            task: t,
                            attached: false,
                            state: "PENDING".into(),
                            ended: None,
                            group: g.clone(),
                        };
                        emit_start(opts.output, dag, i, Some(&f.job_task()));
                        inflight.insert(i, f);
                    }
                }
                if sent < nodes.len() {
                    queued_since.insert(g.clone(), since);
                }
                rest.extend(nodes[sent..].iter().copied());
            }
            queue = rest;
            // sbatch refused (a submit limit such as MaxSubmitJobs, slurmctld busy): try again at
            // the next poll while tasks are in flight (they free the limit); with none in flight,
            // after SBATCH_TRIES refusals in a row the queued nodes fail with sbatch's message
            if let Some(why) = refused {
                refusals += 1;
                if inflight.is_empty() && refusals >= SBATCH_TRIES {
                    let failed: Vec<usize> = queue.drain(..).collect();
                    for i in failed {
                        let msg = format!("sbatch refused the array ({refusals} tries): {why}");
                        for d in settle(
                            dag,
                            opts.output,
                            &mp,
                            &bars,
                            &mut st,
                            i,
                            summary(&dag.nodes[i], Status::Failed, 0.0, Some(msg), None),
                        ) {
                            queue.push_back(d);
                        }
                    }
                } else if refusals == 1 {
                    let w = format!("sbatch refused an array; trying again at the next poll: {why}");
                    mp.suspend(|| eprintln!("spatia: warning: {w}"));
                    emit(opts.output, serde_json::json!({"event": "warning", "message": w}));
                }
            }
        }
        if inflight.is_empty() && queue.is_empty() {
            break;
        }
        // wait one poll interval (a signal ends the wait)
        let until = Instant::now() + settings.poll();
        while Instant::now() < until {
            if let Some(sig) = interrupt::received() {
                stop(&mut st, sig, &inflight, &mp);
            }
            std::thread::sleep(Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())));
        }
        // outcome files first, then one squeue for every job still in flight
        let mut finished: Vec<(usize, NodeSummary)> = Vec::new();
        let settled_now = |i: usize, f: &InFlight| -> Option<NodeSummary> {
            let p = node::outcome_file(cache, &dag.nodes[i].key, &f.job_task());
            let text = std::fs::read_to_string(&p).ok()?;
            let o: node::NodeOutcome = match serde_json::from_str(&text) {
                Ok(o) => o,
                Err(e) => {
                    return Some(summary(
                        &dag.nodes[i],
                        Status::Failed,
                        0.0,
                        Some(format!("the outcome file {} is not readable: {e}", p.display())),
                        None,
                    ))
                }
            };
            let mut s = summary(&dag.nodes[i], o.node.status, o.node.duration_s, o.node.error, o.node.log);
            s.warning = o.node.warning;
            if f.attached && s.status == Status::Miss {
                s.status = Status::Waited;
            }
            Some(s)
        };
        let ids: Vec<usize> = inflight.keys().copied().collect();
        for &i in &ids {
            if let Some(s) = settled_now(i, &inflight[&i]) {
                finished.push((i, s));
            }
        }
        for (i, _) in &finished {
            inflight.remove(i);
        }
        let mut jobs: Vec<u64> = inflight.values().map(|f| f.job).collect();
        jobs.sort_unstable();
        jobs.dedup();
        let tasks = cluster::tasks_of(&jobs);
        match (&tasks, silent_since) {
            (Some(_), _) => silent_since = None,
            (None, None) => silent_since = Some(Instant::now()),
            (None, Some(t)) if t.elapsed() >= SQUEUE_SILENCE && !said_silent => {
                let w = format!(
                    "squeue has not answered for {} s; still waiting for {} array task(s) (their outcome files \
                     are read meanwhile)",
                    t.elapsed().as_secs(),
                    inflight.len()
                );
                mp.suspend(|| eprintln!("spatia: warning: {w}"));
                emit(opts.output, serde_json::json!({"event": "warning", "message": w}));
                said_silent = true;
            }
            (None, Some(_)) => {}
        }
        if let Some(tasks) = tasks {
            let now = Instant::now();
            let mut resubmit: Vec<usize> = Vec::new();
            for (&i, f) in inflight.iter_mut() {
                match tasks.get(&(f.job, f.task)) {
                    Some(t) if !cluster::is_terminal(&t.state) => {
                        f.state = t.state.clone();
                        f.ended = None;
                    }
                    other => {
                        if let Some(t) = other {
                            f.state = t.state.clone();
                        } else if !cluster::is_terminal(&f.state) {
                            f.state = "GONE".into();
                        }
                        let since = *f.ended.get_or_insert(now);
                        if now.duration_since(since) < settings.outcome_grace() {
                            continue;
                        }
                        // one last look for its outcome
                        if let Some(s) = settled_now(i, f) {
                            finished.push((i, s));
                            continue;
                        }
                        let log = node::logs_dir(cache).join(format!("{}.out", f.job_task()));
                        let why = match ended(&f.state, attempts[i], settings.resubmit(), &f.job_task(), cache, &log) {
                            Ended::Resubmit => {
                                attempts[i] += 1;
                                let w = format!(
                                    "Slurm array task {} of `{}` ended {} (a node failure); resubmitting it ({} of at \
                                     most {})",
                                    f.job_task(),
                                    dag.nodes[i].stage,
                                    f.state,
                                    attempts[i],
                                    settings.resubmit()
                                );
                                mp.suspend(|| eprintln!("spatia: warning: {w}"));
                                emit(
                                    opts.output,
                                    serde_json::json!({
                                        "event": "warning", "stage": dag.nodes[i].stage,
                                        "key": dag.nodes[i].key, "message": w
                                    }),
                                );
                                resubmit.push(i);
                                continue;
                            }
                            Ended::Fail(why) => why,
                        };
                        finished.push((i, summary(&dag.nodes[i], Status::Failed, 0.0, Some(why), None)));
                    }
                }
            }
            for i in resubmit {
                inflight.remove(&i);
                queue.push_back(i);
            }
        }
        for (i, _) in &finished {
            inflight.remove(i);
        }
        for (i, s) in finished {
            for d in settle(dag, opts.output, &mp, &bars, &mut st, i, s) {
                // (a node attached to before its inputs were settled is in flight already)
                if !inflight.contains_key(&d) {
                    queue.push_back(d);
                }
            }
        }
        // Slurm's view per stage: pending and running tasks
        let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (&i, f) in &inflight {
            let c = counts.entry(dag.nodes[i].stage.clone()).or_default();
            if f.state == "RUNNING" || f.state == "COMPLETING" {
                c.1 += 1;
            } else {
                c.0 += 1;
            }
        }
        for (stage, b) in &bars {
            let (p, r) = counts.get(stage).copied().unwrap_or_default();
            if b.message() != "FAILED" {
                b.set_message(if p + r > 0 { format!("{p} pending, {r} running") } else { String::new() });
            }
        }
        if counts != last_counts {
            for (stage, (p, r)) in &counts {
                emit(opts.output, serde_json::json!({"event": "slurm", "stage": stage, "pending": p, "running": r}));
            }
            last_counts = counts;
        }
        st.tr.update(&st.status, false);
    }
    crate::util::timing(&format!("slurm: {submissions} sbatch call(s)"), st.tr.t0);
    conclude(spec, dag, cache, st, &mp, &bars)
}

/// What becomes of a node whose task ended (or left the queue) without an outcome file.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Resubmit,
    /// The node fails, for this reason.
    Fail(String),
}

/// Resubmit after a node failure (`NODE_FAIL`, `PREEMPTED`, `BOOT_FAIL`) while `attempts` <
/// `max`; anything else — or a node failure once more — fails the node, naming Slurm's state
/// and the task's Slurm log. `GONE`: no longer listed by `squeue` at all.
fn ended(state: &str, attempts: u32, max: u32, job_task: &str, cache: &Cache, log: &std::path::Path) -> Ended {
    if cluster::is_node_failure(state) && attempts < max {
        return Ended::Resubmit;
    }
    Ended::Fail(match state {
        "GONE" => format!(
            "Slurm array task {job_task} left the queue without writing an outcome file into {} (is the cache shared \
             with the compute nodes at the same path?); Slurm's log of the task: {}",
            node::outcomes_dir(cache).display(),
            log.display()
        ),
        s => format!(
            "Slurm array task {job_task} ended {s}{} without writing an outcome file; Slurm's log of the task: {}",
            if cluster::is_node_failure(s) { format!(" after {attempts} resubmission(s)") } else { String::new() },
            log.display()
        ),
    })
}

/// SIGINT/SIGTERM on the head: the jobs keep running; says so, then marks the run interrupted.
fn stop(
    st: &mut super::Planned<'_>,
    sig: i32,
    inflight: &BTreeMap<usize, InFlight>,
    mp: &indicatif::MultiProgress,
) -> ! {
    if !inflight.is_empty() {
        let _ = mp.clear();
        eprintln!(
            "spatia: {} Slurm array task(s) left queued or running; `spatia run` again attaches to them, \
             `scancel --name=<job name>` (names start with `{JOB_PREFIX}`) stops them",
            inflight.len()
        );
    }
    st.tr.interrupted(sig, &st.status, mp)
}

/// Writes the manifest of `nodes` and submits it as one array; the job id.
#[allow(clippy::too_many_arguments)]
fn submit(
    spec: &Spec,
    dag: &Dag,
    cache: &Cache,
    settings: &Settings,
    spatia: &std::path::Path,
    r: &Resources,
    nodes: &[usize],
    forced: &[bool],
) -> Result<u64> {
    let m = node::Manifest {
        schema_version: node::MANIFEST_SCHEMA_VERSION,
        spec: abs(&spec.file),
        root: abs(&spec.root),
        cache: cache.root.clone(),
        kind: dag.nodes[nodes[0]].decl.kind.name().to_string(),
        keys: nodes.iter().map(|&i| dag.nodes[i].key.clone()).collect(),
        forced: nodes.iter().map(|&i| forced[i]).collect(),
    };
    let bytes = serde_json::to_vec_pretty(&m)?;
    let id = blake3::hash(&bytes).to_hex()[..16].to_string();
    let file = node::manifests_dir(cache).join(format!("{id}.json"));
    node::write_atomic(&file, &bytes)?;
    let mut args: Vec<String> = vec![
        "--parsable".into(),
        format!("--job-name={JOB_PREFIX}{id}"),
        format!("--array=0-{}", nodes.len() - 1),
        format!("--output={}/%A_%a.out", node::logs_dir(cache).display()),
        format!("--chdir={}", m.root.display()),
    ];
    args.extend(r.sbatch_args());
    args.extend(settings.sbatch_args.iter().cloned());
    args.push(format!(
        "--wrap=exec {} exec-node --manifest {}",
        quote(&spatia.display().to_string()),
        quote(&file.display().to_string())
    ));
    cluster::sbatch(&args).with_context(|| format!("submitting {} `{}` node(s)", nodes.len(), m.kind))
}

#[cfg(test)]
mod tests {
    use super::{ended, Ended};
    use crate::cache::Cache;
    use std::path::Path;

    #[test]
    fn node_failures_are_resubmitted_a_bounded_number_of_times() {
        let (c, log) = (Cache::new("/c"), Path::new("/c/slurm/logs/7_3.out"));
        for s in ["NODE_FAIL", "PREEMPTED", "BOOT_FAIL"] {
            assert_eq!(ended(s, 0, 2, "7_3", &c, log), Ended::Resubmit);
            assert_eq!(ended(s, 1, 2, "7_3", &c, log), Ended::Resubmit);
            let Ended::Fail(why) = ended(s, 2, 2, "7_3", &c, log) else { panic!("{s}: resubmitted a third time") };
            assert!(why.contains(s) && why.contains("after 2 resubmission(s)") && why.contains("7_3.out"), "{why}");
        }
        for s in ["FAILED", "TIMEOUT", "OUT_OF_MEMORY", "CANCELLED", "COMPLETED"] {
            let Ended::Fail(why) = ended(s, 0, 2, "7_3", &c, log) else { panic!("{s}: resubmitted") };
            assert!(why.contains(s) && !why.contains("resubmission"), "{why}");
        }
        let Ended::Fail(why) = ended("GONE", 0, 2, "7_3", &c, log) else { panic!("GONE resubmitted") };
        assert!(why.contains("/c/slurm/outcomes") && why.contains("shared"), "{why}");
    }
}
