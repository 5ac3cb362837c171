//! The project directory at /context: lazy overlay, verified snapshot, change report (DESIGN §3).
//!
//! `prepare` runs in PID 1 before pivot_root; `change_report` and `save_changes` run in the supervisor
//! after the workload exits, on the overlay's upper directory that PID 1 handed over as an fd.

pub mod copy;
pub mod error;
pub mod manifest;
pub mod mounts;
pub mod pathenc;
pub mod report;
pub mod save;
pub mod snapshot;
pub mod verify;
pub mod walk;

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::cli::ManifestArgs;
use crate::spec::{ContextMode, ContextSpec};

pub use error::ContextError;
pub use manifest::Manifest;
pub use report::{Change, ChangeReport, change_report, save_changes};

/// What `prepare` produced: the upper layer for the change report, the pinned hash, an audit record.
#[derive(Debug)]
pub struct PreparedContext {
    /// The overlay's upper directory, to hand to the supervisor (None when writable: no overlay).
    pub upper: Option<OwnedFd>,
    /// Root hash of the verified snapshot (snapshot mode only).
    pub root_hash: Option<String>,
    /// Details for the `context_prepared` audit event.
    pub audit: serde_json::Value,
}

/// Rejects option combinations that cannot work, before anything touches the kernel.
pub fn validate(spec: &ContextSpec) -> Result<(), ContextError> {
    let pinned = spec.expect_root_hash.is_some() || spec.expect_manifest.is_some();
    if spec.writable && spec.mode == ContextMode::Snapshot {
        return Err(ContextError::Conflict(
            "--writable cannot be combined with --context-mode snapshot: a snapshot is a private copy; drop one of them"
                .into(),
        ));
    }
    if pinned && spec.mode != ContextMode::Snapshot {
        return Err(ContextError::Conflict(
            "--expect-root-hash / --expect-manifest need --context-mode snapshot: only a verified copy cannot change \
             after the check; add --context-mode snapshot"
                .into(),
        ));
    }
    if pinned && spec.writable {
        return Err(ContextError::Conflict(
            "--expect-root-hash / --expect-manifest cannot be combined with --writable; drop one of them".into(),
        ));
    }
    if !spec.writable && spec.tmpfs_size_bytes == 0 {
        return Err(ContextError::Conflict(
            "--tmpfs-size must be greater than zero".into(),
        ));
    }
    if let Some(text) = &spec.expect_manifest {
        Manifest::from_json(text)?;
    }
    Ok(())
}

/// Mounts the context on `target` (called by PID 1 in its own user+mount namespace, before pivot_root).
pub fn prepare(
    spec: &ContextSpec,
    host_dir: &Path,
    scratch: &Path,
    target: &Path,
) -> Result<PreparedContext, ContextError> {
    validate(spec)?;
    if spec.writable {
        mounts::bind_writable(host_dir, target)?;
        let audit = serde_json::json!({ "mode": "writable", "host_dir": host_dir });
        return Ok(PreparedContext {
            upper: None,
            root_hash: None,
            audit,
        });
    }
    let layout = mounts::mount_scratch(scratch, spec.tmpfs_size_bytes)?;
    let mut audit = serde_json::json!({
        "mode": match spec.mode { ContextMode::Lazy => "lazy", ContextMode::Snapshot => "snapshot" },
        "tmpfs_size_bytes": spec.tmpfs_size_bytes,
    });
    let mut root_hash = None;
    match spec.mode {
        // Lazy: no walk at all, so start time does not depend on the size of the tree.
        ContextMode::Lazy => mounts::bind_lower(host_dir, &layout.lower)?,
        ContextMode::Snapshot => {
            let src = open_dir(host_dir)?;
            let dst = open_dir(&layout.lower)?;
            let (manifest, stats) = snapshot::snapshot(src.as_fd(), dst.as_fd())?;
            verify_pins(spec, &manifest)?;
            let (files, dirs, symlinks, bytes) = manifest.totals();
            let hash = manifest.root_hash();
            audit["root_hash"] = hash.clone().into();
            audit["files"] = files.into();
            audit["dirs"] = dirs.into();
            audit["symlinks"] = symlinks.into();
            audit["bytes"] = bytes.into();
            audit["walk_ms"] = (stats.walk.as_millis() as u64).into();
            audit["copy_ms"] = (stats.copy.as_millis() as u64).into();
            audit["verify_ms"] = (stats.verify.as_millis() as u64).into();
            audit["skipped"] = manifest
                .skipped
                .iter()
                .map(|s| serde_json::json!({ "path": pathenc::encode(&s.path), "type": s.kind }))
                .collect();
            root_hash = Some(hash);
            drop(dst);
            mounts::seal_lower(&layout.lower)?;
        }
    }
    let options = mounts::mount_overlay(&layout, target)?;
    audit["overlay_options"] = options.into();
    let upper = open_dir(&layout.upper)?;
    Ok(PreparedContext {
        upper: Some(upper.into()),
        root_hash,
        audit,
    })
}

/// Refuses a tree that differs from the spec's pinned manifest or root hash, listing the differences.
pub fn verify_pins(spec: &ContextSpec, actual: &Manifest) -> Result<(), ContextError> {
    if let Some(text) = &spec.expect_manifest {
        let expected = Manifest::from_json(text)?;
        let diff = actual.diff(&expected);
        if !diff.is_empty() {
            return Err(ContextError::PinMismatch(diff));
        }
    }
    if let Some(want) = &spec.expect_root_hash {
        let have = actual.root_hash();
        if manifest::normalize_root_hash(want) != have {
            return Err(ContextError::PinMismatch(vec![format!(
                "root hash is {have}, expected {want} (pin a manifest with --expect-manifest to see which files differ)"
            )]));
        }
    }
    Ok(())
}

fn open_dir(path: &Path) -> Result<File, ContextError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| ContextError::OpenRoot(path.to_path_buf(), e))
}

/// Entry point of `nucleus manifest DIR [--json]`: prints the root hash, or the whole manifest.
pub fn manifest_command(args: ManifestArgs) -> i32 {
    let result = open_dir(&args.dir).and_then(|d| snapshot::hash_tree(d.as_fd()));
    match result {
        Ok(m) if args.json => match serde_json::to_string_pretty(&m.to_json()) {
            Ok(text) => {
                println!("{text}");
                0
            }
            Err(e) => {
                eprintln!("nucleus: manifest: {e}");
                125
            }
        },
        Ok(m) => {
            println!("{}", m.root_hash());
            for s in &m.skipped {
                eprintln!(
                    "nucleus: manifest: skipped {} ({})",
                    pathenc::encode(&s.path),
                    s.kind
                );
            }
            0
        }
        Err(e) => {
            eprintln!("nucleus: manifest: {e}");
            125
        }
    }
}
