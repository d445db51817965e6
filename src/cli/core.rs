//! The orchestrator verbs: `run`, `plan`, `dag`, `show`, `gc`, `verify`, `kinds`.
use crate::cache::{hash::StatCache, Cache};
use crate::dag::{self, Dag};
use crate::exec::{self, Output};
use crate::provenance::{self, RunSummary, Status};
use crate::spec::{self, Spec};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// Options shared by the verbs that read a spec.
#[derive(clap::Args, Debug, Clone)]
pub struct SpecOpts {
    /// The experiment spec (YAML)
    pub spec: PathBuf,
    /// Project root (default: nearest ancestor of the spec holding spatia.toml or .git)
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Cache directory (default: <root>/cache, or $SPATIA_CACHE)
    #[arg(long)]
    pub cache: Option<PathBuf>,
}

/// `spatia run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub spec: SpecOpts,
    /// Stages run in parallel (default: number of cores)
    #[arg(long, short = 'j', value_parser = jobs)]
    pub jobs: Option<usize>,
    /// No progress output, only the final line
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// JSON lines on stdout (events, then a summary)
    #[arg(long)]
    pub json: bool,
    /// Ignore the stat cache: read and hash every input file again, and re-hash every reused
    /// entry's outputs against its record
    #[arg(long)]
    pub rehash: bool,
    /// Where the nodes run: `local` threads or `slurm` job arrays (see docs/slurm.md)
    #[arg(long, value_enum, default_value_t)]
    pub executor: super::slurm::Executor,
}

/// `spatia plan`.
#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub spec: SpecOpts,
    /// One JSON object on stdout
    #[arg(long)]
    pub json: bool,
    /// Ignore the stat cache: read and hash every input file again
    #[arg(long)]
    pub rehash: bool,
}

/// `spatia dag`.
#[derive(clap::Args, Debug)]
pub struct DagArgs {
    #[command(flatten)]
    pub spec: SpecOpts,
    /// Print Graphviz DOT instead of the text tree
    #[arg(long)]
    pub dot: bool,
}

/// `spatia show`.
#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// A key (or a unique prefix of ≥ 6 hex digits), or `[arm/]stage[/item]` of the latest run
    pub what: String,
    /// Project root (default: nearest ancestor of the working directory holding spatia.toml or .git)
    #[arg(long)]
    pub root: Option<PathBuf>,
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Which experiment's latest run to look in (default: the latest run of any)
    #[arg(long)]
    pub name: Option<String>,
}

/// `spatia times`.
#[derive(clap::Args, Debug)]
pub struct TimesArgs {
    /// A run record (run.json or its directory); default: the latest run
    pub run: Option<PathBuf>,
    /// Project root (default: nearest ancestor of the working directory holding spatia.toml or .git)
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Which experiment's latest run (default: the latest run of any)
    #[arg(long)]
    pub name: Option<String>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `spatia gc`.
#[derive(clap::Args, Debug)]
pub struct GcArgs {
    /// Keep the entries of these specs (as they compile now)
    #[arg(long = "spec")]
    pub specs: Vec<PathBuf>,
    /// Keep the entries of these run records (run.json files or run directories)
    #[arg(long = "run")]
    pub runs: Vec<PathBuf>,
    /// Show what would be removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Let interrupted and killed runs' entries go too (by default every recorded run
    /// protects what it planned; live runs always do)
    #[arg(long)]
    pub include_interrupted: bool,
    #[arg(long)]
    pub root: Option<PathBuf>,
    #[arg(long)]
    pub cache: Option<PathBuf>,
}

/// `spatia verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[arg(long)]
    pub root: Option<PathBuf>,
    #[arg(long)]
    pub cache: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub(super) fn jobs(s: &str) -> Result<usize, String> {
    crate::bounds::CLI_JOBS.parse_usize(s)
}

pub(super) fn cwd_root(root: &Option<PathBuf>) -> PathBuf {
    match root {
        Some(r) => r.clone(),
        None => {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            spec::find_root(&cwd.join("x"))
        }
    }
}

/// The cache a command uses: `--cache`, else `$SPATIA_CACHE`, else `<root>/cache`.
pub(super) fn cache_at(root: &Path, over: &Option<PathBuf>) -> Cache {
    match over {
        Some(c) => Cache::new(c.clone()),
        None => match std::env::var_os("SPATIA_CACHE") {
            Some(c) if !c.is_empty() => Cache::new(PathBuf::from(c)),
            _ => Cache::new(root.join("cache")),
        },
    }
}

/// Compiles a spec and builds its DAG (hashing inputs through the stat cache).
pub fn load(opts: &SpecOpts) -> Result<(Spec, Dag, Cache)> {
    load_with(opts, false)
}

/// [`load`], with `rehash`: ignore the stat cache and read every input again.
pub fn load_with(opts: &SpecOpts, rehash: bool) -> Result<(Spec, Dag, Cache)> {
    let t = std::time::Instant::now();
    let spec = spec::compile(&opts.spec, opts.root.as_deref())?;
    crate::util::timing("compile spec", t);
    let cache = cache_at(&spec.root, &opts.cache);
    let t = std::time::Instant::now();
    let mut stat = StatCache::load(&cache.stat_cache_file());
    if rehash {
        stat = stat.rehash();
    }
    let dag = dag::build(&spec, &mut stat)?;
    if let Err(e) = stat.save() {
        eprintln!("spatia: warning: the stat cache was not saved: {e}");
    }
    crate::util::timing("build dag", t);
    Ok((spec, dag, cache))
}

/// `spatia run`: returns the exit code (0 ok, 1 a stage failed).
pub fn run(a: &RunArgs) -> Result<u8> {
    let (spec, dag, cache) = load_with(&a.spec, a.rehash)?;
    // from here on SIGINT/SIGTERM end the run with its journal marked interrupted (before,
    // while the spec compiles and inputs are hashed, nothing is written and they end it at once)
    crate::interrupt::install();
    let output = if a.json {
        Output::Json
    } else if a.quiet {
        Output::Quiet
    } else {
        Output::Bars
    };
    let jobs = a.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let opts =
        exec::Options { jobs, output, command: std::env::args().collect(), aside: None, rehash_outputs: a.rehash };
    let t = std::time::Instant::now();
    let out = match a.executor {
        super::slurm::Executor::Local => exec::run(&spec, &dag, &cache, &opts)?,
        super::slurm::Executor::Slurm => {
            let settings = exec::slurm::settings::Settings::load(&spec.root)?;
            exec::slurm::run(&spec, &dag, &cache, &opts, &settings)?
        }
    };
    crate::util::timing("execute and write the run record", t);
    let s = &out.summary;
    let count = |st: Status| s.nodes.iter().filter(|n| n.status == st).count();
    let (hit, miss, waited, failed, skipped) =
        (count(Status::Hit), count(Status::Miss), count(Status::Waited), count(Status::Failed), count(Status::Skipped));
    let rel = out.run_file.strip_prefix(&spec.root).unwrap_or(&out.run_file).display().to_string();
    if a.json {
        println!(
            "{}",
            serde_json::json!({"event": "summary", "ok": s.ok, "nodes": s.nodes.len(), "cached": hit, "ran": miss, "reused_after_wait": waited, "failed": failed, "skipped": skipped, "duration_s": s.duration_s, "run": rel})
        );
    } else {
        for n in s.nodes.iter().filter(|n| n.status == Status::Failed) {
            eprintln!(
                "FAILED {}{}: {}\n       log: {}",
                n.stage,
                n.item.as_ref().map(|x| format!(" [{}]", crate::util::display_id(x))).unwrap_or_default(),
                n.error.as_deref().unwrap_or(""),
                n.log.as_deref().unwrap_or("(none)")
            );
        }
        for n in s.nodes.iter().filter(|n| n.status == Status::Skipped) {
            if !a.quiet {
                eprintln!(
                    "skipped {}{}: {}",
                    n.stage,
                    n.item.as_ref().map(|x| format!(" [{}]", crate::util::display_id(x))).unwrap_or_default(),
                    n.error.as_deref().unwrap_or("")
                );
            }
        }
        eprintln!(
            "{}: {} stage(s): {} cached, {} ran, {} reused after waiting, {} failed, {} skipped in {:.2}s; run record {}",
            spec.name,
            s.nodes.len(),
            hit,
            miss,
            waited,
            failed,
            skipped,
            s.duration_s,
            rel
        );
    }
    Ok(if s.ok { 0 } else { 1 })
}

fn label(n: &dag::Node) -> String {
    format!("{}{}", n.stage, n.item.as_ref().map(|x| format!(" [{}]", x.shown())).unwrap_or_default())
}

use crate::audit::explain::param_changes;

/// Why a node's key is new, compared with the last run of the same arm/stage/item.
fn why(n: &dag::Node, prev: Option<&RunSummary>, cache: &Cache) -> String {
    let Some(prev) = prev else { return "never run".into() };
    let old_key = n.arms.iter().find_map(|arm| {
        let v = prev.arms.get(arm)?.get(&n.stage)?;
        match (v, &n.item) {
            (serde_json::Value::String(k), None) => Some(k.clone()),
            (serde_json::Value::Object(m), Some(it)) => m.get(&it.id).and_then(|k| k.as_str()).map(str::to_string),
            _ => None,
        }
    });
    let Some(old_key) = old_key else {
        return match &n.item {
            Some(it) => format!("new item `{}` (not in the last run)", it.shown()),
            None => "new stage (not in the last run)".into(),
        };
    };
    if old_key == n.key {
        return "same key as the last run, but its entry is gone from the cache".into();
    }
    let Ok(old) = cache.record(&old_key) else {
        return format!("key changed (last run's key {} has no record in the cache)", &old_key[..12]);
    };
    let mut reasons = Vec::new();
    if old.kind_version != n.hashable.kind_version {
        reasons.push(format!("kind `{}` version {} → {}", old.kind, old.kind_version, n.hashable.kind_version));
    }
    for (path, a, b) in param_changes(&old.params, &n.decl.checked.params) {
        reasons.push(format!("parameter `{path}`: {a} → {b}"));
    }
    let old_inputs: BTreeMap<&str, &str> = old.inputs.iter().map(|i| (i.role.as_str(), i.blake3.as_str())).collect();
    for (inp, decl) in n.inputs.iter().zip(&n.decl.checked.inputs) {
        match old_inputs.get(inp.role.as_str()) {
            Some(d) if *d == inp.digest => {}
            Some(_) => reasons.push(format!("input file `{}` changed", decl.path)),
            None => reasons.push(format!("new input `{}`", decl.path)),
        }
    }
    for (name, keys) in &n.hashable.upstream {
        if old.upstream.get(name) != Some(keys) {
            reasons.push(format!("upstream `{name}` changed"));
        }
    }
    if old.seed != n.hashable.seed {
        reasons.push("seed changed".into());
    }
    if reasons.is_empty() {
        reasons.push("key changed".into());
    }
    reasons.join("; ")
}

/// `spatia plan`.
pub fn plan(a: &PlanArgs) -> Result<u8> {
    let (spec, dag, cache) = load_with(&a.spec, a.rehash)?;
    let prev = provenance::latest_run(&spec.root, &spec.name);
    let mut rows = Vec::new();
    let (checks, forced) = exec::assess(&dag, &cache);
    for (i, n) in dag.nodes.iter().enumerate() {
        let cached = checks[i] == crate::cache::Check::Good && !forced[i];
        let reason = match &checks[i] {
            _ if cached => String::new(),
            crate::cache::Check::Damaged(w) => {
                format!("cache entry damaged: {w}; run moves it to quarantine and recomputes it")
            }
            crate::cache::Check::Good => "downstream of a damaged cache entry".into(),
            crate::cache::Check::Missing => why(n, prev.as_ref(), &cache),
        };
        rows.push((n, cached, reason));
    }
    let to_run = rows.iter().filter(|r| !r.1).count();
    if a.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(n, c, r)| serde_json::json!({"stage": n.stage, "item": n.item.as_ref().map(|x| &x.id), "arms": n.arms, "kind": n.decl.kind.name(), "key": n.key, "cached": c, "why": if *c { None } else { Some(r) }}))
            .collect();
        println!(
            "{}",
            crate::util::json_for_terminal(
                &serde_json::json!({"name": spec.name, "nodes": dag.nodes.len(), "to_run": to_run, "stages": v})
                    .to_string()
            )
        );
    } else {
        for (n, c, r) in &rows {
            if *c {
                println!("  cached  {:<28} {}", label(n), &n.key[..12]);
            } else {
                println!("  RUN     {:<28} {}  ({r})", label(n), &n.key[..12]);
            }
        }
        println!("{}: {} of {} stage(s) to run", spec.name, to_run, dag.nodes.len());
    }
    Ok(0)
}

/// `spatia dag`.
pub fn dag_cmd(a: &DagArgs) -> Result<u8> {
    let (spec, dag, cache) = load(&a.spec)?;
    let state = |i: usize| if cache.contains(&dag.nodes[i].key) { "cached".to_string() } else { "stale".to_string() };
    if a.dot {
        print!("{}", dag.to_dot(&state));
        return Ok(0);
    }
    println!("{} ({} arm(s), {} node(s))", spec.name, dag.arms.len(), dag.nodes.len());
    for (arm, stages) in &dag.arms {
        println!("arm {arm}");
        for (si, (stage, idx)) in stages.iter().enumerate() {
            let last = si + 1 == stages.len();
            let n0 = &dag.nodes[idx[0]];
            let needs = if n0.decl.needs.is_empty() {
                String::new()
            } else if n0.decl.kind.gathers_arms() {
                format!(" ← {} (of every arm)", n0.decl.needs.join(", "))
            } else {
                format!(" ← {}", n0.decl.needs.join(", "))
            };
            let shared = if n0.arms.len() > 1 { format!(" (shared by {} arms)", n0.arms.len()) } else { String::new() };
            let branch = if last { "└─" } else { "├─" };
            if idx.len() == 1 && n0.item.is_none() {
                println!(
                    "  {branch} {stage} [{}] {} {}{needs}{shared}",
                    n0.decl.kind.name(),
                    &n0.key[..12],
                    state(idx[0])
                );
            } else {
                let cached = idx.iter().filter(|&&i| state(i) == "cached").count();
                println!(
                    "  {branch} {stage} [{}] {} shard(s), {cached} cached{needs}{shared}",
                    n0.decl.kind.name(),
                    idx.len()
                );
                for (k, &i) in idx.iter().enumerate() {
                    let n = &dag.nodes[i];
                    let pre = if last { "   " } else { "│  " };
                    let b2 = if k + 1 == idx.len() { "└─" } else { "├─" };
                    println!(
                        "  {pre}{b2} {} {} {}",
                        n.item.as_ref().map(|x| x.shown()).unwrap_or_default(),
                        &n.key[..12],
                        state(i)
                    );
                }
            }
        }
    }
    Ok(0)
}

/// `spatia show`.
pub fn show(a: &ShowArgs) -> Result<u8> {
    let root = cwd_root(&a.root);
    let cache = cache_at(&root, &a.cache);
    let w = a.what.as_str();
    let key = if w.len() >= 6 && w.chars().all(|c| c.is_ascii_hexdigit()) {
        let keys: Vec<String> = cache.keys()?.into_iter().filter(|k| k.starts_with(w)).collect();
        match keys.len() {
            1 => keys[0].clone(),
            0 => bail!("no cache entry with key {w} in {}", cache.root.display()),
            n => bail!("key prefix {w} is ambiguous: {n} entries match"),
        }
    } else {
        let runs = provenance::list_runs(&root);
        let run = runs
            .iter()
            .rev()
            .filter_map(|p| RunSummary::read(p).ok())
            .find(|r| a.name.as_ref().is_none_or(|n| &r.name == n))
            .with_context(|| format!("no run records under {}/runs; run a spec first", root.display()))?;
        let parts: Vec<&str> = w.split('/').collect();
        let (arm, stage, item) = match parts.as_slice() {
            [s] => (None, *s, None),
            [a1, s] if run.arms.contains_key(*a1) => (Some(*a1), *s, None),
            [s, i] => (None, *s, Some(*i)),
            [a1, s, i] => (Some(*a1), *s, Some(*i)),
            _ => bail!("expected a key or [arm/]stage[/item], found `{w}`"),
        };
        let arm_name = match arm {
            Some(x) => x.to_string(),
            None => run.arms.keys().next().cloned().unwrap_or_default(),
        };
        let stages = run.arms.get(&arm_name).with_context(|| {
            format!(
                "run {} has no arm `{arm_name}`; arms: {}",
                run.name,
                run.arms.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        let v = stages.get(stage).with_context(|| {
            format!(
                "run {} has no stage `{stage}`; stages: {}",
                run.name,
                stages.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        match (v, item) {
            (serde_json::Value::String(k), _) => k.clone(),
            (serde_json::Value::Object(m), Some(i)) => m
                .get(i)
                .and_then(|k| k.as_str())
                .map(str::to_string)
                .with_context(|| format!("stage `{stage}` has no item `{}`", crate::util::display_id(i)))?,
            (serde_json::Value::Object(m), None) => {
                println!("{}", crate::util::json_for_terminal(&serde_json::to_string_pretty(m)?));
                return Ok(0);
            }
            _ => bail!("malformed run record"),
        }
    };
    let rec = cache.record(&key).with_context(|| format!("no record for key {key} in {}", cache.root.display()))?;
    println!("{}", crate::util::json_for_terminal(&serde_json::to_string_pretty(&rec)?));
    eprintln!("entry: {}", cache.entry_dir(&key).display());
    Ok(0)
}

/// `spatia times`: per stage, how many nodes ran or were cached and the time of those that ran.
pub fn times(a: &TimesArgs) -> Result<u8> {
    let run = match &a.run {
        Some(p) => RunSummary::read(&if p.is_dir() { p.join("run.json") } else { p.clone() })?,
        None => {
            let root = cwd_root(&a.root);
            provenance::list_runs(&root)
                .iter()
                .rev()
                .filter_map(|p| RunSummary::read(p).ok())
                .find(|r| a.name.as_ref().is_none_or(|n| &r.name == n))
                .with_context(|| format!("no run records under {}/runs; run a spec first", root.display()))?
        }
    };
    // stages in first-seen (topological) order
    let mut rows: Vec<(String, String, usize, usize, usize, f64)> = Vec::new();
    for n in &run.nodes {
        let i = match rows.iter().position(|r| r.0 == n.stage) {
            Some(i) => i,
            None => {
                rows.push((n.stage.clone(), n.kind.clone(), 0, 0, 0, 0.0));
                rows.len() - 1
            }
        };
        let r = &mut rows[i];
        r.2 += 1;
        match n.status {
            provenance::Status::Miss => {
                r.3 += 1;
                r.5 += n.duration_s;
            }
            provenance::Status::Hit | provenance::Status::Waited => r.4 += 1,
            _ => {}
        }
    }
    let total: f64 = rows.iter().map(|r| r.5).sum();
    if a.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| serde_json::json!({"stage": r.0, "kind": r.1, "nodes": r.2, "ran": r.3, "cached": r.4, "seconds": r.5}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"run": run.name, "started": run.started, "status": run.state(), "jobs": run.jobs, "wall_s": run.duration_s, "stage_s": total, "stages": v})
        );
        return Ok(0);
    }
    let pending = run.nodes.iter().filter(|n| n.status == provenance::Status::Pending).count();
    let state = match run.state() {
        provenance::RunStatus::Ok => String::new(),
        st => format!(
            ", {}{}{}",
            st.as_str(),
            run.stopped_by.as_ref().map(|b| format!(" ({b})")).unwrap_or_default(),
            if pending > 0 { format!(", {pending} node(s) not finished") } else { String::new() }
        ),
    };
    println!("run {} ({}{state}), {} worker(s), wall {:.2} s", run.name, run.started, run.jobs, run.duration_s);
    println!(
        "{:<12} {:<10} {:>6} {:>6} {:>7} {:>10} {:>6}",
        "stage", "kind", "nodes", "ran", "cached", "seconds", "share"
    );
    for r in &rows {
        let share = if total > 0.0 { 100.0 * r.5 / total } else { 0.0 };
        println!("{:<12} {:<10} {:>6} {:>6} {:>7} {:>10.2} {:>5.1}%", r.0, r.1, r.2, r.3, r.4, r.5, share);
    }
    println!(
        "{:<12} {:<10} {:>6} {:>6} {:>7} {:>10.2}",
        "total",
        "",
        run.nodes.len(),
        rows.iter().map(|r| r.3).sum::<usize>(),
        rows.iter().map(|r| r.4).sum::<usize>(),
        total
    );
    println!("(seconds: summed over a stage's nodes that ran; with several workers their sum exceeds the wall time)");
    Ok(0)
}

/// `spatia gc`: removes the entries nothing protects. Protected: every key of a live run
/// (whatever the options), of an interrupted or killed run (unless `--include-interrupted`),
/// and of the finished runs — all of them by default, or only the `--run`/`--spec` selection.
/// Runs under the cache's exclusive gc lock, so no run is between planning and journaling.
pub fn gc(a: &GcArgs) -> Result<u8> {
    let root = cwd_root(&a.root);
    let cache = cache_at(&root, &a.cache);
    let mut keep: HashSet<String> = HashSet::new();
    for s in &a.specs {
        let (_, dag, _) = load(&SpecOpts { spec: s.clone(), root: a.root.clone(), cache: a.cache.clone() })?;
        keep.extend(dag.nodes.iter().map(|n| n.key.clone()));
    }
    let selected = !a.specs.is_empty() || !a.runs.is_empty();
    if !cache.root.exists() {
        println!("no cache at {}: nothing to remove", cache.root.display());
        return Ok(0);
    }
    let _lock = cache.gc_lock(true).map_err(|e| anyhow::anyhow!("cannot lock the cache for gc: {e}"))?;
    for r in &a.runs {
        let p = if r.is_dir() { r.join("run.json") } else { r.clone() };
        keep.extend(RunSummary::read(&p)?.keys().map(str::to_string));
    }
    let (mut live, mut stopped, mut let_go) = (0usize, 0usize, 0usize);
    for p in provenance::list_runs(&root) {
        let r = RunSummary::read(&p).map_err(|e| {
            anyhow::anyhow!(
                "{e:#}; gc cannot tell what that run protects, so it removes nothing (fix or move that run directory)"
            )
        })?;
        let protect = match r.state() {
            provenance::RunStatus::Running => {
                live += 1;
                true
            }
            provenance::RunStatus::Interrupted | provenance::RunStatus::Killed if !a.include_interrupted => {
                stopped += 1;
                true
            }
            provenance::RunStatus::Interrupted | provenance::RunStatus::Killed => {
                let_go += 1;
                false
            }
            provenance::RunStatus::Ok | provenance::RunStatus::Failed => !selected,
        };
        if protect {
            keep.extend(r.keys().map(str::to_string));
        }
    }
    let keys = cache.keys()?;
    let mut removed = 0usize;
    for k in &keys {
        if keep.contains(k) {
            continue;
        }
        removed += 1;
        if a.dry_run {
            println!("would remove {k}");
            continue;
        }
        let dir = cache.entry_dir(k);
        // rename first so a half-removed entry is never visible
        let trash = cache.private_tmp(&format!("gc-{k}"))?;
        std::fs::rename(&dir, &trash)
            .with_context(|| format!("cannot move {} to {}", dir.display(), trash.display()))?;
        std::fs::remove_dir_all(&trash).with_context(|| format!("cannot remove {}", trash.display()))?;
        println!("removed {k}");
    }
    // temporary directories of processes of this host that no longer exist (another host's
    // cannot be checked: they stay)
    let tmp = cache.root.join("tmp");
    let host: String = crate::util::hostname()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .collect();
    if let (Ok(rd), false) = (std::fs::read_dir(&tmp), a.dry_run) {
        for e in rd.flatten() {
            if let Some((h, pid)) = crate::cache::tmp_owner(&e.file_name().to_string_lossy()) {
                if h == host && !provenance::process_alive(pid, None) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    // stat-cache temporary files (`statcache.<pid>.<n>.tmp`) of processes that no longer exist
    if let (Ok(rd), false) = (std::fs::read_dir(&cache.root), a.dry_run) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let parts: Vec<&str> = name.split('.').collect();
            if let ["statcache", pid, n, "tmp"] = parts.as_slice() {
                if let (Ok(pid), true) = (pid.parse::<u32>(), n.bytes().all(|b| b.is_ascii_digit())) {
                    if !provenance::process_alive(pid, None) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
    }
    let mut why = Vec::new();
    if live > 0 {
        why.push(format!("{live} live run(s)"));
    }
    if stopped > 0 {
        why.push(format!("{stopped} interrupted or killed run(s) (--include-interrupted lets theirs go)"));
    }
    if let_go > 0 {
        why.push(format!("{let_go} interrupted or killed run(s) not protecting"));
    }
    println!(
        "{} {removed} entr{} of {}; kept {}{}",
        if a.dry_run { "would remove" } else { "removed" },
        if removed == 1 { "y" } else { "ies" },
        keys.len(),
        keys.len() - removed,
        if why.is_empty() { String::new() } else { format!(" ({})", why.join(", ")) }
    );
    let q = std::fs::read_dir(cache.quarantine_dir()).map(|rd| rd.count()).unwrap_or(0);
    if q > 0 {
        println!(
            "{q} damaged entr{} kept in {} (gc never removes them; inspect, then delete by hand)",
            if q == 1 { "y" } else { "ies" },
            cache.quarantine_dir().display()
        );
    }
    Ok(0)
}

/// `spatia verify`: exit 1 when any entry differs from its record.
pub fn verify(a: &VerifyArgs) -> Result<u8> {
    let root = cwd_root(&a.root);
    let cache = cache_at(&root, &a.cache);
    let (n, mut bad) = crate::cache::verify(&cache)?;
    // published folders record their content digests too
    let (published, pub_bad) = verify_published(&root, &cache);
    bad.extend(pub_bad);
    if a.json {
        println!(
            "{}",
            serde_json::json!({"entries": n, "published": published, "ok": bad.is_empty(), "tampered": bad})
        );
    } else {
        for b in &bad {
            println!("TAMPERED {} {}: {}", b.key, b.path, b.problem);
        }
        if published > 0 {
            println!("verified {published} published folder(s) against their markers");
        }
        println!(
            "verified {n} entr{}: {}",
            if n == 1 { "y" } else { "ies" },
            if bad.is_empty() { "all match their records".to_string() } else { format!("{} problem(s)", bad.len()) }
        );
    }
    Ok(if bad.is_empty() { 0 } else { 1 })
}

/// Checks every published folder of the project against its marker.
fn verify_published(root: &Path, cache: &Cache) -> (usize, Vec<crate::cache::Tampered>) {
    let skip = cache.root.canonicalize().unwrap_or_else(|_| cache.root.clone());
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let dirs = exec::publish::find_published(&root, &skip, 8);
    let mut bad = Vec::new();
    let mut n = 0;
    for d in &dirs {
        let key = std::fs::read_to_string(d.join(exec::publish::MARKER))
            .ok()
            .and_then(|t| serde_json::from_str::<exec::publish::Marker>(&t).ok())
            .and_then(|m| m.key);
        let Some(key) = key else { continue };
        n += 1;
        let problem = match exec::publish::check_published(d) {
            Ok(None) => continue,
            Ok(Some(w)) => w,
            Err(e) => format!("{e:#}"),
        };
        let path = d.strip_prefix(&root).unwrap_or(d).display().to_string();
        bad.push(crate::cache::Tampered { key, path, problem: format!("published folder: {problem}") });
    }
    (n, bad)
}

/// `spatia kinds`: the registered stage kinds.
pub fn kinds() -> Result<u8> {
    for k in crate::stages::REGISTRY {
        println!("{:<12} v{:<3} {}", k.name(), k.version(), k.about());
    }
    Ok(0)
}

/// `spatia hash`.
#[derive(clap::Args, Debug)]
pub struct HashArgs {
    /// Files to hash
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Use the project's stat cache: an unchanged file is not read again
    #[arg(long)]
    pub cached: bool,
    #[arg(long)]
    pub root: Option<PathBuf>,
    #[arg(long)]
    pub cache: Option<PathBuf>,
}

/// `spatia hash`: blake3 of files, printed like `b3sum` (digest, two spaces, path).
pub fn hash(a: &HashArgs) -> Result<u8> {
    let mut stat = if a.cached {
        let root = cwd_root(&a.root);
        StatCache::load(&cache_at(&root, &a.cache).stat_cache_file())
    } else {
        StatCache::ephemeral()
    };
    for f in &a.files {
        let d = stat.digest(f).with_context(|| format!("cannot hash {}", f.display()))?;
        println!("{d}  {}", f.display());
    }
    stat.save()?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::param_changes;
    use serde_json::json;

    #[test]
    fn parameter_changes_name_the_leaf_path() {
        let old = json!({"mil": {"epochs": 40, "lr": 0.002}, "horizons": [1095, 1825], "folds": 5, "gone": 1});
        let new = json!({"mil": {"epochs": 41, "lr": 0.002}, "horizons": [1095, 1826], "folds": 5.0, "new": true});
        let c = param_changes(&old, &new);
        let shown: Vec<String> = c.iter().map(|(p, a, b)| format!("{p}: {a} → {b}")).collect();
        assert_eq!(
            shown,
            ["gone: 1 → (unset)", "horizons[1]: 1825 → 1826", "mil.epochs: 40 → 41", "new: (unset) → true"],
            "`5` ≡ `5.0`; unchanged siblings are not listed"
        );
        let lists = param_changes(&json!({"m": [1]}), &json!({"m": [1, 2]}));
        assert_eq!(lists, [("m".to_string(), "[1]".to_string(), "[1,2]".to_string())]);
    }
}
