//! Config file parsing, validation and precedence, through the public API.

use std::path::{Path, PathBuf};

use nucleus::cli::SandboxArgs;
use nucleus::config::{self, Config, ConfigError};
use nucleus::spec::{ContextMode, NetworkMode};

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn load_text(text: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().expect("tempdir");
    config::load_from(&write_config(dir.path(), text))
}

#[test]
fn parses_every_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        dir.path(),
        r#"
context_mode = "snapshot"
writable = true
tmpfs_size = "1.5G"
expect_root_hash = "abc"
expect_manifest = "manifest.json"
save_changes = "/tmp/changes"
net = "host"
seccomp_profile = "profiles/mine.json"
allow_ptrace = true
memory = 536870912
cpus = 1.5
pids = 256
strict = true
events = "-"
sample_interval_ms = 250
env = ["LANG=C.UTF-8", "EDITOR=vi"]
"#,
    );
    let c = config::load_from(&path).expect("valid config");
    assert_eq!(c.context_mode, Some(ContextMode::Snapshot));
    assert_eq!(c.writable, Some(true));
    assert_eq!(c.tmpfs_size.as_deref(), Some("1.5G"));
    assert_eq!(c.expect_root_hash.as_deref(), Some("abc"));
    assert_eq!(c.expect_manifest, Some(dir.path().join("manifest.json")));
    assert_eq!(c.save_changes, Some(PathBuf::from("/tmp/changes")));
    assert_eq!(c.net, Some(NetworkMode::Host));
    assert_eq!(
        c.seccomp_profile,
        Some(dir.path().join("profiles/mine.json"))
    );
    assert_eq!(c.allow_ptrace, Some(true));
    assert_eq!(c.memory.as_deref(), Some("536870912"));
    assert_eq!(c.cpus, Some(1.5));
    assert_eq!(c.pids, Some(256));
    assert_eq!(c.strict, Some(true));
    assert_eq!(c.events, Some(PathBuf::from("-")));
    assert_eq!(c.sample_interval_ms, Some(250));
    assert_eq!(
        c.env,
        Some(vec!["LANG=C.UTF-8".to_owned(), "EDITOR=vi".to_owned()])
    );
}

#[test]
fn empty_file_is_default() {
    assert_eq!(
        load_text("# nothing set\n").expect("valid"),
        Config::default()
    );
}

fn invalid(text: &str) -> (Option<String>, String) {
    match load_text(text) {
        Err(e @ ConfigError::Invalid { .. }) => {
            let msg = e.to_string();
            let ConfigError::Invalid { key, .. } = e else {
                unreachable!()
            };
            (key, msg)
        }
        other => panic!("expected an invalid-config error for {text:?}, got {other:?}"),
    }
}

#[test]
fn unknown_key_is_named_with_the_file() {
    let (key, msg) = invalid("memory = \"1G\"\nwriteable = true\n");
    assert_eq!(key.as_deref(), Some("writeable"));
    assert!(msg.contains("`writeable`"), "{msg}");
    assert!(msg.contains("config.toml"), "{msg}");
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn wrong_type_names_the_key() {
    let (key, msg) = invalid("strict = true\npids = \"many\"\n");
    assert_eq!(key.as_deref(), Some("pids"));
    assert!(msg.contains("line 2"), "{msg}");
    let (key, _) = invalid("writable = \"yes\"\n");
    assert_eq!(key.as_deref(), Some("writable"));
    let (key, _) = invalid("net = \"bridge\"\n");
    assert_eq!(key.as_deref(), Some("net"));
}

#[test]
fn bad_size_names_the_key_and_the_fix() {
    let (key, msg) = invalid("memory = \"12 parsecs\"\n");
    assert_eq!(key.as_deref(), Some("memory"));
    assert!(
        msg.contains("512M"),
        "message should show an example: {msg}"
    );
    let (key, _) = invalid("tmpfs_size = 0\n");
    assert_eq!(key.as_deref(), Some("tmpfs_size"));
}

#[test]
fn out_of_range_values_name_the_key() {
    assert_eq!(invalid("cpus = -1.0\n").0.as_deref(), Some("cpus"));
    assert_eq!(invalid("pids = 0\n").0.as_deref(), Some("pids"));
    assert_eq!(
        invalid("sample_interval_ms = 0\n").0.as_deref(),
        Some("sample_interval_ms")
    );
    assert_eq!(invalid("env = [\"NOEQUALS\"]\n").0.as_deref(), Some("env"));
}

#[test]
fn syntax_error_names_the_line() {
    let (_, msg) = invalid("memory = \"1G\"\nstrict = \n");
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn unreadable_path_is_a_read_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = config::load_from(&dir.path().join("missing.toml")).expect_err("missing file");
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
}

#[test]
fn flags_override_config() {
    let config = Config {
        memory: Some("1G".into()),
        pids: Some(100),
        net: Some(NetworkMode::Host),
        strict: Some(true),
        writable: Some(false),
        env: Some(vec!["A=config".into(), "B=config".into()]),
        ..Config::default()
    };
    let mut args = SandboxArgs {
        memory: Some("2G".into()),
        writable: true,
        env: vec!["A=flag".into()],
        ..SandboxArgs::default()
    };
    config.apply_defaults(&mut args);
    assert_eq!(args.memory.as_deref(), Some("2G"), "flag wins");
    assert_eq!(args.pids, Some(100), "config fills the gap");
    assert_eq!(args.net, Some(NetworkMode::Host));
    assert!(args.strict, "config turns a bool on");
    assert!(args.writable, "config false cannot undo a flag");
    assert_eq!(
        args.env,
        vec!["A=config", "B=config", "A=flag"],
        "flags come last so they win"
    );
    assert_eq!(args.cpus, None, "unset everywhere stays unset");
}

#[test]
fn parse_size_units() {
    let ok = [
        ("1024", 1024),
        ("64k", 64 << 10),
        ("64K", 64 << 10),
        ("512M", 512 << 20),
        ("512MiB", 512 << 20),
        ("512MB", 512 << 20),
        ("512Mi", 512 << 20),
        ("2G", 2 << 30),
        ("1.5G", 3 << 29),
        ("1T", 1 << 40),
        ("100B", 100),
        (" 8 M ", 8 << 20),
    ];
    for (text, want) in ok {
        assert_eq!(config::parse_size(text), Ok(want), "{text}");
    }
    for bad in ["", "M", "12X", "1.2.3G", "0", "-5M", "99999999999T", "lots"] {
        let err = config::parse_size(bad).expect_err(bad);
        assert!(err.contains("invalid size"), "{bad}: {err}");
    }
}
