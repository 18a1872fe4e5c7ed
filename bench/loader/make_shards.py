"""Writes a schema_version 1 shard folder (shards + manifest.json) of synthetic MRI-like samples with
h5py + hdf5plugin, for the loader benchmark: bench/shards/make_volumes.py's volumes, zstd level 3.
Usage: make_shards.py OUT N SIZE PER_SHARD
"""
import hashlib
import json
import os
import sys

import h5py
import hdf5plugin
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "shards"))
from make_volumes import volume  # noqa: E402

CHANNELS = ["sagittal_t1", "sagittal_t2_stir", "axial_t2"]
CONDITIONS = ["spinal_canal_stenosis", "left_neural_foraminal_narrowing", "right_neural_foraminal_narrowing",
              "left_subarticular_stenosis", "right_subarticular_stenosis"]
COLUMNS = [f"{c}_{l}" for c in CONDITIONS for l in ["l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1"]]


def shard(path, ids, shape, rng):
    n = len(ids)
    with h5py.File(path, "w", libver=("v108", "v108")) as f:
        f.attrs["schema_version"] = np.int64(1)
        f.attrs["channels"] = CHANNELS
        f.attrs["label_columns"] = COLUMNS
        f.attrs["parameters"] = json.dumps({})
        v = f.create_dataset("volumes", shape=(n, 3) + shape, maxshape=(None, 3) + shape, dtype=np.float16,
                             chunks=(1, 1) + shape, shuffle=True, **hdf5plugin.Zstd(clevel=3))
        for i, sid in enumerate(ids):
            v[i] = volume(rng, shape, 1 if sid % 4 == 3 else -1)
        f["study_id"] = np.array(ids, dtype=np.int64)
        f["labels"] = rng.integers(-1, 3, size=(n, 25)).astype(np.int8)
        f["present"] = np.array([[1, 0 if s % 4 == 3 else 1, 1] for s in ids], dtype=np.uint8)
        f["affine"] = np.tile(np.eye(4), (n, 1, 1))
        f["keypoints"] = (rng.random((n, 25, 3)) * shape[0]).astype(np.float32)
        f["norm"] = np.tile(np.array([[0, 1]] * 3, dtype=np.float32), (n, 1, 1))


if __name__ == "__main__":
    out, n, size, per = sys.argv[1], *map(int, sys.argv[2:5])
    shape = (size, size, size)
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(1234)
    entries = []
    for k, first in enumerate(range(0, n, per)):
        ids = list(range(first, min(first + per, n)))
        name = f"shard-{k:05d}.h5"
        path = os.path.join(out, name)
        shard(path, ids, shape, rng)
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        entries.append({"bytes": os.path.getsize(path), "file": name, "samples": len(ids), "sha256": digest, "studies": ids})
    manifest = {"channels": CHANNELS, "label_columns": COLUMNS, "parameters": {}, "samples": n, "schema_version": 1,
                "shape": list(shape), "shards": entries, "zstd_level": 3}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        f.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
