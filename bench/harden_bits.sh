#!/usr/bin/env bash
# bench/harden_bits.sh — the cost of each hardened check alone, against release.
#
# usage: bench/harden_bits.sh [--runs N]
#
# Builds the hardened variant once per check (CMake, -DHAK_HARDEN_BITS=<mask>, into
# build/harden-bits/<mask>; a check that needs another is built with it: VALIDATE and UAF need
# DFREE), then runs tiny_hot, random_mixed and prodcons with each library preloaded, interleaved
# with release, and prints the median of each and its time ratio to release. The bits are those of
# src/hardened/harden.h. With valgrind installed it also counts the instructions of a tiny_hot
# malloc/free pair under each library (callgrind). Like bench/run.sh it reports and never judges:
# the exit status is non-zero only when a build or a run failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/build/harden-bits
RUNS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=${2:?--runs needs a number}; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "harden_bits.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$RUNS" in ''|*[!0-9]*|0) echo "harden_bits.sh: --runs must be a positive integer" >&2; exit 2 ;; esac

# name mask (masks as in harden.h: ENCODE 1, VALIDATE 2, DFREE 4, INVALID 8, UAF 0x10, CANARY 0x20)
CHECKS=("none 0x00" "ENCODE 0x01" "DFREE 0x04" "DFREE+VALIDATE 0x06" "INVALID 0x08" "DFREE+UAF 0x14"
        "CANARY 0x20" "all 0x3f")

mkdir -p "$OUT"
CC=${CC:-gcc}
CFLAGS="-O2 -g -std=c11 -D_GNU_SOURCE -pthread -I$ROOT/stress"
echo "== building workloads and libraries into $OUT"
"$CC" $CFLAGS -o "$OUT/tiny_hot" "$ROOT/bench/tiny_hot.c" "$ROOT/stress/common.c" -ldl -lm
"$CC" $CFLAGS -o "$OUT/random_mixed" "$ROOT/stress/random_mixed.c" "$ROOT/stress/common.c" -ldl -lm
"$CC" $CFLAGS -o "$OUT/prodcons" "$ROOT/stress/prodcons.c" "$ROOT/stress/common.c" -ldl -lm
(cd "$ROOT" && { [ -f build/release/CMakeCache.txt ] || cmake --preset release >/dev/null; } &&
  cmake --build build/release -j2 --target hakmem_shared >/dev/null)
LIBS=("release $ROOT/build/release/libhakmem.so")
for c in "${CHECKS[@]}"; do
  set -- $c
  dir=$OUT/$2
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$dir" -DHAKMEM_VARIANT=hardened -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_C_FLAGS="-DHAK_HARDEN_BITS=$2" >/dev/null
  fi
  cmake --build "$dir" -j2 --target hakmem_shared >/dev/null
  LIBS+=("$1 $dir/libhakmem-hardened.so")
done

WL=("tiny_hot --bench --rounds 10M|ns_per_pair|0"
    "random_mixed --bench --ws 400 --min 16 --max 1024 --steps 10M|mops|1"
    "prodcons --bench --producers 1 --consumers 1 --min 64 --max 64 --batch 4096 --queue 128 --items 4M|mops|1")
CSV=$OUT/results.csv
echo "rep,workload,check,value" > "$CSV"
NL=${#LIBS[@]}
for ((rep = 1; rep <= RUNS; rep++)); do
  for w in "${WL[@]}"; do
    IFS='|' read -r cmd key _ <<< "$w"
    for ((k = 0; k < NL; k++)); do
      set -- ${LIBS[$(( (k + rep - 1) % NL ))]}
      line=$(LD_PRELOAD=$2 timeout 120 "$OUT"/$cmd | grep '^RESULT ' | tail -n 1) ||
        { echo "harden_bits.sh: $cmd failed with check $1" >&2; exit 1; }
      v=$(sed -n "s/.* $key=\([^ ]*\).*/\1/p" <<< " $line")
      echo "$rep,${cmd%% *},$1,$v" >> "$CSV"
    done
  done
  echo "  run $rep/$RUNS done"
done

# Instructions per tiny_hot malloc/free pair, counted by callgrind (deterministic, unlike the
# timings: tiny_hot is bound by the instructions it runs, so their ratio is close to its time
# ratio): the count of a run of 2R rounds less that of R rounds, over 3R pairs.
INS=$OUT/instructions.csv
echo "check,per_pair" > "$INS"
if command -v valgrind >/dev/null 2>&1; then
  count() { # lib rounds
    valgrind --tool=callgrind --trace-children=yes --callgrind-out-file=/dev/null \
      env LD_PRELOAD="$1" "$OUT"/tiny_hot --bench --rounds "$2" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p' | tail -n 1
  }
  R=100000
  for ((k = 0; k < NL; k++)); do
    set -- ${LIBS[$k]}
    a=$(count "$2" $R) b=$(count "$2" $((2 * R)))
    [ -n "$a" ] && [ -n "$b" ] || { echo "harden_bits.sh: callgrind failed with check $1" >&2; exit 1; }
    echo "$1,$(( (b - a) / (3 * R) ))" >> "$INS"
  done
else
  echo "== instruction counts skipped: valgrind is not installed (apt-get install -y valgrind)"
fi

python3 - "$CSV" "$INS" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
wls, checks, vals = [], [], {}
for r in rows:
    if r["workload"] not in wls: wls.append(r["workload"])
    if r["check"] not in checks: checks.append(r["check"])
    vals.setdefault((r["workload"], r["check"]), []).append(float(r["value"]))
lower = {"tiny_hot"}  # ns per pair; the others are M ops/s
ins = {r["check"]: int(r["per_pair"]) for r in csv.DictReader(open(sys.argv[2]))}
icol = " tiny_hot instructions per pair (vs release) |" if ins else ""
print("| check | " + " | ".join("%s (time vs release)" % w for w in wls) + " |" + icol)
print("|---|" + "---|" * len(wls) + ("---|" if ins else ""))
for c in checks:
    cells = []
    for w in wls:
        m, base = statistics.median(vals[(w, c)]), statistics.median(vals[(w, "release")])
        ratio = m / base if w in lower else base / m
        cells.append("%.2f (%.2fx)" % (m, ratio))
    if ins:
        cells.append("%d (%.2fx)" % (ins[c], ins[c] / ins["release"]))
    print("| %s | %s |" % (c, " | ".join(cells)))
print("\nmedians of %d interleaved runs; tiny_hot in ns per malloc/free pair, the others in M ops/s" %
      (len(rows) // (len(wls) * len(checks))))
EOF
