#!/usr/bin/env python3
"""Shapes `fuse3d synth` cohorts into one archive with the RSNA 2024 train set's traits, for bench/ingest/rsna_size.sh.

    rsna_shape.py --out ARCHIVE PART [PART ...]          train layout (train_images, train*.csv)
    rsna_shape.py --test --out ARCHIVE PART              test layout (test_images, test_series_descriptions.csv,
                                                         sample_submission.csv; no labels)

Each PART is a `fuse3d synth` folder (e.g. one per transfer syntax). Files are hard-linked, never copied, except the
few this script rewrites with pydicom:
- with --copies K, every study of the parts appears K times: itself, and K-1 clones under a new study id with new
  Study, Series and SOP Instance UIDs and series ids (pixel data, encapsulated or not, byte for byte its source's; a
  file pydicom cannot read, such as a truncated one or a stray non-DICOM file, copied as it is), with the source's
  CSV rows under the new ids. Rendering scanner-size phantoms costs ~0.5 s of CPU a study; a clone costs its I/O;
- 17 % of the explicit-little-endian studies have their Axial T2 series split at disc-stack boundaries into two (13 %)
  to four series (the real set: 17 % of studies have 2-4 Axial T2 series, their subarticular labels split between
  them): new Series Instance UID and number, a row in train_series_descriptions.csv each, and the label rows of the
  moved instances renamed to the new series;
- RescaleSlope 1 / RescaleIntercept 0 written on whole explicit-little-endian series until ~18 % of the files carry
  them (the real set: 18 %), which changes no pixel value.
Everything random comes from --seed. The study ids of the parts must differ (synth draws them from its seed).
"""
import argparse
import csv
import os
import random
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def read_csv(path):
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        return header, [row for row in r]


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def link_tree(src, dst):
    files = 0
    for dirpath, _, names in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        os.makedirs(os.path.join(dst, rel), exist_ok=True)
        for n in names:
            os.link(os.path.join(dirpath, n), os.path.join(dst, rel, n))
            files += 1
    return files


def rewrite(path, ds):
    """Writes ds over a hard link without touching the source file (the link is removed first)."""
    os.unlink(path)
    ds.save_as(path, enforce_file_format=True)


def clone_study(job):
    """Writes study `src` (a train_images/{study} folder) as `dst` with the series folders renamed per `series_map` and
    fresh UIDs (derived from `seed`, so a re-run writes the same bytes). Returns the number of files."""
    src, dst, series_map, seed = job
    study_uid = generate_uid(entropy_srcs=[dst, seed, "study"])
    files = 0
    for series in sorted(os.listdir(src)):
        new_series = series_map.get(series, series)
        series_uid = generate_uid(entropy_srcs=[dst, new_series, seed, "series"])
        os.makedirs(os.path.join(dst, new_series), exist_ok=True)
        for name in sorted(os.listdir(os.path.join(src, series))):
            a, b = os.path.join(src, series, name), os.path.join(dst, new_series, name)
            files += 1
            try:
                ds = pydicom.dcmread(a)
                ds.StudyInstanceUID = study_uid
                ds.SeriesInstanceUID = series_uid
                sop = generate_uid(entropy_srcs=[dst, new_series, name, seed, "sop"])
                ds.SOPInstanceUID = sop
                ds.file_meta.MediaStorageSOPInstanceUID = sop
                ds.save_as(b, enforce_file_format=True)
            except Exception:
                shutil.copyfile(a, b)
    return files


def stacks_in_order(folder):
    """The series' files in instance order, cut where the slice orientation changes (a new disc stack)."""
    items = []
    for n in os.listdir(folder):
        ds = pydicom.dcmread(os.path.join(folder, n), stop_before_pixels=True)
        items.append((int(ds.InstanceNumber), n, tuple(round(float(v), 3) for v in ds.ImageOrientationPatient)))
    items.sort()
    stacks = []
    for inst, name, ori in items:
        if not stacks or stacks[-1][-1][2] != ori:
            stacks.append([])
        stacks[-1].append((inst, name, ori))
    return stacks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--test", action="store_true", help="write the test layout (no labels, sample_submission.csv)")
    ap.add_argument("--copies", type=int, default=1, help="each study K times: itself and K-1 clones with new ids and UIDs")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("parts", nargs="+")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    images = "test_images" if a.test else "train_images"
    if os.path.exists(a.out):
        sys.exit(f"{a.out} exists; remove it first")
    os.makedirs(os.path.join(a.out, images))

    train_rows, series_rows, coord_rows = [], [], []
    train_header = series_header = coord_header = None
    seen = set()
    files = 0
    for part in a.parts:
        h, rows = read_csv(os.path.join(part, "train.csv"))
        train_header = h
        studies = [r[0] for r in rows]
        clash = seen.intersection(studies)
        if clash:
            sys.exit(f"{part}: study ids already taken by an earlier part: {sorted(clash)[:5]}")
        seen.update(studies)
        train_rows += rows
        series_header, rows = read_csv(os.path.join(part, "train_series_descriptions.csv"))
        series_rows += rows
        coord_header, rows = read_csv(os.path.join(part, "train_label_coordinates.csv"))
        coord_rows += rows
        for s in studies:
            src = os.path.join(part, "train_images", s)
            files += link_tree(src, os.path.join(a.out, images, s))
    print(f"linked {files} files of {len(seen)} studies", flush=True)

    if a.copies > 1:
        sources = sorted(seen, key=int)
        series_of = {}
        for r in series_rows:
            series_of.setdefault(r[0], []).append(r)
        coords_of = {}
        for r in coord_rows:
            coords_of.setdefault(r[0], []).append(r)
        train_of = {r[0]: r for r in train_rows}
        jobs = []
        for k in range(1, a.copies):
            for src in sources:
                while True:
                    new = str(rng.randint(10_000_000, 4_294_967_295))
                    if new not in seen:
                        break
                seen.add(new)
                folder = os.path.join(a.out, images, src)
                series_map = {}
                for series in sorted(os.listdir(folder)):
                    while True:
                        sid = str(rng.randint(1_000_000, 4_280_999_999))
                        if sid not in series_map.values():
                            break
                    series_map[series] = sid
                jobs.append((folder, os.path.join(a.out, images, new), series_map, str(a.seed)))
                train_rows.append([new] + train_of[src][1:])
                series_rows += [[new, series_map[r[1]], r[2]] for r in series_of.get(src, [])]
                coord_rows += [[new, series_map[r[1]]] + r[2:] for r in coords_of.get(src, [])]
        with ProcessPoolExecutor(a.jobs) as pool:
            for i, n in enumerate(pool.map(clone_study, jobs, chunksize=4)):
                files += n
                if (i + 1) % 100 == 0:
                    print(f"cloned {i + 1}/{len(jobs)} studies", flush=True)
        print(f"{len(seen)} studies, {files} files after cloning", flush=True)

    # Which studies are plain explicit little endian (only those are rewritten).
    axial_of = {}
    for study, series, desc in series_rows:
        if desc == "Axial T2":
            axial_of.setdefault(study, []).append(series)
    plain = []
    for study in sorted(seen, key=int):
        axials = axial_of.get(study, [])
        if len(axials) != 1:
            continue
        folder = os.path.join(a.out, images, study, axials[0])
        if not os.path.isdir(folder):
            continue
        first = sorted(os.listdir(folder))[0]
        ds = pydicom.dcmread(os.path.join(folder, first), stop_before_pixels=True)
        if ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian:
            plain.append(study)

    # 17 % of the studies (drawn from the plain ones): the Axial T2 series split into 2 (13 %), 3 (3 %) or 4 (1 %).
    n = len(seen)
    chosen = rng.sample(plain, min(len(plain), round(0.17 * n)))
    moved = {}  # (study, old series, instance) -> new series
    split_files = 0
    for k, study in enumerate(chosen):
        parts = 2 if k < round(0.13 * n) else (3 if k < round(0.16 * n) else 4)
        old = axial_of[study][0]
        folder = os.path.join(a.out, images, study, old)
        stacks = stacks_in_order(folder)
        parts = min(parts, len(stacks))
        if parts < 2:
            continue
        # Contiguous groups of stacks, the first staying in the old series.
        cuts = sorted(rng.sample(range(1, len(stacks)), parts - 1))
        groups = [stacks[i:j] for i, j in zip([0] + cuts, cuts + [len(stacks)])]
        used_ids = {r[1] for r in series_rows if r[0] == study}
        for g in groups[1:]:
            while True:
                new_id = str(rng.randint(1_000_000, 4_280_999_999))
                if new_id not in used_ids:
                    break
            used_ids.add(new_id)
            uid = generate_uid(entropy_srcs=[study, new_id, str(a.seed)])
            number = rng.randint(10, 99)
            dst = os.path.join(a.out, images, study, new_id)
            os.makedirs(dst)
            for stack in g:
                for inst, name, _ in stack:
                    src = os.path.join(folder, name)
                    ds = pydicom.dcmread(src)
                    ds.SeriesInstanceUID = uid
                    ds.SeriesNumber = number
                    os.unlink(src)
                    ds.save_as(os.path.join(dst, name), enforce_file_format=True)
                    moved[(study, old, str(inst))] = new_id
                    split_files += 1
            series_rows.append([study, new_id, "Axial T2"])
    for r in coord_rows:
        key = (r[0], r[1], r[2])
        if key in moved:
            r[1] = moved[key]
    print(f"split the Axial T2 series of {len(chosen)} studies ({split_files} files moved)", flush=True)

    # RescaleSlope/RescaleIntercept on whole plain series until ~18 % of the files carry them.
    candidates = []
    for study in plain:
        for series in os.listdir(os.path.join(a.out, images, study)):
            candidates.append((study, series))
    rng.shuffle(candidates)
    target, tagged = 0.18 * files, 0
    for study, series in candidates:
        if tagged >= target:
            break
        folder = os.path.join(a.out, images, study, series)
        for name in os.listdir(folder):
            p = os.path.join(folder, name)
            ds = pydicom.dcmread(p)
            ds.RescaleIntercept = "0"
            ds.RescaleSlope = "1"
            ds.RescaleType = "US"
            rewrite(p, ds)
            tagged += 1
    print(f"rescale tags on {tagged} of {files} files ({100 * tagged / max(files, 1):.1f} %)", flush=True)

    series_rows.sort(key=lambda r: (int(r[0]), int(r[1])))
    if a.test:
        write_csv(os.path.join(a.out, "test_series_descriptions.csv"), series_header, series_rows)
        columns = train_header[1:]
        # Kaggle's order: by study as the file lists them, then its 25 columns.
        rows = [[f"{s}_{c}", "0.333333", "0.333333", "0.333333"] for s in sorted(seen, key=int) for c in columns]
        write_csv(os.path.join(a.out, "sample_submission.csv"), ["row_id", "normal_mild", "moderate", "severe"], rows)
    else:
        train_rows.sort(key=lambda r: int(r[0]))
        write_csv(os.path.join(a.out, "train.csv"), train_header, train_rows)
        write_csv(os.path.join(a.out, "train_series_descriptions.csv"), series_header, series_rows)
        coord_rows.sort(key=lambda r: (int(r[0]), int(r[1]), int(r[2])))
        write_csv(os.path.join(a.out, "train_label_coordinates.csv"), coord_header, coord_rows)
    print(f"wrote {a.out}: {len(seen)} studies, {len(series_rows)} series, {files} files", flush=True)


if __name__ == "__main__":
    main()
