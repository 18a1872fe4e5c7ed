"""The Python peer, h5py + hdf5plugin, timing the same job as fuse3d's library (prints seconds):
  h5py_peer.py write RAW N D H W LEVEL OUT.h5   one schema_version 1 shard of the raw volumes, then
                                                fsync and sha256 (what an atomic write + manifest need)
  h5py_peer.py read DIR                         every sample of every shard-*.h5, one at a time
"""
import glob
import hashlib
import json
import os
import sys
import time

import h5py
import hdf5plugin
import numpy as np

CHANNELS = ["sagittal_t1", "sagittal_t2_stir", "axial_t2"]
CONDITIONS = ["spinal_canal_stenosis", "left_neural_foraminal_narrowing", "right_neural_foraminal_narrowing",
              "left_subarticular_stenosis", "right_subarticular_stenosis"]
COLUMNS = [f"{c}_{l}" for c in CONDITIONS for l in ["l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1"]]


def write(raw, n, shape, level, out):
    volumes = np.fromfile(raw, dtype="<f2").reshape((n, 3) + shape)
    start = time.perf_counter()
    with h5py.File(out, "w", libver=("v108", "v108")) as f:
        f.attrs["schema_version"] = np.int64(1)
        f.attrs["channels"] = CHANNELS
        f.attrs["label_columns"] = COLUMNS
        f.attrs["parameters"] = json.dumps({})
        v = f.create_dataset("volumes", shape=(0, 3) + shape, maxshape=(None, 3) + shape, dtype=np.float16,
                             chunks=(1, 1) + shape, shuffle=True, **hdf5plugin.Zstd(clevel=level))
        for i in range(n):  # one sample at a time, as a streaming writer must
            v.resize(i + 1, axis=0)
            v[i] = volumes[i]
        f["study_id"] = np.arange(n, dtype=np.int64) + 1000
        f["labels"] = np.full((n, 25), -1, dtype=np.int8)
        f["present"] = np.ones((n, 3), dtype=np.uint8)
        f["affine"] = np.tile(np.eye(4), (n, 1, 1))
        f["keypoints"] = np.full((n, 25, 3), np.nan, dtype=np.float32)
        f["norm"] = np.tile(np.array([[0, 1]] * 3, dtype=np.float32), (n, 1, 1))
    fd = os.open(out, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    with open(out, "rb") as f:
        hashlib.file_digest(f, "sha256")
    return time.perf_counter() - start


def read(folder):
    start = time.perf_counter()
    for path in sorted(glob.glob(os.path.join(folder, "shard-*.h5"))):
        with h5py.File(path, "r") as f:
            v = f["volumes"]
            for i in range(v.shape[0]):
                v[i]
    return time.perf_counter() - start


if __name__ == "__main__":
    if sys.argv[1] == "write":
        n, d, h, w, level = map(int, sys.argv[3:8])
        print(f"{write(sys.argv[2], n, (d, h, w), level, sys.argv[8]):.4f}")
    else:
        print(f"{read(sys.argv[2]):.4f}")
