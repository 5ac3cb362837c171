//! seccomp(2): install a filter, and the user-notification ioctls of its listener fd.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `SECCOMP_SET_MODE_FILTER`.
const SET_MODE_FILTER: libc::c_uint = 1;
/// `SECCOMP_GET_ACTION_AVAIL`.
const GET_ACTION_AVAIL: libc::c_uint = 2;
/// `SECCOMP_GET_NOTIF_SIZES`.
const GET_NOTIF_SIZES: libc::c_uint = 3;
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`.
const FLAG_NEW_LISTENER: libc::c_uint = 1 << 3;
/// `SECCOMP_USER_NOTIF_FLAG_CONTINUE`: let the notified call run as if allowed.
pub const USER_NOTIF_FLAG_CONTINUE: u32 = 1;

/// `SECCOMP_IOCTL_NOTIF_RECV` = `_IOWR('!', 0, struct seccomp_notif)`.
const IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
/// `SECCOMP_IOCTL_NOTIF_SEND` = `_IOWR('!', 1, struct seccomp_notif_resp)`.
const IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;
/// `SECCOMP_IOCTL_NOTIF_ID_VALID` = `_IOW('!', 2, __u64)`.
const IOCTL_NOTIF_ID_VALID: libc::c_ulong = 0x4008_2102;

/// `struct seccomp_data`: what the filter sees.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SeccompData {
    /// Syscall number.
    pub nr: i32,
    /// `AUDIT_ARCH_*`.
    pub arch: u32,
    /// Caller's instruction pointer.
    pub instruction_pointer: u64,
    /// Argument registers.
    pub args: [u64; 6],
}

/// `struct seccomp_notif`: one notified call.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Notif {
    /// Cookie to answer with.
    pub id: u64,
    /// Caller's tid, in the listener's pid namespace (0 if not visible there).
    pub pid: u32,
    /// Unused by the kernel so far.
    pub flags: u32,
    /// The call.
    pub data: SeccompData,
}

/// `struct seccomp_notif_resp`: the answer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NotifResp {
    /// The notification's id.
    pub id: u64,
    /// Return value when `error` is 0 and the call is not continued.
    pub val: i64,
    /// Negative errno, or 0.
    pub error: i32,
    /// `USER_NOTIF_FLAG_CONTINUE` or 0.
    pub flags: u32,
}

/// `struct seccomp_notif_sizes`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotifSizes {
    /// Size of `struct seccomp_notif`.
    pub notif: u16,
    /// Size of `struct seccomp_notif_resp`.
    pub resp: u16,
    /// Size of `struct seccomp_data`.
    pub data: u16,
}

/// Install `prog` on the calling thread (no_new_privs must already be set, or CAP_SYS_ADMIN held).
/// With `new_listener`, returns the notification fd.
pub fn install_filter(
    prog: &[libc::sock_filter],
    new_listener: bool,
) -> io::Result<Option<OwnedFd>> {
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    let flags = if new_listener { FLAG_NEW_LISTENER } else { 0 };
    // SAFETY: fprog points at `prog`, which outlives the call; the kernel copies the program.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if !new_listener {
        return Ok(None);
    }
    let fd = i32::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: with NEW_LISTENER the kernel returns a fresh fd that nobody else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Whether the kernel supports the filter return action `action` (a `SECCOMP_RET_*` value).
pub fn action_available(action: u32) -> bool {
    // SAFETY: the kernel only reads one u32 from `action`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            GET_ACTION_AVAIL,
            0,
            &action as *const u32,
        )
    };
    ret == 0
}

/// The kernel's notification struct sizes (checked against ours before serving).
pub fn notif_sizes() -> io::Result<NotifSizes> {
    let mut sizes = NotifSizes::default();
    // SAFETY: the kernel writes exactly one `struct seccomp_notif_sizes` into `sizes`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            GET_NOTIF_SIZES,
            0,
            &mut sizes as *mut NotifSizes,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sizes)
    }
}

/// Receive one notification (blocks unless the fd is readable). ENOENT: the caller died meanwhile.
pub fn notif_recv(listener: BorrowedFd<'_>) -> io::Result<Notif> {
    // The kernel insists on a zeroed buffer.
    let mut notif = Notif::default();
    // SAFETY: `notif` is a valid, zeroed `struct seccomp_notif` the kernel fills in.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            IOCTL_NOTIF_RECV,
            &mut notif as *mut Notif,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(notif)
    }
}

/// Answer a notification. ENOENT: the caller died or the call was interrupted.
pub fn notif_send(listener: BorrowedFd<'_>, resp: &NotifResp) -> io::Result<()> {
    // SAFETY: `resp` is a valid `struct seccomp_notif_resp` the kernel only reads.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            IOCTL_NOTIF_SEND,
            resp as *const NotifResp,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Whether notification `id` is still pending (so its pid still names the caller).
pub fn notif_id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    // SAFETY: the kernel reads one u64 from the pointer.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            IOCTL_NOTIF_ID_VALID,
            &id as *const u64,
        )
    };
    ret == 0
}

/// What `poll` saw on the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// A notification is waiting.
    pub readable: bool,
    /// Every filtered task is gone.
    pub hangup: bool,
}

/// Wait until the listener is readable or hung up (EINTR is retried).
pub fn wait_listener(listener: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<Readiness> {
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, count 1.
        let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if ret >= 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(Readiness {
        readable: pfd.revents & libc::POLLIN != 0,
        hangup: pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0,
    })
}

/// Make a raw syscall and return its result or errno. For probing filters in tests and benchmarks.
///
/// # Safety
/// The kernel acts on the arguments: pointer arguments must be null or valid for the call.
pub unsafe fn raw_syscall(nr: i64, args: [u64; 6]) -> Result<i64, i32> {
    // SAFETY: the caller guarantees the arguments are valid for this call.
    let ret = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) };
    if ret < 0 {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(ret)
    }
}

/// Call i386 `getpid` (20) through the `int 0x80` compat entry; the result, or -errno.
#[cfg(target_arch = "x86_64")]
pub fn int80_getpid() -> i64 {
    let mut ret: i64 = 20;
    // SAFETY: i386 getpid takes no arguments and touches no memory; int 0x80 clobbers only rax
    // (and, on old kernels, r8-r11, declared here).
    unsafe {
        std::arch::asm!("int 0x80", inout("rax") ret, out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            options(nostack));
    }
    ret
}

/// How a forked child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildEnd {
    /// `_exit(code)`.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

/// Fork; the child runs `f` and `_exit`s with its result, the parent waits and reports how it ended.
/// For tests and benchmarks that install filters, which must not touch the caller.
pub fn fork_and_wait(f: impl FnOnce() -> i32) -> io::Result<ChildEnd> {
    wait_child(spawn_child(f)?)
}

/// Fork; the child runs `f` and `_exit`s with its result. Returns the child's pid; reap it with
/// [`wait_child`]. For tests that serve the child's listener while it runs.
pub fn spawn_child(f: impl FnOnce() -> i32) -> io::Result<libc::pid_t> {
    // SAFETY: the child only runs `f` and then `_exit`s, never returning into the caller's stack frames
    // (glibc's fork keeps malloc usable in the child).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: ends the child without running the parent's atexit handlers or destructors.
        unsafe { libc::_exit(code) };
    }
    Ok(pid)
}

/// Wait for a child pid (EINTR retried).
pub fn wait_child(pid: libc::pid_t) -> io::Result<ChildEnd> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid int to write to.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        if ret == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    if libc::WIFSIGNALED(status) {
        Ok(ChildEnd::Signaled(libc::WTERMSIG(status)))
    } else {
        Ok(ChildEnd::Exited(libc::WEXITSTATUS(status)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_structs_match_the_kernel() {
        let sizes = notif_sizes().expect("SECCOMP_GET_NOTIF_SIZES");
        assert_eq!(usize::from(sizes.notif), std::mem::size_of::<Notif>());
        assert_eq!(usize::from(sizes.resp), std::mem::size_of::<NotifResp>());
        assert_eq!(usize::from(sizes.data), std::mem::size_of::<SeccompData>());
    }

    #[test]
    fn available_actions_agree_with_the_sysctl() {
        let listed = crate::features::seccomp_actions();
        for (name, action) in [
            ("user_notif", crate::seccomp::bpf::RET_USER_NOTIF),
            ("allow", crate::seccomp::bpf::RET_ALLOW),
            ("errno", crate::seccomp::bpf::RET_ERRNO),
        ] {
            assert_eq!(
                action_available(action),
                listed.iter().any(|a| a == name),
                "{name}: {listed:?}"
            );
        }
        assert!(!action_available(0x7ff7_0000), "an action no kernel has");
    }
}
