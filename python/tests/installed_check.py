"""Run by scripts/test-wheel.sh with the python of a fresh venv the wheel was installed into, from an empty folder:
checks the `fuse3d` on PATH and the Python API as a user gets them, not the repository's copy.

    installed_check.py WORK [--torch]
"""
import json
import math
import os
import shutil
import subprocess
import sys

work = sys.argv[1]
with_torch = "--torch" in sys.argv[2:]
os.chdir(work)

import fuse3d  # noqa: E402

venv = sys.prefix
assert os.path.realpath(fuse3d.__file__).startswith(os.path.realpath(venv)), f"fuse3d imported from {fuse3d.__file__}, not {venv}"
assert "torch" not in sys.modules, "import fuse3d imported torch"
exe = shutil.which("fuse3d")
assert exe and os.path.realpath(exe).startswith(os.path.realpath(venv)), f"fuse3d on PATH is {exe}"
print("fuse3d", fuse3d.__version__, "from", os.path.dirname(fuse3d.__file__), "; console script", exe)


def sh(*args, **kw):
    r = subprocess.run(["fuse3d", *args], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"fuse3d {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


# The binary resolves every library from the wheel or glibc's system ones, never from a build tree.
ldd = subprocess.run(["ldd", fuse3d.binary()], capture_output=True, text=True).stdout
assert "not found" not in ldd, ldd
for line in ldd.splitlines():
    if "=>" in line and "/_bin/lib/" not in line:
        name = line.split()[0]
        assert name.startswith(("libc.so", "libm.so", "libstdc++", "libgcc_s", "libresolv", "libdl", "libpthread", "librt")), line

sh("synth", "--studies", "6", "--out", "cohort", "--seed", "5", "--sagittal-matrix", "64", "--axial-matrix", "64")
sh("ingest", "cohort", "--out", "shards", "--size", "16")
v = sh("verify", "shards")
print("synth, ingest, verify from PATH: ok;", v.stdout.strip().splitlines()[-1] if v.stdout.strip() else "")
r = fuse3d.cli("inspect", "shards", capture=True)
assert r.returncode == 0

# The metric against known values: uniform guesses, all labels normal/mild -> (3 ln 3 + ln 1.5) / 4.
import numpy as np  # noqa: E402

s = fuse3d.rsna_score(np.full((3, 25, 3), 1 / 3), np.zeros((3, 25), dtype=int))
assert abs(s["score"] - (3 * math.log(3) + math.log(1.5)) / 4) < 1e-12, s["score"]
s = fuse3d.rsna_score(np.full((1, 25, 3), 1 / 3), np.zeros((1, 25), dtype=int), train_labels=np.zeros((4, 25), dtype=int))
# prior per column: counts (5, 1, 1) * (1, 2, 4) -> (5, 2, 4) / 11; every label 0
expect = (3 * -math.log(5 / 11) + -math.log(1 - 4 / 11)) / 4
assert abs(s["baseline"]["score"] - expect) < 1e-12, (s["baseline"]["score"], expect)
print("rsna_score: known values ok")

ds = fuse3d.ShardDataset("shards")
assert len(ds) == 6, len(ds)
sample = ds[0]
assert tuple(sample["image"].shape) == (3, 16, 16, 16) and sample["labels"].shape[0] == 25
train, val = fuse3d.ShardDataset("shards", fold=0, split="train", folds=2), fuse3d.ShardDataset("shards", fold=0, split="val", folds=2)
assert len(train) + len(val) == 6 and not set(train.study_ids) & set(val.study_ids)
print("ShardDataset: ok,", ds, train, val)

# Schema-2 shards keep each study's source slices (read here without hdf5plugin: libzstd decodes their chunks);
# fuse3d.collate pads them into the batch the default two-stage model takes.
assert ds.sources, "fuse3d ingest wrote no source slices (schema 2 keeps them by default)"
counts = [sum(len(s) for s in ds[i]["sources"]["geometry"]) for i in range(len(ds))]
assert all(n > 0 for n in counts), counts
batch = fuse3d.collate([ds[0], ds[1]])
src = batch["sources"]
assert len(src["pixels"]) == 3 and tuple(src["voxel_mm"].shape) == (2,), src["voxel_mm"]
for c in range(3):
    b_, s_, r_, w_ = src["pixels"][c].shape
    assert b_ == 2 and tuple(src["geometry"][c].shape) == (2, s_, 12) and tuple(src["valid"][c].shape) == (2, s_)
print("source slices: ok, per sample", counts, "; collated pixels", [tuple(p.shape) for p in src["pixels"]])

if not with_torch:
    # Without torch: samples are numpy arrays, and training says what is missing instead of crashing.
    assert isinstance(sample["image"], np.ndarray) and isinstance(src["pixels"][0], np.ndarray)
    r = subprocess.run(["fuse3d", "train", "shards", "--out", "run", "--epochs", "1"], capture_output=True, text=True)
    assert r.returncode != 0 and "libtorch" in (r.stdout + r.stderr), r.stdout + r.stderr
    print("without torch: train refuses with", (r.stderr.strip().splitlines() or [""])[-1][:160])
    sys.exit(0)

import torch  # noqa: E402

loader = torch.utils.data.DataLoader(train, batch_size=2, shuffle=True, num_workers=2, collate_fn=fuse3d.collate)
seen = []
for batch in loader:
    assert batch["image"].shape[1:] == (3, 16, 16, 16) and batch["image"].dtype == torch.float32
    assert batch["sources"]["pixels"][0].dtype == torch.float16 and batch["sources"]["valid"][0].shape[0] == len(batch["image"])
    seen += batch["study_id"].tolist()
assert sorted(seen) == sorted(train.study_ids), (seen, train.study_ids)
print("DataLoader with 2 workers: ok,", len(seen), "samples")

with open("cfg.yaml", "w") as f:
    f.write("width: 0.25\nfolds: 2\nepochs: 1\nbatch_size: 2\nthreads: 1\nloader:\n  threads: 1\n")
t = sh("train", "shards", "--out", "run", "--config", "cfg.yaml")
print("fuse3d train through the bridge for torch", torch.__version__, ": ok")
v = sh("version").stdout
assert "libtorch" in v and "not available" not in v, v

run = fuse3d.load_run("run")
assert isinstance(run.models[0], torch.nn.Module)
assert run.split.folds == json.load(open("run/splits.json"))["folds"]
# The default two-stage model cuts its stage-two crops from the source slices: it takes each batch's sources, batched
# as the trainer validates (the fold's validation studies in order, batch_size at a time: the slices are padded per batch).
assert run.needs_sources, run.config.get("two_stage")
try:
    run(torch.stack([val[0]["image"]]))
    raise AssertionError("a run of source crops ran without sources")
except ValueError as e:
    assert "fuse3d.collate" in str(e), e
for fold in run.folds:
    val = fuse3d.ShardDataset("shards", fold=fold, split="val", run="run")
    tr = fuse3d.ShardDataset("shards", fold=fold, split="train", run="run")
    assert val.split.folds == fuse3d.ShardDataset("shards", fold=fold, split="val", folds=2, seed=0).split.folds
    batches = torch.utils.data.DataLoader(val, batch_size=int(run.config["batch_size"]), shuffle=False,
                                          collate_fn=fuse3d.collate)
    parts, from_slices = [], 0
    with torch.no_grad():
        for b in batches:
            parts.append(run.models[fold](run.input(b["image"]), run.sources(b["sources"], batch=len(b["image"]))))
            from_slices += int(run.models[fold].backbone.from_slices.sum())
    p = torch.cat(parts)
    print(f"fold {fold}: {from_slices} of {25 * len(val)} stage-two crops cut from the source slices")
    s = fuse3d.rsna_score(p.numpy(), val.labels(), train_labels=tr.labels())
    result = json.load(open(f"run/fold-{fold}/result.json"))
    assert abs(s["score"] - result["val_rsna_score"]) < 1e-6, (s["score"], result["val_rsna_score"])
    assert abs(s["baseline"]["score"] - result["prior_rsna_score"]) < 1e-9, (s["baseline"]["score"], result["prior_rsna_score"])
    print(f"load_run fold {fold}: score {s['score']:.6f} = trainer's {result['val_rsna_score']:.6f}; "
          f"baseline {s['baseline']['score']:.6f} = {result['prior_rsna_score']:.6f}")
print("installed wheel: all checks passed")
