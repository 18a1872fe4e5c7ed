#!/usr/bin/env bash
# Ingest at scale: studies/s of `fuse3d ingest` on one core and on two, a warm re-run, a re-run after a
# kill -9 at ~60%, against merely decoding the same files (`scan --decode`) and the careful Python peer of
# bench/fusion and its splat peer (pydicom read + resampling of one study, no compression or writing). Every process
# is pinned with taskset. Checks that the one- and two-core runs and the resumed run wrote the same bytes.
# Usage: bash bench/ingest/run.sh [OUT_DIR]   (default bench/out/ingest; STUDIES=12 SIZE=128 to change)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$ROOT/bench/out/ingest}"
BIN="${FUSE3D:-$ROOT/.build/release/fuse3d}"
PY="$ROOT/.venv/bin/python"
STUDIES="${STUDIES:-12}"
SIZE="${SIZE:-128}"
[ -x "$BIN" ] || (cd "$ROOT" && swift build -c release --product fuse3d >/dev/null)
mkdir -p "$OUT"
[ -d "$OUT/cohort" ] || "$BIN" synth --studies "$STUDIES" --out "$OUT/cohort" --seed 8 --quirks >/dev/null

seconds() { local start=$EPOCHREALTIME; "$@" >/dev/null 2>&1; echo "$EPOCHREALTIME - $start" | bc -l; }
ingest() { local cores=$1 out=$2; shift 2; taskset -c "$cores" "$BIN" ingest "$OUT/cohort" --out "$out" --size "$SIZE" "$@"; }
entries() { find "$1/.cache" -name '*.entry' 2>/dev/null | wc -l; }
same() { for f in "$1"/shard-*.h5 "$1/manifest.json"; do cmp -s "$f" "$2/$(basename "$f")" || { echo "DIFFERENT: $f"; return 1; }; done; echo same; }

rm -rf "$OUT/one" "$OUT/two" "$OUT/killed"
decode=$(seconds taskset -c 0 "$BIN" scan "$OUT/cohort" --decode)
one=$(seconds ingest 0 "$OUT/one" --workers 1)
two=$(seconds ingest 0,1 "$OUT/two" --workers 2)
warm=$(seconds ingest 0 "$OUT/one" --workers 1)
same_two=$(same "$OUT/one" "$OUT/two")

# kill -9 once 60% of the studies are in the cache, then the same command again.
taskset -c 0 "$BIN" ingest "$OUT/cohort" --out "$OUT/killed" --size "$SIZE" --workers 1 >/dev/null 2>&1 &
pid=$!   # fuse3d itself (taskset execs it), not a subshell: kill -9 must reach the ingest
target=$(( STUDIES * 6 / 10 ))
while kill -0 "$pid" 2>/dev/null && [ "$(entries "$OUT/killed")" -lt "$target" ]; do sleep 0.02; done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
killed_at=$(entries "$OUT/killed")
resumed=$(seconds ingest 0 "$OUT/killed" --workers 1)
same_resumed=$(same "$OUT/one" "$OUT/killed")

[ -f "$OUT/peer/raw/study.json" ] || "$PY" "$ROOT/bench/fusion/peer_fuse.py" make "$OUT/peer" >/dev/null
peer=$(taskset -c 0 "$PY" "$ROOT/bench/fusion/peer_fuse.py" fuse "$OUT/peer" --size "$SIZE" --repeats 1)

"$PY" - "$STUDIES" "$SIZE" "$decode" "$one" "$two" "$warm" "$killed_at" "$resumed" "$peer" "$same_two" "$same_resumed" <<'PYEOF'
import json, sys
n, size = int(sys.argv[1]), int(sys.argv[2])
decode, one, two, warm, killed_at, resumed = map(float, sys.argv[3:9])
peer = json.loads(sys.argv[9])
careful = peer["read_pydicom_s"] + min(peer["map_coordinates_s"])
splat = peer["read_pydicom_s"] + min(peer["splat_s"])
print(f"{n} phantom studies (synth --quirks, sagittal 256², axial 192²), {size}³ grid, every process pinned (taskset)\n")
print("| run | time | studies/s | ratio |")
print("|---|---|---|---|")
print(f"| decode only (`scan --decode`, 1 core) | {decode:.2f} s | {n / decode:.2f} | ingest is {one / decode:.2f}× of it |")
print(f"| cold ingest, 1 core | {one:.2f} s | {n / one:.2f} | 1× |")
print(f"| cold ingest, 2 cores (`--workers 2`) | {two:.2f} s | {n / two:.2f} | {one / two:.2f}× faster; bytes {sys.argv[10]} |")
print(f"| warm re-run, nothing changed (1 core) | {warm:.2f} s | {n / warm:.1f} | {warm / one:.1%} of cold |")
print(f"| re-run after kill -9 with {int(killed_at)}/{n} cached (1 core) | {resumed:.2f} s | — | {resumed / one:.1%} of cold; bytes {sys.argv[11]} |")
print(f"| careful peer: pydicom read + scipy map_coordinates, 1 study (1 core) | {careful:.2f} s | {1 / careful:.2f} | fuse3d {careful / (one / n):.1f}× per core |")
print(f"| splat peer: pydicom read + splat, 1 study (1 core) | {splat:.2f} s | {1 / splat:.2f} | fuse3d {splat / (one / n):.1f}× per core |")
PYEOF
