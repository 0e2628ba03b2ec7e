#!/usr/bin/env bash
# Replays corpus/regressions/<h>/ (every crash ever found, minimized) with already built fuzzers:
# libFuzzer binaries (run each file given to them once), AFL++ ones (<h>.afl, one file per run) or the
# plain driver. Prints one line per harness; on a failure the file and the command that replays it.
#
#   fuzz/replay.sh [--bin DIR] [--suffix .afl] [HARNESS...]      (default bin build/fuzz/libfuzzer-debug)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/fuzz/libfuzzer-${FUZZ_VARIANT:-debug}
SUFFIX=""
HARNESSES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift ;;
    --suffix) SUFFIX=$2; shift ;;
    -*) echo "replay.sh: unknown option $1" >&2; exit 2 ;;
    *) HARNESSES+=("$1") ;;
  esac
  shift
done
[ ${#HARNESSES[@]} -gt 0 ] || HARNESSES=(fuzz_tiny fuzz_mixed fuzz_modes fuzz_mt fuzz_options)
rc=0
total=0
for h in "${HARNESSES[@]}"; do
  dir=$ROOT/corpus/regressions/$h
  mapfile -t files < <(find "$dir" -maxdepth 1 -type f ! -name 'README*' ! -name '*.md' ! -name '.*' 2>/dev/null | LC_ALL=C sort)
  if [ ${#files[@]} -eq 0 ]; then
    echo "regressions $h: none yet"
    continue
  fi
  exe=$BIN/$h$SUFFIX
  if [ ! -x "$exe" ]; then echo "regressions $h: $exe not built"; rc=2; continue; fi
  for f in "${files[@]}"; do
    if ! out=$(FUZZ_STATS=0 "$exe" "$f" 2>&1); then
      echo "regressions $h: FAIL on $f"
      grep -E '^(fuzz-crash:|FAIL |hakmem: |==[0-9]+==ERROR)' <<<"$out" | head -4 | sed 's/^/  /'
      echo "  replay: $exe $f"
      rc=1
    fi
    total=$((total + 1))
  done
  [ $rc -eq 0 ] && echo "regressions $h: ${#files[@]} input(s) replayed, no failure"
done
exit $rc
