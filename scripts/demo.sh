#!/usr/bin/env bash
# The README's demo: the phantom cohort end to end (synth → scan → ingest → inspect → verify).
# Usage: scripts/demo.sh BIN OUT   (make demo passes .build/release/fuse3d and demo-out)
set -euo pipefail
BIN="$1"; OUT="$2"
STUDIES="${DEMO_STUDIES:-24}"
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "synth: $STUDIES phantom studies in the RSNA 2024 layout (real DICOM through GDCM, with quirks)"
"$BIN" synth --studies "$STUDIES" --out "$OUT/cohort" --seed 7 --quirks

step "scan: what the archive holds"
"$BIN" scan "$OUT/cohort" > "$OUT/scan.txt"
head -n 20 "$OUT/scan.txt"
echo "… (full listing: $OUT/scan.txt)"

step "ingest: fuse every study into a 64³ grid, write HDF5 shards"
"$BIN" ingest "$OUT/cohort" --out "$OUT/shards" --pipeline pipelines/demo.yaml --overwrite

step "inspect: summary, a picture and a NIfTI of the first sample, an HTML gallery of all"
"$BIN" inspect "$OUT/shards"
"$BIN" inspect "$OUT/shards" --sample 0 --png "$OUT/sample-0.png" --nifti "$OUT/sample-0.nii"
"$BIN" inspect "$OUT/shards" --html "$OUT/shards.html"

step "verify: every shard, chunk and checksum"
"$BIN" verify "$OUT/shards"

printf '\nDone. Look at %s/shards.html and %s/sample-0.png; shards in %s/shards; ingest report %s/shards/ingest-report.json.\n' "$OUT" "$OUT" "$OUT" "$OUT"
echo "Training from the shards (fuse3d train) arrives with the trainer issue; models and libtorch are in place (fuse3d bench train --help)."
