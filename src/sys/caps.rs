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

/// Highest capability number of the running kernel: the largest `PR_CAPBSET_READ` accepts, by
/// binary search (6 calls; reading `/proc/sys/kernel/cap_last_cap` costs an open, reads and a
/// close on PID 1's way to the workload).
pub fn last_cap() -> u32 {
    // SAFETY: PR_CAPBSET_READ takes an integer capability number and only reads.
    let known = |cap: u32| unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) } >= 0;
    // Capability 0 (CAP_CHOWN) always exists; the answer stays in lo..=hi.
    let (mut lo, mut hi) = (0u32, 63u32);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if known(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// Empty the bounding set, 0 to `last_cap()`; returns that last capability. What the bounding set
/// lacks, no `execve` of this process or its children can ever grant.
pub fn empty_bounding_set() -> io::Result<u32> {
    let last = last_cap();
    for cap in 0..=last {
        // SAFETY: PR_CAPBSET_DROP takes an integer capability number.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(last)
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
    fn the_last_capability_is_the_kernels() {
        let listed: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .expect("cap_last_cap")
            .trim()
            .parse()
            .expect("a number");
        assert_eq!(last_cap(), listed);
    }
}
