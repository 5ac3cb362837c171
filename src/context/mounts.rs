//! The mounts behind /context: a sized tmpfs for upper/work (and the snapshot), a read-only lower,
//! and the overlay on the target; or a plain read-write bind when the user asked for `--writable`.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use crate::context::error::ContextError;
use crate::sys::mount::restrict_mount_tree;

/// Directories inside the scratch tmpfs.
#[derive(Clone, Debug)]
pub struct ScratchLayout {
    /// Lower layer: the read-only bind of the host dir, or the snapshot copy.
    pub lower: PathBuf,
    /// Overlay upper layer: everything the sandbox writes.
    pub upper: PathBuf,
    /// Overlay work directory.
    pub work: PathBuf,
}

/// Mounts a tmpfs of `size` bytes on `scratch` and creates the layer directories in it.
pub fn mount_scratch(scratch: &Path, size: u64) -> Result<ScratchLayout, ContextError> {
    check_option_safe(scratch)?;
    let mount = |data: &str| {
        nix::mount::mount(
            Some("tmpfs"),
            scratch,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(data),
        )
    };
    // huge=within_size lets large writes use large folios (never beyond i_size, so no waste): the
    // snapshot copy measured 13 % less CPU with it. Kernels without THP reject the option.
    mount(&format!("size={size},mode=0700,huge=within_size"))
        .or_else(|_| mount(&format!("size={size},mode=0700")))
        .map_err(|e| ContextError::MountScratch(scratch.to_path_buf(), e))?;
    let layout = ScratchLayout {
        lower: scratch.join("lower"),
        upper: scratch.join("upper"),
        work: scratch.join("work"),
    };
    for dir in [&layout.lower, &layout.upper, &layout.work] {
        std::fs::create_dir(dir).map_err(|e| ContextError::CreateDir(dir.clone(), e))?;
    }
    // The overlay's root takes its mode from the upper root; make /context traversable by all.
    set_mode(&layout.upper, 0o755)?;
    Ok(layout)
}

fn set_mode(dir: &Path, mode: u32) -> Result<(), ContextError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|e| ContextError::CreateDir(dir.to_path_buf(), e))
}

/// Bind-mounts the host dir on `lower`, read-only, nosuid and nodev down the whole mount tree.
pub fn bind_lower(host_dir: &Path, lower: &Path) -> Result<(), ContextError> {
    // MS_REC: inside a user namespace a non-recursive bind of a tree with locked submounts is refused.
    nix::mount::mount(
        Some(host_dir),
        lower,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| ContextError::BindHostDir(host_dir.to_path_buf(), e))?;
    restrict(lower, true)
}

/// Turns the finished snapshot directory into a read-only mount of its own.
pub fn seal_lower(lower: &Path) -> Result<(), ContextError> {
    nix::mount::mount(
        Some(lower),
        lower,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| ContextError::BindHostDir(lower.to_path_buf(), e))?;
    restrict(lower, true)
}

/// `--writable`: the host dir itself on `target`, still nosuid and nodev.
pub fn bind_writable(host_dir: &Path, target: &Path) -> Result<(), ContextError> {
    nix::mount::mount(
        Some(host_dir),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| ContextError::BindHostDir(host_dir.to_path_buf(), e))?;
    restrict(target, false)
}

fn restrict(mount_point: &Path, readonly: bool) -> Result<(), ContextError> {
    let dir = std::fs::File::open(mount_point)
        .map_err(|e| ContextError::OpenRoot(mount_point.to_path_buf(), e))?;
    restrict_mount_tree(dir.as_fd(), readonly).map_err(ContextError::ReadOnlyLower)
}

/// Mounts the overlay on `target`; returns the option string used (for the audit record).
pub fn mount_overlay(layout: &ScratchLayout, target: &Path) -> Result<String, ContextError> {
    // metacopy=off: every changed file is a full copy in upper, which is what the change report and
    // save_changes read. redirect_dir=nofollow: never follow redirect xattrs, which an untrusted tree
    // could carry as user.overlay.redirect (and the only value the kernel accepts with userxattr).
    // userxattr: trusted.* xattrs are out of reach in a user namespace.
    let mut options = format!(
        "lowerdir={},upperdir={},workdir={},metacopy=off,redirect_dir=nofollow",
        layout.lower.display(),
        layout.upper.display(),
        layout.work.display()
    );
    if !in_initial_user_namespace() {
        options.push_str(",userxattr");
    }
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|e| ContextError::MountOverlay(options.clone(), e))?;
    Ok(options)
}

/// Whether this process is in the initial user namespace: its nsfs inode number is fixed
/// (`PROC_USER_INIT_INO`, since Linux 3.8). One `statx`; reading `uid_map` took six syscalls.
fn in_initial_user_namespace() -> bool {
    const INITIAL_USER_NAMESPACE_INODE: u64 = 0xEFFF_FFFD;
    std::fs::metadata("/proc/self/ns/user")
        .is_ok_and(|ns| std::os::unix::fs::MetadataExt::ino(&ns) == INITIAL_USER_NAMESPACE_INODE)
}

/// The overlay option string splits on `,` and `:` and treats `\` and `=` specially.
pub fn check_option_safe(path: &Path) -> Result<(), ContextError> {
    let s = path.to_string_lossy();
    if s.contains([',', ':', '\\', '=']) || !path.is_absolute() {
        return Err(ContextError::UnsafeMountPath(path.to_path_buf()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_user_namespace_is_told_by_its_inode() {
        // It alone maps the whole 32-bit id range onto itself.
        let map = std::fs::read_to_string("/proc/self/uid_map").expect("uid_map");
        let initial = map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"];
        assert_eq!(in_initial_user_namespace(), initial);
    }

    #[test]
    fn option_breaking_paths_are_refused() {
        assert!(check_option_safe(Path::new("/run/nucleus/abc/scratch")).is_ok());
        for bad in ["/tmp/a,b", "/tmp/a:b", "/tmp/a\\b", "/tmp/a=b", "relative"] {
            assert!(check_option_safe(Path::new(bad)).is_err(), "{bad}");
        }
    }
}
