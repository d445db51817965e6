//! `spatia slide …` and `spatia stain …`: command-line front ends of [`crate::slide`].

/// Arguments of `spatia slide`.
#[derive(clap::Args, Debug)]
pub struct SlideArgs {
    /// What to do with the slide
    pub verb: String,
}

/// Arguments of `spatia stain`.
#[derive(clap::Args, Debug)]
pub struct StainArgs {
    /// What to do with the image
    pub verb: String,
}

/// Runs `spatia slide`.
pub fn run_slide(_args: &SlideArgs) -> anyhow::Result<()> {
    anyhow::bail!("`spatia slide` is not built yet")
}

/// Runs `spatia stain`.
pub fn run_stain(_args: &StainArgs) -> anyhow::Result<()> {
    anyhow::bail!("`spatia stain` is not built yet")
}
