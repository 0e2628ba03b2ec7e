/* stress/thread_churn.c — thousands of short-lived threads.
 *
 * --threads lanes run side by side. Each lane starts --spawns worker threads one after another
 * (start, join, start the next). A worker:
 *   1. checks and frees the --carry blocks its predecessor left it (allocated by a thread that has
 *      exited: the allocator must have handed that thread's heap back, or still find it);
 *   2. runs --ops random alloc/free steps on a small local working set, mostly tiny sizes, some mid,
 *      rarely large;
 *   3. swaps a few blocks with a process-wide exchange (so blocks also die on other lanes' threads);
 *   4. leaves --carry blocks for its successor, frees the rest, and exits.
 * Every block is stamped; every free is preceded by a stamp check. The lane's operation sequence is
 * fixed by --seed; which exchange blocks a worker meets depends on timing, but each exchange entry
 * carries its own size and tag, so checking stays exact.
 */
#include "alloc_api.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct tc_block {
    void *p;
    uint64_t tag;
    uint32_t size;
} tc_block_t;

typedef struct tc_lane {
    uint64_t id;
    uint64_t worker; /* index of the current worker within the lane */
    hs_rng_t rng;    /* travels from worker to worker */
    uint64_t seq;
    tc_block_t *carry;
    uint64_t ops;
} tc_lane_t;

#define TC_LOCAL 48
#define TC_EXCHANGE 64

static hs_common_t tc_c;
static uint64_t tc_spawns = 5000, tc_ops = 200, tc_carry = 16;
static pthread_mutex_t tc_xmu = PTHREAD_MUTEX_INITIALIZER;
static tc_block_t tc_xchg[TC_EXCHANGE]; /* under tc_xmu */

/* Sizes: 15/16 tiny (8..512), 1/16 mid (513..16 KiB) of which 1/16 large (64..256 KiB). */
static uint64_t tc_size(hs_rng_t *r)
{
    uint64_t k = hs_rng_below(r, 256);
    if (k == 0)
        return hs_rng_range(r, 64 << 10, 256 << 10);
    if (k < 16)
        return hs_rng_range(r, 513, 16 << 10);
    return hs_rng_range(r, 8, 512);
}

static void tc_alloc(tc_lane_t *L, tc_block_t *b, uint64_t n)
{
    b->p = S_MALLOC(n);
    HS_CHECK_ALLOC(b->p, n);
    b->size = (uint32_t)n;
    b->tag = hs_tag(tc_c.seed, L->id, L->seq++);
    hs_stamp(b->p, n, b->tag, tc_c.stamp);
}

static void tc_release(tc_block_t *b)
{
    if (b->p == NULL)
        return;
    hs_verify(b->p, b->size, b->tag, tc_c.stamp, "tag", b->tag);
    S_FREE(b->p);
    b->p = NULL;
}

static void *tc_worker(void *arg)
{
    tc_lane_t *L = (tc_lane_t *)arg;
    uint64_t ops = 0;
    /* 1. What the predecessor left. */
    for (uint64_t i = 0; i < tc_carry; i++, ops++)
        tc_release(&L->carry[i]);
    /* 2. Local churn. */
    tc_block_t local[TC_LOCAL];
    memset(local, 0, sizeof local);
    for (uint64_t k = 0; k < tc_ops; k++, ops++) {
        tc_block_t *b = &local[hs_rng_below(&L->rng, TC_LOCAL)];
        tc_release(b);
        tc_alloc(L, b, tc_size(&L->rng));
    }
    /* 3. Swap a few blocks with the exchange (a slot may be empty: then this worker just deposits). */
    for (int k = 0; k < 4; k++) {
        tc_block_t *b = &local[hs_rng_below(&L->rng, TC_LOCAL)];
        if (b->p == NULL)
            continue;
        uint64_t x = hs_rng_below(&L->rng, TC_EXCHANGE);
        pthread_mutex_lock(&tc_xmu);
        tc_block_t old = tc_xchg[x];
        tc_xchg[x] = *b;
        pthread_mutex_unlock(&tc_xmu);
        *b = old;
        tc_release(b);
        ops++;
    }
    /* 4. Leave blocks for the successor (new ones if the local set is sparse), free the rest. */
    uint64_t c = 0;
    for (int i = 0; i < TC_LOCAL && c < tc_carry; i++)
        if (local[i].p != NULL) {
            L->carry[c++] = local[i];
            local[i].p = NULL;
        }
    for (; c < tc_carry; c++, ops++)
        tc_alloc(L, &L->carry[c], tc_size(&L->rng));
    for (int i = 0; i < TC_LOCAL; i++)
        if (local[i].p != NULL) {
            tc_release(&local[i]);
            ops++;
        }
    L->ops += ops;
    return NULL;
}

static void *tc_lane_main(void *arg)
{
    tc_lane_t *L = (tc_lane_t *)arg;
    for (L->worker = 0; L->worker < tc_spawns; L->worker++) {
        pthread_t t;
        hs_thread_start(&t, tc_worker, L);
        hs_thread_join(t);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    hs_init(&tc_c, "thread_churn", argc, argv);
    if (tc_c.short_mode)
        tc_spawns = tc_c.slow ? (HS_TSAN ? 60 : 150) : 2000;
    const hs_opt_t opts[] = {
        {"spawns", HS_OPT_U64, &tc_spawns, "worker threads started per lane (default 5000, --short 2000)"},
        {"ops", HS_OPT_U64, &tc_ops, "alloc/free steps per worker (default 200)"},
        {"carry", HS_OPT_U64, &tc_carry, "blocks each worker leaves to its successor (default 16)"},
        {NULL, HS_OPT_FLAG, NULL, NULL}};
    hs_parse(&tc_c, argc, argv, opts);
    if (tc_spawns == 0 || tc_carry > 4096) {
        fprintf(stderr, "thread_churn: need spawns > 0 and carry <= 4096\n");
        return 2;
    }

    const uint64_t nl = tc_c.threads;
    tc_lane_t *lanes = (tc_lane_t *)S_CALLOC(nl, sizeof *lanes);
    HS_CHECK_ALLOC(lanes, nl * sizeof *lanes);
    pthread_t *tids = (pthread_t *)S_CALLOC(nl, sizeof *tids);
    HS_CHECK_ALLOC(tids, nl * sizeof *tids);
    for (uint64_t l = 0; l < nl; l++) {
        lanes[l].id = l;
        lanes[l].rng = hs_rng_make(tc_c.seed, 0x43485552ull /* "CHUR" */, l);
        lanes[l].carry = (tc_block_t *)S_CALLOC(tc_carry > 0 ? tc_carry : 1, sizeof(tc_block_t));
        HS_CHECK_ALLOC(lanes[l].carry, tc_carry * sizeof(tc_block_t));
    }

    double t0 = hs_now();
    for (uint64_t l = 0; l < nl; l++)
        hs_thread_start(&tids[l], tc_lane_main, &lanes[l]);
    for (uint64_t l = 0; l < nl; l++)
        hs_thread_join(tids[l]);
    double secs = hs_now() - t0;

    uint64_t ops = 0;
    for (uint64_t l = 0; l < nl; l++) {
        for (uint64_t i = 0; i < tc_carry; i++)
            tc_release(&lanes[l].carry[i]);
        ops += lanes[l].ops;
        S_FREE(lanes[l].carry);
    }
    for (int x = 0; x < TC_EXCHANGE; x++)
        tc_release(&tc_xchg[x]);
    S_FREE(lanes);
    S_FREE(tids);

    char extra[96];
    snprintf(extra, sizeof extra, " threads_created=%llu spawns_per_s=%.0f",
             (unsigned long long)(nl * tc_spawns), secs > 0 ? (double)(nl * tc_spawns) / secs : 0.0);
    hs_report(&tc_c, ops, secs, extra);
    return 0;
}
