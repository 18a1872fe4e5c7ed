"""Diagnostic for docs/learning-on-the-phantom.md: does the phantom's grading become learnable once the model is told
WHERE the five lumbar levels are? Cuts one small crop (3 channels) per level from each fused grid and classifies the
five crops with one small shared 3-D CNN: one linear per condition shared by the levels, a bias per label column, the
LogisticCumulativeLink heads and the class-weighted loss of fuse3d's trainer; scored with the RSNA 2024 metric against
the weighted-prior baseline on fold 0 of a fuse3d run's split.

  --where oracle   crops centred on each study's own spinal keypoints (the labels' coordinates: an upper bound)
  --where atlas    crops centred on the training studies' MEAN keypoint per level (no per-study localisation; what
                   a model could do at predict time on this phantom, where levels move by ~1.4 voxels)

Example:
  .venv/bin/python bench/train/level_crops.py --shards demo-out/shards --splits demo-out/run/splits.json --where atlas
"""
import argparse
import glob
import json
import os
import sys

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python", "fuse3d"))
sys.path.insert(0, HERE)
from models import LogisticCumulativeLink, cumulative_link_loss  # noqa: E402
from twin_train import prior, score  # noqa: E402


class LevelCropNet(torch.nn.Module):
    """(B, 5 levels, C, D, H, W) crops → (B, 25, 3) ordinal probabilities; the CNN and per-condition linears are
    shared by the levels."""

    def __init__(self, channels=3):
        super().__init__()

        def block(i, o):
            return torch.nn.Sequential(torch.nn.Conv3d(i, o, 3, padding=1), torch.nn.BatchNorm3d(o), torch.nn.SiLU())

        self.features = torch.nn.Sequential(block(channels, 16), block(16, 16), torch.nn.MaxPool3d(2), block(16, 32),
                                            block(32, 32), torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten())
        self.condition = torch.nn.Linear(32, 5)
        self.bias = torch.nn.Parameter(torch.zeros(25))
        self.link = LogisticCumulativeLink(25, 3)

    def forward(self, x):
        b = x.shape[0]
        z = self.condition(self.features(x.flatten(0, 1))).view(b, 5, 5)  # (B, level, condition)
        return self.link(z.transpose(1, 2).reshape(b, 25) + self.bias)  # condition-major columns, as train.csv


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", required=True)
    ap.add_argument("--splits", required=True)
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--where", choices=["oracle", "atlas"], default="atlas")
    ap.add_argument("--crop", type=int, nargs=3, default=[16, 12, 12], help="D H W voxels around each level")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    torch.set_num_threads(a.threads)

    held_out = set(json.load(open(a.splits))["folds"][a.fold])
    volumes, labels, keypoints, ids = [], [], [], []
    for path in sorted(glob.glob(os.path.join(a.shards, "*.h5"))):
        with h5py.File(path, "r") as f:
            volumes.append(f["volumes"][:]); labels.append(f["labels"][:].astype(np.int64))
            keypoints.append(f["keypoints"][:]); ids.append(f["study_id"][:])
    V, L, K = np.concatenate(volumes), np.concatenate(labels), np.concatenate(keypoints)
    val = np.array([int(s) in held_out for s in np.concatenate(ids)])
    atlas = np.nanmean(K[~val, :5], 0)  # (5 levels, 3): training studies only
    D, H, W = a.crop
    crops = np.zeros((len(V), 5, V.shape[1], D, H, W), np.float32)
    for i in range(len(V)):
        for level in range(5):
            own = K[i, level]
            centre = own if a.where == "oracle" and not np.isnan(own).any() else atlas[level]
            lo = [int(round(c)) - n // 2 for c, n in zip(centre, (D, H, W))]
            lo = [min(max(0, x), g - n) for x, g, n in zip(lo, V.shape[2:], (D, H, W))]
            crops[i, level] = V[i, :, lo[0]:lo[0] + D, lo[1]:lo[1] + H, lo[2]:lo[2] + W]
    X, Y = torch.from_numpy(crops), torch.from_numpy(L)
    net = LevelCropNet(V.shape[1])
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=0.01)
    train = np.where(~val)[0]
    base = prior(L[~val])
    best = None
    for epoch in range(a.epochs):
        net.train()
        np.random.shuffle(train)
        losses = []
        for k in range(0, len(train) - 7, 8):
            batch = train[k:k + 8]
            opt.zero_grad()
            loss = cumulative_link_loss(net(X[batch]), Y[batch])
            loss.backward()
            opt.step()
            net.link.ascend()
            losses.append(loss.item())
        net.eval()
        with torch.no_grad():
            p = net(X[torch.from_numpy(val)]).numpy()
        s, b = score(p, L[val]), score(np.broadcast_to(base, p.shape).copy(), L[val])
        best = min(best or (9, 0, 0), (s["score"], epoch + 1, b["score"]))
        print(f"epoch {epoch + 1}: train loss {np.mean(losses):.3f} held-out {s['score']:.4f} (spinal {s['spinal']:.3f} "
              f"foraminal {s['foraminal']:.3f} subarticular {s['subarticular']:.3f} any_severe {s['any_severe_spinal']:.3f}) "
              f"baseline {b['score']:.4f} ratio {s['score'] / b['score']:.3f}", flush=True)
    print(json.dumps({"where": a.where, "best_score": best[0], "best_epoch": best[1], "baseline": best[2], "ratio": best[0] / best[2]}))


if __name__ == "__main__":
    main()
