//! Mount primitives that nix does not wrap.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// Makes the mount at `mount_root` and every mount below it nosuid and nodev, and read-only if asked.
///
/// A plain `MS_REMOUNT|MS_RDONLY` only changes the top mount of a recursive bind, which would leave
/// submounts of the host tree writable; `mount_setattr` with `AT_RECURSIVE` covers them all.
pub fn restrict_mount_tree(mount_root: BorrowedFd<'_>, readonly: bool) -> io::Result<()> {
    restrict(
        mount_root.as_raw_fd(),
        c"",
        libc::AT_EMPTY_PATH as libc::c_uint,
        readonly,
    )
}

/// `restrict_mount_tree(path, read-only)`, for a path rather than an open fd; a symlink at `path`
/// is not followed.
pub fn make_tree_read_only(path: &Path) -> io::Result<()> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    restrict(
        libc::AT_FDCWD,
        &path,
        libc::AT_SYMLINK_NOFOLLOW as libc::c_uint,
        true,
    )
}

fn restrict(dirfd: RawFd, path: &CStr, flags: libc::c_uint, readonly: bool) -> io::Result<()> {
    let rdonly = if readonly { MOUNT_ATTR_RDONLY } else { 0 };
    let attr = MountAttr {
        attr_set: rdonly | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` is a valid C string and `attr` a properly laid out `struct mount_attr`, both
    // living across the call, whose exact size is passed; `dirfd` is AT_FDCWD or a descriptor the
    // caller borrows.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Copy `len` bytes (or up to the end, if shorter) of `from` into `to` in the kernel: `sendfile`,
/// because `copy_file_range` refuses to cross from the host's filesystem to a tmpfs.
pub fn copy_contents(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let mut left = len;
    while left > 0 {
        let chunk = usize::try_from(left).unwrap_or(usize::MAX).min(1 << 30);
        // SAFETY: two open descriptors we borrow; a NULL offset uses and advances `from`'s own.
        let sent = unsafe {
            libc::sendfile(
                to.as_raw_fd(),
                from.as_raw_fd(),
                std::ptr::null_mut(),
                chunk,
            )
        };
        match sent {
            n if n < 0 => return Err(io::Error::last_os_error()),
            0 => break,
            n => left = left.saturating_sub(n as u64),
        }
    }
    Ok(())
}
