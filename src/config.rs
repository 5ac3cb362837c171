//! The user's configuration file (`$XDG_CONFIG_HOME/nucleus/config.toml`): defaults for sandbox options.
//!
//! Configuration is only ever read from the user's XDG config directory, never from the context
//! directory: an untrusted repository must not be able to weaken its own sandbox (DESIGN §3). That is
//! why neither [`load`] nor [`config_path`] takes a context path.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::cli::SandboxArgs;
use crate::spec::{ContextMode, NetworkMode};

/// Defaults for every option of [`SandboxArgs`]; command-line flags override them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Default `--context-mode` (`lazy` or `snapshot`).
    pub context_mode: Option<ContextMode>,
    /// Default `--writable`.
    pub writable: Option<bool>,
    /// Default `--tmpfs-size`, e.g. "512M" (or a byte count).
    #[serde(default, deserialize_with = "size")]
    pub tmpfs_size: Option<String>,
    /// Default `--expect-root-hash`.
    pub expect_root_hash: Option<String>,
    /// Default `--expect-manifest` (relative paths are relative to the config file).
    pub expect_manifest: Option<PathBuf>,
    /// Default `--save-changes` (relative paths are relative to the config file).
    pub save_changes: Option<PathBuf>,
    /// Default `--net` (`none` or `host`).
    pub net: Option<NetworkMode>,
    /// Default `--seccomp-profile` (relative paths are relative to the config file).
    pub seccomp_profile: Option<PathBuf>,
    /// Default `--allow-ptrace`.
    pub allow_ptrace: Option<bool>,
    /// Default `--memory`, e.g. "2G" (or a byte count).
    #[serde(default, deserialize_with = "size")]
    pub memory: Option<String>,
    /// Default `--cpus` (cores, may be fractional).
    pub cpus: Option<f64>,
    /// Default `--pids`.
    pub pids: Option<u64>,
    /// Default `--strict`.
    pub strict: Option<bool>,
    /// Default `--events` (`-` for stderr; relative paths are relative to the config file).
    pub events: Option<PathBuf>,
    /// Default `--sample-interval-ms`.
    pub sample_interval_ms: Option<u64>,
    /// Extra `KEY=VALUE` environment variables, passed before any `--env` flag (so flags win).
    pub env: Option<Vec<String>>,
}

/// Why the configuration file could not be used.
#[derive(Debug)]
pub enum ConfigError {
    /// The file exists but could not be read.
    Read {
        /// The config file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key is unknown, mistyped or out of range.
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The offending key, when it can be named.
        key: Option<String>,
        /// 1-based line of the problem, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// The file this error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. } | Self::Invalid { path, .. } => path,
        }
    }

    /// What is wrong and how to fix it, without the file name (for reports that show the path already).
    pub fn reason(&self) -> String {
        match self {
            Self::Read { source, .. } => {
                format!("cannot read it: {source}; fix its permissions or remove it")
            }
            Self::Invalid {
                key, line, message, ..
            } => {
                let mut out = String::new();
                if let Some(line) = line {
                    out += &format!("line {line}, ");
                }
                if let Some(key) = key {
                    out += &format!("key `{key}`, ");
                }
                out + &format!("{message}; fix or remove it (see docs/config.md)")
            }
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Self::Read { .. } => "config file",
            Self::Invalid { .. } => "invalid config file",
        };
        write!(f, "{what} {}: {}", self.path().display(), self.reason())
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Invalid { .. } => None,
        }
    }
}

/// Where the config file lives: `$XDG_CONFIG_HOME/nucleus/config.toml`, else `~/.config/nucleus/config.toml`.
/// None only when there is no home directory at all.
pub fn config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "nucleus").map(|d| d.config_dir().join("config.toml"))
}

/// Load the user's config file; a missing file (or no home directory) gives `Config::default()`.
pub fn load() -> Result<Config, ConfigError> {
    let Some(path) = config_path() else {
        return Ok(Config::default());
    };
    match load_from(&path) {
        Err(ConfigError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(Config::default())
        }
        other => other,
    }
}

/// Load and validate one config file. Relative paths in it are resolved against its directory.
pub fn load_from(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut config = parse(&text).map_err(|e| e.into_error(path))?;
    config.resolve_paths(path.parent().unwrap_or(Path::new("/")));
    Ok(config)
}

/// A parse failure before the file's path is attached.
struct ParseFailure {
    key: Option<String>,
    line: Option<usize>,
    message: String,
}

impl ParseFailure {
    fn into_error(self, path: &Path) -> ConfigError {
        ConfigError::Invalid {
            path: path.to_owned(),
            key: self.key,
            line: self.line,
            message: self.message,
        }
    }
}

fn parse(text: &str) -> Result<Config, ParseFailure> {
    let config: Config = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        let key =
            unknown_field(e.message()).or_else(|| e.span().and_then(|s| key_at(text, s.start)));
        ParseFailure {
            key,
            line,
            message: e.message().trim().to_owned(),
        }
    })?;
    config.validate().map_err(|(key, message)| ParseFailure {
        line: key_line(text, key),
        key: Some(key.to_owned()),
        message,
    })?;
    Ok(config)
}

/// serde names an unknown key in backticks: "unknown field `foo`, expected one of …".
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next().map(str::to_owned)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// The key of the `key = value` line containing `offset` (the config is flat, so that names it).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let line = text.lines().nth(line_of(text, offset) - 1)?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty()).then(|| key.to_owned())
}

fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| l.split_once('=').is_some_and(|(k, _)| k.trim() == key))
        .map(|i| i + 1)
}

impl Config {
    /// Fill every option the flags left unset. Booleans: the config can turn one on, and a flag
    /// given on the command line keeps it on. Environment: config entries come first, so flags win.
    pub fn apply_defaults(&self, args: &mut SandboxArgs) {
        fn fill<T: Clone>(flag: &mut Option<T>, config: &Option<T>) {
            if flag.is_none() {
                flag.clone_from(config);
            }
        }
        fill(&mut args.context_mode, &self.context_mode);
        fill(&mut args.tmpfs_size, &self.tmpfs_size);
        fill(&mut args.expect_root_hash, &self.expect_root_hash);
        fill(&mut args.expect_manifest, &self.expect_manifest);
        fill(&mut args.save_changes, &self.save_changes);
        fill(&mut args.net, &self.net);
        fill(&mut args.seccomp_profile, &self.seccomp_profile);
        fill(&mut args.memory, &self.memory);
        fill(&mut args.cpus, &self.cpus);
        fill(&mut args.pids, &self.pids);
        fill(&mut args.events, &self.events);
        fill(&mut args.sample_interval_ms, &self.sample_interval_ms);
        args.writable |= self.writable.unwrap_or(false);
        args.allow_ptrace |= self.allow_ptrace.unwrap_or(false);
        args.strict |= self.strict.unwrap_or(false);
        if let Some(env) = &self.env {
            let flags = std::mem::take(&mut args.env);
            args.env = env.iter().cloned().chain(flags).collect();
        }
    }

    /// Range checks serde cannot express; returns the offending key and what is wrong.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(cpus) = self.cpus
            && !(cpus.is_finite() && cpus > 0.0)
        {
            return Err((
                "cpus",
                format!("must be a positive number of cores, got {cpus}"),
            ));
        }
        if self.pids == Some(0) {
            return Err(("pids", "must be at least 1".to_owned()));
        }
        if self.sample_interval_ms == Some(0) {
            return Err((
                "sample_interval_ms",
                "must be at least 1 millisecond".to_owned(),
            ));
        }
        for entry in self.env.iter().flatten() {
            if entry.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
                return Err(("env", format!("entry {entry:?} is not KEY=VALUE")));
            }
        }
        Ok(())
    }

    /// Make relative paths relative to the config file's directory, and expand a leading `~/`.
    fn resolve_paths(&mut self, base: &Path) {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let resolve = |p: &mut Option<PathBuf>| {
            if let Some(path) = p.as_mut()
                && path.as_os_str() != "-"
            {
                if let (Ok(rest), Some(home)) = (path.strip_prefix("~"), home.as_ref()) {
                    *path = home.join(rest);
                } else if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        };
        resolve(&mut self.expect_manifest);
        resolve(&mut self.save_changes);
        resolve(&mut self.seccomp_profile);
        resolve(&mut self.events);
    }
}

/// Accept a size as a string ("512M") or a byte count, and check it parses.
fn size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct SizeVisitor;
    impl serde::de::Visitor<'_> for SizeVisitor {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size such as \"512M\" or a number of bytes")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            parse_size(v).map(|_| v.to_owned()).map_err(E::custom)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            self.visit_str(&v.to_string())
        }
    }
    deserializer.deserialize_any(SizeVisitor).map(Some)
}

/// Parse a size: "1024", "64k", "512M", "1.5G", "2GiB", "1T"; K/M/G/T are powers of 1024.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let hint = "use a number of bytes or a number with K, M, G or T, e.g. 512M or 1.5G";
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    if number.is_empty() {
        return Err(format!("invalid size {text:?}: no number; {hint}"));
    }
    let unit = unit.trim_start();
    let unit = unit.strip_suffix(['B', 'b']).unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("invalid size {text:?}: unknown unit; {hint}")),
    };
    let multiplier = 1u64 << shift;
    let bytes = if let Ok(whole) = number.parse::<u64>() {
        whole.checked_mul(multiplier)
    } else {
        let value: f64 = number
            .parse()
            .map_err(|_| format!("invalid size {text:?}: {number:?} is not a number; {hint}"))?;
        let bytes = value * multiplier as f64;
        // Exactly representable up to 2^53; beyond that no one means a fractional size.
        (bytes < 9.0e15).then_some(bytes.floor() as u64)
    };
    match bytes {
        None => Err(format!("invalid size {text:?}: too large")),
        Some(0) => Err(format!("invalid size {text:?}: must be greater than zero")),
        Some(b) => Ok(b),
    }
}
