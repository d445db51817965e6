//! `spatia reproduce RUN`: flags and output; the work is [`crate::audit::reproduce`].
use crate::audit::reproduce::{self, Scratch};
use crate::cache::hash::StatCache;
use crate::exec::{self, Output};
use crate::spec;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::PathBuf;

/// `spatia reproduce`.
#[derive(clap::Args, Debug)]
pub struct ReproduceArgs {
    /// A run directory (runs/<time>-<name>, or its run.json), or a published folder
    pub run: PathBuf,
    /// Project root (default: the run directory's, else the nearest ancestor of the working
    /// directory holding spatia.toml or .git)
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// The cache the run used (default: <root>/cache, or $SPATIA_CACHE)
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Stages recomputed in parallel (default: number of cores)
    #[arg(long, short = 'j', value_parser = super::core::jobs)]
    pub jobs: Option<usize>,
    /// Where the nodes are recomputed
    #[arg(long, value_enum, default_value_t)]
    pub executor: super::slurm::Executor,
    /// One JSON object on stdout: {"nodes", "identical", "differ", "missing", "details"}
    #[arg(long)]
    pub json: bool,
    /// Keep the scratch directory (under <root>/.spatia-reproduce/) for inspection
    #[arg(long)]
    pub keep: bool,
}

/// The project root of a run argument: `--root`, else the run directory's (runs/<dir>), else the
/// nearest ancestor of the working directory holding spatia.toml or .git.
pub(super) fn run_root(run: &std::path::Path, root: &Option<PathBuf>) -> PathBuf {
    match root {
        Some(r) => r.clone(),
        None => {
            let dir = if run.is_file() { run.parent().map(|p| p.to_path_buf()) } else { Some(run.to_path_buf()) };
            match dir.as_ref().and_then(|d| d.canonicalize().ok()) {
                Some(d) if d.join("run.json").is_file() && d.parent().is_some_and(|p| p.ends_with("runs")) => {
                    d.parent().and_then(|p| p.parent()).map(|p| p.to_path_buf()).unwrap_or(d)
                }
                _ => super::core::cwd_root(&None),
            }
        }
    }
}

/// Exit 0 when every node is identical, 1 otherwise.
pub fn run(a: &ReproduceArgs) -> Result<u8> {
    let root = run_root(&a.run, &a.root);
    let (run_file, run) = reproduce::locate(&root, &a.run)?;
    let spec_file = root.join(&run.spec);
    let spec = spec::compile(&spec_file, Some(&root))?;
    if spec.text_digest != run.spec_blake3 {
        bail!(
            "{}: the spec changed since run {} (blake3 {}, recorded {}); reproduce needs the spec as it was",
            spec_file.display(),
            run_file.display(),
            spec.text_digest,
            run.spec_blake3
        );
    }
    let original = super::core::cache_at(&spec.root, &a.cache);
    // every input read and hashed again: the recorded digests are what is being checked
    let dag = crate::dag::build(&spec, &mut StatCache::ephemeral())?;
    let mut scratch = Scratch::new(&spec.root)?;
    scratch.keep = a.keep;
    let fresh = scratch.cache();
    if fresh.root == original.root {
        bail!("internal: the scratch cache is the run's cache");
    }
    crate::interrupt::install();
    let jobs = a.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let opts = exec::Options {
        jobs,
        output: Output::Quiet,
        command: std::env::args().collect(),
        aside: Some(scratch.dir.clone()),
        rehash_outputs: false,
    };
    if !a.json {
        eprintln!(
            "reproducing {} ({} node(s)) in {} with {jobs} worker(s)…",
            run_file.display(),
            run.nodes.len(),
            scratch.dir.display()
        );
    }
    let out = match a.executor {
        super::slurm::Executor::Local => exec::run(&spec, &dag, &fresh, &opts)?,
        super::slurm::Executor::Slurm => {
            let settings = exec::slurm::settings::Settings::load(&spec.root)?;
            exec::slurm::run(&spec, &dag, &fresh, &opts, &settings)?
        }
    };
    let errors: HashMap<String, String> =
        out.summary.nodes.iter().filter_map(|n| n.error.as_ref().map(|e| (n.key.clone(), e.clone()))).collect();
    let cmp = reproduce::compare(&run, &dag, &original, &fresh, &errors);
    if a.json {
        println!("{}", crate::util::json_for_terminal(&serde_json::to_string(&cmp).context("cannot encode")?));
    } else {
        print!("{}", cmp.table());
        if a.keep {
            eprintln!("scratch kept: {}", scratch.dir.display());
        }
    }
    Ok(if cmp.all_identical() { 0 } else { 1 })
}
