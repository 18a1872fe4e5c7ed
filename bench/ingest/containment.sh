#!/usr/bin/env bash
# Issue 32: what the supervised decode workers cost. One release binary, alternated rounds of a cold
# `ingest --workers 2` pinned to cores 0-1 with `--decoders workers` (the default: decode and fusion in worker
# processes) and `--decoders in-process` (no containment), on the 48 scanner-size studies of issue 20
# (synth --studies 48 --seed 20 --sagittal-matrix 464 --axial-matrix 320, 128³). CPU is user + system of the
# whole process tree (GNU time counts the workers the ingest waits for). Checks the two write the same shards.
# Usage: [ROUNDS=5] [STUDIES=48] bash bench/ingest/containment.sh [OUT_DIR]   (default bench/out/containment)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$ROOT/bench/out/containment}"
BIN="${FUSE3D:-$ROOT/.build/release/fuse3d}"
ROUNDS="${ROUNDS:-5}"
STUDIES="${STUDIES:-48}"
[ -x "$BIN" ] || (cd "$ROOT" && swift build -c release --product fuse3d >/dev/null)
# A copy: a rebuild during the rounds must not change the binary under test.
mkdir -p "$OUT"
cp "$BIN" "$OUT/fuse3d.bin"
BIN="$OUT/fuse3d.bin"
[ -d "$OUT/cohort-$STUDIES" ] || "$BIN" synth --studies "$STUDIES" --out "$OUT/cohort-$STUDIES" --seed 20 \
    --sagittal-matrix 464 --axial-matrix 320 >/dev/null 2>&1
echo "load: $(uptime)"
: > "$OUT/runs.txt"
for r in $(seq "$ROUNDS"); do
    for mode in workers in-process; do
        rm -rf "$OUT/$mode"
        /usr/bin/time -f "%e %U %S %M" -o "$OUT/time.txt" taskset -c 0,1 "$BIN" ingest "$OUT/cohort-$STUDIES" --out "$OUT/$mode" \
            --size 128 --workers 2 --decoders "$mode" >/dev/null 2>&1
        awk -v m="$mode" '{ printf "%s %.2f %.2f %d\n", m, $1, $2 + $3, $4 }' "$OUT/time.txt" | tee -a "$OUT/runs.txt"
    done
done
for f in "$OUT"/workers/shard-*.h5 "$OUT/workers/ingest-report.json"; do
    cmp -s "$f" "$OUT/in-process/$(basename "$f")" || { echo "DIFFERENT: $(basename "$f")"; exit 1; }
done
echo "workers and in-process wrote the same shards and report"
python3 - "$OUT/runs.txt" <<'PYEOF'
import statistics as st, sys
runs = [l.split() for l in open(sys.argv[1]) if l.strip()]
w = [r for r in runs if r[0] == "workers"]; p = [r for r in runs if r[0] == "in-process"]
ratio = lambda i: st.median(float(a[i]) / float(b[i]) for a, b in zip(w, p))
print("| | wall (median) | CPU (median) | peak RSS of the ingest |")
print("|---|---|---|---|")
for name, rs in (("in-process", p), ("workers", w)):
    print(f"| {name} | {st.median(float(r[1]) for r in rs):.2f} s | {st.median(float(r[2]) for r in rs):.2f} s | {st.median(int(r[3]) for r in rs) / 1024:.0f} MB |")
print(f"| workers ÷ in-process, pair by pair (median) | {ratio(1):.3f}× | {ratio(2):.3f}× | |")
PYEOF
