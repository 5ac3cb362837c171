//! The workload process: everything is prepared by PID 1, the child only hardens itself and execs.
//!
//! Order (DESIGN §2, step 8–9): session and tty → rlimits → capabilities → no_new_privs → Landlock →
//! seccomp (last, so the filter covers the workload's own execve and nothing of nucleus's setup).

use std::cell::Cell;
use std::ffi::CString;
use std::os::fd::{BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::unistd::{AccessFlags, access, dup2_stderr, dup2_stdin, dup2_stdout, setsid};
use serde_json::json;

use super::error::{SetupError, Step, StepContext, StepResult};
use super::{audit, landlock, report_failure};
use crate::spec::{CompiledFilter, SandboxSpec};
use crate::sys;

/// Everything the workload needs, computed before the clone.
pub struct Prepared {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    console: Option<OwnedFd>,
    landlock: Option<landlock::Prepared>,
    last_cap: u32,
    strict: bool,
}

/// Resolve the command and build the Landlock ruleset; the filter comes with `spawn`.
pub fn prepare(
    spec: &SandboxSpec,
    console: Option<OwnedFd>,
    last_cap: u32,
) -> StepResult<Prepared> {
    let path = resolve_command(spec)?;
    let cstr = |s: &[u8]| {
        CString::new(s).map_err(|_| SetupError::other(Step::ResolveCommand, "NUL byte in argument"))
    };
    let argv = spec
        .command
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<StepResult<Vec<_>>>()?;
    let envp = spec
        .env
        .iter()
        .map(|(k, v)| cstr(format!("{k}={v}").as_bytes()))
        .collect::<StepResult<Vec<_>>>()?;

    let landlock = match crate::features::landlock_abi() {
        Some(abi) => {
            Some(landlock::prepare(spec, abi).map_err(|e| SetupError::other(Step::Landlock, e))?)
        }
        None if spec.strict => {
            return Err(SetupError::other(
                Step::Landlock,
                "the kernel has no Landlock (--strict)",
            ));
        }
        None => {
            audit(
                "landlock",
                json!({"enforced": false, "reason": "kernel has no Landlock"}),
            );
            None
        }
    };

    Ok(Prepared {
        path,
        argv,
        envp,
        console,
        landlock,
        last_cap,
        strict: spec.strict,
    })
}

/// Find the command like execvp would, but report 127/126 with a clear message instead of exec'ing.
fn resolve_command(spec: &SandboxSpec) -> StepResult<CString> {
    let name = spec
        .command
        .first()
        .ok_or_else(|| SetupError::other(Step::ResolveCommand, "no command given"))?;
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![PathBuf::from(name)]
    } else {
        let path = spec
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or("/usr/bin:/bin");
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(name))
            .collect()
    };
    let found = candidates.iter().find(|p| p.is_file());
    let Some(found) = found else {
        return Err(
            SetupError::other(Step::ResolveCommand, format!("{name}: command not found"))
                .with_exit_code(127),
        );
    };
    if access(found.as_path(), AccessFlags::X_OK).is_err() {
        return Err(SetupError::other(
            Step::ResolveCommand,
            format!("{}: permission denied", found.display()),
        )
        .with_exit_code(126));
    }
    CString::new(found.as_os_str().as_bytes())
        .map_err(|_| SetupError::other(Step::ResolveCommand, "NUL byte in path"))
}

/// Start the workload, which installs `filter` last. Returns its pid once it has exec'd (or died
/// trying), and the seccomp listener it left in the fd table we shared until its `execve`, if it
/// created one.
pub fn spawn(
    prepared: Prepared,
    filter: &CompiledFilter,
    ipc: BorrowedFd<'_>,
) -> StepResult<(libc::pid_t, Option<OwnedFd>)> {
    let program: Vec<libc::sock_filter> = filter
        .instructions()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let seccomp = (program.as_slice(), filter.notify);
    // Written by the child before its execve, read by us once it is done: memory is shared and we
    // sleep meanwhile (CLONE_VM | CLONE_VFORK).
    let listener: Cell<Option<RawFd>> = Cell::new(None);
    // The child takes `prepared` with it: the console and Landlock fds it closes are gone from the
    // fd table we share until its execve, and nothing of it is dropped again on our side.
    let pid =
        sys::process::spawn_sharing_memory(|| harden_and_exec(prepared, seccomp, ipc, &listener))
            .step(
            Step::SpawnWorkload,
            "clone(CLONE_VM|CLONE_VFORK|CLONE_FILES)",
        )?;
    Ok((pid, listener.get().map(sys::adopt_fd)))
}

/// The child: never returns.
fn harden_and_exec(
    mut p: Prepared,
    (filter, notify): (&[libc::sock_filter], bool),
    ipc: BorrowedFd<'_>,
    listener: &Cell<Option<RawFd>>,
) -> ! {
    let failure = match harden(&mut p) {
        Ok(()) => {
            // Our audit records are PID 1's to send (`PENDING_AUDITS`: we share its memory and
            // thread-local storage), after our execve: nothing of that is on our way to it.
            // Why last: the filter must cover execve itself, and nothing of nucleus's setup.
            match sys::seccomp::install_filter(filter, notify) {
                Err(e) => SetupError::os(Step::Seccomp, "seccomp(SET_MODE_FILTER)", e),
                Ok(fd) => {
                    // The listener stays in the fd table shared with PID 1, which hands it over
                    // after our execve; from here on only execve and exit may be called.
                    listener.set(fd.map(IntoRawFd::into_raw_fd));
                    let err = sys::process::execve(&p.path, &p.argv, &p.envp);
                    let code = if err.raw_os_error() == Some(libc::ENOENT) {
                        127
                    } else {
                        126
                    };
                    sys::process::exit_now(code);
                }
            }
        }
        Err(e) => e,
    };
    report_failure(ipc, &failure);
    sys::process::exit_now(failure.exit_code)
}

fn harden(p: &mut Prepared) -> StepResult<()> {
    let strict = p.strict;
    // A new session, so the workload's job control is its own and it can own the console.
    setsid().step(Step::SpawnWorkload, "setsid")?;
    if let Some(console) = p.console.take() {
        for dup in [dup2_stdin, dup2_stdout, dup2_stderr] {
            dup(&console).step(Step::SpawnWorkload, "dup2(console)")?;
        }
        drop(console);
        sys::process::set_controlling_tty(0).step(Step::SpawnWorkload, "TIOCSCTTY")?;
    }
    // PID 1 blocks every signal to read them from a signalfd; the workload starts with none blocked.
    // (Every disposition is at its default, and the bounding set empty: `pid1::clear_inheritance`.)
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .step(Step::SpawnWorkload, "sigprocmask")?;

    setrlimit(Resource::RLIMIT_CORE, 0, 0).step(Step::SpawnWorkload, "setrlimit(RLIMIT_CORE)")?;

    sys::caps::drop_process_sets().step(Step::SpawnWorkload, "dropping capabilities")?;
    audit(
        "capabilities_dropped",
        json!({"bounding": "empty", "ambient": "empty", "effective": "empty",
        "permitted": "empty", "inheritable": "empty", "last_cap": p.last_cap}),
    );
    sys::caps::set_no_new_privs().step(Step::SpawnWorkload, "prctl(PR_SET_NO_NEW_PRIVS)")?;
    audit("no_new_privs", json!({"set": true}));

    if let Some(prepared) = p.landlock.take() {
        let status = prepared
            .ruleset
            .restrict_self()
            .map_err(|e| SetupError::other(Step::Landlock, e.to_string()))?;
        let fully = status.ruleset == ::landlock::RulesetStatus::FullyEnforced;
        if !fully && strict {
            return Err(SetupError::other(
                Step::Landlock,
                format!("Landlock only {:?} (--strict)", status.ruleset),
            ));
        }
        let mut detail = prepared.detail;
        detail["status"] = json!(format!("{:?}", status.ruleset));
        audit("landlock", detail);
    }
    Ok(())
}
