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
            profile_json: "".into(),
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
        ..HostLayout::default()
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
}

#[test]
fn a_cached_root_is_one_read_only_bind_with_the_mounts_on_it_and_nothing_created() {
    let mut host = host();
    host.root_cache = Some("/run/nucleus/root/abc".into());
    let cached = plan(
        &spec(NetworkMode::None),
        &host,
        Path::new("/oldroot"),
        Path::new("/newroot"),
    );
    assert_eq!(
        cached[0],
        MountOp::BindReadOnly {
            source: "/oldroot/run/nucleus/root/abc/root".into(),
            target: "/newroot".into(),
        }
    );
    assert!(cached.contains(&MountOp::BindReadOnly {
        source: "/oldroot/etc/ssl".into(),
        target: "/newroot/etc/ssl".into(),
    }));
    let created = |op: &&MountOp| {
        matches!(
            op,
            MountOp::Dir { .. }
                | MountOp::File { .. }
                | MountOp::CopyFile { .. }
                | MountOp::Symlink { .. }
        )
    };
    assert_eq!(cached.iter().filter(created).count(), 0, "{cached:#?}");
    // Built, the same root: the skeleton, then the same mounts.
    let built = ops(NetworkMode::None);
    let skeleton = skeleton(
        &spec(NetworkMode::None),
        &host,
        Path::new("/oldroot"),
        Path::new("/newroot"),
    );
    assert_eq!(built[1..=skeleton.len()], skeleton[..]);
    assert_eq!(built[skeleton.len() + 1..], cached[1..]);
}

#[test]
fn nothing_in_the_skeleton_is_writable_by_others() {
    let skeleton = skeleton(
        &spec(NetworkMode::None),
        &host(),
        Path::new("/oldroot"),
        Path::new("/newroot"),
    );
    for op in &skeleton {
        if let MountOp::Dir { mode, .. }
        | MountOp::File { mode, .. }
        | MountOp::CopyFile { mode, .. } = op
        {
            assert_eq!(mode & 0o022, 0, "{op:?}");
        }
    }
}

#[test]
fn a_bind_inside_a_mount_gets_its_mount_point_once_that_mount_is_there() {
    let mut spec = spec(NetworkMode::None);
    spec.ro_binds = vec![RoBind {
        host: "/opt/data".into(),
        inside: "/tmp/data".into(),
        is_dir: true,
    }];
    let ops = plan(&spec, &host(), Path::new("/oldroot"), Path::new("/newroot"));
    let at = |op: &MountOp| ops.iter().position(|o| o == op).expect("in the plan");
    let tmp = ops
        .iter()
        .position(|op| matches!(op, MountOp::Tmpfs { target, .. } if target.ends_with("tmp")))
        .expect("/tmp mounted");
    let mount_point = at(&MountOp::Dir {
        path: "/newroot/tmp/data".into(),
        mode: 0o755,
    });
    assert!(tmp < mount_point);
    let in_skeleton = skeleton(&spec, &host(), Path::new("/oldroot"), Path::new("/newroot"));
    assert!(
        !in_skeleton
            .iter()
            .any(|op| matches!(op, MountOp::Dir { path, .. } if path.ends_with("tmp/data")))
    );
}

#[test]
fn a_copy_takes_only_a_regular_file_and_never_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = |source: &Path| {
        execute(&MountOp::CopyFile {
            source: source.to_owned(),
            target: dir.path().join("copy"),
            len: 4,
            mode: 0o644,
        })
    };
    let file = dir.path().join("file");
    fs::write(&file, "data").expect("write");
    copy(&file).expect("a regular file is copied");
    assert_eq!(fs::read(dir.path().join("copy")).expect("copy"), b"data");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&file, &link).expect("ln");
    assert!(copy(&link).is_err(), "a symlink is not followed");
    // A FIFO would block an open for reading until a writer came: refused at once instead.
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    assert!(copy(&fifo).is_err(), "a FIFO is not a regular file");
}

mod root_cache_entries {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A host root with an allowlisted file, directory and symlink in its /etc.
    fn fake_host() -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        let etc = root.path().join("etc");
        fs::create_dir_all(etc.join("ssl/certs")).expect("mkdir");
        fs::write(etc.join("ld.so.cache"), "cache v1").expect("write");
        // Explicit: only world-readable files are copied, whatever umask the test runs under.
        fs::set_permissions(etc.join("ld.so.cache"), fs::Permissions::from_mode(0o644))
            .expect("chmod");
        fs::write(etc.join("shadow"), "secret").expect("write");
        // Allowlisted, but readable by its owner only: never copied where others could read it.
        fs::write(etc.join("gitconfig"), "[user] token = x").expect("write");
        fs::set_permissions(etc.join("gitconfig"), fs::Permissions::from_mode(0o600))
            .expect("chmod");
        std::os::unix::fs::symlink("../usr/lib/os-release", etc.join("os-release")).expect("ln");
        root
    }

    /// The entry for `host_root` in `etc` under `cache` (a temp dir, whose parent /tmp anyone may
    /// write, so it cannot hold the entries itself).
    fn open(cache: &Path, host_root: &Path) -> root_cache::RootCache {
        let host = HostLayout::probe(host_root, NetworkMode::None);
        root_cache::open(
            &cache.join("root"),
            &spec(NetworkMode::None),
            &host,
            host_root,
        )
        .expect("open")
    }

    #[test]
    fn a_cache_directory_others_can_write_is_not_used() {
        let (host_root, cache) = (fake_host(), tempfile::tempdir().expect("tempdir"));
        let root = cache.path().join("root");
        fs::create_dir(&root).expect("mkdir");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).expect("chmod");
        let host = HostLayout::probe(host_root.path(), NetworkMode::None);
        let refused = root_cache::open(&root, &spec(NetworkMode::None), &host, host_root.path());
        assert!(refused.is_err(), "anyone could plant a root there");
        assert_eq!(
            fs::read_dir(&root).expect("listed").count(),
            0,
            "nothing built"
        );
    }

    #[test]
    fn what_the_skeleton_is_made_of_names_the_entry() {
        let (host_root, cache) = (fake_host(), tempfile::tempdir().expect("tempdir"));
        let root = cache.path().join("root");
        let entry = |spec: &SandboxSpec| {
            let host = HostLayout::probe(host_root.path(), spec.network);
            root_cache::open(&root, spec, &host, host_root.path())
                .expect("open")
                .dir
        };
        let base = spec(NetworkMode::None);
        let first = entry(&base);
        assert_eq!(entry(&base), first, "the same inputs, the same entry");
        let mut renamed = base.clone();
        renamed.hostname = "other".into();
        let mut networked = base.clone();
        networked.network = NetworkMode::Host;
        let mut bound = base.clone();
        bound.ro_binds.push(RoBind {
            host: "/opt/tool".into(),
            inside: "/opt/tool".into(),
            is_dir: true,
        });
        let read = |dir: &Path, path: &str| fs::read(dir.join(root_cache::ROOT).join(path));
        let other = entry(&renamed);
        assert_ne!(other, first, "hostname");
        assert_eq!(read(&other, "etc/hostname").expect("hostname"), b"other\n");
        let other = entry(&networked);
        assert_ne!(other, first, "network");
        assert_ne!(
            read(&other, "etc/resolv.conf").ok(),
            read(&first, "etc/resolv.conf").ok()
        );
        let other = entry(&bound);
        assert_ne!(other, first, "a read-only bind");
        assert!(
            other.join(root_cache::ROOT).join("opt/tool").is_dir(),
            "its mount point"
        );
    }

    #[test]
    fn a_cache_directory_the_overlay_options_cannot_name_is_not_used() {
        // The context overlay's layers live in an entry's scratch directory.
        let (host_root, cache) = (fake_host(), tempfile::tempdir().expect("tempdir"));
        let root = cache.path().join("a,b").join("root");
        let host = HostLayout::probe(host_root.path(), NetworkMode::None);
        let refused = root_cache::open(&root, &spec(NetworkMode::None), &host, host_root.path());
        assert!(refused.is_err());
        assert!(!root.exists(), "nothing made");
    }

    #[test]
    fn an_entry_holds_the_skeleton_with_the_synthesized_etc_and_nothing_others_can_write() {
        // (The process umask is not changed here to prove the explicit modes: tests run in
        // parallel threads, and another test's files would get it.)
        let (host_root, cache) = (fake_host(), tempfile::tempdir().expect("tempdir"));
        let entry = open(cache.path(), host_root.path());
        let root = entry.dir.join(root_cache::ROOT);
        let at = |name: &str| root.join("etc").join(name);
        assert_eq!(fs::read(at("ld.so.cache")).expect("copy"), b"cache v1");
        assert_eq!(
            fs::read_link(at("os-release")).expect("link"),
            Path::new("../usr/lib/os-release")
        );
        assert_eq!(
            fs::read_dir(at("ssl")).expect("dir").count(),
            0,
            "a mount point only"
        );
        assert!(
            fs::read(at("passwd"))
                .expect("passwd")
                .starts_with(b"root:")
        );
        assert!(!at("shadow").exists(), "not on the allowlist");
        assert!(
            !at("gitconfig").exists(),
            "not readable by everyone on the host"
        );
        for name in ["", "ld.so.cache", "ssl", "passwd", "hosts"] {
            let mode = fs::metadata(at(name)).expect("stat").permissions().mode() & 0o777;
            assert!(mode == 0o644 || mode == 0o755, "{name}: {mode:o}");
        }
        for dir in ["dev/pts", "dev/shm", "proc", "tmp", "context"] {
            assert!(root.join(dir).is_dir(), "mount point {dir}");
        }
        assert_eq!(fs::read(root.join("dev/null")).expect("placeholder"), b"");
        let scratch = entry.dir.join(root_cache::SCRATCH);
        assert_eq!(
            fs::read_dir(&scratch).expect("scratch").count(),
            0,
            "a mount point only, outside the new root"
        );
        let mut stack = vec![entry.dir.clone()];
        while let Some(path) = stack.pop() {
            let meta = fs::symlink_metadata(&path).expect("stat");
            if meta.is_symlink() {
                continue;
            }
            assert_eq!(
                meta.mode() & 0o022,
                0,
                "{} writable by others",
                path.display()
            );
            if meta.is_dir() {
                stack.extend(
                    fs::read_dir(&path)
                        .expect("list")
                        .map(|e| e.expect("entry").path()),
                );
            }
        }
    }

    #[test]
    fn as_root_an_entry_others_cannot_reach_is_not_used() {
        let (host_root, cache) = (fake_host(), tempfile::tempdir().expect("tempdir"));
        fs::set_permissions(cache.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let private = cache.path().join("private");
        fs::create_dir(&private).expect("mkdir");
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).expect("chmod");
        let mut as_root = spec(NetworkMode::None);
        as_root.id_map.rootless = false;
        let host = HostLayout::probe(host_root.path(), NetworkMode::None);
        let root = private.join("nucleus/root");
        let refused = root_cache::open(&root, &as_root, &host, host_root.path());
        assert!(refused.is_err(), "container root is `nobody` on the host");
        fs::set_permissions(&private, fs::Permissions::from_mode(0o711)).expect("chmod");
        // The temp dir and its ancestors (/tmp) let others search.
        root_cache::open(&root, &as_root, &host, host_root.path()).expect("reachable now");
    }

    #[test]
    fn building_an_entry_removes_the_old_etc_cache_once_unused() {
        let (host_root, cache) = (fake_host(), tempfile::tempdir().expect("tempdir"));
        // As `cache::is_private` wants it: the legacy directory and its parent are the user's own.
        fs::set_permissions(cache.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let legacy = cache.path().join("etc");
        let (old, held) = (legacy.join("old"), legacy.join("held"));
        for entry in [&old, &held] {
            fs::create_dir_all(entry.join("ssl")).expect("mkdir");
        }
        fs::set_permissions(&legacy, fs::Permissions::from_mode(0o755)).expect("chmod");
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for entry in [&old, &held] {
            fs::File::open(entry)
                .and_then(|d| d.set_modified(an_hour_ago))
                .expect("age it");
        }
        // A sandbox of an older nucleus still holds this one.
        let lock = nix::fcntl::Flock::lock(
            fs::File::open(&held).expect("open"),
            nix::fcntl::FlockArg::LockShared,
        )
        .expect("lock");
        let _entry = open(cache.path(), host_root.path());
        assert!(!old.exists(), "unused and old: removed");
        assert!(held.is_dir(), "held: kept");
        drop(lock);
        fs::write(host_root.path().join("etc/ld.so.cache"), "cache v2").expect("write");
        let _next = open(cache.path(), host_root.path());
        assert!(!legacy.exists(), "empty once the last entry went");
    }

    #[test]
    fn an_entry_is_reused_until_the_host_changes_and_removed_once_unused() {
        let (host_root, cache) = (fake_host(), tempfile::tempdir().expect("tempdir"));
        let first = open(cache.path(), host_root.path());
        let again = open(cache.path(), host_root.path());
        assert_eq!(first.dir, again.dir);
        let inode = |dir: &Path| fs::metadata(dir).expect("stat").ino();
        assert_eq!(inode(&first.dir), inode(&again.dir), "not rebuilt");

        // Same size, likely within the same clock tick: told apart by content while recent.
        fs::write(host_root.path().join("etc/ld.so.cache"), "cache v2").expect("write");
        let second = open(cache.path(), host_root.path());
        assert_ne!(second.dir, first.dir);
        assert_eq!(
            fs::read(second.dir.join(root_cache::ROOT).join("etc/ld.so.cache")).expect("copy"),
            b"cache v2"
        );
        assert!(first.dir.is_dir(), "still locked by a sandbox: kept");

        let first_dir = first.dir.clone();
        drop((first, again));
        fs::write(host_root.path().join("etc/ld.so.cache"), "cache v3").expect("write");
        let third = open(cache.path(), host_root.path());
        assert!(first_dir.is_dir(), "unused, but built moments ago: kept");

        // An hour on, unused: the next build removes it; the locked one stays whatever its age.
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for dir in [&first_dir, &second.dir] {
            fs::File::open(dir)
                .and_then(|d| d.set_modified(an_hour_ago))
                .expect("age it");
        }
        fs::write(host_root.path().join("etc/ld.so.cache"), "cache v4").expect("write");
        let fourth = open(cache.path(), host_root.path());
        assert!(!first_dir.exists(), "unused and old: removed");
        assert!(second.dir.is_dir(), "still locked: kept");
        assert!(third.dir.is_dir() && fourth.dir.is_dir());
    }
}
