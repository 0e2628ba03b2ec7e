/* stress/rss_cycles.c — "no leaks of whole regions": allocate about --mib MiB (a third each in tiny,
 * mid and large blocks), free it all, and repeat for --cycles cycles. With --threads 2 the blocks of
 * each thread are freed by the other one (remote frees, then thread exit), so the abandon/adopt path
 * must give the memory back too.
 *
 * Checks: every block's stamps before free; after each cycle's free phase the resident set must not
 * grow: rss_after_free[k] <= rss_after_free[1] + --slack-mib for every k > 1 (the first cycle fills
 * the bounded caches: thread caches, spare slabs, reused regions, BigCache). Prints one line per
 * cycle: peak and after-free RSS. */
#include "alloc_api.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

#if S_ALLOCATOR_PREFIXED
#include "hakmem_debug.h"
/* Linked to hakmem (sanitizer builds): process RSS is mostly the sanitizer's shadow memory, so the
 * measure is hakmem's own mapped bytes, which is exact, less the BigCache (bounded by its budget,
 * and counted whole although only the touched pages of its blocks are resident). */
static long rc_resident_kb(void) {
    hak_debug_stats_t st;
    hak_debug_stats(&st);
    return (long)((st.bytes_mapped - st.bigcache_bytes) >> 10);
}
#define RC_MEASURE "mapped by hakmem (BigCache aside)"
#else
static long rc_resident_kb(void) { return hs_rss_kb(); }
#define RC_MEASURE "RSS"
#endif

typedef struct rc_set {
    void **ptr;
    size_t *size;
    uint64_t n, cap;
} rc_set_t;

typedef struct rc_arg {
    const hs_common_t *c;
    uint64_t id, bytes, cycle;
    rc_set_t set;
} rc_arg_t;

static uint64_t rc_tag(const hs_common_t *c, uint64_t id, uint64_t cycle, uint64_t i) {
    return hs_tag(c->seed, (id << 32) ^ cycle, i);
}

/* Allocates a->bytes: a third in 16..1024 B, a third in 1..64 KiB, a third in 64 KiB..4 MiB. */
static void *rc_alloc_thread(void *arg) {
    rc_arg_t *a = arg;
    hs_rng_t r = hs_rng_make(a->c->seed, a->id, a->cycle);
    uint64_t third = a->bytes / 3;
    const uint64_t lo[3] = {16, 1025, 65537}, hi[3] = {1024, 65536, 4u << 20};
    a->set.n = 0;
    for (int band = 0; band < 3; band++) {
        for (uint64_t got = 0; got < third;) {
            size_t n = (size_t)hs_rng_range(&r, lo[band], hi[band]);
            if (a->set.n == a->set.cap) hs_fatal("bookkeeping full (%llu blocks)", (unsigned long long)a->set.cap);
            void *p = S_MALLOC(n);
            HS_CHECK_ALLOC(p, n);
            hs_stamp(p, n, rc_tag(a->c, a->id, a->cycle, a->set.n), HS_STAMP_ENDS);
            a->set.ptr[a->set.n] = p;
            a->set.size[a->set.n] = n;
            a->set.n++;
            got += n;
        }
    }
    return NULL;
}

/* Frees the blocks another thread allocated (arg: that thread's rc_arg_t). */
static void *rc_free_thread(void *arg) {
    rc_arg_t *a = arg;
    for (uint64_t i = 0; i < a->set.n; i++) {
        hs_verify(a->set.ptr[i], a->set.size[i], rc_tag(a->c, a->id, a->cycle, i), HS_STAMP_ENDS, "block", i);
        S_FREE(a->set.ptr[i]);
    }
    a->set.n = 0;
    return NULL;
}

int main(int argc, char **argv) {
    hs_common_t c;
    hs_init(&c, "rss_cycles", argc, argv);
    uint64_t mib = 1024, cycles = 5, slack = 8;
    c.threads = 1;
    if (c.short_mode) {
        mib = c.slow ? 64 : 256;
        cycles = 3;
    }
    const hs_opt_t opts[] = {
        {"mib", HS_OPT_U64, &mib, "MiB allocated per cycle, all threads together (default 1024)"},
        {"cycles", HS_OPT_U64, &cycles, "allocate/free cycles (default 5)"},
        {"slack-mib", HS_OPT_U64, &slack, "allowed growth of after-free RSS over cycle 1 (default 8)"},
        {NULL, HS_OPT_FLAG, NULL, NULL},
    };
    hs_parse(&c, argc, argv, opts);
    if (c.threads < 1 || c.threads > 64 || cycles < 2) hs_fatal("need 1..64 threads and at least 2 cycles");
    uint64_t nt = c.threads;
    rc_arg_t *args = calloc(nt, sizeof *args); /* bookkeeping from the process malloc, before the run */
    for (uint64_t t = 0; t < nt; t++) {
        args[t].c = &c;
        args[t].id = t;
        args[t].bytes = (mib << 20) / nt;
        args[t].set.cap = args[t].bytes / 3 / 520 * 2 + 4096; /* tiny band: mean 520 B */
        args[t].set.ptr = calloc(args[t].set.cap, sizeof(void *));
        args[t].set.size = calloc(args[t].set.cap, sizeof(size_t));
        if (!args[t].set.ptr || !args[t].set.size) hs_fatal("bookkeeping allocation failed");
    }
    long first_after = -1, worst_growth = 0;
    uint64_t ops = 0;
    double t0 = hs_now();
    for (uint64_t k = 1; k <= cycles; k++) {
        pthread_t th[64];
        for (uint64_t t = 0; t < nt; t++) {
            args[t].cycle = k;
            hs_thread_start(&th[t], rc_alloc_thread, &args[t]);
        }
        for (uint64_t t = 0; t < nt; t++) {
            hs_thread_join(th[t]);
            ops += args[t].set.n * 2;
        }
        long peak = rc_resident_kb();
        /* Each thread's blocks are freed by a new thread (the next one's set): remote frees into
         * slabs whose owners have exited. */
        for (uint64_t t = 0; t < nt; t++) hs_thread_start(&th[t], rc_free_thread, &args[(t + 1) % nt]);
        for (uint64_t t = 0; t < nt; t++) hs_thread_join(th[t]);
        long after = rc_resident_kb();
        if (first_after < 0) first_after = after;
        long growth = after - first_after;
        if (growth > worst_growth) worst_growth = growth;
        if (!c.bench)
            printf("rss_cycles: cycle %llu: %llu MiB allocated, %s at peak %ld KiB, after free %ld KiB (%+ld KiB vs cycle 1)\n",
                   (unsigned long long)k, (unsigned long long)mib, RC_MEASURE, peak, after, growth);
        if (growth > (long)(slack << 10))
            hs_fatal("%s after free grew by %ld KiB in cycle %llu (allowed %llu MiB): regions leak", RC_MEASURE,
                     growth, (unsigned long long)k, (unsigned long long)slack);
    }
    for (uint64_t t = 0; t < nt; t++) {
        free(args[t].set.ptr);
        free(args[t].set.size);
    }
    free(args);
    char extra[64];
    snprintf(extra, sizeof extra, " rss_growth_kb=%ld", worst_growth);
    hs_report(&c, ops, hs_now() - t0, extra);
    return 0;
}
