#!/usr/bin/env python3
"""Generate a deterministic project-like tree for the context benchmark.

Default: ~30,000 files, ~500 MB, ~1,500 directories up to 4 levels deep, mostly small files with a
long tail of large ones (like a repository with build artefacts), plus a few symlinks.

usage: context_gen_tree.py DEST [--files N] [--mb M] [--seed S]
"""
import argparse
import os
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dest")
    ap.add_argument("--files", type=int, default=30000)
    ap.add_argument("--mb", type=int, default=500)
    ap.add_argument("--seed", type=int, default=4)
    a = ap.parse_args()
    rng = random.Random(a.seed)

    dirs = [""]
    while len(dirs) < a.files // 20:
        parent = rng.choice(dirs)
        if parent.count("/") >= 3:
            continue
        dirs.append(os.path.join(parent, f"d{len(dirs)}"))
    for d in dirs:
        os.makedirs(os.path.join(a.dest, d), exist_ok=True)

    # Log-uniform sizes between 100 B and 4 MiB, then scaled so the total is the target size.
    raw = [10 ** rng.uniform(2, 6.6) for _ in range(a.files)]
    scale = a.mb * 1024 * 1024 / sum(raw)
    sizes = [max(0, int(s * scale)) for s in raw]
    block = rng.randbytes(8 * 1024 * 1024)
    for i, size in enumerate(sizes):
        path = os.path.join(a.dest, rng.choice(dirs), f"f{i}.dat")
        off = rng.randrange(0, len(block) - min(size, len(block)) + 1)
        with open(path, "wb") as f:
            left = size
            while left > 0:
                chunk = block[off : off + min(left, len(block) - off)]
                f.write(chunk)
                left -= len(chunk)
                off = 0
    for i in range(100):
        os.symlink(f"f{i}.dat", os.path.join(a.dest, dirs[i % len(dirs)], f"link{i}"))
    print(f"{a.files} files, {len(dirs)} dirs, {sum(sizes) / 1e6:.0f} MB in {a.dest}")


if __name__ == "__main__":
    main()
