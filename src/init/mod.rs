//! The sandbox side of setup: a straight line of named steps (DESIGN §2).
//!
//! The supervisor clones PID 1 directly into its user, mount, pid and uts namespaces, and a helper
//! makes its net namespace (`launcher`); PID 1 makes its cgroup and ipc ones. PID 1 (`pid1.rs`)
//! takes container root once the id maps are written, builds the root filesystem and starts the
//! workload (`workload.rs`); it dies with the supervisor (PDEATHSIG).

mod error;
mod landlock;
mod pid1;
pub mod rootfs;
mod workload;

use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sched::{CloneFlags, unshare};
use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
use serde_json::json;

pub use error::{SetupError, Step};
use error::{StepContext, StepResult};
use rootfs::{HostLayout, RootPlan};

use crate::ipc::{self, AuditRecord, FromInit, ToInit};
use crate::spec::{NetworkMode, SandboxSpec};
use crate::sys::process;

/// Entry point of PID 1, in the child of `launcher::launch`'s clone: never returns.
///
/// `host` is what the supervisor found on the host (and in the root cache) just before the clone,
/// `root` the plan it made for the root from that. `stdio` holds the descriptors to install as
/// stdin, stdout and stderr (None keeps the inherited one).
pub fn start(
    spec: &SandboxSpec,
    host: &HostLayout,
    root: &RootPlan,
    ipc: OwnedFd,
    stdio: [Option<OwnedFd>; 3],
) -> ! {
    // A panic must not unwind into the supervisor's frames, which this process copied: their
    // destructors would act on the supervisor's files and cgroups.
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ran =
            enter(spec, ipc.as_fd(), stdio).and_then(|()| pid1::run(spec, host, root, ipc.as_fd()));
        match ran {
            Ok(code) => code,
            Err(err) => {
                report_failure(ipc.as_fd(), &err);
                err.exit_code
            }
        }
    }));
    process::exit_now(run.unwrap_or(125))
}

/// Send a failure to the supervisor, after the steps that did complete; if the channel is gone there
/// is nobody left to tell.
pub(crate) fn report_failure(ipc: BorrowedFd<'_>, err: &SetupError) {
    send_audits(ipc);
    let _ = ipc::send(ipc, &FromInit::Failed(err.to_failure()), None);
}

thread_local! {
    /// Audit records not sent yet. Steps are reported in batches (`send_audits`): every message
    /// wakes the supervisor on the other CPU, and this process, on the start's critical path, pays
    /// for that wake-up. A process cloned from this one starts with nothing pending, because the
    /// batch is sent before each clone; but the workload, until its execve, shares PID 1's memory
    /// and thread-local storage (`spawn_sharing_memory`), so what it records is PID 1's to send.
    static PENDING_AUDITS: RefCell<Vec<AuditRecord>> = const { RefCell::new(Vec::new()) };
}

/// Record a completed step, stamped now; it reaches the supervisor with the next `send_audits`.
pub(crate) fn audit(event: &str, detail: serde_json::Value) {
    let record = AuditRecord {
        event: event.to_owned(),
        detail,
        ts: std::time::SystemTime::now(),
    };
    PENDING_AUDITS.with_borrow_mut(|pending| pending.push(record));
}

/// The recorded steps not sent yet, taken.
pub(crate) fn take_audits() -> Vec<AuditRecord> {
    PENDING_AUDITS.with_borrow_mut(std::mem::take)
}

/// Send the recorded steps; if the channel is gone there is nobody left to tell.
pub(crate) fn send_audits(ipc: BorrowedFd<'_>) {
    let pending = take_audits();
    if !pending.is_empty() {
        let _ = ipc::send(ipc, &FromInit::Audits(pending), None);
    }
}

/// PID 1's first steps: tie its life to the supervisor, wait for the id maps, take its stdio, become
/// container root and enter a cgroup namespace.
fn enter(spec: &SandboxSpec, ipc: BorrowedFd<'_>, stdio: [Option<OwnedFd>; 3]) -> StepResult<()> {
    // Why first: if the supervisor is gone (now, or at any later point), nobody would ever reap or
    // stop this sandbox.
    process::die_with_parent(ipc).step(Step::DieWithParent, "PR_SET_PDEATHSIG")?;
    match ipc::recv::<ToInit>(ipc).step(Step::IdMaps, "waiting for id maps")? {
        Some((ToInit::IdsMapped, _)) => {}
        _ => {
            return Err(SetupError::other(
                Step::IdMaps,
                "the supervisor did not write the id maps",
            ));
        }
    }
    // Why: a new session keeps host job-control signals and the host tty away from the sandbox.
    process::new_session().step(Step::Stdio, "setsid")?;
    for (n, fd) in stdio.iter().enumerate() {
        if let Some(fd) = fd {
            process::dup_onto(fd.as_fd(), n as i32).step(Step::Stdio, "dup2")?;
        }
    }
    drop(stdio);
    // Why: the supervisor's descriptors (its logs, the host terminal) were copied by the clone; nothing
    // but stdio and the channel may reach the sandbox.
    process::close_fds_except(3, &[ipc.as_raw_fd()]).step(Step::Stdio, "close_range")?;
    become_container_root(spec)?;
    // Why again: changing the effective uid clears PDEATHSIG, and we must still die with the supervisor.
    process::die_with_parent(ipc).step(Step::DieWithParent, "PR_SET_PDEATHSIG")?;
    audit(
        "user_namespace",
        json!({"uid_map": format!("0 {} 1", spec.id_map.host_uid), "gid_map": format!("0 {} 1", spec.id_map.host_gid),
               "rootless": spec.id_map.rootless}),
    );

    // Why only now: the namespace is rooted at our cgroup, and the supervisor has just placed us in it.
    unshare(CloneFlags::CLONE_NEWCGROUP).step(Step::Namespaces, "unshare(CLONE_NEWCGROUP)")?;
    let names: Vec<&str> = ["user", "mount", "pid", "uts", "ipc", "cgroup"]
        .into_iter()
        .chain((spec.network == NetworkMode::None).then_some("net"))
        .collect();
    audit(
        "namespaces",
        json!({"created": names, "network": spec.network}),
    );
    Ok(())
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
