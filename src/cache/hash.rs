//! Content digests of files: blake3, memory-mapped and multi-threaded for large files, with a
//! stat cache so unchanged input files are never read twice.
//!
//! **The stat-cache rule.** `statcache.tsv` maps a file's absolute path to the digest read
//! last time together with its stamp: size, mtime (ns), ctime (ns) and inode. A file is
//! reused without reading it only when all four are unchanged; anything else (an edit in
//! place that keeps the size and restores the mtime still moves the ctime; a file replaced by
//! another moves the inode) makes it read again. A file whose stamp changed while it was read
//! gets no entry. The rule trusts the file system's timestamps: on one with coarse
//! timestamps, or after a tool that forges ctime, run with `--rehash`, which ignores the cache
//! and reads every input (and refreshes the cache). Several processes may save the cache at
//! once: [`StatCache::save`] merges its new stamps into the file under a lock and replaces
//! it atomically, so no process loses another's entries.
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Files at least this large are hashed memory-mapped on all cores.
pub const MMAP_THRESHOLD: u64 = 4 << 20;

/// First line of `statcache.tsv`; files without it (older layouts) are ignored and rebuilt.
const HEADER: &str = "# spatia statcache v2: size mtime_ns ctime_ns inode blake3 path";

static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// blake3 of a file's bytes, hex.
pub fn hash_file(path: &Path) -> io::Result<String> {
    let len = std::fs::metadata(path)?.len();
    let mut h = blake3::Hasher::new();
    if len >= MMAP_THRESHOLD {
        h.update_mmap_rayon(path)?;
    } else {
        let mut f = std::fs::File::open(path)?;
        let mut buf = Vec::with_capacity(len as usize + 1);
        f.read_to_end(&mut buf)?;
        h.update(&buf);
    }
    Ok(h.finalize().to_hex().to_string())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

fn stamp(m: &std::fs::Metadata) -> Stamp {
    Stamp {
        size: m.size(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
        ino: m.ino(),
    }
}

fn with_path(p: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

/// The stat cache: remembers each file's digest under its (size, mtime, ctime, inode) stamp.
pub struct StatCache {
    file: Option<PathBuf>,
    map: HashMap<PathBuf, (Stamp, String)>,
    /// Paths hashed by this process (merged into the file on save).
    fresh: HashSet<PathBuf>,
    /// `false` with `--rehash`: every file is read, whatever its stamp.
    trust: bool,
    /// Number of files actually read since load (for tests and `--json` logs).
    pub reads: usize,
}

fn parse(text: &str) -> HashMap<PathBuf, (Stamp, String)> {
    let mut map = HashMap::new();
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return map;
    }
    for line in lines {
        let mut it = line.splitn(6, '\t');
        let (Some(size), Some(mt), Some(ct), Some(ino), Some(d), Some(p)) =
            (it.next(), it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let (Ok(size), Ok(mtime_ns), Ok(ctime_ns), Ok(ino)) = (size.parse(), mt.parse(), ct.parse(), ino.parse())
        else {
            continue;
        };
        if d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        map.insert(PathBuf::from(p), (Stamp { size, mtime_ns, ctime_ns, ino }, d.to_string()));
    }
    map
}

impl StatCache {
    /// An in-memory cache that is never saved.
    pub fn ephemeral() -> StatCache {
        StatCache { file: None, map: HashMap::new(), fresh: HashSet::new(), trust: true, reads: 0 }
    }

    /// Loads the cache from `file` (a missing, damaged or older-layout file gives an empty
    /// cache).
    pub fn load(file: &Path) -> StatCache {
        let map = std::fs::read_to_string(file).map(|t| parse(&t)).unwrap_or_default();
        StatCache { file: Some(file.to_path_buf()), map, fresh: HashSet::new(), trust: true, reads: 0 }
    }

    /// The file the cache is kept in (None for an ephemeral cache); other memos of facts
    /// derived from file contents live beside it.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The digest of a file, read only when its stamp changed.
    /// Ignore the remembered digests: read every file again (`--rehash`). The new digests are
    /// still saved.
    pub fn rehash(mut self) -> StatCache {
        self.trust = false;
        self
    }

    /// The digest of a file, read only when its stamp changed. Errors name the file.
    pub fn digest(&mut self, path: &Path) -> io::Result<String> {
        let abs = std::path::absolute(path).map_err(|e| with_path(path, e))?;
        let meta = std::fs::metadata(&abs).map_err(|e| with_path(&abs, e))?;
        let st = stamp(&meta);
        if self.trust {
            if let Some((s, d)) = self.map.get(&abs) {
                if *s == st {
                    return Ok(d.clone());
                }
            }
        }
        let d = hash_file(&abs).map_err(|e| with_path(&abs, e))?;
        self.reads += 1;
        // a file modified while it was read gets no entry
        if std::fs::metadata(&abs).map(|m| stamp(&m)).ok() == Some(st) {
            self.map.insert(abs.clone(), (st, d.clone()));
            self.fresh.insert(abs);
        }
        Ok(d)
    }

    /// Merges the stamps read by this process into the file and replaces it atomically, under
    /// an exclusive lock on `<file>.lock` (other processes may be saving too).
    pub fn save(&mut self) -> io::Result<()> {
        let Some(file) = &self.file else { return Ok(()) };
        if self.fresh.is_empty() {
            return Ok(());
        }
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| with_path(dir, e))?;
        }
        let lock_path = file.with_extension("lock");
        let _lock = super::lock_at(&lock_path, true)?;
        let mut merged = std::fs::read_to_string(file).map(|t| parse(&t)).unwrap_or_default();
        for p in &self.fresh {
            if let Some(v) = self.map.get(p) {
                merged.insert(p.clone(), v.clone());
            }
        }
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = file.with_extension(format!("{}.{n}.tmp", std::process::id()));
        let written = (|| {
            let mut w = io::BufWriter::new(std::fs::File::create(&tmp)?);
            writeln!(w, "{HEADER}")?;
            let mut entries: Vec<_> = merged.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (p, (s, d)) in entries {
                if let Some(ps) = p.to_str() {
                    if !ps.contains('\n') && !ps.contains('\r') {
                        writeln!(w, "{}\t{}\t{}\t{}\t{}\t{}", s.size, s.mtime_ns, s.ctime_ns, s.ino, d, ps)?;
                    }
                }
            }
            w.flush()?;
            std::fs::rename(&tmp, file)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(with_path(file, e));
        }
        self.map = merged;
        self.fresh.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_file_is_not_read_again() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.bin");
        std::fs::write(&f, b"hello").unwrap();
        let sc = d.path().join("stat.tsv");
        let mut c = StatCache::load(&sc);
        let h1 = c.digest(&f).unwrap();
        assert_eq!(h1, blake3::hash(b"hello").to_hex().to_string());
        c.save().unwrap();
        let mut c2 = StatCache::load(&sc);
        assert_eq!(c2.digest(&f).unwrap(), h1);
        assert_eq!(c2.reads, 0);
        std::thread::sleep(std::time::Duration::from_millis(5));
        std::fs::write(&f, b"hellp").unwrap();
        assert_ne!(c2.digest(&f).unwrap(), h1);
        assert_eq!(c2.reads, 1);
    }

    #[test]
    fn same_size_same_mtime_edit_is_read_again() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.bin");
        std::fs::write(&f, b"hello").unwrap();
        let sc = d.path().join("stat.tsv");
        let mut c = StatCache::load(&sc);
        let h1 = c.digest(&f).unwrap();
        c.save().unwrap();
        let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        std::fs::write(&f, b"jello").unwrap();
        std::fs::File::options().write(true).open(&f).unwrap().set_modified(mtime).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().modified().unwrap(), mtime);
        let mut c2 = StatCache::load(&sc);
        assert_ne!(c2.digest(&f).unwrap(), h1, "ctime must invalidate the stamp");
        assert_eq!(c2.reads, 1);
    }

    #[test]
    fn rehash_reads_every_file_and_saves_merge() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        let sc = d.path().join("stat.tsv");
        // two processes save different files: both survive
        let mut c1 = StatCache::load(&sc);
        let mut c2 = StatCache::load(&sc);
        c1.digest(&a).unwrap();
        c2.digest(&b).unwrap();
        c1.save().unwrap();
        c2.save().unwrap();
        let mut c3 = StatCache::load(&sc);
        c3.digest(&a).unwrap();
        c3.digest(&b).unwrap();
        assert_eq!(c3.reads, 0);
        let mut c4 = StatCache::load(&sc).rehash();
        c4.digest(&a).unwrap();
        assert_eq!(c4.reads, 1);
    }

    #[test]
    fn large_files_hash_like_small() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("big.bin");
        let data: Vec<u8> = (0..(MMAP_THRESHOLD as usize + 12345)).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&f, &data).unwrap();
        assert_eq!(hash_file(&f).unwrap(), blake3::hash(&data).to_hex().to_string());
    }
}
