#!/usr/bin/env bash
# Alternates `fuse3d bench train` and its PyTorch-eager peer (bench_train.py) on the same network,
# input and thread count, ROUNDS times per configuration, and writes the medians and the ratio
# Swift/PyTorch to bench/out/torch-train.md (a ratio ≤ 1.05 means Swift adds nothing measurable).
#
# Usage: bench/torch/bench_train.sh [path/to/fuse3d]   (env: ROUNDS, STEPS, THREADS, CONFIGS)
# Example: ROUNDS=3 THREADS=1 bench/torch/bench_train.sh .build/release/fuse3d
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${1:-$ROOT/.build/release/fuse3d}"
PY="$ROOT/.venv/bin/python"
ROUNDS="${ROUNDS:-3}"
STEPS="${STEPS:-10}"
THREADS="${THREADS:-1}"
# "model size batch [extra flags]" per configuration, separated by ";" (flags go to both sides)
CONFIGS="${CONFIGS:-efficientnet3d 64 2;vit3d 64 2;efficientnet3d 32 4 --width 0.5}"
OUT="$ROOT/bench/out"
mkdir -p "$OUT"
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"

field() { awk -v k="$1" '$0 ~ "^"k { print $(NF-('"${2:-0}"')) }'; }
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

report="$OUT/torch-train.md"
{
  echo "| model | size³ | batch | flags | threads | fuse3d sec/step | PyTorch sec/step | ratio | fuse3d peak RSS MiB | PyTorch peak RSS MiB |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
} > "$report"

IFS=';' read -r -a configs <<< "$CONFIGS"
for config in "${configs[@]}"; do
  IFS=' ' read -r model size batch flags_text <<< "$config"
  IFS=' ' read -r -a flags <<< "${flags_text:-}"
  extra="${flags_text:-}"
  args=(--model "$model" --size "$size" --batch "$batch" --steps "$STEPS" --threads "$THREADS" "${flags[@]}")
  : > "$OUT/swift.sec"; : > "$OUT/py.sec"; : > "$OUT/swift.rss"; : > "$OUT/py.rss"
  for ((r = 0; r < ROUNDS; r++)); do
    s="$("$BIN" bench train "${args[@]}")"
    p="$(cd "$ROOT/bench/torch" && "$PY" bench_train.py "${args[@]}")"
    echo "$s" | field "sec/step" >> "$OUT/swift.sec"
    echo "$p" | field "sec/step" >> "$OUT/py.sec"
    echo "$s" | field "peak RSS" 1 >> "$OUT/swift.rss"
    echo "$p" | field "peak RSS" 1 >> "$OUT/py.rss"
  done
  ss="$(median < "$OUT/swift.sec")"; ps="$(median < "$OUT/py.sec")"
  sr="$(median < "$OUT/swift.rss")"; pr="$(median < "$OUT/py.rss")"
  ratio="$(awk -v a="$ss" -v b="$ps" 'BEGIN { printf "%.3f", a / b }')"
  line="| $model | $size | $batch | ${extra:--} | $THREADS | $ss | $ps | $ratio | $sr | $pr |"
  echo "$line" | tee -a "$report"
done
echo "wrote $report"
