//! cgroup v2 for real: the hybrid's unified hierarchy (no controllers), and a fresh cgroup2 mount.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nucleus::cgroup::{self, CgroupError, CgroupLayout, CgroupSetup, SandboxCgroup, Version};
use nucleus::spec::Limits;

use common::{held, release};

fn create(layout: &CgroupLayout, name: &str, limits: Limits) -> Result<SandboxCgroup, CgroupError> {
    let id = format!("t{}-{name}", std::process::id());
    match cgroup::create_in(layout, &id, &limits)? {
        CgroupSetup::Limited(cg) => Ok(cg),
        CgroupSetup::Unavailable { reason } => panic!("unavailable as root: {reason}"),
    }
}

/// Create, fill, sample, kill and remove a v2 cgroup in `layout`.
fn exercise(layout: &CgroupLayout, name: &str) {
    let cg = create(layout, name, Limits::default()).expect("creates");
    assert_eq!(cg.version(), Version::V2);
    let dir = cg.paths()[0].to_owned();
    assert!(dir.join("cgroup.procs").exists());
    let mut child = held("while :; do :; done");
    cg.add_process(child.id()).expect("add");
    release(&mut child);
    // Other tests share the two cores, so wait for the usage instead of guessing a duration.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sample = cg.sample();
    while sample.cpu_usage_usec <= 50_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        sample = cg.sample();
    }
    assert!(
        sample.cpu_usage_usec > 50_000,
        "cpu.stat usage_usec counts the loop: {sample:?}"
    );
    assert_eq!(sample.pids, 1, "one task in the cgroup");
    assert!(
        sample.memory_bytes > 0,
        "resident memory of the task, without a memory controller"
    );
    assert_eq!(sample.memory_limit_bytes, None);
    assert_eq!(cg.describe()["version"], "v2");
    cg.kill_all();
    assert_eq!(
        child.wait().expect("wait").signal(),
        Some(9),
        "cgroup.kill sends SIGKILL"
    );
    drop(cg);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn unified_hierarchy_of_the_hybrid_host() {
    let layout = CgroupLayout::detect_at(Path::new("/sys/fs/cgroup/unified")).expect("detects");
    assert!(matches!(layout, CgroupLayout::V2 { .. }), "{layout:?}");
    exercise(&layout, "unified");
}

#[test]
fn limit_without_its_controller_is_an_error_naming_it() {
    let layout = CgroupLayout::detect_at(Path::new("/sys/fs/cgroup/unified")).expect("detects");
    // On the hybrid host the memory controller is bound to v1, so v2 cannot offer it.
    let err = create(
        &layout,
        "nomem",
        Limits {
            memory_bytes: Some(1 << 30),
            ..Limits::default()
        },
    )
    .expect_err("memory is bound to v1 here");
    assert!(
        matches!(
            err,
            CgroupError::ControllerMissing {
                controller: "memory",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("--memory"), "{err}");
}

#[test]
fn fresh_cgroup2_mount_is_detected_by_magic() {
    let dir = tempfile::tempdir().expect("tempdir");
    mount(
        Some("none"),
        dir.path(),
        Some("cgroup2"),
        MsFlags::empty(),
        None::<&str>,
    )
    .expect("mount cgroup2");
    let layout = CgroupLayout::detect_at(dir.path()).expect("detects");
    let result = std::panic::catch_unwind(|| {
        assert_eq!(
            layout,
            CgroupLayout::V2 {
                mount: dir.path().to_owned()
            }
        );
        exercise(&layout, "fresh");
    });
    umount2(dir.path(), MntFlags::MNT_DETACH).expect("umount");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn tmpfs_without_controllers_has_no_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    mount(
        Some("tmpfs"),
        dir.path(),
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .expect("mount tmpfs");
    let layout = CgroupLayout::detect_at(dir.path());
    umount2(dir.path(), MntFlags::MNT_DETACH).expect("umount");
    assert_eq!(layout.expect("statfs works"), CgroupLayout::None);
}
