#!/usr/bin/env python3
"""Packs `make dist`'s bundle, the libtorch bridge(s) and python/fuse3d into one wheel (`make wheel`;
scripts/wheel.sh runs dist.sh first and then this).

    wheel.py BUNDLE OUTDIR [--bridge TORCH_MINOR=PATH ...] [--abi HASH]

The wheel, fuse3d-VERSION-py3-none-manylinux_2_X_x86_64.whl:
    fuse3d/*.py                     the Python API and the console-script launcher (pure Python)
    fuse3d/_bin/fuse3d              the bundle's binary (DT_RPATH $ORIGIN/lib)
    fuse3d/_bin/lib/                its libraries, grafted as auditwheel does: renamed NAME-<hash8>.so.N (soname
                                    and every DT_NEEDED that names them rewritten), so they never collide with
                                    another copy of the same library in one process (a torch or h5py loaded
                                    beside them); glibc, libstdc++ and libgcc_s stay the system's (the manylinux
                                    policy's; the PyTorch wheel needs the system's libstdc++ too)
    fuse3d/_bin/torch/              the bridge's source and build script (built at first use for another torch)
    fuse3d/_bin/bridges/torch-M.N/  the bridge prebuilt for PyTorch M.N, its rpath $ORIGIN/../../../../torch/lib
                                    (torch in the same site-packages; the launcher also names torch/lib)
    fuse3d-VERSION.dist-info/       METADATA, WHEEL, entry_points.txt (console script fuse3d), RECORD
The platform tag is the highest GLIBC_2.N symbol version any ELF file in the wheel needs (what auditwheel
checks), so it is as old as the build allows and never claims an older glibc than the binary needs.

Why our own ~200 lines and not a PyPI build backend: the wheel's content is a prebuilt binary, not something a
backend builds; setuptools/hatchling would need a setup.py or a build hook plus a platform-tag override to
package the same files, and a download of the backend on every offline build. A wheel is a zip with four small
text files (PEP 427, PEP 376 RECORD); writing them here is deterministic (fixed timestamps, sorted entries).
"""
import argparse
import base64
import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEM = re.compile(r"^(libstdc\+\+\.so\.6|libgcc_s\.so\.1)$")  # the manylinux policy's, never grafted
EPOCH = (2024, 1, 1, 0, 0, 0)


def log(*a):
    print("[wheel]", *a, flush=True)


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def glibc_needed(path):
    """Highest GLIBC_2.N and GLIBCXX_3.4.N versions `path` needs (from its version-needs section)."""
    text = run("readelf", "-V", "-W", path)
    glibc = [tuple(map(int, m)) for m in re.findall(r"Name: GLIBC_(\d+)\.(\d+)", text)]
    cxx = [int(m) for m in re.findall(r"Name: GLIBCXX_3\.4\.(\d+)", text)]
    return max(glibc, default=(2, 17)), max(cxx, default=0)


def graft(bindir):
    """Renames lib/'s libraries NAME-<hash8>.so.N and rewrites sonames and DT_NEEDED; drops the policy's."""
    lib = os.path.join(bindir, "lib")
    renames = {}
    for name in sorted(os.listdir(lib)):
        path = os.path.join(lib, name)
        if SYSTEM.match(name):
            os.remove(path)
            log(f"left to the system: {name}")
            continue
        digest = hashlib.sha256(open(path, "rb").read()).hexdigest()[:8]
        stem, dot, rest = name.partition(".so")
        new = f"{stem}-{digest}.so{rest}"
        os.rename(path, os.path.join(lib, new))
        renames[name] = new
    objects = [os.path.join(bindir, "fuse3d")] + [os.path.join(lib, n) for n in renames.values()]
    # One patchelf call per change: patchelf 0.14 (Debian 12) given several changes in one call rewrites .dynstr but
    # leaves version needs and definitions pointing at the wrong strings ("version OPENSSL_3.0.0 not found (required
    # by libssh2)", "version krb5_3_MIT not found" at load time; the ldd check below catches it). The price: each call
    # grows the file, 97.3 MiB installed instead of 91.7 (the compressed wheel: 34.0 MiB instead of 33.9).
    for obj in objects:
        needed = set(run("patchelf", "--print-needed", obj).split())
        for old in sorted(needed & set(renames)):
            subprocess.run(["patchelf", "--replace-needed", old, renames[old], obj], check=True)
        if os.path.dirname(obj) == lib:
            subprocess.run(["patchelf", "--set-soname", os.path.basename(obj), obj], check=True)
    return renames


def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def metadata(version, description):
    return f"""Metadata-Version: 2.1
Name: fuse3d
Version: {version}
Summary: Lumbar-spine MRI (DICOM) to fused 3-channel grids in HDF5 shards, 3D ordinal models; the fuse3d CLI and a Python API
License: Proprietary
Platform: Linux x86-64
Requires-Python: >=3.9
Requires-Dist: numpy
Requires-Dist: h5py
Provides-Extra: torch
Requires-Dist: torch>=2.4; extra == "torch"
Description-Content-Type: text/markdown

{description}"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle", help="the folder dist.sh wrote (fuse3d, lib/, torch/)")
    ap.add_argument("out", help="folder for the .whl")
    ap.add_argument("--bridge", action="append", default=[], help="TORCH_MINOR=PATH of a prebuilt libfuse3d_torch.so")
    ap.add_argument("--abi", default="unknown", help="CTORCH_ABI_HASH of this fuse3d (names cached bridges)")
    a = ap.parse_args()

    version = run(os.path.join(a.bundle, "fuse3d"), "--version").strip()
    py_version = re.search(r'__version__ = "([^"]+)"', open(os.path.join(ROOT, "python/fuse3d/_version.py")).read()).group(1)
    if version != py_version:
        sys.exit(f"wheel.py: the binary says {version}, python/fuse3d/_version.py says {py_version}: make them agree")

    stage = tempfile.mkdtemp(prefix="fuse3d-wheel-")
    try:
        pkg = os.path.join(stage, "fuse3d")
        shutil.copytree(os.path.join(ROOT, "python/fuse3d"), pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        bindir = os.path.join(pkg, "_bin")
        shutil.copytree(a.bundle, bindir, symlinks=False, ignore=shutil.ignore_patterns("README.txt"))
        graft(bindir)
        bridges = os.path.join(bindir, "bridges")
        os.makedirs(bridges)
        with open(os.path.join(bridges, "ABI"), "w") as f:
            f.write(a.abi + "\n")
        for spec in a.bridge:
            minor, _, path = spec.partition("=")
            dest = os.path.join(bridges, f"torch-{minor}", "libfuse3d_torch.so")
            os.makedirs(os.path.dirname(dest))
            shutil.copyfile(path, dest)
            subprocess.run(["strip", "--strip-unneeded", dest], check=True)
            subprocess.run(["patchelf", "--set-rpath", "$ORIGIN/../../../../torch/lib", dest], check=True)

        # The grafted binary must load: every library found in the wheel or the system, every symbol version too.
        ldd = subprocess.run(["ldd", os.path.join(bindir, "fuse3d")], capture_output=True, text=True)
        if ldd.returncode != 0 or "not found" in ldd.stdout + ldd.stderr:
            sys.exit(f"wheel.py: the grafted binary does not load:\n{ldd.stdout}{ldd.stderr}")

        # Every ELF file's needs: the tag, and one copy of each library.
        highest, cxx, seen = (2, 17), 0, {}
        for dirpath, _, files in os.walk(pkg):
            for name in files:
                path = os.path.join(dirpath, name)
                if not is_elf(path):
                    continue
                g, c = glibc_needed(path)
                highest, cxx = max(highest, g), max(cxx, c)
                digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
                if digest in seen:
                    sys.exit(f"wheel.py: {path} duplicates {seen[digest]}")
                seen[digest] = path
        tag = f"py3-none-manylinux_{highest[0]}_{highest[1]}_x86_64"
        log(f"needs glibc {highest[0]}.{highest[1]}, libstdc++ GLIBCXX_3.4.{cxx}: tag {tag}")

        readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
        m = re.search(r"^## From Python\n.*?(?=^## )", readme, re.S | re.M)
        description = m.group(0) if m else "See the Fuse3D README.\n"
        dist_info = f"fuse3d-{version}.dist-info"
        extra = {
            f"{dist_info}/METADATA": metadata(version, description),
            f"{dist_info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: fuse3d scripts/wheel.py\nRoot-Is-Purelib: false\nTag: {tag}\n",
            f"{dist_info}/entry_points.txt": "[console_scripts]\nfuse3d = fuse3d._cli:main\n",
            f"{dist_info}/top_level.txt": "fuse3d\n",
        }
        os.makedirs(a.out, exist_ok=True)
        wheel = os.path.join(a.out, f"fuse3d-{version}-{tag}.whl")
        for old in os.listdir(a.out):
            if old.startswith("fuse3d-") and old.endswith(".whl"):
                os.remove(os.path.join(a.out, old))
        records = []

        def add(z, arcname, data, mode):
            info = zipfile.ZipInfo(arcname, EPOCH)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data, compresslevel=9)
            records.append((arcname, record_hash(data), str(len(data))))

        with zipfile.ZipFile(wheel, "w") as z:
            for dirpath, dirs, files in sorted(os.walk(pkg)):
                dirs.sort()
                for name in sorted(files):
                    path = os.path.join(dirpath, name)
                    arcname = os.path.relpath(path, stage)
                    mode = 0o755 if arcname == "fuse3d/_bin/fuse3d" or name.endswith(".sh") else 0o644
                    add(z, arcname, open(path, "rb").read(), mode)
            for arcname, text in extra.items():
                add(z, arcname, text.encode(), 0o644)
            out = io.StringIO()
            w = csv.writer(out, lineterminator="\n")
            w.writerows(records)
            w.writerow((f"{dist_info}/RECORD", "", ""))
            info = zipfile.ZipInfo(f"{dist_info}/RECORD", EPOCH)
            info.external_attr = 0o100644 << 16
            z.writestr(info, out.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        size = os.path.getsize(wheel)
        unpacked = sum(int(r[2]) for r in records)
        log(f"wrote {wheel} ({size / 2**20:.1f} MiB; {unpacked / 2**20:.1f} MiB installed, {len(records)} files)")
        print(wheel)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


if __name__ == "__main__":
    main()
