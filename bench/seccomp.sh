#!/bin/sh
# Per-call cost of nucleus-compiled seccomp filters (no filter / default profile / Docker's profile),
# measured side by side in one run. Usage: bench/seccomp.sh [DOCKER_PROFILE.json]
set -eu
cd "$(dirname "$0")/.."
uname -r
nproc
cargo run --quiet --release --example seccomp_bench -- "$@"
