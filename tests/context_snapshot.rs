//! Snapshot mode: verified copy into tmpfs, hostile trees, size limits, files changing mid-copy.

mod context_support;

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use context_support::{
    Isolation, assert_hostile_links_kept, child_dirs, fill_project, make_hostile_links, paths,
    root_hash, run_child, run_child_with, spec,
};
use nucleus::context::snapshot::snapshot;
use nucleus::context::{ContextError, Manifest, change_report, prepare};
use nucleus::spec::ContextMode;

fn open(p: &Path) -> fs::File {
    fs::File::open(p).expect("open dir")
}

/// A destination on tmpfs, as in the real sandbox.
fn shm_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").expect("tmpfs tempdir")
}

#[test]
fn snapshot_prepare_rootless() {
    let Some(d) = child_dirs("snapshot_prepare_rootless") else {
        drop(run_child(
            "snapshot_prepare_rootless",
            Isolation::Rootless,
            fill_project,
        ));
        return;
    };
    let host = d.host();
    let expected = root_hash(&host);
    let prepared = prepare(
        &spec(ContextMode::Snapshot, 16 << 20),
        &host,
        &d.scratch(),
        &d.target(),
    )
    .expect("prepare");
    assert_eq!(prepared.root_hash.as_deref(), Some(expected.as_str()));
    assert_eq!(prepared.audit["files"], 4);
    let upper = prepared
        .upper
        .expect("snapshot mode also has an upper layer");
    let t = d.target();
    assert_eq!(
        fs::read(t.join("src/main.rs")).expect("read"),
        b"fn main() {}\n"
    );
    assert_eq!(
        fs::read_link(t.join("src/link")).expect("readlink"),
        Path::new("main.rs")
    );

    // The snapshot is the lower layer and is sealed read-only.
    let err = fs::write(d.scratch().join("lower/README.md"), b"x").expect_err("lower is read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");

    fs::write(t.join("README.md"), b"changed\n").expect("write");
    fs::write(t.join("added"), b"a").expect("write");
    assert_eq!(root_hash(&host), expected, "the host tree is untouched");
    let report = change_report(&upper, &host).expect("report");
    assert_eq!(paths(&report.created), ["added"]);
    assert_eq!(paths(&report.modified), ["README.md"]);
    assert!(report.deleted.is_empty());
}

/// Snapshots a project tree plus `extra` into a fresh tmpfs dir; returns (source, copy, manifest).
fn snapshot_of(extra: impl FnOnce(&Path)) -> (tempfile::TempDir, tempfile::TempDir, Manifest) {
    let src = tempfile::tempdir().expect("tempdir");
    fill_project(src.path());
    extra(src.path());
    let dst = shm_dir();
    let (manifest, _) =
        snapshot(open(src.path()).as_fd(), open(dst.path()).as_fd()).expect("snapshot");
    (src, dst, manifest)
}

#[test]
fn snapshot_symlinks_are_copied_as_links_never_followed() {
    let (_src, dst, manifest) = snapshot_of(make_hostile_links);
    let copy = dst.path();
    // The escaping links dangle inside the copy: nothing outside the tree was read or copied.
    assert_hostile_links_kept(copy);
    let link = manifest
        .entries
        .iter()
        .find(|e| e.path == b"escape")
        .expect("in the manifest");
    assert_eq!(
        link.target.as_deref(),
        Some(&b"../../../../../../etc/passwd"[..])
    );
    assert!(
        link.hash.is_none(),
        "a link is never followed to hash its target"
    );
}

#[test]
fn snapshot_special_files_are_skipped_and_reported() {
    let mut listener = None;
    let (_src, dst, manifest) = snapshot_of(|h| {
        nix::unistd::mkfifo(
            &h.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .expect("mkfifo");
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o666);
        nix::sys::stat::mknod(
            &h.join("null"),
            nix::sys::stat::SFlag::S_IFCHR,
            mode,
            nix::sys::stat::makedev(1, 3),
        )
        .expect("mknod");
        listener = Some(std::os::unix::net::UnixListener::bind(h.join("sock")).expect("socket"));
    });
    for name in ["fifo", "null", "sock"] {
        assert!(
            fs::symlink_metadata(dst.path().join(name)).is_err(),
            "{name} must not be reproduced"
        );
    }
    let skipped: Vec<_> = manifest
        .skipped
        .iter()
        .map(|s| (s.path.as_slice(), s.kind))
        .collect();
    assert_eq!(
        skipped,
        [
            (&b"fifo"[..], "fifo"),
            (b"null", "char_device"),
            (b"sock", "socket")
        ]
    );
    let json = manifest.to_json();
    assert_eq!(json["skipped"][0]["type"], "fifo", "{json}");
}

#[test]
fn snapshot_hardlinks_become_separate_files() {
    let (_src, dst, _) = snapshot_of(|h| {
        fs::write(h.join("hard1"), b"same").expect("write");
        fs::hard_link(h.join("hard1"), h.join("hard2")).expect("link");
    });
    let ino = |p: &str| fs::metadata(dst.path().join(p)).expect("stat").ino();
    assert_ne!(ino("hard1"), ino("hard2"));
    fs::write(dst.path().join("hard1"), b"changed").expect("write");
    assert_eq!(fs::read(dst.path().join("hard2")).expect("read"), b"same");
}

#[test]
fn snapshot_non_utf8_names_and_modes_round_trip() {
    let raw = std::ffi::OsStr::from_bytes(b"bin\xff\\x41");
    let (_src, dst, manifest) = snapshot_of(|h| {
        fs::write(h.join(raw), b"raw").expect("non-utf8 name");
        fs::set_permissions(h.join("src/main.rs"), fs::Permissions::from_mode(0o4750))
            .expect("chmod");
    });
    assert_eq!(
        fs::read(dst.path().join(raw)).expect("exact bytes in the copy"),
        b"raw"
    );
    assert_eq!(
        fs::metadata(dst.path().join("src/main.rs"))
            .expect("stat")
            .mode()
            & 0o7777,
        0o4750
    );
    let json = manifest.to_json();
    assert!(
        json.to_string().contains(r#""path":"bin\\xff\\\\x41""#),
        "{json}"
    );
    let back = Manifest::from_json(&json.to_string()).expect("parse");
    assert_eq!(back.entries, manifest.entries);
    assert!(back.entries.iter().any(|e| e.path == b"bin\xff\\x41"));
}

fn fill_with_secret(host: &Path) {
    fill_project(host);
    fs::write(host.join("secret.key"), b"k").expect("write");
}

fn lock_secret(host: &Path) {
    std::os::unix::fs::lchown(host.join("secret.key"), Some(0), Some(0)).expect("chown");
    fs::set_permissions(
        host.join("secret.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
}

#[test]
fn snapshot_unreadable_file_is_a_clear_error() {
    let Some(d) = child_dirs("snapshot_unreadable_file_is_a_clear_error") else {
        let name = "snapshot_unreadable_file_is_a_clear_error";
        drop(run_child_with(
            name,
            Isolation::Nobody,
            fill_with_secret,
            lock_secret,
        ));
        return;
    };
    let dst = d.root.join("dst");
    fs::create_dir(&dst).expect("mkdir");
    let err = snapshot(open(&d.host()).as_fd(), open(&dst).as_fd()).expect_err("unreadable file");
    assert!(
        matches!(err, ContextError::Unreadable(ref p, _) if p == "secret.key"),
        "{err}"
    );
    assert!(
        err.to_string().contains("chmod"),
        "the message names the fix: {err}"
    );
}

#[test]
fn snapshot_too_large_is_refused_before_copying() {
    let Some(d) = child_dirs("snapshot_too_large_is_refused_before_copying") else {
        let fill = |h: &Path| {
            fill_project(h);
            fs::write(h.join("huge.bin"), vec![0u8; 3 << 20]).expect("write");
        };
        drop(run_child(
            "snapshot_too_large_is_refused_before_copying",
            Isolation::Rootless,
            fill,
        ));
        return;
    };
    let err = prepare(
        &spec(ContextMode::Snapshot, 1 << 20),
        &d.host(),
        &d.scratch(),
        &d.target(),
    )
    .expect_err("3 MiB cannot fit in 1 MiB");
    assert!(
        matches!(err, ContextError::TooLarge { needed, .. } if needed > 3 << 20),
        "{err}"
    );
    assert!(err.to_string().contains("--tmpfs-size"), "{err}");
    assert_eq!(
        fs::read_dir(d.scratch().join("lower")).expect("ls").count(),
        0,
        "nothing was copied"
    );
    assert_eq!(
        fs::read_dir(d.target()).expect("ls").count(),
        0,
        "nothing was mounted on /context"
    );
}

#[test]
fn snapshot_detects_a_file_rewritten_during_the_copy() {
    let src = tempfile::tempdir().expect("tempdir");
    let big = src.path().join("big.bin");
    fs::write(&big, vec![5u8; 96 << 20]).expect("write");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, big) = (Arc::clone(&stop), big.clone());
        std::thread::spawn(move || {
            let f = fs::OpenOptions::new().write(true).open(&big).expect("open");
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                std::os::unix::fs::FileExt::write_at(&f, &[i as u8], (i * 4099) % (96 << 20))
                    .expect("pwrite");
                i += 1;
            }
        })
    };
    let dst = shm_dir();
    let result = snapshot(open(src.path()).as_fd(), open(dst.path()).as_fd());
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let err = result.expect_err("a file rewritten during the copy must fail the snapshot");
    assert!(
        matches!(err, ContextError::ChangedDuringCopy(ref p, _) if p == "big.bin"),
        "{err}"
    );
}

#[test]
fn verification_catches_a_tampered_copy() {
    let src = tempfile::tempdir().expect("tempdir");
    fill_project(src.path());
    let dst = shm_dir();
    let (manifest, _) =
        snapshot(open(src.path()).as_fd(), open(dst.path()).as_fd()).expect("snapshot");
    fs::write(dst.path().join("src/lib.rs"), b"pub fn g() {}\n").expect("tamper");
    let copy = nucleus::context::snapshot::hash_tree(open(dst.path()).as_fd()).expect("rehash");
    assert_eq!(copy.diff(&manifest), ["content changed: src/lib.rs"]);
    assert!(
        fs::symlink_metadata(dst.path().join("src/link"))
            .expect("lstat")
            .file_type()
            .is_symlink()
    );
}
