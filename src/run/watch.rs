//! The supervisor's one loop while the sandbox runs. It polls PID 1's channel, the forwarded
//! signals (a signalfd), the seccomp listener, and the usage sampler's timer.
//!
//! Why one thread: on two CPUs, the event-writer, signal and sampler threads this replaces made a
//! start 5 % slower (docs/BENCHMARKS.md). Each paid for its spawn, its malloc arena, the wake-ups
//! and a join at the exit, while PID 1 was on the critical path. Only the console and pipe copiers
//! remain threads: their blocking reads of the host's stdio cannot be polled without changing
//! those fds.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use super::console;
use super::trace::Learned;
use crate::events::{Event, EventKind};
use crate::ipc::{self, AuditRecord, FromInit, SetupFailure};
use crate::seccomp::Policy;
use crate::seccomp::notify::Responder;
use crate::spec::SandboxSpec;
use crate::telemetry::sampler::Sampler;
use crate::telemetry::sink::EventSink;

/// Where every event goes: the sink, and what trace mode learns from the syscall records.
pub struct EventLog {
    /// The `--events` stream and the audit log.
    pub sink: EventSink,
    /// The calls trace mode saw the profile would deny.
    pub learned: Learned,
}

impl EventLog {
    /// Write `event` (with one `write`, so a slow `--events` reader slows the sandbox rather than
    /// letting events pile up in memory).
    pub fn emit(&mut self, event: Event) {
        self.learned.observe(&event);
        self.sink.write(&event);
    }
}

/// What the loop learned by the time PID 1 reported the exit or closed the channel.
#[derive(Default)]
pub struct Outcome {
    /// PID 1 could not set the sandbox up.
    pub failure: Option<SetupFailure>,
    /// The workload's exit code or signal.
    pub exit: Option<(Option<i32>, Option<i32>)>,
    /// The context overlay's upper directory, for the change report.
    pub upper: Option<OwnedFd>,
    /// The console's output copier, to join (it ends when the PTY closes).
    pub console_out: Option<JoinHandle<()>>,
    /// The host terminal in raw mode while the console is proxied.
    pub raw_mode: Option<console::RawMode>,
}

/// The parts of the sandbox the loop watches.
pub struct Watched<'a> {
    /// The sandbox's spec.
    pub spec: &'a SandboxSpec,
    /// PID 1's channel.
    pub ipc: &'a OwnedFd,
    /// PID 1, as a host pid: forwarded signals go there.
    pub pid1: i32,
}

/// The seccomp listener, once PID 1 has handed it over.
enum Listener {
    /// Not handed over, or every filtered task is gone.
    Gone,
    /// Nothing notified yet. The policy that answers is built at the first notification: most
    /// starts then never parse the profile, since the filter came from the cache.
    Idle(OwnedFd),
    /// Answering notifications.
    Serving(Responder),
}

impl Listener {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Listener::Gone => None,
            Listener::Idle(fd) => Some(fd.as_fd()),
            Listener::Serving(responder) => Some(responder.listener()),
        }
    }

    /// Answer the pending notification, building the responder first if need be.
    fn answer(&mut self, spec: &SandboxSpec, log: &mut EventLog) {
        if let Listener::Idle(_) = self
            && let Listener::Idle(fd) = std::mem::replace(self, Listener::Gone)
        {
            match serve_with_policy(fd, spec) {
                Ok(responder) => *self = Listener::Serving(responder),
                Err(problem) => log.emit(Event::audit(
                    &spec.id,
                    "seccomp_listener_failed",
                    serde_json::json!({ "error": problem }),
                )),
            }
        }
        if let Listener::Serving(responder) = self
            && let Ok(Some(record)) = responder.answer_one()
        {
            log.emit(Event::now(&spec.id, EventKind::Syscall(record)));
        }
    }
}

/// A responder for `listener` that answers with the policy of the spec's profile.
fn serve_with_policy(listener: OwnedFd, spec: &SandboxSpec) -> Result<Responder, String> {
    let (policy, _) = Policy::from_spec(&spec.seccomp).map_err(|e| e.to_string())?;
    Responder::new(listener, Arc::new(policy), spec.seccomp.mode)
}

/// Serve the sandbox until PID 1 reports the exit (or its channel closes). Then answer the seccomp
/// listener until every filtered task is gone, so that no record is lost, and take the sampler's
/// last reading.
pub fn watch(
    sandbox: Watched<'_>,
    forwarded: &SigSet,
    mut sampler: Sampler,
    log: &mut EventLog,
) -> Result<Outcome, String> {
    // The forwarded signals are blocked since `execute` began: anything that came meanwhile waits here.
    let signals = SignalFd::with_flags(forwarded, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| format!("signalfd for the forwarded signals: {e}"))?;
    let mut listener = Listener::Gone;
    let mut console_master: Option<OwnedFd> = None;
    let mut outcome = Outcome::default();
    let id = sandbox.spec.id.as_str();
    'serve: loop {
        let (ipc_ready, signal_ready, listener_ready) = {
            let mut fds = vec![
                PollFd::new(sandbox.ipc.as_fd(), PollFlags::POLLIN),
                PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            ];
            if let Some(fd) = listener.fd() {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            match poll(&mut fds, poll_timeout(sampler.until_due(Instant::now()))) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(format!("waiting for the sandbox: poll: {e}")),
            }
            let ready = |fd: &PollFd| fd.revents().unwrap_or(PollFlags::empty());
            (ready(&fds[0]), ready(&fds[1]), fds.get(2).map(ready))
        };
        if signal_ready.contains(PollFlags::POLLIN) {
            while let Ok(Some(info)) = signals.read_signal() {
                forward(info.ssi_signo, sandbox.pid1, console_master.as_ref());
            }
        }
        if let Some(revents) = listener_ready {
            if revents.contains(PollFlags::POLLIN) {
                listener.answer(sandbox.spec, log);
            } else if !revents.is_empty() {
                // Hung up: every filtered task is gone.
                listener = Listener::Gone;
            }
        }
        if !ipc_ready.is_empty() {
            let Ok(Some((msg, fd))) = ipc::recv::<FromInit>(sandbox.ipc.as_fd()) else {
                break 'serve;
            };
            match msg {
                FromInit::Audits(records) => emit_audits(log, id, records),
                FromInit::WorkloadStarted(records) => {
                    emit_audits(log, id, records);
                    if let Some(fd) = fd {
                        listener = Listener::Idle(fd);
                    }
                }
                FromInit::Console => {
                    if let Some(master) = fd {
                        outcome.raw_mode = console::RawMode::enter().ok();
                        console_master = master.try_clone().ok();
                        outcome.console_out =
                            Some(console::proxy(master).map_err(|e| e.to_string())?);
                    }
                }
                FromInit::ContextUpper => outcome.upper = fd,
                FromInit::Failed(failure) => outcome.failure = Some(failure),
                FromInit::Exited { code, signal } => {
                    // PID 1's last message: it tears the sandbox down once we hang up.
                    outcome.exit = Some((code, signal));
                    break 'serve;
                }
            }
        }
        for event in sampler.sample_if_due(id, Instant::now()) {
            log.emit(event);
        }
    }
    // A listener nothing was notified on has nothing to answer: its callers are gone.
    if let Listener::Serving(responder) = listener {
        responder.serve(|record| log.emit(Event::now(id, EventKind::Syscall(record))));
    }
    // The sampler has already reported each earlier OOM kill as an `oom` audit event.
    if let Some(event) = sampler.finish(id) {
        log.emit(event);
    }
    Ok(outcome)
}

/// PID 1's audit records, as events stamped when the steps completed.
fn emit_audits(log: &mut EventLog, id: &str, records: Vec<AuditRecord>) {
    for record in records {
        let mut event = Event::audit(id, &record.event, record.detail);
        event.ts = record.ts;
        log.emit(event);
    }
}

/// A forwarded signal: SIGWINCH resizes the console, anything else goes to PID 1.
fn forward(signo: u32, pid1: i32, console_master: Option<&OwnedFd>) {
    let Ok(signal) = Signal::try_from(signo as i32) else {
        return;
    };
    if signal == Signal::SIGWINCH {
        if let Some(master) = console_master {
            console::sync_window_size(master);
        }
        return;
    }
    let _ = kill(Pid::from_raw(pid1), signal);
}

/// `poll`'s timeout for a wait of `left`: rounded up to whole milliseconds, so that the loop does
/// not spin through the last fraction of one.
fn poll_timeout(left: Duration) -> PollTimeout {
    let ms = left.as_micros().div_ceil(1000);
    PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_timeout_rounds_up_and_saturates() {
        assert_eq!(i32::from(poll_timeout(Duration::ZERO)), 0);
        assert_eq!(i32::from(poll_timeout(Duration::from_micros(1))), 1);
        assert_eq!(i32::from(poll_timeout(Duration::from_micros(1500))), 2);
        assert_eq!(
            i32::from(poll_timeout(Duration::from_secs(1 << 40))),
            i32::MAX
        );
    }
}
