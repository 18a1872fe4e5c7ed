"""Writes benchmark shard folders (schema_version 1) at several zstd levels with h5py + hdf5plugin.

Synthetic MRI-like grids: smooth anatomy-scale structure inside an elliptical body, Rician-like
noise, an empty background, one series missing in every fourth study (a zero channel), float16
in [0, 1]. Usage: make_shards.py OUT_DIR SAMPLES D H W LEVEL [LEVEL ...]
"""
import hashlib
import json
import os
import sys

import h5py
import hdf5plugin
import numpy as np
from scipy import ndimage

CHANNELS = ["sagittal_t1", "sagittal_t2_stir", "axial_t2"]
CONDITIONS = ["spinal_canal_stenosis", "left_neural_foraminal_narrowing", "right_neural_foraminal_narrowing",
              "left_subarticular_stenosis", "right_subarticular_stenosis"]
COLUMNS = [f"{c}_{l}" for c in CONDITIONS for l in ["l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1"]]


def volume(rng, shape, missing):
    d, h, w = shape
    z, y, x = np.meshgrid(np.linspace(-1, 1, d), np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    body = (z / 0.9) ** 2 + (y / 0.95) ** 2 + (x / 0.7) ** 2 < 1
    out = np.zeros((3, d, h, w), dtype=np.float16)
    for c in range(3):
        if c == missing:
            continue
        tissue = ndimage.gaussian_filter(rng.standard_normal((d, h, w)).astype(np.float32), sigma=(1.5, 4, 4))
        tissue = 0.45 + 0.25 * tissue / (tissue.std() + 1e-6)
        noise = 0.03 * np.hypot(rng.standard_normal((d, h, w)), rng.standard_normal((d, h, w)))
        out[c] = np.clip(np.where(body, tissue, 0.0) + noise, 0, 1).astype(np.float16)
    return out


def write_folder(folder, samples, shape, level):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(1234)
    path = os.path.join(folder, "shard-00000.h5")
    with h5py.File(path, "w", libver=("v108", "v108"), track_order=False) as f:
        f.attrs["schema_version"] = np.int64(1)
        f.attrs["channels"] = CHANNELS
        f.attrs["label_columns"] = COLUMNS
        f.attrs["parameters"] = json.dumps({"bench": "synthetic"})
        v = f.create_dataset("volumes", shape=(samples, 3) + shape, maxshape=(None, 3) + shape, dtype=np.float16,
                             chunks=(1, 1) + shape, shuffle=True, **hdf5plugin.Zstd(clevel=level))
        present = np.ones((samples, 3), dtype=np.uint8)
        for i in range(samples):
            missing = 1 if i % 4 == 3 else -1
            v[i] = volume(rng, shape, missing)
            if missing >= 0:
                present[i, missing] = 0
        f["study_id"] = np.arange(samples, dtype=np.int64) + 1000
        f["labels"] = rng.integers(-1, 3, size=(samples, 25)).astype(np.int8)
        f["present"] = present
        f["affine"] = np.tile(np.eye(4), (samples, 1, 1))
        f["keypoints"] = np.full((samples, 25, 3), np.nan, dtype=np.float32)
        f["norm"] = np.tile(np.array([[0, 1]] * 3, dtype=np.float32), (samples, 1, 1))
    data = open(path, "rb").read()
    manifest = {
        "schema_version": 1, "shape": list(shape), "channels": CHANNELS, "label_columns": COLUMNS,
        "zstd_level": level, "parameters": {"bench": "synthetic"}, "samples": samples,
        "shards": [{"file": "shard-00000.h5", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                    "samples": samples, "studies": list(range(1000, 1000 + samples))}],
    }
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    out, samples, d, h, w = sys.argv[1], *map(int, sys.argv[2:6])
    for level in map(int, sys.argv[6:]):
        write_folder(os.path.join(out, f"level{level}"), samples, (d, h, w), level)
