#!/usr/bin/env bash
# Training benchmark (BENCHMARKS.md, "Training"): on one shard folder and one split,
#  1. `fuse3d train` (release) for EPOCHS epochs of fold 0: samples/s, epoch seconds and the seconds the loop
#     waited for the loader (metrics.csv's loader_wait_s): the loader's overhead on the epoch;
#  2. `fuse3d bench train` on the same model, input and batch: pure compute per step (a fixed batch in memory);
#  3. whole processes side by side with farm-bench: `fuse3d train` against the PyTorch twin
#     (bench/train/twin_train.py: the same network, recipe and split, a DataLoader over h5py + hdf5plugin with
#     as many workers as our loader threads), alternated, pinned to the same cores; median ratio.
# Usage: bench/train/run.sh SHARDS [EPOCHS THREADS RUNS]
#   SHARDS: a shard folder (make demo's demo-out/shards, or any 64³ ingest); the model input is its centre crop
#   CROP (default 32 32 32, so that step 2's cubic --size is the same input).
# Example: bench/train/run.sh demo-out/shards 2 2 3
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SHARDS="$(cd "$1" && pwd)"; EPOCHS="${2:-2}"; THREADS="${3:-2}"; RUNS="${4:-3}"
CROP="${CROP:-32}"; WIDTH="${WIDTH:-0.25}"; BATCH="${BATCH:-8}"
PY="$ROOT/.venv/bin/python"
BIN="$ROOT/.build/release/fuse3d"
CPUS="$(seq -s, 0 $((THREADS - 1)))"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"
[ -x "$BIN" ] || swift build -c release --product fuse3d >/dev/null

cat > "$WORK/train.yaml" <<YAML
model: efficientnet3d
width: $WIDTH
input_crop: [$CROP, $CROP, $CROP]
folds: 4
epochs: $EPOCHS
batch_size: $BATCH
threads: $THREADS
loader:
  threads: $THREADS
optimizer:
  lr: 0.003
ema_decay: 0.95
augmentation:
  flip: 0.5
YAML
train() { rm -rf "$WORK/run"; taskset -c "$CPUS" "$BIN" train "$SHARDS" --out "$WORK/run" --config "$WORK/train.yaml" --fold 0 >/dev/null; }
train
cp "$WORK/run/splits.json" "$WORK/splits.json"
echo "== 1. fuse3d train, fold 0, $EPOCHS epochs (metrics.csv)"
column -s, -t < "$WORK/run/fold-0/metrics.csv" | cut -c1-200
awk -F, 'NR > 1 { s += $11; w += $12; r += $10; n++ } END { printf "mean samples/s %.1f, epoch %.2f s, loader wait %.3f s = %.2f%% of the epoch\n", r / n, s / n, w / n, 100 * w / s }' \
  "$WORK/run/fold-0/metrics.csv"

echo "== 1b. the same without EMA and flips (the loop's own cost: loader, crop, step, bookkeeping)"
sed -e 's/^ema_decay: .*/ema_decay: 0/' -e 's/^  flip: .*/  flip: 0/' "$WORK/train.yaml" > "$WORK/plain.yaml"
rm -rf "$WORK/plain"
taskset -c "$CPUS" "$BIN" train "$SHARDS" --out "$WORK/plain" --config "$WORK/plain.yaml" --fold 0 >/dev/null
awk -F, 'NR > 1 { s += $11; w += $12; r += $10; n++ } END { printf "mean samples/s %.1f, epoch %.2f s, loader wait %.3f s = %.2f%% of the epoch\n", r / n, s / n, w / n, 100 * w / s }' \
  "$WORK/plain/fold-0/metrics.csv"

echo "== 2. pure compute: fuse3d bench train (same model, ${CROP}³, batch $BATCH, $THREADS threads)"
taskset -c "$CPUS" "$BIN" bench train --width "$WIDTH" --size "$CROP" --batch "$BATCH" --steps 10 --threads "$THREADS" | grep -E "sec/step"

echo "== 3. whole processes: fuse3d train vs the PyTorch twin + DataLoader over h5py ($EPOCHS epochs, $RUNS pairs)"
cat > "$WORK/twin.sh" <<SH
exec "$PY" "$ROOT/bench/train/twin_train.py" --shards "$SHARDS" --splits "$WORK/splits.json" --fold 0 --epochs $EPOCHS \
  --batch $BATCH --lr 0.003 --width $WIDTH --crop $CROP $CROP $CROP --flip 0.5 --ema 0.95 --threads $THREADS --workers $THREADS \
  >> "$WORK/twin.log" 2>&1
SH
cat > "$WORK/ours.sh" <<SH
rm -rf "$WORK/run2"
exec "$BIN" train "$SHARDS" --out "$WORK/run2" --config "$WORK/train.yaml" --fold 0 >> "$WORK/ours.log" 2>&1
SH
farm-bench -n "$RUNS" --warmup 0 --pin "$CPUS" --timeout 3000 --vs "sh $WORK/twin.sh" -- sh "$WORK/ours.sh"
echo "twin's own epochs (samples/s, epoch seconds, of which compute):"
grep -h '^{' "$WORK/twin.log" | tail -1 | "$PY" -c '
import json, sys
for e in json.load(sys.stdin)["history"]:
    print("  epoch %d: %.1f samples/s, %.2f s, of which compute %.2f s" % (e["epoch"], e["samples_per_s"], e["epoch_seconds"], e["compute_seconds"]))'
