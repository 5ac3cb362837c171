//! What the caches kept between runs share (the `/etc` cache, compiled seccomp filters): where they
//! live, and how a file's identity goes into an entry's name.

use std::fs::Metadata;
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
    for n in [
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
        meta.ctime() as u64,
        meta.ctime_nsec() as u64,
        u64::from(meta.mode()),
    ] {
        hasher.update(&n.to_le_bytes());
    }
}
