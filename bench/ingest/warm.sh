#!/usr/bin/env bash
# Warm re-run and +2 studies against a cold ingest (issue 20, header index): 12 synth --quirks studies at 128³,
# every process pinned to core 0, three alternated rounds. Usage: bash bench/ingest/warm.sh [OUT_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${FUSE3D:-$ROOT/.build/release/fuse3d}"
D="${1:-$ROOT/bench/out/warm}"; mkdir -p "$D"
cd "$D"
if [ ! -d cohort ]; then
  $BIN synth --studies 12 --out cohort --seed 8 --quirks >/dev/null 2>&1
  find cohort -type f -exec touch -d '3 hours ago' {} +
fi
if [ ! -d ten ]; then
  cp -a cohort ten
  for s in $(ls ten/train_images | sort | tail -2); do rm -rf ten/train_images/$s; done
fi
t() { /usr/bin/time -f "%e %U %S" -o "$D/time.txt" "$@" > "$D/last.txt" 2>&1; awk '{ printf "%s %.2f", $1, $2 + $3 }' "$D/time.txt"; }
uptime
echo "version $(t taskset -c 0 $BIN version)"
for rep in 1 2 3; do
  rm -rf out out10 ten10
  echo "cold $(t taskset -c 0 $BIN ingest cohort --out out --size 128 --workers 1)"
  echo "warm $(t taskset -c 0 $BIN ingest cohort --out out --size 128 --workers 1) | $(tail -1 last.txt)"
  cp -a ten ten10
  taskset -c 0 $BIN ingest ten10 --out out10 --size 128 --workers 1 >/dev/null 2>&1
  for s in $(ls cohort/train_images | sort | tail -2); do cp -a cohort/train_images/$s ten10/train_images/; done
  echo "plus2 $(t taskset -c 0 $BIN ingest ten10 --out out10 --size 128 --workers 1) | $(tail -1 last.txt)"
  cmp out/shard-00000.h5 out10/shard-00000.h5 && echo "plus2 bytes same as cold" || true
  uptime
done
