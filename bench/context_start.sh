#!/bin/sh
# Start time of `nucleus run DIR -- true` with a lazy context, a tiny tree vs the 30,000-file tree
# (lazy mode must not depend on tree size), and snapshot mode on the big tree, for reference.
# Needs the runtime and root (the big tree is the one bench/context.sh generates).
#
# usage: bench/context_start.sh [RUNS]
set -eu
RUNS=${1:-10}
BENCH_DIR=${BENCH_DIR:-/var/tmp/nucleus-ctx-bench}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIG=$BENCH_DIR/src-30000-500
[ -d "$BIG" ] || python3 "$ROOT/bench/context_gen_tree.py" "$BIG"
SMALL=$BENCH_DIR/small
mkdir -p "$SMALL" && echo hi > "$SMALL/README"
(cd "$ROOT" && cargo build --release --quiet --bin nucleus)
# .cargo/config.toml builds for the host triple (static-pie): the binary is under target/<triple>/.
exec python3 - "$ROOT/target/$(rustc -vV | sed -n 's/^host: //p')/release/nucleus" "$SMALL" "$BIG" "$RUNS" <<'PY'
import statistics, subprocess, sys, time
nucleus, small, big, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cases = [("lazy, 1 file", small, "lazy"), ("lazy, 30,000 files / 524 MB", big, "lazy"),
         ("snapshot, 1 file", small, "snapshot"), ("snapshot, 30,000 files / 524 MB", big, "snapshot")]
print(f"{'nucleus run DIR -- true':<34}{'median s':>10}{'min s':>9}")
for name, tree, mode in cases:
    n = runs if mode == "lazy" or tree == small else max(3, runs // 3)
    t = []
    for _ in range(n):
        s = time.monotonic()
        subprocess.run([nucleus, "run", tree, "--context-mode", mode, "--tmpfs-size", "2G", "--", "true"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t.append(time.monotonic() - s)
    print(f"{name:<34}{statistics.median(t):>10.3f}{min(t):>9.3f}")
PY
