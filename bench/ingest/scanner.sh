#!/usr/bin/env bash
# Issue 20's table on scanner-size studies: 12 phantom studies at scanner matrix (synth --seed 20, sagittal 464²,
# axial 320², explicit little endian; bench/ingest/profile.sh's cohort) at 128³. For each binary (the current build,
# and BASE=/path/to/older/fuse3d when given), ROUNDS alternated rounds (default 3) of: `scan --decode` and a cold
# `ingest --workers 1` pinned to core 0, and a cold `ingest --workers 2` pinned to cores 0-1; and in each round the careful
# pydicom + scipy peer of bench/fusion (read + map_coordinates, no compression or writing) on one of 3 of the studies in
# turn, pinned to core 0.
# Prints every run and the medians: CPU (user + system) and wall seconds, ingest CPU against decode CPU, two workers
# against one (wall), and the peer's seconds per study against fuse3d's (whole-process wall per study, one core).
# Usage: [BASE=...] [ROUNDS=3] bash bench/ingest/scanner.sh [OUT_DIR]   (default bench/out/profile)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$ROOT/bench/out/profile}"
BIN="${FUSE3D:-$ROOT/.build/release/fuse3d}"
PY="$ROOT/.venv/bin/python"
ROUNDS="${ROUNDS:-3}"
[ -x "$BIN" ] || (cd "$ROOT" && swift build -c release --product fuse3d >/dev/null)
mkdir -p "$OUT"
[ -d "$OUT/cohort" ] || "$BIN" synth --studies 12 --out "$OUT/cohort" --seed 20 --sagittal-matrix 464 --axial-matrix 320 >/dev/null 2>&1
BINS=("$BIN"); NAMES=(now)
if [ -n "${BASE:-}" ]; then BINS=("$BASE" "$BIN"); NAMES=(base now); fi
echo "load: $(uptime)"
run() {  # name kind command...: one whole process under /usr/bin/time; prints "name kind wall cpu"
    local name="$1" kind="$2"; shift 2
    /usr/bin/time -f "%e %U %S" -o "$OUT/time.txt" "$@" >/dev/null 2>&1
    awk -v n="$name" -v k="$kind" '{ printf "%s %s %.2f %.2f\n", n, k, $1, $2 + $3 }' "$OUT/time.txt"
}
: > "$OUT/runs.txt"
: > "$OUT/peer.txt"
STUDY_IDS=($(ls "$OUT/cohort/train_images" | sort | head -3))
for s in "${STUDY_IDS[@]}"; do mkdir -p "$OUT/peer/$s"; ln -sfn "$OUT/cohort/train_images/$s" "$OUT/peer/$s/dicom"; done
for r in $(seq "$ROUNDS"); do
    # The peer in the same rounds (one of three studies in turn), so that the machine's drift touches both alike.
    s="${STUDY_IDS[$(( (r - 1) % 3 ))]}"
    taskset -c 0 "$PY" "$ROOT/bench/fusion/peer_fuse.py" fuse "$OUT/peer/$s" --size 128 --repeats 1 >> "$OUT/peer.txt"
    for i in "${!BINS[@]}"; do
        b="${BINS[$i]}" n="${NAMES[$i]}"
        run "$n" decode taskset -c 0 "$b" scan "$OUT/cohort" --decode | tee -a "$OUT/runs.txt"
        rm -rf "$OUT/one-$n"; run "$n" one taskset -c 0 "$b" ingest "$OUT/cohort" --out "$OUT/one-$n" --size 128 --workers 1 | tee -a "$OUT/runs.txt"
        rm -rf "$OUT/two-$n"; run "$n" two taskset -c 0,1 "$b" ingest "$OUT/cohort" --out "$OUT/two-$n" --size 128 --workers 2 | tee -a "$OUT/runs.txt"
    done
done
for n in "${NAMES[@]}"; do
    cmp -s "$OUT/one-$n/shard-00000.h5" "$OUT/two-$n/shard-00000.h5" && echo "$n: one and two workers wrote the same shard" || echo "$n: DIFFERENT shards"
done
"$PY" - "$OUT/runs.txt" "$OUT/peer.txt" "${NAMES[@]}" <<'PYEOF'
import json, statistics as st, sys
runs = [l.split() for l in open(sys.argv[1]) if l.strip()]
peer = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
per_study = st.median(p["read_pydicom_s"] + min(p["map_coordinates_s"]) for p in peer)
med = lambda n, k, i: st.median(float(r[i]) for r in runs if r[0] == n and r[1] == k)
print(f"\npeer (pydicom read + scipy map_coordinates, 1 core): {per_study:.3f} s per study (median of {len(peer)}: "
      + ", ".join(f"{p['read_pydicom_s'] + min(p['map_coordinates_s']):.3f}" for p in peer) + ")")
print("| build | decode CPU | ingest 1 core CPU / wall | ingest ÷ decode (CPU) | 2 workers wall | 2 ÷ 1 (wall) | peer ÷ fuse3d per study |")
print("|---|---|---|---|---|---|---|")
for n in sys.argv[3:]:
    d, oc, ow, tw = med(n, "decode", 3), med(n, "one", 3), med(n, "one", 2), med(n, "two", 2)
    print(f"| {n} | {d:.2f} s | {oc:.2f} / {ow:.2f} s | {oc / d:.1f}× | {tw:.2f} s | {ow / tw:.2f}× | {per_study / (ow / 12):.1f}× |")
PYEOF
