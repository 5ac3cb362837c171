//! The feature probes the runtime reuses, run against this machine's kernel (root, v1-hybrid).

use nucleus::features::{self, BpfProgType, CgroupVersion};

#[test]
fn user_namespaces_work_for_us_and_for_nobody() {
    assert!(features::max_user_namespaces().is_some_and(|n| n > 0));
    assert!(features::userns_available());
    assert!(features::unprivileged_userns_available());
}

#[test]
fn every_sandbox_namespace_can_be_created() {
    features::sandbox_namespaces().expect("user + mount/pid/net/uts/ipc/cgroup namespaces");
}

#[test]
fn overlay_in_a_user_namespace_mounts() {
    features::overlay_in_userns().expect("overlay probe");
}

#[test]
fn probes_leave_the_caller_untouched() {
    let before = std::fs::read_link("/proc/self/ns/user").expect("own userns");
    features::overlay_in_userns().expect("overlay probe");
    assert_eq!(
        std::fs::read_link("/proc/self/ns/user").expect("own userns"),
        before
    );
    let after = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !after.contains("lowerdir=/tmp/l"),
        "the probe's overlay leaked into our namespace"
    );
}

#[test]
fn seccomp_and_landlock() {
    assert!(features::user_notif_available());
    assert!(features::seccomp_actions().iter().any(|a| a == "errno"));
    assert!(features::landlock_abi().is_some_and(|abi| abi >= 1));
}

#[test]
fn cgroup_layout_is_hybrid_with_v1_controllers() {
    assert_eq!(features::cgroup_layout(), CgroupVersion::Hybrid);
    assert_eq!(CgroupVersion::Hybrid.to_string(), "v1-hybrid");
    let controllers = features::cgroup_controllers();
    for c in ["memory", "cpu", "pids"] {
        assert!(controllers.iter().any(|x| x == c), "{c} in {controllers:?}");
    }
    let (_, memory) = features::own_cgroup_dirs()
        .into_iter()
        .find(|(c, _)| c == "memory")
        .expect("memory dir");
    let probe = features::can_create_child_cgroup(&memory).expect("root can create a child cgroup");
    assert!(!probe.exists(), "the probe cgroup is removed again");
}

#[test]
fn pidfd_and_bpf_as_root() {
    features::pidfd_available().expect("pidfd_open + pidfd_getfd");
    assert!(features::has_cap_bpf());
    features::bpf_load(BpfProgType::SocketFilter).expect("socket filter loads as root");
    features::bpf_load(BpfProgType::RawTracepoint).expect("raw tracepoint loads as root");
}

#[test]
fn a_failing_probe_reports_the_errno() {
    // Without a user namespace, nobody may not create a mount namespace: the child's EPERM comes back.
    let err = nucleus::sys::probe::unshare_in_child(libc::CLONE_NEWNS, Some((65534, 65534)))
        .expect_err("nobody cannot unshare a mount namespace alone");
    assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
}
