//! `spatia lineage TARGET`: flags and output; the work is [`crate::audit::lineage`].
use anyhow::Result;
use std::path::PathBuf;

/// `spatia lineage`.
#[derive(clap::Args, Debug)]
pub struct LineageArgs {
    /// A key (or unique prefix), a file in the cache or in a published folder, or a metric:
    /// `reports/<name>/index.html#arm=<arm>:harrell_c`, `<dir>/metrics.json:arms[0].harrell_c`
    pub target: String,
    /// Project root (default: nearest ancestor of the working directory holding spatia.toml or .git)
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Cache directory (default: <root>/cache, or $SPATIA_CACHE)
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// One JSON object: {"target", "value", "chain": [{"stage", "kind", "key", "params", "inputs", "versions", …}]}
    #[arg(long, conflicts_with = "dot")]
    pub json: bool,
    /// Graphviz DOT
    #[arg(long)]
    pub dot: bool,
    /// Show patient and slide identifiers (and slide file names) instead of the page's pseudonyms
    #[arg(long)]
    pub show_ids: bool,
}

pub fn run(a: &LineageArgs) -> Result<u8> {
    let root = super::core::cwd_root(&a.root);
    let cache = super::core::cache_at(&root, &a.cache);
    let c = crate::audit::lineage::lineage(&root, &cache, &a.target, a.show_ids)?;
    if a.json {
        println!("{}", crate::util::json_for_terminal(&serde_json::to_string_pretty(&c)?));
    } else if a.dot {
        print!("{}", crate::util::display_text(&c.dot()));
    } else {
        print!("{}", c.tree());
    }
    Ok(0)
}
