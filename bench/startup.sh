#!/usr/bin/env bash
# Start-up cost of one sandbox, side by side with bubblewrap and unshare in the same run.
# Usage: bench/startup.sh [RUNS] [ROUNDS]   (root; needs hyperfine and bubblewrap:
#        apt-get install hyperfine bubblewrap)
# Each round is one hyperfine run of every command; ROUNDS (default 3) of them, back to back, so that
# this VM's drift over minutes shows up as spread between rounds rather than as a skewed ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100}
rounds=${2:-3}
cargo build --release --quiet
# .cargo/config.toml builds for the host triple (static-pie): the binary is under target/<triple>/.
bin=$PWD/target/$(rustc -vV | sed -n 's/^host: //p')/release/nucleus
ctx=$(mktemp -d)
chmod 755 "$ctx"  # as root the sandbox runs as nobody, which must be able to read the context
out=$(mktemp -d)
trap 'rm -rf "$ctx" "$out"' EXIT
export XDG_STATE_HOME=$ctx/.state
for round in $(seq 1 "$rounds"); do
  hyperfine -N --warmup 10 --runs "$runs" --export-json "$out/$round.json" \
    -n "nucleus run -- /bin/true" "$bin run $ctx -- /bin/true" \
    -n "nucleus run --writable -- /bin/true" "$bin run --writable $ctx -- /bin/true" \
    -n "nucleus run --net host -- /bin/true" "$bin run --net host $ctx -- /bin/true" \
    -n "bwrap --unshare-all" "bwrap --ro-bind / / --unshare-all --die-with-parent /bin/true" \
    -n "unshare -Urpmnui --fork" "unshare -Urpmnui --fork /bin/true" >/dev/null 2>&1
done
python3 - "$out" <<'PY'
import glob, json, statistics, sys
rounds = [json.load(open(f))["results"] for f in sorted(glob.glob(sys.argv[1] + "/*.json"))]
names = [r["command"] for r in rounds[0]]
median = lambda rs, name: next(r["median"] for r in rs if r["command"] == name)
print(f"{len(rounds)} rounds; per round: median (ms) and ratio to bwrap in that round\n")
print("| command | median of rounds (ms) | × bwrap, per round | × bwrap, median |")
print("|---|---:|---|---:|")
for name in names:
    ms = [median(rs, name) * 1e3 for rs in rounds]
    ratios = [median(rs, name) / median(rs, "bwrap --unshare-all") for rs in rounds]
    print(f"| `{name}` | {statistics.median(ms):.1f} | {' / '.join(f'{r:.2f}' for r in ratios)} | {statistics.median(ratios):.2f} |")
PY
