/* stress/prodcons.c — producer-consumer (xmalloc-test style): every block is freed by another thread.
 *
 * Producers allocate blocks of random size in [min, max], stamp them, and pass them in batches
 * (themselves heap blocks, also freed by the consumer) through a bounded lock-free MPMC queue.
 * Consumers check each block against a tag they recompute from (producer, sequence number) and
 * free it. At the end the sum of tags consumed must equal the sum produced, per producer, so a
 * block lost, duplicated or handed out twice shows up even if its contents look right.
 *
 * --threads N splits into N/2 producers and N - N/2 consumers (at least one each), or set
 * --producers / --consumers. The benchmark's figure is M frees/s (ops = blocks freed).
 */
#include "alloc_api.h"
#include "common.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

/* A batch carries only pointers (as xmalloc-test's does): the consumer recomputes each block's
 * size and tag from (producer, batch index), so nothing the consumer trusts came through the heap
 * except the block pointers themselves. */
typedef struct pc_batch {
    uint32_t n;
    uint32_t producer;
    uint64_t index; /* the producer's batch number */
    void *obj[];
} pc_batch_t;

static hs_common_t pc_c;
static uint64_t pc_min = 16, pc_max = 1024, pc_items = 4000000, pc_batch = 64;

/* Sizes of one batch's blocks come from a stream of their own, so producer and consumer agree. */
static inline hs_rng_t pc_batch_rng(uint64_t producer, uint64_t index)
{
    return hs_rng_make(pc_c.seed ^ 0x50524F44ull /* "PROD" */, producer, index);
}

/* ------------------------------------------------------------------------------------------------
 * Bounded MPMC queue (Vyukov): each cell's sequence number says whether it is ready for the
 * producer at position pos (seq == pos) or for the consumer (seq == pos + 1). What must hold: the
 * data store happens before the release-store of seq, and the consumer reads data only after an
 * acquire-load of that seq. */
typedef struct pc_cell {
    atomic_size_t seq;
    pc_batch_t *data;
} pc_cell_t;

typedef struct pc_queue {
    pc_cell_t *cells;
    size_t mask;
    _Alignas(64) atomic_size_t enq;
    _Alignas(64) atomic_size_t deq;
} pc_queue_t;

static void pc_queue_init(pc_queue_t *q, size_t cap_pow2)
{
    q->cells = (pc_cell_t *)S_MALLOC(cap_pow2 * sizeof *q->cells);
    HS_CHECK_ALLOC(q->cells, cap_pow2 * sizeof *q->cells);
    for (size_t i = 0; i < cap_pow2; i++) {
        atomic_init(&q->cells[i].seq, i);
        q->cells[i].data = NULL;
    }
    q->mask = cap_pow2 - 1;
    atomic_init(&q->enq, 0);
    atomic_init(&q->deq, 0);
}

static int pc_queue_push(pc_queue_t *q, pc_batch_t *b)
{
    size_t pos = atomic_load_explicit(&q->enq, memory_order_relaxed);
    for (;;) {
        pc_cell_t *cell = &q->cells[pos & q->mask];
        size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->enq, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                cell->data = b;
                atomic_store_explicit(&cell->seq, pos + 1, memory_order_release);
                return 1;
            }
        } else if (dif < 0) {
            return 0; /* full */
        } else {
            pos = atomic_load_explicit(&q->enq, memory_order_relaxed);
        }
    }
}

static pc_batch_t *pc_queue_pop(pc_queue_t *q)
{
    size_t pos = atomic_load_explicit(&q->deq, memory_order_relaxed);
    for (;;) {
        pc_cell_t *cell = &q->cells[pos & q->mask];
        size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)(pos + 1);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->deq, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                pc_batch_t *b = cell->data;
                atomic_store_explicit(&cell->seq, pos + q->mask + 1, memory_order_release);
                return b;
            }
        } else if (dif < 0) {
            return NULL; /* empty */
        } else {
            pos = atomic_load_explicit(&q->deq, memory_order_relaxed);
        }
    }
}

/* Waiting: spin briefly, then yield (there may be more threads than cores). */
static void pc_backoff(unsigned *spins)
{
    if (++*spins < 64)
        hs_cpu_relax();
    else
        sched_yield();
}

/* ------------------------------------------------------------------------------------------------ */

static uint64_t pc_nprod, pc_ncons;
static pc_queue_t pc_q;
static atomic_uint_fast64_t pc_prod_done;
/* Per producer: sum of tags produced / consumed (wrapping). Consumed sums are added atomically. */
static uint64_t *pc_sum_prod;
static _Atomic uint64_t *pc_sum_cons;
static _Atomic uint64_t *pc_cnt_cons;

static void *pc_producer(void *arg)
{
    const uint64_t id = (uint64_t)(uintptr_t)arg;
    uint64_t sum = 0, seq = 0;
    for (uint64_t index = 0; seq < pc_items; index++) {
        uint64_t n = pc_items - seq < pc_batch ? pc_items - seq : pc_batch;
        size_t bsz = sizeof(pc_batch_t) + n * sizeof(void *);
        pc_batch_t *b = (pc_batch_t *)S_MALLOC(bsz);
        HS_CHECK_ALLOC(b, bsz);
        b->n = (uint32_t)n;
        b->producer = (uint32_t)id;
        b->index = index;
        hs_rng_t rng = pc_batch_rng(id, index);
        for (uint64_t i = 0; i < n; i++, seq++) {
            uint64_t sz = hs_rng_range(&rng, pc_min, pc_max);
            void *p = S_MALLOC(sz);
            HS_CHECK_ALLOC(p, sz);
            uint64_t tag = hs_tag(pc_c.seed, id, seq);
            hs_stamp(p, sz, tag, pc_c.stamp);
            b->obj[i] = p;
            sum += tag;
        }
        unsigned spins = 0;
        while (!pc_queue_push(&pc_q, b))
            pc_backoff(&spins);
    }
    pc_sum_prod[id] = sum; /* published to main by the join */
    atomic_fetch_add_explicit(&pc_prod_done, 1, memory_order_release);
    return NULL;
}

static void *pc_consumer(void *arg)
{
    (void)arg;
    /* Local tallies, added to the shared ones once at the end (no contention in the loop). */
    uint64_t *sum = (uint64_t *)S_CALLOC(pc_nprod, sizeof *sum);
    uint64_t *cnt = (uint64_t *)S_CALLOC(pc_nprod, sizeof *cnt);
    HS_CHECK_ALLOC(sum, pc_nprod * sizeof *sum);
    HS_CHECK_ALLOC(cnt, pc_nprod * sizeof *cnt);
    unsigned spins = 0;
    for (;;) {
        /* Read "all producers done" BEFORE trying the queue: if it was true then, a failed pop
         * means the queue is drained for good (every push happened before its producer's done). */
        int done = atomic_load_explicit(&pc_prod_done, memory_order_acquire) == pc_nprod;
        pc_batch_t *b = pc_queue_pop(&pc_q);
        if (b == NULL) {
            if (done)
                break;
            pc_backoff(&spins);
            continue;
        }
        spins = 0;
        if (b->producer >= pc_nprod || b->n == 0 || b->n > pc_batch ||
            b->index * pc_batch + b->n > pc_items)
            hs_fatal("corrupt batch %p: producer=%u n=%u index=%llu", (void *)b, b->producer, b->n,
                     (unsigned long long)b->index);
        const uint64_t id = b->producer;
        hs_rng_t rng = pc_batch_rng(id, b->index);
        for (uint32_t i = 0; i < b->n; i++) {
            uint64_t seq = b->index * pc_batch + i;
            uint64_t sz = hs_rng_range(&rng, pc_min, pc_max);
            uint64_t tag = hs_tag(pc_c.seed, id, seq);
            hs_verify(b->obj[i], sz, tag, pc_c.stamp, "seq", seq);
            S_FREE(b->obj[i]);
            sum[id] += tag;
            cnt[id]++;
        }
        S_FREE(b);
    }
    for (uint64_t i = 0; i < pc_nprod; i++) {
        atomic_fetch_add_explicit(&pc_sum_cons[i], sum[i], memory_order_relaxed);
        atomic_fetch_add_explicit(&pc_cnt_cons[i], cnt[i], memory_order_relaxed);
    }
    S_FREE(sum);
    S_FREE(cnt);
    return NULL;
}

int main(int argc, char **argv)
{
    hs_init(&pc_c, "prodcons", argc, argv);
    if (pc_c.short_mode)
        pc_items = pc_c.slow ? 50000 : 1000000;
    uint64_t qcap = 256;
    const hs_opt_t opts[] = {
        {"min", HS_OPT_U64, &pc_min, "smallest block (default 16)"},
        {"max", HS_OPT_U64, &pc_max, "largest block (default 1024)"},
        {"items", HS_OPT_U64, &pc_items, "blocks per producer (default 4M, --short 1M)"},
        {"batch", HS_OPT_U64, &pc_batch, "blocks per queue entry (default 64)"},
        {"queue", HS_OPT_U64, &qcap, "queue capacity in batches, a power of two (default 256)"},
        {"producers", HS_OPT_U64, &pc_nprod, "producer threads (default threads/2, at least 1)"},
        {"consumers", HS_OPT_U64, &pc_ncons, "consumer threads (default the rest, at least 1)"},
        {NULL, HS_OPT_FLAG, NULL, NULL}};
    hs_parse(&pc_c, argc, argv, opts);
    if (pc_min == 0 || pc_max < pc_min || pc_max > UINT32_MAX || pc_batch == 0 ||
        pc_batch > UINT32_MAX || qcap < 2 || (qcap & (qcap - 1)) != 0 || pc_items == 0) {
        fprintf(stderr, "prodcons: need 0 < min <= max, batch > 0, items > 0, queue a power of two\n");
        return 2;
    }
    if (pc_nprod == 0)
        pc_nprod = pc_c.threads / 2 > 0 ? pc_c.threads / 2 : 1;
    if (pc_ncons == 0)
        pc_ncons = pc_c.threads > pc_nprod ? pc_c.threads - pc_nprod : 1;
    if (pc_nprod > 1024 || pc_ncons > 1024) {
        fprintf(stderr, "prodcons: at most 1024 producers and 1024 consumers\n");
        return 2;
    }
    pc_c.threads = pc_nprod + pc_ncons;

    pc_queue_init(&pc_q, qcap);
    pc_sum_prod = (uint64_t *)S_CALLOC(pc_nprod, sizeof *pc_sum_prod);
    pc_sum_cons = (_Atomic uint64_t *)S_CALLOC(pc_nprod, sizeof *pc_sum_cons);
    pc_cnt_cons = (_Atomic uint64_t *)S_CALLOC(pc_nprod, sizeof *pc_cnt_cons);
    HS_CHECK_ALLOC(pc_sum_prod, pc_nprod * 8);
    HS_CHECK_ALLOC(pc_sum_cons, pc_nprod * 8);
    HS_CHECK_ALLOC(pc_cnt_cons, pc_nprod * 8);
    for (uint64_t i = 0; i < pc_nprod; i++) {
        atomic_init(&pc_sum_cons[i], 0);
        atomic_init(&pc_cnt_cons[i], 0);
    }

    pthread_t tids[pc_nprod + pc_ncons];
    double t0 = hs_now();
    for (uint64_t i = 0; i < pc_ncons; i++)
        hs_thread_start(&tids[pc_nprod + i], pc_consumer, NULL);
    for (uint64_t i = 0; i < pc_nprod; i++)
        hs_thread_start(&tids[i], pc_producer, (void *)(uintptr_t)i);
    for (uint64_t i = 0; i < pc_nprod + pc_ncons; i++)
        hs_thread_join(tids[i]);
    double secs = hs_now() - t0;

    for (uint64_t i = 0; i < pc_nprod; i++) {
        uint64_t cnt = atomic_load(&pc_cnt_cons[i]), sum = atomic_load(&pc_sum_cons[i]);
        if (cnt != pc_items || sum != pc_sum_prod[i])
            hs_fatal("producer %llu: consumed %llu blocks (tag sum 0x%llx), produced %llu (0x%llx)",
                     (unsigned long long)i, (unsigned long long)cnt, (unsigned long long)sum,
                     (unsigned long long)pc_items, (unsigned long long)pc_sum_prod[i]);
    }
    if (pc_queue_pop(&pc_q) != NULL)
        hs_fatal("queue not empty after all consumers finished");
    S_FREE(pc_q.cells);
    S_FREE(pc_sum_prod);
    S_FREE((void *)pc_sum_cons);
    S_FREE((void *)pc_cnt_cons);

    char extra[128];
    snprintf(extra, sizeof extra, " producers=%llu consumers=%llu min=%llu max=%llu",
             (unsigned long long)pc_nprod, (unsigned long long)pc_ncons, (unsigned long long)pc_min,
             (unsigned long long)pc_max);
    hs_report(&pc_c, pc_items * pc_nprod, secs, extra);
    return 0;
}
