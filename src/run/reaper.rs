//! `nucleus __reap`: removes a sandbox's cgroups if the supervisor dies without doing it (`kill -9`).
//!
//! The supervisor starts it with the cgroup directories as arguments and the read end of a pipe as
//! stdin. When the pipe reaches EOF (the supervisor exited, however it exited) the reaper kills what is
//! left in those cgroups and removes them. After a normal exit the directories are already gone.

use std::fs;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Start the reaper for `dirs`; the returned pipe end must stay open for the supervisor's lifetime.
pub fn start(dirs: &[&Path]) -> io::Result<(Child, OwnedFd)> {
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("__reap")
        .args(dirs)
        .env_clear()
        .stdin(Stdio::from(read_end))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Its own session: a Ctrl-C aimed at nucleus must not stop the cleanup.
    let child = crate::sys::process::spawn_detached(cmd)?;
    Ok((child, write_end))
}

/// Entry point of `nucleus __reap DIR…`.
pub fn main(dirs: Vec<PathBuf>) -> i32 {
    let mut buf = [0u8; 64];
    // Wait for EOF: nothing is ever written, the supervisor's exit closes the pipe.
    while let Ok(1..) = io::stdin().read(&mut buf) {}
    for dir in dirs.iter().rev() {
        remove(dir);
    }
    0
}

/// Kill every task in `dir`, then remove it (tasks leave a cgroup asynchronously, hence the retries).
fn remove(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while dir.exists() && Instant::now() < deadline {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        // 0 stands for a task outside our pid namespace; kill(0) would hit our own process group.
        for pid in procs
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .filter(|p| *p > 0)
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if fs::remove_dir(dir).is_ok() {
            return;
        }
        sleep(Duration::from_millis(10));
    }
}
