//! `spatia export ro-crate RUN --out DIR`: flags and output; the work is [`crate::audit::rocrate`].
use anyhow::Result;
use std::path::PathBuf;

/// `spatia export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub what: ExportWhat,
}

/// What to export.
#[derive(clap::Subcommand, Debug)]
pub enum ExportWhat {
    /// A run as a Workflow Run RO-Crate (Process, Workflow and Provenance Run Crate 0.5)
    #[command(name = "ro-crate")]
    RoCrate(RoCrateArgs),
}

/// `spatia export ro-crate`.
#[derive(clap::Args, Debug)]
pub struct RoCrateArgs {
    /// A run directory (runs/<time>-<name>, or its run.json), or a published folder
    pub run: PathBuf,
    /// The crate's directory: new, empty, or a crate an earlier export wrote (replaced)
    #[arg(long)]
    pub out: PathBuf,
    /// Project root (default: the run directory's, else the nearest ancestor of the working
    /// directory holding spatia.toml or .git)
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// The cache the run used (default: <root>/cache, or $SPATIA_CACHE)
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Show patient and slide identifiers (and slide file names) instead of the page's pseudonyms
    #[arg(long)]
    pub show_ids: bool,
    /// Output files up to this many bytes are copied into the crate; larger ones are referenced
    #[arg(long, default_value_t = 1 << 20, value_parser = copy_limit)]
    pub copy_limit: u64,
    /// Who ran it: the name of the crate's creator and of every action's agent (none by default)
    #[arg(long)]
    pub agent: Option<String>,
    /// The agent's identifier (an ORCID, ROR or web IRI)
    #[arg(long, requires = "agent")]
    pub agent_id: Option<String>,
    /// The agent is an organisation, not a person
    #[arg(long, requires = "agent")]
    pub organization: bool,
    /// The crate's licence (a URL, e.g. https://spdx.org/licenses/CC-BY-4.0); default: "not stated"
    #[arg(long)]
    pub license: Option<String>,
    /// One JSON object on stdout: {"out", "actions", "files_copied", "files_referenced", …}
    #[arg(long)]
    pub json: bool,
}

fn copy_limit(s: &str) -> Result<u64, String> {
    crate::bounds::CLI_CRATE_COPY_LIMIT.parse_usize(s).map(|n| n as u64)
}

pub fn run(a: &ExportArgs) -> Result<u8> {
    match &a.what {
        ExportWhat::RoCrate(a) => ro_crate(a),
    }
}

fn ro_crate(a: &RoCrateArgs) -> Result<u8> {
    let root = super::reproduce::run_root(&a.run, &a.root);
    let (run_file, run) = crate::audit::reproduce::locate(&root, &a.run)?;
    let cache = super::core::cache_at(&root, &a.cache);
    let opts = crate::audit::rocrate::Options {
        out: a.out.clone(),
        show_ids: a.show_ids,
        copy_limit: a.copy_limit,
        agent: a.agent.as_ref().map(|name| crate::audit::rocrate::Agent {
            name: name.clone(),
            id: a.agent_id.clone(),
            organization: a.organization,
        }),
        license: a.license.clone(),
    };
    let s = crate::audit::rocrate::export(&root, &cache, &run_file, &run, &opts)?;
    if a.json {
        println!("{}", crate::util::json_for_terminal(&serde_json::to_string(&s)?));
    } else {
        println!(
            "{}: {} action(s), {} file(s) copied ({} bytes), {} referenced{}",
            s.out.display(),
            s.actions,
            s.files_copied,
            s.bytes_copied,
            s.files_referenced,
            if s.nodes_without_record > 0 {
                format!("; {} node(s) of the run have no cache record (left out)", s.nodes_without_record)
            } else {
                String::new()
            }
        );
    }
    Ok(0)
}
