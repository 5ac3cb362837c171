//! Errors of the context module: one variant per failing step, each naming the problem and the fix.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why preparing, hashing, reporting or saving the context failed.
#[derive(Debug)]
pub enum ContextError {
    /// Two context options cannot be used together.
    Conflict(String),
    /// A path handed to the overlay would be misparsed in its option string.
    UnsafeMountPath(PathBuf),
    /// Mounting the sized tmpfs on the scratch directory failed.
    MountScratch(PathBuf, nix::Error),
    /// Creating a directory of our own (scratch layout, snapshot, save destination) failed.
    CreateDir(PathBuf, io::Error),
    /// Bind-mounting the host context directory failed.
    BindHostDir(PathBuf, nix::Error),
    /// Making the lower layer read-only failed.
    ReadOnlyLower(io::Error),
    /// Mounting the overlay on /context failed.
    MountOverlay(String, nix::Error),
    /// Opening the root of a tree (host dir, snapshot, upper, lower) failed.
    OpenRoot(PathBuf, io::Error),
    /// Reading a directory or stat-ing an entry of the tree failed.
    Walk(String, io::Error),
    /// A file or directory of the tree cannot be read by the sandbox's user.
    Unreadable(String, io::Error),
    /// The tree is nested deeper than the walker allows.
    TooDeep(String),
    /// The tree does not fit in the context tmpfs; found in the stat-only pre-walk, before copying.
    TooLarge {
        /// Bytes (rounded to pages) the copy needs.
        needed: u64,
        /// Bytes free in the tmpfs.
        available: u64,
        /// Inodes the copy needs.
        inodes: u64,
        /// Inodes free in the tmpfs.
        inodes_free: u64,
    },
    /// A source file changed while it was copied or hashed.
    ChangedDuringCopy(String, &'static str),
    /// Copying one entry into the snapshot failed.
    Copy(String, io::Error),
    /// The snapshot differs from the manifest of the source (lines list the differences).
    VerifyFailed(Vec<String>),
    /// The tree differs from the pinned root hash or manifest (lines list the differences).
    PinMismatch(Vec<String>),
    /// A manifest given with --expect-manifest cannot be parsed.
    BadManifest(String),
    /// Reading the upper or lower layer for the change report failed.
    Report(String, io::Error),
    /// The save destination lies inside the context directory.
    SaveInsideContext(PathBuf, PathBuf),
    /// Writing a saved file failed.
    Save(String, io::Error),
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Conflict(msg) => write!(f, "{msg}"),
            Self::UnsafeMountPath(p) => write!(
                f,
                "path {} contains ',', ':', '=' or '\\', which the overlay option string cannot carry; \
                 use a runtime directory without those characters",
                p.display()
            ),
            Self::MountScratch(p, e) => write!(
                f,
                "mounting the context tmpfs on {} failed: {e}; check that the mount namespace is private \
                 and the size is positive",
                p.display()
            ),
            Self::CreateDir(p, e) => write!(f, "creating directory {} failed: {e}", p.display()),
            Self::BindHostDir(p, e) => write!(
                f,
                "bind-mounting the context directory {} failed: {e}; check that it exists and is a directory \
                 you can read",
                p.display()
            ),
            Self::ReadOnlyLower(e) => write!(
                f,
                "making the context's lower layer read-only failed: {e}; the kernel needs mount_setattr (5.12+)"
            ),
            Self::MountOverlay(opts, e) => write!(
                f,
                "mounting the overlay on /context ({opts}) failed: {e}; rootless overlayfs needs kernel 5.11+, \
                 or use --context-mode snapshot / --writable"
            ),
            Self::OpenRoot(p, e) => write!(f, "opening {} failed: {e}", p.display()),
            Self::Walk(p, e) => write!(f, "reading {p} in the context failed: {e}"),
            Self::Unreadable(p, e) => write!(
                f,
                "{p} in the context cannot be read ({e}); make it readable (chmod), remove it, or use the \
                 lazy context mode, which does not read files ahead"
            ),
            Self::TooDeep(p) => write!(
                f,
                "{p} is nested too deeply for a snapshot; flatten the tree"
            ),
            Self::TooLarge {
                needed,
                available,
                inodes,
                inodes_free,
            } => write!(
                f,
                "the context does not fit in its tmpfs: it needs {needed} bytes and {inodes} inodes, \
                 {available} bytes and {inodes_free} inodes are free; raise --tmpfs-size, or use the lazy \
                 context mode"
            ),
            Self::ChangedDuringCopy(p, what) => write!(
                f,
                "{p} changed while it was being copied ({what}); stop whatever writes to the tree and retry"
            ),
            Self::Copy(p, e) => write!(f, "copying {p} into the snapshot failed: {e}"),
            Self::VerifyFailed(lines) => write!(
                f,
                "the snapshot does not match the tree it was copied from, so the sandbox was not started:\n  {}",
                lines.join("\n  ")
            ),
            Self::PinMismatch(lines) => write!(
                f,
                "the context differs from its pin (--expect-root-hash / --expect-manifest), so the sandbox was not started \
                 (re-pin with `nucleus manifest` if the change is expected):\n  {}",
                lines.join("\n  ")
            ),
            Self::BadManifest(why) => write!(
                f,
                "the expected manifest is not valid: {why}; produce it with `nucleus manifest DIR --json`"
            ),
            Self::Report(p, e) => write!(f, "computing the change report failed at {p}: {e}"),
            Self::SaveInsideContext(dest, ctx) => write!(
                f,
                "refusing to save changes into {}, which is inside the context directory {}; choose a \
                 destination outside it",
                dest.display(),
                ctx.display()
            ),
            Self::Save(p, e) => write!(f, "saving {p} failed: {e}"),
        }
    }
}

impl std::error::Error for ContextError {}
