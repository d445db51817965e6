//! Content digests of files: blake3, memory-mapped and multi-threaded for large files, with a
//! stat cache (path, size, mtime ns, inode) so unchanged files are never read twice.
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Files at least this large are hashed memory-mapped on all cores.
pub const MMAP_THRESHOLD: u64 = 4 << 20;

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

#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ino: u64,
}

fn stamp(m: &std::fs::Metadata) -> Stamp {
    Stamp { size: m.size(), mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128, ino: m.ino() }
}

/// The stat cache: remembers each file's digest under its (size, mtime, inode) stamp.
pub struct StatCache {
    file: Option<PathBuf>,
    map: HashMap<PathBuf, (Stamp, String)>,
    dirty: bool,
    /// Number of files actually read since load (for tests and `--json` logs).
    pub reads: usize,
}

impl StatCache {
    /// An in-memory cache that is never saved.
    pub fn ephemeral() -> StatCache {
        StatCache { file: None, map: HashMap::new(), dirty: false, reads: 0 }
    }

    /// Loads the cache from `file` (a missing or damaged file gives an empty cache).
    pub fn load(file: &Path) -> StatCache {
        let mut map = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(file) {
            for line in text.lines() {
                let mut it = line.split('\t');
                let (Some(size), Some(mt), Some(ino), Some(d), Some(p)) = (it.next(), it.next(), it.next(), it.next(), it.next()) else {
                    continue;
                };
                let (Ok(size), Ok(mtime_ns), Ok(ino)) = (size.parse(), mt.parse(), ino.parse()) else { continue };
                if d.len() != 64 {
                    continue;
                }
                map.insert(PathBuf::from(p), (Stamp { size, mtime_ns, ino }, d.to_string()));
            }
        }
        StatCache { file: Some(file.to_path_buf()), map, dirty: false, reads: 0 }
    }

    /// The file the cache is kept in (None for an ephemeral cache); other memos of facts
    /// derived from file contents live beside it.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The digest of a file, read only when its stamp changed.
    pub fn digest(&mut self, path: &Path) -> io::Result<String> {
        let abs = std::path::absolute(path)?;
        let meta = std::fs::metadata(&abs)?;
        let st = stamp(&meta);
        if let Some((s, d)) = self.map.get(&abs) {
            if *s == st {
                return Ok(d.clone());
            }
        }
        let d = hash_file(&abs)?;
        self.reads += 1;
        // a file modified while it was read gets no entry
        if std::fs::metadata(&abs).map(|m| stamp(&m)).ok() == Some(st) {
            self.map.insert(abs, (st, d.clone()));
            self.dirty = true;
        }
        Ok(d)
    }

    /// Writes the cache back atomically if anything changed.
    pub fn save(&mut self) -> io::Result<()> {
        let Some(file) = &self.file else { return Ok(()) };
        if !self.dirty {
            return Ok(());
        }
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(crate::util::io_at("cannot create", dir))?;
        }
        let tmp = file.with_extension(format!("{}.tmp", std::process::id()));
        {
            let mut w = io::BufWriter::new(std::fs::File::create(&tmp).map_err(crate::util::io_at("cannot write the stat cache", &tmp))?);
            let mut entries: Vec<_> = self.map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (p, (s, d)) in entries {
                if let Some(ps) = p.to_str() {
                    if !ps.contains('\n') && !ps.contains('\t') {
                        writeln!(w, "{}\t{}\t{}\t{}\t{}", s.size, s.mtime_ns, s.ino, d, ps).map_err(crate::util::io_at("cannot write the stat cache", &tmp))?;
                    }
                }
            }
            w.flush().map_err(crate::util::io_at("cannot write the stat cache", &tmp))?;
        }
        std::fs::rename(&tmp, file).map_err(crate::util::io_at("cannot replace the stat cache", file))?;
        self.dirty = false;
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
    fn large_files_hash_like_small() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("big.bin");
        let data: Vec<u8> = (0..(MMAP_THRESHOLD as usize + 12345)).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&f, &data).unwrap();
        assert_eq!(hash_file(&f).unwrap(), blake3::hash(&data).to_hex().to_string());
    }
}
