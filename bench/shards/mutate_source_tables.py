#!/usr/bin/env python3
"""Mutation campaign against schema 2's source tables: hostile `source_slices` and `source_geometry` rows and flipped
bytes of `source_pixels`, through the real fuse3d binary.

Takes a shard folder of schema_version 2 (with source slices), and for each of --runs mutants: copies the folder, mutates
its first shard with h5py (a row's sample, channel, rows, columns or offset set to a hostile value: negative, zero,
huge, int64's ends, one past the data, a neighbour's offset; a geometry value set to NaN, ±inf, 0 or 1e300; or a few
bytes of a stored source chunk flipped), rewrites the manifest's size and sha256 of that shard (so that readers reach
the tables instead of refusing a changed file), and runs

  * `fuse3d verify DIR`,
  * `fuse3d inspect DIR`,
  * `fuse3d bench loader DIR --source-pixels --threads 1` (the loader's path: tables, chunk decode, the slices put in the
    grid's voxels and padded),

each under a timeout, with MALLOC_CHECK_=3. It counts crashes (death by a signal, or a Swift or glibc fatal message on
stderr), hangs, and clean refusals (a non-zero exit with a message naming the shard), and prints a summary; every crashing
mutant is kept under OUT/crashes/. The same --seed gives the same mutants.

  .venv/bin/python bench/shards/mutate_source_tables.py --fuse3d .build/release/fuse3d --shards SHARDS --runs 200 --out OUT
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys

import h5py
import numpy as np

HOSTILE_INTS = [-1, 0, 1, 2**31 - 1, 2**31, 2**32, 2**62, 2**63 - 1, -(2**63), 4096, 4097, 65536]
HOSTILE_FLOATS = [float("nan"), float("inf"), float("-inf"), 0.0, 1e300, -1e300, 1e-300]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def mutate(shard, rng):
    """Applies one mutation to `shard` in place; returns what was done."""
    with h5py.File(shard, "r+") as f:
        rows, geometry = f["source_slices"], f["source_geometry"]
        m = rows.shape[0]
        kind = rng.choice(["slices", "slices", "geometry", "pixels"])
        if m == 0:
            raise SystemExit(f"{shard}: no source slices to mutate (ingest without --no-source-pixels)")
        r = rng.randrange(m)
        if kind == "slices":
            column = rng.randrange(5)
            table = rows[()]
            choices = HOSTILE_INTS + [int(table[(r + 1) % m, 4]), int(table[r, 4]) + 1, int(table[-1, 4]) + 65536]
            value = rng.choice(choices)
            table[r, column] = value
            rows[...] = table
            return f"source_slices[{r}, {column}] = {value}"
        if kind == "geometry":
            column = rng.randrange(12)
            table = geometry[()]
            value = rng.choice(HOSTILE_FLOATS)
            table[r, column] = value
            geometry[...] = table
            return f"source_geometry[{r}, {column}] = {value}"
        pixels = f["source_pixels"]
        chunk = rng.randrange(max(1, pixels.shape[0] // 65536))
        info = pixels.id.get_chunk_info_by_coord((chunk * 65536,))
        offset, size = info.byte_offset, info.size
    # Flip bytes of the stored (compressed) chunk on disk.
    with open(shard, "r+b") as raw:
        flips = []
        for _ in range(rng.randrange(1, 5)):
            at = offset + rng.randrange(size)
            raw.seek(at)
            byte = raw.read(1)[0]
            raw.seek(at)
            new = byte ^ (1 << rng.randrange(8))
            raw.write(bytes([new]))
            flips.append(at - offset)
    return f"source_pixels chunk {chunk}: bytes {flips} of {size} flipped"


def run(command, timeout):
    env = dict(os.environ, MALLOC_CHECK_="3")
    try:
        p = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return "hang", ""
    fatal = any(s in p.stderr for s in ("Fatal error", "fatal error:", "malloc(): ", "free(): ", "double free", "corrupted"))
    if p.returncode < 0 or fatal:
        return "crash", p.stderr[-2000:]
    return ("refused" if p.returncode != 0 else "ok"), p.stdout[-300:] + p.stderr[-300:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fuse3d", required=True)
    ap.add_argument("--shards", required=True, help="a schema-2 shard folder with source slices")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(os.path.join(a.out, "crashes"), exist_ok=True)
    counts = {}
    work = os.path.join(a.out, "work")
    for i in range(a.runs):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(a.shards, work, ignore=shutil.ignore_patterns(".cache*", ".headers.index"))
        manifest_path = os.path.join(work, "manifest.json")
        manifest = json.load(open(manifest_path))
        entry = manifest["shards"][0]
        shard = os.path.join(work, entry["file"])
        what = mutate(shard, rng)
        entry["bytes"], entry["sha256"] = os.path.getsize(shard), sha256(shard)
        with open(manifest_path, "w") as f:
            json.dump(manifest, f)
        for name, command in [("verify", [a.fuse3d, "verify", work]), ("inspect", [a.fuse3d, "inspect", work]),
                              ("loader", [a.fuse3d, "bench", "loader", work, "--source-pixels", "--threads", "1"])]:
            outcome, tail = run(command, a.timeout)
            counts.setdefault(name, {}).setdefault(outcome, 0)
            counts[name][outcome] += 1
            if outcome in ("crash", "hang"):
                keep = os.path.join(a.out, "crashes", f"{i:04d}-{name}")
                shutil.copytree(work, keep)
                with open(os.path.join(keep, "mutation.txt"), "w") as f:
                    f.write(f"{what}\n{' '.join(command)}\n{outcome}\n{tail}\n")
        print(f"{i + 1}/{a.runs} {what}: " + ", ".join(f"{n} {o}" for n, o in [(n, max(c, key=c.get)) for n, c in counts.items()]),
              file=sys.stderr) if (i + 1) % 25 == 0 else None
    summary = {"runs": a.runs, "seed": a.seed, "outcomes": counts}
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))
    crashes = sum(c.get("crash", 0) + c.get("hang", 0) for c in counts.values())
    sys.exit(1 if crashes else 0)


if __name__ == "__main__":
    main()
