#!/usr/bin/env bash
# Runs real programs with and without LD_PRELOAD=<libhakmem*.so> and demands identical stdout and
# exit status. A drop-in malloc must be invisible to its host: any difference is an allocator bug
# (corruption, wrong realloc/calloc semantics, a broken fork or thread path) or an unclean exit.
#
# usage: run_programs.sh /path/to/libhakmem.so        (ctest passes $<TARGET_FILE:hakmem_shared>)
#
# One line per case: "ok NAME", "FAIL NAME: why" followed by a diff excerpt, or
# "skip NAME: skipped: PROG not installed". Closing line: "N passed, N failed[, N skipped]".
# Exit status: 0 when nothing failed, 1 otherwise, 2 on bad usage.
#
# Every case runs in the same fresh directory (same path both times, so paths in outputs agree) with
# a fixed environment: LC_ALL=C, TZ=UTC, HOME inside the work dir, fixed git identities and dates,
# PYTHONHASHSEED=0. Inputs are generated once, deterministically, without the preload.
set -u

if [ $# -ne 1 ] || [ ! -f "$1" ]; then
    echo "usage: $0 /path/to/libhakmem.so (got: ${1:-nothing})" >&2
    exit 2
fi
LIB=$(readlink -f "$1")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-preload.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
DATA=$WORK/data
RUN=$WORK/run
mkdir -p "$DATA" "$WORK/home"
CASE_TIMEOUT=${HAKTEST_CASE_TIMEOUT:-120}

export LC_ALL=C TZ=UTC HOME="$WORK/home" PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1
export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=tester GIT_AUTHOR_EMAIL=tester@example.invalid
export GIT_COMMITTER_NAME=tester GIT_COMMITTER_EMAIL=tester@example.invalid
export DATA RUN
# python3 is often a launcher script (pyenv shims); resolve the interpreter itself once, so the
# comparison measures python, not the launcher's subprocesses.
PYTHON3=
if command -v python3 > /dev/null 2>&1; then
    PYTHON3=$(python3 -c 'import sys; print(sys.executable)' 2> /dev/null) || PYTHON3=
    [ -x "$PYTHON3" ] || PYTHON3=$(command -v python3)
fi
export PYTHON3
unset HAKMEM_STATS_ENABLE HAKMEM_TRACE MALLOC_CHECK_ MALLOC_PERTURB_

passed=0
failed=0
skipped=0

# ---------------------------------------------------------------------------------------------------
# Inputs (made once, no preload)

# 200k pseudo-random integers (LCG; signed, with duplicates) for sort.
awk 'BEGIN { x = 12345; for (i = 0; i < 200000; i++) { x = (x * 1103515245 + 12345) % 2147483648;
             printf "%d\n", (x % 2000003) - 1000000 } }' > "$DATA/numbers.txt"

cat > "$DATA/prog.py" <<'EOF'
import collections, hashlib, json, re, sys, threading

# dicts, lists, strings: many small objects of many sizes, then growth and shrink
words = ["w%d_%s" % (i, "x" * (i % 37)) for i in range(60000)]
d = {}
for i, w in enumerate(words):
    d.setdefault(w[: 2 + i % 6], []).append(i * i % 1009)
big = "".join(words[::7])
parts = big.split("_")
counts = collections.Counter(len(p) for p in parts)
print("keys", len(d), "parts", len(parts), "maxlen", max(counts))
print("counter", sorted(counts.items())[:12])
for k in sorted(d)[:10]:
    print(k, len(d[k]), sum(d[k]))
lst = [list(range(i % 50)) for i in range(20000)]
while len(lst) > 1000:
    lst = [a + b for a, b in zip(lst[::2], lst[1::2])][: len(lst) // 2]
print("lst", len(lst), sum(len(x) for x in lst))

# json round trip of a nested structure
obj = {"n%d" % i: {"v": [i, str(i) * (i % 9), {"f": i / 7.0}], "s": "\u00e9" * (i % 5)} for i in range(5000)}
text = json.dumps(obj, sort_keys=True)
back = json.loads(text)
print("json", len(text), back == obj, hashlib.sha256(text.encode()).hexdigest())

# regexes
rx = re.compile(r"w(\d+)_(x{3,5})$")
print("regex", sum(1 for w in words if rx.match(w)))

# threads: each builds and tears down its own structures, results merged and sorted
results = []
lock = threading.Lock()
def work(tid):
    local = {}
    for i in range(30000):
        key = "t%d-%d" % (tid, i % 997)
        local[key] = local.get(key, "") + chr(65 + (i % 26))
        if i % 5 == 0:
            local.pop("t%d-%d" % (tid, (i * 7) % 997), None)
    digest = hashlib.md5("".join(sorted(local.values())).encode()).hexdigest()
    with lock:
        results.append((tid, len(local), digest))
ts = [threading.Thread(target=work, args=(t,)) for t in range(6)]
for t in ts: t.start()
for t in ts: t.join()
for r in sorted(results):
    print("thread", *r)
sys.exit(3)  # a non-zero status that must survive too
EOF

cat > "$DATA/prog.pl" <<'EOF'
use strict; use warnings;
my %h; my @keys;
for my $i (0 .. 80000) {
    my $k = sprintf("k%05d-%s", $i % 9973, "z" x (($i % 9973) % 23));
    $h{$k} .= chr(97 + $i % 26);
    push @keys, $k if $i % 17 == 0;
}
my ($n, $total) = (0, 0);
for my $k (sort keys %h) { $n++; $total += length $h{$k}; }
print "keys $n total $total\n";
my $text = join(" ", map { "$_=$h{$_}" } @keys[0 .. 2000]);
my @m = ($text =~ /k(\d{3})1\d-(z{5,9})=([a-m]+)/g);
print "matches ", scalar(@m), "\n";
(my $t2 = $text) =~ s/(k\d+)-(z*)/uc($1) . length($2)/ge;
print "subst ", length($t2), " ", substr($t2, 0, 60), "\n";
my %inv; push @{ $inv{length $h{$_}} }, $_ for keys %h;
print "$_ ", scalar(@{ $inv{$_} }), "\n" for sort { $a <=> $b } keys %inv;
EOF

cat > "$DATA/prog.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct node { struct node *next; char name[24]; int v; };
static int cmp(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }
int main(void) {
    int n = 50000, *a = malloc(sizeof(int) * n);
    unsigned x = 7;
    for (int i = 0; i < n; i++) { x = x * 1664525u + 1013904223u; a[i] = (int)(x >> 8) % 100000; }
    qsort(a, n, sizeof *a, cmp);
    struct node *head = NULL;
    for (int i = 0; i < 1000; i++) {
        struct node *nd = calloc(1, sizeof *nd);
        snprintf(nd->name, sizeof nd->name, "node-%d", a[i * 50]);
        nd->v = a[i * 50]; nd->next = head; head = nd;
    }
    long sum = 0;
    while (head) { struct node *nx = head->next; sum += head->v + (long)strlen(head->name); free(head); head = nx; }
    char *s = NULL; size_t len = 0;
    for (int i = 0; i < 300; i++) { s = realloc(s, len + 12); len += (size_t)sprintf(s + len, "%d,", a[i * 100] % 1000); }
    printf("min %d max %d median %d sum %ld len %zu\n", a[0], a[n - 1], a[n / 2], sum, len);
    printf("%.60s\n", s);
    free(s); free(a);
    return 0;
}
EOF

# ---------------------------------------------------------------------------------------------------
# Cases. Each is a bash function run by a fresh `bash -c` (itself under the preload in the lib run)
# from $RUN; it prints what is compared.

case_python3() {
    "$PYTHON3" "$DATA/prog.py"
}

case_perl() {
    perl "$DATA/prog.pl"
}

case_git() {
    set -e
    export GIT_AUTHOR_DATE="2024-01-02T03:04:05Z" GIT_COMMITTER_DATE="2024-01-02T03:04:05Z"
    git -c init.defaultBranch=main init -q repo
    cd repo
    for c in 1 2 3 4 5; do
        for f in 1 2 3 4 5 6; do
            seq $((c * 100)) $((c * 100 + f * 400)) | sed "s/^/line $f /" > "file$f.txt"
        done
        mkdir -p "dir$c" && printf 'commit %d\n' "$c" > "dir$c/readme"
        git add -A
        git commit -q -m "commit $c" -m "body of commit $c"
    done
    git mv file1.txt moved.txt && git commit -q -m "rename"
    git log --stat
    git gc -q --aggressive
    git count-objects -v | grep -v -e '^size' -e '^size-pack'
    git fsck --full --no-progress 2>&1
    git rev-parse HEAD HEAD~3^{tree}
    git diff --stat HEAD~4 HEAD
}

case_gcc() {
    set -e
    gcc -O2 -c "$DATA/prog.c" -o prog.o
    gcc prog.o -o prog
    ./prog
    echo "exit $?"
    nm prog.o
}

case_sort() {
    set -e
    sort -n "$DATA/numbers.txt" | md5sum
    sort -n "$DATA/numbers.txt" | sed -n '1p;1000p;100000p;$p'
    sort --parallel=2 -S 2M -n "$DATA/numbers.txt" | md5sum
    sort --parallel=2 -u -t- -k1,1 "$DATA/numbers.txt" | wc -l
    sort -r "$DATA/numbers.txt" | uniq -c | sort -k1,1nr -k2,2n | head -5
}

case_bash_pipelines() {
    bash -c '
        declare -A seen; arr=()
        for ((i = 0; i < 20000; i++)); do
            k="key$((i * 7 % 1231))"; seen[$k]=$(( ${seen[$k]:-0} + i )); arr+=("${k//y/Y}")
        done
        echo "${#seen[@]} ${#arr[@]} ${seen[key17]} ${arr[19999]}"
        s=""; for ((i = 0; i < 3000; i++)); do s+="$i:"; done; echo "${#s} ${s:100:20} ${s//1/one}" | md5sum
        seq 1 50000 | awk "{ print (\$1 * \$1) % 9973 }" | sort -n | uniq -c | sort -k1,1nr -k2,2n | head -5
        printf "%s\n" "${arr[@]}" | sort | uniq | wc -l
        exit 7
    '
}

case_tar_gzip() {
    set -e
    mkdir -p src/sub/deeper
    for i in $(seq 1 40); do
        seq "$i" 3 $((i * 900)) > "src/f$i.txt"
        head -c $((i * 517)) "$DATA/numbers.txt" > "src/sub/b$i.dat"
    done
    printf 'tiny\n' > src/sub/deeper/t
    touch -d @1700000000 src src/sub src/sub/deeper src/*.txt src/sub/* src/sub/deeper/t
    tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -cf - src | gzip -n -9 > a.tar.gz
    md5sum a.tar.gz | cut -d' ' -f1
    gzip -t a.tar.gz
    mkdir out && tar -xzf a.tar.gz -C out
    diff -r src out/src && echo "round trip identical"
    tar -tzvf a.tar.gz | awk '{ print $1, $3, $6 }'
    gzip -dc a.tar.gz | md5sum
}

case_awk_sed() {
    set -e
    awk '{ s[$1 % 97] += $1; c[$1 % 97]++ } END { for (k in s) print k, s[k], c[k] }' "$DATA/numbers.txt" | sort -n
    awk 'BEGIN { for (i = 0; i < 30000; i++) { a[sprintf("%x", i * 2654435761 % 65536)] = i; t = t i "," }
                 n = split(t, parts, ","); print length(a), n, substr(t, 1000, 40) }'
    sed -e 's/\([0-9]\)\([0-9]\)/\2\1/g' -e '/^-/d' -e 's/$/;/' "$DATA/numbers.txt" | head -c 200000 | md5sum
    sed -n '/^-\?9[0-9]*7$/p' "$DATA/numbers.txt" | wc -l
    seq 1 5000 | sed 'N;N;s/\n/+/g' | tail -3
}

# ---------------------------------------------------------------------------------------------------
# Driver

excerpt() { # file: at most 15 lines, indented
    head -n 15 "$1" | sed 's/^/    /'
}

# run_variant FUNC TAG [LIB]: runs FUNC in a fresh $RUN; writes $WORK/FUNC.TAG.{out,err,rc}
run_variant() {
    local fn=$1 tag=$2 lib=${3:-}
    rm -rf "$RUN" && mkdir -p "$RUN"
    (
        cd "$RUN" || exit 99
        if [ -n "$lib" ]; then export LD_PRELOAD="$lib"; fi
        exec timeout "$CASE_TIMEOUT" bash -c "$(declare -f "$fn"); $fn"
    ) > "$WORK/$fn.$tag.out" 2> "$WORK/$fn.$tag.err"
    echo $? > "$WORK/$fn.$tag.rc"
}

# compare_case NAME FUNC PROG...: PROG are the programs the case needs.
compare_case() {
    local name=$1 fn=$2 prog
    shift 2
    for prog in "$@"; do
        if ! command -v "$prog" > /dev/null 2>&1; then
            echo "skip $name: skipped: $prog not installed"
            skipped=$((skipped + 1))
            return
        fi
    done
    run_variant "$fn" ref
    run_variant "$fn" lib "$LIB"
    local rc_ref rc_lib
    rc_ref=$(cat "$WORK/$fn.ref.rc")
    rc_lib=$(cat "$WORK/$fn.lib.rc")
    if [ "$rc_ref" = 124 ]; then
        echo "FAIL $name: timed out after ${CASE_TIMEOUT}s even without the preload"
        failed=$((failed + 1))
    elif [ "$rc_ref" != "$rc_lib" ] || ! cmp -s "$WORK/$fn.ref.out" "$WORK/$fn.lib.out"; then
        echo "FAIL $name: exit $rc_ref without the preload, $rc_lib with it$([ "$rc_lib" = 124 ] && echo ' (timed out)')"
        diff "$WORK/$fn.ref.out" "$WORK/$fn.lib.out" > "$WORK/$fn.diff"
        if [ -s "$WORK/$fn.diff" ]; then
            echo "  stdout diff (< without, > with LD_PRELOAD):"
            excerpt "$WORK/$fn.diff"
        fi
        if [ -s "$WORK/$fn.lib.err" ]; then
            echo "  stderr with LD_PRELOAD (first lines):"
            excerpt "$WORK/$fn.lib.err"
        fi
        failed=$((failed + 1))
    else
        echo "ok $name (exit $rc_ref, $(wc -l < "$WORK/$fn.ref.out") lines)"
        passed=$((passed + 1))
    fi
}

# The comparisons prove nothing unless the library is really loaded and really serves malloc: the
# dynamic loader's binding trace must show libc's own references to the malloc family resolved to it.
check_binding() {
    local name=preload_binds_malloc
    LD_PRELOAD="$LIB" LD_DEBUG=bindings LD_DEBUG_OUTPUT="$WORK/ld" /bin/true 2> "$WORK/bind.err"
    local missing=""
    for sym in malloc free calloc realloc; do
        grep -h "to $LIB \[[0-9]*\]: normal symbol \`$sym'" "$WORK"/ld.* > /dev/null 2>&1 || missing="$missing $sym"
    done
    if grep -q "cannot be preloaded" "$WORK/bind.err"; then
        echo "FAIL $name: the dynamic loader refused the library:"
        excerpt "$WORK/bind.err"
        failed=$((failed + 1))
    elif [ -n "$missing" ]; then
        echo "FAIL $name: with LD_PRELOAD=$LIB these are not bound to the library:$missing"
        grep -h "normal symbol \`malloc'" "$WORK"/ld.* 2> /dev/null | head -3 | sed 's/^/    /'
        failed=$((failed + 1))
    else
        echo "ok $name (malloc, free, calloc, realloc bound to $(basename "$LIB"))"
        passed=$((passed + 1))
    fi
}

# Whether python3 is installed; if not, the check named $1 is counted as skipped, with the reason.
have_python3() {
    command -v python3 > /dev/null 2>&1 && return 0
    echo "skip $1: skipped: python3 not installed"
    skipped=$((skipped + 1))
    return 1
}

# HAKMEM_STATS_ENABLE=1 makes the library print its statistics report at exit; seeing it proves the
# allocator ran inside the host (not just got mapped).
check_stats_report() {
    local name=stats_report_on_exit
    have_python3 "$name" || return
    LD_PRELOAD="$LIB" HAKMEM_STATS_ENABLE=1 timeout "$CASE_TIMEOUT" "$PYTHON3" -c 'pass' \
        > "$WORK/stats.out" 2> "$WORK/stats.err"
    local rc=$?
    if [ $rc -ne 0 ]; then
        echo "FAIL $name: $PYTHON3 -c pass exited $rc under the preload with HAKMEM_STATS_ENABLE=1"
        excerpt "$WORK/stats.err"
        failed=$((failed + 1))
    elif ! grep -qi hakmem "$WORK/stats.err"; then
        echo "FAIL $name: HAKMEM_STATS_ENABLE=1 python3 -c pass printed no report mentioning hakmem on stderr"
        excerpt "$WORK/stats.err"
        failed=$((failed + 1))
    else
        echo "ok $name ($(wc -l < "$WORK/stats.err") lines on stderr)"
        passed=$((passed + 1))
    fi
}

# malloc_trim is served by the library too: python3 allocates a burst of 1 KiB objects (past its own
# small-object allocator, so they come from malloc), frees them, and calls malloc_trim(0) through
# ctypes. The loader must bind the call to the library, and the call must report that memory went
# back (1), as glibc's does after such a burst.
check_malloc_trim() {
    local name=malloc_trim_gives_memory_back
    have_python3 "$name" || return
    LD_PRELOAD="$LIB" LD_DEBUG=bindings LD_DEBUG_OUTPUT="$WORK/trim.ld" timeout "$CASE_TIMEOUT" "$PYTHON3" -c '
import ctypes
keep = [bytes(1000) for _ in range(2)]
burst = [bytes([i % 256]) * 1000 for i in range(50000)]
del burst
print(ctypes.CDLL(None).malloc_trim(0))' > "$WORK/trim.out" 2> "$WORK/trim.err"
    local rc=$?
    if [ $rc -ne 0 ]; then
        echo "FAIL $name: python3 exited $rc under the preload"
        excerpt "$WORK/trim.err"
        failed=$((failed + 1))
    elif ! grep -h "to $LIB \[[0-9]*\]: normal symbol \`malloc_trim'" "$WORK"/trim.ld.* > /dev/null 2>&1; then
        echo "FAIL $name: malloc_trim called from python3 was not bound to $LIB"
        failed=$((failed + 1))
    elif [ "$(cat "$WORK/trim.out")" != 1 ]; then
        echo "FAIL $name: malloc_trim(0) returned '$(cat "$WORK/trim.out")' after a freed burst, expected 1"
        failed=$((failed + 1))
    else
        echo "ok $name (bound to $(basename "$LIB"), returned 1)"
        passed=$((passed + 1))
    fi
}

echo "library: $LIB"
check_binding
compare_case python3 case_python3 python3
compare_case perl case_perl perl
compare_case git case_git git seq sed grep
compare_case gcc case_gcc gcc nm
compare_case sort case_sort sort md5sum uniq
compare_case bash_pipelines case_bash_pipelines bash awk seq md5sum
compare_case tar_gzip case_tar_gzip tar gzip md5sum diff
compare_case awk_sed case_awk_sed awk sed md5sum
check_stats_report
check_malloc_trim

if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
