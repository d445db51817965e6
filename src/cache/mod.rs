//! The content-addressed cache: one directory per stage key.
//!
//! Layout under the cache root: `entries/<k[0..2]>/<key>/` holding `record.json`, `stat.json`
//! (the stat snapshot of the outputs), `log.txt` and `out/` (the stage's outputs); `tmp/` for
//! entries being built; `locks/<key>.lock`; `gc.lock`; `failed/<key>/` keeps the last failed
//! attempt of a key with its log; `quarantine/<key>.<time>/` holds entries found damaged;
//! `statcache.tsv`.
//!
//! **Invariant:** an entry directory is visible only complete. [`Writer`] builds it in a
//! private temporary directory (`tmp/.<key>.<host>.<pid>.<n>.tmp`), fsyncs every file and directory,
//! and publishes it with one atomic rename; `Drop` removes an unfinished one. A per-key
//! [`KeyLock`] (flock; a lock file where flock is not supported, see [`lockfile`]) makes two
//! processes never compute one key at once.
//!
//! **Integrity:** every reuse [`Cache::probe`]s the entry: `record.json` present and each
//! output file's (size, mtime ns, ctime ns, inode) equal to the snapshot `Writer::finish`
//! took. A changed stamp makes [`Cache::check`] re-hash the outputs against the record: equal
//! bytes refresh the snapshot, different bytes (or a directory without `record.json`) make
//! the entry *damaged*; the executor then moves it aside with [`Cache::quarantine`] (never
//! deleting it) and computes the key again.
//!
//! **gc protocol:** a run holds [`Cache::gc_lock`] shared from before it looks at the cache
//! until its journal (which names every key it plans) is on disk; `gc` holds it exclusively
//! while it reads journals and removes entries. So gc never removes what a live run holds.
//! `cache` knows nothing about pathology, specs or DAGs: it stores directories under keys.
pub mod hash;
pub mod lockfile;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Version of `record.json`'s shape.
pub const RECORD_SCHEMA_VERSION: u32 = 1;

/// A cache rooted at a directory.
#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
}

/// One output file of an entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputFile {
    /// Path relative to `out/`.
    pub path: String,
    pub blake3: String,
    pub size: u64,
}

/// One input file of a stage, as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputRecord {
    pub role: String,
    pub path: String,
    pub blake3: String,
}

/// `record.json`: everything needed to trace an entry to its inputs, parameters, code and
/// environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub schema_version: u32,
    pub key: String,
    pub kind: String,
    pub kind_version: u32,
    /// Stage name (an entry shared by several arms records the first).
    pub stage: String,
    pub item: Option<String>,
    /// Resolved parameters.
    pub params: serde_json::Value,
    /// Needed stage name → their keys.
    pub upstream: BTreeMap<String, Vec<String>>,
    pub inputs: Vec<InputRecord>,
    pub seed: Option<u64>,
    pub outputs: Vec<OutputFile>,
    /// blake3 over the sorted (path, digest) list of outputs.
    pub output_digest: String,
    pub started: String,
    pub finished: String,
    pub duration_s: f64,
    pub tool: String,
    pub host: String,
    pub libraries: BTreeMap<String, String>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// An I/O error that names the path it happened on.
pub fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The stat snapshot of one output file: what `probe` compares on every reuse.
type FileStamp = (u64, i64, i64, u64);

fn file_stamp(m: &std::fs::Metadata) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    (
        m.size(),
        m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec()),
        m.ctime().saturating_mul(1_000_000_000).saturating_add(m.ctime_nsec()),
        m.ino(),
    )
}

/// Every file, symlink and directory under `out/` (the directory itself as `.`, directories
/// with a trailing `/`), relative path → stamp (lstat, links not followed). A directory's
/// stamp moves when a file is added, removed or renamed in it, so [`Cache::probe`] can
/// compare the snapshot with one `lstat` per path and no directory reads.
fn stamps(out: &Path) -> io::Result<BTreeMap<String, FileStamp>> {
    fn rec(base: &Path, dir: &Path, m: &mut BTreeMap<String, FileStamp>) -> io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let p = e.path();
            let md = std::fs::symlink_metadata(&p)?;
            let rel = p.strip_prefix(base).unwrap_or(&p).to_string_lossy().to_string();
            if md.is_dir() {
                m.insert(format!("{rel}/"), file_stamp(&md));
                rec(base, &p, m)?;
            } else {
                m.insert(rel, file_stamp(&md));
            }
        }
        Ok(())
    }
    let mut m = BTreeMap::new();
    m.insert(".".to_string(), file_stamp(&std::fs::symlink_metadata(out)?));
    rec(out, out, &mut m)?;
    Ok(m)
}

/// A small file's bytes: like `std::fs::read` without the `fstat` it makes for a size hint
/// (a no-op run reads one `stat.json` per entry).
fn read_small(p: &Path) -> io::Result<Vec<u8>> {
    read_all(File::open(p)?)
}

fn read_all(mut f: File) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => return Ok(buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The first path of a snapshot whose stamp differs now, if any.
fn first_change(out: &Path, snap: &BTreeMap<String, FileStamp>) -> Option<String> {
    for (rel, st) in snap {
        let p = if rel == "." { out.to_path_buf() } else { out.join(rel.trim_end_matches('/')) };
        match std::fs::symlink_metadata(&p) {
            Ok(md) if file_stamp(&md) == *st && md.is_dir() == (rel == "." || rel.ends_with('/')) => {}
            _ => return Some(if rel == "." { "out/".to_string() } else { format!("out/{rel}") }),
        }
    }
    None
}

/// An open `entries/` directory, to probe many entries with lookups relative to it: a no-op
/// run probes every entry, and the kernel walks `<k[0..2]>/<key>/…` instead of the whole
/// absolute path each time. It only ever answers "good": anything else is left to
/// [`Cache::probe`], which says why.
struct EntriesDir(File);

impl EntriesDir {
    /// `(stat, lstat)` of a path relative to the directory: the stamp and whether it is a
    /// directory, as `std::fs::metadata` / `symlink_metadata` would report them.
    fn stat(&self, rel: &str, follow: bool) -> Option<(FileStamp, bool)> {
        use std::os::fd::AsRawFd;
        let c = std::ffi::CString::new(rel).ok()?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
        // SAFETY: a valid directory descriptor, a NUL-terminated path and a buffer of the right
        // type; `st` is read only when the call succeeded (and so filled it).
        let st = unsafe {
            if libc::fstatat(self.0.as_raw_fd(), c.as_ptr(), st.as_mut_ptr(), flags) != 0 {
                return None;
            }
            st.assume_init()
        };
        let stamp = (
            st.st_size as u64,
            (st.st_mtime as i64).saturating_mul(1_000_000_000).saturating_add(st.st_mtime_nsec as i64),
            (st.st_ctime as i64).saturating_mul(1_000_000_000).saturating_add(st.st_ctime_nsec as i64),
            st.st_ino as u64,
        );
        Some((stamp, st.st_mode & libc::S_IFMT == libc::S_IFDIR))
    }

    /// A small file relative to the directory, read whole.
    fn read(&self, rel: &str) -> Option<Vec<u8>> {
        use std::io::Read;
        use std::os::fd::{AsRawFd, FromRawFd};
        let c = std::ffi::CString::new(rel).ok()?;
        // SAFETY: a valid directory descriptor and a NUL-terminated path; a non-negative result
        // is a descriptor this function owns (the `File` closes it).
        let f = unsafe {
            let fd = libc::openat(self.0.as_raw_fd(), c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return None;
            }
            File::from_raw_fd(fd)
        };
        let mut buf = vec![0u8; 4096];
        let mut len = 0;
        loop {
            match (&f).read(&mut buf[len..]) {
                // a short read of a regular file ends it (a `stat.json` cut short by anything
                // else would not parse, and the entry would take the general path)
                Ok(n) if len + n < buf.len() => {
                    buf.truncate(len + n);
                    return Some(buf);
                }
                Ok(n) => {
                    len += n;
                    buf.resize(2 * buf.len(), 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    /// Whether `key`'s entry passes [`Cache::probe`]: the same tests, relative to `entries/`.
    fn good(&self, key: &str) -> bool {
        // keys are hex digests; anything else takes the general path
        if key.len() < 2 || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return false;
        }
        let base = format!("{}/{key}/", &key[..2]);
        let Some(snap) = self
            .read(&format!("{base}stat.json"))
            .and_then(|b| serde_json::from_slice::<BTreeMap<String, FileStamp>>(&b).ok())
        else {
            return false;
        };
        if self.stat(&format!("{base}record.json"), true).is_none() {
            return false;
        }
        snap.iter().all(|(rel, st)| {
            let dir = rel == "." || rel.ends_with('/');
            let p = if rel == "." {
                format!("{base}out")
            } else if rel.starts_with('/') {
                return false;
            } else {
                format!("{base}out/{}", rel.trim_end_matches('/'))
            };
            self.stat(&p, false) == Some((*st, dir))
        })
    }
}

/// The (host, pid) that owns a temporary name made by [`Cache::private_tmp`]
/// (`.<label>.<host>.<pid>.<n>.tmp`), if the name has that shape.
pub fn tmp_owner(name: &str) -> Option<(String, u32)> {
    let parts: Vec<&str> = name.strip_prefix('.')?.strip_suffix(".tmp")?.split('.').collect();
    if parts.len() < 4 || !parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pid = parts[parts.len() - 2].parse().ok()?;
    Some((parts[1..parts.len() - 2].join("."), pid))
}

/// What a cheap look at an entry found.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// Complete, and every output file's stamp equals the snapshot.
    Good,
    /// No entry directory.
    Missing,
    /// Something differs (reason): [`Cache::check`] decides.
    Suspect(String),
}

/// What a full check of an entry found.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Good,
    Missing,
    /// The entry must not be reused: the first problem found.
    Damaged(String),
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    /// The directory of a published entry.
    pub fn entry_dir(&self, key: &str) -> PathBuf {
        self.root.join("entries").join(key.get(..2).unwrap_or("__")).join(key)
    }

    /// Where a key's outputs live once published.
    pub fn out_dir(&self, key: &str) -> PathBuf {
        self.entry_dir(key).join("out")
    }

    /// Whether a complete entry exists (its record is there; bytes are not checked).
    pub fn contains(&self, key: &str) -> bool {
        self.entry_dir(key).join("record.json").exists()
    }

    /// Reads an entry's record.
    pub fn record(&self, key: &str) -> io::Result<Record> {
        let p = self.entry_dir(key).join("record.json");
        let text = std::fs::read_to_string(&p).map_err(|e| at(&p, e))?;
        serde_json::from_str(&text)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", p.display())))
    }

    /// The stat-cache file.
    pub fn stat_cache_file(&self) -> PathBuf {
        self.root.join("statcache.tsv")
    }

    /// Where damaged entries are moved.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    /// Every published key.
    pub fn keys(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        let entries = self.root.join("entries");
        let Ok(rd) = std::fs::read_dir(&entries) else { return Ok(out) };
        for shard in rd {
            let shard = shard.map_err(|e| at(&entries, e))?;
            if !shard.file_type().map_err(|e| at(&shard.path(), e))?.is_dir() {
                continue;
            }
            for e in std::fs::read_dir(shard.path()).map_err(|e| at(&shard.path(), e))? {
                let e = e.map_err(|e| at(&shard.path(), e))?;
                if let Some(name) = e.file_name().to_str() {
                    out.push(name.to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Blocks until this process holds the key's lock.
    pub fn lock(&self, key: &str) -> io::Result<KeyLock> {
        let dir = self.root.join("locks");
        std::fs::create_dir_all(&dir).map_err(|e| at(&dir, e))?;
        lock_at(&dir.join(format!("{key}.lock")), true)
    }

    /// The cache-wide gc lock: runs hold it shared while they plan and write their journal,
    /// `gc` exclusively while it reads journals and removes entries. Blocks until granted.
    pub fn gc_lock(&self, exclusive: bool) -> io::Result<KeyLock> {
        std::fs::create_dir_all(&self.root).map_err(|e| at(&self.root, e))?;
        lock_at(&self.root.join("gc.lock"), exclusive)
    }

    /// A fresh private directory under `tmp/` named `.<label>.<host>.<pid>.<n>.tmp` (never
    /// reused: an existing name is skipped, not removed). See [`tmp_owner`].
    pub fn private_tmp(&self, label: &str) -> io::Result<PathBuf> {
        let dir = self.root.join("tmp");
        std::fs::create_dir_all(&dir).map_err(|e| at(&dir, e))?;
        let host: String = crate::util::hostname()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
            .collect();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp = dir.join(format!(".{label}.{host}.{}.{n}.tmp", std::process::id()));
            match std::fs::create_dir(&tmp) {
                Ok(()) => return Ok(tmp),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(at(&tmp, e)),
            }
        }
    }

    /// Starts building the entry of `key`.
    pub fn writer(&self, key: &str) -> io::Result<Writer> {
        let tmp = self.private_tmp(key)?;
        let w = Writer { cache: self.clone(), key: key.to_string(), tmp, done: false };
        for d in [w.out(), w.scratch()] {
            std::fs::create_dir(&d).map_err(|e| at(&d, e))?;
        }
        Ok(w)
    }

    /// A cheap look at an entry before reusing it: the record exists and no output file's
    /// stat stamp moved since the entry was written. Reads no output bytes.
    pub fn probe(&self, key: &str) -> Probe {
        let dir = self.entry_dir(key);
        let snap: Option<BTreeMap<String, FileStamp>> =
            read_small(&dir.join("stat.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let Some(snap) = snap else {
            return match std::fs::symlink_metadata(&dir) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Probe::Missing,
                Err(e) => Probe::Suspect(format!("{}: {e}", dir.display())),
                Ok(_) if !dir.join("record.json").exists() => Probe::Suspect("no record.json".into()),
                Ok(_) => Probe::Suspect("no stat snapshot".into()),
            };
        };
        if !dir.join("record.json").exists() {
            return Probe::Suspect("no record.json".into());
        }
        match first_change(&dir.join("out"), &snap) {
            None => Probe::Good,
            Some(p) if p.ends_with('/') => {
                Probe::Suspect(format!("{p} changed on disk (a file added, removed or renamed)"))
            }
            Some(p) => Probe::Suspect(format!("{p} changed on disk")),
        }
    }

    /// Every difference between an entry and its record (re-hashes every output).
    pub fn problems(&self, key: &str) -> Vec<Tampered> {
        let mut bad = Vec::new();
        let rec = match self.record(key) {
            Ok(r) => r,
            Err(e) => {
                bad.push(Tampered { key: key.into(), path: "record.json".into(), problem: e.to_string() });
                return bad;
            }
        };
        if rec.key != key {
            bad.push(Tampered {
                key: key.into(),
                path: "record.json".into(),
                problem: format!("record names key {}", rec.key),
            });
        }
        match Cache::digest_outputs(&self.out_dir(key)) {
            Ok((files, _)) => {
                let want: BTreeMap<_, _> = rec.outputs.iter().map(|f| (f.path.clone(), f)).collect();
                let have: BTreeMap<_, _> = files.iter().map(|f| (f.path.clone(), f)).collect();
                for (p, w) in &want {
                    match have.get(p) {
                        None => {
                            bad.push(Tampered { key: key.into(), path: format!("out/{p}"), problem: "missing".into() })
                        }
                        Some(h) if h.blake3 != w.blake3 => bad.push(Tampered {
                            key: key.into(),
                            path: format!("out/{p}"),
                            problem: format!("blake3 {} ≠ recorded {}", h.blake3, w.blake3),
                        }),
                        _ => {}
                    }
                }
                for p in have.keys() {
                    if !want.contains_key(p) {
                        bad.push(Tampered {
                            key: key.into(),
                            path: format!("out/{p}"),
                            problem: "not in the record".into(),
                        });
                    }
                }
            }
            Err(e) => bad.push(Tampered { key: key.into(), path: "out".into(), problem: e.to_string() }),
        }
        bad
    }

    /// [`probe`](Cache::probe), then on a suspect stamp a full re-hash: an entry whose bytes
    /// still match its record gets a fresh snapshot and is good.
    pub fn check(&self, key: &str) -> Check {
        match self.probe(key) {
            Probe::Good => Check::Good,
            Probe::Missing => Check::Missing,
            Probe::Suspect(why) => {
                if !self.entry_dir(key).join("record.json").exists() {
                    return Check::Damaged(why);
                }
                let bad = self.problems(key);
                if let Some(b) = bad.first() {
                    return Check::Damaged(format!("{}: {}", b.path, b.problem));
                }
                let _ = self.write_snapshot(&self.entry_dir(key));
                Check::Good
            }
        }
    }

    /// [`check`](Cache::check) of many keys, in order. Entries that pass the probe are
    /// recognised through one open handle on `entries/` (same tests, shorter lookups); the
    /// others get the full `check`. Many keys are split over a few scoped threads (the probe
    /// is system calls, which run in parallel).
    pub fn check_many(&self, keys: &[&str]) -> Vec<Check> {
        let dir = File::open(self.root.join("entries")).ok().map(EntriesDir);
        let one = |key: &&str| if dir.as_ref().is_some_and(|d| d.good(key)) { Check::Good } else { self.check(key) };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4).min(keys.len() / 256);
        if threads < 2 {
            return keys.iter().map(one).collect();
        }
        let chunk = keys.len().div_ceil(threads);
        std::thread::scope(|s| {
            let rest: Vec<_> =
                keys[chunk..].chunks(chunk).map(|c| (c, s.spawn(|| c.iter().map(one).collect::<Vec<_>>()))).collect();
            let mut out: Vec<Check> = keys[..chunk].iter().map(one).collect();
            for (c, h) in rest {
                // a probe does not panic; if one did, its part is checked again here
                out.extend(h.join().unwrap_or_else(|_| c.iter().map(one).collect()));
            }
            out
        })
    }

    /// Writes `stat.json` of an entry (or of a writer's temporary directory) atomically.
    fn write_snapshot(&self, dir: &Path) -> io::Result<()> {
        let snap = stamps(&dir.join("out")).map_err(|e| at(&dir.join("out"), e))?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".stat.json.{}.{n}.tmp", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec(&snap).map_err(io::Error::other)?).map_err(|e| at(&tmp, e))?;
        let dst = dir.join("stat.json");
        std::fs::rename(&tmp, &dst).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            at(&dst, e)
        })
    }

    /// Moves an entry directory aside to `quarantine/<key>.<time>` (never deletes it); returns
    /// where it went. Call with the key's lock held.
    pub fn quarantine(&self, key: &str) -> io::Result<PathBuf> {
        let q = self.quarantine_dir();
        std::fs::create_dir_all(&q).map_err(|e| at(&q, e))?;
        let stamp: String =
            crate::util::now_rfc3339().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '.').collect();
        let src = self.entry_dir(key);
        let mut n = 0u64;
        loop {
            let dst = q.join(if n == 0 { format!("{key}.{stamp}") } else { format!("{key}.{stamp}-{n}") });
            n += 1;
            if std::fs::symlink_metadata(&dst).is_ok() {
                continue;
            }
            return match std::fs::rename(&src, &dst) {
                Ok(()) => Ok(dst),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists || e.raw_os_error() == Some(libc::ENOTEMPTY) => {
                    continue
                }
                Err(e) => {
                    Err(io::Error::new(e.kind(), format!("cannot move {} to {}: {e}", src.display(), dst.display())))
                }
            };
        }
    }

    /// Hashes every output of a directory: sorted list and combined digest.
    pub fn digest_outputs(out: &Path) -> io::Result<(Vec<OutputFile>, String)> {
        let mut files = Vec::new();
        walk(out, out, &mut files)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut h = blake3::Hasher::new();
        for f in &files {
            h.update(f.path.as_bytes());
            h.update(&[0]);
            h.update(f.blake3.as_bytes());
            h.update(&[0]);
        }
        Ok((files, h.finalize().to_hex().to_string()))
    }
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<OutputFile>) -> io::Result<()> {
    for e in std::fs::read_dir(dir).map_err(|e| at(dir, e))? {
        let e = e.map_err(|e| at(dir, e))?;
        let p = e.path();
        let ft = e.file_type().map_err(|e| at(&p, e))?;
        let rel = p.strip_prefix(base).unwrap_or(&p).to_string_lossy().to_string();
        if ft.is_dir() {
            walk(base, &p, out)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&p).map_err(|e| at(&p, e))?;
            let t = target.to_string_lossy();
            out.push(OutputFile {
                path: rel,
                blake3: blake3::hash(format!("symlink:{t}").as_bytes()).to_hex().to_string(),
                size: 0,
            });
        } else {
            let size = e.metadata().map_err(|e| at(&p, e))?.len();
            out.push(OutputFile { path: rel, blake3: hash::hash_file(&p).map_err(|e| at(&p, e))?, size });
        }
    }
    Ok(())
}

/// Holds a lock until dropped: a flock, or a lock file where flock is not supported.
#[derive(Debug)]
pub struct KeyLock {
    _held: Held,
}

#[derive(Debug)]
enum Held {
    Flock(#[allow(dead_code)] File),
    LockFile(#[allow(dead_code)] lockfile::LockFile),
}

static SAID_NO_FLOCK: std::sync::Once = std::sync::Once::new();

/// Blocks until this process holds the lock `p`: flock (shared or exclusive) on the file, or
/// its lock file ([`lockfile`]) with `SPATIA_LOCKS=file` or where flock is not supported.
pub fn lock_at(p: &Path, exclusive: bool) -> io::Result<KeyLock> {
    if lockfile::forced() {
        return Ok(KeyLock { _held: Held::LockFile(lockfile::acquire(p)?) });
    }
    let f = File::options().create(true).truncate(false).write(true).open(p).map_err(|e| at(p, e))?;
    match if exclusive { f.lock() } else { f.lock_shared() } {
        Ok(()) => Ok(KeyLock { _held: Held::Flock(f) }),
        Err(e) if lockfile::unsupported(&e) => {
            SAID_NO_FLOCK.call_once(|| {
                eprintln!(
                    "spatia: warning: flock is not supported for {} ({e}); using lock files (see docs/cache.md)",
                    p.display()
                )
            });
            Ok(KeyLock { _held: Held::LockFile(lockfile::acquire(p)?) })
        }
        Err(e) => Err(at(p, e)),
    }
}

/// Builds one entry in a private temporary directory; [`Writer::finish`] publishes it.
pub struct Writer {
    cache: Cache,
    key: String,
    tmp: PathBuf,
    done: bool,
}

fn fsync_tree(dir: &Path) -> io::Result<()> {
    for e in std::fs::read_dir(dir).map_err(|e| at(dir, e))? {
        let e = e.map_err(|e| at(dir, e))?;
        let ft = e.file_type().map_err(|err| at(&e.path(), err))?;
        if ft.is_dir() {
            fsync_tree(&e.path())?;
        } else if ft.is_file() {
            File::open(e.path()).and_then(|f| f.sync_all()).map_err(|err| at(&e.path(), err))?;
        }
    }
    File::open(dir).and_then(|f| f.sync_all()).map_err(|e| at(dir, e))
}

/// How [`Writer::finish`] published an entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Published {
    /// Ours is now the entry.
    New,
    /// An equal entry was already there (published meanwhile); ours was discarded.
    Existing,
    /// Something was in the way (a directory without record, or with different outputs when
    /// replacing was asked for): moved to this quarantine path, ours installed.
    Replaced(PathBuf),
}

impl Writer {
    /// The directory the stage writes its outputs into.
    pub fn out(&self) -> PathBuf {
        self.tmp.join("out")
    }
    /// Scratch space, discarded on publish.
    pub fn scratch(&self) -> PathBuf {
        self.tmp.join("scratch")
    }
    /// The stage's log file (kept in the entry).
    pub fn log_path(&self) -> PathBuf {
        self.tmp.join("log.txt")
    }

    /// Hashes the outputs into `record`, writes `record.json` and the stat snapshot, fsyncs
    /// and publishes with an atomic rename. Call with the key's lock held. If an entry with
    /// a record is already there (another process published it) ours is discarded — unless
    /// `replace_different` and its outputs differ from ours, then it is quarantined and ours
    /// installed; a directory without record is always quarantined. Errors name the paths.
    pub fn finish(mut self, record: &mut Record, replace_different: bool) -> io::Result<(PathBuf, Published)> {
        let _ = std::fs::remove_dir_all(self.scratch());
        let (files, digest) =
            Cache::digest_outputs(&self.out()).map_err(crate::util::io_at("cannot hash the outputs in", &self.tmp))?;
        record.outputs = files;
        record.output_digest = digest;
        let rp = self.tmp.join("record.json");
        {
            let mut f = File::create(&rp).map_err(|e| at(&rp, e))?;
            f.write_all(serde_json::to_string_pretty(record).map_err(io::Error::other)?.as_bytes())
                .map_err(|e| at(&rp, e))?;
            f.write_all(b"\n").map_err(|e| at(&rp, e))?;
        }
        self.cache.write_snapshot(&self.tmp)?;
        fsync_tree(&self.tmp)?;
        let dst = self.cache.entry_dir(&self.key);
        let parent = dst.parent().unwrap_or(&self.cache.root).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|e| at(&parent, e))?;
        let mut moved = None;
        for _ in 0..4 {
            match std::fs::rename(&self.tmp, &dst) {
                Ok(()) => {
                    File::open(&parent).and_then(|f| f.sync_all()).map_err(|e| at(&parent, e))?;
                    self.done = true;
                    return Ok((dst, moved.map(Published::Replaced).unwrap_or(Published::New)));
                }
                Err(e) if std::fs::symlink_metadata(&dst).is_ok() => {
                    let theirs = self.cache.record(&self.key).ok();
                    match theirs {
                        Some(r) if !replace_different || r.output_digest == record.output_digest => {
                            let _ = std::fs::remove_dir_all(&self.tmp);
                            self.done = true;
                            return Ok((dst, Published::Existing));
                        }
                        _ => {
                            // debris without record, or different outputs we were asked to replace
                            let _ = e;
                            moved = Some(self.cache.quarantine(&self.key)?);
                        }
                    }
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot rename {} to {}: {e}", self.tmp.display(), dst.display()),
                    ))
                }
            }
        }
        Err(io::Error::other(format!("cannot publish {}: something keeps appearing in the way", dst.display())))
    }

    /// Keeps a failed attempt under `failed/<key>/` for inspection; returns its log path.
    pub fn fail(mut self) -> PathBuf {
        let dst = self.cache.root.join("failed").join(&self.key);
        let _ = std::fs::remove_dir_all(&dst);
        let _ = std::fs::create_dir_all(self.cache.root.join("failed"));
        let _ = std::fs::remove_dir_all(self.scratch());
        if std::fs::rename(&self.tmp, &dst).is_ok() {
            self.done = true;
            dst.join("log.txt")
        } else {
            self.log_path()
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// One problem found by [`verify`].
#[derive(Debug, Clone, Serialize)]
pub struct Tampered {
    pub key: String,
    pub path: String,
    pub problem: String,
}

/// Re-hashes every entry against its record.
pub fn verify(cache: &Cache) -> io::Result<(usize, Vec<Tampered>)> {
    use rayon::prelude::*;
    let keys = cache.keys()?;
    let bad: Vec<Tampered> = keys.par_iter().flat_map_iter(|key| cache.problems(key)).collect();
    Ok((keys.len(), bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_names_say_their_owner() {
        let c = Cache::new(tempfile::tempdir().unwrap().keep());
        let t = c.private_tmp("abc").unwrap();
        let (host, pid) = tmp_owner(&t.file_name().unwrap().to_string_lossy()).unwrap();
        assert_eq!(pid, std::process::id());
        assert!(crate::util::hostname().starts_with(host.split('_').next().unwrap_or("")));
        assert_eq!(tmp_owner(".gc-k.my.host.example.42.7.tmp"), Some(("my.host.example".into(), 42)));
        assert_eq!(tmp_owner(".k.42.7.tmp"), None);
        assert_eq!(tmp_owner("statcache.tsv"), None);
        let _ = std::fs::remove_dir_all(&c.root);
    }

    /// An entry made in place (no temporary directory, no fsync): `out/f.txt` holding `body`.
    fn quick_entry(c: &Cache, key: &str, body: &str) {
        let dir = c.entry_dir(key);
        std::fs::create_dir_all(dir.join("out")).unwrap();
        std::fs::write(dir.join("out/f.txt"), body).unwrap();
        let (outputs, output_digest) = Cache::digest_outputs(&dir.join("out")).unwrap();
        let rec = serde_json::json!({
            "schema_version": 1, "key": key, "kind": "k", "kind_version": 1, "stage": "s", "item": null,
            "params": {}, "upstream": {}, "inputs": [], "seed": null, "outputs": outputs,
            "output_digest": output_digest, "started": "", "finished": "", "duration_s": 0.0, "tool": "",
            "host": "", "libraries": {}
        });
        std::fs::write(dir.join("record.json"), rec.to_string()).unwrap();
        c.write_snapshot(&dir).unwrap();
    }

    #[test]
    fn check_many_agrees_with_check_on_every_kind_of_entry() {
        let c = Cache::new(tempfile::tempdir().unwrap().keep());
        // enough keys for the scoped threads; one in six of each kind
        let keys: Vec<String> = (0..600).map(|i| format!("{:064x}", i * 7919 + 1)).collect();
        for (i, key) in keys.iter().enumerate() {
            if i % 6 != 5 {
                quick_entry(&c, key, "a");
            }
        }
        // past the file system's timestamp granularity, so the changes below move the stamps
        std::thread::sleep(std::time::Duration::from_millis(25));
        let mut want = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let out = c.out_dir(key);
            let w = match i % 6 {
                0 => Check::Good,
                1 => {
                    // same bytes, new inode
                    std::fs::write(out.join("f.new"), "a").unwrap();
                    std::fs::rename(out.join("f.new"), out.join("f.txt")).unwrap();
                    Check::Good
                }
                2 => {
                    std::fs::write(out.join("f.txt"), "b").unwrap();
                    Check::Damaged("x".into())
                }
                3 => {
                    std::fs::write(out.join("g.txt"), "a").unwrap();
                    Check::Damaged("x".into())
                }
                4 => {
                    std::fs::remove_file(c.entry_dir(key).join("record.json")).unwrap();
                    Check::Damaged("no record.json".into())
                }
                _ => Check::Missing,
            };
            want.push(w);
        }
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        for round in 0..2 {
            let got = c.check_many(&refs);
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                match (g, w) {
                    (Check::Damaged(why), Check::Damaged(w)) if w == "x" => {
                        assert!(why.contains("out/"), "round {round}, key {i}: {why}")
                    }
                    _ => assert_eq!(g, w, "round {round}, key {i}"),
                }
            }
        }
        // a rewrite with the same bytes refreshed the snapshot: the probe alone passes now
        assert_eq!(c.probe(&keys[1]), Probe::Good);
        let _ = std::fs::remove_dir_all(&c.root);
    }

    #[test]
    fn probe_sees_a_rewrite_an_added_file_and_a_missing_record() {
        let c = Cache::new(tempfile::tempdir().unwrap().keep());
        let key = "ab".repeat(32);
        let w = c.writer(&key).unwrap();
        std::fs::write(w.out().join("f.txt"), "one").unwrap();
        let mut rec: Record = serde_json::from_value(serde_json::json!({
            "schema_version": 1, "key": key, "kind": "k", "kind_version": 1, "stage": "s", "item": null,
            "params": {}, "upstream": {}, "inputs": [], "seed": null, "outputs": [], "output_digest": "",
            "started": "", "finished": "", "duration_s": 0.0, "tool": "", "host": "", "libraries": {}
        }))
        .unwrap();
        assert_eq!(w.finish(&mut rec, false).unwrap().1, Published::New);
        assert_eq!(c.probe(&key), Probe::Good);
        assert_eq!(c.check(&key), Check::Good);
        let f = c.out_dir(&key).join("f.txt");
        std::fs::write(&f, "one").unwrap(); // same bytes: suspect, then good again
        assert!(matches!(c.probe(&key), Probe::Suspect(_)));
        assert_eq!(c.check(&key), Check::Good);
        assert_eq!(c.probe(&key), Probe::Good);
        std::fs::write(&f, "two").unwrap();
        assert!(matches!(c.check(&key), Check::Damaged(w) if w.contains("out/f.txt")));
        std::fs::write(&f, "one").unwrap();
        std::fs::write(c.out_dir(&key).join("new.txt"), "x").unwrap();
        assert!(matches!(c.probe(&key), Probe::Suspect(w) if w.contains("out/")));
        assert!(matches!(c.check(&key), Check::Damaged(w) if w.contains("out/new.txt")));
        std::fs::remove_file(c.out_dir(&key).join("new.txt")).unwrap();
        std::fs::remove_file(c.entry_dir(&key).join("record.json")).unwrap();
        assert_eq!(c.check(&key), Check::Damaged("no record.json".into()));
        let q = c.quarantine(&key).unwrap();
        assert!(q.starts_with(c.quarantine_dir()) && q.join("out/f.txt").exists());
        assert_eq!(c.probe(&key), Probe::Missing);
        let _ = std::fs::remove_dir_all(&c.root);
    }
}
