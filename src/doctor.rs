//! `nucleus doctor`: which kernel features are available, and what nucleus does without each.
//!
//! Every row is probed for real (a child that unshares, a mount in a throwaway namespace, a BPF load),
//! not guessed from the kernel version. Exit 0 when a default `nucleus run` works here, 1 otherwise.

use serde::Serialize;

use crate::cli::DoctorArgs;

mod rows;

/// How usable one feature is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Available and working.
    Ok,
    /// Absent or refused by the kernel.
    Missing,
    /// Partly available; nucleus works with less.
    Degraded,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Missing => "missing",
            Self::Degraded => "degraded",
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Short feature name, stable for scripts.
    pub feature: &'static str,
    /// Whether it is there.
    pub status: Status,
    /// What was probed and found.
    pub detail: String,
    /// What nucleus does when the feature is missing.
    pub without: &'static str,
    /// Whether a default `nucleus run` needs it.
    pub required: bool,
}

/// Entry point of `nucleus doctor`.
pub fn main(args: DoctorArgs) -> i32 {
    let rows = collect();
    if args.json {
        match serde_json::to_string_pretty(&rows) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("nucleus: doctor: cannot encode the report as JSON: {e}");
                return 125;
            }
        }
    } else {
        print!("{}", render(&rows));
    }
    if ready(&rows) { 0 } else { 1 }
}

/// Whether every feature a default run needs is `ok`.
pub fn ready(rows: &[Row]) -> bool {
    rows.iter().all(|r| !r.required || r.status == Status::Ok)
}

/// Probe everything and build the report rows, in the order nucleus uses the features.
pub fn collect() -> Vec<Row> {
    vec![
        rows::config_row(),
        rows::kernel_row(),
        rows::userns_row(),
        rows::namespaces_row(),
        rows::overlay_row(),
        rows::seccomp_row(),
        rows::user_notif_row(),
        rows::landlock_row(),
        rows::cgroup_row(),
        rows::pidfd_row(),
        rows::bpf_row(),
    ]
}

/// The report as an aligned text table; `without` is shown under each row that is not ok.
pub fn render(rows: &[Row]) -> String {
    let width = rows
        .iter()
        .map(|r| r.feature.len())
        .max()
        .unwrap_or(0)
        .max("FEATURE".len());
    let mut out = format!("{:width$}  {:8}  DETAIL\n", "FEATURE", "STATUS");
    for row in rows {
        out += &format!(
            "{:width$}  {:8}  {}\n",
            row.feature,
            row.status.label(),
            row.detail
        );
        if row.status != Status::Ok {
            out += &format!("{:width$}  {:8}  without it: {}\n", "", "", row.without);
        }
    }
    let blocking: Vec<&str> = rows
        .iter()
        .filter(|r| r.required && r.status != Status::Ok)
        .map(|r| r.feature)
        .collect();
    if blocking.is_empty() {
        out += "\nready: a default `nucleus run` works here.\n";
    } else {
        out += &format!(
            "\nnot ready: a default run needs {}.\n",
            blocking.join(", ")
        );
    }
    out
}
