//! Process-level primitives for the launcher, PID 1 and the workload.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// `clone(2)` into new namespaces, fork-like (no shared memory, the child continues on a copy of
/// the caller's stack). `flags` holds `CLONE_NEW*` bits only. Returns 0 in the child, its pid in the parent.
///
/// Only call this while the process is single-threaded (see `never_threaded`): the child may then run
/// any code, allocation included, because no other thread held a lock at the moment of the copy.
pub fn clone_into_namespaces(flags: libc::c_int) -> io::Result<libc::pid_t> {
    debug_assert_eq!(flags & libc::CLONE_VM, 0);
    // SAFETY: without CLONE_VM the child gets a copy-on-write copy of memory, exactly like fork; a
    // NULL stack means "continue on the copied stack". The caller is single-threaded.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
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

/// Whether this process has never started a second thread: glibc's `__libc_single_threaded`,
/// which its first `pthread_create` clears for good. A read of memory; counting the entries of
/// `/proc/self/task` took six syscalls and an allocation on the way to PID 1's clone.
pub fn never_threaded() -> bool {
    unsafe extern "C" {
        static __libc_single_threaded: libc::c_char;
    }
    // SAFETY: glibc (2.32 and later) defines the variable; it is only written by this process's
    // own thread creation, which a single-threaded caller cannot be racing.
    unsafe { __libc_single_threaded != 0 }
}

/// `dup2(fd, target)`, leaving `fd` open.
pub fn dup_onto(fd: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 on a descriptor we borrow; `target` is a stdio number the caller owns.
    if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Start a new session (leaving the host's terminal and job control).
pub fn new_session() -> io::Result<()> {
    // SAFETY: setsid takes no arguments.
    if unsafe { libc::setsid() } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reset every catchable signal, 1 to 64, to its default action. Ignored signals survive `execve`:
/// the Rust runtime ignores SIGPIPE, and a parent may leave any signal ignored, glibc's internal
/// real-time ones (32, 33) included, which its `sigaction` refuses to touch; hence the raw syscall.
/// (Reading which ones are ignored from `/proc/self/status` first took longer, in PID 1, than the
/// 62 calls.)
pub fn reset_signal_dispositions() {
    /// The kernel's `struct sigaction` on x86_64 and aarch64.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads one struct of the kernel's layout (sigset size 8) and writes
        // nothing (NULL old action); SIG_DFL installs no handler of ours.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
    }
}

/// Ask for SIGKILL when the parent dies, then make sure it has not died already: `channel` is a
/// socket whose peer only the parent holds, so a hang-up on it means the parent is gone. (getppid
/// cannot tell: in a new pid namespace it is always 0.)
pub fn die_with_parent(channel: BorrowedFd<'_>) -> io::Result<()> {
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
    let mut poll = libc::pollfd {
        fd: channel.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    if unsafe { libc::poll(&mut poll, 1, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if poll.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
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

/// Sleep until SIGKILL ends this process. Every other signal must be blocked (PID 1 reads them
/// from a signalfd), so nothing else wakes it.
pub fn wait_for_sigkill() -> ! {
    loop {
        // SAFETY: pause only sleeps until a signal.
        unsafe { libc::pause() };
    }
}

/// Close descriptors 0, 1 and 2, which no object of this process owns (`std::io` borrows them).
pub fn close_stdio() -> io::Result<()> {
    // SAFETY: close_range only closes descriptors, and nothing owns the standard ones.
    if unsafe { libc::syscall(libc::SYS_close_range, 0u32, 2u32, 0u32) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Run `child` in a new process that shares this one's memory and fd table until it execs or exits,
/// as `posix_spawn` does (`CLONE_VM | CLONE_VFORK | CLONE_FILES`); this process sleeps meanwhile.
/// Returns the child's pid once it has exec'd or exited.
///
/// Why: a fork would copy this process's page tables only for the `execve` to throw the copy away,
/// and both processes would then take copy-on-write faults. Why the shared fd table: a seccomp
/// listener the child creates is in our table the moment its `execve` succeeds, with no call of the
/// child's in between.
///
/// The child runs on a stack of its own (with a guard page), so it never writes over our frames.
/// Sharing memory is safe because this process is single-threaded and asleep until the child is
/// done: no lock can be held, and what the child allocates or takes out of `child` (its captures)
/// is simply gone from our side, never dropped twice. The child must end in `execve` or `_exit`.
pub fn spawn_sharing_memory<F: FnOnce()>(child: F) -> io::Result<libc::pid_t> {
    let top = child_stack_top()?;
    extern "C" fn trampoline<F: FnOnce()>(slot: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `slot` points at the parent's `Option<F>`, alive because the parent sleeps until
        // we exec or exit; we take the closure out exactly once.
        let child = unsafe { (*slot.cast::<Option<F>>()).take() };
        if let Some(child) = child {
            child();
        }
        // `child` should have ended in execve or _exit; never return (to nowhere).
        exit_now(127)
    }

    let mut slot = Some(child);
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_FILES | libc::SIGCHLD;
    // SAFETY: `top` is the 16-byte aligned top of a stack no one else uses (`child_stack_top`); the
    // trampoline only runs `child`, which ends in execve or _exit, and we sleep until it does.
    let pid = unsafe {
        libc::clone(
            trampoline::<F>,
            top,
            flags,
            (&mut slot as *mut Option<F>).cast(),
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
}

/// The top of the stack `spawn_sharing_memory`'s children run on: 1 MiB with a guard page below,
/// mapped at the first spawn and kept for the next ones. Why kept: a child is done with it once
/// `spawn_sharing_memory` returns, and unmapping it cost a TLB shootdown across CPUs (10–30 µs on
/// these VMs) at every spawn.
fn child_stack_top() -> io::Result<*mut libc::c_void> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const STACK: usize = 1 << 20;
    static TOP: AtomicUsize = AtomicUsize::new(0);
    let top = TOP.load(Ordering::Relaxed);
    if top != 0 {
        return Ok(top as *mut libc::c_void);
    }
    let guard = page_size();
    // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK + guard,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the lowest page of our own mapping becomes the guard against stack overflow.
    if unsafe { libc::mprotect(base, guard, libc::PROT_NONE) } != 0 {
        let err = io::Error::last_os_error();
        // SAFETY: unmaps exactly the mapping made above, which nothing uses.
        unsafe { libc::munmap(base, STACK + guard) };
        return Err(err);
    }
    // The top of the mapping: page-aligned, hence 16-byte aligned.
    let top = base as usize + STACK + guard;
    TOP.store(top, Ordering::Relaxed);
    Ok(top as *mut libc::c_void)
}

fn page_size() -> usize {
    // SAFETY: sysconf takes an integer and has no side effects.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    }
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

/// The name the `defer_exit_teardown` child shows in `ps`.
const EXIT_TEARDOWN_NAME: &std::ffi::CStr = c"nucleus-exit";

/// Hand the teardown of this process's memory to a sleeping child, so that our exit status reaches
/// our parent before the kernel unmaps it (0.95–0.97× the start time, docs/BENCHMARKS.md). The
/// child shares the memory (`CLONE_VM`), dies of PDEATHSIG the moment we exit, and its own exit
/// then does that work. It closes its copy of our descriptors at once: our exit still closes
/// them, so a reader of our stdout sees its end with our exit, not after the teardown.
///
/// The child never returns to our code: it blocks every signal, closes its descriptors, asks for
/// SIGKILL at our exit, names itself `nucleus-exit`, and sleeps, on a stack of its own. None of
/// its calls can fail, so it never writes `errno`, which lives in the thread-local storage it
/// shares with us. One child per process: a second call is refused (its stack is the first's).
pub fn defer_exit_teardown() -> io::Result<libc::pid_t> {
    use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
    const STACK_WORDS: usize = 1024;
    static mut STACK: [u128; STACK_WORDS] = [0; STACK_WORDS];
    static PARENT: AtomicI32 = AtomicI32::new(0);
    static STARTED: AtomicBool = AtomicBool::new(false);
    if STARTED.swap(true, Ordering::Relaxed) {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    extern "C" fn sleep_until_parent_exits(_: *mut libc::c_void) -> libc::c_int {
        let all: u64 = !0;
        // SAFETY: syscalls with valid arguments only (a mask and a name that outlive the calls; the
        // descriptors closed are this child's copies); SIGKILL ends the loop without returning to
        // user code.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_BLOCK,
                &all as *const u64,
                0usize,
                8usize,
            );
            libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() != PARENT.load(Ordering::Relaxed) {
                // The parent is gone already: nothing to wait for.
                libc::syscall(libc::SYS_exit, 0);
            }
            libc::prctl(libc::PR_SET_NAME, EXIT_TEARDOWN_NAME.as_ptr(), 0, 0, 0);
            loop {
                libc::pause();
            }
        }
    }
    // SAFETY: getpid cannot fail.
    PARENT.store(unsafe { libc::getpid() }, Ordering::Relaxed);
    // SAFETY: the child runs `sleep_until_parent_exits` on a static stack nothing else uses (one
    // child per process, checked above), whose top is 16-byte aligned, and never returns to our
    // frames.
    let pid = unsafe {
        let top = std::ptr::addr_of_mut!(STACK)
            .cast::<u128>()
            .add(STACK_WORDS);
        libc::clone(
            sleep_until_parent_exits,
            top.cast(),
            libc::CLONE_VM | libc::SIGCHLD,
            std::ptr::null_mut(),
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_started_a_thread_is_threaded_for_good() {
        // The test harness runs each test on a thread of its own.
        assert!(!never_threaded());
    }
}
