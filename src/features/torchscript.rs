//! The `torchscript: PATH` encoder: any TorchScript model (`torch.jit.trace(...).save(...)`)
//! run by the libtorch plugin ([`super::torch_plugin`]: crates/spatia-torch, `tch` 0.24 /
//! libtorch 2.11.0, opened on first use), on CUDA when present or on CPU with a stated thread
//! count. Needs the cargo feature `torch` and the plugin (`make build`).
//!
//! # Formula
//! Tiles go to the plugin as 8-bit RGB with the transform's scale, mean and std, which it
//! applies as [`InputTransform::apply`] does (`(v·scale − mean)/std`, per channel, to a
//! B×3×S×S float tensor), and passes to the model's `forward`; the output (a tensor, or the
//! first tensor of a tuple) is flattened to B×D and returned as float32.
//! - On CPU each tile is resized to the transform's size on the pipeline's worker threads
//!   (bilinear), and normalised through the same f32 table as `InputTransform::apply`: bit for
//!   bit the features of the in-process encoder this replaced. A batch is computed when it is
//!   submitted.
//! - On CUDA the uint8 tiles are copied into pinned memory and uploaded as they are; the resize
//!   (bilinear with antialiasing, when the tile side differs), the normalisation and the forward
//!   pass (fp32, or fp16/bf16 autocast) run on the device, queued without waiting: the pipeline
//!   keeps two batches in flight ([`Encoder::in_flight`]). The model is warmed up at load with
//!   the run's batch size.
//!
//! # Assumptions
//! The model takes one B×3×S×S image tensor. D is found by a probe forward pass of one zero
//! tile at load time. The digest is blake3 over the model file's bytes, the transform's
//! canonical form and the precision (and `autocast` for fp16/bf16); the device does not enter
//! it (CPU and CUDA outputs agree to float tolerance, not bit for bit). The plugin caches
//! loaded models per process, keyed by (model bytes digest, device, precision): the shards of
//! a run that share a model and device load it once ([`TorchScript::loaded_fresh`]).
//!
//! # Errors
//! [`FeatureError::Encoder`] for a missing/unloadable model or plugin, an unavailable CUDA
//! device, fp16/bf16 requested on CPU, or an output that is not B×D.
use super::torch_plugin::{self, Device, ModelHandle, Ticket};
use super::transform::InputTransform;
use super::{Encoder, FeatureError, Pending, Prepared, RgbImage};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

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
    /// On CUDA, the batch size to warm the model up with at load (the JIT's optimisation and
    /// cuDNN's kernel choice happen then, not in the first batches); 0: none.
    #[serde(default)]
    pub warm_batch: usize,
}

/// A loaded TorchScript encoder.
pub struct TorchScript {
    model: ModelHandle,
    /// Whether this load read the model file (false: the process had the model cached).
    fresh: bool,
    /// Batches go through the plugin's device path (CUDA, or CPU under
    /// [`torch_plugin::DEVICE_PATH_ENV`]): tiles uploaded as they are, two batches in flight.
    device_path: bool,
    device: Device,
    precision: ModelPrecision,
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
            .field("precision", &self.precision)
            .field("dim", &self.dim)
            .field("threads", &self.threads)
            .finish()
    }
}

fn enc_err(name: &str, message: impl Into<String>) -> FeatureError {
    FeatureError::Encoder { encoder: name.to_string(), message: message.into() }
}

/// Whether a CUDA device is usable by libtorch in this process (false when the plugin is
/// missing; opens the plugin, and so libtorch, on the first call).
pub fn cuda_available() -> bool {
    torch_plugin::get().is_ok_and(|p| p.cuda_device_count() > 0)
}

/// What identifies a model file without reading it (the input stat cache's rule: size, mtime,
/// ctime and inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStat {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

impl FileStat {
    fn of(path: &Path) -> std::io::Result<FileStat> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
        Ok(FileStat {
            len: m.len(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
        })
    }
}

/// Model files read by this process: their stat, blake3 and the digest's hasher after the bytes.
type KnownFiles = HashMap<PathBuf, (FileStat, [u8; 32], blake3::Hasher)>;

fn known_files() -> &'static Mutex<KnownFiles> {
    static KNOWN: OnceLock<Mutex<KnownFiles>> = OnceLock::new();
    KNOWN.get_or_init(Default::default)
}

fn known_file(path: &Path, stat: &FileStat) -> Option<([u8; 32], blake3::Hasher)> {
    let k = known_files().lock().ok()?;
    k.get(path).filter(|(s, _, _)| s == stat).map(|(_, key, h)| (*key, h.clone()))
}

fn remember_file(path: &Path, stat: FileStat, key: [u8; 32], hashed: &blake3::Hasher) {
    if let Ok(mut k) = known_files().lock() {
        k.insert(path.to_path_buf(), (stat, key, hashed.clone()));
    }
}

impl TorchScript {
    /// Opens the plugin (first use), loads the model (or takes it from the plugin's cache),
    /// resolves the device, and probes the output dimension.
    pub fn load(cfg: &TorchScriptConfig) -> Result<TorchScript, FeatureError> {
        let file = cfg.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let name = format!("torchscript:{file}");
        cfg.transform.validate()?;
        let read_err =
            |e: std::io::Error| enc_err(&name, format!("cannot read model file {}: {e}", cfg.path.display()));
        let stat = FileStat::of(&cfg.path).map_err(read_err)?;
        let plugin = torch_plugin::get().map_err(|e| enc_err(&name, e))?;
        let cuda = plugin.cuda_device_count() > 0;
        let device = match cfg.device {
            DeviceChoice::Cpu => Device::Cpu,
            DeviceChoice::Cuda if !cuda => {
                return Err(enc_err(&name, "device: cuda requested but libtorch sees no CUDA device"))
            }
            DeviceChoice::Cuda => Device::Cuda(0),
            DeviceChoice::Auto if cuda => Device::Cuda(0),
            DeviceChoice::Auto => Device::Cpu,
        };
        let precision_code = match (cfg.precision, device) {
            (ModelPrecision::Fp32, _) => 0,
            (p, Device::Cpu) => {
                return Err(enc_err(&name, format!("precision {p:?} needs a CUDA device, but the model runs on CPU")))
            }
            (ModelPrecision::Fp16, _) => 1,
            (ModelPrecision::Bf16, _) => 2,
        };
        if let Some(n) = cfg.threads {
            if n == 0 {
                return Err(enc_err(&name, "threads: expected ≥ 1, found 0"));
            }
        }
        let threads = plugin.set_threads(cfg.threads.map_or(0, |n| n.min(i32::MAX as usize) as i32));
        let t = &cfg.transform;
        let norm = [t.scale, t.mean[0], t.mean[1], t.mean[2], t.std[0], t.std[1], t.std[2]];
        let warm = cfg.warm_batch.min(u32::MAX as usize) as u32;
        let path_text = cfg.path.display().to_string();
        // A model file this process has read (same stat) is not read or hashed again; the
        // plugin then returns its cached model, or asks for the bytes (another device).
        let remembered = known_file(&cfg.path, &stat);
        let cached = match &remembered {
            Some((key, _)) => plugin
                .load(&path_text, *key, None, device, precision_code, t.size, norm, warm)
                .map_err(|e| enc_err(&name, e))?,
            None => None,
        };
        // `h`: the digest's hasher after the model file's bytes
        let (mut h, loaded) = match (cached, remembered) {
            (Some(l), Some((_, hashed))) => (hashed, l),
            _ => {
                let bytes = std::fs::read(&cfg.path).map_err(read_err)?;
                // one pass: the cache key is the digest's hasher finalised right after the bytes
                let mut hashed = blake3::Hasher::new();
                hashed.update(&bytes);
                let key = *hashed.finalize().as_bytes();
                remember_file(&cfg.path, stat, key, &hashed);
                let l = plugin
                    .load(&path_text, key, Some(&bytes), device, precision_code, t.size, norm, warm)
                    .map_err(|e| enc_err(&name, e))?
                    .ok_or_else(|| enc_err(&name, "the plugin did not load the model from its bytes"))?;
                (hashed, l)
            }
        };
        let (model, dim) = (loaded.model, loaded.dim);
        if dim == 0 {
            return Err(enc_err(&name, "the model's output has dimension 0"));
        }
        h.update(cfg.transform.canonical().as_bytes());
        h.update(format!(";precision={:?}", cfg.precision).as_bytes());
        if cfg.precision != ModelPrecision::Fp32 {
            h.update(b";autocast");
        }
        let digest = h.finalize().to_hex().to_string();
        Ok(TorchScript {
            model,
            fresh: loaded.fresh,
            device_path: device != Device::Cpu || torch_plugin::device_path_on_cpu(),
            device,
            precision: cfg.precision,
            transform: cfg.transform.clone(),
            dim,
            name,
            digest,
            threads,
        })
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

    /// Whether this load read the model file (false: the process had it cached, as when
    /// several shards of a run use one model).
    pub fn loaded_fresh(&self) -> bool {
        self.fresh
    }

    /// The tile as the plugin takes it, 8-bit RGB, HWC: on CPU resized to the model's input
    /// side here (bilinear, as [`InputTransform::apply`]); on CUDA a square tile is sent as it
    /// is and resized on the device.
    fn resize(&self, tile: &RgbImage) -> Result<Vec<u8>, FeatureError> {
        if tile.width() == 0 || tile.height() == 0 {
            return Err(FeatureError::InvalidInput(format!(
                "transform: expected a non-empty tile, found {}×{}",
                tile.width(),
                tile.height()
            )));
        }
        let s = self.transform.size;
        let keep = tile.width() == tile.height() && (self.device_path || tile.width() == s);
        Ok(if keep {
            tile.as_raw().clone()
        } else {
            image::imageops::resize(tile, s, s, image::imageops::FilterType::Triangle).into_raw()
        })
    }

    /// Checks a batch of prepared tiles (one square side for all) and submits it.
    fn submit_batch(&self, batch: &[Prepared]) -> Result<Ticket<'_>, FeatureError> {
        let mut tiles: Vec<&[u8]> = Vec::with_capacity(batch.len());
        for (i, p) in batch.iter().enumerate() {
            match p {
                Prepared::U8(v) => tiles.push(v),
                Prepared::F32(_) => {
                    return Err(enc_err(&self.name, format!("prepared tile {i}: expected 8-bit RGB, found floats")))
                }
            }
        }
        let len = tiles.first().map_or(0, |t| t.len());
        let side = ((len / 3) as f64).sqrt().round() as usize;
        if side == 0 || side * side * 3 != len {
            return Err(enc_err(&self.name, format!("prepared tile 0: {len} bytes is not a square RGB tile")));
        }
        if let Some(i) = tiles.iter().position(|t| t.len() != len) {
            return Err(enc_err(
                &self.name,
                format!("prepared tile {i}: expected {len} values like tile 0, found {}", tiles[i].len()),
            ));
        }
        self.model.submit(&tiles, side, side, self.dim).map_err(|e| enc_err(&self.name, e))
    }

    /// The features of a collected batch, one row per tile.
    fn rows(&self, ticket: Ticket<'_>) -> Result<Vec<Vec<f32>>, FeatureError> {
        let out = ticket.collect().map_err(|e| enc_err(&self.name, e))?;
        Ok(out.chunks_exact(self.dim).map(|c| c.to_vec()).collect())
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
        self.resize(tile).map(Prepared::U8)
    }
    fn encode_prepared(&self, batch: &[Prepared]) -> Result<Vec<Vec<f32>>, FeatureError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let ticket = self.submit_batch(batch)?;
        self.rows(ticket)
    }
    fn submit<'a>(&'a self, batch: Vec<Prepared>) -> Result<Pending<'a>, FeatureError> {
        let ticket = self.submit_batch(&batch)?;
        drop(batch);
        Ok(Box::new(move || self.rows(ticket)))
    }
    fn in_flight(&self) -> usize {
        if self.device_path {
            2
        } else {
            1
        }
    }
}
