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
//! | `spatia_torch_info(buf, cap) -> usize` | runtime facts as JSON (torch version, CUDA, devices, cuDNN, models cached); returns the full length |
//! | `spatia_torch_cuda_device_count() -> i64` | CUDA devices libtorch can use (0 when none) |
//! | `spatia_torch_set_threads(n) -> i32` | sets libtorch's CPU intra-op threads when `n > 0`; returns the current count |
//! | `spatia_torch_load(path, len, device, precision, size, *model, *dim) -> i32` | a model handle for `device` (−1 CPU, k ≥ 0 CUDA k), `precision` (0 fp32, 1 fp16, 2 bf16), probed for its output dimension with a `size`×`size` input |
//! | `spatia_torch_forward(model, nhwc, n, h, w, norm, out, out_len) -> i32` | features of `n` uint8 RGB tiles (NHWC) normalised by `norm` = [scale, mean R G B, std R G B]; writes `n·dim` floats |
//! | `spatia_torch_free(model)` | releases a handle (the cached model stays) |
//!
//! # Model cache
//! Loaded models live in a process-global cache keyed by (blake3 of the model file's bytes,
//! device, precision): the shards of one process that use the same model load it once.
//! Handles share the cached module; forward passes on one module are serialised.
//!
//! # Normalisation
//! On CPU the uint8 tiles are normalised here, through the same 256-entry table as
//! `spatia::features::transform::InputTransform::apply` (`(v·scale − mean)/std` in f32), so CPU
//! features are bit-identical to those of the in-process encoder this plugin replaced. On CUDA
//! the uint8 batch (a quarter of the float bytes) is copied to the device and normalised there.
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};
use tch::{CModule, Device, IValue, Kind, Tensor};

/// Version of the C ABI; bumped on any change of a signature or meaning.
pub const ABI_VERSION: u32 = 1;

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
}

type Key = ([u8; 32], i32, i32);

fn cache() -> &'static Mutex<HashMap<Key, Arc<Loaded>>> {
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<Loaded>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// A model handle (opaque to the caller).
pub struct Model {
    loaded: Arc<Loaded>,
    device: Device,
    kind: Kind,
    dim: usize,
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

/// Loads (or takes from the cache) a TorchScript model; see the module docs.
///
/// # Safety
/// `path` points to `path_len` bytes of UTF-8; `out_model` and `out_dim` are valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spatia_torch_load(
    path: *const u8,
    path_len: usize,
    device: i32,
    precision: i32,
    size: u32,
    out_model: *mut *mut Model,
    out_dim: *mut usize,
) -> i32 {
    guard(|| {
        init();
        if out_model.is_null() || out_dim.is_null() {
            return Err("null output pointer".into());
        }
        let path = std::str::from_utf8(slice(path, path_len)).map_err(|_| "model path is not UTF-8".to_string())?;
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read model file {path}: {e}"))?;
        let dev = if device < 0 { Device::Cpu } else { Device::Cuda(device as usize) };
        let kind = match precision {
            0 => Kind::Float,
            1 => Kind::Half,
            2 => Kind::BFloat16,
            p => return Err(format!("unknown precision code {p}")),
        };
        if size == 0 {
            return Err("input size 0".into());
        }
        let key = (*blake3::hash(&bytes).as_bytes(), device.max(-1), precision);
        let loaded = {
            let mut c = cache().lock().map_err(|_| "model cache lock poisoned".to_string())?;
            match c.get(&key) {
                Some(l) => l.clone(),
                None => {
                    let mut m = CModule::load_data_on_device(&mut std::io::Cursor::new(&bytes), dev)
                        .map_err(|e| format!("cannot load TorchScript {path}: {e}"))?;
                    m.set_eval();
                    if kind != Kind::Float {
                        m.to(dev, kind, false);
                    }
                    let l = Arc::new(Loaded { module: Mutex::new(m), dims: Mutex::new(HashMap::new()) });
                    c.insert(key, l.clone());
                    l
                }
            }
        };
        let known = loaded.dims.lock().map_err(|_| "lock poisoned".to_string())?.get(&size).copied();
        let dim = match known {
            Some(d) => d,
            None => {
                let s = size as i64;
                let probe = Tensor::zeros([1, 3, s, s], (Kind::Float, Device::Cpu)).to_device(dev).to_kind(kind);
                let d = run(&loaded, probe, 1)?.size()[1] as usize;
                loaded.dims.lock().map_err(|_| "lock poisoned".to_string())?.insert(size, d);
                d
            }
        };
        *out_dim = dim;
        *out_model = Box::into_raw(Box::new(Model { loaded, device: dev, kind, dim }));
        Ok(())
    })
}

/// The model's forward pass on a B×3×S×S input: a CPU float B×D tensor.
fn run(loaded: &Loaded, input: Tensor, b: usize) -> Result<Tensor, String> {
    let module = loaded.module.lock().map_err(|_| "model lock poisoned by an earlier panic".to_string())?;
    let out = tch::no_grad(|| module.forward_is(&[IValue::Tensor(input)]))
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
    Ok(t.to_kind(Kind::Float).to_device(Device::Cpu).contiguous().view([b as i64, -1]))
}

/// Features of `n` uint8 NHWC RGB tiles; see the module docs.
///
/// # Safety
/// `model` comes from `spatia_torch_load` and was not freed; `nhwc` holds `n·h·w·3` bytes,
/// `norm` 7 floats, `out` `out_len` floats.
#[no_mangle]
pub unsafe extern "C" fn spatia_torch_forward(
    model: *const Model,
    nhwc: *const u8,
    n: usize,
    h: usize,
    w: usize,
    norm: *const f32,
    out: *mut f32,
    out_len: usize,
) -> i32 {
    guard(|| {
        let m = model.as_ref().ok_or("null model handle")?;
        if n == 0 {
            return Ok(());
        }
        if out_len != n * m.dim || out.is_null() {
            return Err(format!("output buffer of {out_len} floats, expected {n}×{}", m.dim));
        }
        let px = slice(nhwc, n * h * w * 3);
        let norm = slice(norm, 7);
        if px.len() != n * h * w * 3 || norm.len() != 7 || h == 0 || w == 0 {
            return Err("empty tile batch or normalisation".into());
        }
        let (scale, mean, std) = (norm[0], [norm[1], norm[2], norm[3]], [norm[4], norm[5], norm[6]]);
        let (b, hh, ww) = (n as i64, h as i64, w as i64);
        let input = if m.device == Device::Cpu {
            // The same table and arithmetic as InputTransform::apply (bit-identical features).
            let lut: [[f32; 256]; 3] =
                std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 * scale - mean[c]) / std[c]));
            let plane = h * w;
            let mut flat = vec![0.0f32; n * 3 * plane];
            for (tile, dst) in px.chunks_exact(3 * plane).zip(flat.chunks_exact_mut(3 * plane)) {
                let (r, rest) = dst.split_at_mut(plane);
                let (g, bl) = rest.split_at_mut(plane);
                for (i, p) in tile.chunks_exact(3).enumerate() {
                    r[i] = lut[0][p[0] as usize];
                    g[i] = lut[1][p[1] as usize];
                    bl[i] = lut[2][p[2] as usize];
                }
            }
            Tensor::from_slice(&flat).view([b, 3, hh, ww]).to_kind(m.kind)
        } else {
            let dev = m.device;
            let t = Tensor::from_slice(px).view([b, hh, ww, 3]).to_device(dev).to_kind(Kind::Float);
            let mean_t = Tensor::from_slice(&mean).view([1, 1, 1, 3]).to_device(dev);
            let std_t = Tensor::from_slice(&std).view([1, 1, 1, 3]).to_device(dev);
            ((t * scale as f64 - mean_t) / std_t).permute([0, 3, 1, 2]).contiguous().to_kind(m.kind)
        };
        let t = run(&m.loaded, input, n)?;
        let d = t.size()[1] as usize;
        if d != m.dim {
            return Err(format!("expected outputs of dimension {}, found {d}", m.dim));
        }
        let dst = std::slice::from_raw_parts_mut(out, out_len);
        t.copy_data(dst, out_len);
        Ok(())
    })
}

/// Releases a handle from `spatia_torch_load` (null is ignored).
///
/// # Safety
/// `model` comes from `spatia_torch_load` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn spatia_torch_free(model: *mut Model) {
    if !model.is_null() {
        drop(Box::from_raw(model));
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
            "\"cudnn_version\":{},\"devices\":[{}],\"devices_error\":{},\"cpu_threads\":{},\"cached_models\":{}}}"
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
