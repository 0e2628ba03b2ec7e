/* stress/larson.c — server-style cross-thread churn (the Larson benchmark as in mimalloc-bench).
 *
 * There are --threads lineages. Each owns an array of --slots blocks, initially allocated by the
 * main thread (so the first frees are cross-thread). A lineage's thread does --rounds x --slots
 * steps (free a random slot after checking its stamps, allocate a random size in [min, max] into
 * it), then starts a NEW thread, hands it the array and exits; the new thread joins its
 * predecessor and continues. Blocks therefore outlive the threads that allocated them and are
 * freed by a later thread: the allocator's remote-free and abandoned-heap paths carry the load.
 *
 * A lineage ends after --generations handoffs, or when --seconds elapse (time mode, used by the
 * benchmark; then the operation count depends on speed but every operation is still checked).
 * In generation mode the whole operation sequence of every lineage is fixed by --seed.
 *
 * --trim-every N: each thread calls malloc_trim(0) every N steps, so slab tails are trimmed while
 * other threads free blocks of those slabs remotely (and ThreadSanitizer builds watch the two).
 */
#include "alloc_api.h"
#include "common.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct lz_lineage {
    uint64_t id;
    void **ptr;       /* the slots */
    uint64_t *tag;
    uint32_t *size;
    hs_rng_t rng;     /* travels with the array: the sequence does not depend on which thread runs */
    uint64_t seq;     /* allocations done so far: part of each block's tag */
    uint64_t gen;     /* threads that have run this lineage */
    uint64_t ops;
    pthread_t prev;   /* predecessor to join, valid when has_prev */
    int has_prev;
    /* Completion, under lz_done_mu. */
    int done;
    pthread_t last;
} lz_lineage_t;

static hs_common_t lz_c;
static uint64_t lz_min = 8, lz_max = 1000, lz_slots = 5000, lz_rounds = 100, lz_generations = 10, lz_trim = 0;
static double lz_seconds = 0; /* > 0: time mode */
static atomic_int lz_stop;
static pthread_mutex_t lz_done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lz_done_cv = PTHREAD_COND_INITIALIZER;
static uint64_t lz_ndone;

static void lz_fill(lz_lineage_t *L, uint64_t v)
{
    uint64_t n = hs_rng_range(&L->rng, lz_min, lz_max);
    void *p = S_MALLOC(n);
    HS_CHECK_ALLOC(p, n);
    uint64_t tag = hs_tag(lz_c.seed, (L->id << 32) ^ v, L->seq++);
    hs_stamp(p, n, tag, lz_c.stamp);
    L->ptr[v] = p;
    L->tag[v] = tag;
    L->size[v] = (uint32_t)n;
}

static void lz_release(lz_lineage_t *L, uint64_t v)
{
    hs_verify(L->ptr[v], L->size[v], L->tag[v], lz_c.stamp, "slot", (L->id << 32) | v);
    S_FREE(L->ptr[v]);
    L->ptr[v] = NULL;
}

static void *lz_thread(void *arg)
{
    lz_lineage_t *L = (lz_lineage_t *)arg;
    if (L->has_prev)
        hs_thread_join(L->prev); /* it touched nothing after starting us; its exit is part of the test */
    const uint64_t steps = lz_rounds * lz_slots;
    uint64_t k = 0;
    for (; k < steps; k++) {
        if ((k & 255) == 0 && atomic_load_explicit(&lz_stop, memory_order_relaxed))
            break;
        uint64_t v = hs_rng_below(&L->rng, lz_slots);
        lz_release(L, v);
        lz_fill(L, v);
        if (lz_trim != 0 && (k + 1) % lz_trim == 0)
            (void)S_MALLOC_TRIM(0);
    }
    L->ops += k;
    L->gen++;
    int more = lz_seconds > 0 ? !atomic_load_explicit(&lz_stop, memory_order_relaxed)
                              : L->gen < lz_generations;
    if (more) {
        /* Hand the array to a new thread. After hs_thread_start the new thread owns L. */
        L->prev = pthread_self();
        L->has_prev = 1;
        pthread_t next;
        hs_thread_start(&next, lz_thread, L);
        return NULL;
    }
    pthread_mutex_lock(&lz_done_mu);
    L->last = pthread_self();
    L->done = 1;
    lz_ndone++;
    pthread_cond_broadcast(&lz_done_cv);
    pthread_mutex_unlock(&lz_done_mu);
    return NULL;
}

int main(int argc, char **argv)
{
    hs_init(&lz_c, "larson", argc, argv);
    if (lz_c.short_mode) {
        lz_slots = lz_c.slow ? 500 : 1000;
        lz_rounds = lz_c.slow ? 10 : 20;
        lz_generations = lz_c.slow ? 8 : 100;
    }
    const hs_opt_t opts[] = {
        {"min", HS_OPT_U64, &lz_min, "smallest block (default 8)"},
        {"max", HS_OPT_U64, &lz_max, "largest block (default 1000)"},
        {"slots", HS_OPT_U64, &lz_slots, "blocks per lineage (default 5000)"},
        {"rounds", HS_OPT_U64, &lz_rounds, "steps per thread = rounds x slots (default 100)"},
        {"generations", HS_OPT_U64, &lz_generations, "threads per lineage (default 10)"},
        {"trim-every", HS_OPT_U64, &lz_trim, "call malloc_trim(0) every N steps of each thread (default never)"},
        {"seconds", HS_OPT_DOUBLE, &lz_seconds, "time mode: run this long instead of --generations"},
        {NULL, HS_OPT_FLAG, NULL, NULL}};
    hs_parse(&lz_c, argc, argv, opts);
    if (lz_min == 0 || lz_max < lz_min || lz_max > UINT32_MAX || lz_slots == 0 || lz_rounds == 0 ||
        lz_generations == 0 || lz_slots > UINT32_MAX) {
        fprintf(stderr, "larson: need 0 < min <= max, slots, rounds, generations > 0\n");
        return 2;
    }

    const uint64_t nl = lz_c.threads;
    lz_lineage_t *lines = (lz_lineage_t *)S_CALLOC(nl, sizeof *lines);
    HS_CHECK_ALLOC(lines, nl * sizeof *lines);
    /* Warm-up as in the original: the main thread allocates every lineage's blocks. */
    for (uint64_t l = 0; l < nl; l++) {
        lz_lineage_t *L = &lines[l];
        L->id = l;
        L->rng = hs_rng_make(lz_c.seed, 0x4C415253ull /* "LARS" */, l);
        L->ptr = (void **)S_MALLOC(lz_slots * sizeof *L->ptr);
        L->tag = (uint64_t *)S_MALLOC(lz_slots * sizeof *L->tag);
        L->size = (uint32_t *)S_MALLOC(lz_slots * sizeof *L->size);
        HS_CHECK_ALLOC(L->ptr, lz_slots * sizeof *L->ptr);
        HS_CHECK_ALLOC(L->tag, lz_slots * sizeof *L->tag);
        HS_CHECK_ALLOC(L->size, lz_slots * sizeof *L->size);
        for (uint64_t v = 0; v < lz_slots; v++)
            lz_fill(L, v);
    }

    double t0 = hs_now();
    for (uint64_t l = 0; l < nl; l++) {
        pthread_t t;
        hs_thread_start(&t, lz_thread, &lines[l]);
    }
    if (lz_seconds > 0) {
        struct timespec ts = {(time_t)lz_seconds, (long)((lz_seconds - (double)(time_t)lz_seconds) * 1e9)};
        while (nanosleep(&ts, &ts) != 0)
            ;
        atomic_store(&lz_stop, 1);
    }
    pthread_mutex_lock(&lz_done_mu);
    while (lz_ndone < nl)
        pthread_cond_wait(&lz_done_cv, &lz_done_mu);
    pthread_mutex_unlock(&lz_done_mu);
    double secs = hs_now() - t0;

    uint64_t ops = 0, gens = 0;
    for (uint64_t l = 0; l < nl; l++) {
        lz_lineage_t *L = &lines[l];
        hs_thread_join(L->last);
        ops += L->ops;
        gens += L->gen;
        if (lz_seconds <= 0 && L->gen != lz_generations)
            hs_fatal("lineage %llu ran %llu generations, expected %llu", (unsigned long long)l,
                     (unsigned long long)L->gen, (unsigned long long)lz_generations);
        /* The main thread frees what the last generation left: cross-thread once more. */
        for (uint64_t v = 0; v < lz_slots; v++)
            lz_release(L, v);
        S_FREE(L->ptr);
        S_FREE(L->tag);
        S_FREE(L->size);
    }
    S_FREE(lines);

    char extra[128];
    snprintf(extra, sizeof extra, " threads_created=%llu slots=%llu min=%llu max=%llu",
             (unsigned long long)gens, (unsigned long long)lz_slots, (unsigned long long)lz_min,
             (unsigned long long)lz_max);
    hs_report(&lz_c, ops, secs, extra);
    return 0;
}
