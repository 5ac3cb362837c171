//! Supervisor side of sandbox creation: spawn `nucleus __init`, write its id maps, hand it the spec.

use std::fmt;
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};

use crate::ipc::{self, FromInit, SetupFailure, ToInit};
use crate::spec::{IdMap, SandboxSpec};

/// The stdio `__init` (and so the workload, without a console) gets.
pub struct InitStdio {
    /// Standard input.
    pub stdin: Stdio,
    /// Standard output.
    pub stdout: Stdio,
    /// Standard error.
    pub stderr: Stdio,
}

/// A started sandbox: the outer `__init` process and the channel to it.
pub struct Sandbox {
    /// The outer `__init` process.
    pub child: Child,
    /// Supervisor end of the message channel.
    pub ipc: OwnedFd,
}

/// Why the sandbox could not be started.
#[derive(Debug)]
pub enum LaunchError {
    /// Creating the message channel failed.
    Channel(io::Error),
    /// Spawning `/proc/self/exe __init` failed.
    Spawn(io::Error),
    /// Placing `__init` in the sandbox cgroup failed.
    Cgroup(io::Error),
    /// Talking to `__init` failed.
    Ipc(io::Error),
    /// Writing /proc/PID/{uid_map,gid_map,setgroups} failed.
    IdMap(String, io::Error),
    /// `__init` reported a failed step.
    Setup(SetupFailure),
    /// `__init` exited without saying why.
    Vanished,
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchError::Channel(e) => write!(f, "creating the supervisor channel: {e}"),
            LaunchError::Spawn(e) => write!(f, "starting `nucleus __init`: {e}"),
            LaunchError::Cgroup(e) => write!(f, "moving the sandbox into its cgroup: {e}"),
            LaunchError::Ipc(e) => write!(f, "talking to `nucleus __init`: {e}"),
            LaunchError::IdMap(file, e) => write!(
                f,
                "writing {file}: {e}\n  hint: user namespaces may be restricted here; run `nucleus doctor`"
            ),
            LaunchError::Setup(failure) => write!(f, "{}", describe_failure(failure)),
            LaunchError::Vanished => {
                write!(f, "`nucleus __init` exited during setup without a report")
            }
        }
    }
}

/// Human-readable form of a setup failure: step, message, errno and hint.
pub fn describe_failure(failure: &SetupFailure) -> String {
    let errno = failure
        .errno
        .map(|e| format!(" (errno {e})"))
        .unwrap_or_default();
    format!(
        "setup step `{}` failed: {}{errno}\n  hint: {}",
        failure.step, failure.message, failure.hint
    )
}

/// Spawn `__init`, put it in the cgroup (via `place`), send the spec and write the id maps.
pub fn launch(
    spec: &SandboxSpec,
    stdio: InitStdio,
    place: impl FnOnce(u32) -> io::Result<()>,
) -> Result<Sandbox, LaunchError> {
    let (ours, theirs) = ipc::channel().map_err(LaunchError::Channel)?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("__init")
        .env_clear()
        .stdin(stdio.stdin)
        .stdout(stdio.stdout)
        .stderr(stdio.stderr);
    let mut child =
        crate::sys::process::spawn_init(cmd, theirs.as_fd()).map_err(LaunchError::Spawn)?;
    drop(theirs);
    let started = (|| {
        // Why before the spec: `__init` creates its cgroup namespace later, rooted where it is now.
        place(child.id()).map_err(LaunchError::Cgroup)?;
        ipc::send(ours.as_fd(), &ToInit::Start(Box::new(spec.clone())), None)
            .map_err(LaunchError::Ipc)?;
        match ipc::recv::<FromInit>(ours.as_fd()).map_err(LaunchError::Ipc)? {
            Some((FromInit::UserNamespaceReady, _)) => {}
            Some((FromInit::Failed(failure), _)) => return Err(LaunchError::Setup(failure)),
            _ => return Err(LaunchError::Vanished),
        }
        write_id_maps(child.id(), &spec.id_map)?;
        ipc::send(ours.as_fd(), &ToInit::IdsMapped, None).map_err(LaunchError::Ipc)
    })();
    if let Err(err) = started {
        let _ = child.kill();
        let _ = child.wait();
        return Err(err);
    }
    Ok(Sandbox { child, ipc: ours })
}

/// Map container uid/gid 0 to the chosen host ids (never host root; see `IdMap`).
fn write_id_maps(pid: u32, map: &IdMap) -> Result<(), LaunchError> {
    let write = |name: &str, contents: String| {
        let path = format!("/proc/{pid}/{name}");
        fs::write(&path, contents).map_err(|e| LaunchError::IdMap(path, e))
    };
    if map.rootless {
        // An unprivileged writer may only map its own ids, and only after giving up setgroups.
        write("setgroups", "deny".into())?;
    }
    write("uid_map", format!("0 {} 1\n", map.host_uid))?;
    write("gid_map", format!("0 {} 1\n", map.host_gid))
}

/// Choose the host ids for container root: the invoking user when rootless; under sudo the sudo user;
/// otherwise `nobody`. Never host root.
pub fn choose_id_map(euid: u32, egid: u32, sudo_uid: Option<u32>, sudo_gid: Option<u32>) -> IdMap {
    const NOBODY: u32 = 65534;
    if euid != 0 {
        return IdMap {
            host_uid: euid,
            host_gid: egid,
            rootless: true,
        };
    }
    let uid = sudo_uid.filter(|u| *u != 0).unwrap_or(NOBODY);
    let gid = sudo_gid
        .filter(|g| *g != 0)
        .unwrap_or(if uid == NOBODY { NOBODY } else { uid });
    IdMap {
        host_uid: uid,
        host_gid: gid,
        rootless: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_root_is_never_host_root() {
        assert_eq!(
            choose_id_map(1000, 1000, None, None),
            IdMap {
                host_uid: 1000,
                host_gid: 1000,
                rootless: true
            }
        );
        assert_eq!(
            choose_id_map(0, 0, None, None),
            IdMap {
                host_uid: 65534,
                host_gid: 65534,
                rootless: false
            }
        );
        assert_eq!(
            choose_id_map(0, 0, Some(1001), Some(1002)),
            IdMap {
                host_uid: 1001,
                host_gid: 1002,
                rootless: false
            }
        );
        assert_eq!(choose_id_map(0, 0, Some(0), Some(0)).host_uid, 65534);
    }
}
