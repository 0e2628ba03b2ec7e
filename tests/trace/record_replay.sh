#!/usr/bin/env bash
# Full-mode recording of a 4-thread program on the real library, then: the trace reads, converts with
# no misuse and no forced order, replays cleanly in exact and in dependency order with every checker,
# survives to-corpus / to-c, and a truncated or corrupted copy is refused with a byte offset.
#   record_replay.sh BIN_DIR
set -u
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

HAKMEM_TRACE="$work/t.trace" "$bin/trace_crash4" 30 >/dev/null || fail "crash4 failed on the real library"
"$bin/hakmem-trace" dump "$work/t.trace" | head -3
stat=$("$bin/hakmem-trace" stat "$work/t.trace") || fail "stat"
echo "$stat" | sed -n '1p;/ops per thread/,/conversion/p'
echo "$stat" | grep -q "0 misuses skipped" || fail "the conversion found misuses in a correct program"
echo "$stat" | grep -q "5 threads" || fail "expected 5 recorded threads (4 workers and main)"
"$bin/hakmem-replay" --check=all "$work/t.trace" | tail -1 || fail "exact replay with every check"
"$bin/hakmem-replay" --order=deps --check=content,sll --repeat=3 "$work/t.trace" | tail -1 || fail "deps replay"

# the replay itself recorded: same ops as the original (usable-size queries of the interpreter aside)
HAKMEM_TRACE="$work/again.trace" "$bin/hakmem-replay" --no-fork "$work/t.trace" >/dev/null || fail "replay under recording"
"$bin/hakmem-trace" compare "$work/t.trace" "$work/again.trace" --ignore-usable || fail "a replay of a trace does not record the same ops"

"$bin/hakmem-trace" to-corpus "$work/t.trace" "$work/t.txt" || fail "to-corpus"
"$bin/hakmem-trace" to-corpus "$work/t.trace" "$work/t.hkop" || fail "to-corpus (binary)"
"$bin/hakmem-trace" compare "$work/t.trace" "$work/t.hkop" || fail "the op program differs from the trace"
"$bin/hakmem-replay" --check=all "$work/t.txt" | tail -1 || fail "replay of the op-program form"

# truncated and corrupted copies: refused with an offset, salvage keeps the good part
size=$(stat -c %s "$work/t.trace")
head -c $((size - 100)) "$work/t.trace" > "$work/cut.trace"
msg=$("$bin/hakmem-replay" "$work/cut.trace" 2>&1); rc=$?
echo "truncated: $msg"
[ $rc -eq 2 ] && echo "$msg" | grep -q "offset [0-9]*:" || fail "a truncated trace was not refused with an offset"
"$bin/hakmem-replay" --salvage --check=all "$work/cut.trace" | tail -1 || fail "salvaged replay"
cp "$work/t.trace" "$work/bad.trace"
printf '\x77' | dd of="$work/bad.trace" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
msg=$("$bin/hakmem-replay" "$work/bad.trace" 2>&1); rc=$?
echo "corrupted: $msg"
[ $rc -eq 2 ] && echo "$msg" | grep -q "offset [0-9]*: .*checksum mismatch" || fail "a corrupted trace was not refused with an offset"

# an option value longer than 31 bytes comes back whole (it used to be cut to 31, so a replay set
# another, invalid value)
ov="C0:256:16,C3:192:12,C5:128:8,C7:64:4,C9:32:2"
HAKMEM_TINY_TLS_CLASS_OVERRIDE=$ov HAKMEM_TRACE="$work/ov.trace" "$bin/trace_crash4" 2 >/dev/null || fail "run with a class override"
"$bin/hakmem-trace" dump "$work/ov.trace" --program | grep -q "set HAKMEM_TINY_TLS_CLASS_OVERRIDE $ov " ||
  fail "the recorded class override does not read back whole: $("$bin/hakmem-trace" dump "$work/ov.trace" --program | grep OVERRIDE)"

# ring mode, normal exit: nothing written
HAKMEM_TRACE="$work/r.trace" HAKMEM_TRACE_RING=1000 "$bin/trace_crash4" 5 >/dev/null || fail "ring run"
[ ! -e "$work/r.trace.crash" ] && [ ! -e "$work/r.trace" ] || fail "ring mode wrote a file without a crash"
echo "PASS"
