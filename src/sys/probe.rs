//! Raw probes behind `features` and `nucleus doctor`: each tries a kernel feature for real, in a
//! short-lived child process where it would change the caller's state.
//!
//! The children run `/bin/true` after a `pre_exec` hook. The hook runs between fork and exec, so it only
//! makes async-signal-safe syscalls on data prepared before the fork: that keeps the probes safe to
//! call from a multi-threaded supervisor.

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// How far the overlay-in-user-namespace probe goes; each step includes the previous ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OverlayStep {
    /// `unshare(CLONE_NEWUSER | CLONE_NEWNS)`.
    Unshare,
    /// Write `/proc/self/{setgroups,uid_map,gid_map}` mapping container 0 to ourselves.
    MapIds,
    /// Make every mount private so nothing propagates back to the host.
    PrivateMounts,
    /// Mount a tmpfs on /tmp (inside the probe's own mount namespace).
    Tmpfs,
    /// Mount an overlay (lower, upper, work on that tmpfs).
    Overlay,
}

impl OverlayStep {
    /// Every step, in the order the probe runs them.
    pub const ALL: [OverlayStep; 5] = [
        Self::Unshare,
        Self::MapIds,
        Self::PrivateMounts,
        Self::Tmpfs,
        Self::Overlay,
    ];
}

fn true_binary() -> &'static str {
    if std::path::Path::new("/bin/true").exists() {
        "/bin/true"
    } else {
        "/usr/bin/true"
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("probe strings are literals without NUL bytes")
}

/// Run `/bin/true` after `hook` in the child; the hook's error (an errno) becomes the result.
fn run_child<F>(hook: F) -> io::Result<()>
where
    F: FnMut() -> io::Result<()> + Send + Sync + 'static,
{
    let mut cmd = Command::new(true_binary());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: every hook passed here only makes raw syscalls (unshare, setuid, open, write, mount,
    // mkdir) on buffers allocated before the fork, which is async-signal-safe; it allocates nothing.
    unsafe { cmd.pre_exec(hook) };
    let status = cmd.spawn()?.wait()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "probe child exited with {status}"
        )))
    }
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// In a child, optionally become `as_user` (uid, gid) first, then `unshare(flags)`.
pub fn unshare_in_child(flags: libc::c_int, as_user: Option<(u32, u32)>) -> io::Result<()> {
    run_child(move || {
        if let Some((uid, gid)) = as_user {
            // SAFETY: setgroups with a zero-length list reads no memory; setgid/setuid take plain ids.
            check(unsafe { libc::setgroups(0, std::ptr::null()) })?;
            // SAFETY: plain integer argument.
            check(unsafe { libc::setgid(gid) })?;
            // SAFETY: plain integer argument.
            check(unsafe { libc::setuid(uid) })?;
        }
        // SAFETY: unshare only changes the calling (child) process's namespaces.
        check(unsafe { libc::unshare(flags) })
    })
}

/// Write `data` to an existing file with raw syscalls (usable between fork and exec).
fn write_file(path: &CString, data: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    check(fd)?;
    // SAFETY: `data` is a live buffer of `data.len()` bytes and `fd` is open.
    let written = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    let result = if written < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    };
    // SAFETY: `fd` was opened above and is closed exactly once.
    unsafe { libc::close(fd) };
    result
}

fn mount(
    source: &CString,
    target: &CString,
    fstype: Option<&CString>,
    flags: libc::c_ulong,
    data: Option<&CString>,
) -> io::Result<()> {
    let fstype = fstype.map_or(std::ptr::null(), |s| s.as_ptr());
    let data = data.map_or(std::ptr::null(), |s| s.as_ptr().cast::<libc::c_void>());
    // SAFETY: all pointers are NUL-terminated strings that outlive the call, or NULL where allowed.
    check(unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype, flags, data) })
}

/// In a child: new user + mount namespace, map ids to ourselves, then mount tmpfs and overlay, up to `upto`.
pub fn overlay_in_userns(upto: OverlayStep) -> io::Result<()> {
    // SAFETY: geteuid/getegid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let uid_map = format!("0 {uid} 1\n").into_bytes();
    let gid_map = format!("0 {gid} 1\n").into_bytes();
    let (setgroups_path, uid_path, gid_path) = (
        cstr("/proc/self/setgroups"),
        cstr("/proc/self/uid_map"),
        cstr("/proc/self/gid_map"),
    );
    let (root, tmp, none, tmpfs, overlay) = (
        cstr("/"),
        cstr("/tmp"),
        cstr("none"),
        cstr("tmpfs"),
        cstr("overlay"),
    );
    let dirs = [
        cstr("/tmp/l"),
        cstr("/tmp/u"),
        cstr("/tmp/w"),
        cstr("/tmp/m"),
    ];
    let options = cstr("lowerdir=/tmp/l,upperdir=/tmp/u,workdir=/tmp/w");
    run_child(move || {
        // SAFETY: unshare only changes the calling (child) process's namespaces.
        check(unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) })?;
        if upto < OverlayStep::MapIds {
            return Ok(());
        }
        // setgroups must be denied before an unprivileged gid_map write is allowed.
        write_file(&setgroups_path, b"deny")?;
        write_file(&uid_path, &uid_map)?;
        write_file(&gid_path, &gid_map)?;
        if upto < OverlayStep::PrivateMounts {
            return Ok(());
        }
        mount(&none, &root, None, libc::MS_REC | libc::MS_PRIVATE, None)?;
        if upto < OverlayStep::Tmpfs {
            return Ok(());
        }
        mount(
            &tmpfs,
            &tmp,
            Some(&tmpfs),
            libc::MS_NOSUID | libc::MS_NODEV,
            None,
        )?;
        if upto < OverlayStep::Overlay {
            return Ok(());
        }
        for dir in &dirs {
            // SAFETY: `dir` is a valid NUL-terminated path.
            check(unsafe { libc::mkdir(dir.as_ptr(), 0o700) })?;
        }
        mount(&overlay, &dirs[3], Some(&overlay), 0, Some(&options))
    })
}

/// Steps of the pidfd probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PidfdStep {
    /// `pidfd_open(getpid())`.
    Open,
    /// `pidfd_getfd(pidfd, 2)`: duplicate our own stderr through the pidfd.
    GetFd,
}

/// Open a pidfd on ourselves and pull our own fd 2 through it with `pidfd_getfd`.
pub fn pidfd_self() -> Result<(), (PidfdStep, io::Error)> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    if pidfd < 0 {
        return Err((PidfdStep::Open, io::Error::last_os_error()));
    }
    let pidfd = pidfd as libc::c_int;
    // SAFETY: pidfd is the fd just opened; 2 is a target fd number in that (our own) process.
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, 2, 0) };
    let result = if copy < 0 {
        Err((PidfdStep::GetFd, io::Error::last_os_error()))
    } else {
        // SAFETY: `copy` is a fresh fd owned by us and closed exactly once.
        unsafe { libc::close(copy as libc::c_int) };
        Ok(())
    };
    // SAFETY: `pidfd` was opened above and is closed exactly once.
    unsafe { libc::close(pidfd) };
    result
}

/// BPF program types the doctor tries to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BpfProgType {
    /// `BPF_PROG_TYPE_SOCKET_FILTER`: the most basic program type.
    SocketFilter = 1,
    /// `BPF_PROG_TYPE_RAW_TRACEPOINT`: what the full-trace backend attaches to `sys_enter`.
    RawTracepoint = 17,
}

/// The leading fields of `union bpf_attr` for `BPF_PROG_LOAD`; the kernel zero-fills the rest.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

/// Load (and immediately close) the trivial program `r0 = 0; exit` of the given type.
pub fn bpf_load_trivial(prog_type: BpfProgType) -> io::Result<()> {
    const BPF_PROG_LOAD: libc::c_long = 5;
    // struct bpf_insn {code, dst:4|src:4, off, imm}: BPF_ALU64|BPF_MOV|BPF_K r0 = 0, then BPF_JMP|BPF_EXIT.
    let insns: [u64; 2] = [
        u64::from_le_bytes([0xb7, 0, 0, 0, 0, 0, 0, 0]),
        u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
    ];
    let license = cstr("GPL");
    let attr = ProgLoadAttr {
        prog_type: prog_type as u32,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
    };
    // SAFETY: `attr` points at live `insns` and `license` for the duration of the call, and its size
    // is passed so the kernel reads only that prefix of bpf_attr.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is the program fd just returned to us, closed exactly once.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}
