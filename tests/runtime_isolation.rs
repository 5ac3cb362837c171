//! The sandbox as the kernel sees it, as root and as an unprivileged user.

mod common;

use common::{As, Scratch, describe, nucleus, run_sh, stdout_of, test_user};

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("{key} missing from\n{status}"))
}

fn hardened_status(who: As) {
    let scratch = Scratch::new(who);
    let out = run_sh(who, &scratch, &[], "cat /proc/self/status");
    assert!(out.status.success(), "{}", describe(&out));
    let status = stdout_of(&out);
    for key in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&status, key), "0000000000000000", "{key}");
    }
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    assert_eq!(status_field(&status, "Seccomp"), "2");
    // Nothing of the supervisor's signal state leaks in: its runtime ignores SIGPIPE, and an ignored
    // signal survives execve.
    assert_eq!(status_field(&status, "SigIgn"), "0000000000000000");
    assert_eq!(status_field(&status, "SigBlk"), "0000000000000000");
}

#[test]
fn root_run_drops_every_capability_and_sets_nnp_and_seccomp() {
    hardened_status(As::Root);
}

#[test]
fn rootless_run_drops_every_capability_and_sets_nnp_and_seccomp() {
    hardened_status(As::User);
}

#[test]
fn signals_the_caller_left_ignored_are_default_again_inside() {
    use std::os::unix::process::CommandExt;
    // As `nohup` leaves SIGHUP, and a shell SIGINT and SIGQUIT for a background job; 34 is a
    // real-time signal, which glibc's own `sigaction` would refuse to reset.
    let scratch = Scratch::new(As::Root);
    let mut cmd = nucleus(As::Root, scratch.path());
    cmd.arg("run").arg(scratch.subdir("ctx")).args([
        "--",
        "/bin/sh",
        "-c",
        "cat /proc/self/status",
    ]);
    // SAFETY: the closure runs in the forked child before exec and only calls signal(2).
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, 34] {
                libc::signal(sig, libc::SIG_IGN);
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("running nucleus");
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(status_field(&stdout_of(&out), "SigIgn"), "0000000000000000");
}

fn workload_descriptors(who: As) {
    let scratch = Scratch::new(who);
    // The shell's own table, as the workload received it: `find` is its child and lists it. No
    // pipeline (the shell would hold its pipe while `find` looks), and not the last command (the
    // shell would exec `find` itself).
    let script = r"find /proc/$$/fd -mindepth 1 -printf '%f\n'; true";
    let out = run_sh(who, &scratch, &[], script);
    assert!(out.status.success(), "{}", describe(&out));
    let mut fds: Vec<u32> = stdout_of(&out)
        .lines()
        .map(|l| l.parse().expect("an fd number"))
        .collect();
    fds.sort_unstable();
    assert_eq!(
        fds,
        [0, 1, 2],
        "no supervisor channel, log or terminal descriptor reaches the workload"
    );
}

#[test]
fn the_workload_holds_only_its_stdio_as_root() {
    workload_descriptors(As::Root);
}

#[test]
fn the_workload_holds_only_its_stdio_rootless() {
    workload_descriptors(As::User);
}

fn uid_map_line(who: As) -> Vec<String> {
    let scratch = Scratch::new(who);
    let out = run_sh(who, &scratch, &[], "cat /proc/self/uid_map; id -u");
    assert!(out.status.success(), "{}", describe(&out));
    stdout_of(&out)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn container_root_maps_to_nobody_when_invoked_as_root() {
    assert_eq!(uid_map_line(As::Root), ["0 65534 1", "0"]);
}

#[test]
fn container_root_maps_to_the_invoking_user_when_rootless() {
    let (uid, _) = test_user();
    assert_eq!(
        uid_map_line(As::User),
        [format!("0 {uid} 1"), "0".to_owned()]
    );
}

#[test]
fn hostname_and_network_are_isolated() {
    let scratch = Scratch::new(As::Root);
    let out = run_sh(
        As::Root,
        &scratch,
        &[],
        "hostname; tail -n +3 /proc/net/dev | cut -d: -f1",
    );
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout_of(&out);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(lines, ["nucleus", "lo"], "only loopback inside");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("host hostname");
    assert_ne!(host.trim(), "nucleus");
}

/// The workload's namespaces (`/proc/self/ns/KIND` links), with `extra` options.
fn namespaces_inside(extra: &[&str]) -> Vec<(String, String)> {
    const KINDS: [&str; 7] = ["user", "mnt", "pid", "uts", "ipc", "cgroup", "net"];
    let scratch = Scratch::new(As::Root);
    let script = format!(
        "for n in {}; do readlink /proc/self/ns/$n; done",
        KINDS.join(" ")
    );
    let out = run_sh(As::Root, &scratch, extra, &script);
    assert!(out.status.success(), "{}", describe(&out));
    let inside: Vec<String> = stdout_of(&out).lines().map(str::to_owned).collect();
    assert_eq!(inside.len(), KINDS.len(), "{}", describe(&out));
    KINDS.iter().map(|k| k.to_string()).zip(inside).collect()
}

#[test]
fn every_namespace_is_the_sandboxs_own_and_the_network_only_when_asked() {
    let host = |kind: &str| {
        std::fs::read_link(format!("/proc/self/ns/{kind}"))
            .expect("host namespace")
            .to_string_lossy()
            .into_owned()
    };
    for (kind, inside) in namespaces_inside(&[]) {
        assert_ne!(inside, host(&kind), "{kind} namespace shared with the host");
    }
    for (kind, inside) in namespaces_inside(&["--net", "host"]) {
        if kind == "net" {
            assert_eq!(inside, host(&kind), "--net host is the host's network");
        } else {
            assert_ne!(inside, host(&kind), "{kind} namespace shared with the host");
        }
    }
}

#[test]
fn loopback_is_up_but_tcp_is_refused_without_network() {
    let scratch = Scratch::new(As::Root);
    // Landlock (ABI >= 4) refuses TCP bind/connect when the network is off.
    let script =
        "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0))' 2>&1 | tail -1";
    let out = run_sh(As::Root, &scratch, &[], script);
    assert!(
        stdout_of(&out).contains("PermissionError"),
        "{}",
        describe(&out)
    );
}

#[test]
fn host_network_must_be_asked_for() {
    let scratch = Scratch::new(As::Root);
    let out = run_sh(
        As::Root,
        &scratch,
        &["--net", "host"],
        "tail -n +3 /proc/net/dev | wc -l",
    );
    assert!(out.status.success(), "{}", describe(&out));
    let host_ifaces = std::fs::read_to_string("/proc/net/dev")
        .expect("net/dev")
        .lines()
        .skip(2)
        .count();
    assert_eq!(stdout_of(&out).trim(), host_ifaces.to_string());
}

/// The host's resolvers only with the host's network.
#[test]
fn resolv_conf_is_the_hosts_only_with_the_host_network() {
    let scratch = Scratch::new(As::Root);
    let host = std::fs::read_to_string("/etc/resolv.conf").expect("host resolv.conf");
    let with = run_sh(
        As::Root,
        &scratch,
        &["--net", "host"],
        "cat /etc/resolv.conf",
    );
    assert!(with.status.success(), "{}", describe(&with));
    assert_eq!(stdout_of(&with), host);
    let without = run_sh(As::Root, &scratch, &[], "cat /etc/resolv.conf");
    assert!(without.status.success(), "{}", describe(&without));
    assert!(
        !stdout_of(&without).contains("nameserver"),
        "{}",
        describe(&without)
    );
}

#[test]
fn host_secrets_are_not_visible() {
    // A marker in the host's /root and /home proves those trees are absent, not just empty.
    let marker_root = "/root/.nucleus-it-marker";
    std::fs::write(marker_root, "secret").expect("marker");
    let scratch = Scratch::new(As::Root);
    let script = "for p in /etc/shadow /etc/gshadow /etc/ssh /root /home /run /root/.nucleus-it-marker /etc/sudoers /var; do \
                    if [ -e $p ]; then echo visible:$p; fi; done; echo done";
    let out = run_sh(As::Root, &scratch, &[], script);
    let _ = std::fs::remove_file(marker_root);
    assert_eq!(stdout_of(&out).trim(), "done", "{}", describe(&out));
}

#[test]
fn proc_is_masked_and_read_only() {
    let scratch = Scratch::new(As::Root);
    // Every masked file that this kernel has must read as empty inside.
    let present: Vec<&str> = nucleus::init::rootfs::PROC_MASKED_FILES
        .iter()
        .copied()
        .filter(|f| std::path::Path::new("/proc").join(f).exists())
        .collect();
    assert!(
        !present.is_empty(),
        "this kernel has none of the masked /proc files"
    );
    let script = format!(
        "for f in {}; do echo $f $(wc -c < /proc/$f); done; (echo 1 > /proc/sys/kernel/ns_last_pid) 2>/dev/null && echo writable || echo read-only",
        present.join(" ")
    );
    let out = run_sh(As::Root, &scratch, &[], &script);
    let expected: Vec<String> = present
        .iter()
        .map(|f| format!("{f} 0"))
        .chain(["read-only".to_owned()])
        .collect();
    assert_eq!(
        stdout_of(&out).lines().collect::<Vec<_>>(),
        expected,
        "{}",
        describe(&out)
    );
}

#[test]
fn root_filesystem_and_system_dirs_are_read_only_and_tmp_is_a_limited_tmpfs() {
    let scratch = Scratch::new(As::Root);
    let script = "touch /usr/x 2>/dev/null && echo usr-writable; touch /x 2>/dev/null && echo root-writable; \
                  touch /etc/x 2>/dev/null && echo etc-writable; echo ok > /tmp/x && cat /tmp/x; \
                  df -k /tmp | tail -1 | awk '{print $2}'";
    let out = run_sh(As::Root, &scratch, &["--tmpfs-size", "64M"], script);
    let text = stdout_of(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["ok", "65536"], "{}", describe(&out));
}

#[test]
fn dev_has_only_safe_nodes() {
    let scratch = Scratch::new(As::Root);
    let out = run_sh(
        As::Root,
        &scratch,
        &[],
        "ls /dev | tr '\\n' ' '; echo x > /dev/null && head -c 4 /dev/zero | wc -c",
    );
    let text = stdout_of(&out);
    assert!(
        text.starts_with("fd full null ptmx pts random shm stderr stdin stdout tty urandom zero "),
        "{}",
        describe(&out)
    );
    assert!(text.trim_end().ends_with('4'), "{}", describe(&out));
}

#[test]
fn development_tools_work_inside() {
    let scratch = Scratch::new(As::Root);
    let script = "set -e; cd /tmp; bash -c 'echo bash'; dash -c 'echo dash'; git --version >/dev/null; \
                  git init -q repo && cd repo && git -c user.email=a@b -c user.name=t commit -q --allow-empty -m x && echo git; \
                  python3 -c 'print(\"python\")'; printf 'int main(){return 0;}' > m.c; gcc -o m m.c && ./m && echo gcc; \
                  printf 'all:\\n\\t@echo make\\n' > Makefile && make -s";
    let out = run_sh(As::Root, &scratch, &[], script);
    assert_eq!(
        stdout_of(&out).lines().collect::<Vec<_>>(),
        ["bash", "dash", "git", "python", "gcc", "make"],
        "{}",
        describe(&out)
    );
}

#[test]
fn cargo_node_vim_less_and_top_work_inside() {
    let scratch = Scratch::new(As::Root);
    // A real cargo build (Debian's cargo in /usr/bin) of a crate without dependencies, offline.
    let script = "set -e; export CARGO_HOME=/tmp/cargo-home; cd /tmp; cargo new -q --offline hello >/dev/null 2>&1 || cargo new --vcs none hello >/dev/null; \
                  cd hello && cargo build -q --offline && ./target/debug/hello; \
                  node -e 'console.log(\"node\")'; \
                  printf 'line\\n' > f.txt; vim -es -u NONE -c '%s/line/vim/' -c 'wq' f.txt && cat f.txt; \
                  less -FX f.txt | sed 's/vim/less/'; top -b -n 1 | head -1 | cut -c1-3";
    let out = run_sh(As::Root, &scratch, &[], script);
    assert_eq!(
        stdout_of(&out).lines().collect::<Vec<_>>(),
        ["Hello, world!", "node", "vim", "less", "top"],
        "{}",
        describe(&out)
    );
}

#[test]
fn ro_bind_shows_a_host_directory_and_a_host_file_read_only() {
    let scratch = Scratch::new(As::Root);
    let tools = scratch.subdir("tools");
    scratch.write("tools/hello", "from the host dir\n");
    let file = scratch.write("gitconfig", "[user]\n  name = host\n");
    let dir_bind = format!("{}:/opt/tools", tools.display());
    let file_bind = format!("{}:/opt/cfg/gitconfig", file.display());
    let out = run_sh(
        As::Root,
        &scratch,
        &["--ro-bind", &dir_bind, "--ro-bind", &file_bind],
        "cat /opt/tools/hello /opt/cfg/gitconfig; \
         touch /opt/tools/new 2>/dev/null && echo wrote-dir; \
         echo x 2>/dev/null >> /opt/cfg/gitconfig && echo wrote-file; true",
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        stdout_of(&out),
        "from the host dir\n[user]\n  name = host\n",
        "both readable, neither writable"
    );
    assert_eq!(
        std::fs::read_to_string(&file).expect("host file"),
        "[user]\n  name = host\n"
    );
}

/// The root's skeleton (with the synthesized /etc) comes from a cache entry when one can be made,
/// and is built inside the sandbox when not (here: the cache location is a file); the sandbox sees
/// the same either way.
#[test]
fn the_root_is_the_same_with_and_without_its_cache() {
    let scratch = Scratch::new(As::User);
    let script = "cd / && stat -c '%A %U %G %N' * dev/* && cd /etc && ls -A && \
                  cat hosts passwd group resolv.conf && md5sum ld.so.cache && ls ssl/certs | wc -l && \
                  (touch /etc/x /x /dev/x 2>/dev/null && echo writable || echo read-only)";
    let ctx = scratch.subdir("ctx");
    let run = |cache_home: &std::path::Path| {
        nucleus(As::User, scratch.path())
            .env("XDG_CACHE_HOME", cache_home)
            .arg("run")
            .arg(&ctx)
            .args(["--", "/bin/sh", "-c", script])
            .output()
            .expect("run")
    };
    let cached = run(&scratch.subdir("cache"));
    let not_a_dir = scratch.path().join("not-a-dir");
    std::fs::write(&not_a_dir, "").expect("write");
    let built = run(&not_a_dir);
    assert!(cached.status.success(), "{}", describe(&cached));
    assert!(built.status.success(), "{}", describe(&built));
    assert_eq!(stdout_of(&cached), stdout_of(&built));
    assert!(stdout_of(&cached).contains("ld.so.cache\n"));
    assert!(stdout_of(&cached).trim_end().ends_with("read-only"));
    let entries = std::fs::read_dir(scratch.path().join("cache/nucleus/root"))
        .expect("the cache was used")
        .count();
    assert_eq!(entries, 1, "one entry, no temporary left");
    // The audit log says which way each run went.
    let mut sources = Vec::new();
    for log in std::fs::read_dir(scratch.path().join("state/nucleus/audit")).expect("audit") {
        let path = log.expect("entry").path();
        if path.extension().is_none_or(|ext| ext != "jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(path).expect("read");
        let line = text
            .lines()
            .find(|l| l.contains("\"root_filesystem\""))
            .expect("a root_filesystem event");
        let event: serde_json::Value = serde_json::from_str(line).expect("json");
        sources.push(event["detail"]["root_cache"].is_null());
    }
    sources.sort();
    assert_eq!(sources, [false, true], "one cached run, one built");
}
