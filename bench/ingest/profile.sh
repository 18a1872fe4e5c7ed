#!/usr/bin/env bash
# Where a cold ingest spends its time (issue 20): a cohort of scanner-size studies (synth, sagittal 464²,
# axial 320²) through `fuse3d ingest --workers 1 --size 128`, pinned to one core, sampled by `perf record -g`
# (cpu-clock: this machine has no hardware counters) and its top entries printed (self time, by symbol);
# then instruction counts (callgrind, deterministic, so comparable on a loaded machine) of a 2-study cohort.
# Usage: bash bench/ingest/profile.sh [OUT_DIR]   (default bench/out/profile; STUDIES=12 SIZE=128; CALLGRIND=0 skips it)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$ROOT/bench/out/profile}"
BIN="${FUSE3D:-$ROOT/.build/release/fuse3d}"
STUDIES="${STUDIES:-12}"
SIZE="${SIZE:-128}"
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 1; }
[ -x "$BIN" ] || (cd "$ROOT" && swift build -c release --product fuse3d >/dev/null)
mkdir -p "$OUT"
[ -d "$OUT/cohort" ] || "$BIN" synth --studies "$STUDIES" --out "$OUT/cohort" --seed 20 --sagittal-matrix 464 --axial-matrix 320 >/dev/null 2>&1
[ -d "$OUT/pair" ] || "$BIN" synth --studies 2 --out "$OUT/pair" --seed 21 --sagittal-matrix 464 --axial-matrix 320 >/dev/null 2>&1

echo "load: $(uptime)"
rm -rf "$OUT/shards"
/usr/bin/time -f "wall %e s, CPU %U+%S s" taskset -c 0 perf record -q -e cpu-clock -F 999 -g -o "$OUT/perf.data" \
    "$BIN" ingest "$OUT/cohort" --out "$OUT/shards" --size "$SIZE" --workers 1 >/dev/null
echo "top entries (self, by symbol):"
perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -25 || true

if [ "${CALLGRIND:-1}" != 0 ]; then
    rm -rf "$OUT/pair-shards"
    # valgrind cannot read the Swift binary's debug info: a copy without it. (valgrind's CPU has no SHA
    # extensions, so SHA-256 runs its portable loop here.)
    strip --strip-debug -o "$OUT/fuse3d.nodebug" "$BIN"
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
        "$OUT/fuse3d.nodebug" ingest "$OUT/pair" --out "$OUT/pair-shards" --size "$SIZE" --workers 1 >/dev/null 2>"$OUT/callgrind.log"
    echo "instructions (callgrind, 2 studies): $(grep -o 'Collected : [0-9]*' "$OUT/callgrind.log" | awk '{print $3}')"
    callgrind_annotate "$OUT/callgrind.out" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | head -15 || true
fi
