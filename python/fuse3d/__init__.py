"""fuse3d from Python: the shards as a PyTorch dataset, the RSNA 2024 metric, trained runs as torch modules,
and the ``fuse3d`` command line (a native binary inside this package).

    >>> import fuse3d
    >>> fuse3d.cli("synth", "--studies", "4", "--out", "cohort")              # doctest: +SKIP
    >>> fuse3d.cli("ingest", "cohort", "--out", "shards", "--size", "32")     # doctest: +SKIP
    >>> ds = fuse3d.ShardDataset("shards", fold=0, split="train", folds=2)    # doctest: +SKIP
    >>> ds[0]["image"].shape                                                  # doctest: +SKIP
    torch.Size([3, 32, 32, 32])
    >>> loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=fuse3d.collate)  # doctest: +SKIP

The package never imports the binary's code: it reads the shards with h5py and calls the binary for the rest.
``import fuse3d`` is cheap: numpy, h5py and torch are imported by the parts that need them, when first used.
"""
from ._version import __version__

__all__ = ["ShardDataset", "FoldSplit", "collate", "pad_sources", "source_voxels", "rsna_score", "weighted_prior",
           "load_run", "Run", "cli", "binary", "__version__"]

_LAZY = {
    "ShardDataset": "data", "FoldSplit": "data", "collate": "data", "pad_sources": "data", "source_voxels": "data",
    "rsna_score": "metric", "weighted_prior": "metric",
    "load_run": "run", "Run": "run",
    "cli": "_cli", "binary": "_cli",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fuse3d' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"fuse3d.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
