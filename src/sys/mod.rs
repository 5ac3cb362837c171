//! The only place with `unsafe` and raw syscalls. Every block carries a `// SAFETY:` comment.

/// Landlock ABI version, or None when the kernel lacks Landlock or it is disabled.
pub fn landlock_abi_version() -> Option<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a NULL attr and size 0 and the VERSION flag, the kernel only returns a number.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(ret).ok().filter(|v| *v > 0)
}

/// Fill `buf` from the kernel's random pool (getrandom(2): one call, no file to open).
pub fn random_bytes(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the kernel writes at most `rest.len()` bytes into `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match usize::try_from(n) {
            Ok(n) => filled += n,
            Err(_) => {
                let err = std::io::Error::last_os_error();
                if err.kind() != std::io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

pub mod caps;
pub mod context;
pub mod mount;
pub mod net;
pub mod probe;
pub mod process;
pub mod seccomp;
pub mod tty;

/// Take ownership of a descriptor that the kernel just installed in our table (SCM_RIGHTS).
///
/// Only for fds received from the kernel that nothing else refers to.
pub(crate) fn adopt_received_fd(raw: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: callers pass a descriptor freshly created by recvmsg; no other owner exists.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) }
}

/// Take ownership of a descriptor that is open in this process and owned by nothing else: the
/// seccomp listener the workload leaves in the fd table it shares with PID 1.
pub(crate) fn adopt_fd(raw: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: callers pass a descriptor that is open and that no other object owns (the seccomp
    // listener the workload left in the fd table it shared with PID 1 until its execve).
    unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) }
}
