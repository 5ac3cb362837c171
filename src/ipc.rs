//! Typed, length-prefixed messages between the supervisor and the sandbox's PID 1 over a
//! SOCK_SEQPACKET pair.
//!
//! Each datagram is `u32 little-endian length` + JSON body, optionally carrying one fd (SCM_RIGHTS).
//! SEQPACKET keeps datagrams whole, and both ends are close-on-exec, so the workload never holds one.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, sendmsg, socketpair,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::spec::CompiledFilter;

/// Largest message accepted: a filter of the kernel's maximum 4,096 instructions is < 90 KiB of JSON.
const MAX_MESSAGE: usize = 128 << 10;

/// Supervisor → PID 1.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToInit {
    /// The uid/gid maps of the new user namespace are written.
    IdsMapped,
    /// The sandbox's network namespace, loopback up (fd attached).
    Network,
    /// The seccomp filter, compiled while PID 1 builds the root.
    Seccomp(CompiledFilter),
}

/// PID 1 (or the workload before its execve) → supervisor.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromInit {
    /// Hardening steps completed since the last report, in order.
    Audits(Vec<AuditRecord>),
    /// The context's overlay upper directory (fd attached), for the change report.
    ContextUpper,
    /// The master side of the sandbox's console (fd attached).
    Console,
    /// The workload has exec'd: the steps recorded since the last report (its own among them), and
    /// the seccomp notification listener attached, if it made one.
    WorkloadStarted(Vec<AuditRecord>),
    /// A setup step failed; the sandbox does not start.
    Failed(SetupFailure),
    /// The workload ended.
    Exited {
        /// Exit code, or None when killed by a signal.
        code: Option<i32>,
        /// The killing signal.
        signal: Option<i32>,
    },
}

/// One completed hardening step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditRecord {
    /// snake_case step name.
    pub event: String,
    /// Step details.
    pub detail: serde_json::Value,
    /// When the step completed.
    pub ts: std::time::SystemTime,
}

/// A failed setup step, reported to the user by the supervisor.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetupFailure {
    /// snake_case name of the step, e.g. `pivot_root`.
    pub step: String,
    /// The errno, when a syscall failed.
    pub errno: Option<i32>,
    /// What went wrong.
    pub message: String,
    /// What the user can do about it.
    pub hint: String,
    /// Exit code for `run`: 125 (nucleus failed), 126 (cannot execute) or 127 (not found).
    pub exit_code: i32,
}

/// A connected pair: (supervisor end, PID 1 end). Both are close-on-exec.
pub fn channel() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(
        nix::sys::socket::AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// Send one message, with an optional fd.
pub fn send<T: Serialize>(
    sock: BorrowedFd<'_>,
    msg: &T,
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let len = u32::try_from(body.len())
        .map_err(io::Error::other)?
        .to_le_bytes();
    let iov = [IoSlice::new(&len), IoSlice::new(&body)];
    let fds: Vec<RawFd> = fd.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// Send a message to a peer that may have exited meanwhile, as PID 1 does when a setup step fails:
/// that is not an error here, because its failure report is queued for the reader. (ECONNRESET: it
/// exited with a message of ours unread.)
pub fn send_unless_gone<T: Serialize>(
    sock: BorrowedFd<'_>,
    msg: &T,
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    match send(sock, msg, fd) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)) => Ok(()),
        other => other,
    }
}

/// Receive one message and its fd; `Ok(None)` when the peer closed the channel.
pub fn recv<T: DeserializeOwned>(sock: BorrowedFd<'_>) -> io::Result<Option<(T, Option<OwnedFd>)>> {
    // ECONNRESET: the peer exited with a message of ours unread. The kernel reports that once, at
    // whichever receive comes next (the size's peek, or the read after it, if the peer exited in
    // between), before taking anything off the queue; the messages the peer sent are still there:
    // read on.
    match receive(sock) {
        Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => receive(sock),
        other => other,
    }
}

fn receive<T: DeserializeOwned>(sock: BorrowedFd<'_>) -> io::Result<Option<(T, Option<OwnedFd>)>> {
    // The datagram's size first (MSG_PEEK | MSG_TRUNC with no buffer and no control data: nothing is
    // consumed and no fd installed), so that the buffer fits the message: a fixed buffer large enough
    // for any message would be zeroed, page by page, for every small one.
    let size = nix::sys::socket::recv(
        sock.as_raw_fd(),
        &mut [],
        MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
    )?;
    let mut buf = vec![0u8; size.clamp(4, MAX_MESSAGE)];
    let mut cmsg_space = nix::cmsg_space!([RawFd; 1]);
    let (bytes, fd) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fd = None;
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for raw in fds {
                    fd.get_or_insert(crate::sys::adopt_received_fd(raw));
                }
            }
        }
        (msg.bytes, fd)
    };
    if bytes == 0 {
        return Ok(None);
    }
    let header: [u8; 4] = buf
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short ipc header"))?;
    let len = u32::from_le_bytes(header) as usize;
    let body = buf
        .get(4..4 + len)
        .filter(|_| bytes == 4 + len)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "ipc length mismatch"))?;
    let msg =
        serde_json::from_slice(body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Some((msg, fd)))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn messages_and_fds_round_trip() {
        let (a, b) = channel().expect("socketpair");
        let file = std::fs::File::open("/dev/null").expect("open");
        send(
            a.as_fd(),
            &FromInit::WorkloadStarted(Vec::new()),
            Some(file.as_fd()),
        )
        .expect("send");
        send(
            a.as_fd(),
            &FromInit::Exited {
                code: Some(42),
                signal: None,
            },
            None,
        )
        .expect("send");
        let (first, fd) = recv::<FromInit>(b.as_fd()).expect("recv").expect("message");
        assert!(matches!(first, FromInit::WorkloadStarted(_)));
        assert!(fd.is_some());
        let (second, fd) = recv::<FromInit>(b.as_fd()).expect("recv").expect("message");
        assert!(matches!(
            second,
            FromInit::Exited {
                code: Some(42),
                signal: None
            }
        ));
        assert!(fd.is_none());
        drop(a);
        assert!(recv::<FromInit>(b.as_fd()).expect("recv").is_none());
    }

    #[test]
    fn what_a_peer_sent_before_exiting_with_ours_unread_is_still_read() {
        // PID 1 failing a step: its report is queued for us, our filter unread in its socket.
        let (supervisor, pid1) = channel().expect("socketpair");
        send(pid1.as_fd(), &FromInit::ContextUpper, None).expect("send");
        send(supervisor.as_fd(), &ToInit::IdsMapped, None).expect("send");
        drop(pid1);
        let received = recv::<FromInit>(supervisor.as_fd()).expect("recv, despite ECONNRESET");
        assert!(matches!(received, Some((FromInit::ContextUpper, None))));
        assert!(
            recv::<FromInit>(supervisor.as_fd())
                .expect("recv")
                .is_none()
        );
    }

    #[test]
    fn the_largest_filter_the_kernel_accepts_fits_in_one_message() {
        use crate::spec::{BpfInstruction, CompiledFilter};
        let widest = BpfInstruction {
            code: u16::MAX,
            jt: u8::MAX,
            jf: u8::MAX,
            k: u32::MAX,
        };
        let mixed = BpfInstruction {
            code: 0x15,
            jt: 3,
            jf: 0,
            k: 0xc000_003e,
        };
        // BPF_MAXINSNS
        let program: Vec<_> = (0..4096)
            .map(|i| if i % 2 == 0 { widest } else { mixed })
            .collect();
        let filter = CompiledFilter::new(program.iter().copied(), true);
        let (a, b) = channel().expect("socketpair");
        send(a.as_fd(), &ToInit::Seccomp(filter.clone()), None).expect("send");
        let Some((ToInit::Seccomp(received), _)) = recv::<ToInit>(b.as_fd()).expect("recv") else {
            panic!("no filter");
        };
        assert_eq!(received, filter);
        assert_eq!(received.instructions().collect::<Vec<_>>(), program);
    }
}
