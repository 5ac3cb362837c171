//! Capability dropping with raw prctl/capset, so every capability the kernel knows is covered.

use std::io;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Empty the bounding set; returns the last capability number the kernel knows, the first one
/// `PR_CAPBSET_DROP` refuses being past it. What the bounding set lacks, no `execve` of this process
/// or its children can ever grant.
pub fn empty_bounding_set() -> io::Result<u32> {
    for cap in 0..64u32 {
        // SAFETY: PR_CAPBSET_DROP takes an integer capability number.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            let err = io::Error::last_os_error();
            return match (err.raw_os_error(), cap.checked_sub(1)) {
                (Some(libc::EINVAL), Some(last)) => Ok(last),
                _ => Err(err),
            };
        }
    }
    Err(io::Error::other("the kernel knows 64 capabilities or more"))
}

/// Empty the ambient set, and the effective, permitted and inheritable sets.
pub fn drop_process_sets() -> io::Result<()> {
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes integer arguments only.
    if unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: header and data are valid, correctly sized v3 structures (two 32-bit words).
    if unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set no_new_privs: execve can never grant privileges again (setuid bits, file caps).
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounding_set_is_emptied_up_to_the_kernels_last_capability() {
        let listed: i32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .expect("cap_last_cap")
            .trim()
            .parse()
            .expect("a number");
        // In a child: the bounding set is the calling thread's, and it is dropped for good. The child
        // only makes syscalls (this test process has threads), and reports in its exit code.
        // SAFETY: fork in the test; the child calls prctl and _exit only.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = match empty_bounding_set() {
                // SAFETY: PR_CAPBSET_READ takes an integer capability number and only reads.
                Ok(last) if (0..=last).all(|c| unsafe { libc::prctl(libc::PR_CAPBSET_READ, c as libc::c_ulong, 0, 0, 0) } == 0) => last as i32,
                _ => 255,
            };
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status));
        assert_eq!(
            libc::WEXITSTATUS(status),
            listed,
            "last capability, every one dropped"
        );
    }
}
