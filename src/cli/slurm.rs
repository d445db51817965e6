//! The Slurm executor's CLI: `spatia run --executor slurm` (the flag's type) and the hidden
//! node-side verb `spatia exec-node --manifest FILE [--index N]` that each array task runs.
//! The work lives in [`crate::exec::slurm`].
use std::path::PathBuf;

/// Where `spatia run` computes the nodes.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Executor {
    /// Worker threads on this machine
    #[default]
    Local,
    /// Job arrays on a Slurm cluster (`[executor.slurm]` in spatia.toml; the cache on a shared file system)
    Slurm,
}

/// `spatia exec-node` (internal: run by Slurm array tasks).
#[derive(clap::Args, Debug)]
pub struct ExecNodeArgs {
    /// The array's manifest (written by the head into <cache>/slurm/manifests/)
    #[arg(long)]
    pub manifest: PathBuf,
    /// The task's index in the manifest (default: $SLURM_ARRAY_TASK_ID)
    #[arg(long)]
    pub index: Option<usize>,
}

/// Runs `spatia exec-node`.
pub fn exec_node(a: &ExecNodeArgs) -> anyhow::Result<u8> {
    crate::exec::slurm::node::exec_node(&a.manifest, a.index)
}
