//! `nucleus __init`: builds the sandbox as a straight line of named steps (DESIGN §2).
//!
//! The outer `__init` process creates the namespaces and forks PID 1 (`pid1.rs`), which builds the root
//! filesystem and starts the workload (`workload.rs`). The outer process only waits, so that PID 1
//! dies with it (PDEATHSIG) and it dies with the supervisor.

mod error;
mod landlock;
mod pid1;
pub mod rootfs;
mod workload;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid, setgroups, setresgid, setresuid};
use serde_json::json;

pub use error::{SetupError, Step};
use error::{StepContext, StepResult};

use crate::ipc::{self, FromInit, ToInit};
use crate::spec::{NetworkMode, SandboxSpec};

/// The fd on which the supervisor's channel arrives.
const IPC_FD: i32 = 3;

/// Entry point of the hidden `__init` subcommand.
pub fn main() -> i32 {
    let ipc = crate::sys::adopt_fd(IPC_FD);
    match outer(ipc.as_fd()) {
        Ok(code) => code,
        Err(err) => {
            report_failure(ipc.as_fd(), &err);
            err.exit_code
        }
    }
}

/// Send a failure to the supervisor; if the channel is gone there is nobody left to tell.
pub(crate) fn report_failure(ipc: BorrowedFd<'_>, err: &SetupError) {
    let _ = ipc::send(ipc, &FromInit::Failed(err.to_failure()), None);
}

/// Send an audit event for a completed step.
pub(crate) fn audit(ipc: BorrowedFd<'_>, event: &str, detail: serde_json::Value) {
    let _ = ipc::send(
        ipc,
        &FromInit::Audit {
            event: event.to_owned(),
            detail,
        },
        None,
    );
}

fn outer(ipc: BorrowedFd<'_>) -> StepResult<i32> {
    let supervisor = nix::unistd::getppid().as_raw();
    // Why first: nothing inherited by accident (fds, threads) may reach the sandbox.
    crate::sys::process::close_fds_except(3, &[IPC_FD]).step(Step::CloseFds, "close_range")?;
    let spec = match ipc::recv::<ToInit>(ipc).step(Step::ReadSpec, "reading the spec")? {
        Some((ToInit::Start(spec), _)) => *spec,
        _ => {
            return Err(SetupError::other(
                Step::ReadSpec,
                "the supervisor sent no spec",
            ));
        }
    };

    // Why before the other namespaces: they are then owned by the new user namespace, and every
    // capability we use from here on is a capability over it only.
    unshare(CloneFlags::CLONE_NEWUSER).step(Step::UserNamespace, "unshare(CLONE_NEWUSER)")?;
    ipc::send(ipc, &FromInit::UserNamespaceReady, None).step(Step::IdMaps, "asking for id maps")?;
    match ipc::recv::<ToInit>(ipc).step(Step::IdMaps, "waiting for id maps")? {
        Some((ToInit::IdsMapped, _)) => {}
        _ => {
            return Err(SetupError::other(
                Step::IdMaps,
                "the supervisor did not write the id maps",
            ));
        }
    }
    become_container_root(&spec)?;
    // Why again: changing the effective uid clears PDEATHSIG, and we must still die with the supervisor.
    crate::sys::process::die_with_parent(supervisor)
        .step(Step::DieWithParent, "PR_SET_PDEATHSIG")?;
    audit(
        ipc,
        "user_namespace",
        json!({"uid_map": format!("0 {} 1", spec.id_map.host_uid), "gid_map": format!("0 {} 1", spec.id_map.host_gid),
               "rootless": spec.id_map.rootless}),
    );

    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWCGROUP;
    if spec.network == NetworkMode::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    unshare(flags).step(Step::Namespaces, "unshare(mount|pid|uts|ipc|cgroup|net)")?;
    let names: Vec<&str> = ["user", "mount", "pid", "uts", "ipc", "cgroup"]
        .into_iter()
        .chain((spec.network == NetworkMode::None).then_some("net"))
        .collect();
    audit(
        ipc,
        "namespaces",
        json!({"created": names, "network": spec.network}),
    );

    // The child of the first fork after CLONE_NEWPID is PID 1 of the new namespace.
    let (alive_r, alive_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).step(Step::ForkPid1, "pipe")?;
    let pid = crate::sys::process::fork_single_threaded().step(Step::ForkPid1, "fork")?;
    if pid == 0 {
        drop(alive_w);
        pid1::main(&spec, ipc, alive_r);
    }
    drop(alive_r);
    ipc::send(ipc, &FromInit::Pid1Started { host_pid: pid }, None)
        .step(Step::ForkPid1, "reporting PID 1")?;
    Ok(wait_for(Pid::from_raw(pid), alive_w))
}

/// Take uid/gid 0 of the new namespace (mapped by the supervisor to a non-root host id).
fn become_container_root(spec: &SandboxSpec) -> StepResult<()> {
    let root_gid = Gid::from_raw(0);
    setresgid(root_gid, root_gid, root_gid).step(Step::BecomeRoot, "setresgid(0)")?;
    if !spec.id_map.rootless {
        // Drop host supplementary groups (root's); rootless maps deny setgroups instead.
        setgroups(&[]).step(Step::BecomeRoot, "setgroups([])")?;
    }
    let root_uid = Uid::from_raw(0);
    setresuid(root_uid, root_uid, root_uid).step(Step::BecomeRoot, "setresuid(0)")?;
    Ok(())
}

/// Wait for PID 1 and exit like it. `_alive` is held open so PID 1 can tell we exist.
fn wait_for(pid1: Pid, _alive: OwnedFd) -> i32 {
    loop {
        match waitpid(pid1, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 125,
        }
    }
}
