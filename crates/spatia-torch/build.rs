//! Links the plugin against the libtorch of `$LIBTORCH` (or, with `LIBTORCH_USE_PYTORCH=1`,
//! the `torch` package of the `python3` on PATH):
//! - embeds its `lib/` directory as an rpath, so the plugin loads without LD_LIBRARY_PATH;
//! - when that libtorch has CUDA (`lib/libtorch_cuda.so` exists), links `libtorch_cuda.so`
//!   and `libc10_cuda.so` with `--no-as-needed`: nothing in the plugin references their
//!   symbols, so the default `--as-needed` would drop them and the CUDA backend would never
//!   register (`Cuda::is_available()` false on a GPU machine). A CPU-only libtorch links
//!   neither, nor does `SPATIA_TORCH_LINK_CUDA=0` (a CPU-only deployment of a CUDA libtorch:
//!   loading the CUDA libraries costs ~0.25 s and ~350 MB RSS per process that runs a model;
//!   the plugin then opens them at run time only when a CUDA driver is present).
//! - records the libtorch version it was built against (`SPATIA_TORCH_BUILT_VERSION`).
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    println!("cargo:rerun-if-env-changed=SPATIA_TORCH_LINK_CUDA");
    let link_cuda = std::env::var("SPATIA_TORCH_LINK_CUDA").map_or(true, |v| v != "0");
    let root = match std::env::var("LIBTORCH") {
        Ok(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() => Command::new("python3")
            .args(["-c", "import os, torch; print(os.path.dirname(torch.__file__))"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())),
        _ => None,
    };
    let Some(root) = root else {
        println!(
            "cargo:warning=spatia-torch without LIBTORCH: the plugin needs LD_LIBRARY_PATH to find libtorch (run scripts/setup-torch.sh)"
        );
        println!("cargo:rustc-env=SPATIA_TORCH_BUILT_VERSION=unknown");
        println!("cargo:rustc-env=SPATIA_TORCH_BUILT_CUDA=0");
        return;
    };
    let lib = root.join("lib");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    let mut cuda = Vec::new();
    for name in ["torch_cuda", "c10_cuda"] {
        let so = lib.join(format!("lib{name}.so"));
        println!("cargo:rerun-if-changed={}", so.display());
        if link_cuda && so.exists() {
            cuda.push(name);
        }
    }
    if !cuda.is_empty() {
        println!("cargo:rustc-link-arg=-L{}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        for name in &cuda {
            println!("cargo:rustc-link-arg=-l{name}");
        }
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    println!("cargo:rustc-env=SPATIA_TORCH_BUILT_CUDA={}", if cuda.is_empty() { "0" } else { "1" });
    println!("cargo:rustc-env=SPATIA_TORCH_BUILT_VERSION={}", torch_version(&root).unwrap_or_else(|| "unknown".into()));
}

/// `version.py`'s `__version__` (a Python wheel) or `build-version` (a libtorch zip).
fn torch_version(root: &std::path::Path) -> Option<String> {
    if let Ok(s) = std::fs::read_to_string(root.join("version.py")) {
        for line in s.lines() {
            if let Some(v) = line.strip_prefix("__version__ = ") {
                return Some(v.trim().trim_matches(|c| c == '\'' || c == '"').to_string());
            }
        }
    }
    std::fs::read_to_string(root.join("build-version")).ok().map(|s| s.trim().to_string())
}
