#!/usr/bin/env bash
# Installs everything a fresh machine needs to build, test and run Fuse3D.
# Idempotent: each step checks first and does nothing when its part is present,
# so a re-run on a ready machine takes a second or two.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FUSE3D_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

log() { printf '[setup] %s\n' "$*"; }

# --- Debian packages -------------------------------------------------------
# libgdcm-dev: DICOM decode/encode; libcharls-dev: JPEG-LS frames decoded by CharLS directly; libhdf5-dev: shards; libzstd-dev: our HDF5
# Zstandard filter (id 32015); libpng-dev: `inspect --png` pictures; time: tests measure peak memory;
# g++: builds the libtorch bridge (make torch); patchelf: points the bundle's binary at its libraries (make dist).
DEB_PACKAGES=(libgdcm-dev libcharls-dev libhdf5-dev libzstd-dev libpng-dev pkg-config time g++ patchelf)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "Debian packages present"
fi

# --- Python virtual environment -------------------------------------------
# torch's wheel is the default libtorch that `make torch` builds the bridge against (headers + shared
# libraries; any PyTorch 2.4 to 2.x serves through `make torch PYTHON=...`); the rest are
# test fixtures (pydicom's DICOM files) and peers for tests and benchmarks.
PY_PACKAGES=(torch==2.13.0 numpy pydicom pydicom-data pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg h5py hdf5plugin scipy safetensors nibabel dcm2niix scikit-learn)
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" - <<'PYEOF' 2>/dev/null
import importlib, sys
import torch
assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__
for m in ("numpy", "pydicom", "data_store", "pylibjpeg", "libjpeg", "openjpeg", "h5py", "hdf5plugin", "scipy", "safetensors", "nibabel", "sklearn"):
    importlib.import_module(m)
PYEOF
then
  log "installing Python packages: ${PY_PACKAGES[*]}"
  "$VENV/bin/python" -m pip install -q --upgrade "${PY_PACKAGES[@]}"
else
  log "Python packages present"
fi

log "ready (libtorch: $("$VENV/bin/python" -c 'import torch,os;print(os.path.dirname(torch.__file__))'))"
