#!/usr/bin/env bash
# Fusion time per study: Fuse3D's Fuser against the pydicom + scipy map_coordinates peer (same resampling)
# and the splat peer, on one phantom study (2 sagittal series of 15 and 17 slices at 256², 5 oblique axial
# stacks of 4 slices at 192²), same grid, best of 5; ours also pinned to one core (taskset), as the peers
# run on one; DICOM decoding is left out on both sides. Also checks that our grid equals the scipy peer's.
# Usage: bash bench/fusion/run.sh [OUT_DIR]   (default bench/out/fusion)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$ROOT/bench/out/fusion}"
PY="$ROOT/.venv/bin/python"
mkdir -p "$OUT"
[ -f "$OUT/raw/study.json" ] || "$PY" "$ROOT/bench/fusion/peer_fuse.py" make "$OUT"
BIN="${FUSE3D:-$ROOT/.build/release/fuse3d}"
[ -x "$BIN" ] || (cd "$ROOT" && swift build -c release >/dev/null)
echo "| grid | fuse3d, 2 cores | fuse3d, 1 core | scipy map_coordinates (÷ 1 core) | splat (÷ 1 core) | max abs diff to scipy | extra T1 voxels splat leaves empty |"
echo "|---|---|---|---|---|---|---|"
for size in 64 128; do
  ours=$("$BIN" bench fuse "$OUT/dicom" --size "$size" --repeats 5 --dump "$OUT/fuse3d-$size.f32")
  one=$(taskset -c 0 "$BIN" bench fuse "$OUT/dicom" --size "$size" --repeats 5)
  peers=$(taskset -c 0 "$PY" "$ROOT/bench/fusion/peer_fuse.py" fuse "$OUT" --size "$size" --repeats 5)
  "$PY" - "$OUT" "$size" "$ours" "$one" "$peers" <<'PYEOF'
import json, sys
import numpy as np
out, size, ours, one, peers = sys.argv[1], int(sys.argv[2]), *map(json.loads, sys.argv[3:6])
a = np.fromfile(f"{out}/fuse3d-{size}.f32", np.float32)
b = np.fromfile(f"{out}/peer-map_coordinates-{size}.f32", np.float32)
us, u1 = min(ours["fuse3d_s"]), min(one["fuse3d_s"])
mc, sp = min(peers["map_coordinates_s"]), min(peers["splat_s"])
print(f"| {size}³ | {us * 1000:.0f} ms | {u1 * 1000:.0f} ms | {mc * 1000:.0f} ms ({mc / u1:.1f}×) | {sp * 1000:.0f} ms ({sp / u1:.1f}×) "
      f"| {np.abs(a - b).max():.1e} | {peers['empty_fraction_t1']['splat'] - peers['empty_fraction_t1']['map_coordinates']:.1%} |")
PYEOF
done
