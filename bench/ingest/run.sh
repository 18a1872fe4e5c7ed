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

# "WALL,CPU" seconds of a command (CPU = user + system: on a shared machine the per-core figure that holds up).
seconds() { /usr/bin/time -f "%e,%U,%S" -o "$OUT/time.txt" "$@" >/dev/null 2>&1; awk -F, '{ printf "%s,%.2f", $1, $2 + $3 }' "$OUT/time.txt"; }
INGEST=("$BIN" ingest "$OUT/cohort" --size "$SIZE")
entries() { find "$1/.cache" -name '*.entry' 2>/dev/null | wc -l; }
same() { for f in "$1"/shard-*.h5 "$1/manifest.json"; do cmp -s "$f" "$2/$(basename "$f")" || { echo "DIFFERENT: $f"; return 1; }; done; echo same; }

rm -rf "$OUT/one" "$OUT/two" "$OUT/killed"
# Start-up: a scan of an empty folder (`fuse3d version` loads libtorch, which an ingest never does).
mkdir -p "$OUT/empty"
start=$(seconds taskset -c 0 "$BIN" scan "$OUT/empty")
decode=$(seconds taskset -c 0 "$BIN" scan "$OUT/cohort" --decode)
one=$(seconds taskset -c 0 "${INGEST[@]}" --out "$OUT/one" --workers 1)
two=$(seconds taskset -c 0,1 "${INGEST[@]}" --out "$OUT/two" --workers 2)
warm=$(seconds taskset -c 0 "${INGEST[@]}" --out "$OUT/one" --workers 1)
same_two=$(same "$OUT/one" "$OUT/two")

# kill -9 once 60% of the studies are in the cache, then the same command again.
taskset -c 0 "${INGEST[@]}" --out "$OUT/killed" --workers 1 >/dev/null 2>&1 &
pid=$!   # fuse3d itself (taskset execs it), not a subshell: kill -9 must reach the ingest
target=$(( STUDIES * 6 / 10 ))
while kill -0 "$pid" 2>/dev/null && [ "$(entries "$OUT/killed")" -lt "$target" ]; do sleep 0.02; done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
killed_at=$(entries "$OUT/killed")
resumed=$(seconds taskset -c 0 "${INGEST[@]}" --out "$OUT/killed" --workers 1)
same_resumed=$(same "$OUT/one" "$OUT/killed")

[ -f "$OUT/peer/raw/study.json" ] || "$PY" "$ROOT/bench/fusion/peer_fuse.py" make "$OUT/peer" >/dev/null
peer=$(taskset -c 0 "$PY" "$ROOT/bench/fusion/peer_fuse.py" fuse "$OUT/peer" --size "$SIZE" --repeats 1)

"$PY" - "$STUDIES" "$SIZE" "$start" "$decode" "$one" "$two" "$warm" "$killed_at" "$resumed" "$peer" "$same_two" "$same_resumed" <<'PYEOF'
import json, sys
n, size = int(sys.argv[1]), int(sys.argv[2])
start, decode, one, two, warm = ([float(x) for x in a.split(",")] for a in sys.argv[3:8])
killed_at = int(sys.argv[8])
resumed = [float(x) for x in sys.argv[9].split(",")]
peer = json.loads(sys.argv[10])
same_two, same_resumed = sys.argv[11], sys.argv[12]
net = lambda t: t[1] - start[1]  # CPU seconds beyond the process's start-up (a scan of an empty folder)
print(f"{n} phantom studies (synth --quirks, sagittal 256², axial 192²), {size}³ grid, every process pinned (taskset);")
print(f"CPU = user + system seconds; 'net' subtracts fuse3d's start-up ({start[1]:.2f} s CPU, {start[0]:.2f} s wall for `fuse3d scan` of an empty folder).\n")
print("| run | wall | CPU (net) | ratio |")
print("|---|---|---|---|")
print(f"| decode only (`scan --decode`, 1 core) | {decode[0]:.2f} s | {decode[1]:.2f} s ({net(decode):.2f} s) | ingest costs {net(one) / net(decode):.2f}× decoding |")
print(f"| cold ingest, 1 core | {one[0]:.2f} s | {one[1]:.2f} s ({net(one):.2f} s) | {n / net(one):.2f} studies per CPU-second |")
print(f"| cold ingest, 2 cores (`--workers 2`) | {two[0]:.2f} s | {two[1]:.2f} s | {one[0] / two[0]:.2f}× the 1-core wall speed; bytes {same_two} |")
print(f"| warm re-run, nothing changed (1 core) | {warm[0]:.2f} s | {warm[1]:.2f} s ({net(warm):.2f} s) | {net(warm) / net(one):.1%} of the cold run's net CPU ({warm[1] / one[1]:.1%} gross) |")
print(f"| re-run after kill -9 with {killed_at}/{n} cached (1 core) | {resumed[0]:.2f} s | {resumed[1]:.2f} s ({net(resumed):.2f} s) | {net(resumed) / net(one):.1%} of the cold run's net CPU; bytes {same_resumed} |")
careful = peer["read_pydicom_s"] + min(peer["map_coordinates_s"])
splat = peer["read_pydicom_s"] + min(peer["splat_s"])
ours = (one[0] - start[0]) / n  # wall per study, like the peers' own clocks (both pinned to core 0, same load)
print(f"| careful peer: pydicom read + scipy map_coordinates, 1 study (1 core) | {careful:.2f} s | | fuse3d {careful / ours:.1f}× faster per study and core (wall {ours:.2f} s) |")
print(f"| splat peer: pydicom read + splat, 1 study (1 core) | {splat:.2f} s | | fuse3d {splat / ours:.1f}× faster per study and core |")
PYEOF
