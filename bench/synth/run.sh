#!/usr/bin/env bash
# fuse3d synth vs a numpy + pydicom peer writing the same cohort shape (bench/synth/peer_pydicom.py).
# Reports wall time and CPU time (user + sys): on a shared machine the CPU ratio is the steadier one.
# Usage: bench/synth/run.sh [FUSE3D_BINARY] [STUDIES]   (defaults: .build/release/fuse3d, 16)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${1:-$ROOT/.build/release/fuse3d}"
STUDIES="${2:-16}"
PY="$ROOT/.venv/bin/python"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Prints "wall cpu" in seconds for one command.
measure() { /usr/bin/time -f "%e %U %S" -o "$WORK/time" "$@" >/dev/null 2>&1; awk '{ print $1, $2 + $3 }' "$WORK/time"; }

read -r ours_wall ours_cpu < <(measure "$BIN" synth --studies "$STUDIES" --out "$WORK/ours" --seed 1)
read -r peer_wall peer_cpu < <(measure "$PY" "$ROOT/bench/synth/peer_pydicom.py" "$STUDIES" "$WORK/peer")
printf 'studies=%s cores=%s load=%s\n' "$STUDIES" "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)"
printf 'fuse3d synth : wall %6.2f s  cpu %6.2f s  (%s files)\n' "$ours_wall" "$ours_cpu" \
  "$(find "$WORK/ours/train_images" -name '*.dcm' | wc -l)"
printf 'numpy+pydicom: wall %6.2f s  cpu %6.2f s  (%s files)\n' "$peer_wall" "$peer_cpu" \
  "$(find "$WORK/peer/train_images" -name '*.dcm' | wc -l)"
awk -v a="$peer_wall" -v b="$ours_wall" -v c="$peer_cpu" -v d="$ours_cpu" \
  'BEGIN { printf "ratio peer/fuse3d: wall %.2f  cpu %.2f\n", a / b, c / d }'
