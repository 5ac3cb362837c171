//! One probe per report row: what was found, and what nucleus does without it.

use std::io;

use super::{Row, Status};
use crate::config::ConfigError;
use crate::features::{self, BpfProgType, CgroupVersion};

fn errno_text(e: &io::Error) -> String {
    e.to_string()
}

pub(super) fn config_row() -> Row {
    let without =
        "a broken config file stops every run (exit 125): fix the named key or remove the file";
    let (status, detail) = match crate::config::config_path() {
        None => (
            Status::Ok,
            "no home directory: built-in defaults".to_owned(),
        ),
        Some(path) => match crate::config::load_from(&path) {
            Ok(_) => (Status::Ok, format!("{} (ok)", path.display())),
            Err(ConfigError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => (
                Status::Ok,
                format!("{} (absent: built-in defaults)", path.display()),
            ),
            Err(e) => (
                Status::Degraded,
                format!("{} (error: {})", path.display(), e.reason()),
            ),
        },
    };
    Row {
        feature: "config",
        status,
        detail,
        without,
        required: true,
    }
}

pub(super) fn kernel_row() -> Row {
    let detail = nix::sys::utsname::uname()
        .map(|u| {
            format!(
                "{} {}",
                u.release().to_string_lossy(),
                u.machine().to_string_lossy()
            )
        })
        .unwrap_or_else(|e| format!("uname failed: {e}"));
    Row {
        feature: "kernel",
        status: Status::Ok,
        detail,
        without: "informational only",
        required: false,
    }
}

pub(super) fn userns_row() -> Row {
    let without = "nucleus cannot build a sandbox: enable user namespaces \
                   (sysctl user.max_user_namespaces=15000; Debian: kernel.unprivileged_userns_clone=1; \
                   Ubuntu: kernel.apparmor_restrict_unprivileged_userns=0)";
    let max = features::max_user_namespaces();
    let uid = nix::unistd::geteuid();
    let mut detail = match max {
        Some(n) => format!("max_user_namespaces={n}"),
        None => "max_user_namespaces unreadable".to_owned(),
    };
    let own = features::userns_probe(None);
    match &own {
        Ok(()) => detail += &format!("; unshare(CLONE_NEWUSER) as uid {uid}: ok"),
        Err(e) => detail += &format!("; unshare(CLONE_NEWUSER) as uid {uid}: {}", errno_text(e)),
    }
    let mut status = if own.is_ok() {
        Status::Ok
    } else {
        Status::Missing
    };
    if uid.is_root() {
        match features::userns_probe(Some((65534, 65534))) {
            Ok(()) => detail += "; as nobody (unprivileged): ok",
            Err(e) => {
                detail += &format!(
                    "; as nobody (unprivileged): {} (rootless runs will fail)",
                    errno_text(&e)
                );
                if status == Status::Ok {
                    status = Status::Degraded;
                }
            }
        }
    }
    Row {
        feature: "user_namespaces",
        status,
        detail,
        without,
        required: true,
    }
}

pub(super) fn namespaces_row() -> Row {
    let without = "nucleus cannot build a sandbox: the kernel lacks a namespace type (CONFIG_*_NS)";
    let names: Vec<&str> = features::SANDBOX_NAMESPACES
        .iter()
        .map(|(_, n)| *n)
        .collect();
    let (status, detail) = match features::sandbox_namespaces() {
        Ok(()) => (
            Status::Ok,
            format!("user + {} created together in a child", names.join(", ")),
        ),
        Err((name, e)) => (
            Status::Missing,
            format!("{name} namespace: {}", errno_text(&e)),
        ),
    };
    Row {
        feature: "namespaces",
        status,
        detail,
        without,
        required: true,
    }
}

pub(super) fn overlay_row() -> Row {
    let without = "the default lazy context (read-only tree + tmpfs overlay) cannot be built: \
                   use --context-mode snapshot";
    let (status, detail) = match features::overlay_in_userns() {
        Ok(()) => (
            Status::Ok,
            "tmpfs + overlay mounted in a child user+mount namespace".to_owned(),
        ),
        Err((step, e)) => (
            Status::Missing,
            format!("failed at step {step:?}: {}", errno_text(&e)),
        ),
    };
    Row {
        feature: "overlayfs_userns",
        status,
        detail,
        without,
        required: true,
    }
}

pub(super) fn seccomp_row() -> Row {
    let without = "no syscall filtering: nucleus refuses to start (seccomp is not optional)";
    let actions = features::seccomp_actions();
    let usable = actions.iter().any(|a| a == "errno") && actions.iter().any(|a| a == "allow");
    let detail = if actions.is_empty() {
        "/proc/sys/kernel/seccomp/actions_avail unreadable: kernel without CONFIG_SECCOMP_FILTER"
            .to_owned()
    } else {
        format!("actions: {}", actions.join(" "))
    };
    let status = if usable { Status::Ok } else { Status::Missing };
    Row {
        feature: "seccomp",
        status,
        detail,
        without,
        required: true,
    }
}

pub(super) fn user_notif_row() -> Row {
    let without = "no user notification: denials are enforced with plain errno and not reported live; \
                   trace mode (would-deny and rootless full trace) is unavailable";
    let (status, detail) = if features::user_notif_available() {
        (Status::Ok, "SECCOMP_RET_USER_NOTIF available".to_owned())
    } else {
        (
            Status::Missing,
            "user_notif absent from actions_avail (kernel < 5.0?)".to_owned(),
        )
    };
    Row {
        feature: "seccomp_user_notif",
        status,
        detail,
        without,
        required: false,
    }
}

pub(super) fn landlock_row() -> Row {
    let without = "no Landlock: filesystem rules rely on mounts only; --strict refuses to start";
    let (status, detail) = match features::landlock_abi() {
        None => (
            Status::Missing,
            "not available (kernel lacks it, or lsm= omits landlock)".to_owned(),
        ),
        Some(abi) => {
            let known = features::LANDLOCK_ABI_ADDS.len();
            let has: Vec<&str> = features::LANDLOCK_ABI_ADDS
                .iter()
                .take(abi as usize)
                .copied()
                .collect();
            let lacks: Vec<&str> = features::LANDLOCK_ABI_ADDS
                .iter()
                .skip(abi as usize)
                .copied()
                .collect();
            let mut detail = format!("ABI {abi}: {}", has.join(", "));
            if !lacks.is_empty() {
                detail += &format!("; lacks {}", lacks.join(", "));
            }
            if abi as usize > known {
                detail += "; newer than nucleus knows";
            }
            // Below ABI 4 `--net host` cannot be narrowed by Landlock network rules.
            (
                if abi >= 4 {
                    Status::Ok
                } else {
                    Status::Degraded
                },
                detail,
            )
        }
    };
    Row {
        feature: "landlock",
        status,
        detail,
        without,
        required: false,
    }
}

pub(super) fn cgroup_row() -> Row {
    let without =
        "no writable cgroup: memory/cpu/pids limits cannot be applied; usage is read from /proc";
    let layout = features::cgroup_layout();
    if layout == CgroupVersion::None {
        let detail = "no cgroup filesystem at /sys/fs/cgroup".to_owned();
        return Row {
            feature: "cgroups",
            status: Status::Missing,
            detail,
            without,
            required: false,
        };
    }
    let mut detail = layout.to_string();
    if layout == CgroupVersion::Hybrid {
        detail += " (cgroup2 at /sys/fs/cgroup/unified; limits use the v1 controllers)";
    }
    detail += &format!(
        "; controllers: {}",
        features::cgroup_controllers().join(" ")
    );
    let dirs = features::own_cgroup_dirs();
    let mut writable = 0;
    let wanted = ["memory", "cpu", "pids"];
    let mut parts = Vec::new();
    for name in wanted {
        match dirs.iter().find(|(c, _)| c == name) {
            None => parts.push(format!("{name} absent")),
            Some((_, dir)) => match features::can_create_child_cgroup(dir) {
                Ok(_) => {
                    writable += 1;
                    parts.push(format!("{name} yes"));
                }
                Err(e) => parts.push(format!("{name} no ({}: {})", dir.display(), errno_text(&e))),
            },
        }
    }
    detail += &format!("; child cgroup: {}", parts.join(", "));
    let status = if writable == wanted.len() {
        Status::Ok
    } else {
        Status::Degraded
    };
    Row {
        feature: "cgroups",
        status,
        detail,
        without,
        required: false,
    }
}

pub(super) fn pidfd_row() -> Row {
    let without = "no pidfd_getfd: the seccomp listener cannot be fetched from the sandbox, so denials \
                   are enforced but not reported live; processes are tracked by pid";
    let (status, detail) = match features::pidfd_available() {
        Ok(()) => (
            Status::Ok,
            "pidfd_open and pidfd_getfd work (probed on self)".to_owned(),
        ),
        Err((step, e)) => (
            Status::Missing,
            format!("{step:?} failed: {}", errno_text(&e)),
        ),
    };
    Row {
        feature: "pidfd",
        status,
        detail,
        without,
        required: false,
    }
}

pub(super) fn bpf_row() -> Row {
    let without = "full trace uses the notify-all backend (~4 µs per syscall instead of ~0.2 µs)";
    let disabled = match features::unprivileged_bpf_disabled() {
        Some(0) => "unprivileged bpf allowed".to_owned(),
        Some(n) => format!("unprivileged_bpf_disabled={n}"),
        None => "unprivileged_bpf_disabled unreadable".to_owned(),
    };
    let cap = if features::has_cap_bpf() {
        "CAP_BPF held"
    } else {
        "no CAP_BPF"
    };
    let load = |t| match features::bpf_load(t) {
        Ok(()) => "ok".to_owned(),
        Err(e) => errno_text(&e),
    };
    let socket = load(BpfProgType::SocketFilter);
    let tracepoint = features::bpf_load(BpfProgType::RawTracepoint);
    let status = match (&tracepoint, socket.as_str()) {
        (Ok(()), _) => Status::Ok,
        (Err(_), "ok") => Status::Degraded,
        (Err(_), _) => Status::Missing,
    };
    let tracepoint = tracepoint.map_or_else(|e| errno_text(&e), |()| "ok".to_owned());
    let detail = format!(
        "{disabled}; {cap}; load socket filter: {socket}; load raw tracepoint: {tracepoint}"
    );
    Row {
        feature: "bpf",
        status,
        detail,
        without,
        required: false,
    }
}
