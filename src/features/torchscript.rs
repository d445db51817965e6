//! The `torchscript: PATH` encoder: any TorchScript model (`torch.jit.trace(...).save(...)`)
//! run through `tch` 0.24 / libtorch 2.11.0, on CUDA when present or on CPU with a stated
//! thread count. Needs the cargo feature `torch` (see scripts/setup-torch.sh).
//!
//! # Formula
//! Each tile goes through the caller's [`InputTransform`] (on the pipeline's worker threads),
//! batches are stacked into a B×3×S×S float tensor, moved to the device (and to fp16/bf16 when
//! asked), and passed to the model's `forward`; the output (a tensor, or the first tensor of a
//! tuple) is flattened to B×D and returned as float32.
//!
//! # Assumptions
//! The model takes one B×3×S×S image tensor. D is found by a probe forward pass of one zero
//! tile at load time. The digest is blake3 over the model file's bytes, the transform's
//! canonical form and the precision; the device does not enter it (CPU and CUDA outputs agree
//! to float tolerance, not bit for bit).
//!
//! # Errors
//! [`FeatureError::Encoder`] for a missing/unloadable model, an unavailable CUDA device,
//! fp16/bf16 requested on CPU, or an output that is not B×D.
use super::transform::InputTransform;
use super::{Encoder, FeatureError, Prepared, RgbImage};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tch::{CModule, Device, IValue, Kind, Tensor};

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA device 0 when available, else CPU.
    #[default]
    Auto,
    /// CPU.
    Cpu,
    /// CUDA device 0 (an error when none is available).
    Cuda,
}

/// Arithmetic precision of the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelPrecision {
    /// float32.
    #[default]
    Fp32,
    /// float16 (CUDA only).
    Fp16,
    /// bfloat16 (CUDA only).
    Bf16,
}

/// How to load and run a TorchScript model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TorchScriptConfig {
    /// The `.pt` file written by `torch.jit.save`.
    pub path: PathBuf,
    /// The model's input transform.
    pub transform: InputTransform,
    /// Device choice.
    #[serde(default)]
    pub device: DeviceChoice,
    /// Precision (fp16/bf16 need CUDA).
    #[serde(default)]
    pub precision: ModelPrecision,
    /// CPU threads for libtorch's intra-op pool (`tch::set_num_threads`, process-wide);
    /// `None` keeps libtorch's default.
    #[serde(default)]
    pub threads: Option<usize>,
}

/// A loaded TorchScript encoder.
pub struct TorchScript {
    module: Mutex<CModule>,
    device: Device,
    kind: Kind,
    transform: InputTransform,
    dim: usize,
    name: String,
    digest: String,
    threads: usize,
}

impl std::fmt::Debug for TorchScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchScript")
            .field("name", &self.name)
            .field("device", &self.device)
            .field("kind", &self.kind)
            .field("dim", &self.dim)
            .field("threads", &self.threads)
            .finish()
    }
}

fn enc_err(name: &str, message: impl Into<String>) -> FeatureError {
    FeatureError::Encoder { encoder: name.to_string(), message: message.into() }
}

/// Whether a CUDA device is usable by libtorch in this process.
pub fn cuda_available() -> bool {
    tch::Cuda::is_available()
}

impl TorchScript {
    /// Loads the model, resolves the device, and probes the output dimension.
    pub fn load(cfg: &TorchScriptConfig) -> Result<TorchScript, FeatureError> {
        let file = cfg.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let name = format!("torchscript:{file}");
        cfg.transform.validate()?;
        let bytes = std::fs::read(&cfg.path)
            .map_err(|e| enc_err(&name, format!("cannot read model file {}: {e}", cfg.path.display())))?;
        let device = match cfg.device {
            DeviceChoice::Cpu => Device::Cpu,
            DeviceChoice::Cuda if !cuda_available() => {
                return Err(enc_err(&name, "device: cuda requested but libtorch sees no CUDA device"))
            }
            DeviceChoice::Cuda => Device::Cuda(0),
            DeviceChoice::Auto => Device::cuda_if_available(),
        };
        let kind = match (cfg.precision, device) {
            (ModelPrecision::Fp32, _) => Kind::Float,
            (p, Device::Cpu) => {
                return Err(enc_err(&name, format!("precision {p:?} needs a CUDA device, but the model runs on CPU")))
            }
            (ModelPrecision::Fp16, _) => Kind::Half,
            (ModelPrecision::Bf16, _) => Kind::BFloat16,
        };
        if let Some(n) = cfg.threads {
            if n == 0 {
                return Err(enc_err(&name, "threads: expected ≥ 1, found 0"));
            }
            tch::set_num_threads(n as i32);
        }
        let threads = tch::get_num_threads().max(1) as usize;
        let mut module = CModule::load_on_device(&cfg.path, device)
            .map_err(|e| enc_err(&name, format!("cannot load TorchScript {}: {e}", cfg.path.display())))?;
        module.set_eval();
        if kind != Kind::Float {
            module.to(device, kind, false);
        }
        let mut h = blake3::Hasher::new();
        h.update(&bytes);
        h.update(cfg.transform.canonical().as_bytes());
        h.update(format!(";precision={:?}", cfg.precision).as_bytes());
        let digest = h.finalize().to_hex().to_string();
        let mut enc = TorchScript {
            module: Mutex::new(module),
            device,
            kind,
            transform: cfg.transform.clone(),
            dim: 0,
            name,
            digest,
            threads,
        };
        let probe = vec![0.0f32; enc.transform.len()];
        let out = enc.forward(&[probe])?;
        enc.dim = out.first().map_or(0, |r| r.len());
        if enc.dim == 0 {
            return Err(enc_err(&enc.name, "the model's output has dimension 0"));
        }
        Ok(enc)
    }

    /// The device the model runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// libtorch's CPU intra-op thread count at load time.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The declared input transform.
    pub fn transform(&self) -> &InputTransform {
        &self.transform
    }

    /// The model file name (without directories) this encoder was loaded from.
    pub fn model_path_name(path: &Path) -> String {
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    fn forward(&self, batch: &[Prepared]) -> Result<Vec<Vec<f32>>, FeatureError> {
        let b = batch.len();
        if b == 0 {
            return Ok(Vec::new());
        }
        let len = self.transform.len();
        let mut flat = Vec::with_capacity(b * len);
        for (i, p) in batch.iter().enumerate() {
            if p.len() != len {
                return Err(enc_err(
                    &self.name,
                    format!("prepared tile {i}: expected {len} values, found {}", p.len()),
                ));
            }
            flat.extend_from_slice(p);
        }
        let s = self.transform.size as i64;
        let input = Tensor::from_slice(&flat).view([b as i64, 3, s, s]).to_device(self.device).to_kind(self.kind);
        let module = self.module.lock().map_err(|_| enc_err(&self.name, "model lock poisoned by an earlier panic"))?;
        let out = tch::no_grad(|| module.forward_is(&[IValue::Tensor(input)]))
            .map_err(|e| enc_err(&self.name, format!("forward pass failed: {e}")))?;
        drop(module);
        let t = match out {
            IValue::Tensor(t) => t,
            IValue::Tuple(v) | IValue::GenericList(v) => match v.into_iter().next() {
                Some(IValue::Tensor(t)) => t,
                _ => {
                    return Err(enc_err(
                        &self.name,
                        "expected the model to return a tensor or a tuple starting with one",
                    ))
                }
            },
            other => {
                return Err(enc_err(&self.name, format!("expected the model to return a tensor, found {other:?}")))
            }
        };
        let shape = t.size();
        if shape.is_empty() || shape[0] != b as i64 {
            return Err(enc_err(&self.name, format!("expected an output of shape [{b}, D], found {shape:?}")));
        }
        let t = t.to_kind(Kind::Float).to_device(Device::Cpu).contiguous().view([b as i64, -1]);
        let d = t.size()[1] as usize;
        let mut buf = vec![0.0f32; b * d];
        t.copy_data(&mut buf, b * d);
        Ok(buf.chunks_exact(d.max(1)).map(|c| c.to_vec()).collect())
    }
}

impl Encoder for TorchScript {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn digest(&self) -> String {
        self.digest.clone()
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn prepare(&self, tile: &RgbImage) -> Result<Prepared, FeatureError> {
        self.transform.apply(tile)
    }
    fn encode_prepared(&self, batch: &[Prepared]) -> Result<Vec<Vec<f32>>, FeatureError> {
        let out = self.forward(batch)?;
        if let Some(r) = out.iter().find(|r| r.len() != self.dim) {
            return Err(enc_err(&self.name, format!("expected outputs of dimension {}, found {}", self.dim, r.len())));
        }
        Ok(out)
    }
}
