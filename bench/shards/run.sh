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

best_time() {  # best of REPEATS wall times of a command, in seconds
  local best=""
  for _ in $(seq "$REPEATS"); do
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    best=$(echo "$t0 $t1 $best" | awk '{t = $2 - $1; if ($3 == "" || t < $3) print t; else print $3}')
  done
  echo "$best"
}

# The peer times its reads inside Python; fuse3d's process start (it links libtorch) is measured
# with `fuse3d version` and subtracted, so both columns are read time only.
STARTUP=$(best_time "$BIN" version)

echo "grid (3, $D, $H, $W) float16, $SAMPLES samples, $((RAW / 1000000)) MB raw; best of $REPEATS; fuse3d start-up ${STARTUP}s subtracted"
echo
echo "| zstd level | stored MB | ratio | fuse3d read MB/s | h5py read MB/s | fuse3d / h5py |"
echo "|-----------:|----------:|------:|-----------------:|---------------:|--------------:|"
for level in 1 3 9; do
  dir="$WORK/level$level"
  stored=$(stat -c %s "$dir/shard-00000.h5")
  ours=$(best_time "$BIN" verify --no-hash "$dir" | awk -v s="$STARTUP" '{print $1 - s}')
  peer=$("$PY" "$ROOT/bench/shards/read_h5py.py" "$dir" "$REPEATS")
  awk -v l="$level" -v raw="$RAW" -v s="$stored" -v o="$ours" -v p="$peer" 'BEGIN {
    printf "| %d | %.1f | %.2f | %.0f | %.0f | %.2f |\n", l, s / 1e6, raw / s, raw / 1e6 / o, raw / 1e6 / p, p / o }'
done
