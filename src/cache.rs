//! What the caches kept between runs share (the root cache, compiled seccomp filters): where they
//! live, who may write there, and how a file's identity goes into an entry's name.

use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where nucleus keeps what it prepares once and reuses between runs: `/run/nucleus` for root
/// (system runtime state), else `$XDG_RUNTIME_DIR/nucleus`, else the XDG cache dir. Never the
/// context directory.
pub fn runtime_dir() -> Option<PathBuf> {
    if nix::unistd::geteuid().is_root() {
        return Some(PathBuf::from("/run/nucleus"));
    }
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_dir()) {
        return Some(Path::new(&runtime).join("nucleus"));
    }
    directories::ProjectDirs::from("", "", "nucleus").map(|d| d.cache_dir().to_path_buf())
}

/// Feed what tells one version of a file from another into `hasher`: device, inode, size, mode,
/// and modification and change times (a rewrite or a replacement changes at least one).
pub fn hash_identity(hasher: &mut blake3::Hasher, meta: &Metadata) {
    let fields = [
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
        meta.ctime() as u64,
        meta.ctime_nsec() as u64,
        u64::from(meta.mode()),
    ];
    let mut bytes = [0u8; 64];
    for (chunk, n) in bytes.chunks_exact_mut(8).zip(fields) {
        chunk.copy_from_slice(&n.to_le_bytes());
    }
    hasher.update(&bytes);
}

/// Whether entries under `dir` may be trusted: `dir` and its parent are directories owned by this
/// process's user and writable by nobody else. Whoever else could write there could plant a seccomp
/// filter or an `/etc` for our sandboxes (say, a directory made by hand, or under a umask of 0).
pub fn is_private(dir: &Path) -> bool {
    let euid = nix::unistd::geteuid().as_raw();
    let ours = |path: &Path| {
        fs::symlink_metadata(path)
            .is_ok_and(|m| m.is_dir() && m.uid() == euid && m.mode() & 0o022 == 0)
    };
    ours(dir) && dir.parent().is_none_or(ours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn only_directories_nobody_else_can_write_are_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cache");
        fs::create_dir(&cache).expect("mkdir");
        chmod(&cache, 0o755);
        assert!(is_private(&cache));
        chmod(&cache, 0o775);
        assert!(!is_private(&cache), "group-writable");
        chmod(&cache, 0o757);
        assert!(!is_private(&cache), "writable by others");
        chmod(&cache, 0o700);
        chmod(dir.path(), 0o777);
        assert!(
            !is_private(&cache),
            "a parent others can write could swap it"
        );
        chmod(dir.path(), 0o700);
        assert!(!is_private(&dir.path().join("missing")));
        std::os::unix::fs::symlink(&cache, dir.path().join("link")).expect("symlink");
        assert!(
            !is_private(&dir.path().join("link")),
            "a symlink is not the directory"
        );
    }

    #[test]
    fn a_directory_of_another_user_is_not_private() {
        // As root (CI and these machines), hand the directory to nobody.
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cache");
        fs::create_dir(&cache).expect("mkdir");
        std::os::unix::fs::chown(&cache, Some(65534), Some(65534))
            .expect("chown (tests run as root)");
        assert!(!is_private(&cache));
    }
}
