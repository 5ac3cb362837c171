//! The headless console with a terminal: a PTY of the sandbox's own, window size propagated (also on
//! resize), and no way to push input into the host terminal.

mod common;

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{As, Scratch, nucleus};

/// A host terminal (PTY) of `rows` x `cols` with `nucleus run -- sh -c SCRIPT` as its session leader.
fn spawn_on_terminal(
    scratch: &Scratch,
    rows: u16,
    cols: u16,
    script: &str,
) -> (Child, OwnedFd, mpsc::Receiver<u8>) {
    let ws = nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
    let ctx = scratch.subdir("ctx");
    let slave = File::from(pty.slave);
    // setsid -c: a new session whose controlling terminal is stdin, like a login shell's.
    let mut cmd = nucleus(As::Root, scratch.path());
    cmd.env("TERM", "xterm");
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect();
    let child = std::process::Command::new("setsid")
        .arg("-c")
        .arg(program)
        .args(args)
        .args(["run"])
        .arg(&ctx)
        .args(["--", "/bin/sh", "-c", script])
        .env_clear()
        .envs(envs)
        .stdin(Stdio::from(slave.try_clone().expect("dup")))
        .stdout(Stdio::from(slave.try_clone().expect("dup")))
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("spawn under setsid");
    let (tx, rx) = mpsc::channel();
    let mut reader = File::from(pty.master.try_clone().expect("dup master"));
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            for b in &buf[..n] {
                if tx.send(*b).is_err() {
                    return;
                }
            }
        }
    });
    (child, pty.master, rx)
}

/// Read terminal output until `needle` appears (bounded wait), returning everything read.
fn read_until(rx: &mpsc::Receiver<u8>, seen: &mut String, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(b) => seen.push(b as char),
            Err(_) => panic!("{needle:?} never appeared; terminal showed:\n{seen}"),
        }
    }
}

#[test]
fn console_is_a_sandbox_pty_that_follows_the_window_size() {
    let scratch = Scratch::new(As::Root);
    // After "ready" the script polls its size (up to 10 s) rather than trusting a fixed delay.
    let script = "tty; stty size; echo ready; i=0; \
                  while [ \"$(stty size)\" != '50 120' ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; \
                  stty size; echo done; exit 5";
    let (mut child, master, rx) = spawn_on_terminal(&scratch, 40, 100, script);
    let mut seen = String::new();
    read_until(&rx, &mut seen, "ready");
    assert!(
        seen.contains("/dev/pts/0"),
        "the console is the sandbox's own pts: {seen}"
    );
    assert!(seen.contains("40 100"), "initial size propagated: {seen}");
    let bigger = libc::winsize {
        ws_row: 50,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    nucleus::sys::tty::set_window_size(master.as_raw_fd(), &bigger).expect("resize");
    read_until(&rx, &mut seen, "done");
    let after_ready = &seen[seen.find("ready").expect("ready")..];
    assert!(after_ready.contains("50 120"), "resize propagated: {seen}");
    assert_eq!(child.wait().expect("wait").code(), Some(5));
}

#[test]
fn tiocsti_cannot_inject_into_any_terminal() {
    let scratch = Scratch::new(As::Root);
    // TIOCSTI with and without high bits set; both must fail with EPERM.
    let script = r#"python3 -c '
import fcntl, termios, errno
for req in (termios.TIOCSTI, termios.TIOCSTI | 0xffffffff00000000):
    try:
        fcntl.ioctl(0, req, b"x"); print("injected")
    except OSError as e:
        print("refused", errno.errorcode[e.errno])
'; echo finished"#;
    let (mut child, _master, rx) = spawn_on_terminal(&scratch, 24, 80, script);
    let mut seen = String::new();
    read_until(&rx, &mut seen, "finished");
    assert_eq!(seen.matches("refused EPERM").count(), 2, "{seen}");
    assert!(!seen.contains("injected"), "{seen}");
    assert!(child.wait().expect("wait").success());
}

/// With a terminal on some streams only, those streams become pipes (the host tty never reaches the
/// sandbox), and the run ends with the workload: PID 1, which holds the pipes as its own stdio,
/// lets go of them when it reports the exit, before it waits for the supervisor to hang up.
#[test]
fn a_terminal_on_some_streams_only_is_piped_and_the_run_ends_with_the_workload() {
    let scratch = Scratch::new(As::Root);
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let ctx = scratch.subdir("ctx");
    let out_path = scratch.path().join("out.txt");
    let slave = File::from(pty.slave);
    let mut child = nucleus(As::Root, scratch.path())
        .arg("run")
        .arg(&ctx)
        .args(["--", "/bin/sh", "-c"])
        .arg("test -t 0 || echo stdin-not-a-tty >&2; echo to-file; exit 3")
        .stdin(Stdio::from(slave.try_clone().expect("dup")))
        .stdout(Stdio::from(File::create(&out_path).expect("out file")))
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("spawn nucleus");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("nucleus did not end with its workload");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(3));
    assert_eq!(
        std::fs::read_to_string(&out_path).expect("out file"),
        "to-file\n"
    );
    let mut terminal = vec![0u8; 4096];
    let n = nix::unistd::read(&pty.master, &mut terminal).expect("terminal output");
    let shown = String::from_utf8_lossy(&terminal[..n]);
    assert!(shown.contains("stdin-not-a-tty"), "{shown}");
}
