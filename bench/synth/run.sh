#!/usr/bin/env bash
# fuse3d synth vs a numpy + pydicom peer writing the same cohort shape (bench/synth/peer_pydicom.py).
# Usage: bench/synth/run.sh [FUSE3D_BINARY] [STUDIES]   (defaults: .build/release/fuse3d, 16)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${1:-$ROOT/.build/release/fuse3d}"
STUDIES="${2:-16}"
PY="$ROOT/.venv/bin/python"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

seconds() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }

ours=$(seconds "$BIN" synth --studies "$STUDIES" --out "$WORK/ours" --seed 1)
peer=$(seconds "$PY" "$ROOT/bench/synth/peer_pydicom.py" "$STUDIES" "$WORK/peer")
files_ours=$(find "$WORK/ours/train_images" -name '*.dcm' | wc -l)
files_peer=$(find "$WORK/peer/train_images" -name '*.dcm' | wc -l)
printf 'studies=%s cores=%s\n' "$STUDIES" "$(nproc)"
printf 'fuse3d synth : %6.2f s  (%s files)\n' "$ours" "$files_ours"
printf 'numpy+pydicom: %6.2f s  (%s files)\n' "$peer" "$files_peer"
printf 'ratio peer/fuse3d: %.2f\n' "$(echo "$peer / $ours" | bc -l)"
