#!/bin/sh
# Telemetry CPU cost on an idle sandbox (goal: < 0.5 % of one CPU at a 1 s interval).
# Usage: bench/telemetry.sh [SECONDS] [INTERVAL_MS]   (as root, for the cgroup source)
# Builds bench/telemetry_idle.rs against this checkout in a scratch cargo project.
set -eu
secs=${1:-60}
interval=${2:-1000}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${TMPDIR:-/tmp}/nucleus-telemetry-bench
mkdir -p "$work/src"
cat > "$work/Cargo.toml" <<TOML
[package]
name = "telemetry-bench"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
nucleus = { path = "$repo" }
tempfile = "3"
libc = "0.2"

[profile.release]
debug = false
TOML
cp "$repo/bench/telemetry_idle.rs" "$work/src/main.rs"
# Built from its own directory, so the checkout's .cargo/config.toml does not apply to it.
(cd "$work" && cargo build --quiet --release)
bin="$work/target/release/telemetry-bench"
"$bin" cgroup "$secs" "$interval"
"$bin" proc "$secs" "$interval"
