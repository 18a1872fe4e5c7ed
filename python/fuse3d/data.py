"""The shards as a PyTorch dataset, and the K-fold split of ``fuse3d train``.

A shard folder (``fuse3d ingest``'s output) holds ``manifest.json`` and ``shard-NNNNN.h5``; each shard stores
``volumes`` (N, 3, D, H, W) float16 (Zstandard-compressed: read through hdf5plugin), ``labels`` (N, 25) int8,
``keypoints`` (N, 25, 3) float32, ``present`` (N, 3) uint8, ``study_id`` (N,) int64, ``affine`` (N, 4, 4) float64 and,
from schema_version 2, each study's source slices: ``source_pixels`` (P,) float16, ``source_slices`` (M, 5) int64 and
``source_geometry`` (M, 12) float64 (see data-schema.md in the repository).
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


def _filters(ds):
    plist = ds.id.get_create_plist()
    return [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]


def _decode_chunk(ds, filters, mask, raw, count, what):
    """One raw chunk of `count` elements of `ds` (filters [shuffle, zstd] or [zstd]) decompressed with libzstd and
    un-shuffled: the filters undone in reverse order; a set bit of `mask` says that filter was skipped for the chunk."""
    import ctypes

    item = ds.dtype.itemsize
    data = raw
    if not mask & (1 << (len(filters) - 1)):
        buf = ctypes.create_string_buffer(count * item)
        zstd = _libzstd()
        n = zstd.ZSTD_decompress(buf, count * item, raw, len(raw))
        if zstd.ZSTD_isError(n) or n != count * item:
            raise RuntimeError(f"{ds.file.filename}: {what}: Zstandard chunk does not decode")
        data = buf.raw
    planes = np.frombuffer(data, dtype=np.uint8)
    if len(planes) != count * item:
        raise RuntimeError(f"{ds.file.filename}: {what}: a chunk of {len(planes)} bytes, not {count * item}")
    if filters[0] == _SHUFFLE_FILTER and not mask & 1 and item > 1:
        planes = planes.reshape(item, count).T
    return np.ascontiguousarray(planes).view(ds.dtype).reshape(-1)


def _read_chunked(ds, index):
    """ds[index] of a volumes dataset read chunk by chunk (chunks (1, 1, D, H, W)) without HDF5's Zstandard filter:
    the raw chunk is decompressed with libzstd and un-shuffled here, undoing the filters in reverse order."""
    filters = _filters(ds)
    if filters not in ([_SHUFFLE_FILTER, _ZSTD_FILTER], [_ZSTD_FILTER]) or ds.chunks[:2] != (1, 1):
        raise RuntimeError(f"{ds.file.filename}: volumes stored with filters {filters} and chunks {ds.chunks}; "
                           "install hdf5plugin to read them")
    channels = ds.shape[1]
    inner = ds.shape[2:]
    count = int(np.prod(inner))
    out = np.empty((channels,) + inner, dtype=ds.dtype)
    for c in range(channels):
        mask, raw = ds.id.read_direct_chunk((index, c) + (0,) * len(inner))
        out[c] = _decode_chunk(ds, filters, mask, raw, count, f"sample {index} channel {c}").reshape(inner)
    return out


def _read_range(ds, start, stop):
    """ds[start:stop] of a 1-D dataset (source_pixels); when it is Zstandard-compressed and HDF5 has no zstd filter
    (no hdf5plugin), only the chunks covering the range are read raw and decoded here. A chunk never written reads as
    zeros, as HDF5 reads it."""
    import h5py

    filters = _filters(ds)
    if _ZSTD_FILTER not in filters or h5py.h5z.filter_avail(_ZSTD_FILTER):
        return ds[start:stop]
    if filters not in ([_SHUFFLE_FILTER, _ZSTD_FILTER], [_ZSTD_FILTER]) or ds.chunks is None or len(ds.chunks) != 1:
        raise RuntimeError(f"{ds.file.filename}: {ds.name} stored with filters {filters} and chunks {ds.chunks}; "
                           "install hdf5plugin to read it")
    chunk = ds.chunks[0]
    first = start // chunk * chunk
    out = np.zeros(stop - first, dtype=ds.dtype)
    for at in range(first, stop, chunk):
        try:
            mask, raw = ds.id.read_direct_chunk((at,))
        except (KeyError, OSError, RuntimeError, ValueError):  # not allocated: HDF5's fill value, zero
            if _chunk_written(ds, at):
                raise
            continue
        values = _decode_chunk(ds, filters, mask, raw, chunk, f"{ds.name} chunk at element {at}")
        n = min(chunk, stop - at)
        out[at - first:at - first + n] = values[:n]
    return out[start - first:]


def _chunk_written(ds, at):
    try:
        info = ds.id.get_chunk_info_by_coord((at,))
    except Exception:  # an HDF5 without the call: assume written, so the read's own error stands
        return True
    return info.byte_offset is not None and info.size > 0


def _read_volume(ds, index):
    import h5py

    if h5py.h5z.filter_avail(_ZSTD_FILTER):
        return ds[index]
    return _read_chunked(ds, index)


_MAX_MATRIX = 4096  # rows and columns of a source slice: 1...4096 (data-schema.md)
_MAX_SOURCE_SLICES = 1 << 20  # rows of source_slices this reader takes (as fuse3d's)
_SOURCE_NAMES = ("source_pixels", "source_slices", "source_geometry")


def _shard_schema(f):
    v = f.attrs.get("schema_version", 1)
    try:
        return int(np.asarray(v).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"{f.filename}: unreadable schema_version {v!r}") from None


def _check_source_rows(path, rows, geometry, first_row, samples, pixels, previous_sample=0, previous_end=0):
    """Checks rows of ``source_slices`` (n, 5) and ``source_geometry`` (n, 12), the first being row `first_row` of the
    file, as data-schema.md says a reader must: samples ascending in 0..<`samples` (at or after `previous_sample`),
    channel 0…2, rows and columns in 1…4096, offsets at or after the previous row's end (`previous_end`) and inside
    `pixels` elements, geometry finite with non-zero steps and a unit normal (± 0.001). Raises ValueError naming the
    file, the dataset and the first bad row."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, 5)
    geometry = np.asarray(geometry, dtype=np.float64).reshape(-1, 12)
    n = len(rows)
    if n == 0:
        return
    sample, channel, height, width, offset = (rows[:, j] for j in range(5))
    bad_matrix = ~((height >= 1) & (height <= _MAX_MATRIX) & (width >= 1) & (width <= _MAX_MATRIX))
    count = np.where(bad_matrix, 0, height * width)  # no overflow: both ≤ 4096 where used
    ends = offset + count
    before = np.concatenate([[previous_end], ends[:-1]])
    before_sample = np.concatenate([[previous_sample], sample[:-1]])
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(geometry).all(axis=1)
        g = np.where(finite[:, None], geometry, 0.0)
        lengths = [np.sqrt((g[:, k:k + 3] ** 2).sum(axis=1)) for k in (3, 6, 9)]
    checks = [
        ("source_slices", ~((sample >= 0) & (sample < samples) & (sample >= before_sample)),
         lambda i: f"sample {sample[i]} is not in 0..<{samples} at or after the previous row's ({before_sample[i]})"),
        ("source_slices", ~((channel >= 0) & (channel <= 2)), lambda i: f"channel {channel[i]} is not 0, 1 or 2"),
        ("source_slices", bad_matrix,
         lambda i: f"matrix {height[i]} × {width[i]} is not in 1...{_MAX_MATRIX} each way"),
        ("source_slices", ~((offset >= before) & (offset >= 0) & (offset < pixels) & (offset <= pixels - count)),
         lambda i: f"pixels [{offset[i]}, {offset[i]} + {count[i]}) overlap the previous row's (ending at {before[i]}) "
                   f"or leave source_pixels' {pixels} elements"),
        ("source_geometry", ~finite, lambda i: f"a value is not finite: {geometry[i].tolist()}"),
        ("source_geometry", ~((lengths[0] > 0) & (lengths[1] > 0)), lambda i: "a pixel step has zero length"),
        ("source_geometry", ~(np.abs(lengths[2] - 1) < 1e-3), lambda i: f"the normal's length {lengths[2][i]} is not 1"),
    ]
    # The first bad row, and at it the first check it fails (the order fuse3d checks a row in).
    worst = None
    for dataset, bad, why in checks:
        hits = np.flatnonzero(bad)
        if len(hits) and (worst is None or hits[0] < worst[0]):
            worst = (int(hits[0]), dataset, why)
    if worst is not None:
        i, dataset, why = worst
        raise ValueError(f"{path}: dataset {dataset} row {first_row + i}: {why(i)}")


def _source_index(f, samples):
    """Validates a schema-2 shard's source tables (every row) and returns each sample's first row (N + 1 entries:
    sample i's rows are starts[i]:starts[i + 1])."""
    path = f.filename
    missing = [name for name in _SOURCE_NAMES if name not in f]
    if missing:
        raise ValueError(f"{path}: dataset {missing[0]} is missing (schema_version 2 has it, empty or not)")
    pixels, table, geometry = (f[name] for name in _SOURCE_NAMES)
    if pixels.ndim != 1 or pixels.dtype != np.float16:
        raise ValueError(f"{path}: dataset source_pixels must be 1-D float16, found {pixels.dtype} {pixels.shape}")
    if table.ndim != 2 or table.shape[1] != 5 or table.dtype.kind not in "iu":
        raise ValueError(f"{path}: dataset source_slices must be int64 with dims [M, 5], found {table.dtype} {table.shape}")
    m = table.shape[0]
    if geometry.shape != (m, 12) or geometry.dtype.kind != "f":
        raise ValueError(f"{path}: dataset source_geometry must be float64 with dims [{m}, 12], found "
                         f"{geometry.dtype} {geometry.shape}")
    if m > min(_MAX_SOURCE_SLICES, pixels.shape[0]):
        raise ValueError(f"{path}: dataset source_slices has {m} rows, more than source_pixels' {pixels.shape[0]} "
                         f"elements or this reader's limit of {_MAX_SOURCE_SLICES}")
    rows = table[()].astype(np.int64)
    _check_source_rows(path, rows, geometry[()], 0, samples, pixels.shape[0])
    return np.searchsorted(rows[:, 0], np.arange(samples + 1), side="left").astype(np.int64)


def _invert3(m):
    """A 3 × 3 inverse in fuse3d's arithmetic (SampleSources.invert: the adjugate over the determinant, the same
    operations in the same order), None when singular."""
    det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) \
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    if not np.isfinite(det) or abs(det) <= 1e-12:
        return None
    out = []
    for i in range(3):
        row = []
        for j in range(3):
            r, k = [x for x in range(3) if x != j], [x for x in range(3) if x != i]
            minor = m[r[0]][k[0]] * m[r[1]][k[1]] - m[r[0]][k[1]] * m[r[1]][k[0]]
            row.append((1.0 if (i + j) % 2 == 0 else -1.0) * minor / det)
        out.append(row)
    return out


def source_voxels(geometry, affine):
    """Source-slice geometry (M, 12) in patient LPS mm (origin of pixel (0, 0), column step, row step, unit normal) →
    the same in the voxels (d, h, w) of the grid whose voxel → patient map is `affine` (4 × 4), exactly as fuse3d's
    loader computes it (SampleSources): origin A⁻¹(o − t), steps A⁻¹·step, the normal the column step × the row step
    normalized; float32 (M, 12). Also returns the grid's millimetres per voxel (the norm of the affine's first column)
    as a float32. Raises ValueError for a singular affine or a slice degenerate in the grid's voxels."""
    voxels, voxel_mm, bad = _to_voxels(geometry, affine)
    if bad is not None:
        raise ValueError("the affine is singular" if bad < 0 else f"source slice {bad} has a degenerate geometry in the grid's voxels")
    return voxels, voxel_mm


def _to_voxels(geometry, affine):
    """source_voxels' work: (voxels, voxel_mm, None), or with the index of the first degenerate slice (-1: the affine
    is singular) in place of None."""
    a = np.asarray(affine, dtype=np.float64).reshape(4, 4)
    lin = [[float(a[i, j]) for j in range(3)] for i in range(3)]
    t = a[:3, 3]
    voxel_mm = np.float32(np.sqrt(a[0, 0] * a[0, 0] + a[1, 0] * a[1, 0] + a[2, 0] * a[2, 0]))
    g = np.asarray(geometry, dtype=np.float64).reshape(-1, 12)
    inverse = _invert3(lin)
    if inverse is None:
        return None, voxel_mm, -1

    def apply(v):  # (M, 3) → (M, 3): inverse · v, each sum from 0 in the order fuse3d adds it
        return np.stack([0.0 + inverse[i][0] * v[:, 0] + inverse[i][1] * v[:, 1] + inverse[i][2] * v[:, 2]
                         for i in range(3)], 1).reshape(-1, 3)

    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        origin = apply(g[:, 0:3] - t)
        column, row = apply(g[:, 3:6]), apply(g[:, 6:9])
        cross = np.stack([column[:, 1] * row[:, 2] - column[:, 2] * row[:, 1],
                          column[:, 2] * row[:, 0] - column[:, 0] * row[:, 2],
                          column[:, 0] * row[:, 1] - column[:, 1] * row[:, 0]], 1).reshape(-1, 3)
        length = np.sqrt(0.0 + cross[:, 0] * cross[:, 0] + cross[:, 1] * cross[:, 1] + cross[:, 2] * cross[:, 2])
        ok = np.isfinite(length) & (length > 0) & np.isfinite(np.concatenate([origin, column, row], 1)).all(1)
        if not ok.all():
            return None, voxel_mm, int(np.flatnonzero(~ok)[0])
        normal = cross / length[:, None]
    return np.concatenate([origin, column, row, normal], 1).astype(np.float32), voxel_mm, None


def _empty_sources(voxel_mm):
    return {"pixels": [np.zeros((0, 0, 0), np.float16) for _ in range(3)],
            "sizes": [np.zeros((0, 2), np.int64) for _ in range(3)],
            "geometry": [np.zeros((0, 12), np.float32) for _ in range(3)],
            "voxel_mm": np.float32(voxel_mm)}


def _sample_sources(f, i, starts, affine):
    """Sample i's source slices in its grid's voxels (see ShardDataset): per channel the slices' values zero-padded
    to the channel's largest matrix (S_c, R_c, C_c) float16, their (rows, columns) (S_c, 2) int64 and geometry
    (S_c, 12) float32, and the grid's millimetres per voxel."""
    path = f.filename
    a = np.asarray(affine, dtype=np.float64).reshape(4, 4)
    voxel_mm = np.float32(np.sqrt(a[0, 0] * a[0, 0] + a[1, 0] * a[1, 0] + a[2, 0] * a[2, 0]))
    if starts is None or starts[i] == starts[i + 1]:
        return _empty_sources(voxel_mm)
    lo, hi = int(starts[i]), int(starts[i + 1])
    pixels_ds = f["source_pixels"]
    rows = f["source_slices"][lo:hi].astype(np.int64)
    geometry = f["source_geometry"][lo:hi].astype(np.float64)
    # Checked at open; checked again here as read (the same rows of an untrusted file, now in this process).
    _check_source_rows(path, rows, geometry, lo, i + 1, pixels_ds.shape[0], previous_sample=i)
    voxels, voxel_mm, bad = _to_voxels(geometry, affine)
    if bad is not None:
        where = "its affine is singular" if bad < 0 else \
            f"source_slices row {lo + bad} has a degenerate geometry in the grid's voxels"
        raise ValueError(f"{path}: sample {i}: {where}")
    counts = rows[:, 2] * rows[:, 3]
    first, end = int(rows[0, 4]), int(rows[-1, 4] + counts[-1])
    block = _read_range(pixels_ds, first, end)
    out = _empty_sources(voxel_mm)
    for c in range(3):
        mine = np.flatnonzero(rows[:, 1] == c)
        if not len(mine):
            continue
        sizes = rows[mine][:, 2:4]
        stack = np.zeros((len(mine), int(sizes[:, 0].max()), int(sizes[:, 1].max())), dtype=np.float16)
        for n, k in enumerate(mine):
            r, w, at = int(rows[k, 2]), int(rows[k, 3]), int(rows[k, 4]) - first
            stack[n, :r, :w] = block[at:at + r * w].reshape(r, w)
        out["pixels"][c], out["sizes"][c], out["geometry"][c] = stack, sizes.copy(), voxels[mine]
    return out


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
    sources    dict                  the study's source slices (schema-2 shards; see below)
    ========== ===================== =====================================================================

    ``sources`` (when the dataset reads them) holds, per channel c (lists of 3), the study's source slices of
    that channel in their stored order (along their normal), in the sample's grid voxels as fuse3d's loader puts
    them (Sources/Train/Loader/SourceBatch.swift, SampleSources):

    ========== ============================ ==============================================================
    pixels     [float16 (S_c, R_c, C_c)]    each slice's values (row-major, DICOM rows and columns), zero
                                            beyond its own matrix; (0, 0, 0) for a channel without slices
    sizes      [int64 (S_c, 2)]             each slice's (rows, columns)
    geometry   [float32 (S_c, 12)]          in grid voxels (d, h, w): the centre of pixel (0, 0), the column
                                            step, the row step, the unit normal (column step x row step)
    voxel_mm   float32 scalar               millimetres per grid voxel (the norm of the affine's first column)
    ========== ============================ ==============================================================

    `sources` None (the default) reads them when the folder has any (a shard of schema_version 2 with a
    ``source_slices`` row; a schema-1 shard's samples then have none), True always (empty where none), False never.
    The default ``DataLoader`` collate cannot stack them (their counts and matrices vary): use ``collate_fn=``
    :func:`fuse3d.collate`, which pads them into the batch the two-stage models take. Each shard's source tables are
    checked (as data-schema.md says a reader must) when the dataset is made, and a sample's rows again when it is
    read; a bad row raises ValueError naming the file, the dataset and the row.

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

    def __init__(self, path, fold=None, split="train", folds=4, seed=0, run=None, transform=None, sources=None):
        self.path = os.fspath(path)
        manifest_path = os.path.join(self.path, "manifest.json")
        if not os.path.isfile(manifest_path):
            raise FileNotFoundError(f"{self.path}: no manifest.json (a shard folder is what `fuse3d ingest` writes)")
        with open(manifest_path, encoding="utf-8") as f:
            self.manifest = json.load(f)
        if self.manifest.get("schema_version") not in (1, 2):
            raise ValueError(f"{manifest_path}: schema_version {self.manifest.get('schema_version')}; this reader knows 1 and 2")
        if sources not in (None, True, False):
            raise ValueError(f"sources must be None (when the shards have them), True or False, not {sources!r}")
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', not {split!r}")
        self.files = [os.path.join(self.path, s["file"]) for s in self.manifest["shards"]]
        self.label_columns = list(self.manifest["label_columns"])
        self.channels = list(self.manifest["channels"])
        self.transform = transform
        h5py = _h5py()
        index, labels, self._source_starts = [], {}, []
        for k, name in enumerate(self.files):
            with h5py.File(name, "r") as f:
                ids, lab = f["study_id"][()], f["labels"][()]
                version = _shard_schema(f)
                if version not in (1, 2):
                    raise ValueError(f"{name}: schema_version {version}; this reader knows 1 and 2")
                starts = _source_index(f, len(ids)) if version >= 2 and sources is not False else None
                self._source_starts.append(starts)
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
        has = any(starts is not None and starts[-1] > 0 for starts in self._source_starts)
        self.sources = bool(sources) if sources is not None else has
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
        if self.sources:
            sample["sources"] = _sample_sources(f, i, self._source_starts[k], sample["affine"])
        if _Base is not object:
            import torch

            for key in ("image", "labels", "keypoints", "present", "affine"):
                sample[key] = torch.from_numpy(sample[key])
            if self.sources:
                src = sample["sources"]
                for key in ("pixels", "sizes", "geometry"):
                    src[key] = [torch.from_numpy(a) for a in src[key]]
                src["voxel_mm"] = torch.tensor(float(src["voxel_mm"]), dtype=torch.float32)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def __repr__(self):
        part = "" if self.fold is None else f", fold {self.fold} of {self.split.k}, {self.part}"
        return f"ShardDataset({self.path!r}: {len(self)} samples{part})"


class Sources(dict):
    """The padded sources of a batch (:func:`pad_sources`): a dict whose keys also read as attributes (``.pixels``,
    ``.geometry``, ``.valid``, ``.voxel_mm``), so it goes to the models as fuse3d.models.SourceBatch does."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __reduce__(self):
        return (Sources, (dict(self),))


def pad_sources(samples):
    """The per-sample ``sources`` of :class:`ShardDataset` (a list of B dicts) padded into one batch, as fuse3d's
    loader pads it (SourceBatch.init(samples:)): a dict

    ========== ================================ ========================================================
    pixels     [float16 (B, S_c, R_c, C_c)] x 3 each sample's slices first, in their stored order; zero
                                                beyond a slice's matrix and the sample's slice count
    geometry   [float32 (B, S_c, 12)] x 3       grid voxels (see ShardDataset); zeros for padding
    valid      [float32 (B, S_c)] x 3           1 for a slice, 0 for padding
    voxel_mm   float32 (B,)                     millimetres per grid voxel
    ========== ================================ ========================================================

    S_c, R_c and C_c are the largest slice count, rows and columns of channel c over the batch, at least 1. Torch
    tensors when torch is installed, numpy arrays otherwise. The dict's keys also read as attributes (:class:`Sources`),
    so a model of fuse3d.models takes it where it takes a SourceBatch.
    """
    b = len(samples)
    if b == 0:
        raise ValueError("pad_sources needs at least one sample")
    arrays = [{key: [np.asarray(a) for a in s[key]] for key in ("pixels", "geometry")} for s in samples]
    out = Sources(pixels=[], geometry=[], valid=[],
                  voxel_mm=np.array([float(s["voxel_mm"]) for s in samples], dtype=np.float32))
    for c in range(3):
        shapes = [a["pixels"][c].shape for a in arrays]
        for a, shape in zip(arrays, shapes):
            if len(shape) != 3 or a["geometry"][c].shape != (shape[0], 12):
                raise ValueError(f"sources of channel {c}: pixels {shape} and geometry {a['geometry'][c].shape} are not "
                                 "(S, R, C) and (S, 12)")
        s, r, w = (max([1] + [shape[j] for shape in shapes]) for j in range(3))
        pixels = np.zeros((b, s, r, w), dtype=np.float16)
        geometry = np.zeros((b, s, 12), dtype=np.float32)
        valid = np.zeros((b, s), dtype=np.float32)
        for i, (a, shape) in enumerate(zip(arrays, shapes)):
            n = shape[0]
            pixels[i, :n, :shape[1], :shape[2]] = a["pixels"][c]
            geometry[i, :n] = a["geometry"][c]
            valid[i, :n] = 1
        out["pixels"].append(pixels)
        out["geometry"].append(geometry)
        out["valid"].append(valid)
    if _Base is not object:
        import torch

        for key in ("pixels", "geometry", "valid"):
            out[key] = [torch.from_numpy(x) for x in out[key]]
        out["voxel_mm"] = torch.from_numpy(out["voxel_mm"])
    return out


def collate(samples):
    """A ``DataLoader`` ``collate_fn`` for :class:`ShardDataset`: the keys torch's default collate stacks (image,
    labels, keypoints, present, study_id, affine) stacked as it stacks them, and ``sources`` padded by
    :func:`pad_sources` into the batch the two-stage models take (``run(batch["image"], batch["sources"])``).
    Without torch, numpy arrays stacked the same way.

    >>> loader = torch.utils.data.DataLoader(dataset, batch_size=4, collate_fn=fuse3d.collate)  # doctest: +SKIP
    """
    samples = list(samples)
    if not samples:
        raise ValueError("collate needs at least one sample")
    out = {}
    keys = list(samples[0])
    for key in keys:
        if any(key not in s for s in samples):
            raise ValueError(f"collate: some samples have no {key!r} (samples of one dataset have the same keys)")
        values = [s[key] for s in samples]
        if key == "sources":
            out[key] = pad_sources(values)
        elif _Base is not object:
            from torch.utils.data import default_collate

            out[key] = default_collate(values)
        elif isinstance(values[0], np.ndarray) or np.isscalar(values[0]):
            out[key] = np.stack([np.asarray(v) for v in values])
        else:
            out[key] = values
    return out
