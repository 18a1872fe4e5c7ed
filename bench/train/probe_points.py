"""Is each condition's severity visible in the stored grid at its labelled point? A linear probe: per condition, a
logistic regression (class weights 1/2/4) on six numbers per label (the mean and standard deviation of each channel in
a 3 x 5 x 5 voxel patch at the label's keypoint), fitted on the training studies of a split and scored on its held-out
studies by the weighted log loss, against the training prior. A condition the probe separates but a model does not
learn is the model's or the recipe's problem, not the data's.

Example:
  .venv/bin/python bench/train/probe_points.py --shards demo-out/shards --splits demo-out/run/splits.json --fold 0
"""
import argparse
import glob
import json
import os

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
from sklearn.linear_model import LogisticRegression

CONDITIONS = ["spinal_canal_stenosis", "left_neural_foraminal_narrowing", "right_neural_foraminal_narrowing",
              "left_subarticular_stenosis", "right_subarticular_stenosis"]
WEIGHTS = np.array([1.0, 2.0, 4.0])


def weighted_log_loss(p, y):
    w = WEIGHTS[y]
    return -(w * np.log(np.clip(p[np.arange(len(y)), y], 1e-15, 1))).sum() / w.sum()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", required=True)
    ap.add_argument("--splits", required=True, help="a fuse3d run's splits.json")
    ap.add_argument("--fold", type=int, default=0)
    a = ap.parse_args()
    held = set(json.load(open(a.splits))["folds"][a.fold])
    X, Y, T = ([[] for _ in range(5)] for _ in range(3))
    for path in sorted(glob.glob(os.path.join(a.shards, "*.h5"))):
        with h5py.File(path, "r") as f:
            ids, K, L = f["study_id"][:], f["keypoints"][:], f["labels"][:]
            for s in range(len(ids)):  # one sample at a time: memory stays one volume
                v = f["volumes"][s].astype(np.float32)
                for c in range(5):
                    for level in range(5):
                        k, y = K[s, 5 * c + level], L[s, 5 * c + level]
                        if not np.isfinite(k).all() or y < 0:
                            continue
                        d, h, w = np.round(k).astype(int)
                        patch = v[:, max(d - 1, 0):d + 2, max(h - 2, 0):h + 3, max(w - 2, 0):w + 3].reshape(3, -1)
                        X[c].append(np.concatenate([patch.mean(1), patch.std(1)]))
                        Y[c].append(int(y))
                        T[c].append(int(ids[s]) in held)
    for c, name in enumerate(CONDITIONS):
        x, y, t = np.array(X[c]), np.array(Y[c]), np.array(T[c])
        model = LogisticRegression(max_iter=2000, class_weight={0: 1, 1: 2, 2: 4}).fit(x[~t], y[~t])
        prior = np.bincount(y[~t], minlength=3) * WEIGHTS
        prior = prior / prior.sum()
        probe, base = weighted_log_loss(model.predict_proba(x[t]), y[t]), weighted_log_loss(np.tile(prior, (t.sum(), 1)), y[t])
        print(f"{name}: held-out weighted log loss {probe:.3f} (linear probe at the labelled points) against {base:.3f} "
              f"(training prior): {probe / base:.2f} x, {t.sum()} held-out labels")


if __name__ == "__main__":
    main()
