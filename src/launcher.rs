//! Supervisor side of sandbox creation: clone PID 1 into its namespaces, wire its stdio, place it in
//! the cgroup and write its id maps.

use std::cell::Cell;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::init::rootfs::root_cache::{self, RootCache};
use crate::init::rootfs::{HostLayout, RootPlan};
use crate::ipc::{self, SetupFailure, ToInit};
use crate::spec::{IdMap, NetworkMode, SandboxSpec};
use crate::sys::process;

/// What one of the sandbox's standard streams is connected to when it has no console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The supervisor's own stream.
    Inherit,
    /// `/dev/null` (a console carries the workload's stdio instead).
    Null,
    /// A pipe that the supervisor copies: used when the host stream is a terminal, which must never
    /// reach the sandbox.
    Pipe,
}

/// A started sandbox: its PID 1, the channel to it and the supervisor's ends of any stdio pipes.
pub struct Sandbox {
    /// Host pid of the sandbox's PID 1.
    pub pid: i32,
    /// Supervisor end of the message channel.
    pub ipc: OwnedFd,
    /// Write end of the workload's stdin pipe.
    pub stdin: Option<File>,
    /// Read end of the workload's stdout pipe.
    pub stdout: Option<File>,
    /// Read end of the workload's stderr pipe.
    pub stderr: Option<File>,
    /// PID 1's status once reaped.
    status: Cell<Option<i32>>,
    /// The root cache entry PID 1 binds, locked against removal while the sandbox lives.
    _root_cache: Option<RootCache>,
}

impl Sandbox {
    /// SIGKILL PID 1 (the kernel then kills every process of its pid namespace) and reap it
    /// (once; later calls return the same): its exit code, or 128+signal. A PID 1 that died
    /// already keeps its own status. After reporting the exit, PID 1 waits for this, or for
    /// PDEATHSIG when the thread that launched it exits, so that its teardown starts after the
    /// supervisor's exit.
    pub fn end(&self) -> io::Result<i32> {
        if let Some(status) = self.status.get() {
            return Ok(status);
        }
        // An unreaped PID 1 keeps its pid: this cannot reach another process.
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        let status = loop {
            match waitpid(Pid::from_raw(self.pid), None) {
                Ok(WaitStatus::Exited(_, code)) => break code,
                Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        self.status.set(Some(status));
        Ok(status)
    }
}

/// Why the sandbox could not be started.
#[derive(Debug)]
pub enum LaunchError {
    /// The supervisor has started a thread, so it may not clone (DESIGN §2).
    Threaded,
    /// Creating the message channel or the stdio pipes failed.
    Channel(io::Error),
    /// clone(2) into the new namespaces failed.
    Namespaces(io::Error),
    /// Placing PID 1 in the sandbox cgroup failed.
    Cgroup(io::Error),
    /// Talking to PID 1 failed.
    Ipc(io::Error),
    /// Writing /proc/PID/{uid_map,gid_map,setgroups} failed.
    IdMap(String, io::Error),
    /// The network namespace helper failed.
    Network(String),
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchError::Threaded => f.write_str(
                "the supervisor has started a thread; the sandbox must be started before any thread (a bug in nucleus)",
            ),
            LaunchError::Channel(e) => write!(f, "creating the supervisor channel: {e}"),
            LaunchError::Namespaces(e) => write!(
                f,
                "creating the sandbox namespaces (user, mount, pid, uts, ipc, net): {e}\n  hint: user namespaces must be enabled (sysctl user.max_user_namespaces > 0); run `nucleus doctor`"
            ),
            LaunchError::Cgroup(e) => write!(f, "moving the sandbox into its cgroup: {e}"),
            LaunchError::Ipc(e) => write!(f, "talking to the sandbox's PID 1: {e}"),
            LaunchError::IdMap(file, e) => write!(
                f,
                "writing {file}: {e}\n  hint: user namespaces may be restricted here; run `nucleus doctor`"
            ),
            LaunchError::Network(e) => write!(
                f,
                "creating the sandbox's network namespace: {e}\n  hint: run `nucleus doctor`; `--net host` needs none"
            ),
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

/// Clone PID 1 into new namespaces, put it in the cgroup (via `place`) and write its id maps.
///
/// Why clone and not re-exec: while the supervisor is still single-threaded a clone is as safe as a
/// fresh process image, PID 1 already holds the spec, and an exec of nucleus costs ~1 ms. The caller
/// must not have started a thread yet; this is checked.
pub fn launch(
    spec: &SandboxSpec,
    streams: [Stream; 3],
    place: impl FnOnce(u32) -> io::Result<()>,
) -> Result<Sandbox, LaunchError> {
    if !process::never_threaded() {
        return Err(LaunchError::Threaded);
    }
    let (ours, theirs) = ipc::channel().map_err(LaunchError::Channel)?;
    let wiring = StdioWiring::open(streams).map_err(LaunchError::Channel)?;
    // Looked at from here: PID 1's mount namespace starts as a copy of ours, and a cache entry is
    // built with our credentials (the sandbox's root may be `nobody` on the host). Without an entry
    // PID 1 builds the root itself.
    let mut host = HostLayout::probe(Path::new("/"), spec.network);
    let root_cache = root_cache::default_root()
        .and_then(|root| root_cache::open(&root, spec, &host, Path::new("/")).ok());
    host.root_cache = root_cache.as_ref().map(|cache| cache.dir.clone());
    let root = RootPlan::new(spec, &host);

    // The cgroup namespace comes later, from PID 1, once it sits in its cgroup; the network namespace
    // from a helper, in parallel (`create_network`); the IPC namespace from PID 1 too, before the
    // workload (in this clone it cost ~40 µs of the start that nothing overlaps).
    let flags = libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS;
    let pid = process::clone_into_namespaces(flags).map_err(LaunchError::Namespaces)?;
    if pid == 0 {
        drop(ours);
        crate::init::start(spec, &host, &root, theirs, wiring.child);
    }
    drop(theirs);
    let sandbox = Sandbox {
        pid,
        ipc: ours,
        stdin: wiring.stdin,
        stdout: wiring.stdout,
        stderr: wiring.stderr,
        status: Cell::new(None),
        _root_cache: root_cache,
    };
    let started = (|| {
        // Opened while PID 1 surely lives (it waits for the maps), so a failure of PID 1 later is
        // reported as its own, not as a vanished namespace.
        let userns = (spec.network == NetworkMode::None)
            .then(|| File::open(format!("/proc/{pid}/ns/user")))
            .transpose()
            .map_err(|e| LaunchError::Network(format!("opening PID 1's user namespace: {e}")))?;
        // Why before the id maps: PID 1 creates its cgroup namespace after they arrive, rooted where
        // it is then.
        place(pid as u32).map_err(LaunchError::Cgroup)?;
        write_id_maps(pid, &spec.id_map)?;
        ipc::send_unless_gone(sandbox.ipc.as_fd(), &ToInit::IdsMapped, None)
            .map_err(LaunchError::Ipc)?;
        if let Some(userns) = userns {
            let netns = create_network(userns.as_fd())?;
            ipc::send_unless_gone(sandbox.ipc.as_fd(), &ToInit::Network, Some(netns.as_fd()))
                .map_err(LaunchError::Ipc)?;
        }
        Ok(())
    })();
    match started {
        Ok(()) => Ok(sandbox),
        Err(err) => {
            let _ = sandbox.end();
            Err(err)
        }
    }
}

/// Create the sandbox's network namespace, with loopback up, in a helper process.
///
/// Why a helper: a process can join PID 1's user namespace, so that the network namespace it
/// creates is owned by it (PID 1 may then `setns` into it, and nothing else can), but never leave
/// it again. Why now, from here: creating one costs ~0.8 ms, which PID 1 would otherwise pay
/// itself; this way it is done while PID 1 builds the root.
///
/// The helper shares our memory and descriptors until it exits, and we sleep meanwhile
/// (`spawn_sharing_memory`): no copy of this process is made, and the namespace's descriptor is
/// in our table when it is done. Nothing untrusted coexists with it: the workload starts only
/// after PID 1 has the namespace, which it gets once the helper is gone.
fn create_network(userns: BorrowedFd<'_>) -> Result<OwnedFd, LaunchError> {
    let mut made: Option<Result<OwnedFd, String>> = None;
    let report = &mut made;
    let helper = process::spawn_sharing_memory(move || {
        *report = Some(network_helper(userns));
        process::exit_now(0)
    })
    .map_err(|e| LaunchError::Network(format!("clone: {e}")))?;
    let _ = waitpid(Pid::from_raw(helper), None);
    match made {
        Some(Ok(netns)) => Ok(netns),
        Some(Err(e)) => Err(LaunchError::Network(e)),
        None => Err(LaunchError::Network(
            "the helper exited without a report".into(),
        )),
    }
}

/// The helper's steps: returns the new network namespace.
fn network_helper(userns: BorrowedFd<'_>) -> Result<OwnedFd, String> {
    let step = |what: &'static str| move |e: io::Error| format!("{what}: {e}");
    setns(userns, CloneFlags::CLONE_NEWUSER).map_err(|e| step("setns(user)")(e.into()))?;
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| step("unshare(CLONE_NEWNET)")(e.into()))?;
    crate::sys::net::loopback_up().map_err(step("SIOCSIFFLAGS lo"))?;
    File::open("/proc/self/ns/net")
        .map(OwnedFd::from)
        .map_err(step("opening the network namespace"))
}

/// The stdio descriptors for PID 1, and the supervisor's ends of its pipes.
struct StdioWiring {
    /// For stdin, stdout, stderr: the descriptor to install, or None to keep the inherited one.
    child: [Option<OwnedFd>; 3],
    stdin: Option<File>,
    stdout: Option<File>,
    stderr: Option<File>,
}

impl StdioWiring {
    fn open(streams: [Stream; 3]) -> io::Result<Self> {
        let mut wiring = StdioWiring {
            child: [None, None, None],
            stdin: None,
            stdout: None,
            stderr: None,
        };
        for (n, stream) in streams.into_iter().enumerate() {
            wiring.child[n] = match stream {
                Stream::Inherit => None,
                Stream::Null => Some(
                    File::options()
                        .read(true)
                        .write(true)
                        .open("/dev/null")?
                        .into(),
                ),
                Stream::Pipe => {
                    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
                    let (child, ours) = if n == 0 { (read, write) } else { (write, read) };
                    let ours = Some(File::from(ours));
                    match n {
                        0 => wiring.stdin = ours,
                        1 => wiring.stdout = ours,
                        _ => wiring.stderr = ours,
                    }
                    Some(child)
                }
            };
        }
        Ok(wiring)
    }
}

/// Map container uid/gid 0 to the chosen host ids (never host root; see `IdMap`).
fn write_id_maps(pid: i32, map: &IdMap) -> Result<(), LaunchError> {
    let write = |name: &str, contents: String| {
        let path = format!("/proc/{pid}/{name}");
        std::fs::write(&path, contents).map_err(|e| LaunchError::IdMap(path, e))
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
