#!/usr/bin/env bash
# Shard read benchmark: fuse3d (`verify --no-hash` decodes every chunk of every sample) against the
# Python peer h5py + hdf5plugin reading the same shards sample by sample, at zstd levels 1, 3, 9.
# Prints a markdown table for BENCHMARKS.md. Usage: bench/shards/run.sh [FUSE3D_BIN] [SAMPLES D H W]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${1:-$ROOT/.build/release/fuse3d}"
SAMPLES="${2:-24}" D="${3:-32}" H="${4:-256}" W="${5:-256}"
PY="$ROOT/.venv/bin/python"
REPEATS=3
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

"$PY" "$ROOT/bench/shards/make_shards.py" "$WORK" "$SAMPLES" "$D" "$H" "$W" 1 3 9
RAW=$((SAMPLES * 3 * D * H * W * 2))

best_fuse3d() {  # best of REPEATS wall times of `fuse3d verify --no-hash DIR`, in seconds
  local best=""
  for _ in $(seq "$REPEATS"); do
    local t0 t1
    t0=$(date +%s.%N)
    "$BIN" verify --no-hash "$1" >/dev/null
    t1=$(date +%s.%N)
    best=$(echo "$t0 $t1 $best" | awk '{t = $2 - $1; if ($3 == "" || t < $3) print t; else print $3}')
  done
  echo "$best"
}

echo "grid (3, $D, $H, $W) float16, $SAMPLES samples, $((RAW / 1000000)) MB raw; best of $REPEATS"
echo
echo "| zstd level | stored MB | ratio | fuse3d read MB/s | h5py read MB/s | fuse3d / h5py |"
echo "|-----------:|----------:|------:|-----------------:|---------------:|--------------:|"
for level in 1 3 9; do
  dir="$WORK/level$level"
  stored=$(stat -c %s "$dir/shard-00000.h5")
  ours=$(best_fuse3d "$dir")
  peer=$("$PY" "$ROOT/bench/shards/read_h5py.py" "$dir" "$REPEATS")
  awk -v l="$level" -v raw="$RAW" -v s="$stored" -v o="$ours" -v p="$peer" 'BEGIN {
    printf "| %d | %.1f | %.2f | %.0f | %.0f | %.2f |\n", l, s / 1e6, raw / s, raw / 1e6 / o, raw / 1e6 / p, p / o }'
done
