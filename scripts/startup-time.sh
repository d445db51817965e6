#!/usr/bin/env bash
# Wall time of `BIN --version` (default target/release/spatia): 2 warm-up runs, then N (default
# 20) timed runs with `date +%s%N`; prints mean / median / min / max in ms and the peak RSS of one
# run (/usr/bin/time). hyperfine is not installed on the dev machines. Used for issue 12's
# start-up figure (`spatia --version` ≤ 30 ms once libtorch is behind the plugin).
set -euo pipefail
BIN="${1:-target/release/spatia}"
N="${2:-20}"
for _ in 1 2; do "$BIN" --version >/dev/null; done
ts=()
for _ in $(seq "$N"); do
  s=$(date +%s%N); "$BIN" --version >/dev/null; e=$(date +%s%N)
  ts+=($(((e - s) / 1000)))
done
printf '%s\n' "${ts[@]}" | sort -n | awk -v bin="$BIN" '{a[NR]=$1; s+=$1} END {
  printf "%s --version: n=%d mean=%.1f ms median=%.1f ms min=%.1f ms max=%.1f ms\n", bin, NR, s/NR/1000, a[int((NR+1)/2)]/1000, a[1]/1000, a[NR]/1000}'
if [ -x /usr/bin/time ]; then /usr/bin/time -f "peak RSS %M KB" "$BIN" --version >/dev/null; fi
