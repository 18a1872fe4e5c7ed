#!/usr/bin/env bash
# Shard benchmark, fuse3d's Shards library against the Python peer h5py + hdf5plugin, at zstd levels
# 1, 3, 9 on the same synthetic volumes: write MB/s (one sample at a time, then fsync and sha256 as
# the manifest needs), compression ratio, and read MB/s of the same fuse3d-written shard (every
# sample, one at a time). bench/shards/shard_bench.swift is compiled against the release build's
# Shards objects.
# Prints a markdown table for BENCHMARKS.md. Usage: bench/shards/run.sh [SAMPLES D H W]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SAMPLES="${1:-16}" D="${2:-32}" H="${3:-256}" W="${4:-256}"
PY="$ROOT/.venv/bin/python"
REPEATS=5
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$ROOT"
swift build -c release --product fuse3d >/dev/null
R=.build/release
swiftc -O -I $R/Modules -Xcc -fmodule-map-file=$R/CHDF5.build/module.modulemap bench/shards/shard_bench.swift \
  $R/Shards.build/*.swift.o $R/CHDF5.build/{chdf5,chunk_codec,zstd_filter}.c.o \
  -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5 -lzstd -o "$WORK/shard_bench" 2>/dev/null
BENCH="$WORK/shard_bench"

"$PY" bench/shards/make_volumes.py "$WORK/volumes.f16" "$SAMPLES" "$D" "$H" "$W"
RAW=$((SAMPLES * 3 * D * H * W * 2))

min() { printf '%s\n' "$@" | sort -g | head -1; }

echo "grid (3, $D, $H, $W) float16, $SAMPLES samples, $((RAW / 1000000)) MB raw; MB/s of raw volume bytes, best of $REPEATS"
echo
echo "| zstd level | ratio | write fuse3d | write h5py | fuse3d / h5py | read fuse3d | read h5py | fuse3d / h5py |"
echo "|-----------:|------:|-------------:|-----------:|--------------:|------------:|----------:|--------------:|"
# Each repeat runs all four measurements in turn, so that load from other processes on a shared
# machine falls on both sides alike; the best of the repeats is kept.
for level in 1 3 9; do
  ours_dir="$WORK/fuse3d-$level"
  wo=() wp=() ro=() rp=()
  for _ in $(seq "$REPEATS"); do
    rm -rf "$ours_dir"
    wo+=("$("$BENCH" write "$WORK/volumes.f16" "$SAMPLES" "$D" "$H" "$W" "$level" "$ours_dir")")
    wp+=("$("$PY" bench/shards/h5py_peer.py write "$WORK/volumes.f16" "$SAMPLES" "$D" "$H" "$W" "$level" "$WORK/peer.h5")")
    ro+=("$("$BENCH" read "$ours_dir" 1)")
    rp+=("$("$PY" bench/shards/h5py_peer.py read "$ours_dir")")
  done
  stored=$(stat -c %s "$ours_dir/shard-00000.h5")
  awk -v l="$level" -v raw="$RAW" -v s="$stored" -v wo="$(min "${wo[@]}")" -v wp="$(min "${wp[@]}")" \
      -v ro="$(min "${ro[@]}")" -v rp="$(min "${rp[@]}")" 'BEGIN {
    mb = raw / 1e6
    printf "| %d | %.2f | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f |\n", l, raw / s, mb / wo, mb / wp, wp / wo, mb / ro, mb / rp, rp / ro }'
done
