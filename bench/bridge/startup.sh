#!/usr/bin/env bash
# Start-up cost of libtorch for commands that do not train: the same command run by two fuse3d builds,
# alternated, N rounds; prints the median wall time of each and the ratio (new / old).
#   bench/bridge/startup.sh OLD_FUSE3D NEW_FUSE3D [N] -- ARGS...
# Example (old = a build linking libtorch, new = the bridge build):
#   bench/bridge/startup.sh /old/fuse3d .build/release/fuse3d 30 -- scan /tmp/cohort
set -euo pipefail
OLD="$1"; NEW="$2"; N="${3:-20}"
shift 3; [ "${1:-}" = "--" ] && shift
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
once() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
old_times=(); new_times=()
"$OLD" "$@" >/dev/null 2>&1; "$NEW" "$@" >/dev/null 2>&1   # warm the page cache for both
for _ in $(seq "$N"); do
  old_times+=("$(once "$OLD" "$@")")
  new_times+=("$(once "$NEW" "$@")")
done
o=$(printf '%s\n' "${old_times[@]}" | median); n=$(printf '%s\n' "${new_times[@]}" | median)
printf 'command: fuse3d %s\nold %.4f s   new %.4f s   new/old %.2f   (median of %d alternated runs)\n' "$*" "$o" "$n" "$(echo "$n / $o" | bc -l)" "$N"
