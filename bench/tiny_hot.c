/* bench/tiny_hot.c — the tiny-object hot path: malloc, touch, free of 16, 32 and 64 B in a loop.
 *
 * Measures one alloc+free pair at a time, the best case of a thread cache (the block freed is the
 * next one handed out). Prints ns per pair:
 *   RESULT name=tiny_hot ops=<pairs> secs=<s> mops=<pairs/s/1e6> peak_rss_kb=<k> threads=<t> ns_per_pair=<ns>
 * With --threads N every thread runs the loop on its own; ns_per_pair is then wall time per pair
 * per thread. Each block's first and last byte are written and read back, so a broken allocator
 * that hands out overlapping or unmapped memory fails rather than measuring nothing.
 */
#include "alloc_api.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

static uint64_t th_rounds = 10000000; /* 3 pairs per round */

static void *th_loop(void *arg)
{
    (void)arg;
    static const size_t sizes[3] = {16, 32, 64};
    unsigned char acc = 0;
    for (uint64_t i = 0; i < th_rounds; i++) {
        for (int k = 0; k < 3; k++) {
            size_t n = sizes[k];
            unsigned char *p = (unsigned char *)S_MALLOC(n);
            if (HS_UNLIKELY(p == NULL))
                hs_fatal("malloc(%zu) returned NULL", n);
            p[0] = (unsigned char)i;
            p[n - 1] = (unsigned char)(i >> 8);
            hs_escape(p); /* the pair must not be elided, nor the stores dropped */
            acc = (unsigned char)(acc + p[0] + p[n - 1]);
            if (HS_UNLIKELY(p[0] != (unsigned char)i || p[n - 1] != (unsigned char)(i >> 8)))
                hs_fatal("block %p of %zu bytes did not keep its contents", (void *)p, n);
            S_FREE(p);
        }
    }
    return (void *)(uintptr_t)acc;
}

int main(int argc, char **argv)
{
    hs_common_t c;
    hs_init(&c, "tiny_hot", argc, argv);
    c.threads = 1;
    if (c.short_mode)
        th_rounds = 300000;
    const hs_opt_t opts[] = {
        {"rounds", HS_OPT_U64, &th_rounds, "rounds of three pairs (default 10M, --short 300K)"},
        {NULL, HS_OPT_FLAG, NULL, NULL}};
    hs_parse(&c, argc, argv, opts);
    if (th_rounds == 0) {
        fprintf(stderr, "tiny_hot: --rounds must be > 0\n");
        return 2;
    }

    /* Warm up (first-touch of the caches) outside the timed region. */
    uint64_t saved = th_rounds;
    th_rounds = saved / 100 + 1;
    th_loop(NULL);
    th_rounds = saved;

    double t0 = hs_now();
    if (c.threads == 1) {
        th_loop(NULL);
    } else {
        pthread_t tids[c.threads];
        for (uint64_t t = 0; t < c.threads; t++)
            hs_thread_start(&tids[t], th_loop, NULL);
        for (uint64_t t = 0; t < c.threads; t++)
            hs_thread_join(tids[t]);
    }
    double secs = hs_now() - t0;
    uint64_t pairs = th_rounds * 3;

    char extra[64];
    snprintf(extra, sizeof extra, " ns_per_pair=%.3f", secs * 1e9 / (double)pairs);
    hs_report(&c, pairs * c.threads, secs, extra);
    return 0;
}
