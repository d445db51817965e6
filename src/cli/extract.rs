//! `spatia extract SLIDE …`: one slide → one feature bag, outside any spec.
use crate::features::bag::{Bag, BagMeta, Precision};
use crate::features::handcrafted::Handcrafted;
use crate::features::pipeline::{run_collect, PipelineConfig};
use crate::features::Encoder;
use crate::slide::tiling::{read_tile, tile_slide, TileParams};
use crate::slide::tissue::{detect_tissue, TissueParams};
use crate::slide::Slide;
use crate::slide::Stain;
use anyhow::Context;
use std::path::PathBuf;

/// Arguments of `spatia extract`.
#[derive(clap::Args, Debug)]
pub struct ExtractArgs {
    /// The slide
    pub slide: PathBuf,
    /// `handcrafted`, or a TorchScript file (`.pt`)
    #[arg(long, default_value = "handcrafted")]
    pub encoder: String,
    /// Target µm/px of the tiles
    #[arg(long, default_value_t = 0.5, value_parser = mpp)]
    pub mpp: f64,
    /// Tile side in pixels at --mpp
    #[arg(long, default_value_t = 256, value_parser = size)]
    pub size: u32,
    /// Stain of the slide (selects the tissue detector)
    #[arg(long, default_value = "HE")]
    pub stain: String,
    /// µm/px for a slide that records none
    #[arg(long, value_parser = mpp)]
    pub mpp_override: Option<f64>,
    /// TorchScript model input side (default: --size)
    #[arg(long, value_parser = size)]
    pub input_size: Option<u32>,
    /// TorchScript normalisation: `imagenet` or `unit` ([0, 1] only)
    #[arg(long, default_value = "imagenet")]
    pub normalize: String,
    /// TorchScript device: auto, cpu, cuda
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Tiles per encoder call
    #[arg(long, default_value_t = 32, value_parser = batch)]
    pub batch: usize,
    /// Tile reader/decoder threads (default: the number of cores)
    #[arg(long, value_parser = workers)]
    pub workers: Option<usize>,
    /// TorchScript precision: fp32, or fp16 / bf16 autocast (CUDA)
    #[arg(long, default_value = "fp32")]
    pub precision: String,
    /// libtorch CPU threads (default: libtorch's own)
    #[arg(long, value_parser = workers)]
    pub threads: Option<usize>,
    /// Encode only the first N tiles of the tiling (benchmarks)
    #[arg(long, value_parser = max_tiles)]
    pub max_tiles: Option<usize>,
    /// Store features as float16
    #[arg(long)]
    pub fp16: bool,
    /// The bag to write (.h5)
    #[arg(long)]
    pub out: PathBuf,
}

fn mpp(s: &str) -> Result<f64, String> {
    crate::bounds::CLI_MPP.parse_f64(s)
}
fn size(s: &str) -> Result<u32, String> {
    crate::bounds::CLI_SIZE.parse_usize(s).map(|v| v as u32)
}
fn workers(s: &str) -> Result<usize, String> {
    crate::bounds::CLI_EXTRACT_THREADS.parse_usize(s)
}
fn max_tiles(s: &str) -> Result<usize, String> {
    crate::bounds::CLI_MAX_TILES.parse_usize(s)
}
fn batch(s: &str) -> Result<usize, String> {
    crate::bounds::CLI_BATCH.parse_usize(s)
}

/// Runs `spatia extract`.
pub fn run(a: &ExtractArgs) -> anyhow::Result<u8> {
    let stain: Stain = a.stain.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    let slide = Slide::open(&a.slide, a.mpp_override)?;
    let mask = detect_tissue(&slide, &TissueParams::for_stain(stain))?;
    let mut tiling = tile_slide(&slide, &mask, &TileParams { mpp: a.mpp, size: a.size, min_tissue: 0.5 })?;
    if let Some(n) = a.max_tiles {
        tiling.tiles.truncate(n);
    }
    let encoder: Box<dyn Encoder> = if a.encoder == "handcrafted" {
        if a.precision != "fp32" {
            anyhow::bail!(
                "--precision {}: the handcrafted encoder computes in f64; only TorchScript models take fp16/bf16",
                a.precision
            );
        }
        Box::new(Handcrafted::new())
    } else {
        torch(a)?
    };
    let workers = a.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let cfg = PipelineConfig { workers, batch_size: a.batch.max(1), queue_batches: 4, worker_nice: 0 };
    let (rows, stats) = run_collect(
        tiling.tiles.iter().copied(),
        |t| read_tile(&slide, &tiling, &t).map_err(|e| e.to_string()),
        encoder.as_ref(),
        &cfg,
    )?;
    let coords: Vec<[i64; 2]> = tiling.tiles.iter().map(|t| [t.x as i64, t.y as i64]).collect();
    let m = slide.meta();
    let meta = BagMeta {
        name: a.slide.file_stem().map(|s| s.to_string_lossy().to_string()),
        patch_size: Some(a.size as i64),
        patch_size_level0: Some(tiling.tile_size_level0 as i64),
        mpp: Some(a.mpp),
        level0_width: Some(m.width as i64),
        level0_height: Some(m.height as i64),
        encoder: Some(encoder.name()),
        encoder_digest: Some(encoder.digest()),
    };
    let bag = Bag::from_rows(rows, &coords, meta)?;
    bag.write(&a.out, if a.fp16 { Precision::F16 } else { Precision::F32 })
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "{}",
        serde_json::json!({
            "bag": a.out, "tiles": bag.len(), "dim": bag.dim(), "encoder": encoder.name(),
            "tiles_per_s": stats.tiles_per_s(), "wall_s": stats.wall.as_secs_f64(),
            "encoder_s": stats.encode.as_secs_f64(), "encoder_idle_s": stats.starved.as_secs_f64(),
            "batch": cfg.batch_size, "workers": cfg.workers, "precision": a.precision,
        })
    );
    Ok(0)
}

#[cfg(feature = "torch")]
fn torch(a: &ExtractArgs) -> anyhow::Result<Box<dyn Encoder>> {
    use crate::features::torchscript::{DeviceChoice, ModelPrecision, TorchScript, TorchScriptConfig};
    use crate::features::transform::InputTransform;
    let size = a.input_size.unwrap_or(a.size);
    let transform = match a.normalize.as_str() {
        "imagenet" => InputTransform::imagenet(size),
        "unit" => InputTransform::unit(size),
        o => anyhow::bail!("--normalize must be imagenet or unit, found `{o}`"),
    };
    let device = match a.device.as_str() {
        "auto" => DeviceChoice::Auto,
        "cpu" => DeviceChoice::Cpu,
        "cuda" => DeviceChoice::Cuda,
        o => anyhow::bail!("--device must be auto, cpu or cuda, found `{o}`"),
    };
    let precision = match a.precision.as_str() {
        "fp32" => ModelPrecision::Fp32,
        "fp16" => ModelPrecision::Fp16,
        "bf16" => ModelPrecision::Bf16,
        o => anyhow::bail!("--precision must be fp32, fp16 or bf16, found `{o}`"),
    };
    let cfg = TorchScriptConfig {
        path: PathBuf::from(&a.encoder),
        transform,
        device,
        precision,
        threads: a.threads,
        warm_batch: a.batch,
    };
    Ok(Box::new(TorchScript::load(&cfg)?))
}

#[cfg(not(feature = "torch"))]
fn torch(a: &ExtractArgs) -> anyhow::Result<Box<dyn Encoder>> {
    anyhow::bail!("encoder `{}`: this spatia was built without the `torch` feature; `make build` enables it", a.encoder)
}
