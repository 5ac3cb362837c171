#!/usr/bin/env bash
# Start-up cost of one sandbox, side by side with bubblewrap and unshare in the same run.
# Usage: bench/startup.sh [RUNS]   (root; needs hyperfine and bubblewrap: apt-get install hyperfine bubblewrap)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100}
cargo build --release --quiet
bin=$PWD/target/release/nucleus
ctx=$(mktemp -d)
chmod 755 "$ctx"  # as root the sandbox runs as nobody, which must be able to read the context
out=$(mktemp)
trap 'rm -rf "$ctx" "$out"' EXIT
export XDG_STATE_HOME=$ctx/.state
hyperfine -N --warmup 10 --runs "$runs" --export-json "$out" \
  -n "nucleus run -- /bin/true" "$bin run $ctx -- /bin/true" \
  -n "nucleus run --writable -- /bin/true" "$bin run --writable $ctx -- /bin/true" \
  -n "bwrap --unshare-all" "bwrap --ro-bind / / --unshare-all --die-with-parent /bin/true" \
  -n "unshare -Urpmnui --fork" "unshare -Urpmnui --fork /bin/true" >/dev/null
python3 - "$out" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
by = {r["command"]: r for r in results}
bwrap = by["bwrap --unshare-all"]["median"]
print(f"| command | median (ms) | mean ± σ (ms) | × bwrap |")
print(f"|---|---:|---:|---:|")
for r in results:
    print(f"| `{r['command']}` | {r['median']*1e3:.1f} | {r['mean']*1e3:.1f} ± {r['stddev']*1e3:.1f} | {r['median']/bwrap:.2f} |")
PY
