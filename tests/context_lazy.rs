//! Lazy mode for real: overlay on the host tree inside fresh namespaces, writes kept in tmpfs,
//! the change report and save_changes computed from the upper fd.

mod context_support;

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use context_support::{
    Dirs, Isolation, child_dirs, fill_project, paths, root_hash, run_child, run_child_with, spec,
};
use nucleus::context::{ContextError, change_report, prepare, save_changes};
use nucleus::spec::ContextMode;

/// The child side shared by the rootless and the root variants.
fn overlay_round_trip(d: &Dirs) {
    let host = d.host();
    let before = root_hash(&host);
    let prepared = prepare(
        &spec(ContextMode::Lazy, 8 << 20),
        &host,
        &d.scratch(),
        &d.target(),
    )
    .expect("prepare");
    assert!(prepared.root_hash.is_none());
    let upper = prepared.upper.expect("lazy mode has an upper layer");
    let t = d.target();

    assert_eq!(fs::read(t.join("README.md")).expect("read"), b"# project\n");
    assert_eq!(
        fs::read_link(t.join("src/link")).expect("readlink"),
        Path::new("main.rs")
    );

    fs::write(t.join("new.txt"), b"new").expect("create");
    fs::OpenOptions::new()
        .append(true)
        .open(t.join("src/main.rs"))
        .expect("open")
        .write_all(b"//x\n")
        .expect("append");
    fs::remove_file(t.join("README.md")).expect("rm");
    fs::remove_dir_all(t.join("src/deep")).expect("rm -r");
    fs::create_dir(t.join("src/deep")).expect("mkdir over a removed dir makes it opaque");
    fs::write(t.join("src/deep/x"), b"xx").expect("write");
    fs::create_dir(t.join("gen")).expect("mkdir");
    fs::write(t.join("gen/out.o"), b"obj").expect("write");
    // Opened for writing but left unchanged: copied up, yet not a modification.
    drop(
        fs::OpenOptions::new()
            .write(true)
            .open(t.join("src/lib.rs"))
            .expect("open rw"),
    );
    assert_eq!(
        root_hash(&host),
        before,
        "writes must not reach the host tree"
    );

    let report = change_report(&upper, &host).expect("report");
    assert_eq!(
        paths(&report.created),
        ["gen/out.o", "new.txt", "src/deep/x"],
        "{report}"
    );
    assert_eq!(paths(&report.modified), ["src/main.rs"], "{report}");
    assert_eq!(
        paths(&report.deleted),
        ["README.md", "src/deep/er/data.bin"],
        "{report}"
    );
    assert_eq!(report.modified[0].size, 17);
    assert_eq!(report.deleted[1].size, 100_000);
    assert!(
        report
            .to_string()
            .contains("3 created, 1 modified, 2 deleted")
    );

    let inside = host.join("saved");
    assert!(matches!(
        save_changes(&upper, &report, &inside),
        Err(ContextError::SaveInsideContext(..))
    ));
    save_changes(&upper, &report, &d.dest()).expect("save");
    assert_eq!(
        fs::read(d.dest().join("src/main.rs")).expect("saved"),
        b"fn main() {}\n//x\n"
    );
    assert_eq!(fs::read(d.dest().join("gen/out.o")).expect("saved"), b"obj");
    assert_eq!(
        fs::read_to_string(d.dest().join("deleted.txt")).expect("list"),
        "README.md\nsrc/deep/er/data.bin\n"
    );
    assert!(!d.dest().join("src/lib.rs").exists());

    for e in fs::read_dir(&t).expect("ls") {
        let p = e.expect("entry").path();
        let removed = if p.is_dir() && !p.is_symlink() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        removed.expect("rm -rf /context/*");
    }
    assert_eq!(fs::read_dir(&t).expect("ls").count(), 0);
    assert_eq!(
        root_hash(&host),
        before,
        "rm -rf of /context must leave the host tree byte-identical"
    );

    // The supervisor reads upper after the sandbox's mounts are gone: the fd alone keeps the tmpfs.
    let before_detach = change_report(&upper, &host).expect("report");
    assert_eq!(before_detach.deleted.len(), 5, "{before_detach}");
    for mount in [t, d.scratch()] {
        nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH).expect("detach");
    }
    let after_detach = change_report(&upper, &host).expect("report from the fd alone");
    assert_eq!(after_detach, before_detach);
}

#[test]
fn lazy_overlay_rootless() {
    match child_dirs("lazy_overlay_rootless") {
        Some(d) => overlay_round_trip(&d),
        None => drop(run_child(
            "lazy_overlay_rootless",
            Isolation::Rootless,
            fill_project,
        )),
    }
}

#[test]
fn lazy_overlay_as_root_in_initial_user_namespace() {
    match child_dirs("lazy_overlay_as_root_in_initial_user_namespace") {
        Some(d) => overlay_round_trip(&d),
        None => drop(run_child(
            "lazy_overlay_as_root_in_initial_user_namespace",
            Isolation::RootMountNs,
            fill_project,
        )),
    }
}

fn fill_hostile(host: &Path) {
    fill_project(host);
    std::os::unix::fs::symlink("../../../../../../etc/passwd", host.join("escape"))
        .expect("symlink");
    std::os::unix::fs::symlink("/etc/shadow", host.join("abs")).expect("symlink");
    nix::unistd::mkfifo(
        &host.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o666),
    )
    .expect("mkfifo");
    fs::write(host.join("hard1"), b"same").expect("write");
    fs::hard_link(host.join("hard1"), host.join("hard2")).expect("link");
    fs::write(
        host.join(std::ffi::OsStr::from_bytes(b"bin\xff\xfe")),
        b"raw",
    )
    .expect("non-utf8 name");
    fs::write(host.join("big"), vec![1u8; 2 << 20]).expect("big file");
}

fn make_device_and_secret(host: &Path) {
    // Owned by host root (unmapped in the sandbox): a device node and a file the sandbox cannot read.
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o666);
    nix::sys::stat::mknod(
        &host.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        mode,
        nix::sys::stat::makedev(1, 3),
    )
    .expect("mknod");
    fs::write(host.join("secret"), b"s").expect("write");
    std::os::unix::fs::lchown(host.join("secret"), Some(0), Some(0)).expect("chown");
    fs::set_permissions(
        host.join("secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
}

#[test]
fn lazy_hostile_tree_rootless() {
    let Some(d) = child_dirs("lazy_hostile_tree_rootless") else {
        // A live host socket in the tree, connectable by anyone on the host (mode 0777).
        let mut listener = None;
        let post = |host: &Path| {
            make_device_and_secret(host);
            let l = std::os::unix::net::UnixListener::bind(host.join("sock")).expect("bind");
            fs::set_permissions(
                host.join("sock"),
                std::os::unix::fs::PermissionsExt::from_mode(0o777),
            )
            .expect("chmod");
            listener = Some(l);
        };
        drop(run_child_with(
            "lazy_hostile_tree_rootless",
            Isolation::Rootless,
            fill_hostile,
            post,
        ));
        drop(listener);
        return;
    };
    let host = d.host();
    // 1 MiB of tmpfs: smaller than the 2 MiB file, which lazy mode must still show.
    let prepared = prepare(
        &spec(ContextMode::Lazy, 1 << 20),
        &host,
        &d.scratch(),
        &d.target(),
    )
    .expect("prepare");
    let upper = prepared.upper.expect("upper");
    let t = d.target();

    // Symlinks are shown as links, never resolved by nucleus; the escaping one is just a link.
    assert!(
        fs::symlink_metadata(t.join("escape"))
            .expect("lstat")
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read_link(t.join("escape")).expect("readlink"),
        Path::new("../../../../../../etc/passwd")
    );
    assert_eq!(
        fs::read_link(t.join("abs")).expect("readlink"),
        Path::new("/etc/shadow")
    );
    // A host socket cannot be reached through the overlay (it is not the bound inode), though the
    // lower bind, which the workload never sees after pivot_root, would connect.
    let err = std::os::unix::net::UnixStream::connect(t.join("sock")).expect_err("no host socket");
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED), "{err}");
    std::os::unix::net::UnixStream::connect(d.scratch().join("lower/sock"))
        .expect("control: lower connects");
    // A fifo seen through the overlay is not the host's pipe: a reader on it does not make the lower
    // (host) fifo openable for writing, while a reader on the lower one does (control).
    let nonblock = |write: bool, p: &Path| {
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(libc::O_NONBLOCK)
            .open(p)
    };
    let lower_fifo = d.scratch().join("lower/fifo");
    let overlay_reader = nonblock(false, &t.join("fifo")).expect("open overlay fifo for reading");
    let err = nonblock(true, &lower_fifo).expect_err("no reader on the host pipe");
    assert_eq!(err.raw_os_error(), Some(libc::ENXIO), "{err}");
    let lower_reader = nonblock(false, &lower_fifo).expect("control reader");
    nonblock(true, &lower_fifo).expect("control: writer finds the lower reader");
    drop((overlay_reader, lower_reader));
    // Device nodes are inert (nodev); fifos stay visible as fifos.
    let err = fs::File::open(t.join("null")).expect_err("device must not open");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
    assert!(
        fs::symlink_metadata(t.join("fifo"))
            .expect("lstat")
            .file_type()
            .is_fifo()
    );
    // Unreadable files stay unreadable.
    let err = fs::read(t.join("secret")).expect_err("secret must stay unreadable");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
    // Hard links: visible as one inode until written; a write copies up and breaks the link.
    let (m1, m2) = (
        fs::metadata(t.join("hard1")).expect("stat"),
        fs::metadata(t.join("hard2")).expect("stat"),
    );
    assert_eq!(m1.ino(), m2.ino());
    fs::write(t.join("hard1"), b"changed").expect("write");
    assert_eq!(fs::read(t.join("hard2")).expect("read"), b"same");
    // Non-UTF-8 names are visible and round-trip through the report and save.
    assert_eq!(
        fs::read(t.join(std::ffi::OsStr::from_bytes(b"bin\xff\xfe"))).expect("read"),
        b"raw"
    );
    fs::write(t.join(std::ffi::OsStr::from_bytes(b"new\xff")), b"n").expect("create non-utf8");
    // The 2 MiB file is readable but cannot be copied up into 1 MiB of tmpfs.
    assert_eq!(fs::read(t.join("big")).expect("read big").len(), 2 << 20);
    let err = fs::OpenOptions::new()
        .append(true)
        .open(t.join("big"))
        .expect_err("copy-up cannot fit");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");

    let report = change_report(&upper, &host).expect("report");
    assert_eq!(paths(&report.created), ["new\\xff"], "{report}");
    assert_eq!(paths(&report.modified), ["hard1"], "{report}");
    save_changes(&upper, &report, &d.dest()).expect("save");
    assert_eq!(
        fs::read(d.dest().join(std::ffi::OsStr::from_bytes(b"new\xff"))).expect("saved"),
        b"n"
    );
}

#[test]
fn writable_binds_the_host_tree() {
    let Some(d) = child_dirs("writable_binds_the_host_tree") else {
        let tmp = run_child(
            "writable_binds_the_host_tree",
            Isolation::Rootless,
            fill_project,
        );
        assert_eq!(
            fs::read(tmp.path().join("host/written")).expect("write went through"),
            b"w"
        );
        return;
    };
    let mut s = spec(ContextMode::Lazy, 1 << 20);
    s.writable = true;
    let prepared = prepare(&s, &d.host(), &d.scratch(), &d.target()).expect("prepare");
    assert!(prepared.upper.is_none());
    fs::write(d.target().join("written"), b"w").expect("write through");
}
