#!/usr/bin/env python3
"""Time commands interleaved run by run, so that this VM's drift over minutes falls on all alike.

Usage: interleaved.py RUNS BASELINE_NAME NAME=COMMAND...   (COMMAND split on spaces)
Each iteration runs every command once (posix_spawn, stdout to /dev/null, then waitpid), in a new
random order: a sandbox's teardown (PID 1's, after `nucleus` or bwrap has returned) overlaps the
start of whatever runs next, so a fixed order would charge it to the same command every time. The
first 5 iterations are warm-ups. Prints a markdown table of medians and each median's ratio to
BASELINE's. With PIPE=1, stdout and stderr go to a pipe that is read to its end, as a caller that
captures the output (`$(nucleus run …)`) waits for both that end and the exit status.

Every executable is first dropped from the page cache, so that each is loaded the way exec loads it
after a boot. How its pages got into the cache otherwise changes the start: a binary just written by
the linker, or copied with cp, takes another number of page faults (107 against 92 for
`nucleus --version`), because the page cache's folio sizes follow how the file was written.
"""
import os
import random
import statistics
import sys
import time

# Milliseconds to wait after each command, so that the teardown a command leaves to the kernel
# (namespaces, mounts: after the exit status, for nucleus and bwrap alike) ends before the next
# command starts, instead of being charged to it.
settle = float(os.environ.get("SETTLE_MS", "0")) / 1000
piped = os.environ.get("PIPE") == "1"

runs, baseline = int(sys.argv[1]), sys.argv[2]
commands = [spec.split("=", 1) for spec in sys.argv[3:]]
times = {name: [] for name, _ in commands}
devnull = os.open("/dev/null", os.O_RDWR)
os.sync()
for _, command in commands:
    executable = os.open(command.split()[0], os.O_RDONLY)
    os.posix_fadvise(executable, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(executable)
order = random.Random(0)
for iteration in range(runs + 5):
    for name, command in order.sample(commands, len(commands)):
        argv = command.split()
        if piped:
            read_end, write_end = os.pipe()
            stdio = [(os.POSIX_SPAWN_DUP2, write_end, 1), (os.POSIX_SPAWN_DUP2, write_end, 2)]
        else:
            stdio = [(os.POSIX_SPAWN_DUP2, devnull, 1)]
        start = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=stdio)
        if piped:
            os.close(write_end)
            while os.read(read_end, 65536):
                pass
            os.close(read_end)
        _, status = os.waitpid(pid, 0)
        elapsed = (time.perf_counter_ns() - start) / 1e6
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{name} failed: {command}")
        if iteration >= 5:
            times[name].append(elapsed)
        time.sleep(settle)
base = statistics.median(times[baseline])
print(f"{runs} runs each, interleaved\n")
print("| command | median (ms) | p25–p75 (ms) | × " + baseline + " |")
print("|---|---:|---:|---:|")
for name, _ in commands:
    t = times[name]
    q = statistics.quantiles(t, n=4)
    print(f"| `{name}` | {statistics.median(t):.2f} | {q[0]:.2f}–{q[2]:.2f} | {statistics.median(t) / base:.2f} |")
