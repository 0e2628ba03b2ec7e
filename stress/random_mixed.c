/* stress/random_mixed.c — the "Mixed WS=400" workload: ws slots, sizes uniform in [min, max], each
 * step frees the chosen slot if occupied and allocates a new random size. With --threads N every
 * thread runs its own independent working set (same-thread alloc and free only).
 *
 * Checks: every block's stamps before it is freed, calloc'ed bookkeeping is zero, and
 * malloc_usable_size >= requested on a sample of blocks.
 *
 * --trim-every N calls malloc_trim(0) every N steps of each thread: hakmem then gives back the free
 * tails of the thread's slabs and rebuilds their free lists in address order while the working set
 * is live, and the stamps check that no live block was touched or handed out twice.
 *
 * --inject-corruption S is the checker's own test: after step S, thread 0 flips one byte inside
 * a live block (a legal write, as a stray pointer of the program would do); the run must then
 * fail with "FAIL corrupt block". ctest runs it so a checker that stopped checking is noticed.
 */
#include "alloc_api.h"
#include "common.h"
#include "mixed.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct rm_arg {
    const hs_common_t *c;
    uint64_t id, ws, min, max, steps;
    uint64_t inject_at; /* 0: never */
    uint64_t trim_every; /* 0: never */
} rm_arg_t;

static void rm_inject(hs_mixed_t *m)
{
    for (uint64_t i = 0; i < m->ws; i++) {
        unsigned char *p = (unsigned char *)m->ptr[i];
        if (p != NULL) {
            p[m->size[i] / 2] ^= 0x40;
            return;
        }
    }
}

static void *rm_thread(void *arg)
{
    rm_arg_t *a = (rm_arg_t *)arg;
    hs_mixed_t m;
    hs_mixed_init(&m, a->c->seed, a->id, a->ws, a->min, a->max, a->c->stamp, !a->c->bench);
    for (uint64_t s = 0; s < a->steps; s++) {
        hs_mixed_step(&m);
        if (HS_UNLIKELY(a->trim_every != 0 && (s + 1) % a->trim_every == 0))
            (void)S_MALLOC_TRIM(0);
        if (HS_UNLIKELY(s + 1 == a->inject_at) && a->id == 0)
            rm_inject(&m);
    }
    hs_mixed_destroy(&m);
    return NULL;
}

int main(int argc, char **argv)
{
    hs_common_t c;
    hs_init(&c, "random_mixed", argc, argv);
    uint64_t ws = 400, min = 16, max = 1024, steps = 20000000, inject = 0, trim = 0;
    c.threads = 1;
    if (c.short_mode)
        steps = c.slow ? 200000 : 2000000;
    const hs_opt_t opts[] = {
        {"ws", HS_OPT_U64, &ws, "working-set slots (default 400)"},
        {"min", HS_OPT_U64, &min, "smallest block size (default 16)"},
        {"max", HS_OPT_U64, &max, "largest block size (default 1024)"},
        {"steps", HS_OPT_U64, &steps, "steps per thread (default 20M, --short 2M)"},
        {"trim-every", HS_OPT_U64, &trim, "call malloc_trim(0) every N steps of each thread (default never)"},
        {"inject-corruption", HS_OPT_U64, &inject, "self-test: corrupt a live block after this step"},
        {NULL, HS_OPT_FLAG, NULL, NULL}};
    hs_parse(&c, argc, argv, opts);
    if (ws == 0 || min == 0 || max < min || max > UINT32_MAX) {
        fprintf(stderr, "random_mixed: need ws > 0 and 0 < min <= max < 4 GiB\n");
        return 2;
    }

    rm_arg_t args[c.threads];
    pthread_t tids[c.threads];
    double t0 = hs_now();
    if (c.threads == 1) {
        /* The reference numbers are single-threaded: keep the measured loop on the main thread. */
        args[0] = (rm_arg_t){&c, 0, ws, min, max, steps, inject, trim};
        rm_thread(&args[0]);
    } else {
        for (uint64_t t = 0; t < c.threads; t++) {
            args[t] = (rm_arg_t){&c, t, ws, min, max, steps, inject, trim};
            hs_thread_start(&tids[t], rm_thread, &args[t]);
        }
        for (uint64_t t = 0; t < c.threads; t++)
            hs_thread_join(tids[t]);
    }
    double secs = hs_now() - t0;

    char extra[96];
    snprintf(extra, sizeof extra, " ws=%llu min=%llu max=%llu", (unsigned long long)ws,
             (unsigned long long)min, (unsigned long long)max);
    hs_report(&c, steps * c.threads, secs, extra);
    return 0;
}
