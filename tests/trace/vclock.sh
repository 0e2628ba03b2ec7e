#!/usr/bin/env bash
# Learning decisions replay identically (src/trace/vclock.h). A fake knob controller decides the
# thread-cache scale from a seeded PRNG on a virtual clock; in full mode every decision is a SET record.
#  - two recordings with the same seed take the same decisions at the same places;
#  - a replay (decisions forced) records the same ops and the same SETs;
#  - a replay with --learning=off records the same ops and no SET: it differs only in those SETs.
#   vclock.sh BIN_DIR
set -u
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
HAKMEM_TRACE="$work/a" "$bin/trace_vclock_prog" 42 20000 || fail "recording a"
HAKMEM_TRACE="$work/b" "$bin/trace_vclock_prog" 42 20000 >/dev/null || fail "recording b"
sets=$("$bin/hakmem-trace" stat "$work/a" | sed -n 's/^  set *\([0-9]*\).*/\1/p')
echo "decisions recorded: ${sets:-0}"
[ "${sets:-0}" -gt 0 ] || fail "no SET records"
"$bin/hakmem-trace" compare "$work/a" "$work/b" || fail "same seed, different decisions"
HAKMEM_TRACE="$work/forced" "$bin/hakmem-replay" --no-fork "$work/a" >/dev/null || fail "forced replay"
"$bin/hakmem-trace" compare "$work/a" "$work/forced" --ignore-usable || fail "a forced replay does not take the same decisions"
HAKMEM_TRACE="$work/off" "$bin/hakmem-replay" --no-fork --learning=off "$work/a" >/dev/null || fail "replay with learning off"
out=$("$bin/hakmem-trace" compare "$work/a" "$work/off" --ignore-usable); echo "$out"
echo "$out" | grep -q "DIFFERENT" || fail "learning off should differ (by its SETs)"
"$bin/hakmem-trace" compare "$work/a" "$work/off" --ignore-usable --ignore-sets || fail "learning off differs in more than the SETs"
"$bin/hakmem-trace" stat "$work/off" | grep -q "^  set" && fail "learning off still recorded SETs"
echo "PASS"
