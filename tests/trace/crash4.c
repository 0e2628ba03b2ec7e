/* crash4: a 4-thread program for the trace tests. Each thread allocates blocks of random sizes, fills
 * them with its data (as a program does: the bytes land where a free list keeps its links), frees some,
 * and hands others to the next thread through a small locked queue (cross-thread frees, so blocks come
 * back through remote frees and drains). On a correct allocator it finishes and exits 0; on the trace
 * tests' mutant (a refill that hands blocks out twice) it crashes inside the allocator.
 *
 *   crash4 [rounds]   (default 2000 bursts per thread; seeded PRNG per thread)
 * The tests run it with HAKMEM_TINY_CAP_PCT=1 (caches of 2-3 blocks): the flush/refill cycle that the
 * mutant breaks then comes every few ops, so the minimized reproducer is short.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

#define NT 4
#define BURST 400
#define WARM 100
#define QCAP 1024

typedef struct queue {
    pthread_mutex_t lock;
    void *item[QCAP];
    unsigned n;
} queue_t;

static queue_t q[NT];
static pthread_barrier_t start; /* the four threads run together from their first op */
static unsigned long rounds = 2000;

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void *worker(void *arg)
{
    unsigned me = (unsigned)(uintptr_t)arg;
    uint64_t s = 0x1234 + me;
    void *burst[BURST];
    /* warm-up: every thread holds some blocks before any churn (and the trace shows all four) */
    void *warm[WARM];
    for (unsigned i = 0; i < WARM; i++) {
        size_t n = 24 + (size_t)(next(&s) % 1000);
        warm[i] = hak_malloc(n);
        if (warm[i])
            memset(warm[i], 0x33, n);
    }
    pthread_barrier_wait(&start);
    queue_t *nq = &q[(me + 1) % NT]; /* the warm blocks are the next thread's to free */
    pthread_mutex_lock(&nq->lock);
    for (unsigned i = 0; i < WARM; i++)
        nq->item[nq->n++] = warm[i];
    pthread_mutex_unlock(&nq->lock);
    for (unsigned long r = 0; r < rounds; r++) {
        /* a burst of one size class, more blocks than the thread cache keeps: freeing them flushes the
         * cache back to the slabs, and the next burst refills from the slabs' free lists */
        size_t base = (size_t)16 << (next(&s) % 5); /* 16 .. 256 */
        for (unsigned i = 0; i < BURST; i++) {
            size_t n = base + (size_t)(next(&s) % base);
            unsigned char *p = hak_malloc(n);
            if (!p) {
                fprintf(stderr, "crash4: malloc(%zu) failed\n", n);
                abort();
            }
            memset(p, 0x5a + (int)me, n); /* the program's data: non-canonical as an address */
            burst[i] = p;
        }
        queue_t *o = &q[(me + 1) % NT];
        pthread_mutex_lock(&o->lock);
        for (unsigned i = 0; i < BURST; i += 4) /* every 4th block is freed by the next thread */
            if (o->n < QCAP) {
                o->item[o->n++] = burst[i];
                burst[i] = NULL;
            }
        pthread_mutex_unlock(&o->lock);
        for (unsigned i = 0; i < BURST; i++)
            hak_free(burst[i]);
        pthread_mutex_lock(&q[me].lock); /* free what the previous thread handed over */
        unsigned m = q[me].n;
        void *got[QCAP];
        memcpy(got, q[me].item, m * sizeof got[0]);
        q[me].n = 0;
        pthread_mutex_unlock(&q[me].lock);
        for (unsigned i = 0; i < m; i++)
            hak_free(got[i]);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        rounds = strtoul(argv[1], NULL, 10);
    pthread_t th[NT];
    for (unsigned t = 0; t < NT; t++)
        pthread_mutex_init(&q[t].lock, NULL);
    pthread_barrier_init(&start, NULL, NT);
    for (unsigned t = 0; t < NT; t++)
        if (pthread_create(&th[t], NULL, worker, (void *)(uintptr_t)t) != 0) {
            perror("pthread_create");
            return 2;
        }
    for (unsigned t = 0; t < NT; t++)
        pthread_join(th[t], NULL);
    for (unsigned t = 0; t < NT; t++)
        for (unsigned i = 0; i < q[t].n; i++)
            hak_free(q[t].item[i]);
    printf("crash4: %lu rounds on %d threads finished\n", rounds, NT);
    return 0;
}
