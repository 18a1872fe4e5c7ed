"""The Python peer: reads every sample of a shard folder with h5py + hdf5plugin, one sample at a
time (as a streaming loader does), and prints the best wall time of REPEATS passes in seconds.
Usage: read_h5py.py DIR REPEATS
"""
import glob
import os
import sys
import time

import h5py
import hdf5plugin  # noqa: F401  (registers the zstd filter)

folder, repeats = sys.argv[1], int(sys.argv[2])
best = float("inf")
for _ in range(repeats):
    start = time.perf_counter()
    for path in sorted(glob.glob(os.path.join(folder, "shard-*.h5"))):
        with h5py.File(path, "r") as f:
            v = f["volumes"]
            for i in range(v.shape[0]):
                v[i]
    best = min(best, time.perf_counter() - start)
print(f"{best:.4f}")
