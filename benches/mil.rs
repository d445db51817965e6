//! Attention-MIL training speed on CPU: Spatia (the libtorch plugin's fit, as `model: mil` runs
//! it) against the PyTorch reference of the same network (tests/mil_reference.py), seconds per
//! epoch on the same data, from the same initial weights and batches.
//!
//! `cargo bench --features torch --bench mil` (env of scripts/setup-torch.sh). The data is one
//! outer-fold fit traced by `spatia run` (`SPATIA_MIL_TRACE`): the fit directory in env
//! `BENCH_MIL_TRACE`, or else the shipped demo cohort (`spatia demo generate` defaults: 60
//! patients, HE + KI67) generated, tiled and extracted in a temporary project (about a minute),
//! arm `[HE, IHC, clinical]`, `concat`, `cox`, full batch, default network sizes, dropout 0.
//!
//! Each side runs as a server process with one libtorch thread; the bench alternates them,
//! `BENCH_ROUNDS` (default 7) rounds of `BENCH_EPOCHS` (default 10) epochs per side, and prints
//! the median seconds per epoch and the ratio Spatia / PyTorch:
//! - Spatia as `train` runs it: the training child's environment (`ATEN_CPU_CAPABILITY=default`,
//!   `MKL_CBWR=COMPATIBLE`, one OpenMP thread), which makes the bytes identical on any x86-64 CPU;
//! - PyTorch in that same environment (same kernels: the like-for-like comparison);
//! - PyTorch and Spatia with libtorch's native kernels (AVX2/AVX-512): what the determinism
//!   setting costs.
//!
//! Each timing covers a whole fit of N epochs: network set-up, batch assembly, the epochs.
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mil_reference.py");
const DETERMINISTIC: [(&str, &str); 3] =
    [("ATEN_CPU_CAPABILITY", "default"), ("MKL_CBWR", "COMPATIBLE"), ("OMP_NUM_THREADS", "1")];

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn python() -> String {
    std::env::var("SPATIA_TORCH_PYTHON").unwrap_or_else(|_| {
        format!("{}/.cache/spatia/torch-2.11.0/bin/python", std::env::var("HOME").unwrap_or_default())
    })
}

/// The tensors of a safetensors file: name → (dtype, shape, little-endian bytes).
fn read_safetensors(path: &Path) -> std::collections::BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = u64::from_le_bytes(raw[..8].try_into().expect("header size")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&raw[8..8 + n]).expect("safetensors header");
    let body = &raw[8 + n..];
    let mut out = std::collections::BTreeMap::new();
    for (name, meta) in header.as_object().expect("header object") {
        if name == "__metadata__" {
            continue;
        }
        let shape = meta["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let off = meta["data_offsets"].as_array().unwrap();
        let (a, b) = (off[0].as_u64().unwrap() as usize, off[1].as_u64().unwrap() as usize);
        out.insert(name.clone(), (meta["dtype"].as_str().unwrap().to_string(), shape, body[a..b].to_vec()));
    }
    out
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}
fn f64s(b: &[u8]) -> Vec<f64> {
    b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}
fn i64s(b: &[u8]) -> Vec<i64> {
    b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
}

/// The Spatia side: a server that fits the traced network for N epochs per request line.
fn worker(fit_dir: &Path) {
    use spatia::features::torch_plugin::{self, MilStain};
    let plugin = torch_plugin::get().expect("the libtorch plugin (make build)");
    plugin.set_threads(1);
    let t = read_safetensors(&fit_dir.join("data.safetensors"));
    let time = f64s(&t["time"].2);
    let event: Vec<bool> = t["event"].2.iter().map(|&e| e != 0).collect();
    let mut mods = Vec::new();
    for i in 0.. {
        let Some((_, shape, feats)) = t.get(&format!("mod{i}.feats")) else { break };
        mods.push((shape[1], f32s(feats), i64s(&t[&format!("mod{i}.offsets")].2)));
    }
    let stains: Vec<MilStain> = mods.iter().map(|(d, f, o)| MilStain { dim: *d, feats: f, offsets: o }).collect();
    let clin = t.get("clinical").map(|(_, s, b)| (f32s(b), s[1]));
    let data =
        plugin.mil_data(&time, &event, &stains, clin.as_ref().map(|(x, c)| (x.as_slice(), *c))).expect("plugin data");
    let fit: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fit_dir.join("fit.json")).expect("fit.json")).expect("fit.json JSON");
    let train: Vec<usize> = fit["train"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let run = |epochs: usize| -> f64 {
        let mut cfg = fit["config"].clone();
        cfg.as_object_mut().unwrap().remove("trace");
        cfg["epochs"] = epochs.into();
        let batches = cfg["batches"].as_array().cloned().unwrap_or_default();
        if !batches.is_empty() {
            // mini-batches repeat cyclically past the traced epochs (as the reference does)
            cfg["batches"] = (0..epochs).map(|e| batches[e % batches.len()].clone()).collect();
        }
        let text = cfg.to_string();
        let t0 = Instant::now();
        let net = plugin.mil_fit(&data, &text, &train, &[]).expect("fit");
        let s = t0.elapsed().as_secs_f64() / epochs as f64;
        drop(net);
        s
    };
    run(1);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        let Ok(n) = line.unwrap_or_default().trim().parse::<usize>() else { continue };
        writeln!(out, "{}", serde_json::json!({ "seconds_per_epoch": run(n.max(1)) })).unwrap();
        out.flush().unwrap();
    }
}

struct Server {
    label: &'static str,
    child: Child,
    to: ChildStdin,
    from: std::io::BufReader<ChildStdout>,
    times: Vec<f64>,
}

impl Server {
    fn start(label: &'static str, mut cmd: Command, deterministic: bool) -> Server {
        for (k, v) in DETERMINISTIC {
            // one OpenMP thread either way; the kernel choices only in the deterministic setting
            if deterministic || k == "OMP_NUM_THREADS" {
                cmd.env(k, v);
            } else {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("start a bench server");
        let to = child.stdin.take().unwrap();
        let mut from = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        from.read_line(&mut line).expect("ready line");
        assert!(line.starts_with("ready"), "{label}: expected `ready`, got {line:?}");
        Server { label, child, to, from, times: Vec::new() }
    }

    fn time(&mut self, epochs: usize) {
        writeln!(self.to, "{epochs}").unwrap();
        self.to.flush().unwrap();
        let mut line = String::new();
        self.from.read_line(&mut line).expect("a timing line");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{}: {e}: {line:?}", self.label));
        self.times.push(v["seconds_per_epoch"].as_f64().expect("seconds_per_epoch"));
    }

    fn median(&self) -> f64 {
        let mut t = self.times.clone();
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    }
}

/// A traced outer-fold fit of the demo cohort, made in `dir`.
fn demo_trace(dir: &Path) -> PathBuf {
    let spatia = env!("CARGO_BIN_EXE_spatia");
    let run = |args: &[&str], env: Option<(&str, &Path)>| {
        let mut c = Command::new(spatia);
        c.args(args).current_dir(dir);
        if let Some((k, v)) = env {
            c.env(k, v);
        }
        let o = c.output().expect("run spatia");
        assert!(o.status.success(), "spatia {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    let t0 = Instant::now();
    run(&["demo", "generate", "--out", "demo-data"], None);
    std::fs::write(
        dir.join("bench.yaml"),
        [
            "name: bench",
            "seed: 7",
            "cohort:",
            "  clinical: demo-data/clinical.csv",
            "  slides: demo-data/slides.csv",
            "  id: patient_id",
            "  time: dmfs_days",
            "  event: dm",
            "  causes: {1: metastasis, 2: death}",
            "  covariates: [age, tumor_size_mm, nodes_positive, grade, er, pr, her2, ki67]",
            "stages:",
            "  ingest: {kind: ingest}",
            "  tiles: {kind: tile, needs: [ingest], mpp: 0.5, size: 256}",
            "  feats: {kind: extract, needs: [tiles], encoder: handcrafted}",
            "  model:",
            "    kind: train",
            "    needs: [feats]",
            "    model: mil",
            "    modalities: [HE, IHC, clinical]",
            "    folds: 3",
            "    repeats: 1",
            "    mil: {dropout: 0, epochs: 2, inner_folds: 2}",
            "",
        ]
        .join("\n"),
    )
    .unwrap();
    let trace = dir.join("trace");
    run(&["run", "bench.yaml", "--quiet"], Some(("SPATIA_MIL_TRACE", &trace)));
    println!("demo cohort generated, tiled, extracted and traced in {:.0} s", t0.elapsed().as_secs_f64());
    trace.join("r0_f0")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--worker") {
        worker(Path::new(&args[i + 1]));
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let fit_dir = match std::env::var_os("BENCH_MIL_TRACE").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => demo_trace(tmp.path()),
    };
    let fit: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fit_dir.join("fit.json")).expect("fit.json")).expect("fit.json JSON");
    let data = read_safetensors(&fit_dir.join("data.safetensors"));
    let tiles: Vec<usize> = data.iter().filter(|(k, _)| k.ends_with(".feats")).map(|(_, v)| v.1[0]).collect();
    let c = &fit["config"];
    let nb = c["batches"].as_array().and_then(|b| b.first()).and_then(|e| e.as_array()).map_or(1, |e| e.len());
    println!(
        "fit {}: {} training patients, tiles per stain {tiles:?}, clinical {}, fusion {}, loss {}, hidden {}, \
         attention {}, {nb} batch(es) per epoch",
        fit_dir.display(),
        fit["train"].as_array().map_or(0, |a| a.len()),
        data.get("clinical").map_or("none".to_string(), |c| format!("{} columns", c.1[1])),
        c["fusion"],
        c["loss"],
        c["hidden"],
        c["attention"]
    );
    let epochs = env_usize("BENCH_EPOCHS", 10);
    let rounds = env_usize("BENCH_ROUNDS", 7);
    let me = std::env::current_exe().expect("bench executable");
    let spatia_cmd = || {
        let mut c = Command::new(&me);
        c.arg("--worker").arg(&fit_dir);
        c
    };
    let torch_cmd = || {
        let mut c = Command::new(python());
        c.arg(REFERENCE).arg("bench").arg(&fit_dir).arg("1").arg("--serve");
        c
    };
    let mut servers = [
        Server::start("Spatia (training child's environment)", spatia_cmd(), true),
        Server::start("PyTorch reference, same environment", torch_cmd(), true),
        Server::start("PyTorch reference, native kernels", torch_cmd(), false),
        Server::start("Spatia, native kernels", spatia_cmd(), false),
    ];
    for _ in 0..rounds {
        for s in servers.iter_mut() {
            s.time(epochs);
        }
    }
    println!(
        "{rounds} alternating rounds of {epochs} epochs per side, 1 libtorch thread each; median seconds per epoch:"
    );
    for s in &servers {
        println!(
            "  {:<45} {:.4} s  (all: {:?})",
            s.label,
            s.median(),
            s.times.iter().map(|t| (t * 1e4).round() / 1e4).collect::<Vec<_>>()
        );
    }
    let m: Vec<f64> = servers.iter().map(Server::median).collect();
    println!("ratio Spatia / PyTorch, same environment (ATEN_CPU_CAPABILITY=default): {:.3}", m[0] / m[1]);
    println!("ratio Spatia (as `train` runs it) / PyTorch with native kernels: {:.3}", m[0] / m[2]);
    println!("ratio Spatia / PyTorch, both native kernels: {:.3}", m[3] / m[2]);
    for mut s in servers {
        drop(s.to);
        let _ = s.child.wait();
    }
}
