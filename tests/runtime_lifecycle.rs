//! Exit codes, signal forwarding and cleanup on every exit path.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{As, Scratch, describe, nucleus, run_sh};

#[test]
fn exit_codes_follow_the_contract() {
    let scratch = Scratch::new(As::Root);
    let code = |script: &str| run_sh(As::Root, &scratch, &[], script).status.code();
    assert_eq!(code("exit 42"), Some(42));
    assert_eq!(code("kill -TERM $$"), Some(128 + 15));
    assert_eq!(code("kill -KILL $$"), Some(128 + 9));
    let ctx = scratch.subdir("ctx");
    let run = |cmd: &[&str]| {
        nucleus(As::Root, scratch.path())
            .arg("run")
            .arg(&ctx)
            .arg("--")
            .args(cmd)
            .output()
            .expect("run")
    };
    let not_found = run(&["no-such-command"]);
    assert_eq!(
        not_found.status.code(),
        Some(127),
        "{}",
        describe(&not_found)
    );
    assert!(String::from_utf8_lossy(&not_found.stderr).contains("command not found"));
    let not_exec = run(&["/etc/hostname"]);
    assert_eq!(not_exec.status.code(), Some(126), "{}", describe(&not_exec));
    let missing_dir = nucleus(As::Root, scratch.path())
        .args(["run", "/no/such/dir", "--", "true"])
        .output()
        .expect("run");
    assert_eq!(
        missing_dir.status.code(),
        Some(125),
        "{}",
        describe(&missing_dir)
    );
    assert!(String::from_utf8_lossy(&missing_dir.stderr).contains("/no/such/dir"));
    let bad_usage = nucleus(As::Root, scratch.path())
        .args(["run", "--no-such-flag", "--", "true"])
        .output()
        .expect("run");
    assert_eq!(
        bad_usage.status.code(),
        Some(125),
        "{}",
        describe(&bad_usage)
    );
}

#[test]
fn a_step_failing_inside_the_sandbox_is_reported_with_its_step_and_hint() {
    let scratch = Scratch::new(As::Root);
    let ctx = scratch.subdir("ctx");
    // PID 1 fails at the context step, usually with the supervisor's seccomp filter still unread in
    // its socket: the report must survive that (the kernel's ECONNRESET comes first). Several runs,
    // because which of the two happens first is a race.
    for _ in 0..5 {
        let out = nucleus(As::Root, scratch.path())
            .arg("run")
            .arg(&ctx)
            .args(["--context-mode", "snapshot", "--expect-root-hash"])
            .arg("0".repeat(64))
            .args(["--", "true"])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("setup step `context` failed") && stderr.contains("hint:"),
            "{}",
            describe(&out)
        );
    }
}

/// Start `nucleus run -- sh -c SCRIPT` with a cgroup and wait until it prints "ready".
fn start_ready(scratch: &Scratch, script: &str) -> std::process::Child {
    // A pid limit makes nucleus create a cgroup, whose removal the tests check.
    start_ready_with(scratch, &["--pids", "256"], script)
}

/// Start `nucleus run OPTIONS -- sh -c SCRIPT`, its stdin a pipe, and wait until it prints "ready".
fn start_ready_with(scratch: &Scratch, options: &[&str], script: &str) -> std::process::Child {
    let ctx = scratch.subdir("ctx");
    let mut child = nucleus(As::Root, scratch.path())
        .arg("run")
        .arg(&ctx)
        .args(options)
        .args(["--", "/bin/sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line.trim(), "ready");
    child
}

/// Host pids of every descendant of `root` (from /proc).
fn descendants(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(after) = stat.rsplit_once(") ").map(|(_, a)| a.to_owned()) else {
            continue;
        };
        let ppid: u32 = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        parents.push((pid, ppid));
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

fn wait_until_gone(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids
        .iter()
        .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
    {
        assert!(
            Instant::now() < deadline,
            "sandbox processes {pids:?} survived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mount_count() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .count()
}

#[test]
fn signals_to_nucleus_reach_the_workload() {
    let scratch = Scratch::new(As::Root);
    let mut child = start_ready(
        &scratch,
        "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done",
    );
    let sandbox = descendants(child.id());
    let cgroups = cgroups_of(sandbox[sandbox.len() - 1]);
    assert!(!cgroups.is_empty(), "the sandbox runs in a nucleus cgroup");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let status = child.wait().expect("wait");
    assert_eq!(
        status.code(),
        Some(7),
        "the workload's TERM trap decides the exit code"
    );
    wait_until_gone(&sandbox);
    for dir in cgroups {
        assert!(!dir.exists(), "cgroup {} left behind", dir.display());
    }
}

#[test]
fn kill_9_of_nucleus_leaves_no_process_mount_or_cgroup() {
    let scratch = Scratch::new(As::Root);
    let mounts_before = mount_count();
    let mut child = start_ready(&scratch, "echo ready; sleep 1000");
    let sandbox = descendants(child.id());
    assert!(sandbox.len() >= 2, "PID 1 and the workload: {sandbox:?}");
    let cgroups = cgroups_of(sandbox[sandbox.len() - 1]);
    assert!(!cgroups.is_empty(), "the sandbox runs in a nucleus cgroup");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    wait_until_gone(&sandbox);
    assert_eq!(mount_count(), mounts_before, "no host mount left");
    for dir in cgroups {
        // The kernel removes nothing by itself: nucleus's cgroup directory must be gone too, or empty
        // and removed by the next run's sweep. A leftover empty directory is a leak.
        let deadline = Instant::now() + Duration::from_secs(5);
        while dir.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!dir.exists(), "cgroup {} left behind", dir.display());
    }
}

#[test]
fn normal_exit_leaves_no_process_or_cgroup() {
    let scratch = Scratch::new(As::Root);
    let mut child = start_ready(&scratch, "echo ready; sleep 0.3");
    let sandbox = descendants(child.id());
    let cgroups = cgroups_of(sandbox[sandbox.len() - 1]);
    assert!(!cgroups.is_empty(), "the sandbox runs in a nucleus cgroup");
    assert!(child.wait().expect("wait").success());
    wait_until_gone(&sandbox);
    for dir in cgroups {
        assert!(!dir.exists(), "cgroup {} left behind", dir.display());
    }
}

/// Without a cgroup nucleus does not wait for PID 1's own exit (the kernel unmounting its root),
/// nor for its own memory's teardown (its `nucleus-exit` child, which dies with it); but by the
/// time it returns, every other process of the sandbox is gone: nothing left running writes to the
/// context any more. (PID 1 kills and reaps them before it reports; the kernel's own
/// kill at PID 1's exit comes less than a millisecond later, so this checks the guarantee, and
/// would catch a supervisor that returned early, rather than pinning the mechanism.)
#[test]
fn without_a_cgroup_nothing_but_an_exiting_pid_1_outlives_nucleus() {
    let scratch = Scratch::new(As::Root);
    let ctx = scratch.subdir("ctx");
    let trail = ctx.join("trail");
    // As root the sandbox runs as an unprivileged host id: let it append.
    std::fs::write(&trail, "").expect("trail");
    std::fs::set_permissions(&trail, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .expect("chmod");
    let script =
        "while :; do echo x >> /context/trail; done & sleep 1000 & echo ready; read line || exit 0";
    let mut child = start_ready_with(&scratch, &["--writable"], script);
    let sandbox = descendants(child.id());
    assert!(
        sandbox.len() >= 4,
        "PID 1, sh, the loop and sleep: {sandbox:?}"
    );
    let (pid1, rest) = sandbox.split_first().expect("PID 1");
    let (teardown, rest): (Vec<u32>, Vec<u32>) =
        rest.iter().partition(|p| comm(**p) == "nucleus-exit");
    assert_eq!(teardown.len(), 1, "one teardown child: {sandbox:?}");
    let held = std::fs::read_dir(format!("/proc/{}/fd", teardown[0]))
        .expect("the teardown child's fds")
        .count();
    assert_eq!(held, 0, "the teardown child holds no descriptor");
    drop(child.stdin.take()); // sh reads EOF and exits, leaving the loop and sleep running
    assert!(child.wait().expect("wait").success());
    let written = std::fs::metadata(&trail).expect("trail").len();
    let alive: Vec<_> = rest
        .iter()
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .collect();
    assert!(
        alive.is_empty(),
        "still there when nucleus returned: {alive:?}"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        std::fs::metadata(&trail).expect("trail").len(),
        written,
        "the sandbox wrote after nucleus returned"
    );
    wait_until_gone(&[*pid1]);
    wait_until_gone(&teardown);
}

/// A process's name (`/proc/PID/comm`), empty once it is gone.
fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().to_owned())
        .unwrap_or_default()
}

/// The nucleus-created cgroup directories a process is in (v1 controllers and v2).
fn cgroups_of(pid: u32) -> Vec<std::path::PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            if !path.contains("nucleus") {
                return None;
            }
            let base = if controllers.is_empty() {
                "unified".to_owned()
            } else {
                controllers
                    .split(',')
                    .next()?
                    .trim_start_matches("name=")
                    .to_owned()
            };
            Some(
                std::path::Path::new("/sys/fs/cgroup")
                    .join(base)
                    .join(path.trim_start_matches('/')),
            )
        })
        .collect()
}
