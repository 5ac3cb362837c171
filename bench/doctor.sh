#!/bin/sh
# Cost of each `nucleus doctor` probe (µs per call), and of a whole `nucleus doctor` run.
# Usage: bench/doctor.sh [ITERATIONS]   (as root, so the BPF and cgroup probes run fully)
# Builds bench/doctor_probes.rs against this checkout in a scratch cargo project.
set -eu
n=${1:-200}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${TMPDIR:-/tmp}/nucleus-doctor-bench
mkdir -p "$work/src"
cat > "$work/Cargo.toml" <<TOML
[package]
name = "doctor-bench"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
nucleus = { path = "$repo" }

[profile.release]
debug = false
TOML
cp "$repo/bench/doctor_probes.rs" "$work/src/main.rs"
# Built from its own directory, so the checkout's .cargo/config.toml does not apply to it.
(cd "$work" && cargo build --quiet --release)
"$work/target/release/doctor-bench" "$n"
(cd "$repo" && cargo build --quiet --release)
bin="$repo/target/$(rustc -vV | sed -n 's/^host: //p')/release/nucleus"
runs=$(( n / 10 + 1 ))
start=$(date +%s%N)
i=0
while [ "$i" -lt "$runs" ]; do "$bin" doctor >/dev/null || true; i=$((i + 1)); done
end=$(date +%s%N)
echo "nucleus doctor (whole process)   $(( (end - start) / runs / 1000 )) µs per run ($runs runs)"
