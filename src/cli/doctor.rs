//! `spatia doctor`: what this installation can run, and exactly what is missing when it cannot
//! — the libtorch plugin, the torch version, whether CUDA is usable (device name and memory),
//! the cuDNN version, autocast. It opens the plugin (so libtorch) on purpose; no other verb
//! does unless it runs a TorchScript model.
//!
//! Exit codes: 0 when TorchScript models can run (on CPU at least) — and, with `--cuda`, on a
//! CUDA device; 1 otherwise (each finding says what is missing and how to fix it).
use serde_json::{json, Value};

/// Arguments of `spatia doctor`.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Exit 1 unless CUDA is usable
    #[arg(long)]
    pub cuda: bool,
    /// One JSON object on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

/// One line of the report: what was checked, whether it is fine, and what to do when not.
struct Finding {
    what: &'static str,
    ok: bool,
    detail: String,
}

/// Checks that only matter on a CUDA device (they do not fail a CPU installation).
const GPU_CHECKS: [&str; 3] = ["cuda", "cudnn", "autocast"];

/// Runs `spatia doctor`.
pub fn run(a: &DoctorArgs) -> anyhow::Result<u8> {
    let (facts, findings) = examine();
    let torch_ok = findings.iter().filter(|f| !GPU_CHECKS.contains(&f.what)).all(|f| f.ok);
    let cuda_ok = findings.iter().any(|f| f.what == "cuda" && f.ok);
    let ok = torch_ok && (!a.cuda || cuda_ok);
    if a.json {
        let mut v = facts;
        v["torch_usable"] = json!(torch_ok);
        v["cuda_usable"] = json!(cuda_ok);
        v["findings"] = findings.iter().map(|f| json!({"check": f.what, "ok": f.ok, "detail": f.detail})).collect();
        println!("{v}");
    } else {
        println!("spatia {} ({})", env!("CARGO_PKG_VERSION"), build_line());
        for f in &findings {
            let state = match (f.ok, GPU_CHECKS.contains(&f.what) && !cuda_ok) {
                (true, _) => "ok",
                (false, true) => "no",
                (false, false) => "MISSING",
            };
            println!("{:<9} {state:<8} {}", f.what, crate::util::display_text(&f.detail));
        }
    }
    Ok(if ok { 0 } else { 1 })
}

fn build_line() -> String {
    if cfg!(feature = "torch") {
        "built with the torch feature".into()
    } else {
        "built without the torch feature".into()
    }
}

/// The facts (the plugin's runtime JSON, when it opens) and the findings.
fn examine() -> (Value, Vec<Finding>) {
    let mut out = Vec::new();
    let driver = nvidia_driver();
    let base = json!({
        "spatia_version": env!("CARGO_PKG_VERSION"),
        "torch_feature": cfg!(feature = "torch"),
        "nvidia_driver": driver.as_ref().ok(),
    });
    if !cfg!(feature = "torch") {
        out.push(Finding {
            what: "plugin",
            ok: false,
            detail:
                "this spatia was built without the `torch` feature: `make build` builds it with TorchScript support"
                    .into(),
        });
        return (base, out);
    }
    #[cfg(feature = "torch")]
    {
        use crate::features::torch_plugin;
        let plugin = match torch_plugin::get() {
            Ok(p) => p,
            Err(e) => {
                out.push(Finding { what: "plugin", ok: false, detail: e });
                return (base, out);
            }
        };
        out.push(Finding { what: "plugin", ok: true, detail: plugin.path().display().to_string() });
        let info = match plugin.info() {
            Ok(i) => i,
            Err(e) => {
                out.push(Finding {
                    what: "torch",
                    ok: false,
                    detail: format!("the plugin cannot describe libtorch: {e}"),
                });
                return (base, out);
            }
        };
        let s = |k: &str| info[k].as_str().unwrap_or("unknown").to_string();
        let (built, runtime) = (s("torch_version_built"), s("torch_version"));
        let same = runtime.split('+').next() == built.split('+').next();
        out.push(Finding {
            what: "torch",
            ok: same,
            detail: if same {
                format!("libtorch {runtime} at {}", s("libtorch_dir"))
            } else {
                format!(
                    "the plugin was built for libtorch {built} but loaded {runtime} from {}: rebuild with `make build`",
                    s("libtorch_dir")
                )
            },
        });
        out.push(cuda_finding(&info, &driver));
        let cudnn = info["cudnn_version"].as_i64().unwrap_or(0);
        out.push(Finding {
            what: "cudnn",
            ok: cudnn > 0,
            detail: if cudnn > 0 {
                format!("cuDNN {}", version_text(cudnn))
            } else if info["cuda_available"].as_bool() == Some(true) {
                "libtorch reports no usable cuDNN (the torch wheel's nvidia-cudnn package is missing?)".into()
            } else {
                "needs CUDA".into()
            },
        });
        let amp = info["autocast_dtype_error"].as_str();
        out.push(Finding {
            what: "autocast",
            ok: amp.is_none(),
            detail: match amp {
                None => "fp16 and bf16 autocast selectable".into(),
                Some(e) => format!("precision bf16 unavailable: {e}"),
            },
        });
        let mut facts = info;
        if let (Some(f), Some(b)) = (facts.as_object_mut(), base.as_object()) {
            for (k, v) in b {
                f.insert(k.clone(), v.clone());
            }
        }
        (facts, out)
    }
    #[cfg(not(feature = "torch"))]
    unreachable!("handled above")
}

/// The CUDA finding: the device(s) when usable, else the first missing piece in order.
#[cfg_attr(not(feature = "torch"), allow(dead_code))]
fn cuda_finding(info: &Value, driver: &Result<String, String>) -> Finding {
    let b = |k: &str| info[k].as_bool().unwrap_or(false);
    if b("cuda_available") {
        let devs: Vec<String> = info["devices"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|d| {
                        let gib = d["total_memory_bytes"].as_f64().unwrap_or(0.0) / (1u64 << 30) as f64;
                        format!("cuda:{} {} ({gib:.1} GiB)", d["index"], d["name"].as_str().unwrap_or("?"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let rt = info["cudart_version"].as_i64().unwrap_or(0);
        return Finding {
            what: "cuda",
            ok: true,
            detail: format!("{}; CUDA runtime {}", devs.join(", "), version_text(rt)),
        };
    }
    let detail = if !b("built_with_cuda_libs") && !b("cuda_libs_loaded") {
        let dir = info["libtorch_dir"].as_str().unwrap_or("?");
        if std::path::Path::new(dir).join("libtorch_cuda.so").exists() {
            match driver {
                Err(e) => format!("no NVIDIA driver: {e} (CPU only)"),
                Ok(_) => "libtorch_cuda.so was not loaded: rebuild the plugin without SPATIA_TORCH_LINK_CUDA=0".into(),
            }
        } else {
            format!("the libtorch at {dir} is CPU-only (no libtorch_cuda.so): install the CUDA torch wheel (scripts/setup-torch.sh) and `make build`")
        }
    } else {
        match driver {
            Err(e) => format!("no NVIDIA driver: {e} (CPU only)"),
            Ok(v) => format!(
                "NVIDIA driver {v} present but libtorch sees no CUDA device{}",
                info["devices_error"].as_str().map(|e| format!(" ({e})")).unwrap_or_default()
            ),
        }
    };
    Finding { what: "cuda", ok: false, detail }
}

/// CUDA-style version numbers: 12040 → 12.4, 91002 → 9.10.2 (cuDNN ≥ 9), 8902 → 8.9.2.
#[cfg_attr(not(feature = "torch"), allow(dead_code))]
fn version_text(v: i64) -> String {
    if v >= 90000 {
        format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100)
    } else if v >= 10000 {
        format!("{}.{}", v / 1000, (v % 1000) / 10)
    } else if v > 0 {
        format!("{}.{}.{}", v / 1000, (v / 100) % 10, v % 100)
    } else {
        "unknown".into()
    }
}

/// The NVIDIA driver's version (from /proc/driver/nvidia/version), or why there is none.
fn nvidia_driver() -> Result<String, String> {
    match std::fs::read_to_string("/proc/driver/nvidia/version") {
        Ok(s) => Ok(s
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit())))
            .unwrap_or("unknown")
            .to_string()),
        Err(_) => Err("/proc/driver/nvidia/version not found".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::version_text;

    #[test]
    fn versions_read_as_cuda_prints_them() {
        assert_eq!(version_text(13000), "13.0");
        assert_eq!(version_text(12040), "12.4");
        assert_eq!(version_text(91002), "9.10.2");
        assert_eq!(version_text(8902), "8.9.2");
        assert_eq!(version_text(0), "unknown");
    }
}
