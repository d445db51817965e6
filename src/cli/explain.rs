//! `spatia explain SPEC STAGE`: flags and output; the work is [`crate::audit::explain`].
use anyhow::{bail, Result};

/// `spatia explain`.
#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub spec: super::core::SpecOpts,
    /// `[arm/]stage[/item]` (every arm's and item's node of the stage by default)
    pub stage: String,
    /// Ignore the stat cache: read and hash every input file again
    #[arg(long)]
    pub rehash: bool,
    /// One JSON array of {"stage", "item", "key", "previous_key", "summary", "changes": [{"component", "what", "old", "new"}]}
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: &ExplainArgs) -> Result<u8> {
    let (spec, dag, cache) = super::core::load_with(&a.spec, a.rehash)?;
    let prev = crate::provenance::latest_run(&spec.root, &spec.name);
    let parts: Vec<&str> = a.stage.split('/').collect();
    let arm_names: Vec<&str> = dag.arms.iter().map(|(a, _)| a.as_str()).collect();
    let (arm, stage, item) = match parts.as_slice() {
        [s] => (None, *s, None),
        [x, s] if arm_names.contains(x) => (Some(*x), *s, None),
        [s, i] => (None, *s, Some(*i)),
        [x, s, i] => (Some(*x), *s, Some(*i)),
        _ => bail!("expected [arm/]stage[/item], found `{}`", a.stage),
    };
    let nodes: Vec<&crate::dag::Node> = dag
        .nodes
        .iter()
        .filter(|n| n.stage == stage)
        .filter(|n| arm.is_none_or(|x| n.arms.iter().any(|y| y == x)))
        .filter(|n| item.is_none_or(|i| n.item.as_ref().is_some_and(|it| it.id == i)))
        .collect();
    if nodes.is_empty() {
        let mut stages: Vec<&str> = dag.nodes.iter().map(|n| n.stage.as_str()).collect();
        stages.dedup();
        bail!("no node `{}` in {}; stages: {}", a.stage, spec.display, stages.join(", "));
    }
    let ex: Vec<_> =
        nodes.iter().map(|n| crate::audit::explain::explain(n, prev.as_ref(), &cache, &spec.root)).collect();
    if a.json {
        println!("{}", crate::util::json_for_terminal(&serde_json::to_string_pretty(&ex)?));
    } else {
        for e in &ex {
            print!("{}", e.text());
        }
    }
    Ok(0)
}
