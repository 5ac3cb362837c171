//! Process-level primitives for the launcher, `__init` and PID 1.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// Spawn `__init`: `ipc` becomes fd 3, the child leaves the host's session and dies with its parent.
pub fn spawn_init(mut cmd: Command, ipc: BorrowedFd<'_>) -> io::Result<Child> {
    let ipc_raw = ipc.as_raw_fd();
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe functions
    // (setsid, prctl, getppid, dup2, fcntl) on plain integers; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            // Why here: a new session keeps host job-control signals and the host tty away from the sandbox.
            libc::setsid();
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if ipc_raw == 3 {
                // dup2 onto itself keeps CLOEXEC set, so clear it explicitly.
                if libc::fcntl(3, libc::F_SETFD, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(ipc_raw, 3) != 3 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
    };
    cmd.spawn()
}

/// Ask for SIGKILL when the parent dies; fails if the parent is already gone.
pub fn die_with_parent(expected_parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integer arguments only.
    if unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != expected_parent {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Make the process non-dumpable: no core dumps, no ptrace attach, /proc/<pid> owned by root.
pub fn set_non_dumpable() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_DUMPABLE) takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Close every fd >= `from` except those in `keep` (close_range in gaps).
pub fn close_fds_except(from: RawFd, keep: &[RawFd]) -> io::Result<()> {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|fd| *fd >= from).collect();
    keep.sort_unstable();
    let mut start = from as u32;
    for fd in keep.into_iter().map(|fd| fd as u32).chain([u32::MAX]) {
        if fd > start {
            let last = if fd == u32::MAX { u32::MAX } else { fd - 1 };
            // SAFETY: close_range only closes descriptors; nothing in this single-threaded
            // process holds them (they were inherited).
            if unsafe { libc::syscall(libc::SYS_close_range, start, last, 0u32) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        start = fd.saturating_add(1);
    }
    Ok(())
}

/// Fork a child (only from a single-threaded process). Returns 0 in the child, its pid in the parent.
pub fn fork_single_threaded() -> io::Result<libc::pid_t> {
    // SAFETY: callers (`__init`, PID 1) are single-threaded, so the child inherits a consistent
    // address space and may run arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
}

/// `clone(CLONE_VFORK | CLONE_FILES)`: the child shares the fd table and the parent sleeps until the
/// child execs or exits. Returns 0 in the child, its pid in the parent.
///
/// Why: the seccomp listener the child creates lands in the shared table, so the parent holds it the
/// moment the child's `execve` succeeds, without the child making a single (possibly filtered) call.
pub fn clone_vfork_shared_files() -> io::Result<libc::pid_t> {
    let flags =
        (libc::CLONE_VFORK | libc::CLONE_FILES) as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: without CLONE_VM the child gets a copy-on-write copy of memory, exactly like fork; a
    // NULL stack means "continue on the copied stack". The caller is single-threaded.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0usize,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid as libc::pid_t)
}

/// Take `fd` (a terminal) as controlling terminal of this new session.
pub fn set_controlling_tty(fd: RawFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument; 0 means "do not steal".
    if unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `execve` that returns only on failure. Arguments are prepared beforehand.
pub fn execve(path: &CString, argv: &[CString], envp: &[CString]) -> io::Error {
    match nix::unistd::execve(path, argv, envp) {
        Err(e) => io::Error::from(e),
        Ok(never) => match never {},
    }
}

/// Terminate immediately without running destructors or atexit handlers (forked children).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is async-signal-safe.
    unsafe { libc::_exit(code) }
}

/// Spawn a helper in its own session (so terminal signals aimed at nucleus do not reach it).
pub fn spawn_detached(mut cmd: Command) -> io::Result<Child> {
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        })
    };
    cmd.spawn()
}
