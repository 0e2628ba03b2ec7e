#!/usr/bin/env bash
# Runs an AFL++ harness with one main and N-1 secondary instances in parallel (-M / -S), sharing one
# output directory, for a fixed time. Builds the AFL++ binaries first if needed (fuzz/build.sh --afl).
#
#   fuzz/afl.sh [--jobs N] [--seconds S] [--variant debug|release] [--out DIR] HARNESS
#
#   --jobs N      instances (default: the number of CPUs); instance 0 is the main (-M main), the
#                 others secondaries (-S s1 ...); all read the seeds corpus/<h>/ and the dictionary
#   --seconds S   stop after S seconds (default 600; afl-fuzz -V)
#   --out DIR     AFL++ output directory (default build/fuzz/afl-out/<harness>); crashes land in
#                 DIR/<instance>/crashes/, replay one with: build/fuzz/afl-<variant>/<h>.afl FILE
# Afterwards it prints each instance's execs, speed, corpus, coverage and crashes (fuzzer_stats).
# Sets AFL_SKIP_CPUFREQ and AFL_NO_AFFINITY (a shared machine: no exclusive cores) and, when
# core_pattern pipes to a handler, AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES (as root, setting it to
# "core" is the alternative).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
JOBS=$(nproc)
SECS=600
VARIANT=${FUZZ_VARIANT:-debug}
OUTDIR=""
H=""
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) JOBS=$2; shift ;;
    --seconds) SECS=$2; shift ;;
    --variant) VARIANT=$2; shift ;;
    --out) OUTDIR=$2; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "afl.sh: unknown option $1" >&2; exit 2 ;;
    *) H=$1 ;;
  esac
  shift
done
[ -n "$H" ] || { echo "usage: fuzz/afl.sh [--jobs N] [--seconds S] HARNESS" >&2; exit 2; }
BIN=$ROOT/build/fuzz/afl-$VARIANT
mkdir -p "$ROOT/build/fuzz/logs"
"$ROOT/fuzz/build.sh" --afl --variant "$VARIANT" --only "$H" --out "$BIN" >"$ROOT/build/fuzz/logs/afl-build.log" 2>&1 ||
  { echo "afl.sh: build failed (build/fuzz/logs/afl-build.log)"; tail -20 "$ROOT/build/fuzz/logs/afl-build.log"; exit 2; }
[ -n "$OUTDIR" ] || OUTDIR=$ROOT/build/fuzz/afl-out/$H
mkdir -p "$OUTDIR"
export AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1
if [ "$(cat /proc/sys/kernel/core_pattern 2>/dev/null | cut -c1)" = "|" ]; then
  export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
fi
dict=()
[ -f "$ROOT/corpus/$H.dict" ] && dict=(-x "$ROOT/corpus/$H.dict")
pids=()
for ((i = 0; i < JOBS; i++)); do
  if [ $i -eq 0 ]; then role=(-M main); else role=(-S "s$i"); fi
  afl-fuzz "${role[@]}" -i "$ROOT/corpus/$H" -o "$OUTDIR" -V "$SECS" -t 5000 "${dict[@]}" \
    -- "$BIN/$H.afl" >"$OUTDIR/afl-$i.log" 2>&1 &
  pids+=($!)
done
echo "afl.sh: $JOBS instance(s) of $H for $SECS s into $OUTDIR (logs $OUTDIR/afl-*.log)"
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
for st in "$OUTDIR"/*/fuzzer_stats; do
  [ -f "$st" ] || continue
  awk -F' *: *' -v inst="$(basename "$(dirname "$st")")" '
    {v[$1]=$2} END {printf "  %-6s %s execs (%s/s), corpus %s, coverage %s, stability %s, crashes %s\n",
      inst, v["execs_done"], v["execs_per_sec"], v["corpus_count"], v["bitmap_cvg"], v["stability"], v["saved_crashes"]}' "$st"
done
n=$(find "$OUTDIR" -path '*/crashes/id:*' 2>/dev/null | wc -l)
echo "afl.sh: $n crash(es)"
[ "$n" -eq 0 ] && [ $rc -eq 0 ]
