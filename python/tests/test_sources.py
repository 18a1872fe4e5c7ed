"""The source slices of schema-2 shards in Python (fuse3d.data, fuse3d.collate, fuse3d.run): run with
.venv/bin/python python/tests/test_sources.py (or pytest).

The shards are written here with h5py and hdf5plugin as data-schema.md lays them out ("Source pixels"), so every value
is known:
- ShardDataset puts each slice in the sample's grid voxels as fuse3d's loader does (SampleSources: origin A⁻¹(o − t),
  steps A⁻¹·step, normal colStep_v × rowStep_v normalized, voxel_mm the norm of A's first column), checked against
  values worked out by hand and against numpy's inverse on a rotated affine;
- the pixels are each slice's own, read through HDF5's zstd filter and through the chunk-by-chunk libzstd path the
  wheel uses without hdf5plugin (a sample's block may span chunks, the last chunk may be partial);
- collate pads a batch as SourceBatch.init(samples:) (S, R, C the batch's largest, at least 1; zero geometry and
  valid 0 for padding) and stacks the other keys as torch's default collate;
- a bad source_slices / source_geometry row is refused with a ValueError naming the file, the dataset and the row;
- schema-1 shards have no sources; a run of a source-crops model takes them (and says so when it gets none).
"""
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fuse3d  # noqa: E402
from fuse3d import data  # noqa: E402

CHUNK = 65536
LABELS = [f"{c}_{lv}" for c in ("spinal_canal_stenosis", "left_neural_foraminal_narrowing",
                                 "right_neural_foraminal_narrowing", "left_subarticular_stenosis",
                                 "right_subarticular_stenosis") for lv in ("l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1")]
CHANNELS = ["sagittal_t1", "sagittal_t2_stir", "axial_t2"]

# Voxel (d, h, w) → LPS: x = 2d + 10, y = 3w − 5, z = −2h + 100 (2 mm per voxel along d).
AFFINE = np.array([[2, 0, 0, 10], [0, 0, 3, -5], [0, -2, 0, 100], [0, 0, 0, 1]], dtype=np.float64)


def sagittal(x):
    """A sagittal slice at patient x: origin (x, 1, 96), columns along +y 0.6 mm, rows along −z 0.5 mm."""
    return [x, 1, 96, 0, 0.6, 0, 0, 0, -0.5, -1, 0, 0]


def axial(z):
    """An axial slice at patient z: origin (12, 4, z), columns along +x 0.5 mm, rows along +y 0.75 mm."""
    return [12, 4, z, 0.5, 0, 0, 0, 0.75, 0, 0, 0, 1]


def write_shard(folder, samples, name="shard-00000.h5", schema=2, grid=(4, 4, 4), tamper=None, manifest=True):
    """A shard of `samples`: each a list of (channel, rows, columns, geometry) slices, its pixel values
    (sample i, slice k, pixel j) = ((i * 7 + k * 3 + j) % 97) / 97 as float16. Each sample's block starts at a
    chunk boundary, as fuse3d writes it; the last chunk is left partial (P not a multiple of 65536), as h5py may
    write it. `tamper(table, geometry)` edits the tables before they are written. Returns the pixels per sample."""
    import h5py
    import hdf5plugin

    n = len(samples)
    table, geometry, blocks, values = [], [], [], []
    at = 0
    for i, slices in enumerate(samples):
        block, mine = [], []
        offset = at
        for k, (channel, rows, columns, g) in enumerate(slices):
            v = (((i * 7 + k * 3 + np.arange(rows * columns)) % 97) / 97).astype(np.float16).reshape(rows, columns)
            table.append([i, channel, rows, columns, offset])
            geometry.append(g)
            block.append(v.reshape(-1))
            mine.append(v)
            offset += rows * columns
        values.append(mine)
        used = offset - at
        if used:
            flat = np.concatenate(block)
            last = i == n - 1 or not any(samples[i + 1:])
            padded = used if last else -(-used // CHUNK) * CHUNK
            blocks.append(np.concatenate([flat, np.zeros(padded - used, np.float16)]))
            at += padded
    pixels = np.concatenate(blocks) if blocks else np.zeros(0, np.float16)
    table = np.array(table, dtype=np.int64).reshape(-1, 5)
    geometry = np.array(geometry, dtype=np.float64).reshape(-1, 12)
    if tamper:
        tamper(table, geometry)
    path = os.path.join(folder, name)
    with h5py.File(path, "w") as f:
        f.attrs["schema_version"] = np.int64(schema)
        f.attrs["channels"] = CHANNELS
        f.attrs["label_columns"] = LABELS
        f.attrs["parameters"] = "{}"
        vol = np.random.default_rng(n).random((n, 3) + grid).astype(np.float16)
        f.create_dataset("volumes", data=vol, chunks=(1, 1) + grid, maxshape=(None, 3) + grid, shuffle=True,
                         **hdf5plugin.Zstd(clevel=1))
        f["study_id"] = np.arange(100, 100 + n, dtype=np.int64)
        f["labels"] = np.zeros((n, 25), np.int8)
        f["present"] = np.ones((n, 3), np.uint8)
        f["affine"] = np.broadcast_to(AFFINE, (n, 4, 4)).copy()
        f["keypoints"] = np.full((n, 25, 3), np.nan, np.float32)
        f["norm"] = np.zeros((n, 3, 2), np.float32)
        if schema >= 2:
            f.create_dataset("source_pixels", data=pixels, chunks=(CHUNK,), maxshape=(None,), shuffle=True,
                             **hdf5plugin.Zstd(clevel=1))
            f["source_slices"] = table
            f["source_geometry"] = geometry
    if manifest:
        with open(os.path.join(folder, "manifest.json"), "w") as m:
            json.dump({"schema_version": schema, "shape": list(grid), "channels": CHANNELS, "label_columns": LABELS,
                       "zstd_level": 1, "parameters": {}, "samples": n,
                       "shards": [{"file": name, "samples": n, "studies": list(range(100, 100 + n))}]}, m)
    return values


# Sample 0: two sagittal T1 slices (x = 14, 16), one STIR slice, one axial slice; sample 1: one larger sagittal T1 and
# three axial slices of two matrices (a block of more than one chunk: 300 × 300 > 65536); sample 2: none.
SAMPLES = [
    [(0, 3, 4, sagittal(14)), (0, 2, 5, sagittal(16)), (1, 4, 4, sagittal(18)), (2, 3, 3, axial(94))],
    [(0, 6, 2, sagittal(20)), (2, 300, 300, axial(96)), (2, 5, 7, axial(90)), (2, 2, 2, axial(88))],
    [],
]


def to_numpy(x):
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def test_voxels_by_hand():
    with tempfile.TemporaryDirectory() as d:
        write_shard(d, SAMPLES)
        ds = fuse3d.ShardDataset(d)
        assert ds.sources
        s = ds[0]["sources"]
        assert abs(float(s["voxel_mm"]) - 2.0) < 1e-7
        g0 = to_numpy(s["geometry"][0])
        # x = 14: d = (14 − 10) / 2 = 2, y = 1: w = (1 + 5) / 3 = 2, z = 96: h = (96 − 100) / −2 = 2; the column step
        # 0.6 mm along +y is 0.2 w; the row step 0.5 mm along −z is 0.25 h; (0, 0, 0.2) × (0, 0.25, 0) = −0.05 d.
        expect = [2, 2, 2, 0, 0, 0.2, 0, 0.25, 0, -1, 0, 0]
        assert g0.dtype == np.float32 and g0.shape == (2, 12)
        assert np.allclose(g0[0], expect, atol=1e-7), g0[0]
        assert np.allclose(g0[1], [3, 2, 2] + expect[3:], atol=1e-7), g0[1]
        g2 = to_numpy(s["geometry"][2])
        # (12, 4, 94): d = 1, h = 3, w = 3; columns 0.5 mm along +x = 0.25 d; rows 0.75 mm along +y = 0.25 w;
        # (0.25, 0, 0) × (0, 0, 0.25) = (0, −0.0625, 0).
        assert np.allclose(g2, [[1, 3, 3, 0.25, 0, 0, 0, 0, 0.25, 0, -1, 0]], atol=1e-7), g2
        assert to_numpy(s["geometry"][1]).shape == (1, 12)
        assert [tuple(to_numpy(x).shape) for x in s["sizes"]] == [(2, 2), (1, 2), (1, 2)]
        assert to_numpy(s["sizes"][0]).tolist() == [[3, 4], [2, 5]]
        empty = ds[2]["sources"]
        assert all(to_numpy(p).shape == (0, 0, 0) for p in empty["pixels"])
        assert all(to_numpy(g).shape == (0, 12) for g in empty["geometry"])


def test_voxels_against_numpy_on_a_rotated_affine():
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    a = np.eye(4)
    a[:3, :3] = q @ np.diag([0.8, 1.7, 2.3])
    a[:3, 3] = [-120.5, 33.25, 80.0]
    g = np.concatenate([rng.normal(size=(6, 3)) * 50, rng.normal(size=(6, 3)), rng.normal(size=(6, 3)),
                        np.zeros((6, 3))], 1)
    g[:, 9:12] = np.cross(g[:, 3:6], g[:, 6:9])
    g[:, 9:12] /= np.linalg.norm(g[:, 9:12], axis=1, keepdims=True)
    got, mm = fuse3d.source_voxels(g, a)
    inv = np.linalg.inv(a[:3, :3])
    origin = (g[:, 0:3] - a[:3, 3]) @ inv.T
    col, row = g[:, 3:6] @ inv.T, g[:, 6:9] @ inv.T
    normal = np.cross(col, row)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    expect = np.concatenate([origin, col, row, normal], 1)
    assert got.dtype == np.float32 and np.allclose(got, expect, rtol=1e-6, atol=1e-5), np.abs(got - expect).max()
    assert abs(mm - np.linalg.norm(a[:3, 0])) < 1e-6
    # The stored normal plays no part: the grid's normal is the steps' cross product (a mirrored affine flips it).
    mirrored = a.copy()
    mirrored[:3, 0] *= -1
    flipped, _ = fuse3d.source_voxels(g, mirrored)
    assert np.allclose(flipped[:, 9:12], -got[:, 9:12] * np.array([-1, 1, 1]), atol=1e-5)
    for bad in (np.zeros((4, 4)),):
        try:
            fuse3d.source_voxels(g, bad)
        except ValueError as e:
            assert "singular" in str(e)
        else:
            raise AssertionError("a singular affine was taken")


def test_pixels_with_and_without_hdf5plugin():
    import h5py

    with tempfile.TemporaryDirectory() as d:
        values = write_shard(d, SAMPLES)
        with h5py.File(os.path.join(d, "shard-00000.h5"), "r") as f:
            p = f["source_pixels"]
            assert p.shape[0] % CHUNK != 0  # a partial last chunk
            whole = p[()]
        readings = []
        for filtered in (True, False):
            real = h5py.h5z.filter_avail
            if not filtered:  # as in the wheel's venv: no zstd filter in HDF5, libzstd decodes the raw chunks
                h5py.h5z.filter_avail = lambda fid: False if fid == data._ZSTD_FILTER else real(fid)
            try:
                ds = fuse3d.ShardDataset(d)
                readings.append([ds[i]["sources"] for i in range(len(ds))])
                with h5py.File(os.path.join(d, "shard-00000.h5"), "r") as f:
                    for start, stop in ((0, 5), (CHUNK - 3, CHUNK + 4), (CHUNK + 10, len(whole)), (len(whole) - 1, len(whole))):
                        assert np.array_equal(data._read_range(f["source_pixels"], start, stop), whole[start:stop])
            finally:
                h5py.h5z.filter_avail = real
        for sources in readings:
            for i, slices in enumerate(SAMPLES):
                for c in range(3):
                    mine = [k for k, s in enumerate(slices) if s[0] == c]
                    stack = to_numpy(sources[i]["pixels"][c])
                    assert stack.dtype == np.float16 and stack.shape[0] == len(mine)
                    for n, k in enumerate(mine):
                        r, w = slices[k][1], slices[k][2]
                        assert np.array_equal(stack[n, :r, :w], values[i][k]), (i, c, k)
                        assert not stack[n, r:].any() and not stack[n, :, w:].any()
        for a, b in zip(*readings):
            for c in range(3):
                assert np.array_equal(to_numpy(a["pixels"][c]), to_numpy(b["pixels"][c]))


def test_collate_pads_as_the_loader():
    with tempfile.TemporaryDirectory() as d:
        values = write_shard(d, SAMPLES)
        ds = fuse3d.ShardDataset(d)
        batch = fuse3d.collate([ds[0], ds[1], ds[2]])
        src = batch["sources"]
        assert set(src) == {"pixels", "geometry", "valid", "voxel_mm"}
        shapes = [tuple(to_numpy(p).shape) for p in src["pixels"]]
        assert shapes == [(3, 2, 6, 5), (3, 1, 4, 4), (3, 3, 300, 300)], shapes
        assert [tuple(to_numpy(g).shape) for g in src["geometry"]] == [(3, 2, 12), (3, 1, 12), (3, 3, 12)]
        assert to_numpy(src["valid"][0]).tolist() == [[1, 1], [1, 0], [0, 0]]
        assert to_numpy(src["valid"][2]).tolist() == [[1, 0, 0], [1, 1, 1], [0, 0, 0]]
        assert to_numpy(src["voxel_mm"]).tolist() == [2.0, 2.0, 2.0]
        p0 = to_numpy(src["pixels"][0])
        assert p0.dtype == np.float16 and np.array_equal(p0[1, 0, :6, :2], values[1][0]) and not p0[1, 0, :, 2:].any()
        assert not p0[1, 1].any() and not p0[2].any()
        g0 = to_numpy(src["geometry"][0])
        assert g0.dtype == np.float32 and not g0[1, 1].any() and not g0[2].any()
        assert np.array_equal(g0[0], to_numpy(ds[0]["sources"]["geometry"][0]))
        # A channel no sample of the batch has: S, R, C of 1, nothing valid.
        lone = fuse3d.collate([ds[2]])["sources"]
        assert all(tuple(to_numpy(p).shape) == (1, 1, 1, 1) for p in lone["pixels"])
        assert all(not to_numpy(v).any() for v in lone["valid"])
        # The other keys as the default collate stacks them.
        assert tuple(batch["image"].shape) == (3, 3, 4, 4, 4) and tuple(batch["labels"].shape) == (3, 25)
        assert tuple(batch["keypoints"].shape) == (3, 25, 3) and tuple(batch["present"].shape) == (3, 3)
        assert to_numpy(batch["study_id"]).tolist() == [100, 101, 102]
        try:
            import torch

            loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=fuse3d.collate, num_workers=1)
            got = [b["sources"]["pixels"][2].shape for b in loader]
            assert [tuple(s) for s in got] == [(2, 3, 300, 300), (1, 1, 1, 1)], got
            assert src["pixels"][0].dtype == torch.float16 and src["geometry"][0].dtype == torch.float32
        except ImportError:
            pass


def expect_refused(tamper, row, dataset, words):
    with tempfile.TemporaryDirectory() as d:
        write_shard(d, SAMPLES, tamper=tamper)
        try:
            fuse3d.ShardDataset(d)
        except ValueError as e:
            msg = str(e)
            assert "shard-00000.h5" in msg and f"dataset {dataset} row {row}:" in msg and words in msg, msg
        else:
            raise AssertionError(f"a shard with a bad row {row} was read")
        fuse3d.ShardDataset(d, sources=False)  # not reading the slices: the rest reads as before


def test_bad_rows_are_refused():
    def edit(row, col, value, geometry=False):
        def f(table, g):
            (g if geometry else table)[row, col] = value
        return f

    expect_refused(edit(2, 2, 0), 2, "source_slices", "matrix 0 × 4")
    expect_refused(edit(1, 3, 5000), 1, "source_slices", "matrix 2 × 5000")
    expect_refused(edit(3, 1, 3), 3, "source_slices", "channel 3")
    expect_refused(edit(4, 0, 7), 4, "source_slices", "sample 7")
    expect_refused(edit(5, 0, 0), 5, "source_slices", "sample 0 is not in 0..<3 at or after the previous row's (1)")
    expect_refused(edit(1, 4, 5), 1, "source_slices", "overlap")  # starts inside row 0's pixels
    expect_refused(edit(5, 4, 10 ** 9), 5, "source_slices", "leave source_pixels")
    expect_refused(edit(0, 4, -1), 0, "source_slices", "overlap")
    expect_refused(edit(2, 7, np.nan, True), 2, "source_geometry", "not finite")
    expect_refused(edit(6, 0, np.inf, True), 6, "source_geometry", "not finite")
    expect_refused(lambda t, g: g.__setitem__((3, slice(3, 6)), 0), 3, "source_geometry", "zero length")
    expect_refused(edit(1, 9, -1.01, True), 1, "source_geometry", "normal's length")


def test_schema_1_and_mixed():
    with tempfile.TemporaryDirectory() as d:
        write_shard(d, [[], []], schema=1)
        ds = fuse3d.ShardDataset(d)
        assert not ds.sources and "sources" not in ds[0]
        forced = fuse3d.ShardDataset(d, sources=True)
        s = forced[1]["sources"]
        assert all(to_numpy(p).shape == (0, 0, 0) for p in s["pixels"]) and float(s["voxel_mm"]) == 2.0
        batch = fuse3d.collate([forced[0], forced[1]])
        assert all(not to_numpy(v).any() for v in batch["sources"]["valid"])
    with tempfile.TemporaryDirectory() as d:  # schema 2 without source pixels (--no-source-pixels): none
        write_shard(d, [[], []])
        assert not fuse3d.ShardDataset(d).sources
    with tempfile.TemporaryDirectory() as d:  # a schema-1 shard beside a schema-2 one: its samples have none
        write_shard(d, SAMPLES[:1], name="shard-00000.h5", manifest=False)
        write_shard(d, [[], []], name="shard-00001.h5", schema=1, manifest=False)
        with open(os.path.join(d, "manifest.json"), "w") as m:
            json.dump({"schema_version": 2, "shape": [4, 4, 4], "channels": CHANNELS, "label_columns": LABELS,
                       "shards": [{"file": "shard-00000.h5"}, {"file": "shard-00001.h5"}]}, m)
        ds = fuse3d.ShardDataset(d)
        assert ds.sources and len(ds) == 3
        batch = fuse3d.collate([ds[i] for i in range(3)])
        assert to_numpy(batch["sources"]["valid"][0]).tolist() == [[1, 1], [0, 0], [0, 0]]


def test_run_takes_sources():
    try:
        import torch
        from safetensors.torch import save_file

        from fuse3d import models, run as runs
    except ImportError:
        print("skipped test_run_takes_sources: no torch or safetensors")
        return
    base = {"model": "efficientnet3d", "width": 0.25}
    two = {"crop": [4, 4, 4], "crop_scale": 1.0, "localizer_width": 4, "localizer_pool": [2, 2, 2],
           "side_crops": False, "condition_crops": True, "condition_points": True}
    old = runs.model_arguments(dict(base, two_stage=dict(two)), [16, 16, 16])[0]
    assert len(old["two_stage"]) == 7 and runs.source_crop_settings(dict(base, two_stage=dict(two))) is None
    new = runs.model_arguments(dict(base, two_stage=dict(two, source_crops=True, source_slices=3,
                                                         source_crop_size=6, source_crop_mm=1.5)), [16, 16, 16])[0]
    crops = new["two_stage"][7]
    assert isinstance(crops, models.SourceCrops) and (crops.slices, crops.size, crops.millimetres) == (3, 6, 1.5)
    assert runs.source_crop_settings(dict(base, two_stage=dict(two, source_crops=False))) is None
    assert runs.source_crop_settings(dict(base, two_stage=dict(two, source_crops=True, condition_crops=False))) is None
    defaults = runs.model_arguments(dict(base, two_stage=dict(two, source_crops=True)), [16, 16, 16])[0]["two_stage"][7]
    assert (defaults.slices, defaults.size, defaults.millimetres) == (5, 24, 1.0)
    assert defaults.groups == (2,)  # fuse3d's default: the recesses alone from the slices
    recesses = runs.model_arguments(dict(base, two_stage=dict(two, source_crops=True, source_crop_groups=["subarticular"])),
                                    [16, 16, 16])[0]["two_stage"][7]
    assert recesses.groups == (2,), recesses.groups
    try:
        runs.source_crop_settings(dict(base, two_stage=dict(two, source_crops=True, source_crop_groups=["lumbar"])))
    except ValueError as e:
        assert "source_crop_groups" in str(e), e
    else:
        raise AssertionError("an unknown group was taken")

    grid = (16, 16, 16)
    with tempfile.TemporaryDirectory() as d:
        shards, out = os.path.join(d, "shards"), os.path.join(d, "run")
        os.makedirs(shards)
        os.makedirs(os.path.join(out, "fold-0"))
        # Slices through the grid's middle, where an untrained localizer's points lie: sagittal at voxel d 7 and 8
        # (x 24, 26), axial at h 7 and 8 (z 86, 84).
        write_shard(shards, [[(0, 8, 8, sagittal(24)), (0, 8, 8, sagittal(26)), (1, 8, 8, sagittal(26)),
                              (2, 8, 8, axial(86)), (2, 8, 8, axial(84))], []], grid=grid)
        with open(os.path.join(out, "config.yaml"), "w") as f:
            f.write("model: efficientnet3d\nwidth: 0.25\nbatch_size: 2\ntwo_stage:\n  crop: [4, 4, 4]\n"
                    "  crop_scale: 1.0\n  localizer_width: 4\n  localizer_pool: [2, 2, 2]\n  side_crops: false\n"
                    "  condition_crops: true\n  condition_points: true\n  source_crops: true\n  source_slices: 3\n"
                    "  source_crop_size: 6\n  source_crop_mm: 1.5\n")
        with open(os.path.join(out, "source.json"), "w") as f:
            json.dump({"shards": shards, "shape": list(grid)}, f)
        torch.manual_seed(0)
        net = models.make(**new)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, os.path.join(out, "fold-0", "best.safetensors"))
        run = fuse3d.load_run(out)
        assert run.needs_sources
        batch = fuse3d.collate([s for s in fuse3d.ShardDataset(shards)])
        p = run(batch["image"], batch["sources"])
        assert tuple(p.shape) == (2, 25, 3) and torch.isfinite(p).all()
        src = batch["sources"]
        with torch.no_grad():
            direct = run.models[0](run.input(batch["image"]), models.SourceBatch(src["pixels"], src["geometry"],
                                                                                 src["valid"], src["voxel_mm"]))
        assert torch.equal(p, direct)
        with torch.no_grad():  # the collated dict reads as a SourceBatch too
            assert torch.equal(run.models[0](run.input(batch["image"]), batch["sources"]), direct)
        taken = run.models[0].backbone.from_slices
        assert taken is not None and bool(taken[0].any()) and not bool(taken[1].any())  # the second sample has none
        try:
            run(batch["image"])
        except ValueError as e:
            assert "source slices" in str(e) and "fuse3d.collate" in str(e), e
        else:
            raise AssertionError("a source-crops run ran without sources")
        try:
            run(batch["image"][:1], batch["sources"])
        except ValueError as e:
            assert "2 samples" in str(e), e
        else:
            raise AssertionError("sources of another batch size were taken")


if __name__ == "__main__":
    for name, test in sorted(globals().items()):
        if name.startswith("test_"):
            test()
            print("ok", name)
