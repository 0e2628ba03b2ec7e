#!/usr/bin/env bash
# bench/trace_ir.sh — the cost of ring-mode recording in instructions: callgrind's Ir count of each
# `make bench` workload (at a reduced size) with and without HAKMEM_TRACE_RING, and their ratio.
# Exact and repeatable where wall-clock timings on a shared machine are not (it does not see cache
# misses or contention: check with `bench/run.sh --trace --only ... --no-build`).
#
# usage: bench/trace_ir.sh [--ring N] [--lib PATH] [workload ...]
#   --ring N     HAKMEM_TRACE_RING value (default 4096)
#   --lib PATH   the library to preload (default build/release/libhakmem.so, built if missing)
#   workloads    tiny_hot random_mixed larson prodcons large_blocks hold_small (default: all)
# Output: one line per workload: name, Ir off, Ir ring, ratio. Needs valgrind.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/build/bench
RING=4096
LIB=$ROOT/build/release/libhakmem.so
while [ $# -gt 0 ]; do
  case "$1" in
    --ring) RING=${2:?--ring needs a number}; shift ;;
    --lib) LIB=${2:?--lib needs a path}; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "trace_ir.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
  shift
done
command -v valgrind >/dev/null || { echo "trace_ir.sh: valgrind not found (apt-get install valgrind)" >&2; exit 2; }
if [ ! -e "$LIB" ]; then
  (cd "$ROOT" && { [ -f build/release/CMakeCache.txt ] || cmake --preset release >/dev/null; } &&
     cmake --build build/release -j2 --target hakmem_shared >/dev/null)
fi

mkdir -p "$OUT"
CC=${CC:-gcc}
CFLAGS="-O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -pthread -I$ROOT/stress"
for p in bench/tiny_hot stress/random_mixed stress/larson stress/prodcons bench/large_blocks bench/hold_small; do
  n=${p#*/}
  # shellcheck disable=SC2086
  [ -x "$OUT/$n" ] || "$CC" $CFLAGS -o "$OUT/$n" "$ROOT/$p.c" "$ROOT/stress/common.c" -ldl -lm
done

declare -A CMD=(
  [tiny_hot]="$OUT/tiny_hot --bench --rounds 1M"
  [random_mixed]="$OUT/random_mixed --bench --ws 400 --min 16 --max 1024 --steps 1M"
  [larson]="$OUT/larson --bench --threads 2 --min 8 --max 1000 --slots 5000 --rounds 10 --generations 2 --seed 4141"
  [prodcons]="$OUT/prodcons --bench --producers 1 --consumers 1 --min 64 --max 64 --batch 4096 --queue 128 --items 1M"
  [large_blocks]="$OUT/large_blocks --bench --steps 40"
  [hold_small]="$OUT/hold_small --bench --blocks 512K"
)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ir() { # env...: the Ir count of one run
  env "$@" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-13s %14s %14s %7s\n' workload "Ir off" "Ir ring" ratio
for w in "${@:-tiny_hot random_mixed larson prodcons large_blocks hold_small}"; do
  for one in $w; do
    [ -n "${CMD[$one]:-}" ] || { echo "trace_ir.sh: unknown workload '$one'" >&2; exit 2; }
    # shellcheck disable=SC2086
    a=$(ir LD_PRELOAD="$LIB" valgrind --tool=callgrind --callgrind-out-file=/dev/null ${CMD[$one]})
    # shellcheck disable=SC2086
    b=$(ir LD_PRELOAD="$LIB" HAKMEM_TRACE_RING="$RING" HAKMEM_TRACE="$tmp/t-%p" \
          valgrind --tool=callgrind --callgrind-out-file=/dev/null ${CMD[$one]})
    printf '%-13s %14s %14s %7s\n' "$one" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')"
  done
done
