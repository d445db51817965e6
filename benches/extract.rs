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
//! both); env BENCH_THREADS (default 2), BENCH_BATCH (16), BENCH_BATCHES (8; each round runs half of them per side), BENCH_ROUNDS (6).
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
        let cfg = PipelineConfig { workers: threads, batch_size: 64, queue_batches: 4, worker_nice: 0 };
        let mut checksum = 0f64;
        let stats = run(
            0..n,
            |i| decode(&tiles[i % tiles.len()]),
            &enc,
            &cfg,
            |_, rows| {
                checksum += rows.iter().map(|r| r[0] as f64).sum::<f64>();
                Ok(())
            },
        )
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
        println!(
            "{label}: encode only (pre-decoded, rayon {threads} threads): {:.1} tiles/s",
            count as f64 / t.elapsed().as_secs_f64()
        );
    }
}

#[cfg(feature = "torch")]
fn torch(threads: usize) {
    use spatia::features::torchscript::{DeviceChoice, ModelPrecision, TorchScript, TorchScriptConfig};
    use spatia::features::transform::InputTransform;
    use std::process::Command;

    let batch = env_usize("BENCH_BATCH", 16);
    let batches = env_usize("BENCH_BATCHES", 8);
    let python = std::env::var("SPATIA_TORCH_PYTHON").unwrap_or_else(|_| {
        format!("{}/.cache/spatia/torch-2.11.0/bin/python", std::env::var("HOME").unwrap_or_default())
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_models.py");
    let dir = std::env::temp_dir().join(format!("spatia-bench-extract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let model = dir.join("resnet18.pt");
    let st = Command::new(&python).args([script, "trace", "resnet18", "224", model.to_str().unwrap()]).status();
    assert!(st.map(|s| s.success()).unwrap_or(false), "tracing ResNet-18 with {python} failed");
    println!(
        "== TorchScript ResNet-18 (traced from PyTorch), CPU, {threads} threads, batch {batch}, {batches} batches =="
    );

    let cfg = TorchScriptConfig {
        path: model.clone(),
        transform: InputTransform::imagenet(224),
        device: DeviceChoice::Cpu,
        precision: ModelPrecision::Fp32,
        threads: Some(threads),
        warm_batch: 0,
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
    // PyTorch runs as a server so that both sides can be interleaved slice by slice: the
    // machine is shared, and alternating short slices exposes both to the same load.
    let mut server = Command::new(&python)
        .args([script, "serve", "resnet18", "224", &batch.to_string(), &threads.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python serve");
    let mut to_py = server.stdin.take().expect("stdin");
    let mut from_py = std::io::BufReader::new(server.stdout.take().expect("stdout"));
    let mut line = String::new();
    use std::io::{BufRead, Write};
    from_py.read_line(&mut line).expect("ready line");
    assert!(line.starts_with("ready"), "python server: {line}");
    println!("PyTorch eager: torch threads {}", line.trim_start_matches("ready").trim());
    let mut pytorch = |batches: usize| -> (f64, f64) {
        writeln!(to_py, "{batches}").expect("write");
        to_py.flush().expect("flush");
        line.clear();
        from_py.read_line(&mut line).expect("read");
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        (v["seconds"].as_f64().expect("seconds"), v["cpu_seconds"].as_f64().expect("cpu"))
    };
    let cpu_now = || {
        // SAFETY: getrusage fills the struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        tv(u.ru_utime) + tv(u.ru_stime)
    };
    let spatia = |tiles: &Vec<Vec<u8>>, batches: usize, worker_nice: i32| -> (f64, f64, f64) {
        let pcfg = PipelineConfig { workers: 1, batch_size: batch, queue_batches: 2, worker_nice };
        let c0 = cpu_now();
        let stats =
            run(0..batch * batches, |i| decode(&tiles[i % tiles.len()]), &enc, &pcfg, |_, _| Ok(())).expect("pipeline");
        (stats.wall.as_secs_f64(), cpu_now() - c0, stats.starved.as_secs_f64())
    };
    let rounds = env_usize("BENCH_ROUNDS", 6);
    let slice = batches.div_ceil(2).max(1);
    // Spatia variants: 224-px tiles with workers at normal priority, 224-px and 256→224-px
    // tiles with workers at nice +10 (PipelineConfig::worker_nice).
    let variants: [(&str, &Vec<Vec<u8>>, i32); 3] = [
        ("224-px JPEG tiles, workers nice 0", &tiles224, 0),
        ("224-px JPEG tiles, workers nice +10", &tiles224, 10),
        ("256-px JPEG tiles resized to 224, workers nice +10", &tiles256, 10),
    ];
    let mut py = [0.0f64; 2];
    let mut sp = [[0.0f64; 3]; 3];
    for _ in 0..rounds {
        let (w, c) = pytorch(slice);
        py[0] += w;
        py[1] += c;
        for (k, (_, tiles, nice)) in variants.iter().enumerate() {
            let (w, c, s) = spatia(tiles, slice, *nice);
            sp[k][0] += w;
            sp[k][1] += c;
            sp[k][2] += s;
        }
    }
    drop(to_py);
    let _ = server.wait();
    let n = (rounds * slice * batch) as f64;
    let py_tps = n / py[0];
    println!("{rounds} interleaved rounds of {slice} batches × {batch} tiles per side ({n} tiles each):");
    println!(
        "  PyTorch eager, model only, pre-decoded tensors: {py_tps:.2} tiles/s ({:.2} tiles per CPU-second)",
        n / py[1]
    );
    for (k, (label, _, _)) in variants.iter().enumerate() {
        let tps = n / sp[k][0];
        println!(
            "  Spatia end-to-end (decode + transform + model), {label}: {tps:.2} tiles/s ({:.2} per CPU-second, encoder starved {:.2}% of wall) → ratio {:.3} (per CPU-second {:.3})",
            n / sp[k][1],
            100.0 * sp[k][2] / sp[k][0],
            tps / py_tps,
            py[1] / sp[k][1]
        );
    }
    println!(
        "CUDA: {}",
        if spatia::features::torchscript::cuda_available() {
            "available (not measured by this bench)"
        } else {
            "not available on this machine: not measured"
        }
    );
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
