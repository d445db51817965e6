//! A throughput pipeline: tiles are read, decoded and prepared on a pool of worker threads
//! feeding a bounded queue, and handed to the encoder in batches, so the encoder (a GPU, or
//! libtorch's CPU threads) does not wait for tile reading.
//!
//! The pipeline is generic: the caller supplies the work items (e.g. `(slide, x, y)`) and a
//! closure turning one item into an RGB tile (the slide reader; in tests a crop of a PNG).
//! Items from several slides can be chained in one run so that one slide's reading overlaps
//! the previous slide's encoding; the sink receives results in input order with their index.
//!
//! # Assumptions
//! Output order equals input order whatever the number of workers (results are re-ordered
//! before batching), so the output is deterministic when the encoder is. At most
//! `batch_size · queue_batches` prepared tiles are in memory at once.
//!
//! # Errors
//! The first failing tile *in input order* stops the run with [`FeatureError::Tile`] (its
//! index and the reader's message); encoder and sink errors are returned as they are.
use super::{Encoder, FeatureError, Prepared, RgbImage};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Pipeline sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Reader/decoder threads (≥ 1).
    pub workers: usize,
    /// Tiles per encoder call (≥ 1).
    pub batch_size: usize,
    /// Prepared batches allowed ahead of the encoder (≥ 1); bounds memory.
    pub queue_batches: usize,
    /// Linux `nice` increment for the worker threads (0 = unchanged). On a CPU-bound encoder
    /// (libtorch on CPU) a positive value lets the model's threads preempt tile decoding, so
    /// the few per cent of CPU decoding needs do not stall libtorch's parallel kernels.
    pub worker_nice: i32,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig { workers: 2, batch_size: 32, queue_batches: 4, worker_nice: 0 }
    }
}

/// What a run did and where its time went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PipelineStats {
    /// Tiles encoded.
    pub tiles: usize,
    /// Encoder calls.
    pub batches: usize,
    /// Wall time of the whole run.
    pub wall: Duration,
    /// Time spent inside `encode_prepared`.
    pub encode: Duration,
    /// Time the encoder thread waited for prepared tiles (encoder idle).
    pub starved: Duration,
}

impl PipelineStats {
    /// Tiles per second over the whole run.
    pub fn tiles_per_s(&self) -> f64 {
        self.tiles as f64 / self.wall.as_secs_f64().max(1e-12)
    }
}

struct Source<I> {
    iter: I,
    next: usize,
    exhausted: bool,
}

/// Runs `load` then [`Encoder::prepare`] on `cfg.workers` threads over `items`, batches the
/// prepared tiles in input order and encodes them on the calling thread, calling
/// `sink(first_index, features)` once per batch in order.
pub fn run<I, T, L, S>(
    items: I,
    load: L,
    encoder: &dyn Encoder,
    cfg: &PipelineConfig,
    mut sink: S,
) -> Result<PipelineStats, FeatureError>
where
    I: IntoIterator<Item = T>,
    I::IntoIter: Send,
    T: Send,
    L: Fn(T) -> Result<RgbImage, String> + Sync,
    S: FnMut(usize, Vec<Vec<f32>>) -> Result<(), FeatureError>,
{
    if cfg.workers == 0 || cfg.batch_size == 0 || cfg.queue_batches == 0 {
        return Err(FeatureError::InvalidInput(format!(
            "pipeline: expected workers, batch_size and queue_batches ≥ 1, found {}, {}, {}",
            cfg.workers, cfg.batch_size, cfg.queue_batches
        )));
    }
    let start = Instant::now();
    let window = cfg.batch_size * cfg.queue_batches;
    let source = Mutex::new(Source { iter: items.into_iter(), next: 0, exhausted: false });
    // Number of tiles handed to the encoder so far; workers stay within `window` of it.
    let consumed = Mutex::new(0usize);
    let advanced = Condvar::new();
    let abort = AtomicBool::new(false);
    let (tx, rx) = sync_channel::<(usize, Result<Prepared, FeatureError>)>(window);
    let mut stats = PipelineStats::default();

    let result = std::thread::scope(|scope| {
        for _ in 0..cfg.workers {
            let tx = tx.clone();
            let (source, consumed, advanced, abort, load) = (&source, &consumed, &advanced, &abort, &load);
            let nice = cfg.worker_nice;
            scope.spawn(move || loop {
                if nice != 0 {
                    lower_priority(nice);
                }
                let (index, item) = {
                    let mut src = match source.lock() {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                    if src.exhausted || abort.load(Ordering::Relaxed) {
                        return;
                    }
                    // Wait until the item to take is within the window.
                    {
                        let mut done = match consumed.lock() {
                            Ok(d) => d,
                            Err(_) => return,
                        };
                        while src.next >= *done + window && !abort.load(Ordering::Relaxed) {
                            done = match advanced.wait_timeout(done, Duration::from_millis(50)) {
                                Ok((d, _)) => d,
                                Err(_) => return,
                            };
                        }
                    }
                    match src.iter.next() {
                        Some(item) => {
                            let i = src.next;
                            src.next += 1;
                            (i, item)
                        }
                        None => {
                            src.exhausted = true;
                            return;
                        }
                    }
                };
                let prepared = load(item).map_err(|message| FeatureError::Tile { index, message }).and_then(|tile| {
                    encoder.prepare(&tile).map_err(|e| FeatureError::Tile { index, message: e.to_string() })
                });
                if tx.send((index, prepared)).is_err() {
                    return;
                }
            });
        }
        drop(tx);

        let mut pending: BTreeMap<usize, Result<Prepared, FeatureError>> = BTreeMap::new();
        let mut next_expected = 0usize;
        let mut batch: Vec<Prepared> = Vec::with_capacity(cfg.batch_size);
        let mut batch_start = 0usize;
        let mut flush = |batch: &mut Vec<Prepared>,
                         batch_start: &mut usize,
                         stats: &mut PipelineStats|
         -> Result<(), FeatureError> {
            if batch.is_empty() {
                return Ok(());
            }
            let t = Instant::now();
            let out = encoder.encode_prepared(batch)?;
            stats.encode += t.elapsed();
            if out.len() != batch.len() {
                return Err(FeatureError::Encoder {
                    encoder: encoder.name(),
                    message: format!("expected {} outputs for a batch, found {}", batch.len(), out.len()),
                });
            }
            let n = batch.len();
            sink(*batch_start, out)?;
            stats.tiles += n;
            stats.batches += 1;
            *batch_start += n;
            batch.clear();
            if let Ok(mut done) = consumed.lock() {
                *done += n;
            }
            advanced.notify_all();
            Ok(())
        };
        let outcome = (|| -> Result<(), FeatureError> {
            loop {
                let t = Instant::now();
                let Ok((index, prepared)) = rx.recv() else { break };
                stats.starved += t.elapsed();
                pending.insert(index, prepared);
                while let Some(p) = pending.remove(&next_expected) {
                    batch.push(p?);
                    next_expected += 1;
                    if batch.len() == cfg.batch_size {
                        flush(&mut batch, &mut batch_start, &mut stats)?;
                    }
                }
            }
            flush(&mut batch, &mut batch_start, &mut stats)
        })();
        if outcome.is_err() {
            abort.store(true, Ordering::Relaxed);
            advanced.notify_all();
        }
        drop(rx);
        outcome
    });
    result?;
    stats.wall = start.elapsed();
    Ok(stats)
}

/// Raises the calling thread's nice value by `inc` (best effort; Linux threads have their own).
fn lower_priority(inc: i32) {
    #[cfg(target_os = "linux")]
    {
        thread_local!(static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
        if DONE.with(|d| d.replace(true)) {
            return;
        }
        // SAFETY: plain syscalls on the current thread's id; failures are ignored.
        unsafe {
            let tid = libc::gettid();
            let cur = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, (cur + inc).clamp(-20, 19));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = inc;
}

/// Runs the pipeline and collects all feature rows in input order.
pub fn run_collect<I, T, L>(
    items: I,
    load: L,
    encoder: &dyn Encoder,
    cfg: &PipelineConfig,
) -> Result<(Vec<Vec<f32>>, PipelineStats), FeatureError>
where
    I: IntoIterator<Item = T>,
    I::IntoIter: Send,
    T: Send,
    L: Fn(T) -> Result<RgbImage, String> + Sync,
{
    let mut rows = Vec::new();
    let stats = run(items, load, encoder, cfg, |_, out| {
        rows.extend(out);
        Ok(())
    })?;
    Ok((rows, stats))
}

/// Cuts a grid of `size`×`size` tiles (top-left coordinates, row-major) out of an image;
/// partial tiles at the right and bottom edges are skipped. A stand-in tile source for tests
/// and benchmarks until the slide reader is wired in.
pub fn grid(width: u32, height: u32, size: u32) -> Vec<[i64; 2]> {
    if size == 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut y = 0;
    while y + size <= height {
        let mut x = 0;
        while x + size <= width {
            out.push([x as i64, y as i64]);
            x += size;
        }
        y += size;
    }
    out
}
