#!/usr/bin/env bash
# Two-rank scaling of two fuse3d builds side by side (BENCHMARKS.md, "Data-parallel training: the overlap"): one
# rank of BEFORE on one core, then two Gloo ranks (--nproc 2, two cores) of BEFORE, of AFTER with the default buckets,
# and of AFTER with EXTRA_YAML (smaller buckets), alternated ROUNDS times on the same shards. Each build is a folder
# holding `fuse3d` and its `libfuse3d_torch.so`. Reports per run the median samples/s of the epochs after the first
# (metrics.csv: training time only), the wall seconds and the CPU seconds (user + sys, all ranks) of the whole run.
# Usage: bench/train/data_parallel_overlap.sh BEFORE AFTER [STUDIES SIZE EPOCHS BATCH ROUNDS EXTRA_YAML]
# Example: bench/train/data_parallel_overlap.sh /tmp/base /tmp/new 64 32 4 16 3 'bucket_mb: 4'
set -euo pipefail
BEFORE="$1"; AFTER="$2"
STUDIES="${3:-64}"; SIZE="${4:-32}"; EPOCHS="${5:-4}"; BATCH="${6:-16}"; ROUNDS="${7:-3}"; EXTRA="${8:-bucket_mb: 4}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export FUSE3D_PROGRESS=off
FUSE3D_TORCH="$BEFORE/libfuse3d_torch.so" "$BEFORE/fuse3d" synth --studies "$STUDIES" --out "$WORK/cohort" --seed 9 >/dev/null
FUSE3D_TORCH="$BEFORE/libfuse3d_torch.so" "$BEFORE/fuse3d" ingest "$WORK/cohort" --out "$WORK/shards" --size "$SIZE" >/dev/null
printf 'folds: 4\nepochs: %s\nthreads: 1\nwidth: 1.0\ntwo_stage: false\nema_decay: 0\nloader:\n  threads: 1\n' "$EPOCHS" > "$WORK/train.yaml"
{ cat "$WORK/train.yaml"; printf '%s\n' "$EXTRA"; } > "$WORK/extra.yaml"
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# run NAME BUILD CORES CONFIG [ARGS...]: one training run; appends "samples/s wall cpu" to $WORK/NAME.
run() {
  local name="$1" build="$2" cores="$3" config="$4"; shift 4
  local out="$WORK/$name-$round"
  FUSE3D_TORCH="$build/libfuse3d_torch.so" /usr/bin/time -f '%e %U %S' -o "$out.time" taskset -c "$cores" "$build/fuse3d" train "$WORK/shards" \
    --out "$out" --config "$config" --fold 0 --batch "$BATCH" "$@" >/dev/null
  local rate wall cpu
  rate="$(awk -F, 'NR > 2 { print $10 }' "$out/fold-0/metrics.csv" | median)"
  read -r wall user sys < "$out.time"
  cpu="$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }')"
  echo "$rate $wall $cpu" >> "$WORK/$name"
  printf '  %-22s %8s samples/s %7s s wall %7s s CPU (load %s)\n' "$name" "$rate" "$wall" "$cpu" "$(cut -d' ' -f1 /proc/loadavg)"
}
printf 'load before: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
  echo "round $round"
  run one-rank-before "$BEFORE" 0 "$WORK/train.yaml"
  run two-ranks-before "$BEFORE" 0,1 "$WORK/train.yaml" --nproc 2
  run two-ranks-after "$AFTER" 0,1 "$WORK/train.yaml" --nproc 2
  run two-ranks-after-small "$AFTER" 0,1 "$WORK/extra.yaml" --nproc 2
done
echo "medians over rounds (samples/s, wall s, CPU s):"
for name in one-rank-before two-ranks-before two-ranks-after two-ranks-after-small; do
  printf '  %-22s %s %s %s\n' "$name" "$(cut -d' ' -f1 "$WORK/$name" | median)" "$(cut -d' ' -f2 "$WORK/$name" | median)" \
    "$(cut -d' ' -f3 "$WORK/$name" | median)"
done
