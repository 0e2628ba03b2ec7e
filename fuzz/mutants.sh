#!/usr/bin/env bash
# The mutation self-test (`make mutants`): does the framework catch realistic allocator bugs?
#
# Each verify/mutants/<name>.patch is a unified diff against src/ with a header:
#   # mutant: <name>
#   # bug: <what is planted>                 (any number of '# ' continuation lines)
#   # expect: <which check should fire>
#   # harnesses: fuzz_tiny fuzz_mixed ...    (fuzzers to run, in order; default all)
#   # stress: tsan_remote                    (optional: also run fuzz/tsan_remote.c built with TSan)
#   # uncatchable: <reason>                  (optional: reported, excluded from the score)
# For every mutant: copy src/ and include/ to build/mutants/<name>/tree, apply the patch, build the
# libFuzzer harnesses against that tree (fuzz/build.sh --src, release variant by default: the framework's
# checks must catch the bug, not the hardened variant's own aborts), then
#   1. fuzz: the header's harnesses one after another from an EMPTY corpus (dictionary only), sharing a
#      budget of MUTANT_SECONDS (default 60), stopping at the first crash;
#   2. replay: every harness over its seeds (corpus/<h>/) and corpus/regressions/<h>/;
#   3. stress (only for mutants whose header asks for it, when 1 and 2 did not catch it): the tree and
#      fuzz/tsan_remote.c built with ThreadSanitizer, a free-running producer/consumer of remote frees
#      (ordering bugs the turnstile-serialised fuzzers cannot see).
# A mutant is caught when either stage fails a check. Before the mutants, the unpatched tree goes
# through the same replay and a short fuzz (the control): it must pass, or the results mean nothing.
#
#   fuzz/mutants.sh [--seconds N] [--only a,b] [--variant release|debug] [--table FILE] [--no-control]
#   fuzz/mutants.sh --check-apply   only checks that every patch still applies to src/ (a dry run,
#                                   seconds; ctest runs it, so a change that moves a mutant's context
#                                   is noticed before `make verify`)
#
# Prints one row per mutant and "caught N/M"; writes the table (tab separated:
#   mutant caught_by seconds status execs harness replay
# status: caught | survived | excluded | stale (patch no longer applies) | build-failed) to
# build/mutants/table.txt (or --table). Exit 0 when every mutant that is not excluded was caught.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUDGET=${MUTANT_SECONDS:-60}
VARIANT=${MUTANT_VARIANT:-release}
ONLY=${MUTANTS:-}
TABLE=""
CONTROL=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) BUDGET=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --variant) VARIANT=$2; shift ;;
    --table) TABLE=$2; shift ;;
    --no-control) CONTROL=0 ;;
    --check-apply)
      stale=0 total=0
      for patch in "$ROOT"/verify/mutants/*.patch; do
        total=$((total + 1))
        if ! patch -p1 -s --dry-run -d "$ROOT" <"$patch" >/dev/null 2>&1; then
          echo "stale: $(basename "$patch" .patch) no longer applies to src/ (retarget it to the current code)"
          stale=$((stale + 1))
        fi
      done
      echo "$((total - stale)) passed, $stale failed"
      [ "$stale" -eq 0 ]; exit ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "mutants.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
WORK=$ROOT/build/mutants
[ -n "$TABLE" ] || TABLE=$WORK/table.txt
ALL=(fuzz_tiny fuzz_mixed fuzz_modes fuzz_mt fuzz_options)
mkdir -p "$WORK"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

# The check that fired, from a harness log: the framework's check (with the checker's own detail),
# else the sanitizer or signal that stopped the run.
caught_by() {
  local log=$1 c d
  c=$(sed -nE 's/^fuzz-crash: harness=[^ ]+ mode=[^ ]+ check=([^ ]+).*/\1/p' "$log" | head -1)
  if [ -n "$c" ]; then
    d=$(sed -nE 's/^FAIL [^ ]+ \(([^)]+)\).*/\1/p' "$log" | head -1)
    [ -n "$d" ] && [ "$d" != "$c" ] && c="$c:$d"
    echo "$c"; return
  fi
  if grep -q 'ERROR: AddressSanitizer' "$log"; then
    echo "ASan:$(sed -nE 's/.*ERROR: AddressSanitizer: ([a-zA-Z-]+).*/\1/p' "$log" | head -1)"; return
  fi
  grep -q 'runtime error:' "$log" && { echo "UBSan"; return; }
  if grep -q '^hakmem: ' "$log"; then
    echo "hardened:$(grep -m1 '^hakmem: ' "$log" | cut -c9- | cut -d' ' -f1-3 | tr ' ' '_')"; return
  fi
  grep -q 'ERROR: libFuzzer: timeout' "$log" && { echo "timeout"; return; }
  grep -q 'out-of-memory' "$log" && { echo "oom"; return; }
  grep -q 'deadly signal' "$log" && { echo "signal"; return; }
  echo "crash"
}

# replay BIN LOGDIR: every harness over seeds + regressions; prints "ok" or "<harness>:<check>".
replay() {
  local bin=$1 dir=$2 h dirs
  mkdir -p "$dir/crashes"
  for h in "${ALL[@]}"; do
    dirs=()
    for d in "$ROOT/corpus/$h" "$ROOT/corpus/regressions/$h"; do
      [ -n "$(find "$d" -maxdepth 1 -type f ! -name 'README*' ! -name '*.md' 2>/dev/null | head -1)" ] && dirs+=("$d")
    done
    [ ${#dirs[@]} -eq 0 ] && continue
    if ! FUZZ_STATS=0 "$bin/$h" -runs=0 -artifact_prefix="$dir/crashes/replay-$h-" "${dirs[@]}" \
        >"$dir/replay-$h.log" 2>&1; then
      echo "$h:$(caught_by "$dir/replay-$h.log")"
      return
    fi
  done
  echo ok
}

# fuzz BIN DIR SECONDS HARNESS...: sets F_CAUGHT F_SECONDS F_EXECS F_HARNESS
fuzz_stage() {
  local bin=$1 dir=$2 budget=$3; shift 3
  local n=$# each t0 h log
  each=$(awk -v b="$budget" -v n="$n" 'BEGIN{v=int(b/n); if (v<1) v=1; print v}')
  F_CAUGHT=""; F_EXECS=0; F_HARNESS=""
  t0=$(now)
  for h in "$@"; do
    log=$dir/fuzz-$h.log
    rm -rf "$dir/corpus-$h"; mkdir -p "$dir/corpus-$h" "$dir/crashes"
    local dict=()
    [ -f "$ROOT/corpus/$h.dict" ] && dict=(-dict="$ROOT/corpus/$h.dict")
    "$bin/$h" -max_total_time="$each" -print_final_stats=1 -timeout=20 -artifact_prefix="$dir/crashes/$h-" \
      "${dict[@]}" "$dir/corpus-$h" >"$log" 2>&1
    local st=$?
    local e
    e=$(awk '/^stat::number_of_executed_units:/{print $2}' "$log" | tail -1)
    F_EXECS=$((F_EXECS + ${e:-0}))
    if [ $st -ne 0 ] || grep -q 'Test unit written to' "$log"; then
      F_CAUGHT=$(caught_by "$log"); F_HARNESS=$h
      break
    fi
  done
  F_SECONDS=$(since "$t0")
}

# stress_tsan TREE DIR: builds fuzz/tsan_remote.c and the tree with ThreadSanitizer and runs it; sets
# S_RESULT ("ok", "TSan:data-race", "failed:<rc>" or "build-failed") and S_SECONDS.
stress_tsan() {
  local tree=$1 dir=$2 t0 rc
  S_SECONDS=0
  clang -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=thread -DHAK_PREFIXED_ONLY=1 -DHAK_VARIANT_NAME='"release"' \
    -fvisibility=hidden -ftls-model=initial-exec -fno-builtin-malloc -fno-builtin-free -I"$tree/src" \
    -I"$tree/include" "$tree"/src/*/*.c "$ROOT/fuzz/tsan_remote.c" -lpthread -o "$dir/tsan_remote" \
    >"$dir/tsan-build.log" 2>&1 || { S_RESULT=build-failed; return; }
  t0=$(now)
  TSAN_OPTIONS="halt_on_error=1 exitcode=66" "$dir/tsan_remote" --items 200000 >"$dir/tsan.log" 2>&1
  rc=$?
  S_SECONDS=$(since "$t0")
  if [ $rc -eq 0 ]; then S_RESULT=ok
  elif grep -q 'ThreadSanitizer: data race' "$dir/tsan.log"; then S_RESULT="TSan:data-race"
  else S_RESULT="failed:$rc"; fi
}

build_tree() { # tree out
  "$ROOT/fuzz/build.sh" --variant "$VARIANT" --src "$1" --out "$2" >"$2.build.log" 2>&1
}

# ---- the control: the unpatched tree must pass ---------------------------------------------------
BASE=$WORK/base
mkdir -p "$BASE"
rm -rf "$BASE/tree" && mkdir -p "$BASE/tree" && cp -rp "$ROOT/src" "$ROOT/include" "$BASE/tree/"
echo "mutants: building the unpatched tree ($VARIANT variant) ..."
if ! build_tree "$BASE/tree" "$BASE/bin"; then
  echo "mutants: the unpatched tree does not build (log $BASE/bin.build.log)"; tail -20 "$BASE/bin.build.log"; exit 2
fi
if [ $CONTROL = 1 ]; then
  r=$(replay "$BASE/bin" "$BASE")
  fuzz_stage "$BASE/bin" "$BASE" 10 "${ALL[@]}"
  if [ "$r" != ok ] || [ -n "$F_CAUGHT" ]; then
    echo "mutants: CONTROL FAILED: the unpatched tree fails (replay: $r; fuzz: ${F_CAUGHT:-ok} in ${F_HARNESS:-}):"
    echo "  logs in $BASE; this is a real bug (or a framework bug): fix it before trusting mutants"
    exit 2
  fi
  echo "mutants: control ok (replay of seeds and regressions, ${F_EXECS} fuzz execs in ${F_SECONDS} s: no failure)"
  if grep -lq '^# stress: tsan_remote' "$ROOT"/verify/mutants/*.patch 2>/dev/null; then
    stress_tsan "$BASE/tree" "$BASE"
    if [ "$S_RESULT" != ok ]; then
      echo "mutants: CONTROL FAILED: tsan_remote on the unpatched tree: $S_RESULT (log $BASE/tsan.log)"; exit 2
    fi
    echo "mutants: control ok (tsan_remote: no race in ${S_SECONDS} s)"
  fi
fi

# ---- the mutants ------------------------------------------------------------------------------------
: >"$TABLE"
printf '# mutant\tcaught_by\tseconds\tstatus\texecs\tharness\treplay\n' >>"$TABLE"
caught=0; total=0; excluded=0; bad=0
printf '%-26s %-34s %8s  %-9s %9s  %-12s %s\n' mutant caught_by seconds status execs harness replay
for patch in "$ROOT"/verify/mutants/*.patch; do
  name=$(basename "$patch" .patch)
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then continue; fi
  dir=$WORK/$name
  rm -rf "$dir" && mkdir -p "$dir/tree"
  harnesses=$(sed -nE 's/^# harnesses: *(.*)/\1/p' "$patch" | head -1)
  [ -n "$harnesses" ] || harnesses="${ALL[*]}"
  uncatchable=$(sed -nE 's/^# uncatchable: *(.*)/\1/p' "$patch" | head -1)
  cp -rp "$ROOT/src" "$ROOT/include" "$dir/tree/"
  status=""; by="-"; secs="-"; execs="-"; harness="-"; rep="-"
  if ! patch -p1 -s -d "$dir/tree" --no-backup-if-mismatch <"$patch" >"$dir/patch.log" 2>&1; then
    status=stale
  else
    # reuse the unpatched objects (same mtimes): only what the patch touched is recompiled
    mkdir -p "$dir/bin" && cp -rp "$BASE/bin/obj" "$dir/bin/"
    if ! build_tree "$dir/tree" "$dir/bin"; then
      status=build-failed
    else
      # shellcheck disable=SC2086
      fuzz_stage "$dir/bin" "$dir" "$BUDGET" $harnesses
      execs=$F_EXECS
      rep=$(replay "$dir/bin" "$dir")
      stress=""
      if [ -z "$F_CAUGHT" ] && [ "$rep" = ok ] && grep -q '^# stress: tsan_remote' "$patch"; then
        stress_tsan "$dir/tree" "$dir"
        stress=$S_RESULT
      fi
      if [ -n "$F_CAUGHT" ]; then
        status=caught; by=$F_CAUGHT; secs=$F_SECONDS; harness=$F_HARNESS
      elif [ "$rep" != ok ]; then
        status=caught; by="replay:${rep#*:}"; harness=${rep%%:*}; secs="replay"
      elif [ -n "$stress" ] && [ "$stress" != ok ]; then
        status=caught; by="stress:$stress"; harness=tsan_remote; secs=$S_SECONDS
      else
        status=survived
      fi
    fi
  fi
  if [ -n "$uncatchable" ] && [ "$status" != caught ]; then
    status=excluded
    excluded=$((excluded + 1))
  else
    total=$((total + 1))
    case $status in caught) caught=$((caught + 1)) ;; *) bad=$((bad + 1)) ;; esac
  fi
  printf '%-26s %-34s %8s  %-9s %9s  %-12s %s\n' "$name" "$by" "$secs" "$status" "$execs" "$harness" "$rep"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$by" "$secs" "$status" "$execs" "$harness" "$rep" >>"$TABLE"
  [ "$status" = excluded ] && echo "  excluded: $uncatchable"
  [ "$status" = stale ] && echo "  the patch no longer applies to src/ ($dir/patch.log): refresh it"
done
echo "caught $caught/$total$([ $excluded -gt 0 ] && echo " ($excluded excluded as uncatchable by design)")"
echo "table: $TABLE"
[ $bad -eq 0 ]
