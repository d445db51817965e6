//! `spatia demo generate …`.

/// Arguments of `spatia demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// What to do
    pub verb: String,
}

/// Runs `spatia demo`.
pub fn run(_args: &DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("`spatia demo` is not built yet")
}
