//! `libspatia_torch.so`: Spatia's libtorch plugin. The `spatia` binary does not link libtorch;
//! it opens this library (with `libloading`) the first time a TorchScript encoder is used, so
//! every other command starts without loading libtorch's ~130 MB.
//!
//! # The C ABI (version [`ABI_VERSION`])
//! All functions are `extern "C"`, never unwind (panics become errors) and report failure by a
//! non-zero status whose message `spatia_torch_last_error` returns (per thread, valid until the
//! thread's next call into the plugin). The caller checks `spatia_torch_abi_version` first and
//! refuses a plugin of another version.
//!
//! | function | does |
//! |---|---|
//! | `spatia_torch_abi_version() -> u32` | [`ABI_VERSION`] |
//! | `spatia_torch_last_error() -> *const c_char` | the calling thread's last error |
//! | `spatia_torch_info(buf, cap) -> usize` | runtime facts as JSON (torch version, CUDA, devices, cuDNN, autocast, models loaded); returns the full length |
//! | `spatia_torch_cuda_device_count() -> i64` | CUDA devices libtorch can use (0 when none) |
//! | `spatia_torch_set_threads(n) -> i32` | sets libtorch's CPU intra-op threads when `n > 0`; returns the current count |
//! | `spatia_torch_load(*LoadArgs, *LoadResult) -> i32` | a model handle for a device (−1 CPU, k ≥ 0 CUDA k), precision (0 fp32, 1 fp16 / 2 bf16 autocast), input side and normalisation; probes the output dimension; on CUDA warms the model up at the batch size; without the file's bytes, only from the cache (else `need_bytes`) |
//! | `spatia_torch_submit(model, tiles, n, h, w, *ticket) -> i32` | queues `n` uint8 RGB tiles (HWC, one pointer each) |
//! | `spatia_torch_collect(ticket, out, out_len) -> i32` | waits for a submitted batch, writes its `n·dim` floats, frees the ticket |
//! | `spatia_torch_release(ticket)` | waits for a submitted batch and frees it unread |
//! | `spatia_torch_free(model)` | releases a handle (the cached model stays) |
//! | `spatia_torch_mil_data(*MilDataArgs, *data) -> i32` | the patients of one attention-MIL fit: times, events, per stain the tiles and each patient's tile offsets, the clinical matrix ([`mil`]) |
//! | `spatia_torch_mil_fit(data, cfg, cfg_len, train, n_train, val, n_val, *model) -> i32` | fits a network (configuration as JSON) on the training patients, scoring the validation patients after each epoch |
//! | `spatia_torch_mil_curves(model, buf, cap) -> usize` | the fit's curves as JSON (`train_loss`, `val_score`, `step_loss`, `out_dim`, and `scored`: the training then validation patients' outputs after each epoch); returns the full length |
//! | `spatia_torch_mil_predict(model, data, idx, n, out, out_len, att, att_len) -> i32` | outputs (n × out_dim) and per-tile attention (by patient, then stain) |
//! | `spatia_torch_mil_save(model, path, len) -> i32` | the weights as safetensors |
//! | `spatia_torch_mil_free(model)`, `spatia_torch_mil_data_free(data)` | release |
//!
//! # Model cache
//! Loaded models live in a process-global cache keyed by (blake3 of the model file's bytes, as
//! the caller computed it, device, precision): the shards of one process that use the same model
//! load it once. Handles share the cached module; forward passes on one module are serialised.
//!
//! # The CUDA pipeline
//! `submit` copies the tiles into a pinned host buffer (one per batch shape, reused once its
//! batch is collected), then queues without waiting: the upload of the uint8 batch (a quarter of
//! the float bytes), the conversion to float, the resize to the model's side (bilinear with
//! antialiasing) when the tiles differ, the normalisation, the forward pass (under autocast for
//! fp16/bf16) and the download of the features into pinned memory, then records a CUDA event.
//! `collect` waits for that event only, so the caller keeps two or more batches in flight: while
//! the GPU runs batch k, the host decodes and submits batch k+1. Everything runs on libtorch's
//! default stream, in order, so the features do not depend on the overlap (bit-identical run to
//! run). tch 0.24 has no event API and cannot choose autocast's dtype: both go through the CUDA
//! runtime and the libtorch already loaded (modules `cuda_rt`, `amp`).
//!
//! # Normalisation on CPU
//! On CPU `submit` computes the batch before returning: the uint8 tiles (already at the model's
//! side) are normalised through the same 256-entry table as
//! `spatia::features::transform::InputTransform::apply` (`(v·scale − mean)/std` in f32), so CPU
//! features are bit-identical to those of the in-process encoder this plugin replaced.
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tch::{CModule, Device, IValue, Kind, Tensor};

pub mod mil;

/// Version of the C ABI; bumped on any change of a signature or meaning.
pub const ABI_VERSION: u32 = 3;

const OK: i32 = 0;
const ERR: i32 = 1;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Runs `f`, turning an error or a panic into a status and the thread's last error.
fn guard(f: impl FnOnce() -> Result<(), String>) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => OK,
        Ok(Err(m)) => {
            set_error(&m);
            ERR
        }
        Err(p) => {
            let m = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            set_error(&format!("internal error in the torch plugin: {m}"));
            ERR
        }
    }
}

/// A slice from a C pointer and length (empty for a null pointer or zero length).
unsafe fn slice<'a, T>(p: *const T, len: usize) -> &'a [T] {
    if p.is_null() || len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(p, len)
    }
}

/// The directory of the libtorch this process loaded (from /proc/self/maps).
fn libtorch_dir() -> Option<std::path::PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| std::path::Path::new(p).parent().map(|d| d.to_path_buf()))
}

fn mapped(name: &str) -> bool {
    std::fs::read_to_string("/proc/self/maps").is_ok_and(|m| m.lines().any(|l| l.ends_with(&format!("/{name}"))))
}

/// Once per process: when the plugin was linked without libtorch's CUDA libraries (built
/// against a CPU-only libtorch, or with `SPATIA_TORCH_LINK_CUDA=0`) but runs against a libtorch
/// that has them on a machine with a CUDA driver, open them now, before the first CUDA call, so
/// that the CUDA backend registers. Without a driver they are not loaded (they would cost
/// ~0.25 s and ~350 MB for nothing).
fn init() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if mapped("libtorch_cuda.so") {
            return;
        }
        // SAFETY: the NVIDIA driver library; opening it runs no user-visible initialisation.
        if unsafe { libloading::Library::new("libcuda.so.1") }.is_err() {
            return;
        }
        let Some(dir) = libtorch_dir() else { return };
        for name in ["libc10_cuda.so", "libtorch_cuda.so"] {
            let p = dir.join(name);
            if p.exists() {
                // RTLD_GLOBAL: libtorch resolves the CUDA hooks through the global namespace.
                let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL;
                if let Ok(lib) = unsafe { libloading::os::unix::Library::open(Some(&p), flags) } {
                    std::mem::forget(lib); // stays loaded for the life of the process
                }
            }
        }
    });
}

struct Loaded {
    module: Mutex<CModule>,
    /// Output dimension by input size (probed once).
    dims: Mutex<HashMap<u32, usize>>,
    /// Batch sizes already run through the model on its device (CUDA warm-up done).
    warmed: Mutex<Vec<u32>>,
}

type Key = ([u8; 32], i32, i32);

fn cache() -> &'static Mutex<HashMap<Key, Arc<Loaded>>> {
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<Loaded>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Models read from bytes so far in this process (cache misses).
static LOADS: AtomicU64 = AtomicU64::new(0);

/// A model handle (opaque to the caller): the cached module, its device, precision, input side
/// and normalisation.
pub struct Model {
    loaded: Arc<Loaded>,
    device: Device,
    /// Autocast dtype on CUDA (`Float`: none).
    kind: Kind,
    size: u32,
    dim: usize,
    /// The CPU normalisation table: `(v·scale − mean_c)/std_c` for each channel and byte.
    lut: [[f32; 256]; 3],
    /// On CUDA: per-channel `scale/std` and `−mean/std`, 1×3×1×1 on the device.
    affine: Option<(Tensor, Tensor)>,
    /// On CUDA: pinned host staging buffers free for reuse, by byte length.
    staging: Mutex<Vec<Tensor>>,
}

/// What `spatia_torch_load` needs (C layout; the caller's copy of this struct must match).
#[repr(C)]
pub struct LoadArgs {
    /// blake3 of the model file's bytes: the cache key (with device and precision).
    pub key: [u8; 32],
    /// The model file's bytes (read only on a cache miss; null: the caller has not read them,
    /// and on a miss `spatia_torch_load` returns with `LoadResult::need_bytes` set).
    pub bytes: *const u8,
    pub bytes_len: usize,
    /// The model's name for messages (UTF-8).
    pub name: *const u8,
    pub name_len: usize,
    /// −1 CPU, k ≥ 0 CUDA device k.
    pub device: i32,
    /// 0 fp32, 1 fp16 autocast, 2 bf16 autocast (CUDA only).
    pub precision: i32,
    /// The model's input side in pixels.
    pub size: u32,
    /// On CUDA: the batch size to warm the model up with (0: none).
    pub warm_batch: u32,
    /// [scale, mean R G B, std R G B].
    pub norm: [f32; 7],
    /// Bit 0: on CPU, run batches through the device path (uint8 upload, resize and
    /// normalisation as tensor ops, tickets) instead of the table — for testing that path on
    /// machines without a GPU.
    pub flags: u32,
}

/// `LoadArgs::flags` bit: the device path on CPU.
pub const FLAG_DEVICE_PATH: u32 = 1;

/// What `spatia_torch_load` returns.
#[repr(C)]
pub struct LoadResult {
    pub model: *mut Model,
    pub dim: usize,
    /// 1 when the model was read from the bytes now, 0 when it came from the process's cache.
    pub fresh: i32,
    /// 1 when the model is not cached and `LoadArgs::bytes` was null (no model returned).
    pub need_bytes: i32,
}

/// The C ABI version.
#[no_mangle]
pub extern "C" fn spatia_torch_abi_version() -> u32 {
    ABI_VERSION
}

/// The calling thread's last error message (NUL-terminated, owned by the plugin).
#[no_mangle]
pub extern "C" fn spatia_torch_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// CUDA devices libtorch can use (0 when CUDA is unavailable).
#[no_mangle]
pub extern "C" fn spatia_torch_cuda_device_count() -> i64 {
    catch_unwind(|| {
        init();
        if tch::Cuda::is_available() {
            tch::Cuda::device_count()
        } else {
            0
        }
    })
    .unwrap_or(0)
}

/// Sets libtorch's CPU intra-op thread count (process-wide) when `n > 0`; returns the count.
#[no_mangle]
pub extern "C" fn spatia_torch_set_threads(n: i32) -> i32 {
    catch_unwind(|| {
        if n > 0 {
            tch::set_num_threads(n);
        }
        tch::get_num_threads()
    })
    .unwrap_or(-1)
}

fn te(e: tch::TchError) -> String {
    e.to_string()
}

/// Runs `f` with CUDA autocast to `kind` (`Float`: without autocast).
fn autocast<T>(kind: Kind, f: impl FnOnce() -> T) -> Result<T, String> {
    if kind == Kind::Float {
        return Ok(f());
    }
    amp::set_cuda_dtype(kind)?;
    Ok(tch::autocast(true, f))
}

/// Loads (or takes from the cache) a TorchScript model; see the module docs.
///
/// # Safety
/// `args` points to a valid [`LoadArgs`] whose pointers are valid for their lengths; `out` is
/// valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spatia_torch_load(args: *const LoadArgs, out: *mut LoadResult) -> i32 {
    guard(|| {
        init();
        let a = args.as_ref().ok_or("null load arguments")?;
        if out.is_null() {
            return Err("null output pointer".into());
        }
        let name = String::from_utf8_lossy(slice(a.name, a.name_len)).into_owned();
        let dev = if a.device < 0 { Device::Cpu } else { Device::Cuda(a.device as usize) };
        let kind = match a.precision {
            0 => Kind::Float,
            1 => Kind::Half,
            2 => Kind::BFloat16,
            p => return Err(format!("unknown precision code {p}")),
        };
        if kind != Kind::Float && dev == Device::Cpu {
            return Err("fp16/bf16 autocast needs a CUDA device".into());
        }
        if a.size == 0 {
            return Err("input size 0".into());
        }
        let (scale, mean, std) = (a.norm[0], [a.norm[1], a.norm[2], a.norm[3]], [a.norm[4], a.norm[5], a.norm[6]]);
        if std.iter().any(|s| !s.is_finite() || *s == 0.0) || !scale.is_finite() || mean.iter().any(|m| !m.is_finite())
        {
            return Err(format!("normalisation {:?}: expected finite values and non-zero std", a.norm));
        }
        let key = (a.key, a.device.max(-1), a.precision);
        let mut fresh = 0;
        let loaded = {
            let mut c = cache().lock().map_err(|_| "model cache lock poisoned".to_string())?;
            match c.get(&key) {
                Some(l) => l.clone(),
                None if a.bytes.is_null() => {
                    *out = LoadResult { model: std::ptr::null_mut(), dim: 0, fresh: 0, need_bytes: 1 };
                    return Ok(());
                }
                None => {
                    let bytes = slice(a.bytes, a.bytes_len);
                    let mut m = CModule::load_data_on_device(&mut std::io::Cursor::new(bytes), dev)
                        .map_err(|e| format!("cannot load TorchScript {name}: {e}"))?;
                    m.set_eval();
                    let l = Arc::new(Loaded {
                        module: Mutex::new(m),
                        dims: Mutex::new(HashMap::new()),
                        warmed: Mutex::new(Vec::new()),
                    });
                    c.insert(key, l.clone());
                    LOADS.fetch_add(1, Ordering::Relaxed);
                    fresh = 1;
                    l
                }
            }
        };
        let s = a.size as i64;
        let known = loaded.dims.lock().map_err(|_| "lock poisoned".to_string())?.get(&a.size).copied();
        let dim = match known {
            Some(d) => d,
            None => {
                let probe = Tensor::zeros([1, 3, s, s], (Kind::Float, dev));
                let d = forward(&loaded, probe, 1, kind)?.size()[1] as usize;
                loaded.dims.lock().map_err(|_| "lock poisoned".to_string())?.insert(a.size, d);
                d
            }
        };
        if dev != Device::Cpu && a.warm_batch > 0 {
            let mut warmed = loaded.warmed.lock().map_err(|_| "lock poisoned".to_string())?;
            if !warmed.contains(&a.warm_batch) {
                // The JIT's profiling executor optimises a graph on its second run for a shape, and
                // cuDNN picks its kernels on the first: both happen here, not in the first batches.
                let b = a.warm_batch as i64;
                for _ in 0..2 {
                    let _ = forward(&loaded, Tensor::zeros([b, 3, s, s], (Kind::Float, dev)), b as usize, kind)?;
                }
                tch::Cuda::synchronize(a.device as i64);
                warmed.push(a.warm_batch);
            }
        }
        let lut: [[f32; 256]; 3] =
            std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 * scale - mean[c]) / std[c]));
        let device_path = dev != Device::Cpu || a.flags & FLAG_DEVICE_PATH != 0;
        let affine = if !device_path {
            None
        } else {
            let mul: Vec<f32> = (0..3).map(|c| scale / std[c]).collect();
            let add: Vec<f32> = (0..3).map(|c| -mean[c] / std[c]).collect();
            let t = |v: &[f32]| Tensor::from_slice(v).view([1, 3, 1, 1]).to_device(dev);
            Some((t(&mul), t(&add)))
        };
        let model =
            Model { loaded, device: dev, kind, size: a.size, dim, lut, affine, staging: Mutex::new(Vec::new()) };
        *out = LoadResult { model: Box::into_raw(Box::new(model)), dim, fresh, need_bytes: 0 };
        Ok(())
    })
}

/// The model's forward pass on a B×3×S×S float input (under autocast to `kind` on CUDA): a
/// B×D float tensor on the model's device.
fn forward(loaded: &Loaded, input: Tensor, b: usize, kind: Kind) -> Result<Tensor, String> {
    let module = loaded.module.lock().map_err(|_| "model lock poisoned by an earlier panic".to_string())?;
    let out = autocast(kind, || tch::no_grad(|| module.forward_is(&[IValue::Tensor(input)])))?
        .map_err(|e| format!("forward pass failed: {e}"))?;
    drop(module);
    let t = match out {
        IValue::Tensor(t) => t,
        IValue::Tuple(v) | IValue::GenericList(v) => match v.into_iter().next() {
            Some(IValue::Tensor(t)) => t,
            _ => return Err("expected the model to return a tensor or a tuple starting with one".into()),
        },
        other => return Err(format!("expected the model to return a tensor, found {other:?}")),
    };
    let shape = t.size();
    if shape.is_empty() || shape[0] != b as i64 {
        return Err(format!("expected an output of shape [{b}, D], found {shape:?}"));
    }
    t.f_to_kind(Kind::Float).and_then(|t| t.f_reshape([b as i64, -1])).map_err(te)
}

/// A submitted batch: its features (on CPU: computed; on CUDA: being copied into pinned host
/// memory, done when `event` completes) and the staging buffer to give back.
pub struct Ticket {
    host: Tensor,
    n: usize,
    dim: usize,
    device: Device,
    event: Option<cuda_rt::Event>,
    staging: Option<(*const Model, Tensor)>,
}

/// Submits `n` uint8 RGB `h`×`w` tiles (`tiles[i]` points to `h·w·3` bytes, HWC) to the model
/// and returns a ticket for `spatia_torch_collect`. On CPU the features are computed before
/// this returns. On CUDA the tiles are copied into a pinned staging buffer and everything
/// after — upload, resize to the model's side, normalisation, forward, download — is queued on
/// the device without waiting, so the caller can prepare the next batch meanwhile.
///
/// # Safety
/// `model` comes from `spatia_torch_load` and is not freed before the ticket is collected or
/// released; `tiles` holds `n` pointers, each valid for `h·w·3` bytes; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spatia_torch_submit(
    model: *const Model,
    tiles: *const *const u8,
    n: usize,
    h: usize,
    w: usize,
    out: *mut *mut Ticket,
) -> i32 {
    guard(|| {
        let m = model.as_ref().ok_or("null model handle")?;
        if out.is_null() {
            return Err("null output pointer".into());
        }
        let tiles = slice(tiles, n);
        if n == 0 || tiles.len() != n || h == 0 || w == 0 || tiles.iter().any(|p| p.is_null()) {
            return Err(format!("expected a non-empty batch of tiles, found {n} of {h}×{w}"));
        }
        let px = h * w * 3;
        let ticket = if m.affine.is_none() {
            if h != m.size as usize || w != m.size as usize {
                return Err(format!("on CPU tiles must be {s}×{s} (resized by the caller), found {h}×{w}", s = m.size));
            }
            // The same table and arithmetic as InputTransform::apply (bit-identical features).
            let plane = h * w;
            let mut flat = vec![0.0f32; n * 3 * plane];
            for (&tile, dst) in tiles.iter().zip(flat.chunks_exact_mut(3 * plane)) {
                let (r, rest) = dst.split_at_mut(plane);
                let (g, bl) = rest.split_at_mut(plane);
                for (i, p) in slice(tile, px).chunks_exact(3).enumerate() {
                    r[i] = m.lut[0][p[0] as usize];
                    g[i] = m.lut[1][p[1] as usize];
                    bl[i] = m.lut[2][p[2] as usize];
                }
            }
            let input = Tensor::from_slice(&flat).view([n as i64, 3, h as i64, w as i64]);
            let t = forward(&m.loaded, input, n, m.kind)?.contiguous();
            Ticket { host: t, n, dim: m.dim, device: Device::Cpu, event: None, staging: None }
        } else {
            submit_device(m, tiles, n, h, w)?
        };
        if ticket.host.size().get(1).copied() != Some(m.dim as i64) {
            return Err(format!("expected outputs of dimension {}, found shape {:?}", m.dim, ticket.host.size()));
        }
        *out = Box::into_raw(Box::new(ticket));
        Ok(())
    })
}

/// The device path of `spatia_torch_submit` (CUDA; on CPU only with [`FLAG_DEVICE_PATH`]).
unsafe fn submit_device(m: &Model, tiles: &[*const u8], n: usize, h: usize, w: usize) -> Result<Ticket, String> {
    let dev = m.device;
    let px = h * w * 3;
    let (b, hh, ww, s) = (n as i64, h as i64, w as i64, m.size as i64);
    // A pinned staging buffer of this shape (reused once its batch was collected).
    let staging = {
        let mut free = m.staging.lock().map_err(|_| "lock poisoned".to_string())?;
        match free.iter().position(|t| t.size() == [b, hh, ww, 3]) {
            Some(i) => free.swap_remove(i),
            None => Tensor::f_empty([b, hh, ww, 3], (Kind::Uint8, Device::Cpu))
                .and_then(|t| if dev == Device::Cpu { Ok(t) } else { t.f_pin_memory(dev) })
                .map_err(|e| format!("cannot allocate pinned host memory for {n} tiles: {e}"))?,
        }
    };
    let dst = staging.data_ptr() as *mut u8;
    for (i, &tile) in tiles.iter().enumerate() {
        std::ptr::copy_nonoverlapping(tile, dst.add(i * px), px);
    }
    let (mul, add) = m.affine.as_ref().ok_or("CUDA model without its normalisation")?;
    let x = staging
        .f_to_device_(dev, Kind::Uint8, true, false)
        .and_then(|x| x.f_permute([0, 3, 1, 2]))
        .and_then(|x| x.f_to_kind(Kind::Float))
        .map_err(te)?;
    let x = if hh != s || ww != s {
        // bilinear with antialiasing (as PIL's and the CPU path's triangle filter)
        x.f_internal_upsample_bilinear2d_aa([s, s], false, None, None).map_err(te)?
    } else {
        x
    };
    let x = x.f_mul(mul).and_then(|x| x.f_add(add)).and_then(|x| x.f_contiguous()).map_err(te)?;
    let y = forward(&m.loaded, x, n, m.kind)?;
    // non_blocking to CPU: libtorch allocates pinned memory and queues the copy
    let host = y.f_to_device_(Device::Cpu, Kind::Float, true, false).map_err(te)?;
    let event = cuda_rt::Event::record(dev)?;
    Ok(Ticket { host, n, dim: m.dim, device: dev, event, staging: Some((m as *const Model, staging)) })
}

impl Ticket {
    /// Waits until the batch is done and gives the staging buffer back.
    fn wait(&mut self) {
        match self.event.take() {
            Some(e) => e.synchronize(),
            None => {
                if let Device::Cuda(k) = self.device {
                    tch::Cuda::synchronize(k as i64);
                }
            }
        }
        if let Some((model, buf)) = self.staging.take() {
            // SAFETY: the caller keeps the model alive until its tickets are collected or released.
            if let Some(m) = unsafe { model.as_ref() } {
                if let Ok(mut free) = m.staging.lock() {
                    if free.len() < 4 {
                        free.push(buf);
                    }
                }
            }
        }
    }
}

/// Waits for a submitted batch and writes its `n·dim` features into `out`; frees the ticket
/// (also on error).
///
/// # Safety
/// `ticket` comes from `spatia_torch_submit` and is used once; `out` is valid for `out_len` floats.
#[no_mangle]
pub unsafe extern "C" fn spatia_torch_collect(ticket: *mut Ticket, out: *mut f32, out_len: usize) -> i32 {
    if ticket.is_null() {
        set_error("null ticket");
        return ERR;
    }
    let mut t = Box::from_raw(ticket);
    guard(move || {
        t.wait();
        if out.is_null() || out_len != t.n * t.dim {
            return Err(format!("output buffer of {out_len} floats, expected {}×{}", t.n, t.dim));
        }
        let dst = std::slice::from_raw_parts_mut(out, out_len);
        t.host.f_copy_data(dst, out_len).map_err(te)
    })
}

/// Waits for a submitted batch and frees its ticket without reading it (null is ignored).
///
/// # Safety
/// `ticket` comes from `spatia_torch_submit` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn spatia_torch_release(ticket: *mut Ticket) {
    if !ticket.is_null() {
        let mut t = Box::from_raw(ticket);
        let _ = catch_unwind(AssertUnwindSafe(move || t.wait()));
    }
}

/// Releases a handle from `spatia_torch_load` (null is ignored; the cached model stays).
///
/// # Safety
/// `model` comes from `spatia_torch_load`, has no ticket outstanding, and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn spatia_torch_free(model: *mut Model) {
    if !model.is_null() {
        drop(Box::from_raw(model));
    }
}

/// CUDA events through the CUDA runtime libtorch loaded (`libcudart`, found in the process's
/// mappings): tch 0.24 exposes no event or stream API. An event recorded on the default stream
/// — the stream libtorch uses unless told otherwise — after a batch's download lets the
/// caller wait for that batch alone, while the batches queued after it keep the GPU busy.
mod cuda_rt {
    use std::ffi::c_void;
    use std::sync::OnceLock;
    use tch::Device;

    type Create = unsafe extern "C" fn(*mut *mut c_void, u32) -> i32;
    type Record = unsafe extern "C" fn(*mut c_void, *mut c_void) -> i32;
    type Sync = unsafe extern "C" fn(*mut c_void) -> i32;
    type Destroy = unsafe extern "C" fn(*mut c_void) -> i32;
    type GetDevice = unsafe extern "C" fn(*mut i32) -> i32;
    type SetDevice = unsafe extern "C" fn(i32) -> i32;

    pub struct Rt {
        pub path: String,
        create: Create,
        record: Record,
        sync: Sync,
        destroy: Destroy,
        get_device: GetDevice,
        set_device: SetDevice,
    }

    /// The CUDA runtime libtorch uses, when it is loaded in this process.
    pub fn rt() -> Option<&'static Rt> {
        static RT: OnceLock<Option<Rt>> = OnceLock::new();
        RT.get_or_init(|| {
            let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
            let path = maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find(|p| {
                std::path::Path::new(p).file_name().is_some_and(|n| n.to_string_lossy().starts_with("libcudart.so"))
            })?;
            // SAFETY: the runtime is already loaded (this only takes a reference) and the
            // symbols below have these C signatures in every CUDA runtime since 8.0.
            unsafe {
                let lib = libloading::Library::new(path).ok()?;
                let rt = Rt {
                    path: path.to_string(),
                    create: *lib.get(b"cudaEventCreateWithFlags\0").ok()?,
                    record: *lib.get(b"cudaEventRecord\0").ok()?,
                    sync: *lib.get(b"cudaEventSynchronize\0").ok()?,
                    destroy: *lib.get(b"cudaEventDestroy\0").ok()?,
                    get_device: *lib.get(b"cudaGetDevice\0").ok()?,
                    set_device: *lib.get(b"cudaSetDevice\0").ok()?,
                };
                std::mem::forget(lib);
                Some(rt)
            }
        })
        .as_ref()
    }

    /// A recorded event (destroyed once waited for).
    pub struct Event {
        rt: &'static Rt,
        ev: *mut c_void,
    }

    impl Event {
        /// Records an event on `device`'s default stream; `None` when the runtime is not
        /// found (the caller then synchronises the whole device).
        pub fn record(device: Device) -> Result<Option<Event>, String> {
            let (Device::Cuda(k), Some(rt)) = (device, rt()) else { return Ok(None) };
            const DISABLE_TIMING: u32 = 2;
            // SAFETY: plain CUDA runtime calls with valid pointers.
            unsafe {
                let mut cur = 0i32;
                (rt.get_device)(&mut cur);
                if cur != k as i32 {
                    (rt.set_device)(k as i32);
                }
                let mut ev = std::ptr::null_mut();
                let rc = (rt.create)(&mut ev, DISABLE_TIMING);
                if rc != 0 {
                    return Err(format!("cudaEventCreateWithFlags failed (cudaError {rc})"));
                }
                let rc = (rt.record)(ev, std::ptr::null_mut());
                if cur != k as i32 {
                    (rt.set_device)(cur);
                }
                if rc != 0 {
                    (rt.destroy)(ev);
                    return Err(format!("cudaEventRecord failed (cudaError {rc})"));
                }
                Ok(Some(Event { rt, ev }))
            }
        }

        /// Blocks until the work queued before the event is done.
        pub fn synchronize(self) {
            // SAFETY: `ev` is a live event; it is destroyed once, here.
            unsafe {
                (self.rt.sync)(self.ev);
                (self.rt.destroy)(self.ev);
            }
            std::mem::forget(self);
        }
    }

    impl Drop for Event {
        fn drop(&mut self) {
            // SAFETY: as in `synchronize`.
            unsafe {
                (self.rt.sync)(self.ev);
                (self.rt.destroy)(self.ev);
            }
        }
    }
}

/// CUDA autocast's low-precision dtype. tch 0.24 can switch autocast on and off (its default
/// dtype is fp16) but not choose bf16, so `at::autocast::set_autocast_dtype(DeviceType,
/// ScalarType)` is called through its exported C++ symbol in the libtorch_cpu this process
/// loaded; both enums are `int8_t`-backed (`DeviceType::CUDA` = 1, `Half` = 5, `BFloat16` = 15).
mod amp {
    use std::sync::OnceLock;
    use tch::Kind;

    type Set = unsafe extern "C" fn(i8, i8);
    type Get = unsafe extern "C" fn(i8) -> i8;
    const SET: &[u8] = b"_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE\0";
    const GET: &[u8] = b"_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE\0";
    const CUDA: i8 = 1;

    fn code(kind: Kind) -> i8 {
        match kind {
            Kind::BFloat16 => 15,
            _ => 5,
        }
    }

    fn symbols() -> Result<&'static (Set, Get), String> {
        static SYMS: OnceLock<Result<(Set, Get), String>> = OnceLock::new();
        SYMS.get_or_init(|| {
            let dir = super::libtorch_dir().ok_or("libtorch_cpu.so is not loaded")?;
            let path = dir.join("libtorch_cpu.so");
            // SAFETY: already loaded (this takes a reference); the signatures are those of
            // at::autocast::{set,get}_autocast_dtype with int8_t-backed enums.
            unsafe {
                let lib = libloading::Library::new(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                let set: Set = *lib.get(SET).map_err(|e| format!("at::autocast::set_autocast_dtype: {e}"))?;
                let get: Get = *lib.get(GET).map_err(|e| format!("at::autocast::get_autocast_dtype: {e}"))?;
                std::mem::forget(lib);
                Ok((set, get))
            }
        })
        .as_ref()
        .map_err(|e| e.clone())
    }

    /// Sets CUDA autocast's dtype to `kind` (Half or BFloat16) and checks it took.
    pub fn set_cuda_dtype(kind: Kind) -> Result<(), String> {
        let (set, get) = symbols()?;
        let want = code(kind);
        // SAFETY: see `symbols`.
        let got = unsafe {
            set(CUDA, want);
            get(CUDA)
        };
        if got != want {
            return Err(format!("autocast dtype: set {want}, libtorch reports {got}"));
        }
        Ok(())
    }

    /// Whether the autocast dtype can be chosen here (bf16 then fp16 set and read back; fp16
    /// restored, libtorch's default), for `spatia doctor`.
    pub fn usable() -> Result<(), String> {
        set_cuda_dtype(Kind::BFloat16)?;
        set_cuda_dtype(Kind::Half)
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Name and total memory of each CUDA device, through the driver API (libcuda.so.1).
fn cuda_devices(count: i64) -> Result<Vec<(String, u64)>, String> {
    type Init = unsafe extern "C" fn(u32) -> i32;
    type Get = unsafe extern "C" fn(*mut i32, i32) -> i32;
    type Name = unsafe extern "C" fn(*mut c_char, i32, i32) -> i32;
    type Mem = unsafe extern "C" fn(*mut usize, i32) -> i32;
    unsafe {
        let lib = libloading::Library::new("libcuda.so.1").map_err(|e| format!("libcuda.so.1: {e}"))?;
        let init: libloading::Symbol<Init> = lib.get(b"cuInit\0").map_err(|e| e.to_string())?;
        let get: libloading::Symbol<Get> = lib.get(b"cuDeviceGet\0").map_err(|e| e.to_string())?;
        let name: libloading::Symbol<Name> = lib.get(b"cuDeviceGetName\0").map_err(|e| e.to_string())?;
        let mem: libloading::Symbol<Mem> = lib.get(b"cuDeviceTotalMem_v2\0").map_err(|e| e.to_string())?;
        let rc = init(0);
        if rc != 0 {
            return Err(format!("cuInit failed with CUresult {rc}"));
        }
        let mut v = Vec::new();
        for i in 0..count as i32 {
            let mut dev = 0i32;
            if get(&mut dev, i) != 0 {
                return Err(format!("cuDeviceGet({i}) failed"));
            }
            let mut buf = [0 as c_char; 256];
            name(buf.as_mut_ptr(), 256, dev);
            let n = std::ffi::CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned();
            let mut bytes = 0usize;
            mem(&mut bytes, dev);
            v.push((n, bytes as u64));
        }
        Ok(v)
    }
}

fn info_json() -> String {
    init();
    let dir = libtorch_dir();
    let runtime = dir.as_ref().and_then(|d| {
        let root = d.parent()?;
        let s = std::fs::read_to_string(root.join("version.py")).ok();
        s.and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("__version__ = ").map(|v| v.trim().trim_matches(['\'', '"']).to_string()))
        })
        .or_else(|| std::fs::read_to_string(root.join("build-version")).ok().map(|s| s.trim().to_string()))
    });
    let cuda_libs = mapped("libtorch_cuda.so");
    let has_cuda = tch::utils::has_cuda();
    let available = tch::Cuda::is_available();
    let count = if available { tch::Cuda::device_count() } else { 0 };
    let cudnn = has_cuda && tch::Cuda::cudnn_is_available();
    let cudnn_version = if cudnn { catch_unwind(tch::utils::version_cudnn).unwrap_or(0) } else { 0 };
    let cudart_version = if has_cuda { catch_unwind(tch::utils::version_cudart).unwrap_or(0) } else { 0 };
    let (devices, devices_error) = if count > 0 {
        match cuda_devices(count) {
            Ok(d) => (d, None),
            Err(e) => (Vec::new(), Some(e)),
        }
    } else {
        (Vec::new(), None)
    };
    let devs: Vec<String> = devices
        .iter()
        .enumerate()
        .map(|(i, (n, m))| format!("{{\"index\":{i},\"name\":{},\"total_memory_bytes\":{m}}}", json_str(n)))
        .collect();
    let opt = |s: Option<String>| s.map(|s| json_str(&s)).unwrap_or_else(|| "null".into());
    format!(
        concat!(
            "{{\"abi\":{},\"plugin_version\":{},\"torch_version_built\":{},\"torch_version\":{},",
            "\"libtorch_dir\":{},\"built_with_cuda_libs\":{},\"cuda_libs_loaded\":{},\"cuda_built\":{},",
            "\"cuda_available\":{},\"cuda_device_count\":{},\"cudart_version\":{},\"cudnn_available\":{},",
            "\"cudnn_version\":{},\"devices\":[{}],\"devices_error\":{},\"cpu_threads\":{},\"cached_models\":{},",
            "\"model_loads\":{},\"cudart\":{},\"autocast_dtype_error\":{}}}"
        ),
        ABI_VERSION,
        json_str(env!("CARGO_PKG_VERSION")),
        json_str(env!("SPATIA_TORCH_BUILT_VERSION")),
        opt(runtime),
        opt(dir.map(|d| d.display().to_string())),
        env!("SPATIA_TORCH_BUILT_CUDA") == "1",
        cuda_libs,
        has_cuda,
        available,
        count,
        cudart_version,
        cudnn,
        cudnn_version,
        devs.join(","),
        opt(devices_error),
        tch::get_num_threads(),
        cache().lock().map_or(0, |c| c.len()),
        LOADS.load(Ordering::Relaxed),
        opt(cuda_rt::rt().map(|r| r.path.clone())),
        opt(amp::usable().err()),
    )
}

/// Writes the runtime facts (JSON, not NUL-terminated) into `buf` when they fit in `cap`
/// bytes; returns their full length (0 on an internal error, see `spatia_torch_last_error`).
///
/// # Safety
/// `buf` is valid for `cap` bytes of writes (or null with `cap` 0).
#[no_mangle]
pub unsafe extern "C" fn spatia_torch_info(buf: *mut u8, cap: usize) -> usize {
    let mut len = 0;
    guard(|| {
        let s = info_json();
        len = s.len();
        if !buf.is_null() && s.len() <= cap {
            std::ptr::copy_nonoverlapping(s.as_ptr(), buf, s.len());
        }
        Ok(())
    });
    len
}

/// What `spatia_torch_mil_data` needs (C layout; the caller's copy must match).
#[repr(C)]
pub struct MilDataArgs {
    /// Patients.
    pub n: usize,
    /// `n` follow-up times and `n` events (0/1).
    pub time: *const f64,
    pub event: *const u8,
    /// Stains: `n_mod` feature widths, tile offset arrays (`n + 1` each) and feature arrays
    /// (`offsets[n] × dim` each, row-major).
    pub n_mod: usize,
    pub dims: *const usize,
    pub offsets: *const *const i64,
    pub feats: *const *const f32,
    /// Clinical columns (0: none) and the `n × clin_dim` matrix.
    pub clin_dim: usize,
    pub clinical: *const f32,
}

/// Builds the data of a fit.
///
/// # Safety
/// `args` and its pointers are valid for the lengths they state; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spatia_torch_mil_data(args: *const MilDataArgs, out: *mut *mut mil::MilData) -> i32 {
    guard(|| {
        let a = args.as_ref().ok_or("null data arguments")?;
        if out.is_null() {
            return Err("null output pointer".into());
        }
        let dims = slice(a.dims, a.n_mod);
        let offs = slice(a.offsets, a.n_mod);
        let feats = slice(a.feats, a.n_mod);
        let mut mods = Vec::new();
        for k in 0..a.n_mod {
            let o = slice(offs[k], a.n + 1);
            let tiles = o.last().copied().unwrap_or(0).max(0) as usize;
            mods.push((slice(feats[k], tiles * dims[k]), o, dims[k]));
        }
        let clinical = (a.clin_dim > 0).then(|| (slice(a.clinical, a.n * a.clin_dim), a.clin_dim));
        let d = mil::MilData::new(slice(a.time, a.n), slice(a.event, a.n), mods, clinical)?;
        *out = Box::into_raw(Box::new(d));
        Ok(())
    })
}

/// Frees fit data.
///
/// # Safety
/// `d` came from `spatia_torch_mil_data` (or is null) and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn spatia_torch_mil_data_free(d: *mut mil::MilData) {
    if !d.is_null() {
        drop(Box::from_raw(d));
    }
}

/// Fits a network; see [`mil`].
///
/// # Safety
/// `data` is live; `cfg` is valid for `cfg_len` bytes; `train`/`val` for their lengths; `out`
/// is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spatia_torch_mil_fit(
    data: *const mil::MilData,
    cfg: *const u8,
    cfg_len: usize,
    train: *const usize,
    n_train: usize,
    val: *const usize,
    n_val: usize,
    out: *mut *mut mil::MilModel,
) -> i32 {
    guard(|| {
        let d = data.as_ref().ok_or("null data")?;
        if out.is_null() {
            return Err("null output pointer".into());
        }
        let c: mil::MilConfig =
            serde_json::from_slice(slice(cfg, cfg_len)).map_err(|e| format!("bad MIL configuration: {e}"))?;
        if c.device >= 0 {
            init();
        }
        let m = mil::fit(d, c, slice(train, n_train), slice(val, n_val))?;
        *out = Box::into_raw(Box::new(m));
        Ok(())
    })
}

/// The fit's curves as JSON; returns the full length (the bytes are written when `cap` holds them).
///
/// # Safety
/// `model` is live; `buf` is valid for `cap` bytes (or null).
#[no_mangle]
pub unsafe extern "C" fn spatia_torch_mil_curves(model: *const mil::MilModel, buf: *mut u8, cap: usize) -> usize {
    let mut len = 0;
    guard(|| {
        let m = model.as_ref().ok_or("null model")?;
        let s = serde_json::json!({
            "train_loss": m.train_loss, "val_score": m.val_score, "step_loss": m.step_loss, "out_dim": m.out_dim,
            "scored": m.scored,
        })
        .to_string();
        len = s.len();
        if !buf.is_null() && s.len() <= cap {
            std::ptr::copy_nonoverlapping(s.as_ptr(), buf, s.len());
        }
        Ok(())
    });
    len
}

/// Outputs and attention of patients `idx`.
///
/// # Safety
/// `model` and `data` are live; `idx` is valid for `n`; `out` for `out_len` floats and `att` for
/// `att_len` floats.
#[no_mangle]
pub unsafe extern "C" fn spatia_torch_mil_predict(
    model: *const mil::MilModel,
    data: *const mil::MilData,
    idx: *const usize,
    n: usize,
    out: *mut f32,
    out_len: usize,
    att: *mut f32,
    att_len: usize,
) -> i32 {
    guard(|| {
        let m = model.as_ref().ok_or("null model")?;
        let d = data.as_ref().ok_or("null data")?;
        let (o, a) = m.predict(d, slice(idx, n))?;
        if o.len() != out_len || a.len() != att_len {
            return Err(format!(
                "prediction sizes {}/{} differ from the caller's {out_len}/{att_len}",
                o.len(),
                a.len()
            ));
        }
        if out_len > 0 {
            std::ptr::copy_nonoverlapping(o.as_ptr(), out, out_len);
        }
        if att_len > 0 {
            std::ptr::copy_nonoverlapping(a.as_ptr(), att, att_len);
        }
        Ok(())
    })
}

/// Saves the weights (safetensors).
///
/// # Safety
/// `model` is live; `path` is valid for `len` bytes of UTF-8.
#[no_mangle]
pub unsafe extern "C" fn spatia_torch_mil_save(model: *const mil::MilModel, path: *const u8, len: usize) -> i32 {
    guard(|| {
        let m = model.as_ref().ok_or("null model")?;
        let p = std::str::from_utf8(slice(path, len)).map_err(|_| "path is not UTF-8".to_string())?;
        m.save(p)
    })
}

/// Frees a fitted network.
///
/// # Safety
/// `m` came from `spatia_torch_mil_fit` (or is null) and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn spatia_torch_mil_free(m: *mut mil::MilModel) {
    if !m.is_null() {
        drop(Box::from_raw(m));
    }
}
