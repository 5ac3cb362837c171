//! The thin executor of the mount plan: one kernel operation per `MountOp`.

use std::fs;
use std::io;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, symlink};
use std::path::Path;

use nix::mount::{MsFlags, mount};

use super::{Flags, MountOp};

impl Flags {
    pub(super) fn ms(self) -> MsFlags {
        match self {
            Flags::NoSuidDev => MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Flags::NoSuidDevExec => MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        }
    }
}

impl std::fmt::Display for MountOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MountOp::Tmpfs { target, .. } => write!(f, "mount tmpfs on {}", target.display()),
            MountOp::BindReadOnly { source, target } => write!(
                f,
                "bind {} read-only on {}",
                source.display(),
                target.display()
            ),
            MountOp::BindDevice { source, target } => write!(
                f,
                "bind device {} on {}",
                source.display(),
                target.display()
            ),
            MountOp::Dir { path, .. } => write!(f, "mkdir {}", path.display()),
            MountOp::File { path, .. } => write!(f, "write {}", path.display()),
            MountOp::CopyFile { source, target, .. } => {
                write!(f, "copy {} to {}", source.display(), target.display())
            }
            MountOp::Symlink { link, target } => {
                write!(f, "symlink {} -> {}", link.display(), target.display())
            }
            MountOp::Proc { target } => write!(f, "mount proc on {}", target.display()),
            MountOp::Devpts { target } => write!(f, "mount devpts on {}", target.display()),
            MountOp::MaskFile { target, .. } => write!(f, "mask {}", target.display()),
            MountOp::MaskDir { target } => write!(f, "mask directory {}", target.display()),
            MountOp::ReadOnlySelf { target } => write!(f, "make {} read-only", target.display()),
        }
    }
}

/// Open the file the probe saw as a regular file, for reading: a symlink swapped in since is not
/// followed (O_NOFOLLOW; it must not copy, say, `/etc/shadow` under another name), a FIFO not
/// waited on (O_NONBLOCK), and anything but a regular file refused.
pub(super) fn open_regular(path: &Path) -> io::Result<fs::File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(format!(
            "{} is no longer a regular file",
            path.display()
        )));
    }
    Ok(file)
}

/// Run one operation. Errors carry the operation for the failure report.
///
/// Modes are applied at creation, so the caller runs the plan with umask 0 (`pid1::build_root`).
pub fn execute(op: &MountOp) -> io::Result<()> {
    let none: Option<&str> = None;
    match op {
        MountOp::Tmpfs {
            target,
            size,
            mode,
            flags,
        } => {
            let mut data = format!("mode={mode:o}");
            if let Some(size) = size {
                data.push_str(&format!(",size={size}"));
            }
            mount(
                Some("tmpfs"),
                target,
                Some("tmpfs"),
                flags.ms(),
                Some(data.as_str()),
            )?;
        }
        MountOp::BindReadOnly { source, target } => bind_read_only(source, target)?,
        MountOp::BindDevice { source, target } => {
            mount(Some(source), target, none, MsFlags::MS_BIND, none)?;
        }
        MountOp::Dir { path, mode } => {
            match fs::DirBuilder::new()
                .recursive(true)
                .mode(*mode)
                .create(path)
            {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        MountOp::File {
            path,
            contents,
            mode,
        } => {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(*mode)
                .open(path)?
                .write_all(contents)?;
        }
        MountOp::CopyFile {
            source,
            target,
            len,
            mode,
        } => {
            let from = open_regular(source)?;
            let to = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(*mode)
                .open(target)?;
            crate::sys::mount::copy_contents(from.as_fd(), to.as_fd(), *len)?;
        }
        MountOp::Symlink { link, target } => symlink(target, link)?,
        MountOp::Proc { target } => {
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount(Some("proc"), target, Some("proc"), flags, none)?;
        }
        MountOp::Devpts { target } => {
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
            mount(
                Some("devpts"),
                target,
                Some("devpts"),
                flags,
                Some("newinstance,ptmxmode=0666,mode=620"),
            )?;
        }
        // Masks and read-only subtrees apply to what this kernel's /proc has: a missing path is skipped.
        MountOp::MaskFile { target, null } => {
            if_present(
                mount(Some(null), target, none, MsFlags::MS_BIND, none).map_err(Into::into),
            )?;
        }
        MountOp::MaskDir { target } => {
            let flags =
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            if_present(
                mount(
                    Some("tmpfs"),
                    target,
                    Some("tmpfs"),
                    flags,
                    Some("size=0,mode=555"),
                )
                .map_err(Into::into),
            )?;
        }
        MountOp::ReadOnlySelf { target } => if_present(bind_read_only(target, target))?,
    }
    Ok(())
}

/// A mount whose target may not exist on this kernel.
fn if_present(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

/// Recursive bind, then the whole tree read-only, nosuid, nodev (submounts included).
fn bind_read_only(source: &Path, target: &Path) -> io::Result<()> {
    let none: Option<&str> = None;
    mount(
        Some(source),
        target,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )?;
    crate::sys::mount::make_tree_read_only(target)
}
