#!/usr/bin/env bash
# Loader benchmark: fuse3d's ShardLoader (`fuse3d bench loader`, release build) against (a) h5py +
# hdf5plugin reading one sample at a time and (b) a PyTorch DataLoader over an h5py Dataset with the
# same number of workers and batch size, on the same synthetic shard folder (bench/loader/make_shards.py),
# every process pinned to the same cores with taskset. Prints a markdown table for BENCHMARKS.md.
# Usage: bench/loader/run.sh [SAMPLES SIZE THREADS EPOCHS BATCH]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SAMPLES="${1:-48}" SIZE="${2:-128}" THREADS="${3:-2}" EPOCHS="${4:-2}" BATCH="${5:-8}"
PY="$ROOT/.venv/bin/python"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
CPUS="0-$((THREADS - 1))"

cd "$ROOT"
swift build -c release --product fuse3d >/dev/null
BIN=.build/release/fuse3d
"$PY" bench/loader/make_shards.py "$WORK/shards" "$SAMPLES" "$SIZE" 16
rate() { awk '/^samples\/s /{print $2}'; }

# Warm the page cache so that every reader starts from the same place. Each repeat runs every reader in
# turn, so load from other processes falls on all alike; the best of the repeats is kept.
cat "$WORK"/shards/*.h5 >/dev/null
REPEATS=3
best() { printf '%s\n' "$@" | sort -g | tail -1; }
o1=() ot=() oa=() oh=() od=() ol=() os=()
for _ in $(seq "$REPEATS"); do
  one=$(taskset -c 0 "$BIN" bench loader "$WORK/shards" --threads 1 --epochs "$EPOCHS" --batch "$BATCH" --decode-limit)
  o1+=("$(echo "$one" | rate)")
  ol+=("$(echo "$one" | awk '/^decode limit/{print $NF}')")
  ot+=("$(taskset -c "$CPUS" "$BIN" bench loader "$WORK/shards" --threads "$THREADS" --epochs "$EPOCHS" --batch "$BATCH" | rate)")
  aug=$(taskset -c "$CPUS" "$BIN" bench loader "$WORK/shards" --threads "$THREADS" --epochs 1 --batch "$BATCH" --augment)
  oa+=("$(echo "$aug" | rate)")
  os+=("$(echo "$aug" | awk '/^augment sec\/batch/{print -$NF}')")
  oh+=("$(taskset -c 0 "$PY" bench/loader/peer.py single "$WORK/shards" "$EPOCHS" | rate)")
  od+=("$(taskset -c "$CPUS" "$PY" bench/loader/peer.py dataloader "$WORK/shards" "$EPOCHS" "$THREADS" "$BATCH" | rate)")
done
r1=$(best "${o1[@]}") limit=$(best "${ol[@]}") rt=$(best "${ot[@]}") ra=$(best "${oa[@]}")
as=$(best "${os[@]}") h5=$(best "${oh[@]}") dl=$(best "${od[@]}")
as=${as#-}
echo "$SAMPLES samples of 3 × ${SIZE}³ float16 in shards of 16, $EPOCHS shuffled epochs, batch $BATCH, $(nproc) cores, best of $REPEATS"
echo
echo "| reader | threads / workers | samples/s | fuse3d ÷ reader |"
echo "|---|---:|---:|---:|"
awk -v r1="$r1" -v rt="$rt" -v h5="$h5" -v dl="$dl" -v t="$THREADS" -v lim="$limit" -v ra="$ra" -v as="$as" 'BEGIN {
  printf "| fuse3d ShardLoader | 1 | %.1f | — |\n", r1
  printf "| fuse3d ShardLoader | %d | %.1f | — |\n", t, rt
  printf "| h5py + hdf5plugin, one sample at a time | 1 | %.1f | %.2f× (1 thread: %.2f×) |\n", h5, rt / h5, r1 / h5
  printf "| PyTorch DataLoader over h5py | %d | %.1f | %.2f× |\n", t, dl, rt / dl
  printf "\n"
  printf "One loader thread reaches %.0f%% of the codec limit (%.1f samples/s decoding chunks already in memory); %d threads give %.2f× one.\n", 100 * r1 / lim, lim, t, rt / r1
  printf "With the default augmentation on the CPU: %.1f samples/s, %.3f s per batch of augmentation.\n", ra, as
}'
