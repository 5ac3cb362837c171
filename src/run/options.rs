//! Turn command-line options (with config defaults) into a validated `SandboxSpec`.
//! Conflicts are rejected here, before anything touches the kernel.

use std::borrow::Cow;
use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};

use super::filter_cache::{self, Compiled};
use crate::cli::SandboxArgs;
use crate::config::parse_size;
use crate::launcher::choose_id_map;
use crate::seccomp::{FilterMode, Policy};
use crate::spec::{
    BpfInstruction, CompiledFilter, ContextMode, ContextSpec, Limits, NetworkMode, RoBind,
    SandboxSpec, SeccompMode, SeccompSpec,
};

/// Default size limit of each tmpfs.
pub const DEFAULT_TMPFS_SIZE: &str = "1G";

/// Host environment variables the workload may see; everything else is dropped.
pub const ENV_ALLOWLIST: &[&str] = &["TERM", "COLORTERM", "LANG", "LANGUAGE", "TZ", "NO_COLOR"];

/// An option problem, named so the user can fix it.
#[derive(Debug)]
pub struct OptionError(pub String);

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, OptionError> {
    Err(OptionError(msg.into()))
}

/// Build the spec for `command` in `dir`.
pub fn build_spec(
    dir: &Path,
    command: Vec<String>,
    args: &SandboxArgs,
    mode: SeccompMode,
) -> Result<SandboxSpec, OptionError> {
    let context_mode = args.context_mode.unwrap_or(ContextMode::Lazy);
    if args.writable && context_mode == ContextMode::Snapshot {
        return err(
            "--writable conflicts with --context-mode snapshot: a snapshot is a copy; drop one of them",
        );
    }
    if args.writable && args.save_changes.is_some() {
        return err(
            "--writable conflicts with --save-changes: with --writable the changes are already on the host",
        );
    }
    let context_dir = fs::canonicalize(dir)
        .map_err(|e| OptionError(format!("context directory {}: {e}", dir.display())))?;
    if !context_dir.is_dir() {
        return err(format!(
            "context {} is not a directory",
            context_dir.display()
        ));
    }
    let size = |flag: &str, text: Option<&String>, default: &str| {
        parse_size(text.map(String::as_str).unwrap_or(default))
            .map_err(|e| OptionError(format!("{flag}: {e}")))
    };
    let tmpfs_size = size("--tmpfs-size", args.tmpfs_size.as_ref(), DEFAULT_TMPFS_SIZE)?;
    let memory_bytes = args
        .memory
        .as_ref()
        .map(|m| size("--memory", Some(m), ""))
        .transpose()?;
    if let Some(cpus) = args.cpus.filter(|c| !(c.is_finite() && *c > 0.0)) {
        return err(format!(
            "--cpus {cpus}: must be a positive number of cores, e.g. 1.5"
        ));
    }
    if args.pids == Some(0) {
        return err("--pids 0: must be at least 1");
    }
    let expect_manifest = match &args.expect_manifest {
        Some(path) => Some(
            fs::read_to_string(path)
                .map_err(|e| OptionError(format!("--expect-manifest {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let save_changes = match &args.save_changes {
        Some(dest) => Some(
            absolute(dest)
                .map_err(|e| OptionError(format!("--save-changes {}: {e}", dest.display())))?,
        ),
        None => None,
    };
    let (profile_json, profile_source) = match &args.seccomp_profile {
        Some(path) => {
            let text = fs::read_to_string(path)
                .map_err(|e| OptionError(format!("--seccomp-profile {}: {e}", path.display())))?;
            (Cow::Owned(text), path.display().to_string())
        }
        None => (
            Cow::Borrowed(Policy::default_profile_json()),
            "default".to_owned(),
        ),
    };
    let seccomp = SeccompSpec {
        mode,
        profile_json,
        profile_source,
        allow_ptrace: args.allow_ptrace,
    };

    let (euid, egid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let env_id = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
    let id_map = choose_id_map(euid, egid, env_id("SUDO_UID"), env_id("SUDO_GID"));
    if !id_map.rootless
        && let Some(blocked) = first_unreadable(&context_dir, id_map.host_uid, id_map.host_gid)
    {
        return err(format!(
            "context {}: {} is not readable by uid {} (container root maps to it when nucleus runs as \
             root, so that it is never host root); run nucleus as your own user or with sudo, or allow \
             others to read it (chmod o+rx)",
            context_dir.display(),
            blocked.display(),
            id_map.host_uid
        ));
    }
    Ok(SandboxSpec {
        id: new_sandbox_id()?,
        context_dir,
        context: ContextSpec {
            mode: context_mode,
            writable: args.writable,
            tmpfs_size_bytes: tmpfs_size,
            expect_root_hash: args.expect_root_hash.clone(),
            expect_manifest,
            save_changes,
        },
        env: workload_env(&args.env)?,
        command,
        network: args.net.unwrap_or(NetworkMode::None),
        hostname: "nucleus".into(),
        tmp_size_bytes: tmpfs_size,
        seccomp,
        strict: args.strict,
        tty: false,
        window: None,
        id_map,
        limits: Limits {
            memory_bytes,
            cpus: args.cpus,
            pids: args.pids,
        },
        ro_binds: args
            .ro_bind
            .iter()
            .map(|b| parse_ro_bind(b))
            .collect::<Result<_, _>>()?,
    })
}

/// The seccomp filter for `spec`: from the filter cache when this build compiled the same spec
/// before, else compiled (and stored). The flag says whether it came from the cache.
pub fn seccomp_filter(spec: &SandboxSpec) -> Result<(Compiled, bool), OptionError> {
    let notify = crate::features::user_notif_available();
    if !notify && spec.strict {
        return err(
            "seccomp user notification is unavailable, so denials cannot be reported (--strict)",
        );
    }
    let root = crate::cache::runtime_dir().map(|dir| dir.join("seccomp"));
    let name = filter_cache::entry_name(&spec.seccomp, notify, Path::new("/proc/self/exe"));
    filter_cache::load_or_compile(root.as_deref(), name.as_deref(), || {
        compile_seccomp(&spec.seccomp, notify)
    })
}

/// Resolve and compile the profile of `seccomp`; errors name the profile.
fn compile_seccomp(seccomp: &SeccompSpec, notify: bool) -> Result<Compiled, OptionError> {
    let name = &seccomp.profile_source;
    let (policy, warnings) = Policy::from_spec(seccomp)
        .map_err(|e| OptionError(format!("seccomp profile {name}: {e}")))?;
    if !policy.allows_execve() {
        return err(format!(
            "seccomp profile {name} does not allow execve, so no command can start under it"
        ));
    }
    let mode = match seccomp.mode {
        SeccompMode::Enforce => FilterMode::Enforce { notify },
        SeccompMode::Trace => FilterMode::Trace,
    };
    let program = policy
        .compile(mode)
        .map_err(|e| OptionError(format!("seccomp profile {name}: {e}")))?;
    let instructions = program.iter().map(|i| BpfInstruction {
        code: i.code,
        jt: i.jt,
        jf: i.jf,
        k: i.k,
    });
    Ok(Compiled {
        filter: CompiledFilter::new(instructions, notify),
        warnings,
        digest: policy.digest(),
    })
}

/// The first path, from `/` down to `dir`, that `uid`/`gid` (without supplementary groups) cannot
/// search, or `dir` itself when it cannot be listed.
fn first_unreadable(dir: &Path, uid: u32, gid: u32) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let allows = |path: &Path, want: u32| {
        let Ok(meta) = fs::metadata(path) else {
            return false;
        };
        let shift = if meta.uid() == uid {
            6
        } else if meta.gid() == gid {
            3
        } else {
            0
        };
        (meta.mode() >> shift) & want == want
    };
    let mut ancestors: Vec<&Path> = dir.ancestors().skip(1).collect();
    ancestors.reverse();
    ancestors
        .into_iter()
        .find(|a| !allows(a, 0o1))
        .map(Path::to_path_buf)
        .or_else(|| (!allows(dir, 0o5)).then(|| dir.to_path_buf()))
}

/// The workload's environment: a fixed base, allowlisted host variables, then `-e` overrides.
fn workload_env(extra: &[String]) -> Result<Vec<(String, String)>, OptionError> {
    let mut env: Vec<(String, String)> = [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", "/tmp"),
        ("USER", "root"),
        ("LOGNAME", "root"),
        ("SHELL", "/bin/bash"),
        ("PWD", "/context"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (key, value) in std::env::vars() {
        if ENV_ALLOWLIST.contains(&key.as_str()) || key.starts_with("LC_") {
            env.push((key, value));
        }
    }
    for item in extra {
        let (key, value) = match item.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (item.clone(), std::env::var(item).unwrap_or_default()),
        };
        if key.is_empty() {
            return err(format!("-e {item}: expected KEY=VALUE"));
        }
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    }
    Ok(env)
}

/// Parse `HOST[:INSIDE]` of `--ro-bind`.
fn parse_ro_bind(text: &str) -> Result<RoBind, OptionError> {
    let (host, inside) = text.split_once(':').unwrap_or((text, text));
    let host = fs::canonicalize(host)
        .map_err(|e| OptionError(format!("--ro-bind {text}: {host}: {e}")))?;
    let is_dir = host.is_dir();
    if !is_dir && !host.is_file() {
        return err(format!(
            "--ro-bind {text}: {} is neither a directory nor a regular file",
            host.display()
        ));
    }
    let inside = PathBuf::from(inside);
    let clean = inside.is_absolute()
        && inside
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    let reserved = ["/", "/proc", "/dev", "/tmp", "/context", "/etc"]
        .iter()
        .any(|r| inside == Path::new(r));
    if !clean || reserved {
        return err(format!(
            "--ro-bind {text}: the path inside must be absolute, without `..`, and not /, /proc, /dev, /tmp, /etc or /context"
        ));
    }
    Ok(RoBind {
        host,
        inside,
        is_dir,
    })
}

fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_owned())
    } else {
        Ok(std::env::current_dir()?.join(path))
    }
}

/// 12 hex digits from the kernel's random pool.
fn new_sandbox_id() -> Result<String, OptionError> {
    let mut bytes = [0u8; 6];
    crate::sys::random_bytes(&mut bytes)
        .map_err(|e| OptionError(format!("reading random bytes for the sandbox id: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicting_options_name_both() {
        let args = SandboxArgs {
            writable: true,
            context_mode: Some(ContextMode::Snapshot),
            ..Default::default()
        };
        let e = build_spec(
            Path::new("/"),
            vec!["true".into()],
            &args,
            SeccompMode::Enforce,
        )
        .expect_err("conflict");
        assert!(
            e.0.contains("--writable") && e.0.contains("--context-mode snapshot"),
            "{e}"
        );
    }

    #[test]
    fn sandbox_ids_are_twelve_random_hex_digits() {
        let (a, b) = (new_sandbox_id().expect("id"), new_sandbox_id().expect("id"));
        assert_eq!(a.len(), 12);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn env_is_allowlisted_and_overridable() {
        let env = workload_env(&["HOME=/work".into(), "FOO=1".into()]).expect("env");
        assert!(env.contains(&("HOME".into(), "/work".into())));
        assert!(env.contains(&("FOO".into(), "1".into())));
        assert!(
            !env.iter()
                .any(|(k, _)| k == "SSH_AUTH_SOCK" || k == "CARGO_HOME")
        );
    }

    #[test]
    fn unreadable_context_is_found_before_start() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let private = tmp.path().join("private");
        let ctx = private.join("ctx");
        fs::create_dir_all(&ctx).expect("mkdir");
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).expect("chmod");
        fs::set_permissions(&ctx, fs::Permissions::from_mode(0o755)).expect("chmod");
        // Owned by the test's user: an unrelated uid cannot pass `private`.
        let (stranger, group) = (54321, 54321);
        assert_eq!(
            first_unreadable(&ctx, stranger, group),
            Some(private.clone())
        );
        fs::set_permissions(&private, fs::Permissions::from_mode(0o711)).expect("chmod");
        assert_eq!(first_unreadable(&ctx, stranger, group), None);
        fs::set_permissions(&ctx, fs::Permissions::from_mode(0o700)).expect("chmod");
        assert_eq!(first_unreadable(&ctx, stranger, group), Some(ctx.clone()));
    }

    #[test]
    fn ro_bind_rejects_reserved_and_relative_targets() {
        assert!(parse_ro_bind("/usr:/proc").is_err());
        assert!(parse_ro_bind("/usr:rel").is_err());
        assert!(parse_ro_bind("/usr:/a/../etc").is_err());
        assert!(
            !parse_ro_bind("/etc/hostname:/x").expect("a file").is_dir,
            "a file is bound as a file"
        );
        assert_eq!(
            parse_ro_bind("/usr/bin:/tools").expect("ok").inside,
            PathBuf::from("/tools")
        );
    }
}
