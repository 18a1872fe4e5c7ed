"""Python peer for `fuse3d synth`: the same cohort shape (RSNA layout, 3 series per study, same
matrices and slice counts, 12-bit MR Image Storage files) rendered with numpy and written with
pydicom. The anatomy is simpler (a straight column of ellipsoids), so the peer does less work per
pixel than fuse3d; the comparison is a lower bound on fuse3d's advantage.

Usage: peer_pydicom.py STUDIES OUT
"""
import os
import sys

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR = "1.2.840.10008.5.1.4.1.1.4"


def render(points, rng):
    """Signal at patient-space points (..., 3): vertebral bodies, discs, a canal, soft tissue."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    v = np.full(x.shape, 0.3)
    pitch = 34.0
    k = np.round(z / pitch)
    dz = z - k * pitch
    body = (x / 21) ** 2 + (y / 15) ** 2 <= 1
    v = np.where(body & (np.abs(dz) <= 12.5), 0.7, v)
    v = np.where(body & (np.abs(dz) > 12.5), 0.85, v)
    canal = (x / 7.5) ** 2 + ((y - 24.5) / 7.5) ** 2 <= 1
    v = np.where(canal, 1.0, v)
    noise = rng.normal(0, 0.03, (2,) + x.shape)
    return np.sqrt((v + noise[0]) ** 2 + noise[1] ** 2)


def write_series(folder, study, series, desc, planes, rows, rng):
    os.makedirs(folder, exist_ok=True)
    for i, (ipp, rowdir, coldir, px) in enumerate(planes, start=1):
        r = np.arange(rows)[:, None, None]
        c = np.arange(rows)[None, :, None]
        pts = ipp + c * px * rowdir + r * px * coldir
        normal = np.cross(rowdir, coldir)
        img = sum(render(pts + o * normal, rng) for o in (-1.2, 0, 1.2)) / 3
        pixels = np.clip(img * 2200, 0, 4095).astype(np.uint16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MR
        meta.MediaStorageSOPInstanceUID = f"{study}.{series}.{i}"
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MR, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = str(study), str(series)
        ds.Modality, ds.SeriesDescription, ds.InstanceNumber = "MR", desc, i
        ds.PatientID, ds.FrameOfReferenceUID = str(study), generate_uid()
        ds.ImagePositionPatient = [float(v) for v in ipp]
        ds.ImageOrientationPatient = [float(v) for v in (*rowdir, *coldir)]
        ds.PixelSpacing, ds.SliceThickness = [px, px], 3.5
        ds.Rows = ds.Columns = rows
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = pixels.tobytes()
        ds.save_as(os.path.join(folder, f"{i}.dcm"), enforce_file_format=True)


def main():
    studies, out = int(sys.argv[1]), sys.argv[2]
    rng = np.random.default_rng(0)
    sag = (np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0]))
    ax = (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    for s in range(studies):
        study = 1_000_000 + s
        base = os.path.join(out, "train_images", str(study))
        for n, (desc, count) in enumerate([("Sagittal T1", 16), ("Sagittal T2/STIR", 16)]):
            planes = [(np.array([(k - 8) * 4.0, -140.0, 140.0]), *sag, 280 / 256) for k in range(count)]
            write_series(os.path.join(base, str(10 + n)), study, 10 + n, desc, planes, 256, rng)
        planes = [(np.array([-95.0, -95.0, lvl * 34.0 - 17 + (k - 2) * 4.0]), *ax, 190 / 192)
                  for lvl in range(-2, 3) for k in range(4)]
        write_series(os.path.join(base, "12"), study, 12, "Axial T2", planes, 192, rng)
        print(f"peer: {s + 1}/{studies}", file=sys.stderr)


if __name__ == "__main__":
    main()
