//! The notification path end to end: a child installs a filter with a listener, hands the fd to the
//! parent over SCM_RIGHTS (an allowed call, so it cannot deadlock), and the parent's `Responder::serve` answers.

mod seccomp_common;

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};

use nucleus::events::{SyscallRecord, Verdict};
use nucleus::seccomp::{FilterMode, Policy, notify};
use nucleus::spec::SeccompMode;
use nucleus::sys::seccomp::{self as sys, ChildEnd};
use seccomp_common::sc;

/// Run `call` in a child under the default profile with a listener served by this process.
fn serve_child(mode: SeccompMode, call: impl FnOnce() -> i32) -> (ChildEnd, Vec<SyscallRecord>) {
    let policy = Arc::new(Policy::default_profile());
    let filter_mode = match mode {
        SeccompMode::Enforce => FilterMode::Enforce { notify: true },
        SeccompMode::Trace => FilterMode::Trace,
    };
    let prog = policy.compile(filter_mode).expect("compiles");
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    let pid = sys::spawn_child(|| {
        nix::sys::prctl::set_no_new_privs().expect("nnp");
        let listener = sys::install_filter(&prog, true)
            .expect("install")
            .expect("listener fd");
        let fds = [listener.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        if sendmsg::<()>(
            theirs.as_raw_fd(),
            &[IoSlice::new(b"L")],
            &cmsg,
            MsgFlags::empty(),
            None,
        )
        .is_err()
        {
            return 90;
        }
        drop(listener);
        call()
    })
    .expect("fork");
    drop(theirs);
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        ours.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    let mut listener = None;
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: SCM_RIGHTS just installed this fd in our table; we are its only owner.
            listener = fds.first().map(|fd| unsafe { OwnedFd::from_raw_fd(*fd) });
        }
    }
    let listener = listener.expect("child sent the listener");
    let responder = notify::Responder::new(listener, policy, mode).expect("kernel notify ABI");
    let server = std::thread::spawn(move || {
        let mut records = Vec::new();
        responder.serve(|r| records.push(r));
        records
    });
    let end = sys::wait_child(pid).expect("wait");
    let records = server.join().expect("serve returns once the child is gone");
    (end, records)
}

#[test]
fn enforce_denial_is_answered_with_the_profile_errno_and_recorded() {
    let (end, records) = serve_child(SeccompMode::Enforce, || {
        let mount = sc(libc::SYS_mount, [0; 6]);
        let again = sc(libc::SYS_mount, [0; 6]);
        let clone3 = sc(libc::SYS_clone3, [0; 6]);
        let ok = sc(libc::SYS_getppid, [0; 6]).is_ok();
        i32::from(
            !(mount == Err(libc::EPERM)
                && again == Err(libc::EPERM)
                && clone3 == Err(libc::ENOSYS)
                && ok),
        )
    });
    assert_eq!(end, ChildEnd::Exited(0), "child saw the wrong errno");
    let mounts: Vec<_> = records.iter().filter(|r| r.name == "mount").collect();
    assert_eq!(mounts.len(), 2, "{records:?}");
    assert!(
        mounts
            .iter()
            .all(|r| r.verdict == Verdict::Denied && r.errno == Some(libc::EPERM))
    );
    assert_eq!((mounts[0].count, mounts[1].count), (1, 2));
    assert_eq!(mounts[0].arch, "x86_64");
    assert!(
        mounts[0].pid > 0 && mounts[0].comm != "?",
        "{:?}",
        mounts[0]
    );
    // clone3's ENOSYS (the child saw it) comes from the kernel: "no such call" is libc's cue to fall
    // back, and glibc asks on every thread start, so it is neither a round trip nor a report.
    assert!(
        records.iter().all(|r| r.name != "clone3"),
        "ENOSYS is not reported: {records:?}"
    );
    assert!(
        records.iter().all(|r| r.name != "getppid"),
        "allowed calls are not notified"
    );
}

#[test]
fn trace_mode_continues_the_call_and_records_would_deny() {
    let (end, records) = serve_child(SeccompMode::Trace, || {
        // unshare(0) is denied by the profile but a harmless no-op when it runs.
        i32::from(sc(libc::SYS_unshare, [0; 6]) != Ok(0))
    });
    assert_eq!(end, ChildEnd::Exited(0), "the call did not run");
    let rec = records
        .iter()
        .find(|r| r.name == "unshare")
        .expect("unshare recorded");
    assert_eq!(rec.verdict, Verdict::WouldDeny);
    assert_eq!(rec.errno, Some(libc::EPERM));
}

#[test]
fn without_a_supervisor_notified_calls_still_fail() {
    // The listener is closed at once: the kernel then fails notified calls with ENOSYS.
    let prog = Policy::default_profile()
        .compile(FilterMode::Enforce { notify: true })
        .expect("compiles");
    let end = sys::fork_and_wait(|| {
        nix::sys::prctl::set_no_new_privs().expect("nnp");
        drop(sys::install_filter(&prog, true).expect("install"));
        i32::from(sc(libc::SYS_mount, [0; 6]) != Err(libc::ENOSYS))
    })
    .expect("fork");
    assert_eq!(end, ChildEnd::Exited(0));
}
