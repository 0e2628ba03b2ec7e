#!/usr/bin/env bash
# A crash planted in a mutant build (a refill that hands blocks out twice), in a 4-thread program,
# recorded in ring mode; hakmem-replay must reproduce the same fault in 100 runs out of 100, and
# hakmem-trace minimize must shrink it to under 50 ops that still fail the same way.
#   mutant_crash.sh BIN_DIR MUTANT_STATUS [RUNS]
set -u
bin=$1 status=$2 runs=${3:-100}
if [ "$(cat "$status" 2>/dev/null)" != "planted" ]; then
  echo "SKIP: the mutant could not be planted: $(cat "$status" 2>/dev/null || echo 'no status file')"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# 1. record: the program crashes inside the mutant allocator; the ring is written to trace.crash
HAKMEM_TINY_CAP_PCT=1 HAKMEM_TRACE="$work/trace" HAKMEM_TRACE_RING=4096 "$bin/trace_crash4_mutant" >/dev/null 2>&1
rc=$?
[ $rc -ge 128 ] || fail "the mutant program did not crash (exit $rc)"
[ -s "$work/trace.crash" ] || fail "no crash dump written"
"$bin/hakmem-trace" stat "$work/trace.crash" | sed -n '1p;/ops per thread/,/path served/p;/conversion/p;/expected/p'
expect=$("$bin/hakmem-trace" stat "$work/trace.crash" | sed -n 's/^expected outcome: //p')
[ -n "$expect" ] || fail "the dump carries no crash record"
inflight=$("$bin/hakmem-trace" stat "$work/trace.crash" | sed -n 's/.* \([0-9]*\) in-flight ops.*/\1/p')
[ "${inflight:-0}" -ge 1 ] || fail "the op that crashed inside the allocator is not in the dump as in flight"
echo "recorded: exit $rc, crash signature $expect"

# 2. replay against the mutant, each run in a fresh child
out=$("$bin/hakmem-replay-mutant" --repeat="$runs" "$work/trace.crash") || { echo "$out"; fail "replay did not reproduce $expect every time"; }
echo "$out" | tail -1
echo "$out" | grep -q " $runs/$runs runs as expected" || fail "not $runs/$runs"
# and against the real library of this build: no fault
"$bin/hakmem-replay" --expect=ok "$work/trace.crash" | tail -1 || fail "the real library fails this trace"

# 3. minimize with the mutant; the result must fail the same way and be under 50 ops
"$bin/hakmem-trace-mutant" minimize "$work/trace.crash" "$work/min.txt" --expect="$expect" --budget=300 || fail "minimize failed"
ops=$(grep -v '^#' "$work/min.txt" | grep -vc '^thread')
echo "minimized: $ops ops"
[ "$ops" -lt 50 ] || fail "minimized program has $ops ops (want < 50)"
"$bin/hakmem-replay-mutant" --repeat=10 --expect="$expect" "$work/min.txt" | tail -1 || fail "the minimized program does not reproduce"
"$bin/hakmem-replay" --expect=ok "$work/min.txt" | tail -1 || fail "the minimized program fails on the real library"
echo "PASS: ring-mode crash reproduced $runs/$runs, minimized to $ops ops"
