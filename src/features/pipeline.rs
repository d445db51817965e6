//! A throughput pipeline: tiles are read, decoded and prepared on a pool of worker threads
//! feeding a bounded queue, and handed to the encoder in batches, so the encoder (a GPU, or
//! libtorch's CPU threads) does not wait for tile reading.
//!
//! The pipeline is generic: the caller supplies the work items (e.g. `(slide, x, y)`) and a
//! closure turning one item into an RGB tile (the slide reader; in tests a crop of a PNG).
//! Items from several slides can be chained in one run so that one slide's reading overlaps
//! the previous slide's encoding; the sink receives results in input order with their index.
//! An encoder that computes asynchronously (a GPU: [`Encoder::in_flight`] > 1) gets its next
//! batch submitted before the pipeline waits for the previous one, so the device always has
//! queued work while the host prepares more.
//!
//! # Assumptions
//! Output order equals input order whatever the number of workers (results are re-ordered
//! before batching), so the output is deterministic when the encoder is. At most
//! `batch_size · queue_batches` prepared tiles are in memory at once, plus the batches in flight.
//!
//! # Errors
//! The first failing tile *in input order* stops the run with [`FeatureError::Tile`] (its
//! index and the reader's message); encoder and sink errors are returned as they are.
use super::{Encoder, FeatureError, Pending, Prepared, RgbImage};
use std::collections::{BTreeMap, VecDeque};
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
    /// Time the calling thread spent in the encoder: submitting batches and waiting for their
    /// features.
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
        let depth = encoder.in_flight().max(1);
        let mut queue: InFlight = VecDeque::with_capacity(depth + 1);
        let mut submitted = 0usize;
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
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(cfg.batch_size));
                        submit(encoder, full, &mut queue, &mut submitted, &mut stats)?;
                        if let Ok(mut done) = consumed.lock() {
                            *done = submitted;
                        }
                        advanced.notify_all();
                        drain(encoder, &mut queue, depth - 1, &mut sink, &mut stats)?;
                    }
                }
            }
            submit(encoder, batch, &mut queue, &mut submitted, &mut stats)?;
            drain(encoder, &mut queue, 0, &mut sink, &mut stats)
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

/// Batches submitted to the encoder and not collected yet: (first index, tiles, features).
type InFlight<'a> = VecDeque<(usize, usize, Pending<'a>)>;

/// Hands `batch` (when not empty) to the encoder and queues its pending features.
fn submit<'a>(
    encoder: &'a dyn Encoder,
    batch: Vec<Prepared>,
    queue: &mut InFlight<'a>,
    submitted: &mut usize,
    stats: &mut PipelineStats,
) -> Result<(), FeatureError> {
    if batch.is_empty() {
        return Ok(());
    }
    let n = batch.len();
    let t = Instant::now();
    let pending = encoder.submit(batch)?;
    stats.encode += t.elapsed();
    queue.push_back((*submitted, n, pending));
    *submitted += n;
    Ok(())
}

/// Collects the oldest batches until at most `keep` remain in flight, handing each to the sink.
fn drain<S>(
    encoder: &dyn Encoder,
    queue: &mut InFlight<'_>,
    keep: usize,
    sink: &mut S,
    stats: &mut PipelineStats,
) -> Result<(), FeatureError>
where
    S: FnMut(usize, Vec<Vec<f32>>) -> Result<(), FeatureError>,
{
    while queue.len() > keep {
        let Some((start, n, pending)) = queue.pop_front() else { break };
        let t = Instant::now();
        let out = pending()?;
        stats.encode += t.elapsed();
        if out.len() != n {
            return Err(FeatureError::Encoder {
                encoder: encoder.name(),
                message: format!("expected {n} outputs for a batch, found {}", out.len()),
            });
        }
        sink(start, out)?;
        stats.tiles += n;
        stats.batches += 1;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    /// An encoder whose batches complete only when collected (like a GPU queue): it records how
    /// many batches were outstanding at most and the order in which they were collected.
    struct Queued {
        depth: usize,
        outstanding: Cell<usize>,
        peak: Cell<usize>,
        collected: RefCell<Vec<f32>>,
    }

    // SAFETY: the pipeline calls `submit` and the pending closures on its calling thread only;
    // worker threads call `prepare`, which touches none of the cells.
    unsafe impl Sync for Queued {}

    impl Encoder for Queued {
        fn name(&self) -> String {
            "queued".into()
        }
        fn digest(&self) -> String {
            String::new()
        }
        fn dim(&self) -> usize {
            1
        }
        fn prepare(&self, tile: &RgbImage) -> Result<Prepared, FeatureError> {
            Ok(Prepared::F32(vec![tile.get_pixel(0, 0)[0] as f32]))
        }
        fn encode_prepared(&self, batch: &[Prepared]) -> Result<Vec<Vec<f32>>, FeatureError> {
            Ok(batch.iter().map(|p| if let Prepared::F32(v) = p { v.clone() } else { vec![] }).collect())
        }
        fn submit<'a>(&'a self, batch: Vec<Prepared>) -> Result<Pending<'a>, FeatureError> {
            self.outstanding.set(self.outstanding.get() + 1);
            self.peak.set(self.peak.get().max(self.outstanding.get()));
            let out = self.encode_prepared(&batch)?;
            Ok(Box::new(move || {
                self.outstanding.set(self.outstanding.get() - 1);
                self.collected.borrow_mut().push(out[0][0]);
                Ok(out)
            }))
        }
        fn in_flight(&self) -> usize {
            self.depth
        }
    }

    fn run_with(depth: usize, workers: usize) -> (Vec<Vec<f32>>, Queued) {
        let enc = Queued { depth, outstanding: Cell::new(0), peak: Cell::new(0), collected: RefCell::new(Vec::new()) };
        let cfg = PipelineConfig { workers, batch_size: 4, queue_batches: 2, worker_nice: 0 };
        let load = |i: u8| Ok(RgbImage::from_pixel(2, 2, image::Rgb([i, 0, 0])));
        let (rows, stats) = run_collect(0..=200u8, load, &enc, &cfg).unwrap();
        assert_eq!((stats.tiles, stats.batches), (201, 51));
        (rows, enc)
    }

    #[test]
    fn batches_stay_in_flight_up_to_the_encoder_depth_and_come_out_in_order() {
        let expected: Vec<Vec<f32>> = (0..=200u8).map(|i| vec![i as f32]).collect();
        for (depth, workers) in [(1, 1), (2, 3), (3, 2)] {
            let (rows, enc) = run_with(depth, workers);
            assert_eq!(rows, expected, "depth {depth}");
            assert_eq!(enc.peak.get(), depth, "depth {depth}: at most `in_flight` batches outstanding");
            assert_eq!(enc.outstanding.get(), 0, "every batch collected");
            let firsts: Vec<f32> = (0..51).map(|b| (b * 4) as f32).collect();
            assert_eq!(*enc.collected.borrow(), firsts, "collected oldest first");
        }
    }
}
