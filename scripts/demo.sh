#!/usr/bin/env bash
# The README's demo: the phantom cohort end to end (synth → scan → ingest → inspect → verify → train → report → predict).
# Usage: scripts/demo.sh BIN OUT   (make demo passes .build/release/fuse3d and demo-out)
set -euo pipefail
BIN="$1"; OUT="$2"
STUDIES="${DEMO_STUDIES:-160}"
EPOCHS="${DEMO_EPOCHS:-16}"
FOLDS="${DEMO_FOLDS:-4}"
TRAIN_FOLDS="${DEMO_TRAIN_FOLDS:-0}"   # which of the K folds to train (each is validated on its held-out studies; all four: "0 1 2 3")
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "synth: $STUDIES phantom studies in the RSNA 2024 layout (real DICOM through GDCM, with quirks), spines that move as patients' do"
"$BIN" synth --studies "$STUDIES" --out "$OUT/cohort" --seed 7 --quirks --spine-shift 1.5 --spine-tilt 10 --lordosis 10 --spine-size 8

step "scan: what the archive holds"
"$BIN" scan "$OUT/cohort" > "$OUT/scan.txt"
head -n 20 "$OUT/scan.txt"
echo "… (full listing: $OUT/scan.txt)"

step "ingest: fuse every study into a 128³ grid (about 2.3 mm), write HDF5 shards"
"$BIN" ingest "$OUT/cohort" --out "$OUT/shards" --pipeline pipelines/demo.yaml --overwrite

step "inspect: summary, a picture and a NIfTI of the first sample, an HTML gallery of all"
"$BIN" inspect "$OUT/shards"
"$BIN" inspect "$OUT/shards" --sample 0 --png "$OUT/sample-0.png" --nifti "$OUT/sample-0.nii"
"$BIN" inspect "$OUT/shards" --html "$OUT/shards.html"

step "verify: every shard, chunk and checksum"
"$BIN" verify "$OUT/shards"

step "train: folds $TRAIN_FOLDS of a $FOLDS-fold split, $EPOCHS epochs each, scored on held-out studies with the RSNA 2024 metric against the best constant prediction"
cat > "$OUT/train.yaml" <<YAML
# The demo's training configuration (fuse3d train --help; every key is optional). The model is the default two-stage
# one: a localizer finds every label column's point (canal, foramina, recesses at each level) on the coarse grid, one crop per
# label column at its point goes through one network (the recesses' cut from the axial series' own slices at 1 mm).
model: efficientnet3d
width: 0.25
folds: $FOLDS
epochs: $EPOCHS
batch_size: 8
seed: 0
optimizer:
  lr: 0.003
  weight_decay: 0.01
schedule:
  warmup_epochs: 1
clip_norm: 1.0
ema_decay: 0.95   # validate (and keep as best) the moving average of the classifier's weights: steadier on 120 training studies
augmentation:
  flip: 0.5       # left-right mirror with the left/right label columns swapped
YAML
rm -rf "$OUT/run"
for fold in $TRAIN_FOLDS; do
  "$BIN" train "$OUT/shards" --out "$OUT/run" --config "$OUT/train.yaml" --fold "$fold" --resume
done

step "evaluate: the folds' best checkpoints averaged (on the training shards here, so optimistic; held-out scores are above)"
"$BIN" evaluate "$OUT/run" "$OUT/shards" --out "$OUT/run/evaluation.json" | head -n 8

step "predict: a Kaggle submission from the DICOM archive itself (ingested on the fly with the run's pipeline)"
"$BIN" predict "$OUT/run" "$OUT/cohort" --out "$OUT/submission.csv" --pipeline pipelines/demo.yaml --keypoints "$OUT/points.csv"
head -n 4 "$OUT/submission.csv"
head -n 3 "$OUT/points.csv"

printf "\nDone in %d s (%d min).\n" "$SECONDS" "$((SECONDS / 60))"
printf 'Training report: %s/run/report.html (summary %s/run/summary.json); shards gallery: %s/shards.html; picture: %s/sample-0.png; submission: %s/submission.csv; predicted points: %s/points.csv.\n' "$OUT" "$OUT" "$OUT" "$OUT" "$OUT" "$OUT"
