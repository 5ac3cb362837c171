//! Kernel feature probes shared by `doctor` and the runtime's strictness checks.

/// The Landlock ABI version the kernel offers, or None when Landlock is unavailable.
pub fn landlock_abi() -> Option<u32> {
    crate::sys::landlock_abi_version()
}

/// The seccomp actions the kernel offers (from /proc/sys/kernel/seccomp/actions_avail).
pub fn seccomp_actions() -> Vec<String> {
    std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Whether seccomp user notification is available.
pub fn user_notif_available() -> bool {
    seccomp_actions().iter().any(|a| a == "user_notif")
}
