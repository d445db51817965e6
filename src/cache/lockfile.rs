//! Lock files, where `flock` is not supported: some NFS set-ups answer `ENOLCK` (no lock
//! manager), Lustre mounted `noflock` answers `ENOSYS`/`EOPNOTSUPP`. Every lock of the cache
//! ([`super::Cache::lock`], the gc lock, the stat cache's) then becomes a file `<lock>.excl`
//! created exclusively (`O_CREAT|O_EXCL`, atomic on NFSv3 and later) holding its owner's
//! `host pid start-time`, removed when the lock is dropped. `SPATIA_LOCKS=file` forces them
//! (for tests, or a file system whose flock is known to be local only).
//!
//! What flock gives for free must be done by hand: a lock file left by a process that died on
//! *this* host (its pid gone or reused) is taken over; one left by another host cannot be
//! judged from here, so a waiter says after a minute which file to remove if its owner is
//! gone. Shared (gc) locks are exclusive here: runs on such a cache plan one at a time.
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a waiter stays quiet before it names the lock file and its owner.
const SAY_AFTER: Duration = Duration::from_secs(60);

/// Whether `SPATIA_LOCKS=file` asks for lock files instead of flock.
pub fn forced() -> bool {
    std::env::var("SPATIA_LOCKS").is_ok_and(|v| v == "file")
}

/// Whether a flock error means "not supported here" (then lock files are used).
pub fn unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || matches!(e.raw_os_error(), Some(libc::ENOLCK) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS))
}

/// The lock file standing for the flock file `lock`.
pub fn excl_path(lock: &Path) -> PathBuf {
    let mut s = lock.as_os_str().to_owned();
    s.push(".excl");
    PathBuf::from(s)
}

fn start_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn me() -> String {
    let pid = std::process::id();
    format!("{} {pid} {}\n", crate::util::hostname(), start_of(pid).unwrap_or(0))
}

/// Whether the owner line names a process of this host that no longer runs.
fn stale(owner: &str) -> bool {
    let f: Vec<&str> = owner.split_whitespace().collect();
    let [host, pid, start] = f[..] else { return false };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else { return false };
    host == crate::util::hostname() && start_of(pid) != Some(start)
}

/// A held lock file; dropping it removes the file (if it is still this process's).
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    owner: String,
}

impl Drop for LockFile {
    fn drop(&mut self) {
        if std::fs::read_to_string(&self.path).is_ok_and(|s| s == self.owner) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Blocks until this process holds the lock file of `lock` (see the module doc).
pub fn acquire(lock: &Path) -> io::Result<LockFile> {
    let path = excl_path(lock);
    let owner = me();
    let t0 = Instant::now();
    let mut said = false;
    loop {
        match File::options().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                f.write_all(owner.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| super::at(&path, e))?;
                return Ok(LockFile { path, owner });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let held_by = std::fs::read_to_string(&path).unwrap_or_default();
                if stale(&held_by) {
                    // moved aside before removal, so that a fresh lock taken meanwhile is not removed
                    let aside = path.with_extension(format!("excl.stale.{}", std::process::id()));
                    if std::fs::rename(&path, &aside).is_ok() {
                        if std::fs::read_to_string(&aside).is_ok_and(|s| s == held_by) {
                            let _ = std::fs::remove_file(&aside);
                        } else {
                            // someone else's fresh lock: put it back (hard link: never over a newer one)
                            let _ = std::fs::hard_link(&aside, &path);
                            let _ = std::fs::remove_file(&aside);
                        }
                    }
                    continue;
                }
                if !said && t0.elapsed() >= SAY_AFTER {
                    eprintln!(
                        "spatia: waiting for the lock file {} (held by {}); if that process is gone, remove the file",
                        path.display(),
                        held_by.trim()
                    );
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(super::at(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_file_excludes_until_dropped() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join("k.lock");
        let held = acquire(&lock).unwrap();
        assert!(excl_path(&lock).is_file());
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = lock.clone();
        let t = std::thread::spawn(move || {
            let _second = acquire(&l2).unwrap();
            tx.send(()).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "a second holder got the lock");
        drop(held);
        rx.recv_timeout(Duration::from_secs(5)).expect("the waiter never got the lock");
        t.join().unwrap();
        assert!(!excl_path(&lock).exists(), "the lock file was left behind");
    }

    #[test]
    fn a_lock_file_of_a_dead_process_on_this_host_is_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let lock = d.path().join("k.lock");
        // pid 4194304 is above Linux's pid_max: never alive
        std::fs::write(excl_path(&lock), format!("{} 4194304 1\n", crate::util::hostname())).unwrap();
        let held = acquire(&lock).unwrap();
        assert_eq!(std::fs::read_to_string(excl_path(&lock)).unwrap(), me());
        drop(held);
        // another host's lock is never judged stale
        assert!(!stale("some-other-host 4194304 1\n") && !stale("garbage"));
    }
}
