//! Tissue detection + tiling, per slide, in process (phase by phase) and as a whole
//! `spatia slide tiles` process (wall time and peak RSS), plus tile streaming throughput.
//!
//! Slides: `../shared/data/slides/CMU-1-Small-Region.svs` and the 40,000 × 40,000 px slide of
//! `../shared/tools/make_large_slide.sh`, looked for at `$SPATIA_LARGE_SLIDE` (default
//! `/work/large/large.tif`; skipped with a note when absent).
//!
//! Run: `cargo bench --bench tiling` (release build). Timings are medians of `REPEAT` runs.
use spatia::slide::tiling::{for_each_tile_batch, tile_slide, write_qc, TileParams};
use spatia::slide::tissue::{detect_tissue, TissueParams};
use spatia::slide::{OpenOptions, Slide, Stain};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const REPEAT: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// (peak RSS KiB, user+system CPU seconds) of all waited-for children so far.
fn children_usage() -> (i64, f64) {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (u.ru_maxrss, secs(u.ru_utime) + secs(u.ru_stime))
}

/// The 1-minute load average (other work on the machine inflates wall times).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().next().unwrap_or("?").to_string())
        .unwrap_or_else(|_| "?".into())
}

fn in_process(name: &str, path: &Path, out: &Path) {
    let mut ph = vec![Vec::new(); 5];
    let mut tiles = 0;
    for _ in 0..REPEAT {
        let t = Instant::now();
        let slide = Slide::open(path, None).expect("open");
        let t_open = t.elapsed().as_secs_f64();
        let mask = detect_tissue(&slide, &TissueParams::for_stain(Stain::HE)).expect("tissue");
        let t_mask = t.elapsed().as_secs_f64();
        let tiling = tile_slide(&slide, &mask, &TileParams::new(0.5, 256)).expect("tiles");
        let t_tile = t.elapsed().as_secs_f64();
        write_qc(out, &mask, &tiling).expect("qc");
        let t_qc = t.elapsed().as_secs_f64();
        tiles = tiling.tiles.len();
        ph[0].push(t_open);
        ph[1].push(t_mask - t_open);
        ph[2].push(t_tile - t_mask);
        ph[3].push(t_qc - t_tile);
        ph[4].push(t_qc);
    }
    let ms = |v: &Vec<f64>| median(v.clone()) * 1e3;
    println!(
        "{name}: in-process median of {REPEAT}: open {:.1} ms, tissue {:.1} ms, tiling {:.1} ms, QC PNGs+CSV {:.1} ms, total {:.1} ms; {tiles} tiles",
        ms(&ph[0]), ms(&ph[1]), ms(&ph[2]), ms(&ph[3]), ms(&ph[4])
    );
}

fn whole_process(name: &str, path: &Path, out: &Path) {
    let exe = env!("CARGO_BIN_EXE_spatia");
    let mut walls = Vec::new();
    let mut last = String::new();
    let cpu0 = children_usage().1;
    for _ in 0..REPEAT {
        let t = Instant::now();
        let o = Command::new(exe)
            .args(["slide", "tiles"])
            .arg(path)
            .args(["--mpp", "0.5", "--size", "256", "--json", "--out"])
            .arg(out)
            .output()
            .expect("run spatia");
        walls.push(t.elapsed().as_secs_f64());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        last = String::from_utf8_lossy(&o.stdout).trim().to_string();
    }
    let w = median(walls.clone());
    let min = walls.iter().cloned().fold(f64::INFINITY, f64::min);
    let (rss, cpu1) = children_usage();
    println!(
        "{name}: `spatia slide tiles --mpp 0.5 --size 256 --json --out DIR` wall median {:.3} s (min {:.3} s) of {REPEAT}, CPU (user+sys) {:.3} s per run, load average {}; peak RSS of any run so far {} MiB; {last}",
        w,
        min,
        (cpu1 - cpu0) / REPEAT as f64,
        loadavg(),
        rss / 1024
    );
}

fn streaming(name: &str, path: &Path, max_tiles: usize) {
    let mut base = None;
    for openslide_pixels in [true, false] {
        let slide = Slide::open_with(path, &OpenOptions { mpp_override: None, openslide_pixels }).expect("open");
        let mask = detect_tissue(&slide, &TissueParams::for_stain(Stain::HE)).expect("tissue");
        let mut tiling = tile_slide(&slide, &mask, &TileParams::new(0.5, 256)).expect("tiles");
        tiling.tiles.truncate(max_tiles);
        let n = tiling.tiles.len();
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
            let t = Instant::now();
            let mut checksum = 0u64;
            pool.install(|| {
                for_each_tile_batch(&slide, &tiling, 64, |_, imgs| {
                    checksum += imgs.iter().map(|i| i.as_raw().iter().map(|&v| v as u64).sum::<u64>()).sum::<u64>();
                    Ok(())
                })
            })
            .expect("stream");
            let s = t.elapsed().as_secs_f64();
            let b = *base.get_or_insert(s);
            println!(
                "{name}: streamed {n} tiles of 256 px, batches of 64, pixels by {:<11} {threads} thread(s): {:.3} s, {:.0} tiles/s, ×{:.2} vs OpenSlide 1 thread (pixel sum {checksum}; load average {})",
                slide.pixel_reader(), s, n as f64 / s, b / s, loadavg()
            );
        }
    }
}

fn main() {
    let shared = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/slides"));
    let large = PathBuf::from(std::env::var("SPATIA_LARGE_SLIDE").unwrap_or_else(|_| "/work/large/large.tif".into()));
    let out = tempfile_dir();
    let mut slides = vec![("CMU-1-Small-Region.svs", shared.join("CMU-1-Small-Region.svs"))];
    if large.exists() {
        slides.push(("40k slide", large.clone()));
    } else {
        println!(
            "note: {} absent; build it with ../shared/tools/make_large_slide.sh (set SPATIA_LARGE_SLIDE)",
            large.display()
        );
    }
    for (name, p) in &slides {
        in_process(name, p, &out.join("inproc"));
        whole_process(name, p, &out.join("proc"));
    }
    for (name, p) in &slides {
        streaming(name, p, 2048);
    }
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    println!("bench process peak RSS (in-process runs and streaming, batches of 64): {} MiB", u.ru_maxrss / 1024);
    let _ = std::fs::remove_dir_all(&out);
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("spatia-bench-tiling-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}
