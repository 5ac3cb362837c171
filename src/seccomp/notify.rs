//! The supervisor side of `SECCOMP_RET_USER_NOTIF`: answer each notified call and record it.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::events::{SyscallRecord, Verdict};
use crate::seccomp::policy::{Decision, Policy};
use crate::seccomp::syscalls::syscall_name;
use crate::spec::SeccompMode;
use crate::sys::seccomp::{self as sys, Notif, NotifResp};

/// How one notification is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// What is recorded.
    pub verdict: Verdict,
    /// The errno the call gets (enforce) or would get (trace), if any.
    pub errno: Option<i32>,
    /// Let the call run (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
    pub continue_call: bool,
}

/// Pure: the answer to a notified call, from the policy's decision and the mode.
pub fn answer(decision: Decision, mode: SeccompMode) -> Answer {
    let errno = match decision {
        Decision::Errno(n) => Some(i32::from(n)),
        Decision::Allow | Decision::Log => None,
        // Enforce notifies only ERRNO; anything else reaching us is refused like the default.
        _ => Some(libc::EPERM),
    };
    match (mode, decision.allows()) {
        // Nothing the policy allows is notified; if it happens, let it run and say so.
        (_, true) => Answer {
            verdict: Verdict::Allowed,
            errno: None,
            continue_call: true,
        },
        (SeccompMode::Enforce, false) => Answer {
            verdict: Verdict::Denied,
            errno,
            continue_call: false,
        },
        (SeccompMode::Trace, false) => Answer {
            verdict: Verdict::WouldDeny,
            errno,
            continue_call: true,
        },
    }
}

/// The kernel's response struct for an answer.
fn response(id: u64, a: Answer) -> NotifResp {
    if a.continue_call {
        NotifResp {
            id,
            val: 0,
            error: 0,
            flags: sys::USER_NOTIF_FLAG_CONTINUE,
        }
    } else {
        NotifResp {
            id,
            val: 0,
            error: -a.errno.unwrap_or(libc::EPERM),
            flags: 0,
        }
    }
}

/// Answers the notifications of one listener, counting each (name, verdict) it records.
pub struct Responder {
    listener: OwnedFd,
    policy: Arc<Policy>,
    mode: SeccompMode,
    counts: HashMap<(String, u8), u64>,
}

impl Responder {
    /// A responder for `listener`; refused when the kernel's notification structs are larger than
    /// ours (the message says so).
    pub fn new(listener: OwnedFd, policy: Arc<Policy>, mode: SeccompMode) -> Result<Self, String> {
        check_abi()?;
        Ok(Self {
            listener,
            policy,
            mode,
            counts: HashMap::new(),
        })
    }

    /// The listener, to poll: readable when a call waits for its answer, hung up when every
    /// filtered task is gone.
    pub fn listener(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Receive and answer one notification. `Ok(None)`: it vanished (caller died, EINTR).
    pub fn answer_one(&mut self) -> io::Result<Option<SyscallRecord>> {
        handle_one(
            self.listener.as_fd(),
            &self.policy,
            self.mode,
            &mut self.counts,
        )
    }

    /// Answer until every filtered task is gone (POLLHUP), passing each record to `record`.
    pub fn serve(mut self, mut record: impl FnMut(SyscallRecord)) {
        loop {
            let ready = match sys::wait_listener(self.listener(), -1) {
                Ok(r) => r,
                Err(_) => return,
            };
            if ready.readable {
                match self.answer_one() {
                    Ok(Some(rec)) => record(rec),
                    Ok(None) => {}
                    Err(_) => return,
                }
            } else if ready.hangup {
                return;
            }
        }
    }
}

/// Our structs must be at least as large as the kernel's, or RECV would write past them.
fn check_abi() -> Result<(), String> {
    let sizes = sys::notif_sizes().map_err(|e| format!("SECCOMP_GET_NOTIF_SIZES failed: {e}"))?;
    let ours = (
        std::mem::size_of::<Notif>(),
        std::mem::size_of::<NotifResp>(),
    );
    if usize::from(sizes.notif) > ours.0 || usize::from(sizes.resp) > ours.1 {
        return Err(format!(
            "kernel seccomp_notif is {} bytes and seccomp_notif_resp {} bytes, nucleus knows {} and {}; \
             update nucleus for this kernel",
            sizes.notif, sizes.resp, ours.0, ours.1
        ));
    }
    Ok(())
}

/// Receive, answer and describe one notification. `Ok(None)`: it vanished (caller died, EINTR).
fn handle_one(
    fd: BorrowedFd<'_>,
    policy: &Policy,
    mode: SeccompMode,
    counts: &mut HashMap<(String, u8), u64>,
) -> io::Result<Option<SyscallRecord>> {
    let notif = match sys::notif_recv(fd) {
        Ok(n) => n,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINTR)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let nr = i64::from(notif.data.nr);
    let ans = answer(policy.decide(nr, &notif.data.args), mode);
    // The pid is only meaningful while the notification is pending: check before and after reading.
    let comm = if sys::notif_id_valid(fd, notif.id) {
        read_comm(notif.pid)
    } else {
        None
    };
    let comm = comm.filter(|_| sys::notif_id_valid(fd, notif.id));
    match sys::notif_send(fd, &response(notif.id, ans)) {
        Ok(()) => {}
        // The caller died or was interrupted by a signal: nothing to answer, still worth recording.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let name = syscall_name(nr);
    let count = counts.entry((name.clone(), ans.verdict as u8)).or_insert(0);
    *count += 1;
    Ok(Some(SyscallRecord {
        name,
        nr,
        arch: policy.arch().name().to_owned(),
        pid: notif.pid,
        comm: comm.unwrap_or_else(|| "?".to_owned()),
        verdict: ans.verdict,
        count: *count,
        args: notif.data.args,
        errno: ans.errno,
    }))
}

fn read_comm(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim_end_matches('\n').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforce_denies_with_the_policy_errno_and_trace_continues() {
        let a = answer(Decision::Errno(38), SeccompMode::Enforce);
        assert_eq!(
            a,
            Answer {
                verdict: Verdict::Denied,
                errno: Some(38),
                continue_call: false
            }
        );
        assert_eq!(response(7, a).error, -38);
        let t = answer(Decision::Errno(1), SeccompMode::Trace);
        assert_eq!(
            t,
            Answer {
                verdict: Verdict::WouldDeny,
                errno: Some(1),
                continue_call: true
            }
        );
        assert_eq!(response(7, t).flags, sys::USER_NOTIF_FLAG_CONTINUE);
        assert_eq!(
            answer(Decision::KillProcess, SeccompMode::Trace).verdict,
            Verdict::WouldDeny
        );
        assert_eq!(
            answer(Decision::Allow, SeccompMode::Enforce).verdict,
            Verdict::Allowed
        );
    }
}
