#!/usr/bin/env bash
# Start-up cost of one sandbox, side by side with bubblewrap and unshare in the same run.
# Usage: bench/startup.sh [RUNS]   (root; needs bubblewrap: apt-get install bubblewrap)
# The commands run interleaved, one of each per iteration (bench/interleaved.py): this VM drifts by
# ±15 % over minutes, which would skew the ratios of commands timed one after the other.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-300}
cargo build --release --quiet
# .cargo/config.toml builds for the host triple (static-pie): the binary is under target/<triple>/.
bin=$PWD/target/$(rustc -vV | sed -n 's/^host: //p')/release/nucleus
ctx=$(mktemp -d)
chmod 755 "$ctx"  # as root the sandbox runs as nobody, which must be able to read the context
trap 'rm -rf "$ctx"' EXIT
export XDG_STATE_HOME=$ctx/.state
# Each command's teardown (namespaces, mounts: after the exit status, for nucleus and bwrap alike)
# ends before the next command starts.
export SETTLE_MS=${SETTLE_MS:-10}
python3 bench/interleaved.py "$runs" "bwrap --unshare-all" \
  "nucleus run -- /bin/true=$bin run $ctx -- /bin/true" \
  "nucleus run --writable -- /bin/true=$bin run --writable $ctx -- /bin/true" \
  "nucleus run --net host -- /bin/true=$bin run --net host $ctx -- /bin/true" \
  "bwrap --unshare-all=$(command -v bwrap) --ro-bind / / --unshare-all --die-with-parent /bin/true" \
  "unshare -Urpmnui --fork=$(command -v unshare) -Urpmnui --fork /bin/true"
