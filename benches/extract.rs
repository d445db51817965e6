//! Feature-extraction throughput.
//!
//! `cargo bench --bench extract` — handcrafted encoder, tiles/s on CPU through the pipeline
//! (JPEG decode on worker threads + features) and encode-only with rayon, on tiles of
//! tiatoolbox's H&E image and of a generated 4096×4096 H&E-like image.
//!
//! `cargo bench --features torch --bench extract` (env of scripts/setup-torch.sh) — adds
//! TorchScript on CPU: a ResNet-18 (benches/torch_models.py, plain torch.nn) traced by PyTorch;
//! Spatia's end-to-end tiles/s (JPEG decode + transform + model, through the pipeline) divided
//! by PyTorch eager's model-only tiles/s on pre-decoded tensors, same batch and threads,
//! measured alternately in this one run. Arguments after `--`: `handcrafted`, `torch` (default
//! both); env BENCH_THREADS (default 2), BENCH_BATCH (16), BENCH_BATCHES (8), BENCH_ROUNDS (3).
use spatia::features::handcrafted::Handcrafted;
use spatia::features::pipeline::{grid, run, PipelineConfig};
use spatia::features::{Encoder, RgbImage};
use std::time::Instant;

const HE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/images/tiatoolbox_target_image.png");

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn jpeg(tile: &RgbImage) -> Vec<u8> {
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 90).encode_image(tile).expect("jpeg encode");
    buf
}

fn decode(bytes: &[u8]) -> Result<RgbImage, String> {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg).map(|i| i.to_rgb8()).map_err(|e| e.to_string())
}

/// JPEG-compressed tiles of `size` px cut from an image (as a slide stores them).
fn jpeg_tiles(img: &RgbImage, size: u32) -> Vec<Vec<u8>> {
    grid(img.width(), img.height(), size)
        .into_iter()
        .map(|[x, y]| jpeg(&image::imageops::crop_imm(img, x as u32, y as u32, size, size).to_image()))
        .collect()
}

/// A deterministic H&E-like image: pink stroma with noise, purple nuclei, white gaps.
fn generated(side: u32) -> RgbImage {
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut img = RgbImage::from_fn(side, side, |_, _| {
        let n = (rnd() % 24) as u8;
        image::Rgb([220 + n / 3, 160 + n, 200 + n / 2])
    });
    let nuclei = (side as u64 * side as u64) / 700;
    for _ in 0..nuclei {
        let (cx, cy) = ((rnd() % side as u64) as i64, (rnd() % side as u64) as i64);
        let r = 3 + (rnd() % 5) as i64;
        let shade = (rnd() % 40) as u8;
        for y in (cy - r).max(0)..(cy + r + 1).min(side as i64) {
            for x in (cx - r).max(0)..(cx + r + 1).min(side as i64) {
                if (x - cx).pow(2) + (y - cy).pow(2) <= r * r {
                    img.put_pixel(x as u32, y as u32, image::Rgb([70 + shade, 40 + shade, 130 + shade]));
                }
            }
        }
    }
    for _ in 0..(side / 256) {
        let (cx, cy, r) = ((rnd() % side as u64) as i64, (rnd() % side as u64) as i64, 20 + (rnd() % 60) as i64);
        for y in (cy - r).max(0)..(cy + r + 1).min(side as i64) {
            for x in (cx - r).max(0)..(cx + r + 1).min(side as i64) {
                if (x - cx).pow(2) + (y - cy).pow(2) <= r * r {
                    img.put_pixel(x as u32, y as u32, image::Rgb([245, 243, 246]));
                }
            }
        }
    }
    img
}

fn handcrafted(threads: usize) {
    println!("== handcrafted encoder, CPU, {threads} threads ==");
    let enc = Handcrafted::new();
    let he = image::open(HE).expect("H&E image").to_rgb8();
    let sources = [
        ("tiatoolbox H&E 1000², 256-px tiles ×100 passes", jpeg_tiles(&he, 256), 100usize),
        ("generated 4096² H&E-like, 256-px tiles", jpeg_tiles(&generated(4096), 256), 1usize),
    ];
    for (label, tiles, passes) in &sources {
        let n = tiles.len() * passes;
        let cfg = PipelineConfig { workers: threads, batch_size: 64, queue_batches: 4 };
        let mut checksum = 0f64;
        let stats = run(0..n, |i| decode(&tiles[i % tiles.len()]), &enc, &cfg, |_, rows| {
            checksum += rows.iter().map(|r| r[0] as f64).sum::<f64>();
            Ok(())
        })
        .expect("pipeline");
        println!(
            "{label}: {n} tiles, pipeline (JPEG decode + features, {threads} workers): {:.1} tiles/s (checksum {checksum:.3})",
            stats.tiles_per_s()
        );
        let decoded: Vec<RgbImage> = tiles.iter().map(|t| decode(t).expect("decode")).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        let t = Instant::now();
        let mut count = 0;
        for _ in 0..*passes {
            count += pool.install(|| enc.encode_batch(&decoded)).expect("encode").len();
        }
        println!("{label}: encode only (pre-decoded, rayon {threads} threads): {:.1} tiles/s", count as f64 / t.elapsed().as_secs_f64());
    }
}

#[cfg(feature = "torch")]
fn torch(threads: usize) {
    use spatia::features::torchscript::{DeviceChoice, ModelPrecision, TorchScript, TorchScriptConfig};
    use spatia::features::transform::InputTransform;
    use std::process::Command;

    let batch = env_usize("BENCH_BATCH", 16);
    let batches = env_usize("BENCH_BATCHES", 8);
    let python = std::env::var("SPATIA_TORCH_PYTHON")
        .unwrap_or_else(|_| format!("{}/.cache/spatia/torch-2.11.0/bin/python", std::env::var("HOME").unwrap_or_default()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_models.py");
    let dir = std::env::temp_dir().join(format!("spatia-bench-extract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let model = dir.join("resnet18.pt");
    let st = Command::new(&python).args([script, "trace", "resnet18", "224", model.to_str().unwrap()]).status();
    assert!(st.map(|s| s.success()).unwrap_or(false), "tracing ResNet-18 with {python} failed");
    println!("== TorchScript ResNet-18 (traced from PyTorch), CPU, {threads} threads, batch {batch}, {batches} batches ==");

    let pytorch = || -> f64 {
        let out = Command::new(&python)
            .args([script, "bench", "resnet18", "224", &batch.to_string(), &threads.to_string(), &batches.to_string()])
            .output()
            .expect("python bench");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v["tiles_per_s"].as_f64().expect("tiles_per_s")
    };
    let cfg = TorchScriptConfig {
        path: model.clone(),
        transform: InputTransform::imagenet(224),
        device: DeviceChoice::Cpu,
        precision: ModelPrecision::Fp32,
        threads: Some(threads),
    };
    let enc = TorchScript::load(&cfg).expect("load");
    let he = image::open(HE).expect("H&E image").to_rgb8();
    let tiles224 = jpeg_tiles(&he, 224);
    let tiles256 = jpeg_tiles(&he, 256);
    // Warm-up: TorchScript's profiling executor optimises the graph during the first runs.
    let warm: Vec<RgbImage> = (0..batch).map(|i| decode(&tiles224[i % tiles224.len()]).expect("decode")).collect();
    for _ in 0..3 {
        enc.encode_batch(&warm).expect("warm-up");
    }
    let spatia = |tiles: &Vec<Vec<u8>>| -> (f64, f64) {
        let pcfg = PipelineConfig { workers: 1, batch_size: batch, queue_batches: 2 };
        let n = batch * batches;
        let stats = run(0..n, |i| decode(&tiles[i % tiles.len()]), &enc, &pcfg, |_, _| Ok(())).expect("pipeline");
        (stats.tiles_per_s(), stats.starved.as_secs_f64() / stats.wall.as_secs_f64())
    };
    // The machine is shared: alternate the two sides and pair each Spatia run with the mean of
    // the PyTorch runs just before and after it; report every round and the median ratio.
    let rounds = env_usize("BENCH_ROUNDS", 3);
    let mut py_prev = pytorch();
    let (mut r224, mut r256) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (a, starved) = spatia(&tiles224);
        let (b, _) = spatia(&tiles256);
        let py_next = pytorch();
        let py = 0.5 * (py_prev + py_next);
        r224.push(a / py);
        r256.push(b / py);
        println!(
            "round {round}: PyTorch eager model-only {py_prev:.2}/{py_next:.2} tiles/s | Spatia end-to-end, 224-px JPEG tiles {a:.2} tiles/s (encoder starved {:.1}% of wall), 256-px tiles resized to 224 {b:.2} tiles/s | ratios {:.3} / {:.3}",
            100.0 * starved,
            a / py,
            b / py
        );
        py_prev = py_next;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!(
        "ratio Spatia end-to-end / PyTorch eager model-only (median of {rounds} paired rounds): 224-px tiles {:.3}, 256-px tiles resized to 224 {:.3}",
        median(&mut r224),
        median(&mut r256)
    );
    println!("CUDA: {}", if spatia::features::torchscript::cuda_available() { "available (not measured by this bench)" } else { "not available on this machine: not measured" });
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let want = |what: &str| args.is_empty() || args.iter().any(|a| a == what);
    let threads = env_usize("BENCH_THREADS", 2);
    if want("handcrafted") {
        handcrafted(threads);
    }
    #[cfg(feature = "torch")]
    if want("torch") {
        torch(threads);
    }
    #[cfg(not(feature = "torch"))]
    if want("torch") {
        println!("TorchScript benchmark skipped: build with --features torch (scripts/setup-torch.sh)");
    }
}
