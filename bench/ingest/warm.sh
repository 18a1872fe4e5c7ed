#!/usr/bin/env bash
# Warm re-run and +2 studies against a cold ingest (issue 20): STUDIES synth --quirks studies (default 12; the
# issue's archive has 26) at 128³, every process pinned to core 0, three alternated rounds of cold → warm (nothing
# changed) → +2 (the archive without its last 2 studies ingested, the 2 copied back, the same command again).
# Prints wall and CPU (user + system) seconds of each whole process and the run's closing line.
# With BASE=/path/to/an/older/fuse3d, each round runs that binary first (its own output folders), then this one.
# Usage: [STUDIES=26] [BASE=...] bash bench/ingest/warm.sh [OUT_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${FUSE3D:-$ROOT/.build/release/fuse3d}"
STUDIES="${STUDIES:-12}"
D="${1:-$ROOT/bench/out/warm$([ "$STUDIES" = 12 ] || echo "-$STUDIES")}"; mkdir -p "$D"
cd "$D"
if [ ! -d cohort ]; then
  $BIN synth --studies "$STUDIES" --out cohort --seed 8 --quirks >/dev/null 2>&1
  find cohort -type f -exec touch -d '3 hours ago' {} +
fi
if [ ! -d ten ]; then
  cp -a cohort ten
  for s in $(ls ten/train_images | sort | tail -2); do rm -rf ten/train_images/$s; done
fi
t() { /usr/bin/time -f "%e %U %S" -o "$D/time.txt" "$@" > "$D/last.txt" 2>&1; awk '{ printf "%s %.2f", $1, $2 + $3 }' "$D/time.txt"; }
round() {  # $1: label, $2: binary, $3: folder suffix
  local b="$2" s="$3"
  rm -rf "out$s" "out10$s" "ten10$s"
  echo "$1 cold $(t taskset -c 0 $b ingest cohort --out out$s --size 128 --workers 1)"
  echo "$1 warm $(t taskset -c 0 $b ingest cohort --out out$s --size 128 --workers 1) | $(tail -1 last.txt)"
  cp -a ten "ten10$s"
  taskset -c 0 $b ingest "ten10$s" --out "out10$s" --size 128 --workers 1 >/dev/null 2>&1
  for x in $(ls cohort/train_images | sort | tail -2); do cp -a cohort/train_images/$x "ten10$s/train_images/"; done
  echo "$1 plus2 $(t taskset -c 0 $b ingest ten10$s --out out10$s --size 128 --workers 1) | $(tail -1 last.txt)"
  cmp "out$s/shard-00000.h5" "out10$s/shard-00000.h5" && echo "$1 plus2 bytes same as cold" || true
}
uptime
echo "start-up: version $(t taskset -c 0 $BIN version) (loads libtorch when it is built, which ingest never does)"
for rep in 1 2 3; do
  [ -n "${BASE:-}" ] && round base "$BASE" -base
  round new "$BIN" ""
  [ -n "${BASE:-}" ] && cmp out/shard-00000.h5 out-base/shard-00000.h5 && echo "base and new shards identical"
  uptime
done
