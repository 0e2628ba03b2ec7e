#!/usr/bin/env bash
# bench/run.sh — hakmem against glibc, mimalloc, jemalloc and tcmalloc, side by side.
#
# usage: bench/run.sh [--quick] [--runs N] [--modes m1,m2,...] [--variants] [--trace] [--only w1,...] [--no-build]
#   --quick      3 runs and shorter timed workloads (default: 5 runs)
#   --runs N     repetitions (every allocator runs once per workload per repetition)
#   --modes L    also run hakmem once per HAKMEM_MODE in L, as columns hakmem:<mode>
#   --variants   also run build/hardened/libhakmem-hardened.so, as column hakmem-hardened
#   --trace      also run hakmem with op recording on: hakmem:ring (HAKMEM_TRACE_RING=4096, or
#                BENCH_RING=N: each thread keeps its last N ops in memory) and hakmem:trace (full
#                recording to HAKMEM_TRACE=/dev/null: recording and write(2) calls, not a disk)
#   --only L     run only these workloads (tiny_hot, random_mixed, larson, prodcons, large_blocks,
#                hold_small, prog_python, prog_perl, prog_gcc, prog_sort)
#   --no-build   use build/release (and build/hardened) libraries as they are, build only if missing
#
# Workloads (programs from stress/ and bench/, built here with plain gcc -O2 into build/bench):
#   tiny_hot      malloc/touch/free of 16/32/64 B, ns per pair
#   random_mixed  WS=400 slots, 16-1024 B, 20M steps, M ops/s
#   larson        2 threads, mimalloc-bench arguments (8..1000 B, 5000 slots, 100 rounds, seed 4141)
#   prodcons      1 producer + 1 consumer, xmalloc-test-like (64 B blocks, batches of 4096), M frees/s
#   large_blocks  5..25 MiB blocks, at most 20 live, every page written (malloc-large), seconds
#   hold_small    4M blocks of 64 B allocated, held, then freed (slow paths with thousands of full
#                 slabs), seconds
# Program rows (need python3, perl, gcc, sort; bench/prog_run.c times them and hashes their output,
# which must be the same under every allocator; inputs from bench/programs/gen_inputs.py):
#   prog_python   python3 bench/programs/objects.py: dicts, lists, strings, JSON, sort, seconds
#   prog_perl     perl bench/programs/words.pl: hashes, arrays, string building, seconds
#   prog_gcc      gcc -O2 -S of a generated 60-function C file, seconds
#   prog_sort     LC_ALL=C sort -S 64M of 800k generated lines (38 MB), seconds
# Every allocator is loaded with LD_PRELOAD (glibc: none), and runs are interleaved: each
# repetition goes round-robin over the allocators, starting one further along each time, so drift
# in machine load spreads over all columns. Output: the table on stdout and build/bench/report.md;
# raw results in build/bench/results.csv; the output of any failed run in build/bench/logs/.
# Benchmarks never judge timings; the exit status is non-zero only if a run failed (crash, stamp
# mismatch, timeout) or hakmem could not be built.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/build/bench
RUNS=5
QUICK=0
MODES=""
VARIANTS=0
TRACE=0
RING=${BENCH_RING:-4096}
ONLY=""
NO_BUILD=0

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; RUNS=3 ;;
    --runs) RUNS=${2:?--runs needs a number}; shift ;;
    --runs=*) RUNS=${1#*=} ;;
    --modes) MODES=${2:?--modes needs a list}; shift ;;
    --modes=*) MODES=${1#*=} ;;
    --variants) VARIANTS=1 ;;
    --trace) TRACE=1 ;;
    --no-build) NO_BUILD=1 ;;
    --only) ONLY=${2:?--only needs a list}; shift ;;
    --only=*) ONLY=${1#*=} ;;
    -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$RUNS" in ''|*[!0-9]*|0) echo "run.sh: --runs must be a positive integer" >&2; exit 2 ;; esac

mkdir -p "$OUT/logs"
rm -f "$OUT"/logs/*.log

# ---------------------------------------------------------------------------------------------
# Build the workload programs (plain malloc calls; the allocator comes from LD_PRELOAD).
CC=${CC:-gcc}
CFLAGS="-O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -pthread -I$ROOT/stress"
build_prog() { # name source
  local name=$1 src=$2
  "$CC" $CFLAGS -o "$OUT/$name" "$src" "$ROOT/stress/common.c" -ldl -lm
}
echo "== building workloads into $OUT"
build_prog tiny_hot "$ROOT/bench/tiny_hot.c"
build_prog random_mixed "$ROOT/stress/random_mixed.c"
build_prog larson "$ROOT/stress/larson.c"
build_prog prodcons "$ROOT/stress/prodcons.c"
build_prog large_blocks "$ROOT/bench/large_blocks.c"
build_prog hold_small "$ROOT/bench/hold_small.c"
"$CC" -O2 -std=c11 -Wall -Wextra -o "$OUT/prog_run" "$ROOT/bench/prog_run.c"
# Inputs of the program rows (the same bytes everywhere; python3 also writes report.md).
PROGRAMS=0
if command -v python3 >/dev/null 2>&1 && command -v perl >/dev/null 2>&1 && command -v sort >/dev/null 2>&1; then
  python3 "$ROOT/bench/programs/gen_inputs.py" "$OUT" && PROGRAMS=1
else
  echo "== program rows skipped: they need python3, perl and sort (apt-get install -y python3 perl coreutils)"
fi

# hakmem: build/<preset>/<lib>, brought up to date with the CMake preset (configured if needed)
# so the numbers are those of the current sources; --no-build takes the library as it is.
need_lib() { # preset file
  local preset=$1 lib=$ROOT/build/$1/$2
  if [ "$NO_BUILD" = 0 ] || [ ! -e "$lib" ]; then
    echo "== building $lib (preset $preset)" >&2
    (cd "$ROOT" && { [ -f "build/$preset/CMakeCache.txt" ] || cmake --preset "$preset" >/dev/null; } \
       && cmake --build "build/$preset" -j2 --target hakmem_shared >/dev/null) >&2 \
      || { echo "run.sh: could not build $lib" >&2; exit 1; }
  fi
  [ -e "$lib" ] || { echo "run.sh: $lib not found after the build" >&2; exit 1; }
  echo "$lib"
}
HAK_LIB=$(need_lib release libhakmem.so)
HARD_LIB=""
if [ "$VARIANTS" = 1 ]; then
  HARD_LIB=$(need_lib hardened libhakmem-hardened.so)
fi

# Peer allocators from Debian's packages.
MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || "$CC" -print-multiarch 2>/dev/null || true)
[ -n "$MULTIARCH" ] || MULTIARCH=$(uname -m)-linux-gnu
find_lib() { # patterns...
  local pat f
  for pat in "$@"; do
    for f in /usr/lib/$MULTIARCH/$pat /usr/lib/$pat; do
      if [ -e "$f" ]; then echo "$f"; return 0; fi
    done
  done
  return 0
}
MI_LIB=$(find_lib 'libmimalloc.so.2' 'libmimalloc.so.[0-9]*' 'libmimalloc.so')
JE_LIB=$(find_lib 'libjemalloc.so.2' 'libjemalloc.so.[0-9]*' 'libjemalloc.so')
TC_LIB=$(find_lib 'libtcmalloc_minimal.so.4' 'libtcmalloc_minimal.so.[0-9]*' 'libtcmalloc_minimal.so' \
                  'libtcmalloc.so.4' 'libtcmalloc.so.[0-9]*' 'libtcmalloc.so')

# Columns: name, preload, extra environment.
NAMES=() PRELOADS=() ENVS=() MISSING=""
add_alloc() { NAMES+=("$1"); PRELOADS+=("$2"); ENVS+=("$3"); }
add_alloc hakmem "$HAK_LIB" ""
IFS=',' read -r -a MODE_LIST <<< "$MODES"
for m in "${MODE_LIST[@]}"; do
  [ -n "$m" ] && add_alloc "hakmem:$m" "$HAK_LIB" "HAKMEM_MODE=$m"
done
[ -n "$HARD_LIB" ] && add_alloc hakmem-hardened "$HARD_LIB" ""
if [ "$TRACE" = 1 ]; then
  add_alloc hakmem:ring "$HAK_LIB" "HAKMEM_TRACE_RING=$RING"
  add_alloc hakmem:trace "$HAK_LIB" "HAKMEM_TRACE=/dev/null"
fi
add_alloc glibc "" ""
peer() { # name lib package
  if [ -n "$2" ]; then add_alloc "$1" "$2" ""; else MISSING="$MISSING,$1=$3"; fi
}
peer mimalloc "$MI_LIB" libmimalloc-dev
peer jemalloc "$JE_LIB" libjemalloc-dev
peer tcmalloc "$TC_LIB" libgoogle-perftools-dev

# Workloads: name, metric, command.
if [ "$QUICK" = 1 ]; then LARSON_SECS=1; PC_ITEMS=4M; LB_STEPS=200; else LARSON_SECS=2; PC_ITEMS=8M; LB_STEPS=500; fi
WL_NAMES=(tiny_hot random_mixed larson prodcons large_blocks hold_small)
WL_METRIC=(ns_per_pair mops mops mfrees seconds seconds)
WL_CMD=(
  "$OUT/tiny_hot --bench --rounds 10M"
  "$OUT/random_mixed --bench --ws 400 --min 16 --max 1024 --steps 20M"
  "$OUT/larson --bench --threads 2 --min 8 --max 1000 --slots 5000 --rounds 100 --seed 4141 --seconds $LARSON_SECS"
  "$OUT/prodcons --bench --producers 1 --consumers 1 --min 64 --max 64 --batch 4096 --queue 128 --items $PC_ITEMS"
  "$OUT/large_blocks --bench --steps $LB_STEPS"
  "$OUT/hold_small --bench"
)
# Program rows (prog_*): real programs run whole under each allocator, wall-clock seconds, and every
# allocator must make the program print the same bytes as the first run did (else status mismatch).
# They are reported in a group of their own, apart from the allocation loops above.
if [ "$PROGRAMS" = 1 ]; then
  if [ "$QUICK" = 1 ]; then PY_N=8000; PL_N=60000; else PY_N=15000; PL_N=120000; fi
  WL_NAMES+=(prog_python prog_perl prog_gcc prog_sort)
  WL_METRIC+=(seconds seconds seconds seconds)
  WL_CMD+=(
    "$OUT/prog_run --name prog_python -- python3 $ROOT/bench/programs/objects.py $PY_N"
    "$OUT/prog_run --name prog_perl -- perl $ROOT/bench/programs/words.pl $PL_N"
    "$OUT/prog_run --name prog_gcc -- gcc -O2 -S -o - $OUT/gen.c"
    "$OUT/prog_run --name prog_sort -- env LC_ALL=C sort -S 64M $OUT/lines.txt"
  )
fi
if [ -n "$ONLY" ]; then
  keep_n=() keep_m=() keep_c=()
  for i in "${!WL_NAMES[@]}"; do
    case ",$ONLY," in *",${WL_NAMES[$i]},"*)
      keep_n+=("${WL_NAMES[$i]}"); keep_m+=("${WL_METRIC[$i]}"); keep_c+=("${WL_CMD[$i]}") ;;
    esac
  done
  [ ${#keep_n[@]} -gt 0 ] || { echo "run.sh: --only matched no workload" >&2; exit 2; }
  WL_NAMES=("${keep_n[@]}") WL_METRIC=("${keep_m[@]}") WL_CMD=("${keep_c[@]}")
fi

echo "== allocators: ${NAMES[*]}${MISSING:+ (missing:${MISSING//,/ })}"
echo "== workloads: ${WL_NAMES[*]}; $RUNS run(s), interleaved"

# ---------------------------------------------------------------------------------------------
CSV=$OUT/results.csv
echo "rep,workload,allocator,metric,value,peak_rss_kb,secs,status" > "$CSV"
field() { # key line
  sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< " $2"
}
NA=${#NAMES[@]}
WL_HASH=()
for ((rep = 1; rep <= RUNS; rep++)); do
  for w in "${!WL_NAMES[@]}"; do
    wl=${WL_NAMES[$w]} metric=${WL_METRIC[$w]}
    for ((k = 0; k < NA; k++)); do
      a=$(( (k + rep - 1) % NA ))
      name=${NAMES[$a]} pre=${PRELOADS[$a]} extra=${ENVS[$a]}
      log=$OUT/logs/$wl-${name//:/_}-$rep.log
      envs=()
      [ -n "$pre" ] && envs+=("LD_PRELOAD=$pre")
      [ -n "$extra" ] && envs+=("$extra")
      status=ok
      set +e
      # shellcheck disable=SC2086
      env "${envs[@]}" timeout 300 ${WL_CMD[$w]} > "$log" 2>&1
      rc=$?
      set -e
      if [ $rc = 124 ]; then status=timeout; elif [ $rc != 0 ]; then status=exit$rc; fi
      line=$(grep '^RESULT ' "$log" | tail -n 1 || true)
      value="" rss="" secs=""
      if [ "$status" = ok ] && [ -n "$line" ]; then
        case $metric in
          ns_per_pair) value=$(field ns_per_pair "$line") ;;
          seconds) value=$(field seconds "$line") ;;
          *) value=$(field mops "$line") ;;
        esac
        rss=$(field peak_rss_kb "$line")
        secs=$(field secs "$line")
        out_hash=$(field out_hash "$line")
        if [ -n "$out_hash" ]; then
          # a program row: the same output under every allocator, or the run failed
          ref=${WL_HASH[$w]:-}
          if [ -z "$ref" ]; then WL_HASH[$w]=$out_hash
          elif [ "$ref" != "$out_hash" ]; then status=mismatch; value=""; echo "output hash $out_hash, expected $ref (first run)" >> "$log"; fi
        fi
        [ "$status" = ok ] && rm -f "$log"
      elif [ "$status" = ok ]; then
        status=noresult
      fi
      printf '  run %d/%d %-13s %-18s %s\n' "$rep" "$RUNS" "$wl" "$name" "${value:-$status}"
      echo "$rep,$wl,$name,$metric,$value,$rss,$secs,$status" >> "$CSV"
    done
  done
done

# ---------------------------------------------------------------------------------------------
ORDER=$(IFS=','; echo "${NAMES[*]}")
HEADER="hakmem bench — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPU(s), $RUNS interleaved run(s)$([ "$QUICK" = 1 ] && echo ', quick' || true)
hakmem: $HAK_LIB${HARD_LIB:+, hardened: $HARD_LIB}; peers: ${MI_LIB:-no mimalloc}, ${JE_LIB:-no jemalloc}, ${TC_LIB:-no tcmalloc}"
echo
if command -v python3 >/dev/null 2>&1; then
  set +e
  python3 "$ROOT/bench/report.py" "$CSV" "$OUT/report.md" --order "$ORDER" --missing "${MISSING#,}" --header "$HEADER"
  rc=$?
  set -e
else
  echo "python3 not found (apt-get install python3): raw results only" | tee "$OUT/report.md"
  column -s, -t < "$CSV" | tee -a "$OUT/report.md"
  rc=0
  grep -q ',ok$' "$CSV" && ! grep -qv -e ',ok$' -e '^rep,' "$CSV" || rc=1
fi
echo
echo "report: $OUT/report.md   raw: $CSV"
exit $rc
