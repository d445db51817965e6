//! TorchScript encoder (cargo feature `torch`): a tiny conv net is traced by the venv's PyTorch
//! (benches/torch_models.py), loaded through the libtorch plugin (crates/spatia-torch, built by
//! `make build` into target/release/), run through the pipeline on real tiles, and compared with
//! PyTorch's own output on the same input tensor. Also: the plugin loads libtorch without
//! LD_LIBRARY_PATH (its rpath), `spatia` itself does not link libtorch, a missing plugin is
//! explained, and the plugin reports its runtime (torch version, CUDA, cuDNN).
#![cfg(feature = "torch")]
use spatia::features::pipeline::{grid, run_collect, PipelineConfig};
use spatia::features::torchscript::{DeviceChoice, ModelPrecision, TorchScript, TorchScriptConfig};
use spatia::features::transform::InputTransform;
use spatia::features::{Encoder, RgbImage};
use std::path::{Path, PathBuf};
use std::process::Command;

const HE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/images/tiatoolbox_target_image.png");
const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_models.py");

fn python() -> String {
    std::env::var("SPATIA_TORCH_PYTHON").unwrap_or_else(|_| {
        format!("{}/.cache/spatia/torch-2.11.0/bin/python", std::env::var("HOME").unwrap_or_default())
    })
}

fn py(args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(MODELS)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (run scripts/setup-torch.sh): {e}", python()));
    assert!(out.status.success(), "python {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tiny_model(dir: &Path, size: u32) -> PathBuf {
    let p = dir.join("tiny.pt");
    py(&["trace", "tiny", &size.to_string(), p.to_str().unwrap()]);
    p
}

fn tiles(size: u32, n: usize) -> Vec<RgbImage> {
    let img = image::open(HE).unwrap().to_rgb8();
    grid(img.width(), img.height(), size)
        .into_iter()
        .take(n)
        .map(|[x, y]| image::imageops::crop_imm(&img, x as u32, y as u32, size, size).to_image())
        .collect()
}

fn cfg(path: PathBuf, transform: InputTransform) -> TorchScriptConfig {
    TorchScriptConfig {
        path,
        transform,
        device: DeviceChoice::Cpu,
        precision: ModelPrecision::Fp32,
        threads: Some(1),
        warm_batch: 0,
    }
}

#[test]
fn traced_model_agrees_with_pytorch_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 32);
    let enc = TorchScript::load(&cfg(model.clone(), InputTransform::imagenet(32))).unwrap();
    assert_eq!(enc.dim(), 10);
    assert_eq!(enc.name(), "torchscript:tiny.pt");
    assert_eq!(enc.threads(), 1);
    // 64-px tiles resized to the model's 32 px by the transform, on 2 worker threads.
    let ts = tiles(64, 11);
    let pcfg = PipelineConfig { workers: 2, batch_size: 4, queue_batches: 2, worker_nice: 0 };
    let (rows, stats) = run_collect(0..ts.len(), |i| Ok(ts[i].clone()), &enc, &pcfg).unwrap();
    assert_eq!((rows.len(), rows[0].len()), (11, 10));
    assert_eq!(stats.batches, 3);
    let (again, _) = run_collect(0..ts.len(), |i| Ok(ts[i].clone()), &enc, &pcfg).unwrap();
    assert_eq!(rows, again, "same input, same output");
    assert_eq!(enc.encode_batch(&ts).unwrap(), rows, "one batch or three: same rows");

    // PyTorch on the very same prepared tensor.
    let input: Vec<u8> =
        ts.iter().flat_map(|t| enc.transform().apply(t).unwrap()).flat_map(|v| v.to_le_bytes()).collect();
    let (inp, out) = (dir.path().join("in.f32"), dir.path().join("out.f32"));
    std::fs::write(&inp, input).unwrap();
    let d = py(&["run", model.to_str().unwrap(), inp.to_str().unwrap(), "11", "32", out.to_str().unwrap()]);
    assert_eq!(d.trim(), "10");
    let theirs: Vec<f32> =
        std::fs::read(&out).unwrap().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let ours: Vec<f32> = rows.concat();
    assert_eq!(theirs.len(), ours.len());
    let max = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(max <= 1e-5, "max |spatia − pytorch| = {max}");
    // Outputs differ between tiles (the model is not degenerate).
    assert!(rows.iter().any(|r| r != &rows[0]));
}

#[test]
fn digest_covers_weights_and_transform() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 16);
    let a = TorchScript::load(&cfg(model.clone(), InputTransform::imagenet(16))).unwrap();
    let b = TorchScript::load(&cfg(model.clone(), InputTransform::unit(16))).unwrap();
    let a2 = TorchScript::load(&cfg(model.clone(), InputTransform::imagenet(16))).unwrap();
    assert_eq!(a.digest(), a2.digest());
    assert_ne!(a.digest(), b.digest());
    let expected_prefix = blake3::hash(&std::fs::read(&model).unwrap());
    assert_ne!(a.digest(), expected_prefix.to_hex().to_string(), "the transform is part of the digest");
    // A different model file (other seed-equal weights, other size) gives another digest.
    let other = dir.path().join("other.pt");
    py(&["trace", "tiny", "24", other.to_str().unwrap()]);
    let c = TorchScript::load(&cfg(other, InputTransform::imagenet(16))).unwrap();
    assert_ne!(a.digest(), c.digest());
}

#[test]
fn bad_configurations_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pt");
    let e = TorchScript::load(&cfg(missing, InputTransform::unit(16))).unwrap_err().to_string();
    assert!(e.starts_with("encoder torchscript:nope.pt: cannot read model file"), "{e}");
    let model = tiny_model(dir.path(), 16);
    let mut c = cfg(model.clone(), InputTransform::unit(16));
    c.precision = ModelPrecision::Fp16;
    let e = TorchScript::load(&c).unwrap_err().to_string();
    assert!(e.contains("precision Fp16 needs a CUDA device, but the model runs on CPU"), "{e}");
    let garbage = dir.path().join("garbage.pt");
    std::fs::write(&garbage, b"not a model").unwrap();
    let e = TorchScript::load(&cfg(garbage, InputTransform::unit(16))).unwrap_err().to_string();
    assert!(e.contains("cannot load TorchScript"), "{e}");
    if !spatia::features::torchscript::cuda_available() {
        let mut c = cfg(model, InputTransform::unit(16));
        c.device = DeviceChoice::Cuda;
        let e = TorchScript::load(&c).unwrap_err().to_string();
        assert!(e.contains("cuda requested but libtorch sees no CUDA device"), "{e}");
    }
}

/// Loads libtorch in-process through the plugin: run by `runs_without_ld_library_path` in a
/// child process.
#[test]
fn libtorch_is_loadable() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 8);
    let enc = TorchScript::load(&cfg(model, InputTransform::unit(8))).unwrap();
    assert_eq!(enc.dim(), 10);
}

#[test]
fn runs_without_ld_library_path() {
    // cargo test puts libtorch on LD_LIBRARY_PATH; the binary itself must not need it.
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(&exe)
        .args(["--exact", "libtorch_is_loadable", "--test-threads", "1"])
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} failed without LD_LIBRARY_PATH: {}{}",
        exe.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

/// With SPATIA_TORCH_PLUGIN naming a missing file (set by `missing_plugin_is_explained` for a
/// child process), loading a model fails with a message naming the file and the fix.
#[test]
fn plugin_error_when_asked() {
    let Ok(p) = std::env::var("SPATIA_TORCH_PLUGIN") else { return };
    if !p.contains("no-such-dir") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.pt");
    std::fs::write(&model, b"whatever").unwrap();
    let e = TorchScript::load(&cfg(model, InputTransform::unit(8))).unwrap_err().to_string();
    assert!(e.contains("the libtorch plugin libspatia_torch.so is missing"), "{e}");
    assert!(e.contains(&p) && e.contains("make build") && e.contains("SPATIA_TORCH_PLUGIN"), "{e}");
    assert!(!spatia::features::torchscript::cuda_available());
}

#[test]
fn missing_plugin_is_explained() {
    run_alone("plugin_error_when_asked", &[("SPATIA_TORCH_PLUGIN", "/no-such-dir/libspatia_torch.so")]);
}

/// Runs the test `name` of this binary alone in a child process with `env` set, and checks that it
/// ran and passed (the `…_when_asked` tests return at once unless their variable is set).
fn run_alone(name: &str, env: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(&exe);
    cmd.args(["--exact", name, "--test-threads", "1", "--nocapture"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
}

fn needed(path: &Path) -> String {
    let out = Command::new("readelf").arg("-d").arg(path).output().expect("readelf (binutils)");
    assert!(out.status.success(), "readelf -d {}", path.display());
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("(NEEDED)")).collect::<Vec<_>>().join("\n")
}

#[test]
fn spatia_does_not_link_libtorch_but_the_plugin_does() {
    let bin = needed(Path::new(env!("CARGO_BIN_EXE_spatia")));
    assert!(!bin.contains("libtorch") && !bin.contains("libc10"), "spatia NEEDS libtorch:\n{bin}");
    let plugin = spatia::features::torch_plugin::get().expect("plugin (make build)");
    let lib = needed(plugin.path());
    assert!(lib.contains("libtorch_cpu.so") && lib.contains("libc10.so"), "{lib}");
    // CUDA's libraries are linked (not dropped by --as-needed) exactly when the libtorch has them
    // (unless the plugin was built with SPATIA_TORCH_LINK_CUDA=0).
    let info = plugin.info().unwrap();
    let linked = info["built_with_cuda_libs"].as_bool().unwrap();
    assert_eq!(lib.contains("libtorch_cuda.so"), linked, "{lib}");
    assert_eq!(lib.contains("libc10_cuda.so"), linked, "{lib}");
    if std::env::var("SPATIA_TORCH_LINK_CUDA").map_or(true, |v| v != "0") {
        let dir = PathBuf::from(info["libtorch_dir"].as_str().expect("libtorch_dir"));
        assert_eq!(linked, dir.join("libtorch_cuda.so").exists(), "{lib}");
    }
}

#[test]
fn plugin_reports_its_runtime() {
    let plugin = spatia::features::torch_plugin::get().expect("plugin (make build)");
    let info = plugin.info().unwrap();
    assert_eq!(info["abi"], spatia::features::torch_plugin::ABI_VERSION);
    // bf16 autocast is chosen through libtorch's exported C++ symbol: it must resolve here
    assert!(info["autocast_dtype_error"].is_null(), "{info}");
    // events come from the CUDA runtime libtorch_cuda loaded (when it is loaded)
    assert_eq!(info["cudart"].is_string(), info["cuda_libs_loaded"].as_bool().unwrap(), "{info}");
    assert!(info["torch_version"].as_str().unwrap().starts_with("2.11.0"), "{info}");
    assert!(info["torch_version_built"].as_str().unwrap().starts_with("2.11.0"), "{info}");
    let n = info["cuda_device_count"].as_i64().unwrap();
    assert_eq!(info["cuda_available"].as_bool().unwrap(), n > 0, "{info}");
    assert_eq!(info["devices"].as_array().unwrap().len() as i64, if info["devices_error"].is_null() { n } else { 0 });
    assert!(info["cudnn_version"].is_i64() && info["cpu_threads"].as_i64().unwrap() >= 1, "{info}");
    assert_eq!(spatia::features::torchscript::cuda_available(), n > 0);
}

/// In a child process (set by `models_are_cached_per_process`): loads of one model file share
/// the plugin's cached module, whatever the transform; another file is another entry.
#[test]
fn model_cache_when_asked() {
    if std::env::var_os("SPATIA_TEST_MODEL_CACHE").is_none() {
        return;
    }
    let cached = || spatia::features::torch_plugin::get().unwrap().info().unwrap()["cached_models"].as_u64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 16);
    assert_eq!(cached(), 0);
    let a = TorchScript::load(&cfg(model.clone(), InputTransform::imagenet(16))).unwrap();
    assert_eq!(cached(), 1);
    // a copy of the file under another name is the same model (keyed by content)
    let copy = dir.path().join("copy.pt");
    std::fs::copy(&model, &copy).unwrap();
    let b = TorchScript::load(&cfg(copy, InputTransform::unit(16))).unwrap();
    assert_eq!(cached(), 1);
    let ts = tiles(16, 3);
    assert_eq!(a.encode_batch(&ts).unwrap().len(), 3);
    assert_eq!(b.encode_batch(&ts).unwrap().len(), 3);
    let other = dir.path().join("other.pt");
    py(&["trace", "tiny", "24", other.to_str().unwrap()]);
    let _c = TorchScript::load(&cfg(other, InputTransform::imagenet(16))).unwrap();
    assert_eq!(cached(), 2);
}

#[test]
fn models_are_cached_per_process() {
    run_alone("model_cache_when_asked", &[("SPATIA_TEST_MODEL_CACHE", "1")]);
}

/// The plugin's CPU normalisation of uint8 tiles is bit for bit `InputTransform::apply` (what the
/// in-process encoder fed the model before the plugin): a traced `Flatten` returns its input.
#[test]
fn cpu_normalisation_is_bit_identical_to_the_transform() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("flatten.pt");
    let out = Command::new(python())
        .args([
            "-c",
            "import sys, torch; torch.jit.trace(torch.nn.Flatten(), torch.rand(1, 3, 8, 8)).save(sys.argv[1])",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t = InputTransform { size: 8, scale: 1.0 / 255.0, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
    let enc = TorchScript::load(&cfg(model, t.clone())).unwrap();
    assert_eq!(enc.dim(), 192);
    // 13×11 tiles exercise the resize; 8×8 ones are taken as they are.
    let mut ts =
        tiles(13, 3).into_iter().map(|t| image::imageops::crop_imm(&t, 0, 0, 13, 11).to_image()).collect::<Vec<_>>();
    ts.extend(tiles(8, 2));
    let rows = enc.encode_batch(&ts).unwrap();
    for (tile, row) in ts.iter().zip(&rows) {
        let want: Vec<u32> = t.apply(tile).unwrap().iter().map(|v| v.to_bits()).collect();
        let got: Vec<u32> = row.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want);
    }
}

#[test]
fn doctor_reports_the_runtime_and_what_is_missing() {
    let bin = env!("CARGO_BIN_EXE_spatia");
    let out = Command::new(bin).arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("plugin    ok") && text.contains("torch     ok       libtorch 2.11.0"), "{text}");
    let out = Command::new(bin).args(["doctor", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor --json prints one JSON object");
    assert_eq!(v["torch_usable"], true, "{v}");
    let cuda = v["cuda_available"].as_bool().unwrap();
    assert_eq!(v["cuda_usable"].as_bool(), Some(cuda), "{v}");
    assert!(v["findings"].as_array().unwrap().iter().any(|f| f["check"] == "cuda"), "{v}");
    // --cuda fails exactly when CUDA is not usable, saying why
    let out = Command::new(bin).args(["doctor", "--cuda"]).output().unwrap();
    assert_eq!(out.status.success(), cuda);
    if !cuda {
        let t = String::from_utf8_lossy(&out.stdout);
        assert!(t.contains("cuda      no") && (t.contains("driver") || t.contains("CPU-only")), "{t}");
    }
    // without the plugin: what is missing, where it was looked for, and the fix
    let out =
        Command::new(bin).arg("doctor").env("SPATIA_TORCH_PLUGIN", "/no-such-dir/libspatia_torch.so").output().unwrap();
    let t = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("plugin    MISSING") && t.contains("/no-such-dir/libspatia_torch.so") && t.contains("make build"),
        "{t}"
    );
}

/// A model file the process has loaded is not read again while its stat is unchanged; new
/// weights under the same path are (new digest, new features).
#[test]
fn a_rewritten_model_file_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 16);
    let ts = tiles(16, 2);
    let a = TorchScript::load(&cfg(model.clone(), InputTransform::imagenet(16))).unwrap();
    let again = TorchScript::load(&cfg(model.clone(), InputTransform::imagenet(16))).unwrap();
    assert!(!again.loaded_fresh());
    assert_eq!(a.digest(), again.digest());
    assert_eq!(a.encode_batch(&ts).unwrap(), again.encode_batch(&ts).unwrap());
    let out = Command::new(python())
        .env("SPATIA_MODEL_SEED", "5")
        .args([MODELS, "trace", "tiny", "16", model.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let b = TorchScript::load(&cfg(model, InputTransform::imagenet(16))).unwrap();
    assert!(b.loaded_fresh());
    assert_ne!(a.digest(), b.digest());
    assert_ne!(a.encode_batch(&ts).unwrap(), b.encode_batch(&ts).unwrap());
}

fn flatten_model(dir: &Path) -> PathBuf {
    let model = dir.join("flatten.pt");
    let out = Command::new(python())
        .args([
            "-c",
            "import sys, torch; torch.jit.trace(torch.nn.Flatten(), torch.rand(1, 3, 8, 8)).save(sys.argv[1])",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    model
}

/// In a child process with `SPATIA_TORCH_CPU_DEVICE_PATH=1` (set by `device_path_on_cpu`): the
/// GPU path's tensor code — uint8 upload, resize on the device, normalisation, tickets with two
/// batches in flight — run on CPU through a traced `Flatten` (which returns its input), against
/// `InputTransform::apply`.
#[test]
fn device_path_when_asked() {
    if std::env::var_os("SPATIA_TEST_DEVICE_PATH").is_none() {
        return;
    }
    assert!(spatia::features::torch_plugin::device_path_on_cpu());
    let dir = tempfile::tempdir().unwrap();
    let t = InputTransform { size: 8, scale: 1.0 / 255.0, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
    let enc = TorchScript::load(&cfg(flatten_model(dir.path()), t.clone())).unwrap();
    assert_eq!(enc.in_flight(), 2);
    let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    // tiles at the model's side, through the pipeline (tickets in flight): the table's values
    // up to float rounding of the fused scale/shift
    let same = tiles(8, 11);
    let pc = PipelineConfig { workers: 2, batch_size: 3, queue_batches: 2, worker_nice: 0 };
    let (rows, stats) = run_collect(same.clone(), Ok, &enc, &pc).unwrap();
    assert_eq!((stats.tiles, stats.batches), (11, 4));
    for (tile, row) in same.iter().zip(&rows) {
        let want = t.apply(tile).unwrap();
        assert!(max_diff(&want, row) < 1e-5, "{}", max_diff(&want, row));
    }
    // larger square tiles are resized on the device (bilinear, antialiased) instead of on the
    // worker threads (triangle filter, rounded to 8 bits): the same image up to that rounding
    for tile in tiles(16, 3) {
        let got = enc.encode_batch(std::slice::from_ref(&tile)).unwrap().remove(0);
        let want = t.apply(&tile).unwrap();
        let mean = want.iter().zip(&got).map(|(x, y)| (x - y).abs()).sum::<f32>() / want.len() as f32;
        assert!(max_diff(&want, &got) < 0.05 && mean < 0.01, "max {} mean {mean}", max_diff(&want, &got));
    }
}

#[test]
fn device_path_on_cpu() {
    run_alone(
        "device_path_when_asked",
        &[("SPATIA_TEST_DEVICE_PATH", "1"), (spatia::features::torch_plugin::DEVICE_PATH_ENV, "1")],
    );
}
