#!/usr/bin/env bash
# Every benchmark, side by side with its peers; each writes its section of BENCHMARKS.md or prints its table.
# Usage: bash bench/run.sh [BIN]   (make bench passes .build/release/fuse3d)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export FUSE3D="${1:-$ROOT/.build/release/fuse3d}"
PY="$ROOT/.venv/bin/python"
echo "== DICOM reading (fuse3d vs pydicom)";        "$PY" "$ROOT/bench/dicom/bench.py" --bin "$FUSE3D" --write
echo "== Fusion (fuse3d vs scipy, splat)";          bash "$ROOT/bench/fusion/run.sh"
echo "== Shards (fuse3d vs h5py + hdf5plugin)";     bash "$ROOT/bench/shards/run.sh"
echo "== Synth (fuse3d vs pydicom + numpy)";        bash "$ROOT/bench/synth/run.sh" "$FUSE3D"
echo "== Training step (fuse3d vs PyTorch eager)";  bash "$ROOT/bench/torch/bench_train.sh" "$FUSE3D"
if [ -d "$ROOT/demo-out/shards" ]; then
  echo "== Training epochs (fuse3d train vs the PyTorch twin + DataLoader)"; bash "$ROOT/bench/train/run.sh" "$ROOT/demo-out/shards" 3 2 5
else
  echo "== Training epochs: skipped (run make demo first for its shards)"
fi
