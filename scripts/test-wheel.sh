#!/usr/bin/env bash
# Installs a fuse3d wheel into a fresh, plain venv (no --system-site-packages) from local wheels only, and runs
# python/tests/installed_check.py with that venv's python from an empty folder outside the repository:
# `fuse3d synth/ingest/verify` from the venv's PATH, the metric, ShardDataset; with --torch also a DataLoader
# with 2 workers, `fuse3d train` through the shipped bridge and `load_run` against the trainer's scores.
#
#   test-wheel.sh --wheel dist/fuse3d-*.whl [--torch]
#   test-wheel.sh --binary .build/debug/fuse3d [--torch]    build the wheel from that binary first
# Dependencies come from WHEELHOUSE (default .build/wheelhouse; filled once with `pip download` of numpy and h5py,
# and torch's requirements with --torch) and TORCH_WHEELS (default /opt/wheels, the torch CPU wheel).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHEEL=""; BINARY=""; TORCH=0
while (($#)); do
  case "$1" in
    --wheel) WHEEL="$2"; shift 2 ;;
    --binary) BINARY="$2"; shift 2 ;;
    --torch) TORCH=1; shift ;;
    *) echo "test-wheel.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
WHEELHOUSE="${WHEELHOUSE:-$ROOT/.build/wheelhouse}"
TORCH_WHEELS="${TORCH_WHEELS:-/opt/wheels}"
PY="${PYTHON3:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fuse3d-wheel-test.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
if [ -z "$WHEEL" ]; then
  [ -n "$BINARY" ] || { echo "test-wheel.sh: give --wheel or --binary" >&2; exit 2; }
  NO_BRIDGE=(--no-bridge); ((TORCH)) && NO_BRIDGE=()   # without torch no bridge is needed: none is built
  bash "$ROOT/scripts/wheel.sh" "$WORK/dist" --binary "$BINARY" "${NO_BRIDGE[@]}"
  WHEEL="$(ls "$WORK"/dist/fuse3d-*.whl)"
fi
WHEEL="$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")"

mkdir -p "$WHEELHOUSE"
NEED=(numpy h5py)
((TORCH)) && NEED+=(filelock 'typing-extensions>=4.10.0' 'setuptools>=77.0.3' 'sympy>=1.13.3' 'networkx>=2.5.1' jinja2 'fsspec>=0.8.5')
if ! "$PY" -m pip download -q --no-index --find-links "$WHEELHOUSE" -d "$WORK/probe" "${NEED[@]}" >/dev/null 2>&1; then
  echo "[test-wheel] filling $WHEELHOUSE from the package index: ${NEED[*]}"
  "$PY" -m pip download -q --only-binary=:all: -d "$WHEELHOUSE" "${NEED[@]}"
fi

# The torch CPU wheel: from TORCH_WHEELS where it is there, else downloaded once into the wheelhouse as setup.sh's pip
# finds it (the version of the project's .venv).
if ((TORCH)) && ! ls "$TORCH_WHEELS"/torch-*.whl "$WHEELHOUSE"/torch-*.whl >/dev/null 2>&1; then
  TV="$("$ROOT/.venv/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')"
  echo "[test-wheel] downloading torch==$TV into $WHEELHOUSE"
  "$ROOT/.venv/bin/python" -m pip download -q --no-deps -d "$WHEELHOUSE" "torch==$TV"
fi
"$PY" -m venv "$WORK/venv"
SPEC="$WHEEL"; ((TORCH)) && SPEC="$WHEEL[torch]"
echo "[test-wheel] pip install --no-index $(basename "$WHEEL")$( ((TORCH)) && echo '[torch]')"
"$WORK/venv/bin/python" -m pip install -q --no-index --find-links "$WHEELHOUSE" --find-links "$TORCH_WHEELS" "$SPEC"
mkdir "$WORK/user"
cp "$ROOT/python/tests/installed_check.py" "$WORK/installed_check.py"
# A user's shell: the venv's bin first, nothing of the repository or its .venv on any path.
( cd "$WORK/user" && env -i HOME="$WORK/home" PATH="$WORK/venv/bin:/usr/bin:/bin" LANG=C.UTF-8 \
    FUSE3D_CACHE="$WORK/cache" "$WORK/venv/bin/python" "$WORK/installed_check.py" "$WORK/user" $( ((TORCH)) && echo --torch) )
