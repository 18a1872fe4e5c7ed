"""Writes N synthetic MRI-like grids (N, 3, D, H, W) float16 as raw little-endian bytes.

Smooth structure inside an elliptical body, Rician-like noise everywhere, one series missing
(a zero channel) in every fourth study, values in [0, 1]. Usage: make_volumes.py OUT N D H W
"""
import sys

import numpy as np
from scipy import ndimage


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


if __name__ == "__main__":
    out, n, d, h, w = sys.argv[1], *map(int, sys.argv[2:6])
    rng = np.random.default_rng(1234)
    with open(out, "wb") as f:
        for i in range(n):
            volume(rng, (d, h, w), 1 if i % 4 == 3 else -1).astype("<f2").tofile(f)
