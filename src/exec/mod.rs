//! The local executor: runs a [`Dag`] against a [`Cache`] with `jobs` worker threads.
//!
//! Cached nodes are skipped without being touched; ready nodes run in parallel; a failed node
//! stops its dependents while unrelated branches finish. Before computing a key a worker takes
//! the key's lock, so two processes never compute one key: the second waits and reuses.
//! Progress goes to indicatif bars (per stage, counting shards), to nothing (`quiet`) or to
//! JSON lines on stdout (`json`).
//!
//! Every reused entry is checked first ([`Cache::check`]: stat snapshot, re-hash on a
//! change); a damaged one is quarantined under its key's lock and recomputed together with
//! everything downstream of it. The run keeps a journal (`runs/…/run.json`, see
//! `provenance`): written once planning is done — while the cache's gc lock is held shared —
//! then at most every half second as nodes finish, and at the end. SIGINT/SIGTERM
//! ([`crate::interrupt`]) stop scheduling, mark the journal `interrupted` and exit 130/143.
//! Published copies are made by [`publish`]: staged beside the target, moved into place
//! atomically, never over anything Spatia did not create.
pub mod publish;
pub mod slurm;

use crate::cache::{Cache, Check, InputRecord, Published, Record, RECORD_SCHEMA_VERSION};
use crate::dag::Dag;
use crate::interrupt;
use crate::provenance::{Journal, NodeSummary, RunStatus, RunSummary, Status, RUN_SCHEMA_VERSION};
use crate::spec::Spec;
use crate::stages::{Need, RunCx};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{mpsc, Mutex};
use std::time::Instant;

/// How to report progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Bars,
    Quiet,
    Json,
}

/// Executor options.
#[derive(Debug, Clone)]
pub struct Options {
    pub jobs: usize,
    pub output: Output,
    pub command: Vec<String>,
    /// A scratch run (`spatia reproduce`): its journal goes under this directory instead of
    /// `<root>/runs`, and nothing is published.
    pub aside: Option<PathBuf>,
    /// Re-hash every reused entry's outputs against its record (`--rehash`), not only when
    /// its stat snapshot moved.
    pub rehash_outputs: bool,
}

/// Outcome of a run.
pub struct Outcome {
    pub summary: RunSummary,
    pub run_file: PathBuf,
}

fn emit(output: Output, v: serde_json::Value) {
    if output == Output::Json {
        println!("{}", crate::util::json_for_terminal(&v.to_string()));
    }
}

/// Checks every node's entry ([`Cache::check`]) and marks the nodes that must be
/// recomputed although their entry looks good: everything downstream of a damaged entry.
pub fn assess(dag: &Dag, cache: &Cache) -> (Vec<Check>, Vec<bool>) {
    assess_with(dag, cache, false)
}

/// [`assess`]; with `rehash`, every entry that passes the stat check is also re-hashed
/// against its record ([`Cache::problems`]): one whose outputs' digests no longer match is
/// damaged (`spatia run --rehash`).
pub fn assess_with(dag: &Dag, cache: &Cache, rehash: bool) -> (Vec<Check>, Vec<bool>) {
    let n = dag.nodes.len();
    let keys: Vec<&str> = dag.nodes.iter().map(|node| node.key.as_str()).collect();
    let mut checks = cache.check_many(&keys);
    if rehash {
        for (c, k) in checks.iter_mut().zip(&keys) {
            if *c == Check::Good {
                if let Some(b) = cache.problems(k).first() {
                    *c = Check::Damaged(format!("{}: {} (found by --rehash)", b.path, b.problem));
                }
            }
        }
    }
    let mut all_dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, node) in dag.nodes.iter().enumerate() {
        for &d in &node.deps {
            all_dependents[d].push(i);
        }
    }
    // a damaged entry is recomputed (`run_node` sees it again under the key's lock: one that
    // only `--rehash` finds must be forced) with everything downstream
    let mut forced = vec![false; n];
    let mut stack: Vec<usize> = (0..n).filter(|&i| matches!(checks[i], Check::Damaged(_))).collect();
    if rehash {
        for &i in &stack {
            forced[i] = true;
        }
    }
    while let Some(i) = stack.pop() {
        for &d in &all_dependents[i] {
            if !std::mem::replace(&mut forced[d], true) {
                stack.push(d);
            }
        }
    }
    (checks, forced)
}

/// The journal of a run in progress plus what it last said; if the run returns early with an
/// error, dropping it marks the journal `failed` (so no run is left saying `running`).
struct Tracker<'a> {
    spec: &'a Spec,
    dag: &'a Dag,
    opts: &'a Options,
    started: String,
    t0: Instant,
    journal: Option<Journal>,
    done: bool,
    last: Vec<NodeSummary>,
}

impl Tracker<'_> {
    fn summary(&self, nodes: Vec<NodeSummary>, st: RunStatus, stopped_by: Option<String>) -> RunSummary {
        let (spec, dag, opts) = (self.spec, self.dag, self.opts);
        let mut arms = BTreeMap::new();
        for (arm, stages) in &dag.arms {
            let mut m = BTreeMap::new();
            for (stage, idx) in stages {
                let single = idx.len() == 1 && dag.nodes[idx[0]].item.is_none();
                let v = if single {
                    serde_json::Value::String(dag.nodes[idx[0]].key.clone())
                } else {
                    serde_json::Value::Object(
                        idx.iter()
                            .map(|&i| {
                                (
                                    dag.nodes[i].item.as_ref().map(|x| x.id.clone()).unwrap_or_default(),
                                    serde_json::Value::String(dag.nodes[i].key.clone()),
                                )
                            })
                            .collect(),
                    )
                };
                m.insert(stage.clone(), v);
            }
            arms.insert(arm.clone(), m);
        }
        let settings = spec
            .arms
            .iter()
            .map(|a| (a.name.clone(), a.settings.iter().cloned().collect::<BTreeMap<_, _>>()))
            .collect();
        let ok = st == RunStatus::Ok;
        let pid = std::process::id();
        RunSummary {
            schema_version: RUN_SCHEMA_VERSION,
            name: spec.name.clone(),
            spec: spec.file.strip_prefix(&spec.root).unwrap_or(&spec.file).display().to_string(),
            spec_blake3: spec.text_digest.clone(),
            seed: spec.seed,
            command: opts.command.clone(),
            started: self.started.clone(),
            finished: if st == RunStatus::Running { String::new() } else { crate::util::now_rfc3339() },
            duration_s: self.t0.elapsed().as_secs_f64(),
            tool: crate::provenance::tool_version(),
            host: crate::util::hostname(),
            jobs: opts.jobs.max(1),
            status: st,
            pid,
            pid_start: crate::provenance::process_start(pid),
            updated: crate::util::now_rfc3339(),
            stopped_by,
            arms,
            settings,
            nodes,
            ok,
        }
    }

    fn nodes(&self, status: &[Option<NodeSummary>]) -> Vec<NodeSummary> {
        status
            .iter()
            .enumerate()
            .map(|(i, s)| s.clone().unwrap_or_else(|| summary(&self.dag.nodes[i], Status::Pending, 0.0, None, None)))
            .collect()
    }

    /// Writes the journal (`running`), at most every [`JOURNAL_INTERVAL`] unless `now`.
    fn update(&mut self, status: &[Option<NodeSummary>], now: bool) {
        let due = self.journal.as_ref().is_some_and(|j| now || j.due());
        if due {
            self.last = self.nodes(status);
            let s = self.summary(self.last.clone(), RunStatus::Running, None);
            if let Some(j) = self.journal.as_mut() {
                if let Err(e) = j.write(&s) {
                    eprintln!("spatia: warning: {e:#}");
                }
            }
        }
    }

    /// Writes the final journal.
    fn finish(
        &mut self,
        nodes: Vec<NodeSummary>,
        st: RunStatus,
        stopped_by: Option<String>,
    ) -> anyhow::Result<(RunSummary, PathBuf)> {
        self.done = true;
        let s = self.summary(nodes, st, stopped_by);
        let j = self.journal.as_mut().ok_or_else(|| anyhow::anyhow!("no journal"))?;
        j.write(&s)?;
        Ok((s, j.file.clone()))
    }

    /// SIGINT/SIGTERM: marks the journal interrupted, says so on stderr, stops the children
    /// of running commands and ends the process (the worker threads cannot be joined early).
    fn interrupted(&mut self, sig: i32, status: &[Option<NodeSummary>], mp: &MultiProgress) -> ! {
        let _ = mp.clear();
        interrupt::stop_children();
        let nodes = self.nodes(status);
        let done = nodes.iter().filter(|n| n.status != Status::Pending).count();
        let total = nodes.len();
        let file = match self.finish(nodes, RunStatus::Interrupted, Some(interrupt::name(sig))) {
            Ok((_, f)) => f.strip_prefix(&self.spec.root).unwrap_or(&f).display().to_string(),
            Err(e) => format!("(not written: {e:#})"),
        };
        eprintln!("spatia: interrupted by {}: stopped scheduling with {done} of {total} node(s) done; run record {file} marked interrupted", interrupt::name(sig));
        std::process::exit(interrupt::exit_code(sig));
    }
}

impl Drop for Tracker<'_> {
    fn drop(&mut self) {
        if !self.done && self.journal.is_some() {
            let nodes = std::mem::take(&mut self.last);
            let _ = self.finish(nodes, RunStatus::Failed, Some("stopped by an error (see the run's stderr)".into()));
        }
    }
}

/// What planning leaves an executor: the journal (written), each node's status so far (cached
/// nodes `Hit`), unfinished dependencies and dependents of the nodes to run, the forced flags.
struct Planned<'a> {
    tr: Tracker<'a>,
    status: Vec<Option<NodeSummary>>,
    pending_deps: Vec<usize>,
    dependents: Vec<Vec<usize>>,
    forced: Vec<bool>,
    todo: usize,
}

/// Checks the cache, decides what runs and writes the journal (under the shared gc lock).
fn plan<'a>(spec: &'a Spec, dag: &'a Dag, cache: &Cache, opts: &'a Options) -> anyhow::Result<Planned<'a>> {
    let mut tr = Tracker {
        spec,
        dag,
        opts,
        started: crate::util::now_rfc3339(),
        t0: Instant::now(),
        journal: None,
        done: false,
        last: Vec::new(),
    };
    let n = dag.nodes.len();
    let mut status: Vec<Option<NodeSummary>> = vec![None; n];
    let mut pending_deps: Vec<usize> = vec![0; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];

    // Planning holds the cache's gc lock (shared) until the journal naming every planned key
    // is on disk: gc never removes an entry this run decided to reuse.
    let gc_guard = match cache.gc_lock(false) {
        Ok(g) => Some(g),
        // a read-only cache: nothing can be computed into it nor collected from it, but a run
        // that only reuses entries still works
        Err(e) if matches!(e.kind(), std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem) => {
            eprintln!("spatia: warning: cannot lock the cache for this run ({e}); going on without the gc lock");
            None
        }
        Err(e) => anyhow::bail!("cannot lock the cache for this run: {e}"),
    };
    let tq = Instant::now();
    let (checks, forced) = assess_with(dag, cache, opts.rehash_outputs);
    crate::util::timing("check the cache entries", tq);
    let mut todo = 0usize;
    for (i, node) in dag.nodes.iter().enumerate() {
        if checks[i] == Check::Good && !forced[i] {
            status[i] = Some(summary(node, Status::Hit, 0.0, None, None));
        } else {
            todo += 1;
        }
    }
    for (i, node) in dag.nodes.iter().enumerate() {
        if status[i].is_some() {
            continue;
        }
        for &d in &node.deps {
            if status[d].is_none() {
                pending_deps[i] += 1;
                dependents[d].push(i);
            }
        }
    }
    tr.last = tr.nodes(&status);
    let runs_root = opts.aside.as_deref().unwrap_or(&spec.root);
    tr.journal = Some(Journal::create(runs_root, &tr.summary(tr.last.clone(), RunStatus::Running, None))?);
    drop(gc_guard);
    crate::util::timing("check the cache entries and write the journal", tq);
    emit(opts.output, serde_json::json!({"event": "plan", "nodes": n, "cached": n - todo, "to_run": todo}));
    Ok(Planned { tr, status, pending_deps, dependents, forced, todo })
}

/// Progress bars: one per stage name with shards to run (hidden unless `Output::Bars`).
fn progress_bars(
    dag: &Dag,
    status: &[Option<NodeSummary>],
    output: Output,
    todo: usize,
) -> (MultiProgress, HashMap<String, ProgressBar>) {
    let mp = MultiProgress::with_draw_target(if output == Output::Bars && todo > 0 {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    if todo > 0 && output == Output::Bars {
        let style = ProgressStyle::with_template("{prefix:>16.bold} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        for (i, node) in dag.nodes.iter().enumerate() {
            if status[i].is_none() {
                let b = bars.entry(node.stage.clone()).or_insert_with(|| {
                    let b = mp.add(ProgressBar::new(0));
                    b.set_style(style.clone());
                    b.set_prefix(node.stage.clone());
                    b
                });
                b.inc_length(1);
            }
        }
    }
    (mp, bars)
}

/// Records node `i`'s result (warning, bar, `finish` event); on failure marks every transitive
/// dependent skipped, else returns the dependents that became ready.
fn settle(
    dag: &Dag,
    output: Output,
    mp: &MultiProgress,
    bars: &HashMap<String, ProgressBar>,
    st: &mut Planned<'_>,
    i: usize,
    res: NodeSummary,
) -> Vec<usize> {
    let node = &dag.nodes[i];
    if let Some(w) = &res.warning {
        mp.suspend(|| eprintln!("spatia: warning: {w}"));
        emit(output, serde_json::json!({"event": "warning", "stage": node.stage, "key": node.key, "message": w}));
    }
    if let Some(b) = bars.get(&node.stage) {
        b.inc(1);
        if res.status == Status::Failed {
            b.set_message("FAILED");
        }
    }
    emit(
        output,
        serde_json::json!({"event": "finish", "stage": node.stage, "item": node.item.as_ref().map(|x| &x.id), "key": node.key, "status": res.status, "duration_s": res.duration_s, "error": res.error, "log": res.log}),
    );
    let failed = res.status == Status::Failed;
    st.status[i] = Some(res);
    let mut ready = Vec::new();
    if failed {
        // skip every transitive dependent
        let mut stack = st.dependents[i].clone();
        while let Some(d) = stack.pop() {
            if st.status[d].is_none() {
                let why = format!(
                    "needs `{}`{} which failed",
                    node.stage,
                    node.item.as_ref().map(|x| format!(" [{}]", x.shown())).unwrap_or_default()
                );
                st.status[d] = Some(summary(&dag.nodes[d], Status::Skipped, 0.0, Some(why), None));
                if let Some(b) = bars.get(&dag.nodes[d].stage) {
                    b.inc(1);
                }
                emit(
                    output,
                    serde_json::json!({"event": "skip", "stage": dag.nodes[d].stage, "key": dag.nodes[d].key}),
                );
                stack.extend(st.dependents[d].iter().copied());
            }
        }
    } else {
        for &d in &st.dependents[i] {
            st.pending_deps[d] -= 1;
            if st.pending_deps[d] == 0 && st.status[d].is_none() {
                ready.push(d);
            }
        }
    }
    ready
}

/// The end of a run: publish copies, the final journal.
fn conclude(
    spec: &Spec,
    dag: &Dag,
    cache: &Cache,
    mut st: Planned<'_>,
    mp: &MultiProgress,
    bars: &HashMap<String, ProgressBar>,
) -> anyhow::Result<Outcome> {
    for b in bars.values() {
        b.finish();
    }
    if let Some(sig) = interrupt::received() {
        st.tr.interrupted(sig, &st.status, mp);
    }
    if st.todo > 0 {
        // before the publish copies, which may take a while
        st.tr.update(&st.status, true);
    }

    // publish copies (staged beside the target, moved into place atomically; see `publish`)
    let done: Vec<bool> = st
        .status
        .iter()
        .map(|s| matches!(s.as_ref().map(|s| &s.status), Some(Status::Hit | Status::Miss | Status::Waited)))
        .collect();
    if st.tr.opts.aside.is_none() {
        publish::publish(spec, dag, cache, &done)?;
    }

    if let Some(sig) = interrupt::received() {
        st.tr.interrupted(sig, &st.status, mp);
    }
    let nodes = st.tr.nodes(&st.status);
    let ok = nodes.iter().all(|s| matches!(s.status, Status::Hit | Status::Miss | Status::Waited));
    let (summary, run_file) = st.tr.finish(nodes, if ok { RunStatus::Ok } else { RunStatus::Failed }, None)?;
    Ok(Outcome { summary, run_file })
}

/// Runs every node whose entry is missing or damaged; keeps the run's journal.
pub fn run(spec: &Spec, dag: &Dag, cache: &Cache, opts: &Options) -> anyhow::Result<Outcome> {
    let mut st = plan(spec, dag, cache, opts)?;
    let n = dag.nodes.len();
    let todo = st.todo;
    let (mp, bars) = progress_bars(dag, &st.status, opts.output, todo);

    let (job_tx, job_rx) = mpsc::channel::<usize>();
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, NodeSummary)>();
    // no worker threads when every node is cached
    let jobs = opts.jobs.max(1).min(todo);
    let forced = &st.forced.clone();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let done_tx = done_tx.clone();
            let job_rx = &job_rx;
            s.spawn(move || loop {
                let next = job_rx.lock().ok().and_then(|rx| rx.recv().ok());
                let Some(i) = next else { break };
                let r = if interrupt::received().is_some() {
                    summary(&dag.nodes[i], Status::Pending, 0.0, None, None)
                } else {
                    run_node(spec, dag, cache, i, forced[i])
                };
                if done_tx.send((i, r)).is_err() {
                    break;
                }
            });
        }
        drop(done_tx);
        let mut running = 0usize;
        for i in 0..n {
            if st.status[i].is_none() && st.pending_deps[i] == 0 {
                emit_start(opts.output, dag, i, None);
                let _ = job_tx.send(i);
                running += 1;
            }
        }
        while running > 0 {
            if let Some(sig) = interrupt::received() {
                st.tr.interrupted(sig, &st.status, &mp);
            }
            let (i, res) = match done_rx.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(x) => x,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if let Some(sig) = interrupt::received() {
                st.tr.interrupted(sig, &st.status, &mp);
            }
            running -= 1;
            for d in settle(dag, opts.output, &mp, &bars, &mut st, i, res) {
                emit_start(opts.output, dag, d, None);
                let _ = job_tx.send(d);
                running += 1;
            }
            st.tr.update(&st.status, false);
        }
        drop(job_tx);
    });
    conclude(spec, dag, cache, st, &mp, &bars)
}

/// The `start` event of node `i` (with the Slurm array task that runs it, if any).
fn emit_start(output: Output, dag: &Dag, i: usize, job: Option<&str>) {
    let node = &dag.nodes[i];
    let item = node.item.as_ref().map(|x| &x.id);
    let mut v = serde_json::json!({"event": "start", "stage": node.stage, "item": item, "key": node.key});
    if let (Some(j), Some(m)) = (job, v.as_object_mut()) {
        m.insert("job".into(), serde_json::Value::String(j.to_string()));
    }
    emit(output, v);
}

fn summary(
    node: &crate::dag::Node,
    status: Status,
    duration_s: f64,
    error: Option<String>,
    log: Option<String>,
) -> NodeSummary {
    NodeSummary {
        key: node.key.clone(),
        stage: node.stage.clone(),
        kind: node.decl.kind.name().to_string(),
        arms: node.arms.clone(),
        item: node.item.as_ref().map(|x| x.id.clone()),
        status,
        duration_s,
        error,
        log,
        warning: None,
    }
}

/// The records of every transitive upstream node of node `i`, in topological order.
fn lineage(dag: &Dag, cache: &Cache, i: usize) -> std::io::Result<Vec<crate::stages::Upstream>> {
    let mut seen = vec![false; dag.nodes.len()];
    let mut stack = dag.nodes[i].deps.clone();
    while let Some(j) = stack.pop() {
        if !std::mem::replace(&mut seen[j], true) {
            stack.extend(dag.nodes[j].deps.iter().copied());
        }
    }
    let mut out = Vec::new();
    for (j, s) in seen.iter().enumerate() {
        if *s {
            let record = cache.record(&dag.nodes[j].key)?;
            out.push(crate::stages::Upstream { arms: dag.nodes[j].arms.clone(), record });
        }
    }
    Ok(out)
}

/// Computes one node into the cache (or reuses what another process published meanwhile).
/// The Slurm executor's tasks call it too ([`slurm`]).
pub(crate) fn run_node(spec: &Spec, dag: &Dag, cache: &Cache, i: usize, forced: bool) -> NodeSummary {
    let node = &dag.nodes[i];
    let t0 = Instant::now();
    let what = format!(
        "{}{}",
        node.stage,
        node.item.as_ref().map(|x| format!(" [{}]", crate::util::display_id(&x.id))).unwrap_or_default()
    );
    let fail = |msg: String, log: Option<PathBuf>| {
        summary(node, Status::Failed, t0.elapsed().as_secs_f64(), Some(msg), log.map(|p| p.display().to_string()))
    };
    let _lock = match cache.lock(&node.key) {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot lock key {}: {e}", node.key), None),
    };
    // look again under the lock: another process may have computed or repaired it meanwhile
    let mut warning = None;
    // a forced node (a damaged entry upstream, or `--rehash` found its outputs changed) is
    // re-hashed: changed bytes are quarantined like any damaged entry
    let check = match cache.check(&node.key) {
        Check::Good if forced => match cache.problems(&node.key).first() {
            Some(b) => Check::Damaged(format!("{}: {}", b.path, b.problem)),
            None => Check::Good,
        },
        c => c,
    };
    match check {
        Check::Good if !forced => return summary(node, Status::Waited, t0.elapsed().as_secs_f64(), None, None),
        Check::Good | Check::Missing => {}
        Check::Damaged(why) => match cache.quarantine(&node.key) {
            Ok(q) => {
                warning = Some(format!(
                    "cache entry {} of `{what}` is damaged ({why}); moved to {}; recomputing it and what depends on it",
                    node.key,
                    q.display()
                ))
            }
            Err(e) => {
                return fail(
                    format!("cache entry {} is damaged ({why}) and cannot be moved aside: {e}", node.key),
                    None,
                )
            }
        },
    }
    let writer = match cache.writer(&node.key) {
        Ok(w) => w,
        Err(e) => return fail(format!("cannot create a temporary entry: {e}"), None),
    };
    let log_file = match std::fs::File::create(writer.log_path()) {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot create the log {}: {e}", writer.log_path().display()), None),
    };
    let log = Mutex::new(log_file);
    let needs: Vec<Need> = node
        .needs
        .iter()
        .map(|nn| Need {
            name: nn.name.clone(),
            kind: nn.kind.clone(),
            dirs: nn.nodes.iter().map(|(item, j)| (item.clone(), cache.out_dir(&dag.nodes[*j].key))).collect(),
            arms: nn.arms.clone(),
        })
        .collect();
    let upstream = if node.decl.kind.wants_lineage() {
        match lineage(dag, cache, i) {
            Ok(u) => u,
            Err(e) => return fail(format!("cannot read upstream records: {e}"), None),
        }
    } else {
        Vec::new()
    };
    let started = crate::util::now_rfc3339();
    let (out, scratch) = (writer.out(), writer.scratch());
    let cx = RunCx {
        stage: &node.stage,
        key: &node.key,
        params: &node.decl.checked.params,
        typed: &node.decl.checked.typed,
        out: &out,
        scratch: &scratch,
        root: &spec.root,
        needs: &needs,
        inputs: &node.inputs,
        item: node.item.as_ref(),
        seed: spec.seed,
        cohort: spec.cohort.as_ref(),
        slides: &dag.slides,
        upstream: &upstream,
        log: &log,
    };
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| node.decl.kind.run(&cx))).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(anyhow::anyhow!("stage panicked: {msg}"))
        });
    if let Err(mut e) = result {
        if crate::util::is_write_refused(&e) {
            // name where the stage was writing, whatever file it was
            e = e.context(format!("writing the outputs of stage `{}` into {}", node.stage, out.display()));
        }
        // shown on the terminal and in the log: ids quoted in it show bidi controls escaped
        let msg = crate::util::display_text(&format!("{e:#}"));
        cx.log(&format!("spatia: stage `{}` failed: {msg}", node.stage));
        drop(log);
        let log_path = writer.fail();
        let mut s = fail(msg, Some(log_path));
        s.warning = warning;
        return s;
    }
    drop(log);
    let finished = crate::util::now_rfc3339();
    let mut record = Record {
        schema_version: RECORD_SCHEMA_VERSION,
        key: node.key.clone(),
        kind: node.decl.kind.name().to_string(),
        kind_version: node.decl.kind.version(),
        stage: node.stage.clone(),
        item: node.item.as_ref().map(|x| x.id.clone()),
        params: node.decl.checked.params.clone(),
        upstream: node.hashable.upstream.clone(),
        inputs: node
            .inputs
            .iter()
            .zip(&node.decl.checked.inputs)
            .map(|(r, decl)| InputRecord { role: r.role.clone(), path: decl.path.clone(), blake3: r.digest.clone() })
            .collect(),
        seed: node.hashable.seed,
        outputs: Vec::new(),
        output_digest: String::new(),
        started,
        finished,
        duration_s: t0.elapsed().as_secs_f64(),
        tool: crate::provenance::tool_version(),
        host: crate::util::hostname(),
        libraries: crate::provenance::library_versions(),
    };
    match writer.finish(&mut record, forced) {
        Ok((_, how)) => {
            if let Published::Replaced(q) = how {
                let w = format!("cache entry {} of `{what}` was in the way (no record, or outputs unlike its recomputation); moved to {}", node.key, q.display());
                warning = Some(warning.map(|x| format!("{x}; {w}")).unwrap_or(w));
            }
            let mut s = summary(node, Status::Miss, t0.elapsed().as_secs_f64(), None, None);
            s.warning = warning;
            s
        }
        Err(e) => fail(format!("cannot publish the entry: {e}"), None),
    }
}
