#!/usr/bin/env python3
"""Runs inside a private mount namespace (see bench/context.sh): times each method into a fresh tmpfs.

usage: context_bench.py SRC MNT RELEASE_DIR RUNS
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import time

src, mnt, release, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
# The same options for every method: those nucleus uses for its own context tmpfs.
TMPFS_OPTS = os.environ.get("BENCH_TMPFS_OPTS", "size=4g,huge=within_size")
snap = os.path.join(release, "examples", "snapshot_bench")
nucleus = os.path.join(release, "nucleus")
os.makedirs(mnt, exist_ok=True)


def fresh():
    subprocess.run(["umount", mnt], stderr=subprocess.DEVNULL)
    subprocess.run(["mount", "-t", "tmpfs", "-o", TMPFS_OPTS, "tmpfs", mnt], check=True)


def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd, key, shell=False, stdout=subprocess.DEVNULL):
    """Runs cmd; records wall seconds in times[key] and CPU seconds (user+sys) in cpus[key]."""
    c, t = cpu(), time.monotonic()
    out = subprocess.run(cmd, shell=shell, check=True, stdout=stdout)
    times[key].append(time.monotonic() - t)
    cpus[key].append(cpu() - c)
    return out


# Warm the page cache so every method reads the source from memory.
subprocess.run(f"tar -C '{src}' -cf - . > /dev/null", shell=True, check=True)
times = {"tar": [], "cp": [], "snapshot": [], "manifest": []}
cpus = {k: [] for k in times}
detail = None
for _ in range(runs):
    fresh()
    timed(f"tar -C '{src}' -cf - . | tar -C '{mnt}' -xf -", "tar", shell=True)
    fresh()
    timed(["cp", "-a", f"{src}/.", f"{mnt}/"], "cp")
    fresh()
    detail = json.loads(timed([snap, src, mnt], "snapshot", stdout=subprocess.PIPE).stdout)
    timed([nucleus, "manifest", src], "manifest")
subprocess.run(["umount", mnt])

print("tree:", json.dumps(detail))
with open("/proc/loadavg") as f:
    print(f"load average {' '.join(f.read().split()[:3])}, cores {os.cpu_count()}, runs {runs}, tmpfs {TMPFS_OPTS}")
names = {
    "tar": "tar -cf - | tar -xf - (into tmpfs)",
    "cp": "cp -a (into tmpfs)",
    "snapshot": "nucleus snapshot: copy+hash+verify",
    "manifest": "nucleus manifest (hash only)",
}
med = {k: statistics.median(v) for k, v in times.items()}
best = {k: min(v) for k, v in times.items()}
cpu_med = {k: statistics.median(v) for k, v in cpus.items()}
print(f"{'method':<38}{'wall med':>9}{'wall min':>9}{'med/tar':>8}{'min/tar':>8}{'cpu s':>7}{'cpu/tar':>8}")
for k, name in names.items():
    print(
        f"{name:<38}{med[k]:>9.3f}{best[k]:>9.3f}{med[k] / med['tar']:>8.2f}{best[k] / best['tar']:>8.2f}"
        f"{cpu_med[k]:>7.2f}{cpu_med[k] / cpu_med['tar']:>8.2f}"
    )
