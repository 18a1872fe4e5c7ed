#!/usr/bin/env bash
# The README's demo: the phantom cohort end to end.
set -euo pipefail
BIN="$1"; OUT="$2"
"$BIN" --help
"$BIN" synth --studies 8 --out "$OUT/cohort" --seed 7
