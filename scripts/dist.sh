#!/usr/bin/env bash
# Writes a relocatable fuse3d bundle for Linux x86-64 (`make dist`):
#   <out>/fuse3d-<version>-linux-x86_64/          fuse3d, lib/ (its Debian libraries), torch/ (the
#   <out>/fuse3d-<version>-linux-x86_64.tar.gz     libtorch bridge's source and its build script)
# fuse3d is a release build with the Swift runtime linked statically, stripped, with rpath $ORIGIN/lib;
# every library ldd finds except glibc's is copied beside it. The bridge is not included: it must match
# the target's PyTorch, so the target builds it (torch/build-torch-shim.sh /path/to/python).
#
#   dist.sh [out]                      release build (static Swift runtime) into out (default: dist)
#   dist.sh out --binary PATH --no-tar bundle an existing binary (the tests use the debug build; its
#                                      Swift runtime libraries are then copied like the others)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-dist}"; shift || true
BINARY=""; TAR=1
while (($#)); do
  case "$1" in
    --binary) BINARY="$2"; shift 2 ;;
    --no-tar) TAR=0; shift ;;
    *) echo "dist.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
log() { printf '[dist] %s\n' "$*"; }
command -v patchelf >/dev/null || { echo "dist.sh: patchelf is missing (scripts/setup.sh installs it)" >&2; exit 1; }

if [ -z "$BINARY" ]; then
  log "release build with the Swift runtime linked statically (.build/dist-build)"
  (cd "$ROOT" && swift build -c release --static-swift-stdlib --scratch-path .build/dist-build)
  BINARY="$ROOT/.build/dist-build/release/fuse3d"
fi
VERSION=$("$BINARY" --version 2>/dev/null || echo 0.0.0)
NAME="fuse3d-$VERSION-linux-x86_64"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
BUNDLE="$OUT/$NAME"
rm -rf "$BUNDLE" "$BUNDLE.tar.gz"
mkdir -p "$BUNDLE/lib" "$BUNDLE/torch/src/include"

install -m 0755 "$BINARY" "$BUNDLE/fuse3d"
# glibc's own libraries come from the target system: they are tied to its dynamic loader.
GLIBC='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libutil|libanl|libmvec|libnss_.*|libBrokenLocale)\.so'
ldd "$BINARY" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r soname path; do
  if [[ "$soname" =~ $GLIBC ]]; then continue; fi
  cp -L "$path" "$BUNDLE/lib/$soname"
  chmod 0644 "$BUNDLE/lib/$soname"
done
if ldd "$BINARY" | grep -q "not found"; then
  echo "dist.sh: $BINARY has unresolved libraries:" >&2; ldd "$BINARY" | grep "not found" >&2; exit 1
fi
strip "$BUNDLE/fuse3d"
strip --strip-unneeded "$BUNDLE"/lib/*.so*
# DT_RPATH (not RUNPATH) on the executable also serves the libraries' own dependencies; each library
# gets $ORIGIN as well, so lib/ is self-contained whichever object asks.
patchelf --force-rpath --set-rpath '$ORIGIN/lib' "$BUNDLE/fuse3d"
for lib in "$BUNDLE"/lib/*.so*; do patchelf --set-rpath '$ORIGIN' "$lib"; done

install -m 0755 "$ROOT/scripts/build-torch-shim.sh" "$BUNDLE/torch/build-torch-shim.sh"
install -m 0644 "$ROOT/Sources/CTorch/torch_api.cpp" "$ROOT/Sources/CTorch/torch_distributed.cpp" \
  "$ROOT/Sources/CTorch/shim_support.h" "$ROOT/Sources/CTorch/ctorch_functions.h" "$BUNDLE/torch/src/"
install -m 0644 "$ROOT/Sources/CTorch/include/ctorch.h" "$BUNDLE/torch/src/include/"
cat > "$BUNDLE/README.txt" <<TXT
fuse3d $VERSION for Linux x86-64 (glibc $(ldd --version | head -1 | awk '{print $NF}') or newer).

  ./fuse3d --help                 every command; synth, scan, ingest, inspect and verify run as is
  ./fuse3d version                the libraries in use, and the libtorch found for training

Training needs the libtorch bridge built against the PyTorch (2.4 to 2.x, CPU or CUDA) of this machine;
it is written beside fuse3d, where fuse3d looks for it (or set FUSE3D_TORCH to its path):

  torch/build-torch-shim.sh /path/to/python          # the python of an environment with torch
  LIBTORCH=/path/to/libtorch torch/build-torch-shim.sh   # or an unpacked libtorch

It needs g++ (C++17). See docs/own-pytorch.md in the Fuse3D repository.
TXT

if ((TAR)); then
  tar -C "$OUT" -czf "$BUNDLE.tar.gz" "$NAME"
  log "wrote $BUNDLE.tar.gz ($(du -h "$BUNDLE.tar.gz" | cut -f1))"
fi
log "wrote $BUNDLE ($(du -sh "$BUNDLE" | cut -f1): fuse3d $(du -h "$BUNDLE/fuse3d" | cut -f1), lib/ $(ls "$BUNDLE/lib" | wc -l) libraries $(du -sh "$BUNDLE/lib" | cut -f1))"
