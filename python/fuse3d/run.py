"""A ``fuse3d train`` run folder read back as PyTorch modules: every finished fold's best weights in the
PyTorch twin of the model it trained (``fuse3d.models``, parity-tested against the Swift models).

A run folder holds ``config.yaml`` (the resolved configuration), ``source.json`` (the shards and their grid),
``splits.json``, ``summary.json`` and ``fold-I/best.safetensors`` (tensors under the PyTorch names).
"""
import json
import os
import struct

import numpy as np


def _scalar(text):
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [_scalar(x) for x in inner.split(",")] if inner else []
    if text in ("true", "false"):
        return text == "true"
    if text in ("null", "~", ""):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip("'\"")


def read_config(path):
    """Reads the resolved ``config.yaml`` a run writes (``key: value`` lines and one level of indented blocks;
    not a general YAML reader)."""
    root, block = {}, None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
            if not line.strip():
                continue
            key, _, value = line.strip().partition(":")
            if line.startswith((" ", "\t")) and block is not None:
                block[key] = _scalar(value)
            elif value.strip():
                root[key], block = _scalar(value), None
            else:
                block = root[key] = {}
    return root


_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
           "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path):
    """name -> torch tensor of a safetensors file (no dependency on the safetensors package)."""
    import torch

    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        raw = data[8 + n + start:8 + n + end]
        if entry["dtype"] == "BF16":
            t = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16) if raw else torch.empty(0, dtype=torch.bfloat16)
        else:
            t = torch.from_numpy(np.frombuffer(raw, dtype=_DTYPES[entry["dtype"]]).copy())
        out[name] = t.reshape(entry["shape"])
    return out


def source_crop_settings(config):
    """(slices, size, millimetres) of the stage-two crops a run's two-stage model cuts from the source slices, or None
    when it cuts them from the grid. As fuse3d's run folder reads config.yaml: a ``two_stage:`` block without
    ``source_crops:`` is a run from before source crops (false); source crops need condition crops
    (TwoStageConfig.readsSourcePixels); the other keys default to 5 slices of 24² pixels of 1 mm, the condition groups
    read from their slices as fuse3d's default says (the recesses). Returns (slices, size, millimetres, reach, fallback
    spacing, groups)."""
    two = config.get("two_stage")
    if not isinstance(two, dict) or not two.get("source_crops", False) or not two.get("condition_crops", False):
        return None
    names = ["spinal", "foraminal", "subarticular"]
    groups = two.get("source_crop_groups", ["subarticular"])  # fuse3d's default
    if not isinstance(groups, list) or not set(groups) <= set(names):
        raise ValueError(f"config.yaml: two_stage.source_crop_groups must list some of {names}, not {groups!r}")
    return (int(two.get("source_slices", 5)), int(two.get("source_crop_size", 24)), float(two.get("source_crop_mm", 1.0)),
            8.0, 4.0, tuple(names.index(g) for g in groups))


def model_arguments(config, grid):
    """The arguments of ``fuse3d.models.make`` for a run's configuration and its shards' grid (D, H, W), as
    Swift's TrainingConfig.modelSpec(gridSize:) resolves them; with source crops (`source_crop_settings`) the
    two_stage tuple's eighth entry is a ``fuse3d.models.SourceCrops``."""
    model = config.get("model", "efficientnet3d")
    variant = config.get("variant")
    width = config.get("width")
    if width is None and variant is None and model == "efficientnet3d":
        width = 0.25
    crop = config.get("input_crop") or list(grid)
    pool = int(config.get("input_pool", 1))
    size = [c // pool for c in crop]
    two = config.get("two_stage")
    two_stage = None
    if isinstance(two, dict):
        two_stage = (two["crop"], float(two.get("crop_scale", 1.0)), int(two.get("localizer_width", 8)),
                     two.get("localizer_pool", [4, 2, 2]), float(two["side_shift"]) if two.get("side_crops") else None,
                     bool(two.get("condition_crops", False)), bool(two.get("condition_points", False)))
        if two.get("side_crops") and "side_shift" not in two:
            raise ValueError("side_crops without side_shift in config.yaml")
        crops = source_crop_settings(config)
        if crops is not None:
            from .models import SourceCrops

            two_stage += (SourceCrops(*crops),)
    return dict(model=model, variant=variant, size=size[0], width=width, level_crop=config.get("level_crops"),
                two_stage=two_stage), size, config.get("input_crop"), pool


class Run:
    """A trained run: ``models`` (one ``torch.nn.Module`` per finished fold, eval mode, best weights), ``folds``
    (their indices), ``config`` (config.yaml as a dict), ``summary``, ``split`` (:class:`fuse3d.FoldSplit`),
    ``shards`` (the folder it trained on) and ``grid`` (D, H, W).

    Call it on a batch of images (B, 3, D, H, W) for the fold models' mean probabilities (B, 25, 3);
    ``run.input(images)`` applies the configuration's input crop and pooling, as ``fuse3d predict`` does.
    A run whose two-stage model cuts its crops from the source slices (``needs_sources``; the default model,
    ``two_stage.source_crops``) also needs the batch's source slices: ``run(batch["image"], batch["sources"])``
    with a batch of :func:`fuse3d.collate` over a :class:`fuse3d.ShardDataset` (``run.sources(...)`` makes them what
    the models take, for calling one fold's model). Its probabilities depend a little on how the samples are batched
    (the slices are padded per batch, as in fuse3d); to reproduce ``fuse3d train``'s validation scores, batch the
    validation samples in their order by the run's ``batch_size``.
    """

    def __init__(self, path, device="cpu"):
        import torch

        from . import models as twins
        from .data import FoldSplit

        self.path = os.fspath(path)
        for name in ("config.yaml", "source.json"):
            if not os.path.isfile(os.path.join(self.path, name)):
                raise FileNotFoundError(f"{self.path}: no {name} (a run folder is what `fuse3d train --out` writes)")
        self.config = read_config(os.path.join(self.path, "config.yaml"))
        with open(os.path.join(self.path, "source.json"), encoding="utf-8") as f:
            source = json.load(f)
        self.shards, self.grid = source["shards"], list(source["shape"])
        summary_path = os.path.join(self.path, "summary.json")
        self.summary = json.load(open(summary_path, encoding="utf-8")) if os.path.isfile(summary_path) else {}
        split_path = os.path.join(self.path, "splits.json")
        self.split = FoldSplit.load(split_path) if os.path.isfile(split_path) else None
        kwargs, self.input_size, self.input_crop, self.input_pool = model_arguments(self.config, self.grid)
        self.folds = sorted(int(n[5:]) for n in os.listdir(self.path)
                            if n.startswith("fold-") and n[5:].isdigit()
                            and os.path.isfile(os.path.join(self.path, n, "best.safetensors")))
        if not self.folds:
            raise FileNotFoundError(f"{self.path}: no fold-I/best.safetensors; no fold has finished an epoch")
        self.models = []
        for fold in self.folds:
            net = twins.make(**kwargs)
            state = read_safetensors(os.path.join(self.path, f"fold-{fold}", "best.safetensors"))
            net.load_state_dict({k: v for k, v in state.items() if "/" not in k}, strict=True)
            self.models.append(net.to(device).eval())
        self.device = torch.device(device)
        self.source_crops = source_crop_settings(self.config)

    @property
    def needs_sources(self):
        """Whether the models cut their stage-two crops from the source slices, so take ``sources``."""
        return self.source_crops is not None

    def sources(self, sources, batch=None):
        """A batch's sources (the dict :func:`fuse3d.collate` makes, or a ``fuse3d.models.SourceBatch``) as the models
        take them: a ``SourceBatch`` on the run's device; `batch` the image batch size it must hold."""
        from . import models as twins

        if isinstance(sources, dict):
            missing = [k for k in ("pixels", "geometry", "valid", "voxel_mm") if k not in sources]
            if missing:
                raise ValueError(f"sources lack {missing}: pass the 'sources' of a fuse3d.collate batch")
            sources = twins.SourceBatch(sources["pixels"], sources["geometry"], sources["valid"], sources["voxel_mm"])
        if not all(hasattr(sources, k) for k in ("pixels", "geometry", "valid", "voxel_mm")):
            raise TypeError(f"sources must be a fuse3d.collate batch's 'sources' dict or a SourceBatch, not {type(sources).__name__}")
        import torch

        def to(t):
            return torch.as_tensor(t).to(self.device)

        out = twins.SourceBatch([to(t) for t in sources.pixels], [to(t) for t in sources.geometry],
                                [to(t) for t in sources.valid], to(sources.voxel_mm))
        if len(out.pixels) != 3 or len(out.geometry) != 3 or len(out.valid) != 3:
            raise ValueError("sources hold one entry per channel (3) in pixels, geometry and valid")
        if batch is not None and out.voxel_mm.reshape(-1).shape[0] != batch:
            raise ValueError(f"sources hold {out.voxel_mm.reshape(-1).shape[0]} samples, the images {batch}")
        return out

    def input(self, images):
        """Images (B, 3, D, H, W) as the models take them: float32, centre-cropped by input_crop, average-pooled by
        input_pool."""
        import torch.nn.functional as F

        x = images.to(self.device).float()
        if self.input_crop:
            for axis, c in enumerate(self.input_crop):
                n = x.shape[2 + axis]
                if n > c:
                    x = x.narrow(2 + axis, (n - c) // 2, c)
        if self.input_pool > 1:
            x = F.avg_pool3d(x, self.input_pool)
        return x.contiguous()

    def __call__(self, images, sources=None):
        """The fold models' mean probabilities (B, 25, 3) for images (B, 3, D, H, W) and, for a run that
        ``needs_sources``, the batch's source slices (``fuse3d.collate``'s ``batch["sources"]``)."""
        import torch

        if self.needs_sources and sources is None:
            raise ValueError(f"{self.path}: this run's two-stage model cuts its stage-two crops from the source slices "
                             "(two_stage.source_crops): call run(batch['image'], batch['sources']) with a batch of "
                             "fuse3d.collate over a fuse3d.ShardDataset of the shards")
        with torch.no_grad():
            x = self.input(images)
            if not self.needs_sources:
                return torch.stack([m(x) for m in self.models]).mean(0)
            s = self.sources(sources, batch=x.shape[0])
            return torch.stack([m(x, s) for m in self.models]).mean(0)

    def __repr__(self):
        return f"Run({self.path!r}: {self.config.get('model')}, folds {self.folds}, grid {self.grid})"


def load_run(path, device="cpu"):
    """Loads a ``fuse3d train`` run folder: the trained models as ``torch.nn.Module`` with their weights.

    >>> import fuse3d, torch
    >>> run = fuse3d.load_run("run")                                            # doctest: +SKIP
    >>> run.models[0]                                # fold 0's best model        # doctest: +SKIP
    OrdinalClassifier(...)
    >>> val = fuse3d.ShardDataset(run.shards, fold=0, split="val", run="run")   # doctest: +SKIP
    >>> x = torch.stack([val[i]["image"] for i in range(len(val))])             # doctest: +SKIP
    >>> probs = run.models[0](run.input(x))          # (N, 25, 3)                # doctest: +SKIP

    A run of the default two-stage model (source crops) also takes each batch's source slices:

    >>> loader = torch.utils.data.DataLoader(val, batch_size=2, collate_fn=fuse3d.collate)  # doctest: +SKIP
    >>> probs = torch.cat([run(b["image"], b["sources"]) for b in loader])       # doctest: +SKIP
    """
    return Run(path, device=device)
