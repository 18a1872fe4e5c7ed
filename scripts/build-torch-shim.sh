#!/usr/bin/env bash
# Builds fuse3d's libtorch bridge (libfuse3d_torch.so) against a PyTorch / libtorch 2.4 to 2.x.
#
#   build-torch-shim.sh [/path/to/python]        # that Python's torch (default: the project's .venv,
#                                                #   or python3 inside the bundle)
#   LIBTORCH=/path/to/libtorch build-torch-shim.sh   # an unpacked libtorch folder (include/ and lib/)
#
# Environment: PYTHON (as the argument), LIBTORCH, OUT (the library to write; default: the build
# folder in the repository, beside fuse3d in the bundle), CXX (default g++), TORCH_CXX11_ABI (0 or 1;
# found from the Python or from libc10's symbols when unset).
# The same script ships in the bundle (`make dist`), where the shim's source lies in torch/src.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -f "$HERE/src/torch_api.cpp" ]; then            # inside the bundle: <bundle>/torch/
  SRC="$HERE/src"
  DEFAULT_OUT="$(dirname "$HERE")/libfuse3d_torch.so"
  DEFAULT_PYTHON="python3"
else                                                 # inside the repository: scripts/
  ROOT="$(dirname "$HERE")"
  SRC="$ROOT/Sources/CTorch"
  DEFAULT_OUT="$ROOT/.build/torch/libfuse3d_torch.so"
  DEFAULT_PYTHON="$ROOT/.venv/bin/python"
fi
OUT="${OUT:-$DEFAULT_OUT}"
CXX="${CXX:-g++}"
PYTHON="${1:-${PYTHON:-}}"

die() { printf 'build-torch-shim: %s\n' "$*" >&2; exit 1; }

if [ -n "${LIBTORCH:-}" ] && [ -z "$PYTHON" ]; then
  TORCH_DIR="$LIBTORCH"
  [ -f "$TORCH_DIR/lib/libc10.so" ] || die "LIBTORCH=$LIBTORCH has no lib/libc10.so: give the folder holding include/ and lib/"
  if [ -z "${TORCH_CXX11_ABI:-}" ]; then
    # libc10 exports std::string-taking symbols under the __cxx11 namespace only in the new ABI.
    if nm -D --defined-only "$TORCH_DIR/lib/libc10.so" | grep -q '__cxx11'; then TORCH_CXX11_ABI=1; else TORCH_CXX11_ABI=0; fi
  fi
  SOURCE_DESC="LIBTORCH=$LIBTORCH"
else
  PYTHON="${PYTHON:-$DEFAULT_PYTHON}"
  command -v "$PYTHON" >/dev/null 2>&1 || die "no Python at $PYTHON (give the python of an environment with torch installed)"
  read -r TORCH_DIR ABI_FROM_PYTHON < <("$PYTHON" -c 'import os, torch; print(os.path.dirname(torch.__file__), int(torch._C._GLIBCXX_USE_CXX11_ABI))') \
    || die "$PYTHON cannot import torch: install PyTorch 2.4 to 2.x there, or use LIBTORCH=/path/to/libtorch"
  TORCH_CXX11_ABI="${TORCH_CXX11_ABI:-$ABI_FROM_PYTHON}"
  SOURCE_DESC="$PYTHON"
fi

[ -d "$TORCH_DIR/include/torch/csrc/api/include" ] || die "no libtorch headers under $TORCH_DIR/include (a PyTorch wheel or a libtorch zip has them)"
# version.h moved to torch/headeronly/ in recent releases; any of them carries the numbers.
version_field() { grep -rhs --include=version.h "^#define TORCH_VERSION_$1 " "$TORCH_DIR/include/torch" | head -1 | awk '{print $3}'; }
MAJOR=$(version_field MAJOR)
MINOR=$(version_field MINOR)
[ -n "$MAJOR" ] && [ -n "$MINOR" ] || die "no TORCH_VERSION_MAJOR/MINOR in the headers under $TORCH_DIR/include/torch"
if [ "$MAJOR" != 2 ] || [ "$MINOR" -lt 4 ]; then
  die "libtorch $MAJOR.$MINOR at $TORCH_DIR: fuse3d's bridge needs 2.4 to 2.x"
fi

# Distributed training (Sources/CTorch/torch_distributed.cpp): c10d when libtorch exports it; Gloo when it
# also exports ProcessGroupGloo and Gloo's headers are found (the wheel lacks them: Debian's libgloo-dev,
# or GLOO_INCLUDE); NCCL when libtorch_cuda exports ProcessGroupNCCL and nccl.h and the CUDA runtime
# headers are found (NCCL_INCLUDE, CUDA_INCLUDE). Without them the bridge still trains in one process.
# A libtorch with ProcessGroupGloo but no Gloo headers is an error (scripts/setup.sh installs libgloo-dev, and the
# Gloo tests must run, not skip): FUSE3D_WITHOUT_GLOO=1 builds without Gloo on purpose, saying so.
exports() { nm -DC --defined-only "$1" 2>/dev/null | grep -F "$2" >/dev/null; }
DIST_FLAGS=()
DIST_LIBS=()
DIST_DESC="distributed: none (libtorch without c10d)"
if exports "$TORCH_DIR/lib/libtorch_cpu.so" 'c10d::TCPStore::TCPStore('; then
  DIST_FLAGS+=(-DFUSE3D_C10D=1)
  DIST_DESC="distributed: c10d"
  GLOO_INCLUDE="${GLOO_INCLUDE:-/usr/include}"
  if exports "$TORCH_DIR/lib/libtorch_cpu.so" 'c10d::ProcessGroupGloo::ProcessGroupGloo(' \
     && [ -f "$GLOO_INCLUDE/gloo/rendezvous/store.h" ]; then
    DIST_FLAGS+=(-DFUSE3D_C10D_GLOO=1)
    [ "$GLOO_INCLUDE" = /usr/include ] || DIST_FLAGS+=(-isystem "$GLOO_INCLUDE")
    DIST_DESC+=" + Gloo (headers from $GLOO_INCLUDE)"
  elif ! exports "$TORCH_DIR/lib/libtorch_cpu.so" 'c10d::ProcessGroupGloo::ProcessGroupGloo('; then
    DIST_DESC+=" without Gloo (libtorch exports no ProcessGroupGloo)"
  elif [ "${FUSE3D_WITHOUT_GLOO:-0}" = 1 ]; then
    DIST_DESC+=" without Gloo (FUSE3D_WITHOUT_GLOO=1)"
  else
    die "no Gloo headers at $GLOO_INCLUDE/gloo/rendezvous/store.h, so the bridge would train on one process only: apt-get install libgloo-dev (scripts/setup.sh does), or GLOO_INCLUDE=/path/to/include; FUSE3D_WITHOUT_GLOO=1 builds without Gloo on purpose"
  fi
  NCCL_INCLUDE="${NCCL_INCLUDE:-$TORCH_DIR/../nvidia/nccl/include}"
  CUDA_INCLUDE="${CUDA_INCLUDE:-$TORCH_DIR/../nvidia/cuda_runtime/include}"
  if [ -f "$TORCH_DIR/lib/libtorch_cuda.so" ] && exports "$TORCH_DIR/lib/libtorch_cuda.so" 'c10d::ProcessGroupNCCL::ProcessGroupNCCL(' \
     && [ -f "$NCCL_INCLUDE/nccl.h" ] && [ -f "$CUDA_INCLUDE/cuda_runtime_api.h" ]; then
    DIST_FLAGS+=(-DFUSE3D_C10D_NCCL=1 -DUSE_CUDA=1 -isystem "$NCCL_INCLUDE" -isystem "$CUDA_INCLUDE")
    DIST_LIBS+=(-ltorch_cuda)
    DIST_DESC+=" + NCCL"
  fi
fi

mkdir -p "$(dirname "$OUT")"
printf 'build-torch-shim: libtorch %s.%s from %s (C++11 ABI %s) -> %s\n' "$MAJOR" "$MINOR" "$SOURCE_DESC" "$TORCH_CXX11_ABI" "$OUT"
printf 'build-torch-shim: %s\n' "$DIST_DESC"
# Only libtorch_cpu and c10 are linked: the shim opens libtorch_cuda itself when it is there, so a
# CUDA build of PyTorch also serves on a machine without the CUDA libraries. The rpath makes the
# library find the libtorch it was built against wherever fuse3d runs.
"$CXX" -std=c++17 -O2 -fPIC -shared -D_GLIBCXX_USE_CXX11_ABI="$TORCH_CXX11_ABI" \
  -Wno-deprecated-declarations -Wno-c++20-extensions \
  -I"$SRC" -I"$SRC/include" -I"$TORCH_DIR/include" -I"$TORCH_DIR/include/torch/csrc/api/include" \
  "${DIST_FLAGS[@]}" "$SRC/torch_api.cpp" "$SRC/torch_distributed.cpp" -o "$OUT.tmp" \
  -L"$TORCH_DIR/lib" -Wl,-rpath,"$TORCH_DIR/lib" -Wl,--no-as-needed -ltorch_cpu -lc10 "${DIST_LIBS[@]}" -Wl,--as-needed -ldl
# Gloo's headers here are not the Gloo inside libtorch, so the shim must neither call nor define anything
# of Gloo's: a symbol naming gloo:: would run code compiled against the other Gloo's layouts.
if nm -C "$OUT.tmp" | grep -E '[[:space:]]gloo::' >/dev/null; then
  nm -C "$OUT.tmp" | grep -E '[[:space:]]gloo::' | head -5 >&2
  rm -f "$OUT.tmp"
  die "the shim refers to Gloo's own symbols (above): keep Gloo's types behind pointers in torch_distributed.cpp"
fi
mv "$OUT.tmp" "$OUT"
printf 'build-torch-shim: wrote %s\n' "$OUT"
