#!/bin/sh
# Context snapshot benchmark: nucleus snapshot (copy + hash + verify) vs `tar | tar` vs `cp -a`,
# all into a fresh tmpfs with a warm page cache, runs interleaved. Needs root (mounts a tmpfs in a
# private mount namespace). Lazy-mode start time needs the runtime and is not measured here.
#
# usage: bench/context.sh [RUNS]
# env:   BENCH_DIR (default /var/tmp/nucleus-ctx-bench), BENCH_FILES (30000), BENCH_MB (500),
#        BENCH_TMPFS_OPTS (default "size=4g,huge=within_size", the options nucleus mounts with)
set -eu
RUNS=${1:-5}
BENCH_DIR=${BENCH_DIR:-/var/tmp/nucleus-ctx-bench}
FILES=${BENCH_FILES:-30000}
MB=${BENCH_MB:-500}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=$BENCH_DIR/src-$FILES-$MB

if [ "$(id -u)" != 0 ]; then echo "bench/context.sh: run as root (it mounts tmpfs)" >&2; exit 1; fi
if [ ! -d "$SRC" ]; then
    mkdir -p "$BENCH_DIR"
    python3 "$ROOT/bench/context_gen_tree.py" "$SRC" --files "$FILES" --mb "$MB"
fi
(cd "$ROOT" && cargo build --release --quiet --example snapshot_bench --bin nucleus)
exec unshare --mount --propagation private -- python3 "$ROOT/bench/context_bench.py" \
    "$SRC" "$BENCH_DIR/mnt" "$ROOT/target/$(rustc -vV | sed -n 's/^host: //p')/release" "$RUNS"
