//! `spatia survival VERB …`: command-line front end of [`crate::survival`].

/// Arguments of `spatia survival`.
#[derive(clap::Args, Debug)]
pub struct SurvivalArgs {
    /// The statistic to compute
    pub verb: String,
}

/// Runs `spatia survival`.
pub fn run(_args: &SurvivalArgs) -> anyhow::Result<()> {
    anyhow::bail!("`spatia survival` is not built yet")
}
