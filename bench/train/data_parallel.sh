#!/usr/bin/env bash
# Data-parallel scaling (BENCHMARKS.md, "Data-parallel training"): `fuse3d train` as one rank on one core against two
# Gloo ranks (--nproc 2) on two cores, the same global batch and epochs, alternated ROUNDS times; samples/s from each
# run's metrics.csv (the epoch's training time; validation excluded), the median over every epoch after the first.
# Usage: bench/train/data_parallel.sh [STUDIES SIZE EPOCHS BATCH ROUNDS]   (release build; check `uptime` first)
# Example: bench/train/data_parallel.sh 96 32 5 16 3
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STUDIES="${1:-96}"; SIZE="${2:-32}"; EPOCHS="${3:-5}"; BATCH="${4:-16}"; ROUNDS="${5:-3}"
BIN="$ROOT/.build/release/fuse3d"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
[ -x "$BIN" ] || (cd "$ROOT" && swift build -c release --product fuse3d >/dev/null)
FUSE3D_PROGRESS=off "$BIN" synth --studies "$STUDIES" --out "$WORK/cohort" --seed 9 >/dev/null
FUSE3D_PROGRESS=off "$BIN" ingest "$WORK/cohort" --out "$WORK/shards" --size "$SIZE" >/dev/null
printf 'folds: 4\nepochs: %s\nthreads: 1\nwidth: 1.0\ntwo_stage: false\nema_decay: 0\nloader:\n  threads: 1\n' "$EPOCHS" > "$WORK/train.yaml"
rates() { awk -F, 'NR > 2 { print $10 }' "$1/fold-0/metrics.csv"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
: > "$WORK/one"; : > "$WORK/two"
printf 'load before: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
  FUSE3D_PROGRESS=off taskset -c 0 "$BIN" train "$WORK/shards" --out "$WORK/r1-$round" --config "$WORK/train.yaml" --fold 0 --batch "$BATCH" >/dev/null
  FUSE3D_PROGRESS=off taskset -c 0,1 "$BIN" train "$WORK/shards" --out "$WORK/r2-$round" --config "$WORK/train.yaml" --fold 0 --batch "$BATCH" --nproc 2 >/dev/null
  rates "$WORK/r1-$round" >> "$WORK/one"; rates "$WORK/r2-$round" >> "$WORK/two"
  printf 'round %s: one rank %s | two ranks %s samples/s (load %s)\n' "$round" "$(rates "$WORK/r1-$round" | paste -sd' ')" \
    "$(rates "$WORK/r2-$round" | paste -sd' ')" "$(cut -d' ' -f1 /proc/loadavg)"
done
one="$(median < "$WORK/one")"; two="$(median < "$WORK/two")"
printf 'median samples/s: one rank %s, two ranks %s: %s x\n' "$one" "$two" "$(awk -v a="$one" -v b="$two" 'BEGIN { printf "%.2f", b / a }')"
