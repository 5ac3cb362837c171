//! Resolution and evaluation of profiles (pure, no kernel).

use crate::seccomp::policy::{Decision, Host, Policy};
use crate::seccomp::syscalls::Arch;
use crate::spec::{SeccompMode, SeccompSpec};

fn host(arch: Arch, kernel: (u32, u32), caps: &[&str]) -> Host {
    Host {
        arch,
        kernel,
        caps: caps.iter().map(|c| (*c).to_owned()).collect(),
    }
}

fn resolve(json: &str, host: &Host) -> (Policy, Vec<String>) {
    Policy::from_json(json, host).expect("valid profile")
}

const CONDITIONAL: &str = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
    {"names":["getpid"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["amd64"]}},
    {"names":["getppid"],"action":"SCMP_ACT_ALLOW","excludes":{"arches":["SCMP_ARCH_X86_64"]}},
    {"names":["syslog"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYSLOG"]}},
    {"names":["ptrace"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":["CAP_SYS_ADMIN"]}},
    {"names":["statx"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4.11"}},
    {"names":["uname"],"action":"SCMP_ACT_ALLOW","excludes":{"minKernel":"9.0"}}]}"#;

#[test]
fn includes_and_excludes_follow_arch_caps_and_kernel() {
    let (p, _) = resolve(CONDITIONAL, &host(Arch::X86_64, (6, 18), &[]));
    let d = |name: &str| {
        p.decide(
            i64::from(Arch::X86_64.number(name).expect("known")),
            &[0; 6],
        )
    };
    assert_eq!(d("getpid"), Decision::Allow);
    assert_eq!(d("getppid"), Decision::Errno(1), "excluded on x86_64");
    assert_eq!(d("syslog"), Decision::Errno(1), "needs CAP_SYSLOG");
    assert_eq!(
        d("ptrace"),
        Decision::Allow,
        "only excluded for CAP_SYS_ADMIN"
    );
    assert_eq!(d("statx"), Decision::Allow);
    assert_eq!(d("uname"), Decision::Allow);
    let (old, _) = resolve(
        CONDITIONAL,
        &host(Arch::X86_64, (4, 4), &["CAP_SYSLOG", "CAP_SYS_ADMIN"]),
    );
    let d = |name: &str| {
        old.decide(
            i64::from(Arch::X86_64.number(name).expect("known")),
            &[0; 6],
        )
    };
    assert_eq!(d("statx"), Decision::Errno(1), "kernel too old");
    assert_eq!(d("syslog"), Decision::Allow);
    assert_eq!(d("ptrace"), Decision::Errno(1));
    let (arm, _) = resolve(CONDITIONAL, &host(Arch::Aarch64, (6, 18), &[]));
    let nr = |name: &str| i64::from(Arch::Aarch64.number(name).expect("known"));
    assert_eq!(arm.decide(nr("getpid"), &[0; 6]), Decision::Errno(1));
    assert_eq!(arm.decide(nr("getppid"), &[0; 6]), Decision::Allow);
}

#[test]
fn unknown_names_warn_and_other_arch_names_do_not() {
    let json = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["read","chown32","no_such_call"],"action":"SCMP_ACT_ALLOW"}]}"#;
    let (p, warnings) = resolve(json, &host(Arch::X86_64, (6, 18), &[]));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("no_such_call"));
    assert_eq!(p.decide(0, &[0; 6]), Decision::Allow);
}

#[test]
fn errno_defaults_to_eperm_and_exit_is_always_allowed() {
    let json = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["exit_group","getpid"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#;
    let (p, _) = resolve(json, &host(Arch::X86_64, (6, 18), &[]));
    assert_eq!(p.default_decision(), Decision::Errno(1));
    assert_eq!(p.decide(libc::SYS_exit_group, &[0; 6]), Decision::Allow);
    assert_eq!(p.decide(libc::SYS_exit, &[0; 6]), Decision::Allow);
    assert_eq!(p.decide(libc::SYS_getpid, &[0; 6]), Decision::KillProcess);
}

#[test]
fn x32_is_killed_and_minus_one_gets_the_default() {
    let p = Policy::default_profile();
    assert_eq!(
        p.decide(0x4000_0000 | libc::SYS_getppid, &[0; 6]),
        Decision::KillProcess
    );
    assert_eq!(p.decide(-1, &[0; 6]), Decision::Errno(38));
    assert_eq!(p.decide(9999, &[0; 6]), Decision::Errno(38));
}

#[test]
fn execve_and_ptrace_flags() {
    let p = Policy::default_profile();
    assert!(p.allows_execve());
    assert_eq!(p.decide(libc::SYS_ptrace, &[0; 6]), Decision::Errno(1));
    let no_exec = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["execve"],"action":"SCMP_ACT_ALLOW",
        "args":[{"index":1,"value":0,"op":"SCMP_CMP_NE"}]}]}"#;
    assert!(
        !resolve(no_exec, &host(Arch::X86_64, (6, 18), &[]))
            .0
            .allows_execve()
    );
    let spec = SeccompSpec {
        mode: SeccompMode::Enforce,
        profile_json: Policy::default_profile_json().into(),
        profile_source: "default".into(),
        allow_ptrace: true,
    };
    let (p, _) = Policy::from_spec(&spec).expect("default profile");
    assert_eq!(p.decide(libc::SYS_ptrace, &[0; 6]), Decision::Allow);
    assert_eq!(
        p.decide(libc::SYS_process_vm_writev, &[0; 6]),
        Decision::Allow
    );
    assert_eq!(
        p.digest(),
        blake3::hash(spec.profile_json.as_bytes())
            .to_hex()
            .to_string()
    );
}

#[test]
fn default_profile_has_no_warnings_on_either_arch() {
    for arch in Arch::ALL {
        let (_, warnings) = resolve(Policy::default_profile_json(), &host(arch, (6, 18), &[]));
        assert!(warnings.is_empty(), "{arch:?}: {warnings:?}");
    }
}
