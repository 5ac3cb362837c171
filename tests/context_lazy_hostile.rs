//! Hostile trees in lazy mode, one case per test, each in a rootless child (uid 65534 mapped to root).

mod context_support;

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use context_support::{
    Dirs, Isolation, assert_hostile_links_kept, child_dirs, fill_project, make_hostile_links,
    paths, run_child_with, spec,
};
use nucleus::context::{change_report, prepare, save_changes};
use nucleus::spec::ContextMode;

/// Parent: runs the test `name` rootless on a project tree plus `extra`, all owned by the sandbox's
/// user (uid 65534), then `root_owned` (entries left to host root, unmapped in the sandbox).
/// Child: returns the dirs, with the lazy context mounted.
fn lazy_child(
    name: &str,
    tmpfs: u64,
    extra: impl FnOnce(&Path),
    root_owned: impl FnOnce(&Path),
) -> Option<(Dirs, PathBuf, OwnedFd)> {
    let Some(d) = child_dirs(name) else {
        let fill = |h: &Path| {
            fill_project(h);
            extra(h);
        };
        drop(run_child_with(name, Isolation::Rootless, fill, root_owned));
        return None;
    };
    let prepared = prepare(
        &spec(ContextMode::Lazy, tmpfs),
        &d.host(),
        &d.scratch(),
        &d.target(),
    )
    .expect("prepare");
    let upper = prepared.upper.expect("lazy mode has an upper layer");
    let target = d.target();
    Some((d, target, upper))
}

#[test]
fn lazy_symlinks_are_shown_not_followed() {
    let Some((_d, t, _upper)) = lazy_child(
        "lazy_symlinks_are_shown_not_followed",
        1 << 20,
        |h: &Path| make_hostile_links(h),
        |_| {},
    ) else {
        return;
    };
    assert!(
        fs::symlink_metadata(t.join("escape"))
            .expect("lstat")
            .file_type()
            .is_symlink()
    );
    assert_hostile_links_kept(&t);
}

#[test]
fn lazy_device_nodes_are_inert() {
    let post = |h: &Path| {
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o666);
        nix::sys::stat::mknod(
            &h.join("null"),
            nix::sys::stat::SFlag::S_IFCHR,
            mode,
            nix::sys::stat::makedev(1, 3),
        )
        .expect("mknod");
    };
    let Some((_d, t, _upper)) = lazy_child("lazy_device_nodes_are_inert", 1 << 20, |_| {}, post)
    else {
        return;
    };
    assert!(
        fs::symlink_metadata(t.join("null"))
            .expect("lstat")
            .file_type()
            .is_char_device()
    );
    let err = fs::File::open(t.join("null")).expect_err("nodev: a device must not open");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
}

#[test]
fn lazy_fifo_is_not_the_host_pipe() {
    let post = |h: &Path| {
        nix::unistd::mkfifo(
            &h.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o666),
        )
        .expect("mkfifo");
    };
    let Some((d, t, _upper)) = lazy_child("lazy_fifo_is_not_the_host_pipe", 1 << 20, post, |_| {})
    else {
        return;
    };
    assert!(
        fs::symlink_metadata(t.join("fifo"))
            .expect("lstat")
            .file_type()
            .is_fifo()
    );
    let nonblock = |write: bool, p: &Path| {
        fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(libc::O_NONBLOCK)
            .open(p)
    };
    // A reader through the overlay leaves the host fifo (seen via the lower bind, which the workload
    // never sees after pivot_root) without a reader; a reader on the lower one is found (control).
    let lower_fifo = d.scratch().join("lower/fifo");
    let overlay_reader = nonblock(false, &t.join("fifo")).expect("open overlay fifo for reading");
    let err = nonblock(true, &lower_fifo).expect_err("no reader on the host pipe");
    assert_eq!(err.raw_os_error(), Some(libc::ENXIO), "{err}");
    let lower_reader = nonblock(false, &lower_fifo).expect("control reader");
    nonblock(true, &lower_fifo).expect("control: writer finds the lower reader");
    drop((overlay_reader, lower_reader));
}

#[test]
fn lazy_host_socket_is_unreachable() {
    let name = "lazy_host_socket_is_unreachable";
    let mut listener = None;
    let post = |h: &Path| {
        // A live host socket that anyone on the host may connect to.
        listener = Some(UnixListener::bind(h.join("sock")).expect("bind"));
        fs::set_permissions(h.join("sock"), fs::Permissions::from_mode(0o777)).expect("chmod");
    };
    let Some((d, t, _upper)) = lazy_child(name, 1 << 20, |_| {}, post) else {
        drop(listener);
        return;
    };
    let err =
        UnixStream::connect(t.join("sock")).expect_err("the overlay inode is not the bound one");
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED), "{err}");
    UnixStream::connect(d.scratch().join("lower/sock")).expect("control: the lower bind connects");
}

#[test]
fn lazy_hardlinks_break_on_copy_up() {
    let post = |h: &Path| {
        fs::write(h.join("hard1"), b"same").expect("write");
        fs::hard_link(h.join("hard1"), h.join("hard2")).expect("link");
    };
    let Some((d, t, upper)) = lazy_child("lazy_hardlinks_break_on_copy_up", 1 << 20, post, |_| {})
    else {
        return;
    };
    let ino = |p: &str| fs::metadata(t.join(p)).expect("stat").ino();
    assert_eq!(ino("hard1"), ino("hard2"), "shared until written");
    fs::write(t.join("hard1"), b"changed").expect("write");
    assert_eq!(fs::read(t.join("hard2")).expect("read"), b"same");
    assert_eq!(
        fs::read(d.host().join("hard2")).expect("read host"),
        b"same"
    );
    let report = change_report(&upper, &d.host()).expect("report");
    assert_eq!(paths(&report.modified), ["hard1"], "{report}");
}

#[test]
fn lazy_unreadable_file_stays_unreadable() {
    let post = |h: &Path| {
        // Owned by host root, unmapped in the sandbox: its container root has no override on it.
        fs::write(h.join("secret"), b"s").expect("write");
        fs::set_permissions(h.join("secret"), fs::Permissions::from_mode(0o600)).expect("chmod");
    };
    let Some((_d, t, _upper)) = lazy_child(
        "lazy_unreadable_file_stays_unreadable",
        1 << 20,
        |_| {},
        post,
    ) else {
        return;
    };
    let err = fs::read(t.join("secret")).expect_err("secret must stay unreadable");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
}

#[test]
fn lazy_non_utf8_names_round_trip() {
    let post = |h: &Path| {
        fs::write(h.join(std::ffi::OsStr::from_bytes(b"bin\xff\xfe")), b"raw").expect("write")
    };
    let Some((d, t, upper)) = lazy_child("lazy_non_utf8_names_round_trip", 1 << 20, post, |_| {})
    else {
        return;
    };
    assert_eq!(
        fs::read(t.join(std::ffi::OsStr::from_bytes(b"bin\xff\xfe"))).expect("read"),
        b"raw"
    );
    fs::write(t.join(std::ffi::OsStr::from_bytes(b"new\xff\\x41")), b"n").expect("create");
    let report = change_report(&upper, &d.host()).expect("report");
    assert_eq!(paths(&report.created), ["new\\xff\\\\x41"], "{report}");
    save_changes(&upper, &report, &d.dest()).expect("save");
    assert_eq!(
        fs::read(d.dest().join(std::ffi::OsStr::from_bytes(b"new\xff\\x41"))).expect("saved"),
        b"n"
    );
}

#[test]
fn lazy_copy_up_larger_than_the_tmpfs_fails_with_enospc() {
    let post = |h: &Path| fs::write(h.join("big"), vec![1u8; 2 << 20]).expect("write");
    // 1 MiB of tmpfs: the 2 MiB file is still shown (no copy), but cannot be copied up.
    let Some((_d, t, _upper)) = lazy_child(
        "lazy_copy_up_larger_than_the_tmpfs_fails_with_enospc",
        1 << 20,
        post,
        |_| {},
    ) else {
        return;
    };
    assert_eq!(fs::read(t.join("big")).expect("read big").len(), 2 << 20);
    let err = fs::OpenOptions::new()
        .append(true)
        .open(t.join("big"))
        .expect_err("copy-up cannot fit");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
}
