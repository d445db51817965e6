//! The boundary to libtorch: `libspatia_torch.so` (crates/spatia-torch), opened on first use.
//!
//! `spatia` never links libtorch: a process that runs no TorchScript model never loads it
//! (~130 MB, 0.3 s). The first call here opens the plugin — `$SPATIA_TORCH_PLUGIN` when set, else
//! `libspatia_torch.so` beside the executable (or beside its parent directory when the executable
//! sits in cargo's `deps/`, as test binaries do) — checks its C ABI version and keeps it loaded
//! for the life of the process (libtorch is never unloaded). The plugin finds libtorch through
//! the rpath `make build` gave it.
//!
//! # Errors
//! A missing plugin, one that cannot be opened (typically: libtorch not found) or one of another
//! ABI version is reported once per process as a message naming the paths tried and the fix.
use std::ffi::{c_char, CStr};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The plugin's C ABI version this build speaks (crates/spatia-torch/src/lib.rs).
pub const ABI_VERSION: u32 = 3;

/// The plugin's file name.
pub const PLUGIN_FILE: &str = "libspatia_torch.so";

/// The environment variable naming the plugin file explicitly.
pub const PLUGIN_ENV: &str = "SPATIA_TORCH_PLUGIN";

#[repr(C)]
struct RawModel {
    _private: [u8; 0],
}

#[repr(C)]
struct RawTicket {
    _private: [u8; 0],
}

/// The plugin's `LoadArgs` (same layout).
#[repr(C)]
struct LoadArgs {
    key: [u8; 32],
    bytes: *const u8,
    bytes_len: usize,
    name: *const u8,
    name_len: usize,
    device: i32,
    precision: i32,
    size: u32,
    warm_batch: u32,
    norm: [f32; 7],
    flags: u32,
}

/// The plugin's `LoadResult` (same layout).
#[repr(C)]
struct LoadResult {
    model: *mut RawModel,
    dim: usize,
    fresh: i32,
    need_bytes: i32,
}

type LastError = unsafe extern "C" fn() -> *const c_char;
type Info = unsafe extern "C" fn(*mut u8, usize) -> usize;
type DeviceCount = unsafe extern "C" fn() -> i64;
type SetThreads = unsafe extern "C" fn(i32) -> i32;
type Load = unsafe extern "C" fn(*const LoadArgs, *mut LoadResult) -> i32;
type Submit = unsafe extern "C" fn(*const RawModel, *const *const u8, usize, usize, usize, *mut *mut RawTicket) -> i32;
type Collect = unsafe extern "C" fn(*mut RawTicket, *mut f32, usize) -> i32;
type Release = unsafe extern "C" fn(*mut RawTicket);
type Free = unsafe extern "C" fn(*mut RawModel);

#[repr(C)]
struct RawMilData {
    _private: [u8; 0],
}

#[repr(C)]
struct RawMilModel {
    _private: [u8; 0],
}

/// The plugin's `MilDataArgs` (same layout).
#[repr(C)]
struct MilDataArgs {
    n: usize,
    time: *const f64,
    event: *const u8,
    n_mod: usize,
    dims: *const usize,
    offsets: *const *const i64,
    feats: *const *const f32,
    clin_dim: usize,
    clinical: *const f32,
}

type MilDataNew = unsafe extern "C" fn(*const MilDataArgs, *mut *mut RawMilData) -> i32;
type MilDataFree = unsafe extern "C" fn(*mut RawMilData);
type MilFit = unsafe extern "C" fn(
    *const RawMilData,
    *const u8,
    usize,
    *const usize,
    usize,
    *const usize,
    usize,
    *mut *mut RawMilModel,
) -> i32;
type MilCurves = unsafe extern "C" fn(*const RawMilModel, *mut u8, usize) -> usize;
type MilPredict = unsafe extern "C" fn(
    *const RawMilModel,
    *const RawMilData,
    *const usize,
    usize,
    *mut f32,
    usize,
    *mut f32,
    usize,
) -> i32;
type MilSave = unsafe extern "C" fn(*const RawMilModel, *const u8, usize) -> i32;
type MilFree = unsafe extern "C" fn(*mut RawMilModel);

/// The opened plugin: its path and entry points.
pub struct Plugin {
    path: PathBuf,
    last_error: LastError,
    info: Info,
    device_count: DeviceCount,
    set_threads: SetThreads,
    load: Load,
    submit: Submit,
    collect: Collect,
    release: Release,
    free: Free,
    mil_data: MilDataNew,
    mil_data_free: MilDataFree,
    mil_fit: MilFit,
    mil_curves: MilCurves,
    mil_predict: MilPredict,
    mil_save: MilSave,
    mil_free: MilFree,
}

/// The environment variable that makes a CPU model run through the device path (tensor-op
/// resize and normalisation, batches in flight) instead of the bit-exact table: for testing
/// that path on a machine without a GPU. Not for production runs.
pub const DEVICE_PATH_ENV: &str = "SPATIA_TORCH_CPU_DEVICE_PATH";

/// Whether [`DEVICE_PATH_ENV`] is set to 1.
pub fn device_path_on_cpu() -> bool {
    std::env::var_os(DEVICE_PATH_ENV).is_some_and(|v| v == "1")
}

/// Where the plugin is looked for, in order.
pub fn candidates() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os(PLUGIN_ENV).filter(|p| !p.is_empty()) {
        return vec![PathBuf::from(p)];
    }
    let mut v = Vec::new();
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.to_path_buf())) {
        v.push(dir.join(PLUGIN_FILE));
        if dir.file_name().is_some_and(|n| n == "deps") {
            if let Some(up) = dir.parent() {
                v.push(up.join(PLUGIN_FILE));
            }
        }
    }
    v
}

fn open() -> Result<Plugin, String> {
    let tried = candidates();
    let Some(path) = tried.iter().find(|p| p.is_file()).cloned() else {
        let list = tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        return Err(format!(
            "the libtorch plugin {PLUGIN_FILE} is missing (looked for {list}); `make build` builds it next to spatia, or set {PLUGIN_ENV} to its path"
        ));
    };
    // SAFETY: the plugin is our own crate; its initialisers only register libtorch's operators.
    let lib = unsafe { libloading::Library::new(&path) }.map_err(|e| {
        format!(
            "cannot open the libtorch plugin {}: {e} (it needs libtorch 2.11.0: run scripts/setup-torch.sh then `make build`, or put libtorch's lib/ directory on LD_LIBRARY_PATH)",
            path.display()
        )
    })?;
    let err = |e: libloading::Error| format!("{} is not a spatia libtorch plugin: {e}", path.display());
    // SAFETY: the symbols' types are those of the plugin's C ABI, version-checked just below.
    let plugin = unsafe {
        let abi: libloading::Symbol<unsafe extern "C" fn() -> u32> =
            lib.get(b"spatia_torch_abi_version\0").map_err(err)?;
        let v = abi();
        if v != ABI_VERSION {
            return Err(format!(
                "the libtorch plugin {} speaks C ABI version {v}, this spatia expects {ABI_VERSION}: rebuild both with `make build`",
                path.display()
            ));
        }
        Plugin {
            last_error: *lib.get(b"spatia_torch_last_error\0").map_err(err)?,
            info: *lib.get(b"spatia_torch_info\0").map_err(err)?,
            device_count: *lib.get(b"spatia_torch_cuda_device_count\0").map_err(err)?,
            set_threads: *lib.get(b"spatia_torch_set_threads\0").map_err(err)?,
            load: *lib.get(b"spatia_torch_load\0").map_err(err)?,
            submit: *lib.get(b"spatia_torch_submit\0").map_err(err)?,
            collect: *lib.get(b"spatia_torch_collect\0").map_err(err)?,
            release: *lib.get(b"spatia_torch_release\0").map_err(err)?,
            free: *lib.get(b"spatia_torch_free\0").map_err(err)?,
            mil_data: *lib.get(b"spatia_torch_mil_data\0").map_err(err)?,
            mil_data_free: *lib.get(b"spatia_torch_mil_data_free\0").map_err(err)?,
            mil_fit: *lib.get(b"spatia_torch_mil_fit\0").map_err(err)?,
            mil_curves: *lib.get(b"spatia_torch_mil_curves\0").map_err(err)?,
            mil_predict: *lib.get(b"spatia_torch_mil_predict\0").map_err(err)?,
            mil_save: *lib.get(b"spatia_torch_mil_save\0").map_err(err)?,
            mil_free: *lib.get(b"spatia_torch_mil_free\0").map_err(err)?,
            path,
        }
    };
    // libtorch is never unloaded: the function pointers above stay valid for the process.
    std::mem::forget(lib);
    Ok(plugin)
}

/// The plugin, opened on the first call (the outcome, success or error, is kept).
pub fn get() -> Result<&'static Plugin, String> {
    static PLUGIN: OnceLock<Result<Plugin, String>> = OnceLock::new();
    PLUGIN.get_or_init(open).as_ref().map_err(|e| e.clone())
}

/// A model handle; freed on drop (the plugin keeps the model cached).
pub struct ModelHandle {
    raw: *mut RawModel,
    plugin: &'static Plugin,
}

// SAFETY: the plugin serialises forward passes on one module and its handles are plain data.
unsafe impl Send for ModelHandle {}
unsafe impl Sync for ModelHandle {}

impl Drop for ModelHandle {
    fn drop(&mut self) {
        // SAFETY: `raw` came from the plugin's load and is freed once.
        unsafe { (self.plugin.free)(self.raw) }
    }
}

/// Device of a model: CPU or CUDA device k.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// CPU.
    Cpu,
    /// CUDA device index.
    Cuda(usize),
}

impl Plugin {
    /// The plugin file that was opened.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn last_error(&self) -> String {
        // SAFETY: a NUL-terminated string owned by the plugin, valid until our next call.
        unsafe {
            let p = (self.last_error)();
            if p.is_null() {
                "unknown error".into()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }

    /// Runtime facts as JSON: torch version, CUDA, devices, cuDNN (for `spatia doctor`).
    pub fn info(&self) -> Result<serde_json::Value, String> {
        // SAFETY: a null buffer with capacity 0 only asks for the length.
        let len = unsafe { (self.info)(std::ptr::null_mut(), 0) };
        if len == 0 {
            return Err(self.last_error());
        }
        let mut buf = vec![0u8; len + 256];
        let n = unsafe { (self.info)(buf.as_mut_ptr(), buf.len()) };
        buf.truncate(n.min(buf.len()));
        serde_json::from_slice(&buf).map_err(|e| format!("plugin info is not JSON: {e}"))
    }

    /// CUDA devices libtorch can use (0 when none).
    pub fn cuda_device_count(&self) -> usize {
        // SAFETY: no arguments.
        unsafe { (self.device_count)() }.max(0) as usize
    }

    /// Sets libtorch's CPU threads (process-wide) when `n > 0`; returns the current count.
    pub fn set_threads(&self, n: i32) -> usize {
        // SAFETY: plain integers.
        unsafe { (self.set_threads)(n) }.max(1) as usize
    }

    /// Loads (or takes from the process's cache) the model whose file `bytes` have the blake3
    /// digest `key`, for `device` and `precision` (0 fp32, 1 fp16 / 2 bf16 autocast), with input
    /// side `size` and normalisation `norm` = [scale, mean R G B, std R G B]; on CUDA warms it
    /// up at batch size `warm_batch` (0: none). `name` is for messages. Without `bytes`, only a
    /// cached model is returned (`Ok(None)` when there is none).
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        &'static self,
        name: &str,
        key: [u8; 32],
        bytes: Option<&[u8]>,
        device: Device,
        precision: i32,
        size: u32,
        norm: [f32; 7],
        warm_batch: u32,
    ) -> Result<Option<Loaded>, String> {
        let args = LoadArgs {
            key,
            bytes: bytes.map_or(std::ptr::null(), |b| b.as_ptr()),
            bytes_len: bytes.map_or(0, |b| b.len()),
            name: name.as_ptr(),
            name_len: name.len(),
            device: match device {
                Device::Cpu => -1,
                Device::Cuda(k) => k.min(i32::MAX as usize) as i32,
            },
            precision,
            size,
            warm_batch,
            norm,
            flags: u32::from(device_path_on_cpu()),
        };
        let mut out = LoadResult { model: std::ptr::null_mut(), dim: 0, fresh: 0, need_bytes: 0 };
        // SAFETY: pointers to live locals, `name` and `bytes`.
        let rc = unsafe { (self.load)(&args, &mut out) };
        if rc == 0 && out.need_bytes != 0 {
            return Ok(None);
        }
        if rc != 0 || out.model.is_null() {
            return Err(self.last_error());
        }
        Ok(Some(Loaded { model: ModelHandle { raw: out.model, plugin: self }, dim: out.dim, fresh: out.fresh != 0 }))
    }
}

/// A loaded model: its handle, output dimension, and whether this load read the file (false:
/// the process had it cached).
pub struct Loaded {
    pub model: ModelHandle,
    pub dim: usize,
    pub fresh: bool,
}

/// A batch submitted to the plugin and not yet collected; dropping it waits for the batch and
/// frees it unread. It borrows its model handle: the plugin's ticket refers to it.
pub struct Ticket<'a> {
    raw: *mut RawTicket,
    plugin: &'static Plugin,
    n: usize,
    dim: usize,
    _model: std::marker::PhantomData<&'a ModelHandle>,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            // SAFETY: `raw` came from submit and is released once.
            unsafe { (self.plugin.release)(self.raw) }
        }
    }
}

impl Ticket<'_> {
    /// Waits for the batch: `n·dim` floats, row by row.
    pub fn collect(mut self) -> Result<Vec<f32>, String> {
        let mut out = vec![0.0f32; self.n * self.dim];
        let raw = std::mem::replace(&mut self.raw, std::ptr::null_mut());
        // SAFETY: `raw` came from submit and is consumed here; `out` has the size the plugin checks.
        let rc = unsafe { (self.plugin.collect)(raw, out.as_mut_ptr(), out.len()) };
        if rc != 0 {
            return Err(self.plugin.last_error());
        }
        Ok(out)
    }
}

impl ModelHandle {
    /// Submits `tiles` (each `h`×`w` uint8 RGB, HWC) with `dim` outputs per tile. On CPU the
    /// batch is computed before this returns; on CUDA it is queued on the device.
    pub fn submit(&self, tiles: &[&[u8]], h: usize, w: usize, dim: usize) -> Result<Ticket<'_>, String> {
        if let Some((i, t)) = tiles.iter().enumerate().find(|(_, t)| t.len() != h * w * 3) {
            return Err(format!("tile {i} of the batch has {} bytes, expected {h}×{w}×3", t.len()));
        }
        let ptrs: Vec<*const u8> = tiles.iter().map(|t| t.as_ptr()).collect();
        let mut raw = std::ptr::null_mut();
        // SAFETY: `ptrs` holds one pointer per tile, each valid for h·w·3 bytes (checked above).
        let rc = unsafe { (self.plugin.submit)(self.raw, ptrs.as_ptr(), ptrs.len(), h, w, &mut raw) };
        if rc != 0 || raw.is_null() {
            return Err(self.plugin.last_error());
        }
        Ok(Ticket { raw, plugin: self.plugin, n: tiles.len(), dim, _model: std::marker::PhantomData })
    }
}

/// The patients of one attention-MIL fit, in the plugin (see crates/spatia-torch/src/mil.rs).
pub struct MilData {
    raw: *mut RawMilData,
    plugin: &'static Plugin,
    /// Per stain, each patient's tile count.
    counts: Vec<Vec<usize>>,
}

impl Drop for MilData {
    fn drop(&mut self) {
        // SAFETY: `raw` came from the plugin and is freed once.
        unsafe { (self.plugin.mil_data_free)(self.raw) }
    }
}

/// One stain's bags for [`Plugin::mil_data`]: tile features (row-major, `dim` wide) and each
/// patient's tile offsets (`n + 1`, from 0).
pub struct MilStain<'a> {
    pub dim: usize,
    pub feats: &'a [f32],
    pub offsets: &'a [i64],
}

/// A fitted network in the plugin; freed on drop.
pub struct MilNet {
    raw: *mut RawMilModel,
    plugin: &'static Plugin,
}

impl Drop for MilNet {
    fn drop(&mut self) {
        // SAFETY: `raw` came from the plugin's fit and is freed once.
        unsafe { (self.plugin.mil_free)(self.raw) }
    }
}

impl Plugin {
    /// Hands the plugin the data of a fit: `n` patients' times and events, stains, and an
    /// optional `n × c` clinical matrix (row-major).
    pub fn mil_data(
        &'static self,
        time: &[f64],
        event: &[bool],
        stains: &[MilStain],
        clinical: Option<(&[f32], usize)>,
    ) -> Result<MilData, String> {
        let n = time.len();
        if event.len() != n {
            return Err(format!("{} events for {n} patients", event.len()));
        }
        for (k, s) in stains.iter().enumerate() {
            let tiles = s.offsets.last().copied().unwrap_or(-1);
            if s.offsets.len() != n + 1 || tiles < 0 || s.feats.len() != tiles as usize * s.dim {
                return Err(format!("stain {k}: offsets and features do not match {n} patients of width {}", s.dim));
            }
        }
        let ev: Vec<u8> = event.iter().map(|&e| e as u8).collect();
        let dims: Vec<usize> = stains.iter().map(|s| s.dim).collect();
        let offs: Vec<*const i64> = stains.iter().map(|s| s.offsets.as_ptr()).collect();
        let feats: Vec<*const f32> = stains.iter().map(|s| s.feats.as_ptr()).collect();
        let (clin_dim, clin) = match clinical {
            Some((x, c)) if x.len() == n * c => (c, x.as_ptr()),
            Some((x, c)) => return Err(format!("{} clinical values for {n} patients × {c}", x.len())),
            None => (0, std::ptr::null()),
        };
        let args = MilDataArgs {
            n,
            time: time.as_ptr(),
            event: ev.as_ptr(),
            n_mod: stains.len(),
            dims: dims.as_ptr(),
            offsets: offs.as_ptr(),
            feats: feats.as_ptr(),
            clin_dim,
            clinical: clin,
        };
        let mut raw = std::ptr::null_mut();
        // SAFETY: every pointer of `args` is valid for the length checked above.
        let rc = unsafe { (self.mil_data)(&args, &mut raw) };
        if rc != 0 || raw.is_null() {
            return Err(self.last_error());
        }
        let counts = stains.iter().map(|s| s.offsets.windows(2).map(|w| (w[1] - w[0]) as usize).collect()).collect();
        Ok(MilData { raw, plugin: self, counts })
    }

    /// Fits a network on the `train` patients of `data` (configuration as JSON), scoring the
    /// `val` patients after each epoch.
    pub fn mil_fit(&'static self, data: &MilData, cfg: &str, train: &[usize], val: &[usize]) -> Result<MilNet, String> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: live data; slices valid for their lengths.
        let rc = unsafe {
            (self.mil_fit)(
                data.raw,
                cfg.as_ptr(),
                cfg.len(),
                train.as_ptr(),
                train.len(),
                val.as_ptr(),
                val.len(),
                &mut raw,
            )
        };
        if rc != 0 || raw.is_null() {
            return Err(self.last_error());
        }
        Ok(MilNet { raw, plugin: self })
    }
}

impl MilNet {
    /// The fit's curves: `train_loss`, `val_score`, `step_loss` (per step), `out_dim`.
    pub fn curves(&self) -> Result<serde_json::Value, String> {
        // SAFETY: a null buffer with capacity 0 only asks for the length.
        let len = unsafe { (self.plugin.mil_curves)(self.raw, std::ptr::null_mut(), 0) };
        if len == 0 {
            return Err(self.plugin.last_error());
        }
        let mut buf = vec![0u8; len];
        // SAFETY: `buf` holds `len` bytes.
        let n = unsafe { (self.plugin.mil_curves)(self.raw, buf.as_mut_ptr(), buf.len()) };
        buf.truncate(n.min(len));
        serde_json::from_slice(&buf).map_err(|e| format!("plugin curves are not JSON: {e}"))
    }

    /// Outputs (`idx.len() × out_dim`) and the attention of every tile of those patients (by
    /// patient, then stain, then tile).
    pub fn predict(&self, data: &MilData, idx: &[usize], out_dim: usize) -> Result<(Vec<f32>, Vec<f32>), String> {
        if let Some(&p) = idx.iter().find(|&&p| data.counts.first().is_some_and(|c| p >= c.len())) {
            return Err(format!("patient index {p} out of range"));
        }
        let tiles: usize = idx.iter().map(|&p| data.counts.iter().map(|c| c[p]).sum::<usize>()).sum();
        let mut out = vec![0f32; idx.len() * out_dim];
        let mut att = vec![0f32; tiles];
        // SAFETY: live model and data; buffers of the sizes passed.
        let rc = unsafe {
            (self.plugin.mil_predict)(
                self.raw,
                data.raw,
                idx.as_ptr(),
                idx.len(),
                out.as_mut_ptr(),
                out.len(),
                att.as_mut_ptr(),
                att.len(),
            )
        };
        if rc != 0 {
            return Err(self.plugin.last_error());
        }
        Ok((out, att))
    }

    /// Saves the weights (safetensors) to `path`.
    pub fn save(&self, path: &std::path::Path) -> Result<(), String> {
        let p = path.to_str().ok_or_else(|| format!("{} is not UTF-8", path.display()))?;
        // SAFETY: live model; `p` valid for its length.
        let rc = unsafe { (self.plugin.mil_save)(self.raw, p.as_ptr(), p.len()) };
        if rc != 0 {
            return Err(self.plugin.last_error());
        }
        Ok(())
    }
}
