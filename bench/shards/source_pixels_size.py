"""What keeping the source pixels in the shards would cost (issue 33's second half, not built yet): for every study of
an RSNA-layout archive, each of its three series' decoded slices as float16 (each series scaled by its own robust
range, as the fused grid is), written the way the shards write `volumes` (HDF5, byte-shuffle + Zstandard level 1 via
hdf5plugin, one chunk per slice), and, beside them, the study's fused 128³ sample as ingest stored it. Prints, per
study and in total, the bytes of each and the seconds h5py takes to read a study's slices back, so the storage and
loader cost of the format change is argued from measurements (docs/learning-on-the-phantom.md).

Example:
  fuse3d synth --studies 6 --out /tmp/r6 --sagittal-matrix 448 --axial-matrix 384 --axial-slices 7-9
  fuse3d ingest /tmp/r6 --out /tmp/r6-shards
  .venv/bin/python bench/shards/source_pixels_size.py /tmp/r6 /tmp/r6-shards
"""
import csv
import glob
import os
import sys
import tempfile
import time

import h5py
import hdf5plugin
import numpy as np
import pydicom

SERIES = {"Sagittal T1": "sagittal_t1", "Sagittal T2/STIR": "sagittal_t2_stir", "Axial T2": "axial_t2"}


def series_of(root):
    """study id → {channel: [series folder, …]} from train_series_descriptions.csv."""
    out = {}
    with open(os.path.join(root, "train_series_descriptions.csv"), newline="", encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            channel = SERIES.get(row["series_description"])
            if channel:
                out.setdefault(row["study_id"], {}).setdefault(channel, []).append(
                    os.path.join(root, "train_images", row["study_id"], row["series_id"]))
    return out


def slices(folders):
    """The series' slices as float16 scaled by the 0.5th–99.5th percentile of its pixels, and their pixel spacings."""
    images, spacings = [], []
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(folder, "*.dcm"))):
            ds = pydicom.dcmread(path)
            images.append(ds.pixel_array.astype(np.float32))
            spacings.append(float(ds.PixelSpacing[0]))
    lo, hi = np.percentile(np.concatenate([i.ravel() for i in images]), [0.5, 99.5])
    return [np.clip((i - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float16) for i in images], spacings


def main():
    archive, shards = sys.argv[1], sys.argv[2]
    studies = series_of(archive)
    fused = {}
    for path in sorted(glob.glob(os.path.join(shards, "shard-*.h5"))):
        with h5py.File(path, "r") as f:
            ids, n = f["study_id"][:], f["volumes"].id.get_num_chunks()
            per_chunk = {}
            for k in range(n):
                info = f["volumes"].id.get_chunk_info(k)
                per_chunk.setdefault(info.chunk_offset[0], 0)
                per_chunk[info.chunk_offset[0]] += info.size
            for i, sid in enumerate(ids):
                fused[str(sid)] = per_chunk.get(i, 0)
    total_source = total_fused = 0
    reads = []
    print("study       slices  pixels (M)  spacing mm (min–max)  source MB  fused 128³ MB  ratio  read s")
    with tempfile.TemporaryDirectory() as tmp:
        for sid in sorted(studies):
            path = os.path.join(tmp, f"{sid}.h5")
            count = pixels = 0
            spacing = []
            with h5py.File(path, "w", libver=("v108", "v108"), track_order=False) as f:
                for channel, folders in sorted(studies[sid].items()):
                    images, s = slices(folders)
                    spacing += s
                    for k, image in enumerate(images):
                        f.create_dataset(f"{channel}/{k}", data=image, chunks=image.shape, shuffle=True,
                                         **hdf5plugin.Zstd(clevel=1), track_times=False)
                        count += 1
                        pixels += image.size
            size = os.path.getsize(path)
            start = time.perf_counter()
            def read(name, obj):
                if isinstance(obj, h5py.Dataset):
                    obj[()]
                return None  # anything else stops visititems
            with h5py.File(path, "r") as f:
                f.visititems(read)
            reads.append(time.perf_counter() - start)
            total_source += size
            total_fused += fused.get(sid, 0)
            print(f"{sid:>10}  {count:6d}  {pixels / 1e6:10.1f}  {min(spacing):.2f}–{max(spacing):.2f}"
                  f"             {size / 1e6:9.2f}  {fused.get(sid, 0) / 1e6:13.2f}  {size / max(fused.get(sid, 1), 1):5.1f}  {reads[-1]:.3f}")
    n = len(studies)
    print(f"mean per study: source pixels {total_source / n / 1e6:.2f} MB, fused 128³ sample {total_fused / n / 1e6:.2f} MB "
          f"({total_source / max(total_fused, 1):.1f}×); h5py reads a study's slices in {np.median(reads):.3f} s (median)")


if __name__ == "__main__":
    main()
