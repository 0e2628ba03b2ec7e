#!/usr/bin/env bash
# The replay column of `make verify`: replays every file of corpus/regressions/ (op programs) and
# corpus/traces/ (traces and op programs cut from them) in every built variant and every mode, and
# writes one tab-separated row per run:  file  variant  mode  result
# result: pass | FAIL(<signature>) | skip(<reason>). A regression must replay cleanly (outcome "ok")
# with every checker on; files that are not traces or op programs are skipped with the reason.
#
#   tools/trace/replay_corpus.sh [--table FILE] [--build-root DIR] [--variants release,hardened,debug]
#                                [--modes LIST] [--tool PATH] [--quick]
#   --tool PATH  use this one hakmem-replay binary (its own variant only), e.g. from ctest
#   --quick      only the default mode
# Exit status: 0 when no row is FAIL, 1 otherwise.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
table=/dev/stdout build_root=$root/build variants=release,hardened,debug tool= quick=0
modes=minimal,fast,balanced,learning,adaptive,tight,lean,research
while [ $# -gt 0 ]; do
  case $1 in
    --table) table=$2; shift 2 ;;
    --build-root) build_root=$2; shift 2 ;;
    --variants) variants=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --tool) tool=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "replay_corpus.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ $quick = 1 ] && modes=fast
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
printf 'file\tvariant\tmode\tresult\n' > "$tmp"
failed=0
files=$(find "$root/corpus/regressions" "$root/corpus/traces" -type f ! -name '.*' ! -name '*.md' 2>/dev/null | sort)
kind_of() { # trace | binary | text | other
  case $(head -c 4 "$1" | od -An -c | tr -d ' ') in
    HKTR) echo trace ;; HKOP) echo binary ;;
    *) if grep -qE '^(alloc|free|calloc|realloc|memalign|posix_memalign|aligned_alloc|usable|set|thread|check|valloc|pvalloc|reallocarray)( |$)' "$1" 2>/dev/null; then echo text; else echo other; fi ;;
  esac
}
[ -n "$tool" ] && variants=$("$tool" --variant-name 2>/dev/null || echo unknown)
for v in ${variants//,/ }; do
  bin=${tool:-$build_root/$v/tools/trace/hakmem-replay}
  for f in $files; do
    rel=${f#$root/}
    k=$(kind_of "$f")
    case $f in *.fuzz) k=fuzz ;; esac
    for m in ${modes//,/ }; do
      if [ "$k" = fuzz ]; then
        printf '%s\t%s\t%s\t%s\n' "$rel" "$v" "$m" "skip(decoder fuzz input for fuzz_trace, not a recording)" >> "$tmp"; continue
      fi
      if [ "$k" = other ]; then
        printf '%s\t%s\t%s\t%s\n' "$rel" "$v" "$m" "skip(not a trace or op program: fuzz bytes are replayed by their own harness)" >> "$tmp"; continue
      fi
      if [ ! -x "$bin" ]; then
        printf '%s\t%s\t%s\t%s\n' "$rel" "$v" "$m" "skip($v not built)" >> "$tmp"; continue
      fi
      out=$("$bin" --mode="$m" --check=all --expect=ok "$f" 2>&1); rc=$?
      if [ $rc -eq 0 ]; then res=pass
      elif [ $rc -eq 2 ]; then res="FAIL(unreadable: $(echo "$out" | grep -m1 '^hakmem-replay:' | cut -c1-160))"; failed=1
      else res="FAIL($(echo "$out" | sed -n 's/^  \([^ ]*\) (expected.*/\1/p' | head -1))"; failed=1
      fi
      printf '%s\t%s\t%s\t%s\n' "$rel" "$v" "$m" "$res" >> "$tmp"
    done
  done
  [ -n "$tool" ] && break # one binary: its own variant only
done
cat "$tmp" > "$table"
n=$(($(wc -l < "$tmp") - 1)); nf=$(grep -c 'FAIL(' "$tmp"); ns=$(grep -c 'skip(' "$tmp")
echo "replay_corpus: $((n - nf - ns)) passed, $nf failed, $ns skipped" >&2
exit $failed
