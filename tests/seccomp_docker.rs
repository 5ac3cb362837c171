//! Docker's own profiles (test data, loaded as they are): they parse, compile for both arches, run a
//! shell, and refuse what they forbid with the errno they name.

mod seccomp_common;

use nucleus::seccomp::policy::Host;
use nucleus::seccomp::syscalls::Arch;
use nucleus::seccomp::{FilterMode, Policy};
use nucleus::sys::seccomp::{self as sys, ChildEnd};
use seccomp_common::{case, check_in_child, install, testdata};

const FILES: [&str; 4] = [
    "docker-default.json",
    "docker-20.10-default.json",
    "example.json",
    "conditional_include.json",
];

fn load(name: &str, arch: Arch) -> Policy {
    let json = std::fs::read_to_string(testdata(name)).expect("test data present next to the repo");
    let (policy, warnings) = Policy::from_json(&json, &Host::for_arch(arch)).expect("parses");
    assert!(warnings.is_empty(), "{name}: {warnings:?}");
    policy
}

#[test]
fn every_profile_loads_and_compiles_for_both_arches() {
    for name in FILES {
        for arch in Arch::ALL {
            let policy = load(name, arch);
            for mode in [
                FilterMode::Enforce { notify: false },
                FilterMode::Enforce { notify: true },
                FilterMode::Trace,
            ] {
                let prog = policy.compile(mode).expect("compiles");
                assert!(
                    prog.len() > 4 && prog.len() < 4096,
                    "{name} {arch:?}: {} insns",
                    prog.len()
                );
            }
        }
    }
}

#[test]
fn conditional_rules_resolve_for_an_unprivileged_sandbox() {
    let p = load("conditional_include.json", Arch::X86_64);
    // syslog needs CAP_SYSLOG (we hold none); ptrace is excluded only for CAP_SYS_ADMIN holders.
    assert_eq!(
        p.decide(libc::SYS_syslog, &[0; 6]),
        nucleus::seccomp::Decision::Errno(1)
    );
    assert_eq!(
        p.decide(libc::SYS_ptrace, &[0; 6]),
        nucleus::seccomp::Decision::Allow
    );
    assert_eq!(
        p.decide(libc::SYS_chmod, &[0; 6]),
        nucleus::seccomp::Decision::Allow
    );
}

fn shell_runs(policy: &Policy) {
    let end = sys::fork_and_wait(|| {
        install(policy, FilterMode::Enforce { notify: false });
        match std::process::Command::new("/bin/sh")
            .args(["-c", "echo ok"])
            .output()
        {
            Ok(o) if o.status.success() && o.stdout == b"ok\n" => 0,
            other => {
                eprintln!("sh under the profile: {other:?}");
                1
            }
        }
    })
    .expect("fork");
    assert_eq!(end, ChildEnd::Exited(0));
}

#[test]
fn docker_default_runs_a_shell_and_denies_namespaces_and_mounts() {
    for name in ["docker-default.json", "docker-20.10-default.json"] {
        let policy = load(name, Arch::native());
        shell_runs(&policy);
        let eperm = Some(libc::EPERM);
        let thread = libc::CLONE_THREAD as u64;
        let cases = [
            case(
                "unshare",
                libc::SYS_unshare,
                [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
                eperm,
            ),
            case("mount", libc::SYS_mount, [0; 6], eperm),
            case("setns", libc::SYS_setns, [0; 6], eperm),
            case(
                "clone NEWNS",
                libc::SYS_clone,
                [libc::CLONE_NEWNS as u64 | thread, 0, 0, 0, 0, 0],
                eperm,
            ),
            case("getppid", libc::SYS_getppid, [0; 6], None),
        ];
        check_in_child(&policy, FilterMode::Enforce { notify: false }, &cases);
    }
    // The current profile answers clone3 with ENOSYS when CAP_SYS_ADMIN is absent.
    let policy = load("docker-default.json", Arch::native());
    check_in_child(
        &policy,
        FilterMode::Enforce { notify: false },
        &[case("clone3", libc::SYS_clone3, [0; 6], Some(libc::ENOSYS))],
    );
}

#[test]
fn example_profile_allows_only_what_it_lists() {
    let policy = load("example.json", Arch::native());
    let cases = [
        case(
            "close(-1) reaches the kernel",
            libc::SYS_close,
            [u64::MAX, 0, 0, 0, 0, 0],
            Some(libc::EBADF),
        ),
        case(
            "getppid is not listed",
            libc::SYS_getppid,
            [0; 6],
            Some(libc::EPERM),
        ),
        case(
            "clone NEWUSER",
            libc::SYS_clone,
            [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
            Some(libc::EPERM),
        ),
    ];
    check_in_child(&policy, FilterMode::Enforce { notify: false }, &cases);
}
