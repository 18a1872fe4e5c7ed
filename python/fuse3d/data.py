"""The shards as a PyTorch dataset, and the K-fold split of ``fuse3d train``.

A shard folder (``fuse3d ingest``'s output) holds ``manifest.json`` and ``shard-NNNNN.h5``; each shard stores
``volumes`` (N, 3, D, H, W) float16 (Zstandard-compressed: read through hdf5plugin), ``labels`` (N, 25) int8,
``keypoints`` (N, 25, 3) float32, ``present`` (N, 3) uint8, ``study_id`` (N,) int64, ``affine`` (N, 4, 4) float64
(see data-schema.md in the repository).
"""
import json
import os

import numpy as np

try:  # a torch Dataset when torch is installed; any map-style dataset works with DataLoader anyway
    from torch.utils.data import Dataset as _Base
except ImportError:  # pragma: no cover - exercised where torch is absent
    _Base = object

_MASK64 = (1 << 64) - 1


class _SplitMix64:
    """fuse3d's SplitMix64 (Sources/Core/SplitMix64.swift): the generator behind every seeded shuffle."""

    def __init__(self, seed):
        self.state = seed & _MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)


class FoldSplit:
    """The K-fold split by study of ``fuse3d train``: stratified on the worst spinal canal grade, each stratum
    shuffled with the seed and dealt round-robin across folds (Sources/Train/Training/FoldSplit.swift).

    >>> s = FoldSplit.from_labels({1: [0] * 25, 2: [2] * 25, 3: [1] * 25, 4: [-1] * 25}, k=2, seed=0)
    >>> sorted(s.training(0) | s.validation(0))
    [1, 2, 3, 4]
    """

    def __init__(self, folds, k, seed, stratified_on="worst_spinal_grade"):
        self.folds = [sorted(int(s) for s in f) for f in folds]
        self.k, self.seed, self.stratified_on = int(k), int(seed), stratified_on

    @classmethod
    def from_labels(cls, labels, k=4, seed=0):
        """Splits `labels` (study id -> 25 labels, -1 missing) into `k` folds, as ``fuse3d train --folds k --seed``."""
        if k < 2:
            raise ValueError(f"a K-fold split needs k >= 2, got {k}")
        if len(labels) < k:
            raise ValueError(f"{len(labels)} studies cannot be split into {k} folds")
        strata = {}
        for study, row in labels.items():
            strata.setdefault(int(max(int(x) for x in list(row)[:5])), []).append(int(study))
        rng = _SplitMix64(seed ^ 0x5EEDF01D)
        folds = [[] for _ in range(k)]
        dealt = 0
        for stratum in sorted(strata):
            studies = sorted(strata[stratum])
            for i in range(len(studies) - 1, 0, -1):
                j = rng.next() % (i + 1)
                studies[i], studies[j] = studies[j], studies[i]
            for study in studies:
                folds[dealt % k].append(study)
                dealt += 1
        return cls(folds, k, seed)

    @classmethod
    def load(cls, path):
        """Reads a run's ``splits.json`` (or the run folder holding it)."""
        if os.path.isdir(path):
            path = os.path.join(path, "splits.json")
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        return cls(d["folds"], d["k"], d["seed"], d.get("stratified_on", "worst_spinal_grade"))

    def training(self, fold):
        """Study ids fold `fold` trains on (every other fold's)."""
        return {s for i, f in enumerate(self.folds) if i != fold for s in f}

    def validation(self, fold):
        """Study ids fold `fold` validates on."""
        return set(self.folds[fold])

    def to_json(self):
        return {"folds": self.folds, "k": self.k, "seed": self.seed, "stratified_on": self.stratified_on}


def _h5py():
    import h5py

    try:  # registers the Zstandard filter (id 32015) the volumes are written with, when installed
        import hdf5plugin  # noqa: F401
    except ImportError:
        pass
    return h5py


_ZSTD_FILTER, _SHUFFLE_FILTER = 32015, 2
_zstd = None


def _libzstd():
    """libzstd through ctypes: the copy grafted into this package beside the binary, else the system's."""
    global _zstd
    if _zstd is None:
        import ctypes
        import ctypes.util
        import glob

        here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin", "lib")
        candidates = sorted(glob.glob(os.path.join(here, "libzstd*.so*"))) + [ctypes.util.find_library("zstd")]
        for name in filter(None, candidates):
            try:
                lib = ctypes.CDLL(name)
            except OSError:
                continue
            lib.ZSTD_decompress.restype = ctypes.c_size_t
            lib.ZSTD_decompress.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
            lib.ZSTD_isError.restype = ctypes.c_uint
            lib.ZSTD_isError.argtypes = [ctypes.c_size_t]
            _zstd = lib
            break
        else:
            raise RuntimeError("the shards' volumes are Zstandard-compressed and neither hdf5plugin nor libzstd is "
                               "available: pip install hdf5plugin")
    return _zstd


def _read_chunked(ds, index):
    """ds[index] of a volumes dataset read chunk by chunk (chunks (1, 1, D, H, W)) without HDF5's Zstandard filter:
    the raw chunk is decompressed with libzstd and un-shuffled here, undoing the filters in reverse order."""
    import ctypes

    plist = ds.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    if filters not in ([_SHUFFLE_FILTER, _ZSTD_FILTER], [_ZSTD_FILTER]) or ds.chunks[:2] != (1, 1):
        raise RuntimeError(f"{ds.file.filename}: volumes stored with filters {filters} and chunks {ds.chunks}; "
                           "install hdf5plugin to read them")
    channels, item = ds.shape[1], ds.dtype.itemsize
    inner = ds.shape[2:]
    count = int(np.prod(inner))
    out = np.empty((channels,) + inner, dtype=ds.dtype)
    zstd = _libzstd()
    for c in range(channels):
        mask, raw = ds.id.read_direct_chunk((index, c) + (0,) * len(inner))
        data = raw
        if not mask & (1 << (len(filters) - 1)):  # a set bit: that filter was skipped for this chunk
            buf = ctypes.create_string_buffer(count * item)
            n = zstd.ZSTD_decompress(buf, count * item, raw, len(raw))
            if zstd.ZSTD_isError(n) or n != count * item:
                raise RuntimeError(f"{ds.file.filename}: sample {index} channel {c}: Zstandard chunk does not decode")
            data = buf.raw
        planes = np.frombuffer(data, dtype=np.uint8)
        if filters[0] == _SHUFFLE_FILTER and not mask & 1 and item > 1:
            planes = planes.reshape(item, count).T
        out[c] = np.ascontiguousarray(planes).view(ds.dtype).reshape(inner)
    return out


def _read_volume(ds, index):
    import h5py

    if h5py.h5z.filter_avail(_ZSTD_FILTER):
        return ds[index]
    return _read_chunked(ds, index)


class ShardDataset(_Base):
    """The samples of a shard folder, optionally one side of one fold of ``fuse3d train``'s split.

    Each sample is a dict:

    ========== ===================== =====================================================================
    key        value                 meaning
    ========== ===================== =====================================================================
    image      float32 (3, D, H, W)  the fused grid, channels sagittal T1, sagittal T2/STIR, axial T2
    labels     int64 (25,)           0 normal/mild, 1 moderate, 2 severe, -1 missing (data-schema order)
    keypoints  float32 (25, 3)       voxel (d, h, w) of each label column's point, NaN where absent
    present    bool (3,)             which channels hold a series (False: a zero channel)
    study_id   int                   the study
    affine     float64 (4, 4)        voxel (d, h, w, 1) -> patient LPS millimetres
    ========== ===================== =====================================================================

    Arrays are torch tensors when torch is installed (numpy arrays otherwise). HDF5 files are opened on first
    use in each process, so the dataset can go to a ``DataLoader`` with worker processes.

    `fold` None: every sample (`split` ignored). Otherwise `split` 'train' or 'val' of that fold, the fold made
    exactly as ``fuse3d train --folds FOLDS --seed SEED`` makes it, or read from ``RUN/splits.json`` when `run`
    (a run folder) is given. `transform`: a callable applied to each sample dict.

    >>> import fuse3d, torch
    >>> train = fuse3d.ShardDataset("shards", fold=0, split="train", folds=4)   # doctest: +SKIP
    >>> loader = torch.utils.data.DataLoader(train, batch_size=8, shuffle=True, num_workers=2)  # doctest: +SKIP
    >>> batch = next(iter(loader)); batch["image"].shape                       # doctest: +SKIP
    torch.Size([8, 3, 64, 64, 64])
    """

    def __init__(self, path, fold=None, split="train", folds=4, seed=0, run=None, transform=None):
        self.path = os.fspath(path)
        manifest_path = os.path.join(self.path, "manifest.json")
        if not os.path.isfile(manifest_path):
            raise FileNotFoundError(f"{self.path}: no manifest.json (a shard folder is what `fuse3d ingest` writes)")
        with open(manifest_path, encoding="utf-8") as f:
            self.manifest = json.load(f)
        if self.manifest.get("schema_version") != 1:
            raise ValueError(f"{manifest_path}: schema_version {self.manifest.get('schema_version')}; this reader knows 1")
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', not {split!r}")
        self.files = [os.path.join(self.path, s["file"]) for s in self.manifest["shards"]]
        self.label_columns = list(self.manifest["label_columns"])
        self.channels = list(self.manifest["channels"])
        self.transform = transform
        h5py = _h5py()
        index, labels = [], {}
        for k, name in enumerate(self.files):
            with h5py.File(name, "r") as f:
                ids, lab = f["study_id"][()], f["labels"][()]
            for i, (study, row) in enumerate(zip(ids.tolist(), lab)):
                index.append((k, i, study))
                labels[study] = row
        self.split = None
        if fold is not None:
            self.split = FoldSplit.load(run) if run is not None else FoldSplit.from_labels(labels, folds, seed)
            if not 0 <= fold < self.split.k:
                raise ValueError(f"fold {fold} is not one of the split's {self.split.k} folds")
            keep = self.split.training(fold) if split == "train" else self.split.validation(fold)
            index = [entry for entry in index if entry[2] in keep]
        self.index = index
        self.fold = fold
        self.part = split if fold is not None else None
        self._open = {}
        self._pid = None

    def __len__(self):
        return len(self.index)

    def __getstate__(self):  # open HDF5 handles do not travel to worker processes
        state = dict(self.__dict__)
        state["_open"], state["_pid"] = {}, None
        return state

    def _file(self, k):
        if self._pid != os.getpid():  # a forked worker: never reuse the parent's handles
            self._open, self._pid = {}, os.getpid()
        f = self._open.get(k)
        if f is None:
            f = self._open[k] = _h5py().File(self.files[k], "r")
        return f

    @property
    def study_ids(self):
        """The study id of every sample, in order."""
        return [entry[2] for entry in self.index]

    def labels(self):
        """All samples' labels as an int64 array (N, 25), without reading any volume."""
        out = np.empty((len(self.index), 25), dtype=np.int64)
        for n, (k, i, _) in enumerate(self.index):
            out[n] = self._file(k)["labels"][i]
        return out

    def __getitem__(self, n):
        if n < 0:
            n += len(self.index)
        k, i, study = self.index[n]
        f = self._file(k)
        sample = {
            "image": _read_volume(f["volumes"], i).astype(np.float32),
            "labels": f["labels"][i].astype(np.int64),
            "keypoints": f["keypoints"][i].astype(np.float32),
            "present": f["present"][i].astype(bool),
            "study_id": int(study),
            "affine": f["affine"][i].astype(np.float64),
        }
        if _Base is not object:
            import torch

            for key in ("image", "labels", "keypoints", "present", "affine"):
                sample[key] = torch.from_numpy(sample[key])
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def __repr__(self):
        part = "" if self.fold is None else f", fold {self.fold} of {self.split.k}, {self.part}"
        return f"ShardDataset({self.path!r}: {len(self)} samples{part})"
