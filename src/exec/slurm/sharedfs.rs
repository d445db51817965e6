//! Is the cache fit to be shared by a Slurm head and its compute nodes? Spatia's cache needs,
//! on the file system holding it:
//!
//! - **atomic rename within one file system**: an entry is built in `tmp/` and renamed into
//!   `entries/`, an outcome file written beside its final name and renamed over it;
//! - **`flock` that other processes see**: the per-key lock (`locks/<key>.lock`) is an
//!   exclusive `flock`, so that two jobs (or a job and a local run) never compute one key.
//!   NFS mounted with `local_lock=flock` or `local_lock=all` takes locks on one client only;
//!   NFS without a lock manager answers `ENOLCK`.
//!
//! [`check`] tries both in the cache (a rename over an existing file; a lock from one open
//! file, then a non-blocking attempt from a second one, which must be refused) and refuses the
//! cache, saying what failed and what would do, when either does not behave. It runs on the
//! head before anything is submitted and on each compute node before it computes. A cache
//! the compute nodes cannot see at all shows as jobs that end without an outcome file; the
//! head says so then.
use std::fs::{File, TryLockError};
use std::io::{ErrorKind, Read, Write};
use std::path::Path;

/// What the file system of `dir` is called in /proc/self/mounts (best effort, for messages).
fn fs_type(dir: &Path) -> String {
    let Ok(canon) = dir.canonicalize() else { return "unknown".into() };
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else { return "unknown".into() };
    let mut best: (usize, String) = (0, "unknown".into());
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 3 && canon.starts_with(f[1]) && f[1].len() >= best.0 {
            best = (f[1].len(), format!("{} on {}", f[2], f[1]));
        }
    }
    best.1
}

/// Checks atomic rename and `flock` in the cache at `root` (creating `tmp/` and `locks/`).
pub fn check(root: &Path) -> anyhow::Result<()> {
    let refuse = |what: String| {
        anyhow::anyhow!(
            "the cache {} ({}) cannot be shared with Slurm jobs: {what}. The Slurm executor needs a cache on a file \
             system that the head and every compute node mount at the same path, with atomic rename and flock \
             (NFSv4 or NFSv3 with lockd and without `local_lock`, Lustre mounted with `flock`, GPFS, BeeGFS, CephFS); \
             see docs/slurm.md#shared-file-system",
            root.display(),
            fs_type(root)
        )
    };
    let tag = format!("{}.{}", crate::util::hostname(), std::process::id());
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| refuse(format!("cannot create {}: {e}", tmp.display())))?;
    // rename over an existing file, then read it back
    let (a, b) = (tmp.join(format!(".fscheck.{tag}.a")), tmp.join(format!(".fscheck.{tag}.b")));
    let renamed = (|| -> std::io::Result<bool> {
        File::create(&b)?.write_all(b"old")?;
        File::create(&a)?.write_all(tag.as_bytes())?;
        std::fs::rename(&a, &b)?;
        let mut s = String::new();
        File::open(&b)?.read_to_string(&mut s)?;
        Ok(s == tag && !a.exists())
    })();
    let _ = std::fs::remove_file(&a);
    let _ = std::fs::remove_file(&b);
    match renamed {
        Ok(true) => {}
        Ok(false) => return Err(refuse("a file renamed over another did not replace it".into())),
        Err(e) => return Err(refuse(format!("renaming a file over another in {} failed: {e}", tmp.display()))),
    }
    // flock: held through one open file, refused through another
    let locks = root.join("locks");
    std::fs::create_dir_all(&locks).map_err(|e| refuse(format!("cannot create {}: {e}", locks.display())))?;
    let p = locks.join(format!(".fscheck.{tag}.lock"));
    let result = (|| -> anyhow::Result<()> {
        let open = || File::options().create(true).truncate(false).write(true).open(&p);
        let (f1, f2) = (open()?, open()?);
        if let Err(e) = f1.try_lock() {
            let why = match e {
                TryLockError::Error(e)
                    if e.kind() == ErrorKind::Unsupported || e.raw_os_error() == Some(libc::ENOLCK) =>
                {
                    format!("flock is not supported there ({e})")
                }
                TryLockError::Error(e) => format!("flock failed: {e}"),
                TryLockError::WouldBlock => "a fresh lock file was already locked".into(),
            };
            return Err(refuse(why));
        }
        match f2.try_lock() {
            Err(TryLockError::WouldBlock) => Ok(()),
            Ok(()) => Err(refuse("flock is not enforced there (a second open file got a lock already held)".into())),
            Err(TryLockError::Error(e)) => Err(refuse(format!("flock failed: {e}"))),
        }
    })();
    let _ = std::fs::remove_file(&p);
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_local_directory_passes() {
        let d = tempfile::tempdir().unwrap();
        super::check(d.path()).unwrap();
        assert!(std::fs::read_dir(d.path().join("tmp")).unwrap().next().is_none(), "check files left behind");
    }

    #[test]
    fn an_unwritable_cache_is_refused_with_its_path() {
        let e = super::check(std::path::Path::new("/proc/spatia-no-such-cache")).unwrap_err().to_string();
        assert!(e.contains("/proc/spatia-no-such-cache") && e.contains("cannot be shared"), "{e}");
    }
}
