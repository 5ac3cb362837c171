//! `nucleus trace` learns what the base profile would deny, and the exported profile is accepted
//! unchanged by nucleus itself and by a third-party OCI runtime (crun).

mod common;

use std::path::Path;
use std::process::Command;

use common::{As, Scratch, describe, nucleus, run_sh, stdout_of};

/// Run `crun` on a bundle whose `linux.seccomp` is `profile`, executing `script`; returns stdout.
///
/// crun refuses this machine's cgroup v1-hybrid layout, so it runs in a private mount namespace with
/// a plain cgroup2 hierarchy at /sys/fs/cgroup and without cgroup management.
fn crun_with_profile(scratch: &Scratch, profile: &Path, script: &str) -> std::process::Output {
    let bundle = scratch.subdir("bundle");
    let spec = Command::new("crun")
        .arg("spec")
        .current_dir(&bundle)
        .output()
        .expect("crun spec");
    assert!(spec.status.success(), "{}", describe(&spec));
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).expect("config"))
            .expect("json");
    config["root"] = serde_json::json!({"path": "rootfs", "readonly": true});
    config["process"]["terminal"] = serde_json::json!(false);
    config["process"]["args"] = serde_json::json!(["/bin/sh", "-c", script]);
    config["linux"]["seccomp"] =
        serde_json::from_str(&std::fs::read_to_string(profile).expect("profile")).expect("json");
    std::fs::write(&config_path, config.to_string()).expect("write config");
    std::fs::create_dir_all(bundle.join("rootfs")).expect("rootfs");
    let setup = "set -e; b=$1; mount -t cgroup2 none /sys/fs/cgroup; mount -t tmpfs none $b/rootfs; cd $b/rootfs; \
                 mkdir -p usr proc dev sys tmp etc; ln -s usr/bin bin; ln -s usr/lib lib; ln -s usr/lib64 lib64; \
                 mount --rbind /usr usr; cd $b; exec crun --cgroup-manager=disabled run --bundle $b nucleus-it-$$";
    Command::new("unshare")
        .args(["-m", "sh", "-c", setup, "sh"])
        .arg(&bundle)
        .output()
        .expect("unshare crun")
}

#[test]
fn trace_learns_denied_calls_and_the_export_is_usable_everywhere() {
    let scratch = Scratch::new(As::Root);
    let learned = scratch.path().join("learned.json");
    let ctx = scratch.subdir("ctx");
    let traced = nucleus(As::Root, scratch.path())
        .args(["trace", "-o"])
        .arg(&learned)
        .arg(&ctx)
        .args(["--", "/bin/sh", "-c", "unshare -U true && echo traced"])
        .output()
        .expect("trace");
    assert_eq!(
        stdout_of(&traced).trim(),
        "traced",
        "trace lets the call through: {}",
        describe(&traced)
    );
    let stderr = String::from_utf8_lossy(&traced.stderr);
    assert!(
        stderr.contains("unshare"),
        "the would-deny list names it: {stderr}"
    );

    let check = nucleus(As::Root, scratch.path())
        .args(["profile", "check"])
        .arg(&learned)
        .output()
        .expect("check");
    assert!(check.status.success(), "{}", describe(&check));

    let flag = learned.to_str().expect("utf8");
    let allowed = run_sh(
        As::Root,
        &scratch,
        &["--seccomp-profile", flag],
        "unshare -U true && echo allowed",
    );
    assert_eq!(
        stdout_of(&allowed).trim(),
        "allowed",
        "{}",
        describe(&allowed)
    );
    let default = run_sh(As::Root, &scratch, &[], "unshare -U true && echo allowed");
    assert_ne!(
        stdout_of(&default).trim(),
        "allowed",
        "the default profile still denies it"
    );

    // crun takes the learned profile unchanged, with the same meaning.
    let out = crun_with_profile(
        &scratch,
        &learned,
        "echo crun-ok; unshare -U true && echo unshare-allowed",
    );
    assert_eq!(
        stdout_of(&out).lines().collect::<Vec<_>>(),
        ["crun-ok", "unshare-allowed"],
        "{}",
        describe(&out)
    );
}

#[test]
fn crun_accepts_the_default_profile_unchanged() {
    let scratch = Scratch::new(As::Root);
    let profile = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/default.json");
    let out = crun_with_profile(
        &scratch,
        &profile,
        "echo crun-ok; unshare -U true 2>&1 | tail -1",
    );
    let text = stdout_of(&out);
    assert!(text.starts_with("crun-ok"), "{}", describe(&out));
    assert!(
        text.contains("Operation not permitted"),
        "{}",
        describe(&out)
    );
}

#[test]
fn trace_does_not_learn_enosys_probes_such_as_clone3() {
    let scratch = Scratch::new(As::Root);
    let learned = scratch.path().join("learned.json");
    let ctx = scratch.subdir("ctx");
    // Starting a thread makes glibc try clone3 first; the profile's ENOSYS sends it back to clone.
    let script = "import threading; t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()";
    let traced = nucleus(As::Root, scratch.path())
        .args(["trace", "-o"])
        .arg(&learned)
        .arg(&ctx)
        .args(["--", "python3", "-c", script])
        .output()
        .expect("trace");
    assert_eq!(stdout_of(&traced).trim(), "thread", "{}", describe(&traced));
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&learned).expect("export")).expect("json");
    let allowed_by_learning = profile["syscalls"]
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| r["comment"].as_str().is_some_and(|c| c.contains("learned")))
        .flat_map(|r| r["names"].as_array().cloned().unwrap_or_default())
        .collect::<Vec<_>>();
    assert!(
        !allowed_by_learning.iter().any(|n| n == "clone3"),
        "clone3 stays ENOSYS: {allowed_by_learning:?}"
    );
}
