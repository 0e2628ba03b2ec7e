#!/usr/bin/env bash
# Builds the fuzz harnesses with an engine, following the OSS-Fuzz / ClusterFuzzLite build contract:
#   $CC $CFLAGS            compiler and flags for every object (sanitizers and coverage included)
#   $LIB_FUZZING_ENGINE    the engine to link (-fsanitize=fuzzer, or an engine library / object)
#   $OUT                   where the fuzzers, <h>_seed_corpus.zip, <h>.dict and <h>.options go
# Under OSS-Fuzz these come from the environment; run locally, the defaults build libFuzzer fuzzers
# with ASan + UBSan into build/fuzz/libfuzzer-<variant>.
#
#   fuzz/build.sh [--afl] [--variant debug|hardened|release] [--only fuzz_tiny,...] [--src DIR] [--out DIR]
#
#   --afl       AFL++ instead of libFuzzer: CC=afl-clang-fast, the persistent-mode main
#               fuzz/driver_afl.c (__AFL_LOOP, __AFL_FUZZ_TESTCASE_BUF); out build/fuzz/afl-<variant>;
#               binaries are named <h>.afl. AFL_USE_ASAN=1 in the environment adds ASan as usual.
#   --variant   which allocator variant is fuzzed (default debug = HAK_HARDENED=1 HAK_DEBUG=1: hardened
#               free-list checks abort at the first corruption, so a bug surfaces at its cause;
#               release = what LD_PRELOAD users run, checked by the framework alone; make mutants uses it)
#   --only      build only these harnesses (comma separated)
#   --src       take src/ and include/ from DIR instead of the repository (make mutants builds
#               patched copies this way; verify/ and fuzz/ always come from the repository)
#   --out       output directory
#
# The allocator sources are compiled directly (no CMake): src/*/*.c with -DHAK_PREFIXED_ONLY=1 (only
# the hak_* names: glibc stays the process malloc and the oracle) and the same hardening flags as the
# top-level CMakeLists.txt. Objects are rebuilt only when a source, header or flag changed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ENGINE=libfuzzer
VARIANT=${FUZZ_VARIANT:-debug}
ONLY=""
SRCROOT=$ROOT
OUTARG=""
while [ $# -gt 0 ]; do
  case "$1" in
    --afl) ENGINE=afl ;;
    --variant) VARIANT=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --src) SRCROOT=$(cd "$2" && pwd); shift ;;
    --out) OUTARG=$2; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

HARNESSES=(fuzz_tiny fuzz_mixed fuzz_modes fuzz_mt fuzz_options)
if [ -n "$ONLY" ]; then IFS=, read -r -a HARNESSES <<<"$ONLY"; fi

case "$VARIANT" in
  release) VDEFS=() ;;
  hardened) VDEFS=(-DHAK_HARDENED=1) ;;
  debug) VDEFS=(-DHAK_HARDENED=1 -DHAK_DEBUG=1) ;;
  *) echo "build.sh: --variant must be debug, hardened or release" >&2; exit 2 ;;
esac

if [ "$ENGINE" = afl ]; then
  : "${CC:=afl-clang-fast}"
  : "${CFLAGS:=-O2 -g -fno-omit-frame-pointer}"
  : "${OUT:=${OUTARG:-$ROOT/build/fuzz/afl-$VARIANT}}"
  SUFFIX=.afl
else
  : "${CC:=clang}"
  : "${CFLAGS:=-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -fsanitize=fuzzer-no-link}"
  : "${LIB_FUZZING_ENGINE:=-fsanitize=fuzzer}"
  : "${OUT:=${OUTARG:-$ROOT/build/fuzz/libfuzzer-$VARIANT}}"
  SUFFIX=""
fi
[ -n "$OUTARG" ] && OUT=$OUTARG
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
mkdir -p "$OUT"
OBJ=$OUT/obj
mkdir -p "$OBJ/src" "$OBJ/verify" "$OBJ/fuzz"

read -r -a CF <<<"$CFLAGS"
COMMON=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter)
# In a sanitizer build the process malloc is the sanitizer's: verify's glibc backend then takes
# libc.so.6's own malloc family (verify/libc.c).
VERIFY_DEFS=()
if [[ " $CFLAGS " =~ -fsanitize=[a-z,]*(address|thread|memory) ]] || [ -n "${AFL_USE_ASAN:-}" ]; then
  VERIFY_DEFS=(-DHK_VERIFY_REAL_LIBC=1)
fi
SRC_FLAGS=(-DHAK_PREFIXED_ONLY=1 "${VDEFS[@]}" "-DHAK_VARIANT_NAME='\"$VARIANT\"'" -I"$SRCROOT/src" -I"$SRCROOT/include"
           -fvisibility=hidden -ftls-model=initial-exec -fno-builtin-malloc -fno-builtin-calloc
           -fno-builtin-realloc -fno-builtin-free -fno-stack-protector)
[[ "$CC" == *gcc* ]] && SRC_FLAGS+=(-fno-tree-loop-distribute-patterns)
INC=(-I"$SRCROOT/include" -I"$ROOT" -I"$ROOT/verify" -I"$ROOT/fuzz")
# Comparison tracing (trace-cmp, part of -fsanitize=fuzzer-no-link) in the checkers' loops -- the shadow
# heap's pattern compares, hakmem's free-list walkers in src/api/debug.c -- cost over two thirds of
# every exec and guide nothing (they compare against fixed patterns and list links). Those files keep
# edge coverage; everything else (the allocator, the op decoder, the harnesses) keeps trace-cmp.
NOCMP=()
if [[ " $CFLAGS " == *fuzzer-no-link* || " $CFLAGS " == *sanitize-coverage* ]]; then
  NOCMP=(-fno-sanitize-coverage=trace-cmp)
fi
# hakmem's checkers (src/api/debug.c: the TLS-SLL walk after every op, the heap walker) are read-only
# walks over hakmem's own mappings, which ASan does not track: its instrumentation there only slows the
# walk (about 60% of an exec). They are built optimized and without sanitizers or coverage.
CHECKER_FLAGS=("${NOCMP[@]}")
if [[ " $CFLAGS " == *-fsanitize=* ]]; then
  CHECKER_FLAGS+=(-O2 -fno-sanitize=all -fno-sanitize-coverage=trace-pc-guard,trace-cmp,pc-table,inline-8bit-counters,bb,edge,func)
fi

# One line describing every flag: a change rebuilds everything.
# (Include paths are left out: a copied tree with the same sources reuses the objects.)
FLAGSIG=$(printf '%s|' "$CC" "${CF[@]}" "${SRC_FLAGS[@]}" "${VERIFY_DEFS[@]}" "${CHECKER_FLAGS[@]}" "$ENGINE" |
          sed -E 's/-I[^|]*\|//g' | md5sum | cut -c1-16)
if [ "$(cat "$OBJ/.flags" 2>/dev/null)" != "$FLAGSIG" ]; then
  rm -f "$OBJ"/src/*.o "$OBJ"/verify/*.o "$OBJ"/fuzz/*.o
  echo "$FLAGSIG" >"$OBJ/.flags"
fi

# compile OUT.o SRC FLAGS... : rebuilt when the source or any header of its tree is newer.
JOBS_FILE=$(mktemp)
trap 'rm -f "$JOBS_FILE"' EXIT
newest_header() { find "$@" -name '*.h' -o -name '*.def' -o -name '*.inc' 2>/dev/null | xargs -r stat -c %Y | sort -n | tail -1; }
HDR_SRC=$(newest_header "$SRCROOT/src" "$SRCROOT/include")
HDR_VER=$(newest_header "$ROOT/verify" "$ROOT/fuzz" "$SRCROOT/include")
queue() { # obj src hdrstamp flags...
  local o=$1 s=$2 h=$3; shift 3
  if [ -f "$o" ] && [ "$o" -nt "$s" ] && [ "$(stat -c %Y "$o")" -ge "${h:-0}" ]; then return; fi
  printf '%s\0' "$CC ${CF[*]} ${COMMON[*]} $* -c '$s' -o '$o'" >>"$JOBS_FILE"
}
SRC_OBJS=()
for s in "$SRCROOT"/src/*/*.c; do
  o="$OBJ/src/$(basename "$(dirname "$s")")_$(basename "$s" .c).o"
  SRC_OBJS+=("$o")
  extra=""
  [ "$s" = "$SRCROOT/src/api/debug.c" ] && extra="${CHECKER_FLAGS[*]}"
  queue "$o" "$s" "$HDR_SRC" "${SRC_FLAGS[*]} $extra"
done
VER_OBJS=()
for s in "$ROOT"/verify/*.c; do
  o="$OBJ/verify/$(basename "$s" .c).o"
  VER_OBJS+=("$o")
  extra=""
  case "$(basename "$s")" in shadow.c|interp.c|oracle.c|report.c) extra="${NOCMP[*]}" ;; esac
  queue "$o" "$s" "$HDR_VER" "${INC[*]} ${VERIFY_DEFS[*]} $extra"
done
queue "$OBJ/fuzz/fz.o" "$ROOT/fuzz/fz.c" "$HDR_VER" "${INC[*]}"
for h in "${HARNESSES[@]}"; do
  extra=""
  [ "$h" = fuzz_options ] && extra="-I$SRCROOT/src"
  queue "$OBJ/fuzz/$h.o" "$ROOT/fuzz/$h.c" "$HDR_VER" "${INC[*]} $extra"
done
ENGINE_OBJ=()
if [ "$ENGINE" = afl ]; then
  queue "$OBJ/fuzz/driver_afl.o" "$ROOT/fuzz/driver_afl.c" "$HDR_VER" "${INC[*]}"
  ENGINE_OBJ=("$OBJ/fuzz/driver_afl.o")
fi
if [ -s "$JOBS_FILE" ]; then
  n=$(tr -cd '\0' <"$JOBS_FILE" | wc -c)
  echo "build.sh: compiling $n object(s) for $ENGINE/$VARIANT into $OBJ"
  xargs -0 -P "${FUZZ_JOBS:-2}" -I{} sh -c '{} || exit 255' <"$JOBS_FILE"
fi

for h in "${HARNESSES[@]}"; do
  bin="$OUT/$h$SUFFIX"
  if [ "$ENGINE" = afl ]; then
    LINK=("${ENGINE_OBJ[@]}")
  else
    read -r -a LINK <<<"$LIB_FUZZING_ENGINE"
  fi
  need=0
  for o in "${SRC_OBJS[@]}" "${VER_OBJS[@]}" "$OBJ/fuzz/fz.o" "$OBJ/fuzz/$h.o" "${ENGINE_OBJ[@]}"; do
    [ "$o" -nt "$bin" ] && need=1 && break
  done
  if [ ! -f "$bin" ] || [ $need = 1 ]; then
    $CC "${CF[@]}" "$OBJ/fuzz/$h.o" "$OBJ/fuzz/fz.o" "${VER_OBJS[@]}" "${SRC_OBJS[@]}" "${LINK[@]}" \
        -lpthread -ldl -o "$bin"
  fi
  # Seed corpus, dictionary and options beside the binary (the OSS-Fuzz names).
  if [ -d "$ROOT/corpus/$h" ]; then
    zip="$OUT/${h}_seed_corpus.zip"
    if [ ! -f "$zip" ] || [ -n "$(find "$ROOT/corpus/$h" -newer "$zip" -print -quit)" ]; then
      rm -f "$zip"
      (cd "$ROOT/corpus/$h" && find . -maxdepth 1 -type f ! -name 'README*' ! -name '.*' -printf '%P\n' |
        LC_ALL=C sort | python3 -c '
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for name in sys.stdin.read().split():
        z.write(name)
' "$zip")
    fi
  fi
  [ -f "$ROOT/corpus/$h.dict" ] && cp -p "$ROOT/corpus/$h.dict" "$OUT/$h$SUFFIX.dict"
  [ -f "$ROOT/fuzz/$h.options" ] && cp -p "$ROOT/fuzz/$h.options" "$OUT/$h$SUFFIX.options"
done
echo "build.sh: $ENGINE fuzzers ($VARIANT variant) in $OUT: ${HARNESSES[*]}"
