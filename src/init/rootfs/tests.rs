use super::*;
use crate::spec::{ContextMode, ContextSpec, IdMap, Limits, RoBind, SeccompMode, SeccompSpec};

fn spec(network: NetworkMode) -> SandboxSpec {
    SandboxSpec {
        id: "t".into(),
        context_dir: "/home/u/project".into(),
        context: ContextSpec {
            mode: ContextMode::Lazy,
            writable: false,
            tmpfs_size_bytes: 1 << 30,
            expect_root_hash: None,
            expect_manifest: None,
            save_changes: None,
        },
        command: vec!["true".into()],
        env: vec![],
        network,
        hostname: "nucleus".into(),
        tmp_size_bytes: 64 << 20,
        seccomp: SeccompSpec {
            mode: SeccompMode::Enforce,
            profile_json: String::new(),
            profile_source: "default".into(),
            allow_ptrace: false,
        },
        strict: false,
        tty: false,
        window: None,
        id_map: IdMap {
            host_uid: 1000,
            host_gid: 1000,
            rootless: true,
        },
        limits: Limits::default(),
        ro_binds: vec![
            RoBind {
                host: "/opt/tool".into(),
                inside: "/tool".into(),
                is_dir: true,
            },
            RoBind {
                host: "/home/me/.gitconfig".into(),
                inside: "/etc-extra/gitconfig".into(),
                is_dir: false,
            },
        ],
    }
}

fn host() -> HostLayout {
    HostLayout {
        system: vec![
            ("/usr".into(), HostEntry::Dir),
            ("/bin".into(), HostEntry::Symlink("usr/bin".into())),
        ],
        etc: vec![
            ("ld.so.cache".into(), HostEntry::File(5)),
            ("ssl".into(), HostEntry::Dir),
            (
                "os-release".into(),
                HostEntry::Symlink("../usr/lib/os-release".into()),
            ),
        ],
        resolv_conf: b"nameserver 10.0.0.1\n".to_vec(),
    }
}

fn ops(network: NetworkMode) -> Vec<MountOp> {
    plan(
        &spec(network),
        &host(),
        Path::new("/oldroot"),
        Path::new("/newroot"),
    )
}

#[test]
fn root_is_tmpfs_and_system_dirs_are_read_only_binds() {
    let ops = ops(NetworkMode::None);
    assert!(matches!(&ops[0], MountOp::Tmpfs { target, .. } if target == Path::new("/newroot")));
    assert!(ops.contains(&MountOp::BindReadOnly {
        source: "/oldroot/usr".into(),
        target: "/newroot/usr".into()
    }));
    assert!(ops.contains(&MountOp::Symlink {
        link: "/newroot/bin".into(),
        target: "usr/bin".into()
    }));
    assert!(ops.contains(&MountOp::BindReadOnly {
        source: "/oldroot/opt/tool".into(),
        target: "/newroot/tool".into()
    }));
}

#[test]
fn a_bound_file_gets_an_empty_file_to_cover_in_a_directory_made_for_it() {
    let ops = ops(NetworkMode::None);
    let at = |op: &MountOp| ops.iter().position(|o| o == op).expect("in the plan");
    let dir = at(&MountOp::Dir {
        path: "/newroot/etc-extra".into(),
        mode: 0o755,
    });
    let file = at(&MountOp::File {
        path: "/newroot/etc-extra/gitconfig".into(),
        contents: Vec::new(),
        mode: 0o444,
    });
    let bind = at(&MountOp::BindReadOnly {
        source: "/oldroot/home/me/.gitconfig".into(),
        target: "/newroot/etc-extra/gitconfig".into(),
    });
    assert!(dir < file && file < bind);
}

#[test]
fn etc_is_synthesized_without_host_secrets() {
    let ops = ops(NetworkMode::None);
    let files: Vec<&Path> = ops
        .iter()
        .filter_map(|op| match op {
            MountOp::File { path, .. } | MountOp::Symlink { link: path, .. } => {
                Some(path.as_path())
            }
            MountOp::BindReadOnly { target, .. } => Some(target.as_path()),
            _ => None,
        })
        .collect();
    for secret in [
        "shadow",
        "gshadow",
        "ssh",
        "sudoers",
        "machine-id",
        "subuid",
    ] {
        assert!(
            !files.contains(&Path::new("/newroot/etc").join(secret).as_path()),
            "{secret} leaked"
        );
    }
    let passwd = ops.iter().find_map(|op| match op {
        MountOp::File { path, contents, .. } if path == Path::new("/newroot/etc/passwd") => {
            Some(contents.clone())
        }
        _ => None,
    });
    let passwd = String::from_utf8(passwd.expect("passwd synthesized")).expect("utf8");
    assert!(passwd.starts_with("root:x:0:0:"));
    assert_eq!(passwd.lines().count(), 2, "only root and nobody");
}

#[test]
fn resolv_conf_comes_from_host_only_with_host_network() {
    let resolv = |network| {
        synthesized_etc(&spec(network), &host())
            .into_iter()
            .find(|(name, _)| *name == "resolv.conf")
            .map(|(_, c)| c)
            .expect("resolv.conf")
    };
    assert_eq!(resolv(NetworkMode::Host), b"nameserver 10.0.0.1\n");
    assert!(!String::from_utf8_lossy(&resolv(NetworkMode::None)).contains("nameserver"));
}

#[test]
fn proc_is_masked_after_it_is_mounted() {
    let ops = ops(NetworkMode::None);
    let proc_at = ops
        .iter()
        .position(|op| matches!(op, MountOp::Proc { .. }))
        .expect("proc mounted");
    let kcore = ops
        .iter()
        .position(
            |op| matches!(op, MountOp::MaskFile { target, .. } if target.ends_with("proc/kcore")),
        )
        .expect("kcore masked");
    let sys = ops
        .iter()
        .position(
            |op| matches!(op, MountOp::ReadOnlySelf { target } if target.ends_with("proc/sys")),
        )
        .expect("/proc/sys read-only");
    assert!(proc_at < kcore && proc_at < sys);
}

#[test]
fn dev_has_only_the_safe_nodes_and_its_own_devpts() {
    let ops = ops(NetworkMode::None);
    let devices: Vec<String> = ops
        .iter()
        .filter_map(|op| match op {
            MountOp::BindDevice { target, .. } => {
                Some(target.file_name()?.to_string_lossy().into_owned())
            }
            _ => None,
        })
        .collect();
    assert_eq!(devices, DEVICES);
    assert!(ops.contains(&MountOp::Devpts {
        target: "/newroot/dev/pts".into()
    }));
    assert!(ops.contains(&MountOp::RemountReadOnly {
        target: "/newroot/dev".into()
    }));
}
