//! `nucleus run`: the headless frontend. Starts the sandbox, proxies its console, collects events and
//! exits with the workload's status (DESIGN §3 exit codes).

mod console;
pub mod filter_cache;
pub mod options;
pub mod reaper;
pub mod trace;
mod watch;

use trace::Learned;
use watch::{EventLog, Watched};

use std::io::{self, IsTerminal};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use serde_json::json;

use crate::cgroup::{self, CgroupSetup};
use crate::cli::RunArgs;
use crate::events::{Event, EventKind, ExitRecord};
use crate::ipc::{self, ToInit};
use crate::launcher::{self, Stream};
use crate::spec::{SandboxSpec, SeccompMode};
use crate::telemetry::sampler::{Sampler, UsageSource};
use crate::telemetry::sink::EventSink;

/// Signals the supervisor forwards to the sandbox (or uses itself, for SIGWINCH).
const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Entry point of `nucleus run`.
pub fn main(args: RunArgs, verbose: u8) -> i32 {
    execute(args, verbose, SeccompMode::Enforce).0
}

/// Run the sandbox in `mode`; also returns the syscalls the profile would have denied (trace mode).
fn execute(mut args: RunArgs, verbose: u8, mode: SeccompMode) -> (i32, Learned) {
    // Block the forwarded signals before any thread exists (the stdio copiers are threads): they
    // wait for the supervisor's loop, which reads them from a signalfd.
    let mut mask = SigSet::empty();
    FORWARDED.iter().for_each(|s| mask.add(*s));
    if let Err(e) = mask.thread_block() {
        eprintln!("nucleus: blocking signals: {e}");
        return (125, Learned::new());
    }
    match prepare(&mut args, mode) {
        Ok(spec) => {
            let events = args.sandbox.events.clone();
            let interval =
                Duration::from_millis(args.sandbox.sample_interval_ms.unwrap_or(1000).max(10));
            let base_profile = spec.seccomp.profile_json.clone();
            match supervise(spec, events.as_deref(), interval, mask, verbose) {
                Ok((code, mut learned)) => {
                    learned.base_profile = base_profile;
                    (code, learned)
                }
                Err(msg) => {
                    console::restore_terminal();
                    eprintln!("nucleus: {msg}");
                    (125, Learned::new())
                }
            }
        }
        Err(msg) => {
            eprintln!("nucleus: {msg}");
            (125, Learned::new())
        }
    }
}

/// Config defaults, then flags, then validation: nothing here touches the kernel.
fn prepare(args: &mut RunArgs, mode: SeccompMode) -> Result<SandboxSpec, String> {
    let config = crate::config::load().map_err(|e| e.to_string())?;
    config.apply_defaults(&mut args.sandbox);
    let mut spec = options::build_spec(&args.dir, args.command.clone(), &args.sandbox, mode)
        .map_err(|e| e.to_string())?;
    spec.tty = io::stdin().is_terminal() && io::stdout().is_terminal();
    spec.window = crate::sys::tty::window_size(io::stdin().as_raw_fd())
        .ok()
        .map(|ws| (ws.ws_row, ws.ws_col));
    if spec.context.writable {
        eprintln!(
            "nucleus: --writable: the sandbox can change files in {}",
            spec.context_dir.display()
        );
    }
    Ok(spec)
}

/// What the audit log says about the filter sent to PID 1.
struct Seccomp {
    warnings: Vec<String>,
    digest: String,
    instructions: usize,
    notify: bool,
    cached: bool,
}

/// Load (or compile) the filter and send it to PID 1, which needs it only when the workload
/// starts: this overlaps PID 1's building of the root.
fn load_and_send(spec: &SandboxSpec, sandbox: &launcher::Sandbox) -> Result<Seccomp, String> {
    let (compiled, cached) = options::seccomp_filter(spec).map_err(|e| e.to_string())?;
    let (instructions, notify) = (compiled.filter.program.len(), compiled.filter.notify);
    ipc::send_unless_gone(sandbox.ipc.as_fd(), &ToInit::Seccomp(compiled.filter), None)
        .map_err(|e| format!("sending the seccomp filter to the sandbox: {e}"))?;
    Ok(Seccomp {
        warnings: compiled.warnings,
        digest: compiled.digest,
        instructions,
        notify,
        cached,
    })
}

fn supervise(
    spec: SandboxSpec,
    events: Option<&std::path::Path>,
    interval: Duration,
    mask: SigSet,
    verbose: u8,
) -> Result<(i32, Learned), String> {
    let started = Instant::now();

    // Events until the audit log exists: it is created once PID 1 runs, while it builds the root
    // (a new file costs 0.1–0.5 ms on ext4), and before the filter, which PID 1 waits for.
    let mut early = vec![Event::audit(
        &spec.id,
        "sandbox_started",
        json!({"command": spec.command, "context": spec.context_dir, "context_mode": spec.context.mode,
               "writable": spec.context.writable, "network": spec.network, "strict": spec.strict}),
    )];

    let asked = spec.limits.memory_bytes.is_some()
        || spec.limits.cpus.is_some()
        || spec.limits.pids.is_some();
    // Without limits there is no cgroup: joining one costs ~10 ms on cgroup v1 (an RCU grace period
    // per migration), and /proc gives the usage.
    let setup = if asked {
        cgroup::create(&spec.id, &spec.limits).map_err(|e| e.to_string())?
    } else {
        CgroupSetup::Unavailable {
            reason: "no limit requested".into(),
        }
    };
    let cgroup = match setup {
        CgroupSetup::Limited(cg) => {
            early.push(Event::audit(&spec.id, "limits_applied", cg.describe()));
            Some(Arc::new(cg))
        }
        CgroupSetup::Unavailable { reason } => {
            if asked && spec.strict {
                return Err(format!(
                    "cannot apply --memory/--cpus/--pids: {reason} (--strict)"
                ));
            }
            if asked {
                eprintln!("nucleus: warning: no resource limits: {reason}");
            }
            early.push(Event::audit(
                &spec.id,
                "limits_unavailable",
                json!({"reason": reason, "usage_source": "/proc"}),
            ));
            None
        }
    };

    // Removes the cgroups even if this process is killed with SIGKILL; held until we return.
    let _reaper = match &cgroup {
        Some(cg) => Some(
            reaper::start(&cg.paths()).map_err(|e| format!("starting the cgroup reaper: {e}"))?,
        ),
        None => None,
    };
    let streams = if spec.tty {
        [Stream::Null; 3]
    } else {
        // A host tty must never reach the sandbox: pipe any stream that is one.
        let pick = |is_tty: bool| {
            if is_tty {
                Stream::Pipe
            } else {
                Stream::Inherit
            }
        };
        [
            pick(io::stdin().is_terminal()),
            pick(io::stdout().is_terminal()),
            pick(io::stderr().is_terminal()),
        ]
    };
    let place = |pid: u32| cgroup.as_ref().map_or(Ok(()), |cg| cg.add_process(pid));
    let launched = launcher::launch(&spec, streams, place).map_err(|e| e.to_string());
    // Before the filter is sent: PID 1 starts no workload until it has it.
    let sink = match EventSink::open(&spec.id, events) {
        Ok(sink) => sink,
        Err(err) => {
            if let Ok(sandbox) = launched {
                let _ = sandbox.end();
            }
            return Err(err.to_string());
        }
    };
    let mut log = EventLog {
        sink,
        learned: Learned::new(),
    };
    early.into_iter().for_each(|event| log.emit(event));
    let launched = launched.and_then(|sandbox| match load_and_send(&spec, &sandbox) {
        Ok(seccomp) => Ok((sandbox, seccomp)),
        Err(msg) => {
            let _ = sandbox.end();
            Err(msg)
        }
    });
    let (mut sandbox, seccomp) = match launched {
        Ok(started) => started,
        Err(err) => {
            // The audit log keeps failed starts too.
            log.emit(Event::audit(
                &spec.id,
                "setup_failed",
                json!({"error": err}),
            ));
            return Err(err);
        }
    };
    log.emit(Event::audit(
        &spec.id,
        "seccomp_profile",
        json!({"mode": spec.seccomp.mode, "profile": spec.seccomp.profile_source, "profile_digest": seccomp.digest,
               "instructions": seccomp.instructions, "filter_cache": if seccomp.cached { "hit" } else { "miss" },
               "live_reports": seccomp.notify,
               "warnings": seccomp.warnings, "allow_ptrace": spec.seccomp.allow_ptrace}),
    ));
    // Set up after the launch, while PID 1 builds the sandbox. Without the teardown child, our
    // exit unmaps our memory before our caller has the exit status.
    let _ = crate::sys::process::defer_exit_teardown();
    crate::telemetry::logging::init(verbose, false);
    let copiers = pipe_copiers(&mut sandbox);
    let source = match &cgroup {
        Some(cg) => UsageSource::Cgroup(cg.clone()),
        None => UsageSource::Proc {
            root_pid: sandbox.pid as u32,
        },
    };
    let watched = Watched {
        spec: &spec,
        ipc: &sandbox.ipc,
        pid1: sandbox.pid,
    };
    let sampler = Sampler::new(source, interval, Instant::now());
    let mut outcome = watch::watch(watched, &mask, sampler, &mut log)?;
    for copier in copiers.into_iter().chain(outcome.console_out.take()) {
        let _ = copier.join();
    }
    drop(outcome.raw_mode.take());

    let oom_killed = cgroup.as_ref().is_some_and(|cg| cg.oom_kills() > 0);
    report_changes(&spec, outcome.upper.as_ref(), &mut log);
    // Why now: this is the last reference to the sandbox's scratch tmpfs besides PID 1's mount;
    // closed at our exit, its teardown would delay the exit status.
    drop(outcome.upper.take());
    let code = match (&outcome.failure, outcome.exit) {
        (Some(failure), _) => {
            eprintln!("nucleus: {}", launcher::describe_failure(failure));
            log.emit(Event::audit(
                &spec.id,
                "setup_failed",
                serde_json::to_value(failure).unwrap_or_default(),
            ));
            failure.exit_code
        }
        (None, Some((Some(code), _))) => code,
        (None, Some((None, Some(sig)))) => 128 + sig,
        // PID 1 died without a report (killed): its own status says how.
        _ => sandbox.end().map_err(|e| e.to_string())?,
    };
    if outcome.failure.is_none() {
        let signal = outcome.exit.and_then(|(_, s)| s);
        let exit = ExitRecord {
            code,
            signal,
            oom_killed,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        log.emit(Event::audit(
            &spec.id,
            "exit",
            json!({"code": code, "signal": signal, "oom_killed": oom_killed}),
        ));
        log.emit(Event::now(&spec.id, EventKind::Exit(exit)));
    }
    // PID 1 reaped every other process of the sandbox before it reported the exit; what is left is
    // its own exit, which unmounts the root and ends the namespaces (~0.7 ms, see
    // docs/BENCHMARKS.md), once it is killed. A cgroup can only be removed once PID 1 has left it,
    // so then we kill it and wait (`Sandbox::end`); otherwise PDEATHSIG kills it as our exit
    // reaches our parent, and the kernel finishes the teardown after we return, as with bwrap.
    if let Some(cgroup) = cgroup {
        let _ = sandbox.end();
        // Dropping the cgroup kills anything left and removes its directories.
        drop(cgroup);
    }
    Ok((code, log.learned))
}

/// Threads that copy piped stdio between the host and the sandbox (only when a host stream is a tty).
fn pipe_copiers(sandbox: &mut launcher::Sandbox) -> Vec<thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    if let Some(mut stdin) = sandbox.stdin.take() {
        // Not joined: it may block reading the host terminal after the sandbox ends.
        let _ = thread::spawn(move || {
            let _ = io::copy(&mut io::stdin().lock(), &mut stdin);
        });
    }
    if let Some(mut out) = sandbox.stdout.take() {
        threads.push(thread::spawn(move || {
            let _ = io::copy(&mut out, &mut io::stdout().lock());
        }));
    }
    if let Some(mut err) = sandbox.stderr.take() {
        threads.push(thread::spawn(move || {
            let _ = io::copy(&mut err, &mut io::stderr().lock());
        }));
    }
    threads
}

/// The change report: an audit event, and a summary on the terminal when anything changed.
fn report_changes(spec: &SandboxSpec, upper: Option<&OwnedFd>, log: &mut EventLog) {
    let Some(upper) = upper else { return };
    match crate::context::change_report(upper, &spec.context_dir) {
        Ok(report) => {
            if let Some(dest) = &spec.context.save_changes
                && let Err(e) = crate::context::save_changes(upper, &report, dest)
            {
                eprintln!("nucleus: --save-changes {}: {e}", dest.display());
            }
            if !report.is_empty() {
                eprintln!("nucleus: {report}");
            }
            log.emit(Event::audit(
                &spec.id,
                "context_changes",
                serde_json::to_value(&report).unwrap_or_default(),
            ));
        }
        Err(e) => eprintln!("nucleus: change report: {e}"),
    }
}
