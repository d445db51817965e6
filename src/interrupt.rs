//! SIGINT/SIGTERM during a run: the handler only records the signal in an atomic; the
//! executor polls [`received`] and stops scheduling, marks its journal `interrupted`, stops
//! the child processes of running `command` stages ([`track_child`]: each leads its own
//! process group, which gets SIGTERM) and exits 130 / 143.
//! The handler is installed with `SA_RESETHAND`, so a second signal ends the process at once.
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

static SIGNAL: AtomicI32 = AtomicI32::new(0);
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

extern "C" fn on_signal(sig: libc::c_int) {
    // only an atomic store: async-signal-safe
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Installs the handler for SIGINT and SIGTERM (once per process is enough).
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a handler that only stores into an atomic, an empty
        // mask and SA_RESETHAND|SA_RESTART is a valid argument to sigaction(2).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// The signal received, if any.
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// `SIGINT` / `SIGTERM` / `signal N`.
pub fn name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

/// The shell's exit code for a death by `sig`.
pub fn exit_code(sig: i32) -> i32 {
    128 + sig
}

/// Registers a child process so an interrupted run can stop it; unregistered on drop.
pub struct ChildGuard(u32);

pub fn track_child(pid: u32) -> ChildGuard {
    if let Ok(mut v) = CHILDREN.lock() {
        v.push(pid);
    }
    ChildGuard(pid)
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(mut v) = CHILDREN.lock() {
            v.retain(|&p| p != self.0);
        }
    }
}

/// Sends SIGTERM to the process group of every tracked child still running (a tracked child
/// leads its own group).
pub fn stop_children() {
    if let Ok(v) = CHILDREN.lock() {
        for &pid in v.iter() {
            if let Ok(p) = libc::pid_t::try_from(pid) {
                // SAFETY: kill(2) on the group of a child we spawned and have not reaped yet
                unsafe {
                    libc::kill(-p, libc::SIGTERM);
                }
            }
        }
    }
}
