/* The AFL++ main: persistent mode over shared-memory inputs, calling the same LLVMFuzzerTestOneInput as
 * libFuzzer and the plain driver. Built by `fuzz/build.sh --afl` with afl-clang-fast (which defines the
 * __AFL_* macros); fuzz/afl.sh runs it (-M/-S in parallel).
 *
 * __AFL_LOOP(N) re-runs the body N times in one process before AFL++ forks a fresh one: every harness
 * restores the options it changed and frees every block after each input, so inputs are independent
 * (hakmem's caches keep what earlier inputs left in them, as in any long-running process).
 * Given a file argument (afl-fuzz passes none in shared-memory mode) it runs that file once: the same
 * binary replays a crash with `fuzz_<h>.afl FILE`. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fz.h"

#ifndef __AFL_FUZZ_TESTCASE_LEN
#error "driver_afl.c needs afl-clang-fast (or afl-clang-lto): build with fuzz/build.sh --afl"
#endif

__AFL_FUZZ_INIT();

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 2;
    }
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    fprintf(stderr, "%s: no failure\n", path);
    return 0;
}

int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    if (argc > 1)
        return run_file(argv[1]);
#ifdef __AFL_HAVE_MANUAL_CONTROL
    __AFL_INIT();
#endif
    /* The buffer must be taken after __AFL_INIT and before the loop. */
    unsigned char *buf = __AFL_FUZZ_TESTCASE_BUF;
    while (__AFL_LOOP(10000)) {
        int len = __AFL_FUZZ_TESTCASE_LEN;
        LLVMFuzzerTestOneInput(buf, (size_t)len);
    }
    return 0;
}
