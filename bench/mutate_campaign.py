#!/usr/bin/env python3
"""CLI-level mutation campaign: hostile DICOM files through the real fuse3d binary.

Takes good DICOM files (pydicom's and pydicom-data's greyscale test files of every transfer syntax fuse3d reads,
plus `fuse3d synth` output in explicit-le, jpeg2000, jpeg-ls, rle and jpeg-lossless, and an Enhanced MR cohort),
makes mutants of them and runs them through

  * `fuse3d scan --decode --json DIR` (several mutants per archive), and
  * `fuse3d ingest ARCHIVE` of a two-study synth archive in which a few files of one study are mutated while the
    other study is left untouched,

each under a per-run timeout, with MALLOC_CHECK_=3 and MALLOC_PERTURB_ set (a different byte each run). It counts

  * crashes: death by a signal (a Swift trap is SIGILL or SIGTRAP, glibc's heap checks and abort() are SIGABRT,
    a wild write SIGSEGV/SIGBUS), or a glibc/Swift fatal message on stderr whatever the status;
  * hangs: the run outlived --timeout;
  * lost studies (ingest only): ingest exited != 0, or the untouched study is not in ingest-report.json as fused;
  * error exits (scan only): a non-zero exit without a signal (scan's status is 0 whenever it finishes).

Every crashing input is saved under OUT/crashes/<id>/: the mutant(s) (attributed to one file by re-running each
mutant alone), what was done to it (mutation.txt), the command, the signal and the stderr tail. A summary is
written to OUT/summary.json and printed. The same --seed gives the same mutants (the binary's own behaviour, e.g.
MALLOC_PERTURB_ effects and timing, may still vary).

Mutations: bit flips, byte overwrites with boundary bytes, truncations, deleted/duplicated chunks, element
lengths that lie (explicit and implicit little-endian files are walked to find each element's length field),
hostile values of Rows, Columns, BitsAllocated, BitsStored, HighBit, PixelRepresentation, SamplesPerPixel,
PixelSpacing, ImageOrientationPatient, ImagePositionPatient, SliceThickness, SpacingBetweenSlices, RescaleSlope,
RescaleIntercept, NumberOfFrames (written by pydicom, the pixel data left as it was: e.g. Rows and Columns
smaller than a JPEG 2000 codestream's), corrupted encapsulated fragment lengths, and codestream header fields:
JPEG 2000 SIZ (Xsiz/Ysiz/tile sizes/Csiz/Ssiz), JPEG and JPEG-LS SOF (precision, lines, samples per line,
components), and the RLE header (segment count and offsets).

Run it with the project's .venv python (pydicom and numpy), e.g.

  .venv/bin/python bench/mutate_campaign.py --fuse3d .build/release/fuse3d --seed 1 --duration 900 --out bench/out/mutate

The campaign takes gdb stacks of the first --gdb-max crashes only (each costs 1-4 s); afterwards

  .venv/bin/python bench/mutate_campaign.py --fuse3d .build/release/fuse3d --out bench/out/mutate --triage

re-runs every saved single-file crash without a stack under gdb and regroups summary.json by signature
(signal | glibc or Swift message | first GDCM, shim, Ingest or codec frame).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom
from pydicom import config as pdconfig

pdconfig.settings.reading_validation_mode = pdconfig.IGNORE
pdconfig.settings.writing_validation_mode = pdconfig.IGNORE

# Greyscale files of every transfer syntax fuse3d reads (colour ones are refused before decode; two are kept
# for their codecs' header paths). Names are looked up in pydicom's test_files, then in pydicom-data.
PYDICOM_SEEDS = [
    "MR_small.dcm",                       # explicit VR little endian
    "MR_small_implicit.dcm",              # implicit VR little endian
    "MR_small_bigendian.dcm",             # explicit VR big endian
    "MR_small_expb.dcm",                  # explicit VR big endian
    "image_dfl.dcm",                      # deflated explicit VR little endian
    "MR_small_RLE.dcm",                   # RLE lossless
    "emri_small_RLE.dcm",                 # RLE lossless, 10 frames
    "MR_small_jp2klossless.dcm",          # JPEG 2000 lossless
    "693_J2KI.dcm",                       # JPEG 2000
    "JPEG2000.dcm",                       # JPEG 2000
    "emri_small_jpeg_2k_lossless.dcm",    # JPEG 2000 lossless, 10 frames
    "JPGExtended.dcm",                    # JPEG extended (process 2 and 4)
    "JPEG-LL.dcm",                        # JPEG lossless process 14 SV1
    "MR_small_jpeg_ls_lossless.dcm",      # JPEG-LS lossless
    "JPEGLSNearLossless_16.dcm",          # JPEG-LS near-lossless
    "emri_small_jpeg_ls_lossless.dcm",    # JPEG-LS lossless, 10 frames
    "SC_rgb_small_odd_jpeg.dcm",          # JPEG baseline (colour)
    "SC_rgb_jpeg_gdcm.dcm",               # JPEG lossless (colour)
]
SYNTH_SYNTAXES = ["explicit-le", "jpeg2000", "jpeg-ls", "rle", "jpeg-lossless"]

SIGNALS = {s.value: s.name for s in signal.Signals}
FATAL_PATTERNS = re.compile(
    r"(Fatal error|malloc\(\)|free\(\)|double free|corrupted|munmap_chunk|realloc\(\)|"
    r"AddressSanitizer|Illegal instruction|Segmentation fault|stack smashing|terminate called|Assertion .* failed)")


# --------------------------------------------------------------------------------------------------------------
# Inputs


def site_packages() -> Path:
    return Path(pydicom.__file__).resolve().parent.parent


def pydicom_file(name: str) -> Path | None:
    sp = site_packages()
    for p in [sp / "pydicom/data/test_files" / name, sp / "data_store/data" / name]:
        if p.exists():
            return p
    return None


def run_quiet(cmd: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def synth(fuse3d: str, out: Path, syntax: str, studies: int, seed: int, enhanced: bool = False) -> Path:
    if not (out / "train_images").exists():
        cmd = [fuse3d, "synth", "--studies", str(studies), "--out", str(out), "--seed", str(seed),
               "--sagittal-matrix", "32", "--axial-matrix", "32", "--transfer-syntax", syntax]
        if enhanced:
            cmd.append("--enhanced")
        r = run_quiet(cmd)
        if r.returncode != 0:
            sys.exit(f"synth failed: {' '.join(cmd)}\n{r.stderr.decode(errors='replace')}")
    return out


def good_files(fuse3d: str, work: Path, seed: int, per_series: int = 2) -> list[Path]:
    """The seeds: pydicom's files and a few files of each series of one synth study per transfer syntax."""
    files = [p for p in (pydicom_file(n) for n in PYDICOM_SEEDS) if p is not None]
    rng = random.Random(seed)
    for syntax in SYNTH_SYNTAXES + ["enhanced"]:
        cohort = synth(fuse3d, work / f"synth-{syntax}", "explicit-le" if syntax == "enhanced" else syntax, 1, seed,
                       enhanced=syntax == "enhanced")
        for series in sorted((cohort / "train_images").glob("*/*")):
            dcms = sorted(series.glob("*.dcm"))
            files += rng.sample(dcms, min(per_series, len(dcms)))
    return files


# --------------------------------------------------------------------------------------------------------------
# Mutations. Each takes (data: bytes, rng) and returns (new bytes, description) or None when it does not apply.

INTERESTING_BYTES = [0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF]
INTERESTING_U32 = [0, 1, 2, 0x7F, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE,
                   0xFFFFFFFF]

HOSTILE_FLOATS = ["1e308", "-1e308", "1.7976931348623157e308", "NaN", "nan", "inf", "-inf", "Infinity", "1e-308",
                  "5e-324", "0", "-0", "-1", "1e30", "1e15", "9.9e99", "1e999", " ", "x", "1/0"]
HOSTILE_INTS = ["0", "-1", "1", "2", "3", "4095", "4096", "4097", "65535", "65536", "2147483647", "2147483648",
                "-2147483648", "9223372036854775807", "99999999999999999999", "1e9", "1e15", "NaN", "inf", " ", "x"]
HOSTILE_US = [0, 1, 2, 3, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 48, 63, 64, 127, 128, 255, 256, 4096, 8192,
              8193, 16384, 32767, 32768, 65535]


def bit_flip(data: bytes, rng: random.Random):
    b = bytearray(data)
    n = rng.choice([1, 1, 2, 4, 8, 16])
    where = []
    for _ in range(n):
        i = rng.randrange(len(b))
        bit = rng.randrange(8)
        b[i] ^= 1 << bit
        where.append(f"{i}:{bit}")
    return bytes(b), f"bit flips at {', '.join(where)}"


def byte_overwrite(data: bytes, rng: random.Random):
    b = bytearray(data)
    n = rng.choice([1, 2, 4, 8])
    at = rng.randrange(len(b))
    v = rng.choice(INTERESTING_BYTES)
    for i in range(at, min(at + n, len(b))):
        b[i] = v
    return bytes(b), f"{n} bytes at {at} set to 0x{v:02X}"


def truncate(data: bytes, rng: random.Random):
    at = rng.choice([rng.randrange(len(data)), len(data) - rng.randrange(1, min(len(data), 512)),
                     rng.randrange(128, min(len(data), 2048)) if len(data) > 256 else 1])
    at = max(1, min(at, len(data) - 1))
    return data[:at], f"truncated to {at} of {len(data)} bytes"


def chunk_edit(data: bytes, rng: random.Random):
    a = rng.randrange(len(data))
    n = rng.randrange(1, min(256, len(data) - a) + 1)
    if rng.random() < 0.5:
        return data[:a] + data[a + n:], f"{n} bytes deleted at {a}"
    return data[:a] + data[a:a + n] + data[a:], f"{n} bytes duplicated at {a}"


def walk_elements(data: bytes):
    """Top-level and nested elements of an explicit or implicit VR little-endian file after the preamble:
    yields (tag_offset, length_offset, length_size, length, vr). Stops at the first thing it cannot parse."""
    if len(data) < 132 or data[128:132] != b"DICM":
        return
    i = 132
    explicit = True
    meta_end = None
    ts = None
    long_vrs = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
    while i + 8 <= len(data):
        group, elem = struct.unpack_from("<HH", data, i)
        if meta_end is not None and i >= meta_end and group != 0x0002:
            explicit = ts != b"1.2.840.10008.1.2"
            meta_end = None
        if group == 0xFFFE:  # item, item delimiter, sequence delimiter: 4-byte length, no VR
            length = struct.unpack_from("<I", data, i + 4)[0]
            yield i, i + 4, 4, length, b"--"
            i += 8
            if elem == 0xE000 and length != 0xFFFFFFFF and length < len(data):
                # An item of known length: walk into it (a sequence's data set) unless it is a pixel fragment.
                pass
            continue
        vr = data[i + 4:i + 6]
        if (explicit or group == 0x0002) and re.fullmatch(rb"[A-Z]{2}", vr or b""):
            if vr in long_vrs:
                if i + 12 > len(data):
                    return
                length = struct.unpack_from("<I", data, i + 8)[0]
                yield i, i + 8, 4, length, vr
                header = 12
            else:
                length = struct.unpack_from("<H", data, i + 6)[0]
                yield i, i + 6, 2, length, vr
                header = 8
        else:
            vr = b"??"
            length = struct.unpack_from("<I", data, i + 4)[0]
            yield i, i + 4, 4, length, vr
            header = 8
        if group == 0x0002 and elem == 0x0000 and header == 8 and length == 4:
            meta_end = i + header + 4 + struct.unpack_from("<I", data, i + header)[0]
        if group == 0x0002 and elem == 0x0010:
            ts = data[i + header:i + header + length].rstrip(b"\0 ")
        if length == 0xFFFFFFFF or vr == b"SQ":
            i += header  # undefined length or sequence: step inside
        elif group == 0x7FE0 and elem == 0x0010:
            return
        else:
            i += header + length


def lying_length(data: bytes, rng: random.Random):
    elems = list(walk_elements(data))
    if not elems:
        return None
    tag_off, len_off, size, length, vr = rng.choice(elems)
    if size == 2:
        new = rng.choice([0, 1, length + 1, length + 2, max(length - 1, 0), 0xFFFE, 0xFFFF, rng.randrange(0x10000)])
        fmt = "<H"
    else:
        new = rng.choice(INTERESTING_U32 + [length + 1, length + 2, max(length - 2, 0), length * 2,
                                            len(data) - len_off, len(data) - len_off + 4, rng.randrange(1 << 32)])
        new &= 0xFFFFFFFF
        fmt = "<I"
    b = bytearray(data)
    struct.pack_into(fmt, b, len_off, new)
    group, elem = struct.unpack_from("<HH", data, tag_off)
    return bytes(b), f"length of ({group:04X},{elem:04X}) {vr.decode(errors='replace')} at {len_off}: {length} -> {new}"


def fragment_length(data: bytes, rng: random.Random):
    """Corrupts one item length of the encapsulated pixel data (offset table or fragment)."""
    pd = data.rfind(b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff")
    if pd < 0:
        return None
    items = [m.start() for m in re.finditer(rb"\xfe\xff\x00\xe0", data[pd:])]
    if not items:
        return None
    at = pd + rng.choice(items) + 4
    old = struct.unpack_from("<I", data, at)[0]
    new = rng.choice(INTERESTING_U32 + [old + 1, old + 2, max(old - 2, 0), old * 2, old // 2,
                                        len(data) - at, len(data) - at + 8]) & 0xFFFFFFFF
    b = bytearray(data)
    struct.pack_into("<I", b, at, new)
    return bytes(b), f"pixel item length at {at}: {old} -> {new}"


def j2k_siz(data: bytes, rng: random.Random):
    """JPEG 2000 SIZ marker segment: FF4F FF51 Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz
    then Ssiz XRsiz YRsiz per component (big-endian)."""
    hits = [m.start() for m in re.finditer(rb"\xff\x4f\xff\x51", data)]
    if not hits:
        return None
    siz = rng.choice(hits) + 4
    fields = {"Xsiz": 4, "Ysiz": 8, "XOsiz": 12, "YOsiz": 16, "XTsiz": 20, "YTsiz": 24, "Csiz": 36}
    name = rng.choice(list(fields) + ["Ssiz", "Xsiz", "Ysiz", "Xsiz+Ysiz"])
    b = bytearray(data)
    if siz + 40 > len(b):
        return None
    if name == "Ssiz":
        at = siz + 38
        old = b[at]
        b[at] = rng.choice([0x00, 0x07, 0x0B, 0x0F, 0x10, 0x1F, 0x25, 0x26, 0x8F, 0x7F, 0xFF])
        return bytes(b), f"J2K SIZ Ssiz at {at}: 0x{old:02X} -> 0x{b[at]:02X}"
    if name == "Csiz":
        at = siz + 36
        old = struct.unpack_from(">H", b, at)[0]
        new = rng.choice([0, 2, 3, 4, 255, 16384, 65535])
        struct.pack_into(">H", b, at, new)
        return bytes(b), f"J2K SIZ Csiz at {at}: {old} -> {new}"
    done = []
    for n in (["Xsiz", "Ysiz"] if name == "Xsiz+Ysiz" else [name]):
        at = siz + fields[n]
        old = struct.unpack_from(">I", b, at)[0]
        new = rng.choice([old * 2, old + 1, old + 7, max(old // 2, 1), old - 1, 1, 0, 8192, 8193, 65536, 0x7FFFFFFF,
                          0xFFFFFFFF]) & 0xFFFFFFFF
        struct.pack_into(">I", b, at, new)
        done.append(f"{n} at {at}: {old} -> {new}")
    return bytes(b), "J2K SIZ " + ", ".join(done)


def jpeg_sof(data: bytes, rng: random.Random):
    """JPEG SOFn (C0-C3, C5-C7, C9-CB, CD-CF) and JPEG-LS SOF55 (F7): Lf P Y X Nf (big-endian)."""
    hits = [m.start() for m in re.finditer(rb"\xff[\xc0-\xc3\xc5-\xc7\xc9-\xcb\xcd-\xcf\xf7]", data)
            if m.start() + 10 <= len(data) and struct.unpack_from(">H", data, m.start() + 2)[0] in range(8, 64)]
    if not hits:
        return None
    sof = rng.choice(hits)
    b = bytearray(data)
    field = rng.choice(["P", "Y", "X", "Y+X", "Nf"])
    if field == "P":
        old = b[sof + 4]
        b[sof + 4] = rng.choice([0, 1, 2, 7, 8, 12, 16, 17, 24, 32, 255])
        return bytes(b), f"{'JPEG-LS' if data[sof + 1] == 0xF7 else 'JPEG'} SOF P at {sof + 4}: {old} -> {b[sof + 4]}"
    if field == "Nf":
        old = b[sof + 9]
        b[sof + 9] = rng.choice([0, 2, 3, 4, 255])
        return bytes(b), f"JPEG SOF Nf at {sof + 9}: {old} -> {b[sof + 9]}"
    done = []
    for n, off in (("Y", 5), ("X", 7)):
        if field in (n, "Y+X"):
            old = struct.unpack_from(">H", b, sof + off)[0]
            new = rng.choice([0, 1, old + 1, old * 2, max(old // 2, 1), old - 1, 8192, 65535]) & 0xFFFF
            struct.pack_into(">H", b, sof + off, new)
            done.append(f"{n} at {sof + off}: {old} -> {new}")
    return bytes(b), f"{'JPEG-LS' if data[sof + 1] == 0xF7 else 'JPEG'} SOF " + ", ".join(done)


def rle_header(data: bytes, rng: random.Random):
    """The 64-byte RLE header of a fragment: segment count then 15 offsets (little-endian uint32)."""
    try:
        ds = pydicom.dcmread(_as_file(data), stop_before_pixels=True)
        if str(ds.file_meta.TransferSyntaxUID) != "1.2.840.10008.1.2.5":
            return None
    except Exception:
        return None
    pd = data.rfind(b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff")
    if pd < 0:
        return None
    items = [pd + m.start() for m in re.finditer(rb"\xfe\xff\x00\xe0", data[pd:])]
    frags = [i + 8 for i in items[1:] if i + 8 + 64 <= len(data)]
    if not frags:
        return None
    h = rng.choice(frags)
    b = bytearray(data)
    k = rng.randrange(16)
    old = struct.unpack_from("<I", b, h + 4 * k)[0]
    new = rng.choice([0, 1, 2, 3, 15, 16, 63, 64, 65, old + 1, max(old - 1, 0), 0x7FFFFFFF, 0xFFFFFFFF,
                      len(data)]) & 0xFFFFFFFF
    struct.pack_into("<I", b, h + 4 * k, new)
    what = "segment count" if k == 0 else f"offset {k}"
    return bytes(b), f"RLE header {what} at {h + 4 * k}: {old} -> {new}"


class _as_file:
    """A bytes object as a file for pydicom."""

    def __new__(cls, data: bytes):
        import io
        return io.BytesIO(data)


def _dataset(data: bytes):
    try:
        return pydicom.dcmread(_as_file(data), force=True)
    except Exception:
        return None


def _save(ds) -> bytes | None:
    import io
    out = io.BytesIO()
    try:
        ds.save_as(out, enforce_file_format=False)
    except Exception:
        return None
    return out.getvalue()


def _ds_strings(n: int, rng: random.Random, pool: list[str], good: list[str]) -> str:
    vals = [rng.choice(pool) if rng.random() < 0.7 else rng.choice(good) for _ in range(n)]
    return "\\".join(v.strip() or " " for v in vals)


VALUE_TAGS = {
    "Rows": "US", "Columns": "US", "BitsAllocated": "US", "BitsStored": "US", "HighBit": "US",
    "PixelRepresentation": "US", "SamplesPerPixel": "US",
    "PixelSpacing": "DS2", "ImageOrientationPatient": "DS6", "ImagePositionPatient": "DS3",
    "SliceThickness": "DS1", "SpacingBetweenSlices": "DS1", "RescaleSlope": "DS1", "RescaleIntercept": "DS1",
    "NumberOfFrames": "IS",
}


def hostile_value(data: bytes, rng: random.Random, tag: str | None = None):
    """One header value set to something hostile through pydicom (pixel data untouched). Enhanced MR files
    get the functional-group copies of the geometry tags mutated too."""
    ds = _dataset(data)
    if ds is None or "PixelData" not in ds:
        return None
    tag = tag or rng.choice(list(VALUE_TAGS) + ["Rows+Columns", "Rows+Columns", "geometry-1e308"])
    desc = []

    def set_tag(target, name: str, kind: str):
        if kind == "US":
            old = target.get(name)
            if name in ("Rows", "Columns") and isinstance(old, int) and old > 1 and rng.random() < 0.5:
                v = rng.choice([old // 2, old - 1, old // 4 or 1, old * 2, old + 1])  # smaller or larger than the codestream
            else:
                v = rng.choice(HOSTILE_US)
            setattr(target, name, v)
            desc.append(f"{name} {old} -> {v}")
        elif kind == "IS":
            v = rng.choice(HOSTILE_INTS)
            target.add_new(pydicom.tag.Tag(name), "IS", v)
            desc.append(f"{name} -> {v!r}")
        else:
            n = int(kind[2:])
            good = {"PixelSpacing": ["0.5", "1"], "ImageOrientationPatient": ["1", "0"],
                    "ImagePositionPatient": ["-100", "20"]}.get(name, ["1"])
            for _ in range(5):  # pydicom refuses some text (e.g. 'x') as a DS value: draw again
                v = _ds_strings(n, rng, HOSTILE_FLOATS, good)
                try:
                    target.add_new(pydicom.tag.Tag(name), "DS", v)
                    break
                except ValueError:
                    continue
            else:
                return
            desc.append(f"{name} -> {v!r}")

    targets = [ds]
    for seq in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in ds.get(seq, [])[:4]:
            for sub in ("PixelMeasuresSequence", "PlaneOrientationSequence", "PlanePositionSequence",
                        "PixelValueTransformationSequence"):
                for inner in item.get(sub, []):
                    targets.append(inner)
    if tag == "Rows+Columns":
        set_tag(ds, "Rows", "US")
        set_tag(ds, "Columns", "US")
    elif tag == "geometry-1e308":
        for t in targets:
            for name, kind in (("PixelSpacing", "DS2"), ("ImagePositionPatient", "DS3"), ("SliceThickness", "DS1")):
                if name in t or t is ds and name != "SliceThickness":
                    v = "\\".join(["1e308"] * int(kind[2:]))
                    t.add_new(pydicom.tag.Tag(name), "DS", v)
                    desc.append(f"{name} -> {v!r}")
    else:
        kind = VALUE_TAGS[tag]
        where = [t for t in targets if tag in t] or [ds]
        set_tag(rng.choice(where), tag, kind)
    out = _save(ds)
    return (out, "; ".join(desc)) if out is not None else None


MUTATORS = [
    (bit_flip, 3), (byte_overwrite, 2), (truncate, 2), (chunk_edit, 1), (lying_length, 3), (fragment_length, 2),
    (j2k_siz, 3), (jpeg_sof, 2), (rle_header, 2), (hostile_value, 8),
]


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, list[str]]:
    """One to three mutations in a row (a value lie, then perhaps a byte-level one)."""
    steps = []
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        for _attempt in range(10):
            fn = rng.choices([m for m, _ in MUTATORS], weights=[w for _, w in MUTATORS])[0]
            if len(data) < 16:
                break
            try:
                r = fn(data, rng)
            except Exception:  # noqa: BLE001 - pydicom raises many kinds (NotImplementedError for a mutated VR, ...)
                r = None  # the mutation does not fit this file (e.g. a value pydicom will not read or write)
            if r is not None and r[0] != data and len(r[0]) > 0:
                data = r[0]
                steps.append(f"{fn.__name__}: {r[1]}")
                break
    return data, steps


# --------------------------------------------------------------------------------------------------------------
# Running


class Outcome:
    def __init__(self, kind: str, returncode: int | None, stderr: bytes, seconds: float, stdout: bytes = b""):
        self.kind = kind  # ok, crash, hang, error-exit
        self.backtrace = ""
        self.returncode = returncode
        self.stderr = stderr
        self.stdout = stdout
        self.seconds = seconds

    @property
    def signal_name(self) -> str:
        if self.returncode is not None and self.returncode < 0:
            return SIGNALS.get(-self.returncode, f"signal {-self.returncode}")
        return ""

    def tail(self, n: int = 3000) -> str:
        return self.stderr[-n:].decode(errors="replace")


MALLOC_DEBUG = "/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0"


def heap_check_env(perturb: int) -> dict:
    """glibc 2.34 and later honour MALLOC_CHECK_ only with libc_malloc_debug preloaded. The Swift runtime's own
    backtracer is turned off: its report replaces glibc's message (a crash is re-run under gdb for its stack)."""
    env = dict(os.environ, MALLOC_CHECK_="3", MALLOC_PERTURB_=str(perturb), SWIFT_BACKTRACE="enable=no")
    if os.path.exists(MALLOC_DEBUG):
        env["LD_PRELOAD"] = MALLOC_DEBUG
    return env


def gdb_backtrace(cmd: list[str], perturb: int, timeout: float) -> str:
    """The crashing thread's stack under gdb (empty when gdb is missing or the run does not crash under it)."""
    if not shutil.which("gdb"):
        return ""
    env = heap_check_env(perturb)
    preload = env.pop("LD_PRELOAD", None)
    g = ["gdb", "-q", "-batch", "-nx", "-ex", "set pagination off", "-ex", "set confirm off"]
    if preload:
        g += ["-ex", f"set exec-wrapper env LD_PRELOAD={preload}"]
    g += ["-ex", "run", "-ex", "bt 40", "--args"] + cmd
    try:
        r = subprocess.run(g, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=timeout * 3)
    except subprocess.TimeoutExpired:
        return ""
    text = r.stdout.decode(errors="replace")
    frames = [l for l in text.splitlines() if re.match(r"#\d+ ", l) or "received signal" in l]
    return "\n".join(frames)


def top_frame(bt: str) -> str:
    """The frame a crash is filed under: the first of GDCM's, fuse3d's own (the shim's gd_*, Swift's Ingest) or a
    codec library's, else the first that is not libc's, the C++ runtime's or the Swift runtime's trap machinery."""
    names = []
    for line in bt.splitlines():
        m = re.match(r"#\d+\s+(?:0x[0-9a-f]+ in )?(.+?) \(", line)
        if m:
            names.append(m.group(1))
    def clean(fn: str) -> str:
        return re.sub(r"<[^<>]*(<[^<>]*>[^<>]*)*>", "<>", fn)[:140]
    for fn in names:
        if re.search(r"gdcm::|^gd_|^\$s6Ingest|^\$s6fuse3d|^opj_|charls|jpeg_", fn):
            return clean(fn)
    for fn in names:
        if re.search(r"^(__|_IO|abort|raise|malloc|free|_int_|cfree|unlink|malloc_printerr|munmap|memcpy|memmove|"
                     r"std::|operator new|\$ss17_assertionFailure|\$ss|swift_|_swift|gsignal|pthread_kill|"
                     r"\?\?)", fn):
            continue
        return clean(fn)
    return ""


def run_fuse3d(cmd: list[str], timeout: float, perturb: int) -> Outcome:
    env = heap_check_env(perturb)
    t = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return Outcome("hang", None, err, time.monotonic() - t, out)
    dt = time.monotonic() - t
    if p.returncode < 0 or FATAL_PATTERNS.search(err.decode(errors="replace")):
        return Outcome("crash", p.returncode, err, dt, out)
    if p.returncode != 0:
        return Outcome("error-exit", p.returncode, err, dt, out)
    return Outcome("ok", 0, err, dt, out)


def crash_signature(o: Outcome) -> str:
    """A short key to group crashes: the signal, the first fatal line of stderr and the top frame under gdb."""
    text = o.tail(6000)
    m = re.search(r"(Fatal error[^\n]*|[a-z_]+\(\): [^\n]*|double free[^\n]*|corrupted[^\n]*|terminate called[^\n]*|"
                  r"Error: [^\n]*)", text)
    line = m.group(1) if m else ""
    line = re.sub(r"/[^\s:]*/", "", line)
    line = re.sub(r"\d{3,}", "N", line)
    line = re.sub(r"\b(inf|-inf|nan)\b", "inf/nan", line)
    line = re.sub(r"\[\d+\]", "[]", line)
    return f"{o.signal_name or o.kind}|{line[:120]}|{top_frame(o.backtrace)}"


class Campaign:
    def __init__(self, args):
        self.args = args
        self.fuse3d = str(Path(args.fuse3d).resolve())
        self.out = Path(args.out).resolve()
        self.work = self.out / "work"
        self.crash_dir = self.out / "crashes"
        self.rng = random.Random(args.seed)
        self.counts = {"scan_runs": 0, "ingest_runs": 0, "mutants": 0, "crashes": 0, "hangs": 0, "lost_studies": 0,
                       "scan_error_exits": 0, "ingest_error_exits": 0}
        self.signatures: dict[str, dict] = {}
        self.crash_id = 0
        self.gdb_runs = 0

    def perturb(self) -> int:
        return self.rng.randrange(1, 256)

    def save_crash(self, what: str, cmd: list[str], o: Outcome, files: list[tuple[Path, list[str]]],
                   replay: list[str] | None = None):
        self.crash_id += 1
        if replay and o.kind == "crash" and self.gdb_runs < self.args.gdb_max:
            self.gdb_runs += 1
            o.backtrace = gdb_backtrace(replay, self.perturb(), self.args.timeout)
        d = self.crash_dir / f"{self.crash_id:04d}-{what}-{(o.signal_name or o.kind).lower()}"
        d.mkdir(parents=True, exist_ok=True)
        for f, steps in files:
            shutil.copy2(f, d / f.name)
            (d / (f.name + ".mutation.txt")).write_text("\n".join(steps) + "\n")
        (d / "command.txt").write_text(" ".join(cmd) + "\n")
        (d / "outcome.txt").write_text(
            f"kind: {o.kind}\nexit status: {o.returncode}\nsignal: {o.signal_name}\nseconds: {o.seconds:.1f}\n"
            f"signature: {crash_signature(o)}\n\n--- stack (gdb) ---\n{o.backtrace}\n\n--- stderr tail ---\n{o.tail()}\n")
        sig = crash_signature(o)
        entry = self.signatures.setdefault(sig, {"count": 0, "first": str(d.relative_to(self.out)), "mutations": []})
        entry["count"] += 1
        if len(entry["mutations"]) < 5:
            entry["mutations"].append({f.name: steps for f, steps in files})
        return d

    def attribute(self, mutants: list[tuple[Path, list[str]]], round_dir: Path, want: str):
        """Re-runs scan --decode on each mutant alone; returns those that reproduce `want` (crash or hang)."""
        hits = []
        for f, steps in mutants:
            solo = round_dir / "solo" / f.stem
            solo.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, solo / f.name)
            o = run_fuse3d([self.fuse3d, "scan", "--decode", "--json", str(solo)], self.args.timeout, self.perturb())
            if o.kind == want:
                hits.append((f, steps, o))
        return hits

    def scan_round(self, seeds: list[Path], n: int):
        round_dir = self.work / f"scan-{n:05d}"
        round_dir.mkdir(parents=True)
        mutants = []
        for k in range(self.args.files_per_archive):
            src = self.rng.choice(seeds)
            data, steps = mutate(src.read_bytes(), self.rng)
            f = round_dir / f"m{n:05d}-{k}-{src.stem[:40]}.dcm"
            f.write_bytes(data)
            mutants.append((f, [f"from {src.name}"] + steps))
        self.counts["mutants"] += len(mutants)
        cmd = [self.fuse3d, "scan", "--decode", "--json", str(round_dir)]
        o = run_fuse3d(cmd, self.args.timeout, self.perturb())
        self.counts["scan_runs"] += 1
        if o.kind in ("crash", "hang"):
            self.counts["crashes" if o.kind == "crash" else "hangs"] += 1
            hits = self.attribute(mutants, round_dir, o.kind)
            if hits:
                for f, steps, solo in hits:
                    self.save_crash("scan", [self.fuse3d, "scan", "--decode", "--json", "DIR"], solo, [(f, steps)],
                                    replay=[self.fuse3d, "scan", "--decode", "--json", str(round_dir / "solo" / f.stem)])
            else:
                self.save_crash("scan", cmd, o, mutants)
            self.log(f"scan round {n}: {o.kind} {o.signal_name} ({len(hits)} file(s) reproduce alone)")
        elif o.kind == "error-exit":
            self.counts["scan_error_exits"] += 1
            self.save_crash("scan-exit", cmd, o, mutants)
        shutil.rmtree(round_dir, ignore_errors=True)

    def ingest_round(self, n: int):
        """Two synth studies; 1-3 files of the first mutated in place, the second untouched."""
        syntax = self.rng.choice(SYNTH_SYNTAXES + ["enhanced"])
        pristine = self.work / f"ingest-src-{syntax}"
        synth(self.fuse3d, pristine, "explicit-le" if syntax == "enhanced" else syntax, 2, self.args.seed,
              enhanced=syntax == "enhanced")
        archive = self.work / f"ingest-{n:05d}"
        shutil.copytree(pristine, archive)
        studies = sorted(p.name for p in (archive / "train_images").iterdir())
        victim, untouched = studies[0], studies[1]
        files = sorted((archive / "train_images" / victim).glob("*/*.dcm"))
        mutants = []
        for f in self.rng.sample(files, min(len(files), self.rng.choice([1, 2, 3]))):
            data, steps = mutate(f.read_bytes(), self.rng)
            f.write_bytes(data)
            mutants.append((f, [f"from {syntax} synth study {victim}, {f.parent.name}/{f.name}"] + steps))
        self.counts["mutants"] += len(mutants)
        out = self.work / f"ingest-{n:05d}-out"
        cmd = [self.fuse3d, "ingest", str(archive), "--out", str(out), "--size", "16", "--samples-per-shard", "1",
               "--workers", "1"]
        o = run_fuse3d(cmd, self.args.timeout, self.perturb())
        self.counts["ingest_runs"] += 1
        lost = False
        if o.kind in ("crash", "hang"):
            self.counts["crashes" if o.kind == "crash" else "hangs"] += 1
            lost = True
        else:
            try:
                report = json.loads((out / "ingest-report.json").read_text())
                status = {s.get("studyID"): s.get("status") for s in report.get("studies", [])}
                lost = o.returncode != 0 or status.get(untouched) != "fused"
            except Exception:
                lost = True
            if o.kind == "error-exit":
                self.counts["ingest_error_exits"] += 1
        if lost:
            self.counts["lost_studies"] += 1
        if o.kind != "ok" or lost:
            d = self.save_crash("ingest", cmd, o, mutants, replay=cmd if o.kind == "crash" else None)
            if o.kind in ("crash", "hang"):
                for f, steps, solo in self.attribute(mutants, self.work / f"ingest-{n:05d}-solo", o.kind):
                    self.save_crash("scan", [self.fuse3d, "scan", "--decode", "--json", "DIR"], solo, [(f, steps)],
                                    replay=[self.fuse3d, "scan", "--decode", "--json",
                                            str(self.work / f"ingest-{n:05d}-solo" / "solo" / f.stem)])
            self.log(f"ingest round {n} ({syntax}): {o.kind} {o.signal_name} lost={lost} -> {d.name}")
        shutil.rmtree(archive, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(self.work / f"ingest-{n:05d}-solo", ignore_errors=True)

    def log(self, msg: str):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def run(self):
        if self.out.exists() and not self.args.keep:
            shutil.rmtree(self.out)
        self.work.mkdir(parents=True, exist_ok=True)
        seeds = good_files(self.fuse3d, self.out / "seeds", self.args.seed)
        self.log(f"{len(seeds)} good files; binary {self.fuse3d}")
        start = time.monotonic()
        n = 0
        while n < self.args.count and time.monotonic() - start < self.args.duration:
            if self.args.ingest_every and n % self.args.ingest_every == self.args.ingest_every - 1:
                self.ingest_round(n)
            else:
                self.scan_round(seeds, n)
            n += 1
            if n % 25 == 0:
                self.log(f"{n} rounds, {time.monotonic() - start:.0f} s: {self.counts}")
        summary = {"seed": self.args.seed, "binary": self.fuse3d, "seconds": round(time.monotonic() - start),
                   "rounds": n, "files_per_archive": self.args.files_per_archive, "timeout": self.args.timeout,
                   "counts": self.counts,
                   "signatures": dict(sorted(self.signatures.items(), key=lambda kv: -kv[1]["count"]))}
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary, indent=2))
        shutil.rmtree(self.work, ignore_errors=True)
        return summary


def triage(args):
    """Re-runs every saved single-file scan crash that has no stack yet under gdb (the campaign stops taking stacks
    after --gdb-max) and rewrites outcome.txt's signature and summary.json's grouping."""
    out = Path(args.out).resolve()
    fuse3d = str(Path(args.fuse3d).resolve())
    summary = json.loads((out / "summary.json").read_text())
    groups: dict[str, dict] = {}
    rng = random.Random(args.seed)
    for d in sorted((out / "crashes").iterdir()):
        o_txt = (d / "outcome.txt").read_text()
        kind = re.search(r"^kind: (.*)$", o_txt, re.M).group(1)
        rc = re.search(r"^exit status: (.*)$", o_txt, re.M).group(1)
        bt = o_txt.split("--- stack (gdb) ---\n", 1)[1].split("\n\n--- stderr tail ---", 1)[0] if "--- stack" in o_txt else ""
        err = o_txt.split("--- stderr tail ---\n", 1)[1] if "--- stderr tail ---" in o_txt else ""
        files = sorted(d.glob("*.dcm"))
        if kind == "crash" and not bt.strip() and "-scan-" in d.name and len(files) == 1:
            with tempfile.TemporaryDirectory() as tmp:
                shutil.copy2(files[0], Path(tmp) / files[0].name)
                bt = gdb_backtrace([fuse3d, "scan", "--decode", "--json", tmp], rng.randrange(1, 256), args.timeout)
            head, tail = o_txt.split("--- stack (gdb) ---\n", 1)
            o_txt = head + "--- stack (gdb) ---\n" + bt + "\n\n--- stderr tail ---" + tail.split("--- stderr tail ---", 1)[1]
        o = Outcome(kind, int(rc) if rc not in ("", "None") else None, err.encode(), 0)
        o.backtrace = bt
        sig = crash_signature(o)
        o_txt = re.sub(r"^signature: .*$", lambda _: f"signature: {sig}", o_txt, count=1, flags=re.M)
        (d / "outcome.txt").write_text(o_txt)
        g = groups.setdefault(sig, {"count": 0, "first": str(d.relative_to(out)), "mutations": []})
        g["count"] += 1
        if len(g["mutations"]) < 5:
            g["mutations"].append({f.name: (d / (f.name + ".mutation.txt")).read_text().splitlines() for f in files})
    summary["signatures"] = dict(sorted(groups.items(), key=lambda kv: -kv[1]["count"]))
    summary["triaged"] = True
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for sig, g in summary["signatures"].items():
        print(f"{g['count']:5d}  {sig}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fuse3d", default=".build/release/fuse3d", help="the binary under test")
    ap.add_argument("--seed", type=int, default=1, help="seed of every mutation and choice (default 1)")
    ap.add_argument("--duration", type=float, default=900, help="stop after this many seconds (default 900)")
    ap.add_argument("--count", type=int, default=10**9, help="stop after this many rounds (scan or ingest runs)")
    ap.add_argument("--files-per-archive", type=int, default=4, help="mutants per scan --decode run (default 4)")
    ap.add_argument("--ingest-every", type=int, default=5, help="every Nth round is an ingest round (0: none)")
    ap.add_argument("--timeout", type=float, default=60, help="seconds before a run counts as a hang (default 60)")
    ap.add_argument("--out", default="bench/out/mutate", help="output folder (crashes/, summary.json)")
    ap.add_argument("--keep", action="store_true", help="keep an existing output folder's crashes")
    ap.add_argument("--gdb-max", type=int, default=80, help="crashes re-run under gdb for their stack (default 80)")
    ap.add_argument("--triage", action="store_true",
                    help="no campaign: re-run the crashes saved in --out without a stack under gdb and regroup them")
    args = ap.parse_args()
    if args.triage:
        triage(args)
    else:
        Campaign(args).run()


if __name__ == "__main__":
    main()
