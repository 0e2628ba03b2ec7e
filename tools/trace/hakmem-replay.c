/* hakmem-replay: replays recorded traces (and op programs) against hakmem, deterministically.
 *
 *   hakmem-replay [options] FILE...
 *     --order=exact|deps     exact: one thread per recorded thread, each op at its recorded turn (default);
 *                            deps: threads run freely, synchronised only where a block changes thread
 *     --check=LIST           none (default) | all | shadow,content,sll,heap (verify/'s checkers)
 *     --learning=forced|off  recorded controller decisions (SET) applied at their place, or dropped
 *     --mode=NAME            run under HAKMEM_MODE=NAME (the tool re-executes itself with it)
 *     --variant=V            release | hardened | debug: run the build of that variant (build/V/...)
 *     --repeat=N             N runs, each in a fresh child process; prints how many matched
 *     --expect=SIG           the outcome that counts as reproduced (default: the trace's crash, else ok)
 *     --no-fork              run in this process (a crash then ends the tool), e.g. under a debugger
 *     --bench                run in this process and print ops/s
 *     --salvage              replay what precedes a corrupt or truncated part of a trace
 *     --large                run requests above 4 MiB too
 *     --no-touch             do not write into blocks (by default the first 64 bytes get a pattern, as a
 *                            program would write its data; needed to reproduce link corruption)
 *
 * Outcome signatures: ok | check:<name> | report:<hardened fault> | signal:<SIGNAME> | exit:<code>.
 * Exit status: 0 when every run of every file matched its expectation, 1 otherwise, 2 on bad usage or
 * an unreadable file (the message names the byte offset of a corrupt trace).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"
#include "tconv.h"
#include "treplay.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: hakmem-replay [--order=exact|deps] [--check=LIST] [--learning=forced|off] [--mode=NAME]\n"
               "                     [--variant=release|hardened|debug] [--repeat=N] [--expect=SIG] [--no-fork]\n"
               "                     [--bench] [--salvage] [--large] [--no-touch] FILE...\n");
}

/* Re-executes the sibling build's binary: .../build/<cur>/tools/trace/hakmem-replay -> .../build/<v>/... */
static int exec_variant(const char *want, char **argv)
{
    char self[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0)
        return -1;
    self[k] = 0;
    const char *cur = hak_variant();
    char needle[64];
    snprintf(needle, sizeof needle, "/%s/tools/trace/", cur);
    char *at = strstr(self, needle);
    if (!at) {
        fprintf(stderr, "hakmem-replay: cannot find the %s build next to %s\n", want, self);
        return -1;
    }
    char other[PATH_MAX];
    snprintf(other, sizeof other, "%.*s/%s/tools/trace/hakmem-replay", (int)(at - self), self, want);
    if (access(other, X_OK) != 0) {
        fprintf(stderr, "hakmem-replay: %s: not built (cmake --preset %s && cmake --build --preset %s)\n", other, want, want);
        return -1;
    }
    execv(other, argv);
    fprintf(stderr, "hakmem-replay: exec %s: %s\n", other, strerror(errno));
    return -1;
}

int main(int argc, char **argv)
{
    hk_replay_opts_t o;
    hk_replay_opts_default(&o);
    const char *variant = NULL, *mode = NULL, *expect = NULL;
    long repeat = 1;
    int nofork = 0, bench = 0, salvage = 0;
    int first_file = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            first_file = i;
            break;
        }
        if (!strncmp(a, "--order=", 8)) {
            if (!strcmp(a + 8, "exact"))
                o.order = HK_ORDER_EXACT;
            else if (!strcmp(a + 8, "deps"))
                o.order = HK_ORDER_DEPS;
            else
                return usage(stderr), 2;
        } else if (!strncmp(a, "--check=", 8)) {
            if (hk_replay_parse_checks(a + 8, &o.checks) != 0) {
                fprintf(stderr, "hakmem-replay: --check: unknown word in '%s' (none, all, shadow, content, sll, heap)\n", a + 8);
                return 2;
            }
        } else if (!strncmp(a, "--learning=", 11)) {
            if (!strcmp(a + 11, "forced"))
                o.learning = HK_LEARN_FORCED;
            else if (!strcmp(a + 11, "off"))
                o.learning = HK_LEARN_OFF;
            else
                return usage(stderr), 2;
        } else if (!strncmp(a, "--mode=", 7)) {
            mode = a + 7;
        } else if (!strncmp(a, "--variant=", 10)) {
            variant = a + 10;
        } else if (!strncmp(a, "--repeat=", 9)) {
            repeat = strtol(a + 9, NULL, 10);
            if (repeat < 1)
                return usage(stderr), 2;
        } else if (!strncmp(a, "--expect=", 9)) {
            expect = a + 9;
        } else if (!strcmp(a, "--no-fork")) {
            nofork = 1;
        } else if (!strcmp(a, "--bench")) {
            bench = nofork = 1;
        } else if (!strcmp(a, "--salvage")) {
            salvage = 1;
        } else if (!strcmp(a, "--large")) {
            o.allow_large = 1;
        } else if (!strcmp(a, "--no-touch")) {
            o.touch = 0;
        } else if (!strcmp(a, "--variant-name")) {
            printf("%s\n", hak_variant());
            return 0;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "hakmem-replay: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (first_file >= argc) {
        usage(stderr);
        return 2;
    }
    if (variant && strcmp(variant, hak_variant()) != 0) {
        if (strcmp(variant, "release") && strcmp(variant, "hardened") && strcmp(variant, "debug"))
            return usage(stderr), 2;
        exec_variant(variant, argv);
        return 2;
    }
    if (mode && (!getenv("HAKMEM_MODE") || strcmp(getenv("HAKMEM_MODE"), mode) != 0)) {
        /* the mode must be in force from the library's start-up, as in the recorded process */
        setenv("HAKMEM_MODE", mode, 1);
        execv("/proc/self/exe", argv);
        fprintf(stderr, "hakmem-replay: re-exec with HAKMEM_MODE=%s: %s\n", mode, strerror(errno));
        return 2;
    }
    int all_ok = 1;
    for (int i = first_file; i < argc; i++) {
        hk_rprog_t rp;
        char err[512];
        if (hk_rprog_load(&rp, argv[i], salvage, err, sizeof err) != 0) {
            fprintf(stderr, "hakmem-replay: %s\n", err);
            return 2;
        }
        const char *want = expect ? expect : (rp.expect[0] ? rp.expect : "ok");
        printf("%s: %zu ops, %u threads, variant %s, mode %s, order %s", argv[i], rp.prog.n, rp.nthreads, hak_variant(),
               hak_mode(), o.order == HK_ORDER_DEPS ? "deps" : "exact");
        if (rp.synthesized || rp.misuse || rp.inflight)
            printf(" (%llu re-created, %llu misuse skipped, %llu in flight)", (unsigned long long)rp.synthesized,
                   (unsigned long long)rp.misuse, (unsigned long long)rp.inflight);
        printf("\n");
        fflush(stdout);
        if (nofork) {
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            hk_verify_failure_t f;
            int bad = hk_replay_run(&rp, &o, &f);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
            char sig[96];
            snprintf(sig, sizeof sig, bad ? "check:%s" : "ok", bad && f.check ? f.check : "");
            if (bad)
                hk_verify_failure_print(stdout, &f);
            int m = hk_sig_matches(want, sig);
            printf("  %s (expected %s): %s", sig, want, m ? "as expected" : "NOT as expected");
            if (bench)
                printf(", %.3f s, %.2f M ops/s", s, s > 0 ? (double)rp.prog.n / s / 1e6 : 0.0);
            printf("\n");
            all_ok &= m;
        } else {
            long match = 0;
            char first[96] = "", det[256] = "";
            for (long r = 0; r < repeat; r++) {
                char sig[96], d[256];
                if (hk_replay_forked(&rp, &o, repeat == 1, sig, sizeof sig, d, sizeof d) != 0) {
                    fprintf(stderr, "hakmem-replay: fork: %s\n", strerror(errno));
                    return 2;
                }
                if (r == 0) {
                    snprintf(first, sizeof first, "%s", sig);
                    snprintf(det, sizeof det, "%s", d);
                } else if (strcmp(sig, first) != 0) {
                    printf("  run %ld: %s (first run: %s)\n", r + 1, sig, first);
                }
                match += hk_sig_matches(want, sig);
            }
            printf("  %s (expected %s)%s%s: %ld/%ld runs as expected\n", first, want, det[0] ? " -- " : "", det, match, repeat);
            all_ok &= match == repeat;
        }
        hk_rprog_free(&rp);
    }
    return all_ok ? 0 : 1;
}
