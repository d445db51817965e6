//! `spatia demo generate …`: flags only; the work is [`crate::demo::generate`].
use super::texture::Stain;
use super::{generate, DemoParams};
use std::path::PathBuf;

/// Arguments of `spatia demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// What to do
    #[command(subcommand)]
    pub verb: DemoVerb,
}

/// Verbs of `spatia demo`.
#[derive(clap::Subcommand, Debug)]
pub enum DemoVerb {
    /// Write a synthetic cohort: pyramidal TIFF slides, slides.csv, clinical.csv, cohort.json
    Generate(GenerateArgs),
}

/// Arguments of `spatia demo generate`.
#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Number of patients
    #[arg(long, default_value_t = 60)]
    pub patients: usize,
    /// Seed: the same seed and parameters give byte-identical files
    #[arg(long, default_value_t = 2)]
    pub seed: u64,
    /// Output directory (created if missing)
    #[arg(long)]
    pub out: PathBuf,
    /// Nominal level-0 side of each slide in pixels at 0.5 µm/px (each slide varies ±10 %)
    #[arg(long, default_value_t = 3500)]
    pub size: u32,
    /// Stains per patient, comma-separated, from HE, ER, PR, HER2, KI67
    #[arg(long, default_value = "HE,KI67", value_delimiter = ',', value_parser = parse_stain)]
    pub stains: Vec<Stain>,
    /// JPEG quality of the tiles (1–100)
    #[arg(long, default_value_t = 75)]
    pub quality: u8,
    /// Fraction of the IHC slides to leave out (0 ≤ f < 1): round(f × IHC slides) of them, chosen
    /// from the seed, are neither written nor listed in slides.csv; every patient keeps her H&E
    /// slide and the clinical table (outcome included) does not change. Recorded in cohort.json
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0, allow_negative_numbers = true,
          value_parser = missing_ihc)]
    pub missing_ihc: f64,
    /// Worker threads (default: all cores); the output does not depend on it
    #[arg(long, value_parser = threads)]
    pub threads: Option<usize>,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

fn threads(s: &str) -> Result<usize, String> {
    crate::bounds::CLI_THREADS.parse_usize(s)
}

fn missing_ihc(s: &str) -> Result<f64, String> {
    crate::bounds::CLI_DEMO_MISSING_IHC.parse_f64(s)
}

fn parse_stain(s: &str) -> Result<Stain, String> {
    s.parse::<Stain>()
}

/// Runs `spatia demo`.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    match &args.verb {
        DemoVerb::Generate(g) => run_generate(g),
    }
}

fn run_generate(g: &GenerateArgs) -> anyhow::Result<()> {
    let params = DemoParams {
        patients: g.patients,
        seed: g.seed,
        size: g.size,
        stains: g.stains.clone(),
        jpeg_quality: g.quality,
        missing_ihc: g.missing_ihc,
    };
    let start = std::time::Instant::now();
    let summary = match g.threads {
        Some(t) => {
            rayon::ThreadPoolBuilder::new().num_threads(t.max(1)).build()?.install(|| generate(&params, &g.out))?
        }
        None => generate(&params, &g.out)?,
    };
    let wall = start.elapsed().as_secs_f64();
    if g.json {
        let mut v = serde_json::to_value(&summary)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("wall_s".into(), wall.into());
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let left_out = match summary.slides_left_out {
            0 => String::new(),
            k => format!("; {k} IHC slides left out"),
        };
        println!(
            "wrote {} patients, {} slides ({:.1} MB{left_out}) to {} in {:.1} s; distant metastases: {} ({:.0} %)",
            summary.patients,
            summary.slides,
            summary.slide_bytes as f64 / 1e6,
            summary.out.display(),
            wall,
            summary.events,
            100.0 * summary.event_fraction
        );
    }
    Ok(())
}
