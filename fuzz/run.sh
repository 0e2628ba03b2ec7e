#!/usr/bin/env bash
# Runs libFuzzer harnesses for a fixed time each and prints one summary per harness: execs, execs/s,
# coverage (libFuzzer's cov: and ft:), the executions per mode, and on a crash the check that fired,
# the saved input and the one command that replays it. Exit status: 0 clean, 1 a harness crashed,
# 2 a build or usage error.
#
#   fuzz/run.sh [--seconds N] [--variant debug|hardened|release] [--bin DIR] [--no-build]
#               [--work DIR] [--stats FILE] [--fresh] HARNESS...
#
#   --seconds N   time per harness (default $FUZZ_SECONDS or 60)
#   --bin DIR     fuzzers already built there (default build/fuzz/libfuzzer-<variant>, built first)
#   --work DIR    where the growing corpora, crashes and logs go (default build/fuzz)
#   --stats FILE  append "harness mode execs seconds crashes status" rows (tab separated) to FILE
#   --fresh       start from the seeds only (ignore what earlier runs kept in <work>/corpus/<h>)
# The seeds (corpus/<h>/) and the dictionary (corpus/<h>.dict) are always used; new inputs the fuzzer
# finds go to <work>/corpus/<h>/ (merge them into corpus/<h>/ with -merge=1: docs/fuzzing.md).
# FUZZ_OPTS / FUZZ_MODE pass through to the harnesses (fuzz/fz.h).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_EACH=${FUZZ_SECONDS:-60}
VARIANT=${FUZZ_VARIANT:-debug}
BIN=""
BUILD=1
WORK=$ROOT/build/fuzz
STATS=""
FRESH=0
HARNESSES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH=$2; shift ;;
    --variant) VARIANT=$2; shift ;;
    --bin) BIN=$2; shift ;;
    --no-build) BUILD=0 ;;
    --work) WORK=$2; shift ;;
    --stats) STATS=$2; shift ;;
    --fresh) FRESH=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) HARNESSES+=("$1") ;;
  esac
  shift
done
[ ${#HARNESSES[@]} -gt 0 ] || HARNESSES=(fuzz_tiny fuzz_mixed fuzz_modes fuzz_mt fuzz_options)
[ -n "$BIN" ] || BIN=$ROOT/build/fuzz/libfuzzer-$VARIANT

mkdir -p "$WORK/logs"
if [ $BUILD = 1 ]; then
  only=$(IFS=,; echo "${HARNESSES[*]}")
  "$ROOT/fuzz/build.sh" --variant "$VARIANT" --only "$only" --out "$BIN" >"$WORK/logs/build.log" 2>&1 || {
    echo "run.sh: build failed (log: $WORK/logs/build.log):"; tail -20 "$WORK/logs/build.log"; exit 2; }
fi

# -key=value flags from the [libfuzzer] section of fuzz/<h>.options
lf_options() {
  local f=$ROOT/fuzz/$1.options
  [ -f "$f" ] || return 0
  awk -F'=' '/^\[/{s=($0=="[libfuzzer]")} s && /=/{gsub(/[ \t]/,"",$1); gsub(/^[ \t]+|[ \t]+$/,"",$2);
             if ($1!="dict") printf "-%s=%s\n", $1, $2}' "$f"
}

rc=0
for h in "${HARNESSES[@]}"; do
  exe=$BIN/$h
  if [ ! -x "$exe" ]; then echo "$h: not built ($exe)"; rc=2; continue; fi
  corpus=$WORK/corpus/$h
  crashes=$WORK/crashes/$h
  [ $FRESH = 1 ] && rm -rf "$corpus"
  mkdir -p "$corpus" "$crashes"
  log=$WORK/logs/$h.log
  mapfile -t opts < <(lf_options "$h")
  dict=()
  [ -f "$ROOT/corpus/$h.dict" ] && dict=(-dict="$ROOT/corpus/$h.dict")
  seeds=()
  [ -d "$ROOT/corpus/$h" ] && seeds=("$ROOT/corpus/$h")
  start=$(date +%s.%N)
  "$exe" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -artifact_prefix="$crashes/" "${opts[@]}" \
    "${dict[@]}" "$corpus" "${seeds[@]}" >"$log" 2>&1
  status=$?
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  done_line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -1)
  execs=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}')
  [ -n "$execs" ] || execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$done_line")
  rate=$(grep -E '^stat::average_exec_per_sec:' "$log" | awk '{print $2}')
  cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$done_line")
  ft=$(sed -nE 's/.*ft: ([0-9]+).*/\1/p' <<<"$done_line")
  artifact=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -1)
  if [ $status -eq 0 ] && [ -z "$artifact" ]; then
    echo "$h: ok: ${execs:-?} execs in ${secs} s (${rate:-?} execs/s), cov ${cov:-?} ft ${ft:-?} [$VARIANT; log $log]"
    grep -E '^fuzz-stats: harness=.* mode=' "$log" | grep -v 'mode=all' |
      sed -E 's/^fuzz-stats: harness=[^ ]+ mode=([^ ]+) execs=([0-9]+)/\1 \2/' |
      awk -v h="$h" '{printf "  %-9s %8d execs\n", $1, $2}'
    if [ -n "$STATS" ]; then
      grep -E '^fuzz-stats: harness=.* mode=[a-z]+ execs=' "$log" |
        sed -E 's/^fuzz-stats: harness=([^ ]+) mode=([^ ]+) execs=([0-9]+).*/\1\t\2\t\3/' |
        awk -F'\t' -v s="$secs" '{printf "%s\t%s\t%s\t%s\t0\tok\n", $1, $2, $3, s}' >>"$STATS"
    fi
  else
    rc=1
    mode=$(sed -nE 's/^fuzz-crash: harness=[^ ]+ mode=([^ ]+).*/\1/p' "$log" | head -1)
    echo "$h: CRASH after ${execs:-?} execs in ${secs} s (${rate:-?} execs/s), cov ${cov:-?} ft ${ft:-?} [$VARIANT]"
    grep -E '^(fuzz-crash:|FAIL |hakmem: |==[0-9]+==ERROR|SUMMARY:)' "$log" | head -6 | sed 's/^/  /'
    if [ -n "$artifact" ]; then
      echo "  saved: $artifact"
      echo "  replay: $exe $artifact"
    else
      echo "  no input saved (exit $status); log: $log"
    fi
    [ -n "$STATS" ] && printf '%s\t%s\t%s\t%s\t1\tcrash\n' "$h" "${mode:-?}" "${execs:-0}" "$secs" >>"$STATS"
  fi
done
exit $rc
