"""The PyTorch peer of `fuse3d train`: the twin network (python/fuse3d/models.py) trained on the same shards,
the same split (RUN/splits.json of a fuse3d run) and the same recipe (AdamW, warm-up + cosine per step,
clipping, EMA of the weights, left-right flips with the label columns swapped, centre crop / pool), with a
PyTorch DataLoader over h5py + hdf5plugin (workers open the files lazily), as a user of this field writes it.
Prints one line per epoch (train loss, validation RSNA score, samples/s) and a JSON summary at the end.

Example:
  .venv/bin/python bench/train/twin_train.py --shards demo-out/shards --splits demo-out/run/splits.json \
      --fold 0 --epochs 40 --batch 8 --lr 0.003 --width 0.25 --crop 32 40 32 --flip 0.5 --ema 0.95 --threads 2
"""
import argparse
import glob
import json
import math
import os
import sys
import time

import h5py
import hdf5plugin  # noqa: F401  (registers the zstd filter)
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python", "fuse3d"))
from models import cumulative_link_loss, make  # noqa: E402

W = np.array([1.0, 2.0, 4.0])
# Left/right column pairs (RSNA order: spinal 0-4, left foraminal 5-9, right foraminal 10-14,
# left subarticular 15-19, right subarticular 20-24).
SWAP = list(range(5)) + list(range(10, 15)) + list(range(5, 10)) + list(range(20, 25)) + list(range(15, 20))


class Shards(Dataset):
    """The samples of the given studies, read one at a time with h5py (files opened lazily per worker)."""

    def __init__(self, folder, studies):
        self.index = []
        for path in sorted(glob.glob(os.path.join(folder, "*.h5"))):
            with h5py.File(path, "r") as f:
                ids = f["study_id"][:]
            self.index += [(path, i) for i, s in enumerate(ids) if int(s) in studies]
        self.files = {}

    def __len__(self):
        return len(self.index)

    def __getitem__(self, k):
        path, i = self.index[k]
        f = self.files.get(path) or self.files.setdefault(path, h5py.File(path, "r"))
        return torch.from_numpy(f["volumes"][i]), torch.from_numpy(f["labels"][i].astype(np.int64)), int(f["study_id"][i])


def score(probs, labels):
    """The RSNA 2024 score (Kaggle's: weighted log loss per group, any_severe_spinal, mean of four)."""
    P = np.clip(probs, 1e-15, 1)
    P = P / P.sum(-1, keepdims=True)

    def logloss(y, p, classes):
        w = W[y] if classes == 3 else np.asarray(p[1])
        if classes == 3:
            return float(-(w * np.log(p[np.arange(len(y)), y])).sum() / w.sum())
        return None

    out = {}
    for name, conds in {"spinal": [0], "foraminal": [1, 2], "subarticular": [3, 4]}.items():
        cols = [c * 5 + l for c in conds for l in range(5)]
        y, p = labels[:, cols].reshape(-1), P[:, cols].reshape(-1, 3)
        keep = y >= 0
        out[name] = logloss(y[keep], p[keep], 3)
    ys, ws, ps = [], [], []
    for s in range(len(labels)):
        y = labels[s, :5]
        keep = y >= 0
        if keep.any():
            ys.append(int((y[keep] == 2).any())); ws.append(W[y[keep]].max()); ps.append(P[s, :5, 2][keep].max())
    ys, ws, ps = np.array(ys), np.array(ws), np.clip(np.array(ps), 1e-15, 1 - 1e-15)
    out["any_severe_spinal"] = float(-(ws * (ys * np.log(ps) + (1 - ys) * np.log(1 - ps))).sum() / ws.sum())
    out["score"] = float(np.mean([out[k] for k in ["spinal", "foraminal", "subarticular", "any_severe_spinal"]]))
    return out


def prior(labels):
    """Per column: the training fold's class counts (+1, as fuse3d's trainer) times 1/2/4, normalized."""
    p = np.zeros((25, 3))
    for c in range(25):
        y = labels[:, c]
        counts = np.array([(y == k).sum() + 1 for k in range(3)]) * W
        p[c] = counts / counts.sum()
    return p


def at_output_stride(backbone, stride):
    """The twin's EfficientNet with its last downsamplings made stride 1, down to `stride` (32: unchanged)."""
    strided = [blk for blk in backbone.blocks if blk.dw_conv.stride[0] == 2]
    removed = {32: 0, 16: 1, 8: 2, 4: 3}[stride]
    for blk in strided[len(strided) - removed:]:
        blk.dw_conv.stride = (1, 1, 1)
    return backbone


def feature_map(b, x):
    """The backbone's last feature map (B, C, d, h, w), before global pooling."""
    y = torch.nn.functional.silu(b.stem_bn(b.stem_conv(x)))
    for blk in b.blocks:
        y = blk(y)
    return torch.nn.functional.silu(b.head_bn(b.head_conv(y)))


class LevelHead(torch.nn.Module):
    """Backbone at a given output stride; per level a learned softmax map over the positions pools the last feature map;
    one linear per condition, shared by the five levels, plus a bias per label column, gives the 25 logits."""

    def __init__(self, classifier, size, stride, centres):
        super().__init__()
        b = at_output_stride(classifier.backbone, stride)
        self.backbone, self.link = b, classifier.link
        cells = [-(-n // stride) for n in size]
        grid = torch.stack(torch.meshgrid(*[torch.arange(n).float() for n in cells], indexing="ij"), -1)  # (d, h, w, 3)
        maps = []
        for c in centres:  # voxel centre of a level inside the crop -> cell coordinates
            mu = torch.tensor([(x - (stride - 1) / 2) / stride for x in c])
            maps.append(-((grid - mu) ** 2).sum(-1) / 2.0)
        self.attention = torch.nn.Parameter(torch.stack(maps).flatten(1))  # (5, cells)
        self.condition = torch.nn.Linear(b.feature_count, 5)
        self.bias = torch.nn.Parameter(torch.zeros(25))

    def forward(self, x):
        b = self.backbone
        y = feature_map(b, x).flatten(2)  # (B, C, cells)
        weights = torch.softmax(self.attention, -1)  # (5 levels, cells)
        levels = torch.einsum("bcn,ln->blc", y, weights)  # (B, 5, C)
        logits = self.condition(b.dropout(levels))  # (B, 5 levels, 5 conditions)
        return self.link(logits.transpose(1, 2).reshape(x.shape[0], 25) + self.bias)


class SpatialHead(torch.nn.Module):
    """The twin's backbone at output stride 8, its last feature map reduced to C channels and flattened into the head."""

    def __init__(self, classifier, size, channels, stride):
        super().__init__()
        b = at_output_stride(classifier.backbone, stride)
        self.backbone, self.link = b, classifier.link
        cells = 1
        for n in size:
            cells *= -(-n // stride)
        self.reduce = torch.nn.Conv3d(b.feature_count, channels, 1)
        self.head = torch.nn.Linear(channels * cells, 25)

    def forward(self, x):
        b = self.backbone
        y = feature_map(b, x)
        y = b.dropout(self.reduce(y).flatten(1))
        return self.link(self.head(y))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", required=True)
    ap.add_argument("--splits", required=True, help="a fuse3d run's splits.json")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--wd", type=float, default=0.01)
    ap.add_argument("--warmup", type=float, default=1.0, help="warm-up epochs")
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--ema", type=float, default=0.0)
    ap.add_argument("--flip", type=float, default=0.0)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--crop", type=int, nargs=3)
    ap.add_argument("--pool", type=int, default=1)
    ap.add_argument("--jitter", type=int, default=0, help="training crops move by up to this many voxels per axis")
    ap.add_argument("--coords", action="store_true", help="append the voxel coordinates (d, h, w in [-1, 1]) as 3 channels")
    ap.add_argument("--spatial-head", type=int, default=0, metavar="C",
                    help="a head over the flattened last feature map (reduced to C channels) instead of global pooling")
    ap.add_argument("--output-stride", type=int, default=32, choices=[4, 8, 16, 32],
                    help="with --spatial-head: remove the backbone's last downsamplings down to this stride")
    ap.add_argument("--level-head", action="store_true",
                    help="with --output-stride: five level-attention maps (started at the training keypoints' mean) pool the "
                         "feature map into five level features, classified by one linear per condition shared across levels")
    ap.add_argument("--dropout", type=float, help="override the head dropout (b0: 0.2)")
    ap.add_argument("--stochastic-depth", type=float, help="override the final stochastic-depth rate (0.2)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (timing runs)")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    folds = json.load(open(a.splits))["folds"]
    val_ids = set(folds[a.fold])
    train_ids = set(s for i, f in enumerate(folds) if i != a.fold for s in f)
    train, val = Shards(a.shards, train_ids), Shards(a.shards, val_ids)
    with h5py.File(train.index[0][0], "r") as f:
        grid = list(f["volumes"].shape[2:])
    crop = a.crop or grid
    size = [c // a.pool for c in crop]
    centres = []
    if a.level_head:
        kps = []
        for path in sorted(set(p for p, _ in train.index)):
            with h5py.File(path, "r") as f:
                ids, k = f["study_id"][:], f["keypoints"][:]
            kps += [k[i] for i, s in enumerate(ids) if int(s) in train_ids]
        mean = np.nanmean(np.stack(kps)[:, :5], 0)  # (5 levels, 3) voxel (d, h, w)
        starts = [(g - c) // 2 for g, c in zip(grid, crop)]
        centres = [[(m - s0) / a.pool for m, s0 in zip(level, starts)] for level in mean]
        print("level centres in the model input:", np.round(centres, 1).tolist(), flush=True)

    def prepare(x, jitter=0):
        x = x.float()
        starts = [min(max(0, (g - c) // 2 + (int(torch.randint(-jitter, jitter + 1, ())) if jitter else 0)), g - c)
                  for g, c in zip(grid, crop)]
        x = x[:, :, starts[0]:starts[0] + crop[0], starts[1]:starts[1] + crop[1], starts[2]:starts[2] + crop[2]]
        x = torch.nn.functional.avg_pool3d(x, a.pool) if a.pool > 1 else x.contiguous()
        if a.coords:
            axes = [torch.linspace(-1, 1, n) for n in x.shape[2:]]
            coords = torch.stack(torch.meshgrid(*axes, indexing="ij")).unsqueeze(0).expand(x.shape[0], -1, -1, -1, -1)
            x = torch.cat([x, coords], 1)
        return x

    def build():
        m = make("efficientnet3d", None, size[0], a.width)
        if a.coords:
            from models import EfficientNet3D, OrdinalClassifier
            m = OrdinalClassifier(EfficientNet3D("b0", a.width, input_channels=6))
        if a.spatial_head:
            m = SpatialHead(m, size, a.spatial_head, a.output_stride)
        if a.level_head:
            m = LevelHead(m, size, a.output_stride, centres)
        return m

    net = build()
    ema = build() if a.ema > 0 else None
    for m in [net, ema]:
        if m is None:
            continue
        if a.dropout is not None:
            m.backbone.dropout.p = a.dropout
        if a.stochastic_depth is not None:
            blocks = m.backbone.blocks
            for i, b in enumerate(blocks):
                b.drop_path = a.stochastic_depth * i / len(blocks)
    if ema is not None:
        ema.load_state_dict(net.state_dict())
        ema.eval()
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=a.wd)
    g = torch.Generator().manual_seed(a.seed)
    loader = DataLoader(train, batch_size=a.batch, shuffle=True, drop_last=True, num_workers=a.workers,
                        persistent_workers=a.workers > 0, generator=g)
    val_loader = DataLoader(val, batch_size=a.batch, shuffle=False, num_workers=a.workers, persistent_workers=a.workers > 0)
    per_epoch = len(loader)
    total = per_epoch * a.epochs
    warmup = round(a.warmup * per_epoch)

    def lr_at(step):
        if step < warmup:
            return a.lr * (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return a.lr * 0.5 * (1 + math.cos(math.pi * t))

    train_labels = np.concatenate([y.numpy() for _, y, _ in DataLoader(train, batch_size=64)])
    base = prior(train_labels)
    step, history = 0, []
    for epoch in range(a.epochs):
        net.train()
        losses, samples, start = [], 0, time.perf_counter()
        compute = 0.0
        for x, y, _ in loader:
            c0 = time.perf_counter()
            if a.flip > 0:
                flip = torch.rand(x.shape[0]) < a.flip
                x[flip] = x[flip].flip(2)           # d runs right → left
                y[flip] = y[flip][:, SWAP]
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            opt.zero_grad(set_to_none=True)
            loss = cumulative_link_loss(net(prepare(x, a.jitter)), y)
            loss.backward()
            if a.clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), a.clip)
            opt.step()
            net.link.ascend(0.0)
            if ema is not None:
                with torch.no_grad():
                    params = dict(net.named_parameters())
                    for name, t in ema.state_dict().items():
                        if name in params:
                            t.mul_(a.ema).add_(params[name], alpha=1 - a.ema)
                        else:
                            t.copy_(net.state_dict()[name])
            losses.append(loss.item())
            samples += x.shape[0]
            step += 1
            compute += time.perf_counter() - c0
            if a.max_steps and step >= a.max_steps:
                break
        seconds = time.perf_counter() - start
        evaluated = ema if ema is not None else net
        evaluated.eval()
        probs, labels = [], []
        with torch.no_grad():
            for x, y, _ in val_loader:
                probs.append(evaluated(prepare(x)).numpy()); labels.append(y.numpy())
        probs, labels = np.concatenate(probs), np.concatenate(labels)
        s = score(probs, labels)
        b = score(np.broadcast_to(base, probs.shape).copy(), labels)
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_score": s["score"], "prior_score": b["score"],
                        "spinal": s["spinal"], "samples_per_s": samples / seconds, "epoch_seconds": seconds, "compute_seconds": compute})
        print(f"epoch {epoch + 1}: train loss {np.mean(losses):.4f} score {s['score']:.4f} (spinal {s['spinal']:.3f} foraminal "
              f"{s['foraminal']:.3f} subarticular {s['subarticular']:.3f} any_severe {s['any_severe_spinal']:.3f}) "
              f"baseline {b['score']:.4f} {samples / seconds:.1f} samples/s", flush=True)
        if a.max_steps and step >= a.max_steps:
            break
    best = min(history, key=lambda h: h["val_score"])
    print(json.dumps({"best_epoch": best["epoch"], "val_rsna_score": best["val_score"], "prior_rsna_score": best["prior_score"],
                      "ratio": best["val_score"] / best["prior_score"], "history": history}))


if __name__ == "__main__":
    main()
