#!/usr/bin/env bash
# `make wheel`: dist/fuse3d-VERSION-py3-none-manylinux_2_N_x86_64.whl, the CLI and the Python API in one wheel
# (pip install dist/fuse3d-*.whl; the `fuse3d` console script execs the bundled binary).
#   1. scripts/dist.sh makes the relocatable bundle (release build, Swift runtime static, Debian libraries
#      beside it with $ORIGIN rpaths, stripped);
#   2. the libtorch bridge is built against the project's .venv torch (or PYTHON=...) and shipped for that
#      minor version; another torch gets one built at first use (python/fuse3d/_cli.py);
#   3. scripts/wheel.py grafts the libraries (unique sonames), writes the dist-info and the zip.
#
#   wheel.sh [out]                       release build (as make dist) into out (default: dist)
#   wheel.sh out --binary PATH           wrap an existing binary (the tests use the debug build)
#   wheel.sh out --no-bridge             ship no prebuilt bridge (every torch builds one at first use)
# Environment: PYTHON (the python whose torch the shipped bridge is built for; default .venv/bin/python).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-dist}"; shift || true
BINARY=(); BRIDGE=1
while (($#)); do
  case "$1" in
    --binary) BINARY=(--binary "$2"); shift 2 ;;
    --no-bridge) BRIDGE=0; shift ;;
    *) echo "wheel.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"; [ -n "$PYTHON" ] || PYTHON="$ROOT/.venv/bin/python"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
STAGE="$(mktemp -d "${TMPDIR:-/tmp}/fuse3d-wheel-bundle.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT

bash "$ROOT/scripts/dist.sh" "$STAGE" "${BINARY[@]}" --no-tar
BUNDLE="$(ls -d "$STAGE"/fuse3d-*-linux-x86_64)"

ABI=$(sed -n 's/^#define CTORCH_ABI_HASH "\(.*\)"/\1/p' "$ROOT/Sources/CTorch/ctorch_functions.h")
ARGS=(--abi "$ABI")
if ((BRIDGE)); then
  MINOR=$("$PYTHON" -c 'import re, torch; print(".".join(re.match(r"(\d+)\.(\d+)", torch.__version__).groups()))')
  SHIM="$ROOT/.build/wheel-torch/torch-$MINOR/libfuse3d_torch.so"
  # Built apart from .build/torch (make torch's, whichever PyTorch that was) and reused while its inputs are older.
  if [ ! -f "$SHIM" ] || [ -n "$(find "$ROOT/Sources/CTorch" "$ROOT/scripts/build-torch-shim.sh" -newer "$SHIM" -type f | head -1)" ]; then
    OUT="$SHIM" bash "$ROOT/scripts/build-torch-shim.sh" "$PYTHON"
  fi
  ARGS+=(--bridge "$MINOR=$SHIM")
fi
python3 "$ROOT/scripts/wheel.py" "$BUNDLE" "$OUT" "${ARGS[@]}"
