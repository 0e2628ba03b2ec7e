#!/usr/bin/env bash
# Builds fuzz_trace with clang + libFuzzer (ASan, UBSan) and runs it for SECONDS (default 60) on a copy of
# corpus/traces. Prints libFuzzer's last status line; exits non-zero if it found a crash.
#   tools/trace/fuzz_trace.sh [SECONDS] [OUT_DIR]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
out=${2:-$root/build/fuzz_trace}
mkdir -p "$out/corpus"
cc=${CC_FUZZ:-clang}
$cc -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root/verify" -I"$root/include" -I"$root/tools/trace" \
  "$root/tools/trace/fuzz_trace.c" "$root/tools/trace/tfile.c" "$root/tools/trace/tconv.c" \
  "$root/verify/op.c" "$root/verify/op_fuzz.c" "$root/verify/op_bin.c" "$root/verify/op_text.c" \
  -o "$out/fuzz_trace"
cp -n "$root"/corpus/traces/* "$out/corpus/" 2>/dev/null || true
cd "$out"
set +e
./fuzz_trace -max_total_time="$secs" -max_len=262144 -rss_limit_mb=2048 corpus > fuzz.log 2>&1
rc=$?
grep -E "^#[0-9]+ +(DONE|pulse)|ERROR|SUMMARY|Done [0-9]+ runs" fuzz.log | tail -3
exit $rc
