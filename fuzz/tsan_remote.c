/* tsan_remote: a free-running producer/consumer on hakmem's hak_* names, built with ThreadSanitizer by
 * fuzz/mutants.sh for the mutants whose bug is a missing memory-ordering edge (the fuzzers cannot see
 * those: the turnstile orders every op with its own release/acquire hand-off, and x86-64 is TSO).
 *
 * The producer allocates tiny and mid blocks, stamps them and hands them to the consumer through a
 * single-producer/single-consumer ring (release/acquire from producer to consumer only). The
 * consumer checks the stamp and frees each block: a remote free onto a slab the producer owns. The only
 * edge back from consumer to producer is the slab's remote stack (a release CAS, drained with an acquire
 * exchange), so if that edge is missing TSan reports the race on the block's link word.
 *
 *   tsan_remote [--items N]      (default 200000; exit 0 clean, 1 on a stamp mismatch; TSan reports
 *                                 races itself: run with TSAN_OPTIONS=halt_on_error=1 exitcode=66)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

#define RING 256u

/* Slots are atomics: a slot is reused by the producer after the consumer took it, and that reuse must
 * not be an edge from consumer to producer (nor a race on the slot). The tail is read relaxed by the
 * producer for the same reason: back-pressure without synchronisation. */
static _Atomic(void *) ring[RING];
static _Atomic uint32_t head, tail; /* producer writes head, consumer writes tail */
static unsigned long items = 200000;
static _Atomic int bad;

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t size_of(uint64_t r)
{
    return (r & 7) == 7 ? 1025 + (size_t)(r >> 8) % 8000 : (size_t)8 << ((r >> 3) % 8);
}

static void *producer(void *arg)
{
    (void)arg;
    uint64_t s = 88172645463325252ull;
    for (unsigned long i = 0; i < items; i++) {
        size_t n = size_of(rng(&s));
        unsigned char *p = hak_malloc(n);
        if (!p) {
            atomic_store(&bad, 1);
            break;
        }
        memset(p, (int)(i & 0xff), n < 64 ? n : 64);
        p[0] = (unsigned char)i;
        uint32_t h = atomic_load_explicit(&head, memory_order_relaxed);
        while (h - atomic_load_explicit(&tail, memory_order_relaxed) >= RING)
            ;
        atomic_store_explicit(&ring[h % RING], p, memory_order_release);
        atomic_store_explicit(&head, h + 1, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (unsigned long i = 0; i < items; i++) {
        uint32_t t = atomic_load_explicit(&tail, memory_order_relaxed);
        while (atomic_load_explicit(&head, memory_order_acquire) == t) {
            if (atomic_load(&bad))
                return NULL;
        }
        unsigned char *p = atomic_load_explicit(&ring[t % RING], memory_order_acquire);
        if (p[0] != (unsigned char)i) {
            fprintf(stderr, "tsan_remote: block %lu has stamp %u\n", i, p[0]);
            atomic_store(&bad, 1);
        }
        hak_free(p); /* a remote free: the producer owns the slab */
        atomic_store_explicit(&tail, t + 1, memory_order_relaxed);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--items") == 0)
            items = strtoul(argv[++i], NULL, 0);
    pthread_t a, b;
    pthread_create(&a, NULL, producer, NULL);
    pthread_create(&b, NULL, consumer, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    hak_collect();
    if (atomic_load(&bad)) {
        fprintf(stderr, "tsan_remote: FAILED\n");
        return 1;
    }
    fprintf(stderr, "tsan_remote: %lu blocks passed from producer to consumer, no failure\n", items);
    return 0;
}
