#!/usr/bin/env python3
"""Regenerates the crafted files of the crash corpus (the fuzzer's and the campaign's finds are kept as found).

usage: make_corpus.py FUSE3D_BINARY   (the project's .venv python: it needs pydicom)

The crafted files are cut from `fuse3d synth --studies 2 --seed 5 --sagittal-matrix 32 --axial-matrix 32` (explicit
VR little endian) and the same cohort written with --transfer-syntax jpeg2000: each replaces one Sagittal T1 slice
of the first study, so that in CrashCorpusTests' ingest it sits in a stack beside good slices and reaches fusion.
"""
import subprocess
import sys
import tempfile
from pathlib import Path

import pydicom
from pydicom import config

config.settings.reading_validation_mode = config.IGNORE
config.settings.writing_validation_mode = config.IGNORE

HERE = Path(__file__).resolve().parent
SYNTH = ["--studies", "2", "--seed", "5", "--sagittal-matrix", "32", "--axial-matrix", "32"]


def cohort(fuse3d: str, tmp: Path, syntax: str) -> Path:
    out = tmp / syntax
    subprocess.run([fuse3d, "synth", "--out", str(out), "--transfer-syntax", syntax] + SYNTH, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def sagittal_t1(archive: Path) -> tuple[str, str]:
    rows = [l.split(",") for l in (archive / "train_series_descriptions.csv").read_text().splitlines()[1:]]
    study = sorted({r[0] for r in rows})[0]
    series = next(r[1] for r in rows if r[0] == study and r[2] == "Sagittal T1")
    return study, series


def crafted(fuse3d: str):
    """(name, slice file, source syntax, edit) for each crafted file."""
    def set_values(**values):
        def edit(ds):
            for k, v in values.items():
                if k in ("Rows", "Columns"):
                    setattr(ds, k, v)
                else:
                    ds.add_new(pydicom.datadict.tag_for_keyword(k), pydicom.datadict.dictionary_VR(
                        pydicom.datadict.tag_for_keyword(k)), v)
        return edit

    return [
        ("j2k-rows-smaller-than-codestream.dcm", "5.dcm", "jpeg2000", set_values(Rows=16, Columns=16)),
        ("pixelspacing-1e308.dcm", "7.dcm", "explicit-le", set_values(PixelSpacing="1e308\\1e308")),
        ("position-1e308.dcm", "9.dcm", "explicit-le", set_values(ImagePositionPatient="1e308\\1e308\\1e308")),
        ("slicethickness-nan.dcm", "11.dcm", "explicit-le", set_values(SliceThickness="NaN")),
        ("j2k-frames-4096-of-8192x8192.dcm", "13.dcm", "jpeg2000",
         set_values(Rows=8192, Columns=8192, NumberOfFrames="4096")),
    ]


def main():
    fuse3d = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        archives = {s: cohort(fuse3d, Path(tmp), s) for s in ("explicit-le", "jpeg2000")}
        study, series = sagittal_t1(archives["explicit-le"])
        for name, slice_file, syntax, edit in crafted(fuse3d):
            src = archives[syntax] / "train_images" / study / series / slice_file
            ds = pydicom.dcmread(src)
            edit(ds)
            ds.save_as(HERE / name, enforce_file_format=False)
            print(f"{name}: train_images/{study}/{series}/{slice_file} ({syntax}), {(HERE / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
