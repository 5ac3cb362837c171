//! The default profile, enforced by the real kernel: every listed denial gets its errno, the
//! compat entry points kill, and ordinary calls still work.

mod seccomp_common;

use nucleus::seccomp::{FilterMode, Policy};
use nucleus::spec::{SeccompMode, SeccompSpec};
use nucleus::sys::seccomp::{self as sys, ChildEnd};
use seccomp_common::{case, check_in_child, install, sc};

const PERM: Option<i32> = Some(libc::EPERM);
const NOSYS: Option<i32> = Some(libc::ENOSYS);
const ENFORCE: FilterMode = FilterMode::Enforce { notify: false };

fn no_args() -> [u64; 6] {
    [0; 6]
}

fn a(first: &[u64]) -> [u64; 6] {
    let mut args = [0; 6];
    args[..first.len()].copy_from_slice(first);
    args
}

#[test]
fn default_profile_denials_get_eperm() {
    use libc::*;
    let denied: &[(&str, i64)] = &[
        ("mount", SYS_mount),
        ("umount2", SYS_umount2),
        ("pivot_root", SYS_pivot_root),
        ("move_mount", SYS_move_mount),
        ("open_tree", SYS_open_tree),
        ("fsopen", SYS_fsopen),
        ("fsconfig", SYS_fsconfig),
        ("fsmount", SYS_fsmount),
        ("fspick", SYS_fspick),
        ("mount_setattr", SYS_mount_setattr),
        ("unshare", SYS_unshare),
        ("setns", SYS_setns),
        ("keyctl", SYS_keyctl),
        ("add_key", SYS_add_key),
        ("request_key", SYS_request_key),
        ("bpf", SYS_bpf),
        ("perf_event_open", SYS_perf_event_open),
        ("userfaultfd", SYS_userfaultfd),
        ("io_uring_setup", SYS_io_uring_setup),
        ("io_uring_enter", SYS_io_uring_enter),
        ("io_uring_register", SYS_io_uring_register),
        ("kexec_load", SYS_kexec_load),
        ("kexec_file_load", SYS_kexec_file_load),
        ("init_module", SYS_init_module),
        ("finit_module", SYS_finit_module),
        ("delete_module", SYS_delete_module),
        ("open_by_handle_at", SYS_open_by_handle_at),
        ("name_to_handle_at", SYS_name_to_handle_at),
        ("syslog", SYS_syslog),
        ("reboot", SYS_reboot),
        ("settimeofday", SYS_settimeofday),
        ("clock_settime", SYS_clock_settime),
        ("clock_adjtime", SYS_clock_adjtime),
        ("adjtimex", SYS_adjtimex),
        ("swapon", SYS_swapon),
        ("swapoff", SYS_swapoff),
        ("ptrace", SYS_ptrace),
        ("process_vm_readv", SYS_process_vm_readv),
        ("process_vm_writev", SYS_process_vm_writev),
    ];
    let mut cases: Vec<_> = denied
        .iter()
        .map(|(what, nr)| case(what, *nr, no_args(), PERM))
        .collect();
    // clone with each CLONE_NEW* flag; CLONE_THREAD without CLONE_SIGHAND makes it EINVAL if let through.
    let thread = CLONE_THREAD as u64;
    for (what, flag) in [
        ("clone NEWNS", CLONE_NEWNS),
        ("clone NEWCGROUP", CLONE_NEWCGROUP),
        ("clone NEWUTS", CLONE_NEWUTS),
        ("clone NEWIPC", CLONE_NEWIPC),
        ("clone NEWUSER", CLONE_NEWUSER),
        ("clone NEWPID", CLONE_NEWPID),
        ("clone NEWNET", CLONE_NEWNET),
    ] {
        cases.push(case(what, SYS_clone, a(&[flag as u64 | thread]), PERM));
    }
    cases.push(case(
        "clone without NEW flags reaches the kernel",
        SYS_clone,
        a(&[thread]),
        Some(EINVAL),
    ));
    cases.push(case(
        "clone3 → ENOSYS for the libc fallback",
        SYS_clone3,
        no_args(),
        NOSYS,
    ));
    // ioctl requests are compared on their low 32 bits.
    cases.push(case("TIOCSTI", SYS_ioctl, a(&[0, 0x5412]), PERM));
    cases.push(case(
        "TIOCSTI with high bits",
        SYS_ioctl,
        a(&[0, 0xffff_ffff_0000_5412]),
        PERM,
    ));
    cases.push(case("TIOCLINUX", SYS_ioctl, a(&[0, 0x541c]), PERM));
    cases.push(case(
        "other ioctl reaches the kernel",
        SYS_ioctl,
        a(&[u64::MAX, 0x541b]),
        Some(EBADF),
    ));
    // socket families.
    for (what, fam, proto) in [
        ("AF_PACKET", AF_PACKET, 0),
        ("AF_VSOCK", AF_VSOCK, 0),
        ("AF_BLUETOOTH", AF_BLUETOOTH, 0),
        ("NETLINK_AUDIT", AF_NETLINK, NETLINK_AUDIT),
        ("AF_ALG", AF_ALG, 0),
    ] {
        cases.push(case(
            what,
            SYS_socket,
            a(&[fam as u64, SOCK_RAW as u64, proto as u64]),
            PERM,
        ));
    }
    for (what, fam, ty) in [
        ("AF_UNIX", AF_UNIX, SOCK_STREAM),
        ("AF_INET", AF_INET, SOCK_DGRAM),
        ("AF_INET6", AF_INET6, SOCK_DGRAM),
        ("NETLINK_ROUTE", AF_NETLINK, SOCK_RAW),
    ] {
        cases.push(case(what, SYS_socket, a(&[fam as u64, ty as u64, 0]), None));
    }
    // personality: Docker's safe values pass, others fall to the default action (ENOSYS): an
    // unconditional EPERM rule would, in libseccomp (Docker, crun), override the allowed values.
    cases.push(case(
        "personality query",
        SYS_personality,
        a(&[0xffff_ffff]),
        None,
    ));
    cases.push(case(
        "personality PER_LINUX",
        SYS_personality,
        a(&[0]),
        None,
    ));
    cases.push(case(
        "personality ADDR_NO_RANDOMIZE",
        SYS_personality,
        a(&[0x0040000]),
        NOSYS,
    ));
    cases.push(case(
        "personality READ_IMPLIES_EXEC",
        SYS_personality,
        a(&[0x0400000]),
        NOSYS,
    ));
    // Calls the profile does not know → ENOSYS; ordinary calls work.
    cases.push(case(
        "lsm_list_modules (not in profile)",
        461,
        no_args(),
        NOSYS,
    ));
    cases.push(case("getppid", SYS_getppid, no_args(), None));
    cases.push(case(
        "uname (null → EFAULT from the kernel)",
        SYS_uname,
        no_args(),
        Some(EFAULT),
    ));
    check_in_child(&Policy::default_profile(), ENFORCE, &cases);
}

#[test]
fn allow_ptrace_reallows_the_ptrace_family() {
    let spec = SeccompSpec {
        mode: SeccompMode::Enforce,
        profile_json: Policy::default_profile_json().into(),
        profile_source: "default".into(),
        allow_ptrace: true,
    };
    let (policy, warnings) = Policy::from_spec(&spec).expect("default profile");
    assert!(warnings.is_empty(), "{warnings:?}");
    // The calls reach the kernel: ESRCH for a bad pid, success for an empty copy, not the filter's EPERM.
    let cases = [
        case(
            "ptrace bad request",
            libc::SYS_ptrace,
            a(&[0x7fff_ffff]),
            Some(libc::ESRCH),
        ),
        case(
            "process_vm_readv no-op",
            libc::SYS_process_vm_readv,
            no_args(),
            None,
        ),
    ];
    check_in_child(&policy, ENFORCE, &cases);
}

#[test]
fn int80_compat_entry_is_killed() {
    let policy = Policy::default_profile();
    let end = sys::fork_and_wait(|| {
        install(&policy, ENFORCE);
        let _ = sys::int80_getpid();
        0
    })
    .expect("fork");
    assert_eq!(end, ChildEnd::Signaled(libc::SIGSYS));
}

#[test]
fn x32_numbers_are_killed() {
    let policy = Policy::default_profile();
    let end = sys::fork_and_wait(|| {
        install(&policy, ENFORCE);
        let _ = sc(0x4000_0000 | libc::SYS_getppid, no_args());
        0
    })
    .expect("fork");
    assert_eq!(end, ChildEnd::Signaled(libc::SIGSYS));
}

#[test]
fn shell_and_tools_run_under_the_default_profile() {
    let policy = Policy::default_profile();
    let end = sys::fork_and_wait(|| {
        install(&policy, ENFORCE);
        let out = std::process::Command::new("/bin/sh")
            .args([
                "-c",
                "echo ok | cat; ls / >/dev/null && python3 -c 'import os; print(os.getpid() > 0)'",
            ])
            .output();
        match out {
            Ok(o) if o.status.success() && o.stdout == b"ok\nTrue\n" => 0,
            other => {
                eprintln!("shell under default profile: {other:?}");
                1
            }
        }
    })
    .expect("fork");
    assert_eq!(end, ChildEnd::Exited(0));
}

#[test]
fn development_tools_run_under_the_default_profile() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = "set -e; printf 'int main(void){return 0;}\\n' > a.c; printf 'a: a.c\\n\\tcc -O1 a.c -o a\\n' > Makefile; \
                  make -s; ./a; git init -q repo; git -C repo status --short; \
                  node -e 'require(\"fs\").readdirSync(\".\"); require(\"child_process\").execSync(\"true\")'; \
                  python3 -c 'import subprocess, socket; subprocess.run([\"true\"], check=True); socket.socket().close()'; \
                  echo hi | less -F >/dev/null; top -bn1 >/dev/null; vim -es -c 'q' </dev/null; echo done";
    let policy = Policy::default_profile();
    let end = sys::fork_and_wait(|| {
        install(&policy, ENFORCE);
        let out = std::process::Command::new("/bin/bash")
            .arg("-c")
            .arg(script)
            .current_dir(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() && o.stdout.ends_with(b"done\n") => 0,
            other => {
                eprintln!("development tools under the default profile: {other:?}");
                1
            }
        }
    })
    .expect("fork");
    assert_eq!(end, ChildEnd::Exited(0));
}
