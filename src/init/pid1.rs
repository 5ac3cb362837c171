//! PID 1 of the sandbox: builds the root, starts the workload, reaps zombies, forwards signals and
//! reports the workload's exit.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::{Mode, umask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, chdir, pivot_root, sethostname};
use serde_json::json;

use super::error::{SetupError, Step, StepContext, StepResult};
use super::rootfs::{self, HostLayout, RootPlan};
use super::{audit, workload};
use crate::ipc::{self, FromInit, ToInit};
use crate::spec::{NetworkMode, SandboxSpec};
use crate::sys;

/// Build the root, start the workload and supervise it; returns the workload's exit code. Runs
/// after `super::enter`, as container root.
pub fn run(
    spec: &SandboxSpec,
    host: &HostLayout,
    root: &RootPlan,
    ipc: BorrowedFd<'_>,
) -> StepResult<i32> {
    // Why: a non-dumpable PID 1 cannot be ptraced, and its /proc entries (fds!) are root-only.
    sys::process::set_non_dumpable().step(Step::DieWithParent, "prctl(PR_SET_DUMPABLE)")?;

    let context_upper = build_root(spec, host, root)?;
    sethostname(&spec.hostname).step(Step::Hostname, "sethostname")?;
    chdir("/context").step(Step::PivotRoot, "chdir /context")?;

    let console = if spec.tty {
        Some(open_console(spec.window, ipc)?)
    } else {
        None
    };
    let last_cap = clear_inheritance()?;
    // The workload's IPC namespace: made here, where the filter may still be on its way, rather than
    // in PID 1's clone, where it cost the supervisor's start ~40 µs. PID 1 uses no IPC object.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWIPC)
        .step(Step::Namespaces, "unshare(CLONE_NEWIPC)")?;
    let prepared = workload::prepare(spec, console, last_cap)?;

    // Block every signal before the workload exists: they are read from a signalfd and forwarded.
    let all = SigSet::all();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None)
        .step(Step::SpawnWorkload, "sigprocmask")?;
    let signals =
        SignalFd::with_flags(&all, SfdFlags::SFD_CLOEXEC).step(Step::SpawnWorkload, "signalfd")?;

    // The workload reports its own steps: ours go first, with the overlay's upper directory for the
    // change report. Why not earlier: every message wakes the supervisor on the other CPU, and this
    // process pays for the wake-up on the start's critical path.
    super::send_audits(ipc);
    if let Some(upper) = context_upper {
        ipc::send(ipc, &FromInit::ContextUpper, Some(upper.as_fd()))
            .step(Step::Context, "handing over the overlay upper dir")?;
    }
    // Why this late: nothing before the workload uses the network, and the supervisor's helper makes
    // it while we work (in ~1 in 5 starts it came after we had built the root).
    if spec.network == NetworkMode::None {
        enter_network(ipc)?;
    }
    // The filter is the supervisor's last message, sent once its audit log exists: no workload
    // starts before it. Why this late: what comes above needs none of it, and the supervisor's way
    // to it (the network helper, the audit log, whose creation can stall on the ext4 journal) may
    // be longer than ours.
    let filter = match ipc::recv::<ToInit>(ipc).step(Step::Seccomp, "waiting for the filter")? {
        Some((ToInit::Seccomp(filter), _)) => filter,
        _ => {
            return Err(SetupError::other(
                Step::Seccomp,
                "the supervisor sent no seccomp filter",
            ));
        }
    };
    let notify = filter.notify;
    let (child, listener) = workload::spawn(prepared, &filter, ipc)?;
    // The workload has exec'd (or died trying): its last step was installing the filter. Its audit
    // records are in our batch (it shared our memory): one message carries them, ours and the
    // listener, since the workload is running now on the CPU we wake on.
    let live_reports = listener.is_some();
    audit(
        "seccomp",
        json!({"applied": live_reports || !notify, "mode": spec.seccomp.mode, "live_reports": live_reports}),
    );
    let started = FromInit::WorkloadStarted(super::take_audits());
    ipc::send(ipc, &started, listener.as_ref().map(|l| l.as_fd())).step(
        Step::ListenerHandoff,
        "sending the listener and the workload's records",
    )?;
    Ok(supervise(Pid::from_raw(child), &signals, ipc))
}

/// Clear what the workload inherits from us: empty the capability bounding set (returning the last
/// capability number) and reset every signal disposition to the default. Our own capabilities
/// stay: the bounding set only limits what an `execve` grants. Ignored signals would survive the
/// workload's `execve` (the Rust runtime ignores SIGPIPE); as the namespace's init we are immune to
/// those left at their default.
///
/// Why late, while the filter may still be on its way: the ~40 `PR_CAPBSET_DROP`s cost ~0.1 ms
/// (each commits new credentials), and the filter comes last of what the supervisor sends, after
/// the network helper and the audit log: what it takes to arrive, they take from no one.
fn clear_inheritance() -> StepResult<u32> {
    let last_cap = sys::caps::empty_bounding_set().step(Step::SpawnWorkload, "PR_CAPBSET_DROP")?;
    sys::process::reset_signal_dispositions();
    Ok(last_cap)
}

/// Join the network namespace the supervisor's helper built (loopback only, owned by our user
/// namespace). Until now PID 1 sat in the host's, which it never used.
fn enter_network(ipc: BorrowedFd<'_>) -> StepResult<()> {
    let netns =
        match ipc::recv::<ToInit>(ipc).step(Step::Network, "waiting for the network namespace")? {
            Some((ToInit::Network, Some(fd))) => fd,
            _ => {
                return Err(SetupError::other(
                    Step::Network,
                    "the supervisor sent no network namespace",
                ));
            }
        };
    nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET).step(Step::Network, "setns(net)")
}

/// Assemble the new root as `root` plans it, then pivot into it and detach the host. Returns the
/// context overlay's upper directory, if there is one.
fn build_root(
    spec: &SandboxSpec,
    host: &HostLayout,
    root: &RootPlan,
) -> StepResult<Option<OwnedFd>> {
    let none: Option<&str> = None;
    // Why: nothing we mount may propagate back to the host's mount namespace.
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .step(Step::PrivateMounts, "mount --make-rprivate /")?;
    // Without a cache entry the new root is a tmpfs, assembled on a staging tmpfs over /tmp with the
    // host moved to /oldroot, so that host paths (even ones under /tmp) stay reachable and nothing
    // is created on the host. With one, host paths stay as they are (`RootPlan::new`).
    if host.root_cache.is_none() {
        stage()?;
    }

    let ops = &root.ops;
    // Why umask 0: the plan's modes are then applied as the files are created, with no chmod each.
    let inherited_umask = umask(Mode::empty());
    for op in ops {
        // Described only on failure: formatting file contents for every step would cost milliseconds.
        rootfs::execute(op).map_err(|e| SetupError::os(Step::MountPlan, op, e))?;
    }
    umask(inherited_umask);
    audit(
        "root_filesystem",
        json!({"operations": ops.len(), "system_dirs": host.system.iter().map(|(d, _)| d).collect::<Vec<_>>(),
        "root_cache": host.root_cache,
        "tmp_size_bytes": spec.tmp_size_bytes, "proc_masked": rootfs::PROC_MASKED_FILES, "proc_read_only": rootfs::PROC_READ_ONLY}),
    );

    let context_upper = mount_context(spec, root)?;

    // Why chdir first: pivot_root(".", ".") stacks the old root on top of the new one; detaching "."
    // then removes every host mount from view (the scratch tmpfs among them) without needing a
    // put_old directory.
    chdir(&root.newroot).step(Step::PivotRoot, "chdir to the new root")?;
    pivot_root(".", ".").step(Step::PivotRoot, "pivot_root")?;
    umount2(".", MntFlags::MNT_DETACH).step(Step::PivotRoot, "umount2(old root)")?;
    chdir("/").step(Step::PivotRoot, "chdir /")?;
    let ro = MsFlags::MS_REMOUNT
        | MsFlags::MS_BIND
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV;
    mount(none, "/", none, ro, none).step(Step::PivotRoot, "remount / read-only")?;
    audit(
        "pivot_root",
        json!({"old_root": "detached", "root": if host.root_cache.is_some() { "cached skeleton, read-only" } else { "tmpfs, read-only" }}),
    );
    Ok(context_upper)
}

/// Mount the staging tmpfs over /tmp and pivot into it, the host at /oldroot; /newroot and /scratch
/// are its mount points.
fn stage() -> StepResult<()> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        flags,
        Some("mode=0700,size=1m"),
    )
    .step(Step::StagingRoot, "mount staging tmpfs")?;
    for dir in ["/tmp/newroot", "/tmp/oldroot", "/tmp/scratch"] {
        fs::create_dir(dir).step(Step::StagingRoot, format!("mkdir {dir}"))?;
    }
    pivot_root("/tmp", "/tmp/oldroot").step(Step::StagingRoot, "pivot_root(staging)")?;
    chdir("/").step(Step::StagingRoot, "chdir /")
}

/// Present the context at the new root's /context (see `crate::context`), its layers on a tmpfs at
/// the plan's scratch; returns the overlay's upper directory, if there is one.
fn mount_context(spec: &SandboxSpec, root: &RootPlan) -> StepResult<Option<OwnedFd>> {
    let host_dir = root.oldroot.join(
        spec.context_dir
            .strip_prefix("/")
            .unwrap_or(&spec.context_dir),
    );
    let prepared = crate::context::prepare(
        &spec.context,
        &host_dir,
        &root.scratch,
        &root.newroot.join("context"),
    )
    .map_err(|e| SetupError::other(Step::Context, e.to_string()))?;
    audit("context", prepared.audit);
    Ok(prepared.upper)
}

/// Open a console in the sandbox's own devpts; the master goes to the supervisor, the slave to the workload.
fn open_console(window: Option<(u16, u16)>, ipc: BorrowedFd<'_>) -> StepResult<OwnedFd> {
    let (master, slave) = sys::tty::open_pty().step(Step::SpawnWorkload, "opening /dev/ptmx")?;
    // Why here: the workload may ask for its size before the supervisor has the master.
    if let Some((rows, cols)) = window {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        sys::tty::set_window_size(master.as_raw_fd(), &ws)
            .step(Step::SpawnWorkload, "TIOCSWINSZ")?;
    }
    ipc::send(ipc, &FromInit::Console, Some(master.as_fd()))
        .step(Step::SpawnWorkload, "handing over the console")?;
    Ok(slave)
}

/// Reap every child, forward signals to the workload, and return when the workload has exited.
fn supervise(workload: Pid, signals: &SignalFd, ipc: BorrowedFd<'_>) -> i32 {
    loop {
        let info = match signals.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 125,
        };
        if info.ssi_signo != Signal::SIGCHLD as u32 {
            if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                let _ = kill(workload, sig);
            }
            continue;
        }
        // One SIGCHLD may stand for many exits: reap all of them.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == workload => {
                    return report_exit(ipc, Some(code), None);
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == workload => {
                    return report_exit(ipc, None, Some(sig as i32));
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}

/// Report the workload's exit once nothing else of the sandbox runs, then wait to be killed: by
/// PDEATHSIG when the supervisor's thread exits, or by the supervisor (`Sandbox::end`).
///
/// Why linger: our exit tears the sandbox down (every mount, the namespaces), and that waits for
/// expedited RCU grace periods whose kthreads and kworkers take the CPUs from the supervisor's
/// wrap-up and exit. Why not until the channel hangs up: an exiting process closes its descriptors
/// before its parent hears of the exit, so the teardown still overlapped the end of the
/// supervisor's exit; PDEATHSIG comes with the notice to its parent (docs/BENCHMARKS.md). Nothing
/// of the workload is left to run meanwhile.
fn report_exit(ipc: BorrowedFd<'_>, code: Option<i32>, signal: Option<i32>) -> i32 {
    end_every_other_process();
    if ipc::send(ipc, &FromInit::Exited { code, signal }, None).is_ok() {
        // Our stdio may be the pipes the supervisor copies until their end: let them end now.
        let _ = sys::process::close_stdio();
        sys::process::wait_for_sigkill();
    }
    code.unwrap_or_else(|| 128 + signal.unwrap_or(0))
}

/// SIGKILL every process the workload left behind and reap them all. Every process of the sandbox
/// descends from PID 1 (orphans are re-parented to it): with no child left there is nothing to
/// kill, and `kill(-1)`, which looks at every process on the host, is skipped. (Only a host admin's
/// `nsenter` puts a process with a parent outside in here.) Otherwise, in a pid namespace, pid -1
/// is every process in it but PID 1, and waiting until ECHILD reaps all. A process cannot escape
/// by forking meanwhile: fork fails while a SIGKILL is pending.
fn end_every_other_process() {
    if waitpid(None, Some(WaitPidFlag::WNOHANG)) == Err(nix::errno::Errno::ECHILD) {
        return;
    }
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    while let Ok(_) | Err(nix::errno::Errno::EINTR) = waitpid(None, None) {}
}
