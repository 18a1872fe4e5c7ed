#!/usr/bin/env python3
"""Writes the seed corpus of `make fuzz` into a folder: small greyscale DICOM files of every transfer syntax fuse3d
reads (pydicom's and pydicom-data's test files: explicit/implicit little endian, big endian, deflate, RLE, JPEG
baseline/extended/lossless, JPEG-LS, JPEG 2000), and, given a fuse3d binary, a few files of each series of one
`fuse3d synth` study per transfer syntax it writes (explicit-le, jpeg2000, jpeg-ls, rle, jpeg-lossless) and of an
Enhanced MR study. Nothing is written when the folder already holds files (libFuzzer's finds are kept).

usage: fuzz_seeds.py CORPUS_DIR [FUSE3D_BINARY]   (run with the project's .venv python: it needs pydicom)
"""
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from mutate_campaign import PYDICOM_SEEDS, SYNTH_SYNTAXES, pydicom_file, synth  # noqa: E402

MAX_BYTES = 128 * 1024  # libFuzzer's -max_len is set from the largest seed: keep it small


def main():
    corpus = Path(sys.argv[1])
    fuse3d = sys.argv[2] if len(sys.argv) > 2 else None
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        print(f"{corpus}: already seeded ({sum(1 for _ in corpus.iterdir())} files)")
        return
    n = 0
    for name in PYDICOM_SEEDS:
        p = pydicom_file(name)
        if p is not None and p.stat().st_size <= MAX_BYTES:
            shutil.copy(p, corpus / f"pydicom-{name}")
            n += 1
    if fuse3d and Path(fuse3d).exists():
        rng = random.Random(0)
        with tempfile.TemporaryDirectory() as tmp:
            for syntax in SYNTH_SYNTAXES + ["enhanced"]:
                cohort = synth(fuse3d, Path(tmp) / syntax, "explicit-le" if syntax == "enhanced" else syntax, 1, 0,
                               enhanced=syntax == "enhanced")
                for series in sorted((cohort / "train_images").glob("*/*")):
                    for f in rng.sample(sorted(series.glob("*.dcm")), 1):
                        if f.stat().st_size <= MAX_BYTES:
                            shutil.copy(f, corpus / f"synth-{syntax}-{series.name}-{f.name}")
                            n += 1
    else:
        print("no fuse3d binary given or found: synth seeds left out (pydicom's only)")
    print(f"{corpus}: {n} seed files")


if __name__ == "__main__":
    main()
