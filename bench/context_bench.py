#!/usr/bin/env python3
"""Runs inside a private mount namespace (see bench/context.sh): times each method into a fresh tmpfs.

usage: context_bench.py SRC MNT RELEASE_DIR RUNS
"""
import json
import os
import statistics
import subprocess
import sys
import time

src, mnt, release, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
snap = os.path.join(release, "examples", "snapshot_bench")
nucleus = os.path.join(release, "nucleus")
os.makedirs(mnt, exist_ok=True)


def fresh():
    subprocess.run(["umount", mnt], stderr=subprocess.DEVNULL)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g", "tmpfs", mnt], check=True)


def timed(cmd, shell=False, stdout=subprocess.DEVNULL):
    t = time.monotonic()
    out = subprocess.run(cmd, shell=shell, check=True, stdout=stdout)
    return time.monotonic() - t, out


# Warm the page cache so every method reads the source from memory.
subprocess.run(f"tar -C '{src}' -cf - . > /dev/null", shell=True, check=True)
times = {"tar": [], "cp": [], "snapshot": [], "manifest": []}
detail = None
for _ in range(runs):
    fresh()
    times["tar"].append(timed(f"tar -C '{src}' -cf - . | tar -C '{mnt}' -xf -", shell=True)[0])
    fresh()
    times["cp"].append(timed(["cp", "-a", f"{src}/.", f"{mnt}/"])[0])
    fresh()
    t, out = timed([snap, src, mnt], stdout=subprocess.PIPE)
    times["snapshot"].append(t)
    detail = json.loads(out.stdout)
    times["manifest"].append(timed([nucleus, "manifest", src])[0])
subprocess.run(["umount", mnt])

print("tree:", json.dumps(detail))
with open("/proc/loadavg") as f:
    print(f"load average {' '.join(f.read().split()[:3])}, cores {os.cpu_count()}, runs {runs}")
names = {
    "tar": "tar -cf - | tar -xf - (into tmpfs)",
    "cp": "cp -a (into tmpfs)",
    "snapshot": "nucleus snapshot: copy+hash+verify",
    "manifest": "nucleus manifest (hash only)",
}
med = {k: statistics.median(v) for k, v in times.items()}
best = {k: min(v) for k, v in times.items()}
print(f"{'method':<38}{'median s':>10}{'min s':>9}{'median/tar':>12}{'min/tar':>9}")
for k, name in names.items():
    print(f"{name:<38}{med[k]:>10.3f}{best[k]:>9.3f}{med[k] / med['tar']:>12.2f}{best[k] / best['tar']:>9.2f}")
