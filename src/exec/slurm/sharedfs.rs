//! Is the cache fit to be shared by a Slurm head and its compute nodes? Spatia's cache needs,
//! on the file system holding it:
//!
//! - **atomic rename within one file system**: an entry is built in `tmp/` and renamed into
//!   `entries/`, an outcome file written beside its final name and renamed over it;
//! - **`flock` that other processes see**: the per-key lock (`locks/<key>.lock`) is an
//!   exclusive `flock`, so that two jobs (or a job and a local run) never compute one key;
//!   where flock is not supported (`ENOLCK`: NFS without a lock manager; `ENOSYS`/`EOPNOTSUPP`)
//!   the cache falls back to lock files created with `O_EXCL` ([`crate::cache::lockfile`]).
//!   NFS mounted with `local_lock=flock` or `local_lock=all` takes locks on one client only:
//!   undetectable from one host, it needs `SPATIA_LOCKS=file`.
//!
//! [`check`] tries both in the cache (a rename over an existing file; a lock from one open
//! file, then a non-blocking attempt from a second one, which must be refused; or the lock-file
//! fallback, whose second exclusive creation must be refused) and refuses the cache, saying
//! what failed and what would do, when either does not behave. It runs on the
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
    check_with(root, crate::cache::lockfile::forced())
}

/// [`check`]; `lock_files`: check the lock-file fallback instead of flock.
fn check_with(root: &Path, lock_files_only: bool) -> anyhow::Result<()> {
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
    // flock: held through one open file, refused through another; where flock is not
    // supported (or SPATIA_LOCKS=file), the lock files the cache then uses
    let locks = root.join("locks");
    std::fs::create_dir_all(&locks).map_err(|e| refuse(format!("cannot create {}: {e}", locks.display())))?;
    let p = locks.join(format!(".fscheck.{tag}.lock"));
    let lock_files = || -> anyhow::Result<()> {
        let held =
            crate::cache::lockfile::acquire(&p).map_err(|e| refuse(format!("no flock, and lock files fail: {e}")))?;
        let second = File::options().write(true).create_new(true).open(crate::cache::lockfile::excl_path(&p));
        drop(held);
        match second {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            _ => Err(refuse("no flock, and exclusive creation (O_EXCL) of a lock file is not exclusive".into())),
        }
    };
    let result = (|| -> anyhow::Result<()> {
        if lock_files_only {
            return lock_files();
        }
        let open = || File::options().create(true).truncate(false).write(true).open(&p);
        let (f1, f2) = (open()?, open()?);
        if let Err(e) = f1.try_lock() {
            return match e {
                TryLockError::Error(e) if crate::cache::lockfile::unsupported(&e) => lock_files(),
                TryLockError::Error(e) => Err(refuse(format!("flock failed: {e}"))),
                TryLockError::WouldBlock => Err(refuse("a fresh lock file was already locked".into())),
            };
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
    fn lock_files_pass_where_flock_is_not_wanted() {
        let d = tempfile::tempdir().unwrap();
        super::check_with(d.path(), true).unwrap();
        assert!(std::fs::read_dir(d.path().join("locks")).unwrap().next().is_none(), "lock files left behind");
    }

    #[test]
    fn an_unwritable_cache_is_refused_with_its_path() {
        let e = super::check(std::path::Path::new("/proc/spatia-no-such-cache")).unwrap_err().to_string();
        assert!(e.contains("/proc/spatia-no-such-cache") && e.contains("cannot be shared"), "{e}");
    }
}
