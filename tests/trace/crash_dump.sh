#!/usr/bin/env bash
# The crash path: on SIGSEGV and SIGABRT the ring is written to PATH.crash, the original disposition is
# restored and the signal raised again (the process still dies of it, or the program's own handler
# runs); full mode appends the crash to the trace itself; a ring that holds every op dumps the same
# program as full mode; a normal exit writes no crash dump.
#   crash_dump.sh BIN_DIR
set -u
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
check_dump() { # file expected-signal
  out=$("$bin/hakmem-trace" dump "$1") || fail "$1 does not read: $out"
  echo "$out" | grep -q "^crash: signal $2" || fail "$1: no crash record for signal $2"
  echo "$out" | grep -q "^end: " || fail "$1: no end chunk"
  echo "$out" | grep -c "^thread " | grep -q "^2$" || fail "$1: expected the records of 2 threads"
  "$bin/hakmem-trace" stat "$1" | grep "expected outcome"
}
HAKMEM_TRACE="$work/s" HAKMEM_TRACE_RING=256 "$bin/trace_sigprog" segv; rc=$?
[ $rc -eq 139 ] || fail "segv: exit $rc, expected death by SIGSEGV (139)"
check_dump "$work/s.crash" 11
HAKMEM_TRACE="$work/a" HAKMEM_TRACE_RING=256 "$bin/trace_sigprog" abort; rc=$?
[ $rc -eq 134 ] || fail "abort: exit $rc, expected death by SIGABRT (134)"
check_dump "$work/a.crash" 6
out=$(SIGPROG_HANDLER=1 HAKMEM_TRACE="$work/h" HAKMEM_TRACE_RING=256 "$bin/trace_sigprog" handler); rc=$?
[ $rc -eq 42 ] && echo "$out" | grep -q "own handler ran" || fail "the program's own SIGSEGV handler did not run after the dump (exit $rc)"
check_dump "$work/h.crash" 11
HAKMEM_TRACE="$work/f" "$bin/trace_sigprog" segv; rc=$?
[ $rc -eq 139 ] || fail "full mode segv: exit $rc"
"$bin/hakmem-trace" dump "$work/f" | grep -q "^crash: signal 11" || fail "full mode: no crash record in the trace"
# a ring that holds every op (its compact records expanded by the dumper) reads as the same program
# as the full-mode trace of the same run: mallocs, frees, a realloc, a large block
HAKMEM_TRACE="$work/r" HAKMEM_TRACE_RING=4096 "$bin/trace_sigprog" segv; rc=$?
[ $rc -eq 139 ] || fail "ring segv: exit $rc"
"$bin/hakmem-trace" compare "$work/f" "$work/r.crash" 2>/dev/null | grep -q ": same;" ||
  fail "a ring dump holding every op is not the program of the full-mode trace"
HAKMEM_TRACE="$work/n" HAKMEM_TRACE_RING=256 "$bin/trace_sigprog" exit >/dev/null || fail "normal exit"
[ ! -e "$work/n.crash" ] || fail "a crash dump after a normal exit"
echo "PASS"
