#!/usr/bin/env bash
# The fuzzing column of `make verify`: every harness runs briefly (libFuzzer, ASan + UBSan, debug
# variant by default) and one table row per harness x mode is written.
#
#   fuzz/campaign.sh [--seconds N] [--variant debug|hardened|release] --table FILE
#
# FILE gets tab-separated rows (no header):
#   harness  mode  execs  execs_per_s  crashes  status
# mode: the HAKMEM_MODE the inputs ran in (the input's first byte picks it), "none" for fuzz_options,
# and one "all" row per harness (its total); execs_per_s: the row's execs / seconds of the whole run
# (for a mode: its share of the harness's speed; for "all": the harness's speed);
# status: ok | crash (the crashing input is in build/fuzz/crashes/<harness>/, the log in
# build/fuzz/logs/<harness>.log, the replay command printed on stdout) | build-failed.
# A crash stops that harness (libFuzzer stops at the first crash): its row names the crashing input's
# mode with execs = everything run before the crash. Exit status 0 when no harness crashed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=20
VARIANT=${FUZZ_VARIANT:-debug}
TABLE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECS=$2; shift ;;
    --variant) VARIANT=$2; shift ;;
    --table) TABLE=$2; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "campaign.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$TABLE" ] || { echo "campaign.sh: --table FILE is required" >&2; exit 2; }
mkdir -p "$(dirname "$TABLE")" "$ROOT/build/fuzz/logs"
HARNESSES=(fuzz_tiny fuzz_mixed fuzz_modes fuzz_mt fuzz_options)
BIN=$ROOT/build/fuzz/libfuzzer-$VARIANT
: >"$TABLE"
if ! "$ROOT/fuzz/build.sh" --variant "$VARIANT" --out "$BIN" >"$ROOT/build/fuzz/logs/build.log" 2>&1; then
  for h in "${HARNESSES[@]}"; do printf '%s\t-\t0\t0\t0\tbuild-failed\n' "$h" >>"$TABLE"; done
  echo "campaign.sh: build failed (build/fuzz/logs/build.log)"
  exit 2
fi
stats=$(mktemp)
trap 'rm -f "$stats"' EXIT
"$ROOT/fuzz/run.sh" --no-build --bin "$BIN" --variant "$VARIANT" --seconds "$SECS" --stats "$stats" "${HARNESSES[@]}"
rc=$?
# harness mode execs seconds crashes status  ->  harness mode execs execs_per_s crashes status
awk -F'\t' -v OFS='\t' '{ r = ($4 > 0) ? int($3 / $4 + 0.5) : 0; print $1, $2, $3, r, $5, $6 }' "$stats" >>"$TABLE"
echo "campaign.sh: $(wc -l <"$TABLE") row(s) in $TABLE"
exit $rc
