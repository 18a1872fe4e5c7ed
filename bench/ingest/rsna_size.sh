#!/usr/bin/env bash
# The RSNA 2024 train set's size, end to end (issue 27; BENCHMARKS.md, "An archive of the RSNA train set's size").
#
#   bash bench/ingest/rsna_size.sh [BINARY] [WORK]        (release binary; WORK needs ~70 GB)
#
# Builds (once) an archive of N=2000 phantom studies shaped like the RSNA train set (bench/archive/rsna_shape.py:
# scanner-size matrices, ~77 files a study, five transfer syntaxes, 17 % of studies with 2-4 Axial T2 series, rescale
# tags on 18 % of the files, a few studies with missing series, localizers, damaged and stray files), the same shape at
# SMALL=200 studies (all rendered; the N-study archive is N/COPIES rendered studies and their clones), and a TEST=700-study test_images archive with sample_submission.csv (at synth's default matrices). Then times, one command at a
# time with GNU time (wall, user+system CPU of the whole process tree, peak RSS of the largest process): scan; a cold
# ingest of SMALL and of N studies; a warm re-run of N; verify; inspect (gallery); the loader over every sample; and
# predict on the test archive with a one-epoch run trained on the SMALL shards. Results: WORK/results.tsv and the
# commands' output under WORK/logs.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(realpath "${1:-.build/release/fuse3d}")
WORK=${2:-/tmp/fuse3d-rsna-size}
N=${N:-2000}; SMALL=${SMALL:-200}; TEST=${TEST:-700}; COPIES=${COPIES:-5}
PY=${PY:-.venv/bin/python}
SHAPE=(--sagittal-matrix 384 --axial-matrix 320 --axial-slices 8-10)
# The test archive is only predict's input (its cost is mostly the model's): the default matrices keep its synth short.
TEST_SHAPE=(--sagittal-matrix 256 --axial-matrix 192)
mkdir -p "$WORK/logs" "$WORK/parts"
RESULTS="$WORK/results.tsv"
[ -f "$RESULTS" ] || printf 'step\tstudies\twall_s\tcpu_s\tpeak_rss_mb\n' > "$RESULTS"

# One archive of `total` studies: 82 % explicit little endian, 5 % JPEG 2000, 5 % JPEG-LS, 3 % RLE, 2 % JPEG lossless,
# 3 % --quirks (each seed offset by `base`, so the archives share no study).
make_archive() {
    local name=$1 total=$2 base=$3 layout=${4:-} copies=${5:-1}
    local -a shape=("${SHAPE[@]}"); [ "$layout" = --test ] && shape=("${TEST_SHAPE[@]}")
    [ -d "$WORK/$name" ] && return
    local parts=()
    local -a spec=("el explicit-le 82" "j2k jpeg2000 5" "jls jpeg-ls 5" "rle rle 3" "jpl jpeg-lossless 2" "q quirks 3")
    local used=0 i=0
    for s in "${spec[@]}"; do
        read -r tag syntax pct <<< "$s"
        local n=$(( total * pct / 100 )); [ "$tag" = el ] && n=$(( total - total * 18 / 100 ))
        [ "$n" -gt 0 ] || continue
        local dir="$WORK/parts/$name-$tag"
        if [ ! -f "$dir/train.csv" ]; then
            rm -rf "$dir"
            if [ "$syntax" = quirks ]; then
                "$BIN" synth --studies "$n" --seed $((base + i)) "${shape[@]}" --quirks --out "$dir" > "$WORK/logs/synth-$name-$tag.txt" 2>&1
            else
                "$BIN" synth --studies "$n" --seed $((base + i)) "${shape[@]}" --transfer-syntax "$syntax" --out "$dir" > "$WORK/logs/synth-$name-$tag.txt" 2>&1
            fi
        fi
        parts+=("$dir"); used=$((used + n)); i=$((i + 1))
    done
    "$PY" bench/archive/rsna_shape.py $layout --copies "$copies" --seed "$base" --out "$WORK/$name" "${parts[@]}" | tee "$WORK/logs/shape-$name.txt"
    # The parts are hard-linked into the archive: removing them frees nothing but their names.
    rm -rf "${parts[@]}"
}

# Runs a command under GNU time and appends a row to results.tsv.
measure() {
    local step=$1 studies=$2; shift 2
    local t="$WORK/logs/$step.time"
    /usr/bin/time -o "$t" -f '%e %U %S %M' "$@" > "$WORK/logs/$step.txt" 2>&1 || { echo "$step failed: see $WORK/logs/$step.txt"; tail -5 "$WORK/logs/$step.txt"; exit 1; }
    read -r wall user sys rss < "$t"
    printf '%s\t%s\t%s\t%.1f\t%.0f\n' "$step" "$studies" "$wall" "$(echo "$user + $sys" | bc)" "$(echo "$rss / 1024" | bc)" | tee -a "$RESULTS"
}

make_archive small "$SMALL" 300
# N studies: N/COPIES rendered, each cloned COPIES-1 times with new ids and UIDs (rsna_shape.py --copies): every file
# is its own (read, decoded and fused on its own; nothing shared in the page cache), only the pixels repeat.
make_archive train $((N / COPIES)) 100 "" "$COPIES"
make_archive test "$TEST" 500 --test
du -sh "$WORK/train" "$WORK/small" "$WORK/test" | tee "$WORK/logs/sizes.txt"
find "$WORK/train" -type f | wc -l | sed 's/^/train files: /' | tee -a "$WORK/logs/sizes.txt"

rm -rf "$WORK/small-out" "$WORK/out"
measure scan "$N" "$BIN" scan "$WORK/train"
measure ingest-cold "$SMALL" "$BIN" ingest "$WORK/small" --out "$WORK/small-out" --pipeline pipelines/rsna-lumbar.yaml
measure ingest-cold "$N" "$BIN" ingest "$WORK/train" --out "$WORK/out" --pipeline pipelines/rsna-lumbar.yaml
measure ingest-warm "$N" "$BIN" ingest "$WORK/train" --out "$WORK/out" --pipeline pipelines/rsna-lumbar.yaml
du -sb "$WORK/out" --exclude=.cache | awk '{printf "shards and report: %.2f GB\n", $1/1e9}' | tee -a "$WORK/logs/sizes.txt"
du -sb "$WORK/out/.cache" | awk '{printf "cache: %.2f GB\n", $1/1e9}' | tee -a "$WORK/logs/sizes.txt"
ls -l "$WORK/out/ingest-report.json" "$WORK/out/.headers.index" | awk '{print $5, $9}' | tee -a "$WORK/logs/sizes.txt"
measure verify "$N" "$BIN" verify "$WORK/out"
measure inspect "$N" "$BIN" inspect "$WORK/out" --html "$WORK/gallery.html"
ls -l "$WORK/gallery.html" | awk '{print "gallery bytes:", $5}' | tee -a "$WORK/logs/sizes.txt"
measure loader "$N" "$BIN" bench loader "$WORK/out" --threads 2 --epochs 1 --batch 8
# A run to predict with: one epoch of the defaults on the SMALL shards (its quality is not the point here).
rm -rf "$WORK/run"
measure train-1-epoch "$SMALL" "$BIN" train "$WORK/small-out" --out "$WORK/run" --fold 0 --epochs 1
measure predict "$TEST" "$BIN" predict "$WORK/run" "$WORK/test" --out "$WORK/submission.csv" --pipeline pipelines/rsna-lumbar.yaml
head -c 300 "$WORK/submission.csv"; echo
wc -l < "$WORK/submission.csv" | sed 's/^/submission lines: /' | tee -a "$WORK/logs/sizes.txt"
