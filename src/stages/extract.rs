//! `extract`: one feature bag per slide — the input of every model.
//!
//! **Inputs:** the slide of the shard's item and its tiling (`needs: [<tile stage>]`); for
//! `encoder: precomputed`, the bag named in the manifest's `features` column instead.
//! **Outputs:** `features.h5` (CLAM/TRIDENT layout: `features` N×D, `coords` N×2 level-0
//! top-left, attributes patch size, patch size at level 0, µm/px, slide size, encoder name and
//! digest) and `extract.json` (tiles, dimension, encoder, throughput).
//! **Key covers:** the encoder (name; for TorchScript the model file's content, the input
//! transform, device, precision, threads), storage precision, the tiling's key and the slide's
//! item digest (for precomputed bags, the bag's content).
//! **Reference:** CLAM `extract_features_fp.py`, TRIDENT `extract_patch_features`.
//!
//! Tiles are read and decoded on a pool of threads feeding a bounded queue
//! ([`crate::features::pipeline`]), so the encoder never waits on I/O.
use super::tile::{check_stains, open_item_slide, tiling_of, typed_stains};
use super::{
    in_range_f64, in_range_usize, resolved, typed, CheckCx, Checked, Fanout, InputRef, ParamError, RunCx, StageKind,
};
use crate::contracts::extract::{ExtractSummary, FEATURES_H5};
use crate::docpath::Seg;
use crate::features::bag::{Bag, BagMeta, Precision};
use crate::features::handcrafted::Handcrafted;
use crate::features::pipeline::{run_collect, PipelineConfig};
use crate::features::Encoder;
use crate::slide::tiling::read_tile;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `extract` kind.
pub struct Extract;

/// A TorchScript encoder as declared in a spec.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TorchSpec {
    /// The `.pt` file (relative to the project root) written by `torch.jit.save`.
    pub torchscript: String,
    /// Model input side in pixels (tiles are resized when different).
    pub size: u32,
    /// Multiplier applied to 8-bit values before normalisation.
    #[serde(default = "default_scale")]
    pub scale: f32,
    /// Per-channel mean (R, G, B) subtracted after scaling.
    #[serde(default)]
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    #[serde(default = "default_std")]
    pub std: [f32; 3],
    /// `auto` (CUDA when present), `cpu` or `cuda`.
    #[serde(default = "default_device")]
    pub device: String,
    /// `fp32`, or `fp16` / `bf16` on CUDA.
    #[serde(default = "default_precision")]
    pub precision: String,
    /// libtorch CPU threads (default: libtorch's own).
    #[serde(default)]
    pub threads: Option<usize>,
}

fn default_scale() -> f32 {
    1.0 / 255.0
}
fn default_std() -> [f32; 3] {
    [1.0; 3]
}
fn default_device() -> String {
    "auto".into()
}
fn default_precision() -> String {
    "fp32".into()
}

/// Parameters of `extract`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractParams {
    /// `handcrafted` (default), `precomputed`, or `{torchscript: PATH, size, mean, std, …}`.
    #[serde(default = "default_encoder")]
    pub encoder: Value,
    /// Tiles per encoder call.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Tile reader/decoder threads.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Storage precision of `features`: `f32` or `f16`.
    #[serde(default)]
    pub precision: Precision,
    /// Only slides of these stains (default: every slide).
    #[serde(default)]
    pub stains: Option<Vec<String>>,
}

fn default_encoder() -> Value {
    Value::String("handcrafted".into())
}
fn default_batch() -> usize {
    32
}
fn default_workers() -> usize {
    2
}

/// The encoder a spec names.
pub enum EncoderChoice {
    Handcrafted,
    Precomputed,
    TorchScript(TorchSpec),
}

/// Interprets the `encoder` value.
pub fn encoder_choice(v: &Value) -> Result<EncoderChoice, ParamError> {
    let at = vec![Seg::key("encoder")];
    match v {
        Value::String(s) if s == "handcrafted" => Ok(EncoderChoice::Handcrafted),
        Value::String(s) if s == "precomputed" => Ok(EncoderChoice::Precomputed),
        Value::String(s) => Err(ParamError::at(
            at,
            format!("unknown encoder `{s}`; expected `handcrafted`, `precomputed` or a mapping `{{torchscript: model.pt, size: 224, …}}`"),
        )),
        Value::Object(_) => {
            let t: TorchSpec = typed(v).map_err(|mut e| {
                e.path.insert(0, Seg::key("encoder"));
                e
            })?;
            if !["auto", "cpu", "cuda"].contains(&t.device.as_str()) {
                return Err(ParamError::at(vec![Seg::key("encoder"), Seg::key("device")], format!("`device` must be auto, cpu or cuda, found `{}`", t.device)));
            }
            if !["fp32", "fp16", "bf16"].contains(&t.precision.as_str()) {
                return Err(ParamError::at(vec![Seg::key("encoder"), Seg::key("precision")], format!("`precision` must be fp32, fp16 or bf16, found `{}`", t.precision)));
            }
            use crate::bounds as b;
            let at = |k: &str| vec![Seg::key("encoder"), Seg::key(k)];
            let at_i = |k: &str, i: usize| vec![Seg::key("encoder"), Seg::key(k), Seg::Index(i)];
            in_range_usize(at("size"), &b::EXTRACT_INPUT_SIZE, t.size as usize)?;
            in_range_f64(at("scale"), &b::EXTRACT_SCALE, t.scale as f64)?;
            for i in 0..3 {
                in_range_f64(at_i("mean", i), &b::EXTRACT_MEAN, t.mean[i] as f64)?;
                in_range_f64(at_i("std", i), &b::EXTRACT_STD, t.std[i] as f64)?;
            }
            if let Some(n) = t.threads {
                in_range_usize(at("threads"), &b::EXTRACT_THREADS, n)?;
            }
            Ok(EncoderChoice::TorchScript(t))
        }
        _ => Err(ParamError::at(at, "`encoder` must be `handcrafted`, `precomputed` or a `{torchscript: …}` mapping")),
    }
}

/// The TorchScript encoder a spec declares, warmed up for `batch` on CUDA; logs whether the
/// model was read now or reused from the process's cache (shards of a run share one load).
#[cfg(feature = "torch")]
fn torch_encoder(t: &TorchSpec, cx: &RunCx, batch: usize) -> anyhow::Result<Box<dyn Encoder>> {
    use crate::features::torchscript::{DeviceChoice, ModelPrecision, TorchScript, TorchScriptConfig};
    use crate::features::transform::InputTransform;
    let device = match t.device.as_str() {
        "cpu" => DeviceChoice::Cpu,
        "cuda" => DeviceChoice::Cuda,
        _ => DeviceChoice::Auto,
    };
    let precision = match t.precision.as_str() {
        "fp16" => ModelPrecision::Fp16,
        "bf16" => ModelPrecision::Bf16,
        _ => ModelPrecision::Fp32,
    };
    let cfg = TorchScriptConfig {
        path: cx.root.join(&t.torchscript),
        transform: InputTransform { size: t.size, scale: t.scale, mean: t.mean, std: t.std },
        device,
        precision,
        threads: t.threads,
        warm_batch: batch,
    };
    let started = std::time::Instant::now();
    let enc = TorchScript::load(&cfg)?;
    cx.log(&format!(
        "model {}: {} on {:?} in {:.2}s",
        t.torchscript,
        if enc.loaded_fresh() { "loaded" } else { "reused (loaded earlier in this process)" },
        enc.device(),
        started.elapsed().as_secs_f64()
    ));
    Ok(Box::new(enc))
}

#[cfg(not(feature = "torch"))]
fn torch_encoder(_t: &TorchSpec, _cx: &RunCx, _batch: usize) -> anyhow::Result<Box<dyn Encoder>> {
    anyhow::bail!("this spatia was built without the `torch` feature; `make build` enables it")
}

impl StageKind for Extract {
    fn name(&self) -> &'static str {
        crate::contracts::EXTRACT
    }
    fn version(&self) -> u32 {
        1
    }
    fn about(&self) -> &'static str {
        "feature bags per slide (handcrafted, TorchScript through tch, or precomputed CLAM/TRIDENT bags)"
    }
    fn check(&self, params: &Value, cx: &CheckCx) -> Result<Checked, ParamError> {
        let mut p: ExtractParams = typed(params)?;
        in_range_usize(vec![Seg::key("batch")], &crate::bounds::EXTRACT_BATCH, p.batch)?;
        in_range_usize(vec![Seg::key("workers")], &crate::bounds::EXTRACT_WORKERS, p.workers)?;
        if cx.cohort.and_then(|c| c.slides.as_ref()).is_none() {
            return Err(ParamError::at(vec![], "`extract` needs `cohort.slides` (a slide manifest)"));
        }
        p.stains = check_stains(&p.stains)?;
        let mut inputs = Vec::new();
        if let EncoderChoice::TorchScript(t) = encoder_choice(&p.encoder)? {
            if !cfg!(feature = "torch") {
                return Err(ParamError::at(
                    vec![Seg::key("encoder")],
                    format!("TorchScript encoder `{}` needs a spatia built with the `torch` feature (`make build` enables it)", t.torchscript),
                ));
            }
            inputs.push(InputRef {
                role: "model".into(),
                path: t.torchscript.clone(),
                at: vec![Seg::key("encoder"), Seg::key("torchscript")],
                absolute: false,
            });
            p.encoder = serde_json::to_value(&t).unwrap_or(Value::Null);
        }
        let stains = p.stains.clone();
        let mut c = Checked::single(resolved(&p));
        c.inputs = inputs;
        c.fanout = Fanout::PerSlide;
        c.stains = typed_stains(&stains);
        Ok(c.with_typed(p))
    }

    fn run(&self, cx: &RunCx) -> anyhow::Result<()> {
        let p = cx.typed::<ExtractParams>()?;
        let item = cx.item.context("per slide")?;
        let (slide, _) = open_item_slide(cx)?;
        let (w, h) = (slide.meta().width, slide.meta().height);
        let out = cx.out.join(FEATURES_H5);
        let choice = encoder_choice(&p.encoder).map_err(|e| anyhow::anyhow!(e.msg))?;
        if let EncoderChoice::Precomputed = choice {
            let src = item
                .slide()?
                .features
                .as_ref()
                .with_context(|| format!("slide {}: `encoder: precomputed` needs a `features` column (path to a CLAM/TRIDENT .h5 bag) in the slide manifest", item.shown()))?;
            let bag = Bag::read(std::path::Path::new(src))?;
            bag.validate(std::path::Path::new(src), Some((w, h)))?;
            bag.write(&out, p.precision)?;
            ExtractSummary::precomputed(&item.id, &bag).write(&cx.out.join(ExtractSummary::FILE))?;
            return Ok(());
        }
        let tiling = tiling_of(cx, crate::contracts::EXTRACT)?;
        let encoder: Box<dyn Encoder> = match &choice {
            EncoderChoice::TorchScript(t) => torch_encoder(t, cx, p.batch)?,
            _ => Box::new(Handcrafted::new()),
        };
        let cfg = PipelineConfig { workers: p.workers, batch_size: p.batch, queue_batches: 4, worker_nice: 0 };
        let (rows, stats) = run_collect(
            tiling.tiles.iter().copied(),
            |t| read_tile(&slide, &tiling, &t).map_err(|e| e.to_string()),
            encoder.as_ref(),
            &cfg,
        )
        .with_context(|| format!("slide {}", item.shown()))?;
        let coords: Vec<[i64; 2]> = tiling.tiles.iter().map(|t| [t.x as i64, t.y as i64]).collect();
        let meta = BagMeta {
            name: Some(item.id.clone()),
            patch_size: Some(tiling.size as i64),
            patch_size_level0: Some(tiling.tile_size_level0 as i64),
            mpp: Some(tiling.mpp),
            level0_width: Some(w as i64),
            level0_height: Some(h as i64),
            encoder: Some(encoder.name()),
            encoder_digest: Some(encoder.digest()),
        };
        let bag = Bag::from_rows(rows, &coords, meta)?;
        bag.write(&out, p.precision)?;
        // throughput goes to the log, not the outputs: outputs must be the same bytes every run
        cx.log(&format!(
            "slide {}: {} tiles × {} dims with {} in {:.2}s ({:.0} tiles/s; encoder idle {:.1}%)",
            item.shown(),
            stats.tiles,
            bag.dim(),
            encoder.name(),
            stats.wall.as_secs_f64(),
            stats.tiles_per_s(),
            100.0 * stats.starved.as_secs_f64() / stats.wall.as_secs_f64().max(1e-9)
        ));
        ExtractSummary::encoded(&item.id, &bag, &encoder.name(), &encoder.digest())
            .write(&cx.out.join(ExtractSummary::FILE))?;
        Ok(())
    }
}
