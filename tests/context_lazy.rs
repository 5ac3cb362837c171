//! Lazy mode for real: overlay on the host tree inside fresh namespaces, writes kept in tmpfs,
//! the change report and save_changes computed from the upper fd.

mod context_support;

use std::fs;
use std::io::Write;
use std::path::Path;

use context_support::{
    Dirs, Isolation, child_dirs, fill_project, paths, root_hash, run_child, spec,
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
