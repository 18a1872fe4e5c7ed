"""The Python API against its peers, in the project's .venv (scikit-learn, hdf5plugin): run by WheelTests,
or by hand: .venv/bin/python python/tests/test_api.py

- rsna_score equals Kaggle's scoring (scikit-learn's log_loss with sample weights) on random predictions;
- the chunk-by-chunk Zstandard read (the wheel's libzstd) equals hdf5plugin's on a shard written as data-schema.md says;
- the docstring examples run.
"""
import doctest
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fuse3d  # noqa: E402
from fuse3d import data, metric  # noqa: E402


def kaggle(P, Y):
    from sklearn.metrics import log_loss

    W = np.array([1.0, 2.0, 4.0])
    out = {}
    for name, conditions in {"spinal": [0], "foraminal": [1, 2], "subarticular": [3, 4]}.items():
        cols = [c * 5 + level for c in conditions for level in range(5)]
        y, p = Y[:, cols].reshape(-1), P[:, cols, :].reshape(-1, 3)
        keep = y >= 0
        out[name] = log_loss(y[keep], p[keep], labels=[0, 1, 2], sample_weight=W[y[keep]])
    ys, ws, ps = [], [], []
    for s in range(len(Y)):
        y = Y[s, :5]
        keep = y >= 0
        if keep.any():
            ys.append(int((y[keep] == 2).any()))
            ws.append(W[y[keep]].max())
            ps.append(P[s, :5, 2][keep].max())
    out["any_severe_spinal"] = log_loss(ys, ps, labels=[0, 1], sample_weight=ws)
    out["score"] = float(np.mean([out[k] for k in metric.GROUPS]))
    return out


def test_metric_equals_scikit_learn():
    rng = np.random.default_rng(7)
    P = rng.random((40, 25, 3)) + 0.02
    P /= P.sum(axis=2, keepdims=True)
    Y = rng.integers(0, 3, (40, 25))
    Y[rng.random((40, 25)) < 0.2] = -1
    Y[3::7, :5] = -1  # studies without any spinal label
    ours, peer = fuse3d.rsna_score(P, Y), kaggle(P, Y)
    for k in ("score",) + metric.GROUPS:
        assert abs(ours[k] - peer[k]) < 1e-12, (k, ours[k], peer[k])
    assert ours["labelled_rows"] == int((Y >= 0).sum())
    prior = fuse3d.weighted_prior(Y[:20])
    with_base = fuse3d.rsna_score(P[20:], Y[20:], train_labels=Y[:20])
    assert abs(with_base["baseline"]["score"] - kaggle(np.broadcast_to(prior, (20, 25, 3)), Y[20:])["score"]) < 1e-12


def test_chunked_zstd_read_equals_hdf5plugin():
    import h5py
    import hdf5plugin

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "shard.h5")
        x = np.random.default_rng(1).random((3, 3, 8, 9, 10)).astype(np.float16)
        with h5py.File(path, "w") as f:
            f.create_dataset("volumes", data=x, chunks=(1, 1, 8, 9, 10), shuffle=True, **hdf5plugin.Zstd(clevel=1))
        with h5py.File(path, "r") as f:
            for i in range(3):
                got = data._read_chunked(f["volumes"], i)
                assert got.dtype == np.float16 and np.array_equal(got, x[i]), i


def test_docstrings():
    for module in (metric, data):
        failed, _ = doctest.testmod(module)
        assert failed == 0, module.__name__


if __name__ == "__main__":
    for name, test in sorted(globals().items()):
        if name.startswith("test_"):
            test()
            print("ok", name)
