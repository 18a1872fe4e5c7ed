"""Does each stage of the two-stage model learn on a demo-sized cohort? The PyTorch twins of fuse3d's models
(python/fuse3d/models.py: TwoStageBackbone, its LevelLocalizer and PointCrops, under the ordinal heads) trained jointly on shards: the localizer on
the grid average-pooled by --pool, supervised by the shards' spinal-canal keypoints (L1 in voxels, masked where
NaN); the classifier on crops resampled around the labels' points with a uniform jitter of ±--jitter voxels.
Held out: the localizer's error in mm (median, p90, per level) against an atlas (the training studies' mean
point), and the RSNA score of crops cut at the localizer's predictions, against the weighted-prior baseline.

Example:
  .venv/bin/python bench/train/two_stage.py --shards /tmp/ts/shards --epochs 20
"""
import argparse
import glob
import json
import os
import sys
import time

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python", "fuse3d"))
sys.path.insert(0, HERE)
from models import cumulative_link_loss, heatmap_loss, make  # noqa: E402
from twin_train import prior, score  # noqa: E402


def errors_mm(pred, true, spacing):
    """Per study and level: Euclidean distance in mm (NaN where the truth is absent)."""
    return np.linalg.norm(pred - true, axis=-1) * spacing[:, None]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", required=True)
    ap.add_argument("--splits", help="a fuse3d run's splits.json (default: every fourth study held out)")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--pool", type=int, nargs=3, default=[4, 2, 2], help="the localizer's input: the grid average-pooled by these (d, h, w)")
    ap.add_argument("--crop", type=int, nargs=3, default=[16, 24, 20])
    ap.add_argument("--scale", type=float, default=1.0, help="stored voxels per crop voxel")
    ap.add_argument("--jitter", type=float, default=2.0, help="uniform crop-centre jitter in training (stored voxels)")
    ap.add_argument("--loc-weight", type=float, default=0.1)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--heatmap-sigma", type=float, default=1.0, help="the heatmap loss's Gaussian (cells); 0: coordinates only")
    ap.add_argument("--stage", choices=["both", "localizer"], default="both")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    torch.set_num_threads(a.threads)

    V, L, K, ids, spacing = [], [], [], [], []
    for path in sorted(glob.glob(os.path.join(a.shards, "*.h5"))):
        with h5py.File(path, "r") as f:
            V.append(f["volumes"][:]); L.append(f["labels"][:].astype(np.int64)); K.append(f["keypoints"][:, :5])
            ids.append(f["study_id"][:]); spacing.append(np.linalg.norm(f["affine"][:, :3, 0], axis=-1))
    V, L, K, ids, spacing = map(np.concatenate, (V, L, K, ids, spacing))
    if a.splits:
        held = set(json.load(open(a.splits))["folds"][a.fold])
        val = np.array([int(s) in held for s in ids])
    else:
        val = np.arange(len(ids)) % 4 == a.fold
    train = np.where(~val)[0]
    print(f"{len(ids)} studies, grid {V.shape[2:]}, {len(train)} trained, {val.sum()} held out, spacing {spacing.mean():.2f} mm", flush=True)
    atlas = np.nanmean(K[train], 0)
    atlas_err = errors_mm(np.broadcast_to(atlas, K[val].shape), K[val], spacing[val])
    print(f"atlas error held out: median {np.nanmedian(atlas_err):.2f} mm, p90 {np.nanpercentile(atlas_err, 90):.2f} mm", flush=True)

    X = torch.from_numpy(V)  # float16, converted per batch
    Y, P = torch.from_numpy(L), torch.from_numpy(K)
    net = make("efficientnet3d", "b0", width=0.25, two_stage=(a.crop, a.scale, a.width, a.pool))
    backbone = net.backbone
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=0.01)
    base = prior(L[~val])
    steps = a.epochs * (len(train) // a.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=steps, pct_start=1 / a.epochs, anneal_strategy="cos")
    for epoch in range(a.epochs):
        net.train()
        rng.shuffle(train)
        t0, losses = time.time(), []
        for k in range(0, len(train) - a.batch + 1, a.batch):
            b = train[k:k + a.batch]
            x = X[b].float()
            opt.zero_grad()
            truth = P[b]
            known = torch.isfinite(truth)
            if a.stage == "both":
                backbone.guide = truth + (torch.rand_like(truth) * 2 - 1) * a.jitter
                cls = cumulative_link_loss(net(x), Y[b])
                backbone.guide = None
                points, heat = backbone.located[:, :5], backbone.heat
            else:
                heat, points = backbone.locate_with_heatmaps(x)
            loc = (points - torch.nan_to_num(truth)).abs()[known].mean()
            if a.heatmap_sigma > 0:
                loc = loc + heatmap_loss(heat, truth, list(x.shape[2:]), a.heatmap_sigma)
            loss = a.loc_weight * loc + (cls if a.stage == "both" else 0)
            loss.backward()
            opt.step(); sched.step()
            net.link.ascend()
            losses.append((loc.item(), cls.item() if a.stage == "both" else 0))
        net.eval()
        preds, probs = [], []
        with torch.no_grad():
            for k in range(0, int(val.sum()), a.batch):
                b = np.where(val)[0][k:k + a.batch]
                x = X[b].float()
                p, pts = (net(x), backbone.located[:, :5]) if a.stage == "both" else (None, backbone.locate(x))
                preds.append(pts.numpy())
                if p is not None:
                    probs.append(p.numpy())
        err = errors_mm(np.concatenate(preds), K[val], spacing[val])
        line = (f"epoch {epoch + 1}: loc loss {np.mean([l for l, _ in losses]):.3f} cls loss {np.mean([c for _, c in losses]):.3f} "
                f"held-out error median {np.nanmedian(err):.2f} mm p90 {np.nanpercentile(err, 90):.2f} mm per level "
                + " ".join(f"{np.nanmedian(err[:, l]):.1f}" for l in range(5)))
        if probs:
            p = np.concatenate(probs)
            s, bs = score(p, L[val]), score(np.broadcast_to(base, p.shape).copy(), L[val])
            line += (f" | score {s['score']:.4f} baseline {bs['score']:.4f} ratio {s['score'] / bs['score']:.3f} "
                     f"(spinal {s['spinal'] / bs['spinal']:.2f} foraminal {s['foraminal'] / bs['foraminal']:.2f} "
                     f"subarticular {s['subarticular'] / bs['subarticular']:.2f} any_severe {s['any_severe_spinal'] / bs['any_severe_spinal']:.2f})")
        print(line + f" [{time.time() - t0:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
