#!/usr/bin/env python3
"""Fusion benchmark peers: the same resampling as Fuse3D's Fuser in pydicom + scipy, and the splat approach.

  peer_fuse.py make DIR [--seed S]      write a phantom study as DICOM (pydicom) under DIR/dicom/{series}/,
                                        plus DIR/raw/ (geometry JSON + float32 pixels) for our Swift harness
  peer_fuse.py fuse DIR [--size N]      read DIR/dicom with pydicom, fuse with map_coordinates and by splatting,
                                        print timings as JSON, save the grids to DIR/peer-*.f32

Grid (same as Fuser's default): the sagittal series' field of view (slice corners ± half a slice spacing),
an isotropic size³ cube over its largest edge, d → +x, h → −z, w → +y (LPS). Resampling per stack: each slice
box-filtered about one voxel wide (antialiasing), bilinear in-plane, linear between neighbouring slices, half a spacing beyond the outer slices, stacks averaged where
they overlap, percentiles 0.5/99.5 over covered voxels to [0, 1].
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from scipy.ndimage import map_coordinates, uniform_filter

KINDS = {"Sagittal T1": 0, "Sagittal T2/STIR": 1, "Axial T2": 2}


# --- phantom study ---------------------------------------------------------------------------------

def phantom(points, kind, rng):
    """Intensity at LPS points (..., 3): body, vertebral bodies on a lordotic curve, discs, a CSF canal."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    spine_y = 10 + 0.0015 * z ** 2  # lordosis: the spine bows anteriorly
    v = np.where((x / 120) ** 2 + (y / 110) ** 2 < 1, 300.0, 20.0)
    body = (np.abs(x) < 22) & (np.abs(y - spine_y + 20) < 18)
    disc = np.abs(((z + 200) % 40) - 20) < 4
    v = np.where(body & ~disc, 600.0 if kind != 1 else 350.0, v)
    v = np.where(body & disc, 250.0 if kind == 0 else 800.0, v)
    canal = (x / 8) ** 2 + ((y - spine_y - 8) / 7) ** 2 < 1
    v = np.where(canal, 150.0 if kind == 0 else 1100.0, v)
    return np.clip(v + rng.normal(0, 15, v.shape), 0, 4095)


def make_slice(centre, row_dir, col_dir, spacing, size):
    row_dir, col_dir = np.asarray(row_dir, float), np.asarray(col_dir, float)
    position = centre - (size - 1) / 2 * spacing * (row_dir + col_dir)
    return dict(position=position, row_dir=row_dir, col_dir=col_dir, spacing=spacing, rows=size, cols=size)


def pixel_points(s):
    r, c = np.meshgrid(np.arange(s["rows"]), np.arange(s["cols"]), indexing="ij")
    return s["position"] + (c[..., None] * s["spacing"]) * s["row_dir"] + (r[..., None] * s["spacing"]) * s["col_dir"]


def make_study(out, seed):
    rng = np.random.default_rng(seed)
    series = []
    sag = lambda n, spacing, pix, size: [[make_slice(np.array([(k - (n - 1) / 2) * spacing, 0, 0]), (0, 1, 0), (0, 0, -1), pix, size)
                                          for k in range(n)]]
    series.append(("100", "Sagittal T1", sag(15, 3.5, 1.1, 256), 3.5))
    series.append(("200", "Sagittal T2/STIR", sag(17, 3.3, 1.0, 256), 3.3))
    stacks = []
    for i, zc in enumerate((-80, -40, 0, 40, 80)):
        t = np.radians((-15, -8, 0, 8, 15)[i])
        col_dir, normal = np.array([0, np.cos(t), np.sin(t)]), np.array([0, -np.sin(t), np.cos(t)])
        centre = np.array([0, 10 + 0.0015 * zc ** 2, zc])
        stacks.append([make_slice(centre + (j - 1.5) * 4 * normal, (1, 0, 0), col_dir, 0.9, 192) for j in range(4)])
    series.append(("300", "Axial T2", stacks, 4.0))

    raw = {"study_id": 1, "series": []}
    blobs = []
    offset = 0
    for series_id, kind, stacks, thickness in series:
        folder = os.path.join(out, "dicom", series_id)
        os.makedirs(folder, exist_ok=True)
        uid = generate_uid()
        entry = {"series_id": series_id, "kind": kind, "stacks": []}
        instance = 1
        for stack in stacks:
            slices = []
            for s in stack:
                pixels = phantom(pixel_points(s), KINDS[kind], rng).astype(np.uint16)
                write_dicom(os.path.join(folder, f"{instance}.dcm"), s, pixels, kind, series_id, uid, instance, thickness)
                slices.append({"position": s["position"].tolist(), "row_dir": s["row_dir"].tolist(), "col_dir": s["col_dir"].tolist(),
                               "spacing": s["spacing"], "rows": s["rows"], "cols": s["cols"], "thickness": thickness,
                               "instance": instance, "offset": offset})
                blobs.append(pixels.astype(np.float32).ravel())
                offset += pixels.size
                instance += 1
            entry["stacks"].append(slices)
        raw["series"].append(entry)
    os.makedirs(os.path.join(out, "raw"), exist_ok=True)
    with open(os.path.join(out, "raw", "study.json"), "w") as f:
        json.dump(raw, f)
    np.concatenate(blobs).tofile(os.path.join(out, "raw", "pixels.f32"))


def write_dicom(path, s, pixels, kind, series_id, series_uid, instance, thickness):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.StudyInstanceUID = "MR", "bench", "1.2.3.4"
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = series_uid, int(series_id), kind
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [float(v) for v in s["position"]]
    ds.ImageOrientationPatient = [float(v) for v in np.concatenate([s["row_dir"], s["col_dir"]])]
    ds.PixelSpacing = [s["spacing"], s["spacing"]]
    ds.SliceThickness = thickness
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


# --- reading ---------------------------------------------------------------------------------------

def read_study(folder):
    """Series → stacks of slices (dicts with geometry and float pixels), stacks split by orientation."""
    series = {}
    for series_id in sorted(os.listdir(folder)):
        slices = []
        for name in os.listdir(os.path.join(folder, series_id)):
            ds = pydicom.dcmread(os.path.join(folder, series_id, name))
            iop = np.array(ds.ImageOrientationPatient, float)
            slices.append(dict(kind=ds.SeriesDescription, position=np.array(ds.ImagePositionPatient, float),
                               row_dir=iop[:3], col_dir=iop[3:], dr=float(ds.PixelSpacing[0]), dc=float(ds.PixelSpacing[1]),
                               pixels=ds.pixel_array.astype(np.float32)))
        stacks = {}
        for s in slices:
            key = tuple(np.round(np.concatenate([s["row_dir"], s["col_dir"]]), 3))
            stacks.setdefault(key, []).append(s)
        ordered = []
        for group in stacks.values():
            n = np.cross(group[0]["row_dir"], group[0]["col_dir"])
            group.sort(key=lambda s: s["position"] @ n)
            ordered.append((n, group))
        series[series_id] = (slices[0]["kind"], ordered)
    return series


def spacing_of(n, group):
    offsets = np.array([s["position"] @ n for s in group])
    gaps = np.sort(np.diff(offsets)[np.diff(offsets) > 1e-6])
    return gaps[len(gaps) // 2] if len(gaps) else 4.0


# --- grid ------------------------------------------------------------------------------------------

def sagittal_grid(series, size):
    points = []
    for kind, stacks in series.values():
        if kind not in ("Sagittal T1", "Sagittal T2/STIR"):
            continue
        for n, group in stacks:
            reach = spacing_of(n, group) / 2
            for s in group:
                rows, cols = s["pixels"].shape
                for r, c in ((0, 0), (0, cols - 1), (rows - 1, 0), (rows - 1, cols - 1)):
                    p = s["position"] + c * s["dc"] * s["row_dir"] + r * s["dr"] * s["col_dir"]
                    points += [p + reach * n, p - reach * n]
    points = np.array(points)
    lo, hi = points.min(0), points.max(0)
    spacing = (hi - lo).max() / size
    centre = (lo + hi) / 2
    half = spacing * size / 2
    origin = np.array([centre[0] - half + spacing / 2, centre[1] - half + spacing / 2, centre[2] + half - spacing / 2])
    axes = np.array([[spacing, 0, 0], [0, 0, -spacing], [0, spacing, 0]])  # rows: patient step along d, h, w
    return origin, axes


def voxel_positions(origin, axes, size):
    i = np.arange(size, dtype=np.float64)
    d, h, w = np.meshgrid(i, i, i, indexing="ij")
    return origin + d[..., None] * axes[0] + h[..., None] * axes[1] + w[..., None] * axes[2]


# --- the two peers ---------------------------------------------------------------------------------

def smooth(s, voxel):
    """Fuser's antialiasing: a centred box about one voxel wide (2⌊f/2⌋ + 1 pixels), averaged over the pixels present."""
    size = [2 * (int(voxel / s["dr"] + 1e-6) // 2) + 1, 2 * (int(voxel / s["dc"] + 1e-6) // 2) + 1]
    if size == [1, 1]:
        return s["pixels"]
    ones = np.ones_like(s["pixels"])
    return uniform_filter(s["pixels"], size, mode="constant") / uniform_filter(ones, size, mode="constant")


def fuse_map_coordinates(series, positions, voxel, size):
    """Same resampling as Fuser with scipy: per stack a (k, r, c) volume of box-filtered slices sampled with
    map_coordinates(order=1)."""
    out = np.zeros((3, size, size, size), np.float32)
    for channel in range(3):
        total = np.zeros(positions.shape[:3], np.float32)
        count = np.zeros(positions.shape[:3], np.float32)
        for kind, stacks in series.values():
            if KINDS.get(kind) != channel:
                continue
            for n, group in stacks:
                spacing = spacing_of(n, group)
                first = group[0]
                volume = np.stack([smooth(s, voxel) for s in group])
                rel = positions - first["position"]
                k = (rel @ n) / spacing
                r = (rel @ first["col_dir"]) / first["dr"]
                c = (rel @ first["row_dir"]) / first["dc"]
                inside = (k >= -0.5) & (k <= len(group) - 0.5) & (r >= 0) & (r <= volume.shape[1] - 1) & (c >= 0) & (c <= volume.shape[2] - 1)
                coords = np.stack([np.clip(k[inside], 0, len(group) - 1), r[inside], c[inside]])
                total[inside] += map_coordinates(volume, coords, order=1, mode="nearest")
                count[inside] += 1
        normalize(out[channel], total, count)
    return out


def fuse_splat(series, origin, axes, size):
    """The usual Kaggle approach: each pixel into the voxel it falls in (holes between slices)."""
    inverse = np.linalg.inv(axes.T)
    out = np.zeros((3, size, size, size), np.float32)
    for channel in range(3):
        total = np.zeros(size ** 3, np.float32)
        count = np.zeros(size ** 3, np.float32)
        for kind, stacks in series.values():
            if KINDS.get(kind) != channel:
                continue
            for _, group in stacks:
                for s in group:
                    rows, cols = s["pixels"].shape
                    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
                    p = s["position"] + (c[..., None] * s["dc"]) * s["row_dir"] + (r[..., None] * s["dr"]) * s["col_dir"]
                    idx = np.rint((p - origin) @ inverse.T).astype(np.int64).reshape(-1, 3)
                    ok = np.all((idx >= 0) & (idx < size), axis=1)
                    flat = (idx[ok, 0] * size + idx[ok, 1]) * size + idx[ok, 2]
                    total += np.bincount(flat, weights=s["pixels"].ravel()[ok], minlength=size ** 3).astype(np.float32)
                    count += np.bincount(flat, minlength=size ** 3).astype(np.float32)
        normalize(out[channel].reshape(-1), total, count)
    return out


def normalize(out, total, count):
    covered = count > 0
    if not covered.any():
        return
    values = total[covered] / count[covered]
    lo, hi = np.percentile(values, [0.5, 99.5])
    out[covered] = np.clip((values - lo) / (hi - lo), 0, 1) if hi > lo else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("--seed", type=int, default=0)
    f = sub.add_parser("fuse")
    f.add_argument("dir")
    f.add_argument("--size", type=int, default=128)
    f.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if a.command == "make":
        make_study(a.dir, a.seed)
        return
    t0 = time.perf_counter()
    series = read_study(os.path.join(a.dir, "dicom"))
    read_s = time.perf_counter() - t0
    timings = {"read_pydicom_s": read_s, "map_coordinates_s": [], "splat_s": []}
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        origin, axes = sagittal_grid(series, a.size)
        fused = fuse_map_coordinates(series, voxel_positions(origin, axes, a.size), axes[0, 0], a.size)
        timings["map_coordinates_s"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        origin, axes = sagittal_grid(series, a.size)
        splat = fuse_splat(series, origin, axes, a.size)
        timings["splat_s"].append(time.perf_counter() - t0)
    fused.tofile(os.path.join(a.dir, f"peer-map_coordinates-{a.size}.f32"))
    splat.tofile(os.path.join(a.dir, f"peer-splat-{a.size}.f32"))
    # Holes: voxels inside the sagittal slab that a channel leaves empty.
    timings["empty_fraction_t1"] = {"map_coordinates": float((fused[0] == 0).mean()), "splat": float((splat[0] == 0).mean())}
    print(json.dumps(timings))


if __name__ == "__main__":
    sys.exit(main())
