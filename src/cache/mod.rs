//! The content-addressed cache: one directory per stage key.
//!
//! Layout under the cache root: `entries/<k[0..2]>/<key>/` holding `record.json`, `log.txt`
//! and `out/` (the stage's outputs); `tmp/` for entries being built; `locks/<key>.lock`;
//! `failed/<key>/` keeps the last failed attempt of a key with its log; `statcache.tsv`.
//!
//! **Invariant:** an entry directory is visible only complete. [`Writer`] builds it in a
//! private temporary directory (`tmp/.<key>.<pid>.<n>.tmp`), fsyncs every file and directory,
//! and publishes it with one atomic rename; `Drop` removes an unfinished one. A per-key
//! [`KeyLock`] (flock) makes two processes never compute one key at once.
//! `cache` knows nothing about pathology, specs or DAGs: it stores directories under keys.
pub mod hash;

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

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    /// The directory of a published entry.
    pub fn entry_dir(&self, key: &str) -> PathBuf {
        self.root.join("entries").join(&key[..2.min(key.len())]).join(key)
    }

    /// Where a key's outputs live once published.
    pub fn out_dir(&self, key: &str) -> PathBuf {
        self.entry_dir(key).join("out")
    }

    /// Whether a complete entry exists.
    pub fn contains(&self, key: &str) -> bool {
        self.entry_dir(key).join("record.json").exists()
    }

    /// Reads an entry's record.
    pub fn record(&self, key: &str) -> io::Result<Record> {
        let p = self.entry_dir(key).join("record.json");
        let text = std::fs::read_to_string(&p)?;
        serde_json::from_str(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", p.display())))
    }

    /// The stat-cache file.
    pub fn stat_cache_file(&self) -> PathBuf {
        self.root.join("statcache.tsv")
    }

    /// Every published key.
    pub fn keys(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        let entries = self.root.join("entries");
        let Ok(rd) = std::fs::read_dir(&entries) else { return Ok(out) };
        for shard in rd {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for e in std::fs::read_dir(shard.path())? {
                let e = e?;
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
        std::fs::create_dir_all(&dir).map_err(crate::util::io_at("cannot create", &dir))?;
        let lock = dir.join(format!("{key}.lock"));
        let f = File::options().create(true).truncate(false).write(true).open(&lock).map_err(crate::util::io_at("cannot open the lock", &lock))?;
        f.lock()?;
        Ok(KeyLock { _file: f })
    }

    /// Starts building the entry of `key`.
    pub fn writer(&self, key: &str) -> io::Result<Writer> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = self.root.join("tmp").join(format!(".{key}.{}.{n}.tmp", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(crate::util::io_at("cannot remove", &tmp))?;
        }
        std::fs::create_dir_all(tmp.join("out")).map_err(crate::util::io_at("cannot create", &tmp))?;
        std::fs::create_dir_all(tmp.join("scratch")).map_err(crate::util::io_at("cannot create", &tmp))?;
        Ok(Writer { cache: self.clone(), key: key.to_string(), tmp, done: false })
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
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        let ft = e.file_type()?;
        let rel = p.strip_prefix(base).unwrap_or(&p).to_string_lossy().to_string();
        if ft.is_dir() {
            walk(base, &p, out)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&p)?;
            let t = target.to_string_lossy();
            out.push(OutputFile { path: rel, blake3: blake3::hash(format!("symlink:{t}").as_bytes()).to_hex().to_string(), size: 0 });
        } else {
            let size = e.metadata()?.len();
            out.push(OutputFile { path: rel, blake3: hash::hash_file(&p)?, size });
        }
    }
    Ok(())
}

/// Holds a key's lock until dropped.
pub struct KeyLock {
    _file: File,
}

/// Builds one entry in a private temporary directory; [`Writer::finish`] publishes it.
pub struct Writer {
    cache: Cache,
    key: String,
    tmp: PathBuf,
    done: bool,
}

fn fsync_tree(dir: &Path) -> io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let ft = e.file_type()?;
        if ft.is_dir() {
            fsync_tree(&e.path())?;
        } else if ft.is_file() {
            File::open(e.path())?.sync_all()?;
        }
    }
    File::open(dir)?.sync_all()
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

    /// Hashes the outputs into `record`, writes `record.json`, fsyncs and publishes with an
    /// atomic rename. Returns the published directory. If another process published the key
    /// meanwhile, ours is discarded and theirs is kept.
    pub fn finish(mut self, record: &mut Record) -> io::Result<PathBuf> {
        let _ = std::fs::remove_dir_all(self.scratch());
        let (files, digest) = Cache::digest_outputs(&self.out()).map_err(crate::util::io_at("cannot hash the outputs in", &self.tmp))?;
        record.outputs = files;
        record.output_digest = digest;
        let rec_file = self.tmp.join("record.json");
        {
            let mut f = File::create(&rec_file).map_err(crate::util::io_at("cannot write", &rec_file))?;
            f.write_all(serde_json::to_string_pretty(record).map_err(io::Error::other)?.as_bytes()).map_err(crate::util::io_at("cannot write", &rec_file))?;
            f.write_all(b"\n").map_err(crate::util::io_at("cannot write", &rec_file))?;
        }
        fsync_tree(&self.tmp).map_err(crate::util::io_at("cannot sync", &self.tmp))?;
        let dst = self.cache.entry_dir(&self.key);
        let parent = dst.parent().expect("entry has a parent");
        std::fs::create_dir_all(parent).map_err(crate::util::io_at("cannot create", parent))?;
        match std::fs::rename(&self.tmp, &dst) {
            Ok(()) => {}
            Err(_) if self.cache.contains(&self.key) => {
                let _ = std::fs::remove_dir_all(&self.tmp);
            }
            Err(e) => return Err(crate::util::io_at("cannot publish the entry", &dst)(e)),
        }
        File::open(parent).and_then(|f| f.sync_all()).map_err(crate::util::io_at("cannot sync", parent))?;
        self.done = true;
        Ok(dst)
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
    let bad: Vec<Tampered> = keys
        .par_iter()
        .flat_map_iter(|key| {
            let mut bad = Vec::new();
            let rec = match cache.record(key) {
                Ok(r) => r,
                Err(e) => {
                    bad.push(Tampered { key: key.clone(), path: "record.json".into(), problem: e.to_string() });
                    return bad;
                }
            };
            if &rec.key != key {
                bad.push(Tampered { key: key.clone(), path: "record.json".into(), problem: format!("record names key {}", rec.key) });
            }
            let out = cache.out_dir(key);
            match Cache::digest_outputs(&out) {
                Ok((files, _)) => {
                    let want: BTreeMap<_, _> = rec.outputs.iter().map(|f| (f.path.clone(), f)).collect();
                    let have: BTreeMap<_, _> = files.iter().map(|f| (f.path.clone(), f)).collect();
                    for (p, w) in &want {
                        match have.get(p) {
                            None => bad.push(Tampered { key: key.clone(), path: format!("out/{p}"), problem: "missing".into() }),
                            Some(h) if h.blake3 != w.blake3 => bad.push(Tampered {
                                key: key.clone(),
                                path: format!("out/{p}"),
                                problem: format!("blake3 {} ≠ recorded {}", h.blake3, w.blake3),
                            }),
                            _ => {}
                        }
                    }
                    for p in have.keys() {
                        if !want.contains_key(p) {
                            bad.push(Tampered { key: key.clone(), path: format!("out/{p}"), problem: "not in the record".into() });
                        }
                    }
                }
                Err(e) => bad.push(Tampered { key: key.clone(), path: "out".into(), problem: e.to_string() }),
            }
            bad
        })
        .collect();
    Ok((keys.len(), bad))
}
