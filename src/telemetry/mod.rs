//! Usage sampling, the event sink (`--events`), audit logs and diagnostic logging.

pub mod audit_log;
pub mod logging;
pub mod proc_usage;
pub mod retention;
pub mod sampler;
pub mod sink;

use std::path::PathBuf;

use directories::ProjectDirs;

/// nucleus's XDG state directory (`$XDG_STATE_HOME/nucleus`, else `~/.local/state/nucleus`).
pub fn state_dir() -> PathBuf {
    if let Some(dirs) = ProjectDirs::from("", "", "nucleus")
        && let Some(state) = dirs.state_dir()
    {
        return state.to_owned();
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".local/state/nucleus")
}

/// Where the per-sandbox audit logs live.
pub fn audit_dir() -> PathBuf {
    state_dir().join("audit")
}

/// Where the diagnostic logs live.
pub fn log_dir() -> PathBuf {
    state_dir().join("logs")
}
