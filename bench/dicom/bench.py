#!/usr/bin/env python3
"""DICOM reading: fuse3d (GDCM) against pydicom, side by side in one process tree.

Builds a folder of real MR files (pydicom's fixtures, uncompressed, RLE, JPEG-LS and JPEG lossless
variants, copied to N files each with a fresh SOP Instance UID), then alternates, run after run:
  header scan:  `fuse3d scan DIR --json`          vs  pydicom dcmread(stop_before_pixels=True) per file
  full decode:  `fuse3d scan DIR --decode --json` vs  pydicom dcmread + pixel_array (+ modality LUT)
and prints medians, files/s, MB/s and the per-pair ratio median. With --write, replaces the
"## DICOM reading" section of BENCHMARKS.md.

Example:  .venv/bin/python bench/dicom/bench.py --bin .build/release/fuse3d --copies 150 --runs 5 --write
"""
import argparse, os, re, shutil, statistics, subprocess, sys, tempfile, time

FIXTURES = [  # (file, transfer syntax in words)
    ("MR_small.dcm", "explicit little endian"),
    ("MR_small_RLE.dcm", "RLE"),
    ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS lossless"),
    ("MR2_UNCR.dcm", "explicit little endian, 1024x1024"),
    ("emri_small_RLE.dcm", "RLE, 10 frames"),
    ("emri_small_jpeg_ls_lossless.dcm", "JPEG-LS lossless, 10 frames"),
]

PEER = r'''
import os, sys
from pydicom import dcmread
from pydicom.pixels import apply_modality_lut
root, decode = sys.argv[1], sys.argv[2] == "1"
n = 0
for dirpath, _, names in os.walk(root):
    for name in sorted(names):
        path = os.path.join(dirpath, name)
        if decode:
            d = dcmread(path)
            a = apply_modality_lut(d.pixel_array, d)
        else:
            d = dcmread(path, stop_before_pixels=True)
            _ = (d.StudyInstanceUID, d.SeriesInstanceUID, d.get("ImagePositionPatient"), d.get("ImageOrientationPatient"))
        n += 1
print(n)
'''


def build(dir_, copies):
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid
    total_bytes = 0
    for name, _ in FIXTURES:
        src = get_testdata_file(name)
        d = dcmread(src)
        series = os.path.join(dir_, os.path.splitext(name)[0])
        os.makedirs(series, exist_ok=True)
        for k in range(copies):
            d.SOPInstanceUID = generate_uid()
            d.file_meta.MediaStorageSOPInstanceUID = d.SOPInstanceUID
            out = os.path.join(series, f"{k}.dcm")
            d.save_as(out)
        rows, cols, frames = d.Rows, d.Columns, int(d.get("NumberOfFrames", 1))
        total_bytes += copies * rows * cols * frames * 2
    return total_bytes


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=".build/release/fuse3d")
    ap.add_argument("--copies", type=int, default=150)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="fuse3d-bench-dicom-")
    try:
        pixel_bytes = build(tmp, a.copies)
        files = a.copies * len(FIXTURES)
        rows = []
        one_core = ["taskset", "-c", "0"] if shutil.which("taskset") else []
        for label, ours, peer in [
            ("header scan", [a.bin, "scan", tmp, "--json"], [sys.executable, "-c", PEER, tmp, "0"]),
            ("full decode", [a.bin, "scan", tmp, "--decode", "--json"], [sys.executable, "-c", PEER, tmp, "1"]),
            ("header scan, 1 core", one_core + [a.bin, "scan", tmp, "--json"], one_core + [sys.executable, "-c", PEER, tmp, "0"]),
            ("full decode, 1 core", one_core + [a.bin, "scan", tmp, "--decode", "--json"], one_core + [sys.executable, "-c", PEER, tmp, "1"]),
        ]:
            timed(ours); timed(peer)  # warm-up: page cache, imports
            t_ours, t_peer = [], []
            for _ in range(a.runs):
                t_ours.append(timed(ours)); t_peer.append(timed(peer))
            ratio = statistics.median([p / o for o, p in zip(t_ours, t_peer)])
            mo, mp = statistics.median(t_ours), statistics.median(t_peer)
            rows.append((label, mo, mp, ratio))
            extra = f", {pixel_bytes / mo / 1e6:.0f} vs {pixel_bytes / mp / 1e6:.0f} MB/s" if label.startswith("full decode") else ""
            print(f"{label}: fuse3d {mo:.3f} s ({files / mo:.0f} files/s), pydicom {mp:.3f} s ({files / mp:.0f} files/s){extra}; "
                  f"pydicom/fuse3d time ratio {ratio:.2f}")
        if a.write:
            section = ["## DICOM reading", "",
                       f"{files} files ({', '.join(f for f, _ in FIXTURES)}; {a.copies} copies each), "
                       f"{pixel_bytes / 1e6:.0f} MB of 16-bit pixels. Whole processes, {a.runs} alternating runs after a warm-up, "
                       "medians; the ratio is the median of per-pair pydicom/fuse3d time ratios (>1: fuse3d faster). "
                       "fuse3d reads files on all cores, pydicom on one (its usual use); the '1 core' rows pin both to one core (taskset). "
                       "fuse3d's time includes its start-up (loading libtorch, about 0.2 s).",
                       "Run: `.venv/bin/python bench/dicom/bench.py --write`.", "",
                       "| job | fuse3d (s) | pydicom (s) | pydicom/fuse3d |", "|---|---|---|---|"]
            for label, mo, mp, r in rows:
                section.append(f"| {label} | {mo:.3f} | {mp:.3f} | {r:.2f} |")
            write_section("## DICOM reading", "\n".join(section) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_section(title, text):
    path = os.path.join(os.path.dirname(__file__), "..", "..", "BENCHMARKS.md")
    old = open(path).read() if os.path.exists(path) else "# Benchmarks\n\nRatios of whole-process timings against peer implementations, measured side by side.\n"
    pattern = re.compile(r"^" + re.escape(title) + r"\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(text + "\n", old) if pattern.search(old) else old.rstrip() + "\n\n" + text
    open(path, "w").write(new)


if __name__ == "__main__":
    main()
