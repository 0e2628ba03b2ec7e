/* Multi-threaded semantics of hakmem through its hak_* API (linked as hakmem_prefixed).
 *
 * What must hold: a block can be freed (or realloc'ed) by any thread, not only the one that made it;
 * a thread may exit while its blocks are still live and others free them later; many threads
 * allocating at once never receive overlapping blocks; and fork() in a multi-threaded process leaves
 * the child a working allocator (no lock held by a thread that does not exist in the child).
 *
 * Blocks that travel between threads carry a header {size, seed} in their first 16 bytes and the
 * pattern of seed after it, so whichever thread holds a block can verify it without side tables.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_runner.h"

#include "hakmem.h"
#include "test_util.h"

#define KIB ((size_t)1024)
#define MIB ((size_t)1024 * 1024)
#define HDR 16 /* header: size_t size, uint64_t seed */

/* Size mix for travelling blocks: mostly tiny, some mid, a few large (>= 2 MiB layer). */
static size_t travel_size(uint64_t *rng) {
    unsigned pick = (unsigned)(tu_splitmix64(rng) % 1000);
    if (pick < 800) return tu_range(rng, HDR, 1024);
    if (pick < 990) return tu_range(rng, 1025, 64 * KIB);
    if (pick < 998) return tu_range(rng, 64 * KIB + 1, 1 * MIB);
    return tu_range(rng, 2 * MIB, 3 * MIB);
}

/* Allocates a block of `size` (>= HDR) by one of the entry points, writes header and pattern. */
static void *block_new(size_t size, uint64_t seed, uint64_t *rng) {
    void *p;
    switch (tu_splitmix64(rng) % 4) {
    case 0: p = hak_malloc(size); break;
    case 1: p = hak_calloc(1, size); break;
    case 2: p = hak_memalign((size_t)16 << (tu_splitmix64(rng) % 8), size); break;
    default: {
        p = NULL;
        if (hak_posix_memalign(&p, 64, size) != 0) p = NULL;
    }
    }
    if (p == NULL) return NULL;
    memcpy(p, &size, sizeof size);
    memcpy((char *)p + 8, &seed, sizeof seed);
    tu_fill(p, HDR, size, seed);
    return p;
}

/* Returns 0 if the block still holds its header and pattern; otherwise the offending offset + 1. */
static size_t block_check(const void *p) {
    size_t size;
    uint64_t seed;
    memcpy(&size, p, sizeof size);
    memcpy(&seed, (const char *)p + 8, sizeof seed);
    if (size < HDR || size > 64 * MIB) return 1;
    if (hak_malloc_usable_size((void *)p) < size) return 2;
    size_t bad = tu_verify(p, HDR, size, seed);
    return bad == SIZE_MAX ? 0 : bad + 1;
}

/* ------------------------------------------------------------------------------------------------ */
/* Producers and consumers: every block is freed (sometimes realloc'ed first) by another thread.      */

#define QCAP 256
typedef struct queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    void *item[QCAP];
    size_t head, count;
    int producers_left;
} queue_t;

typedef struct pc_arg {
    queue_t *q;
    uint64_t seed;
    size_t items;      /* producers: how many to make */
    atomic_int *fails; /* shared failure counter */
    char why[160];     /* first failure of this thread */
} pc_arg_t;

static void note_fail(pc_arg_t *a, const char *msg, size_t v) {
    if (atomic_fetch_add(a->fails, 1) == 0 || a->why[0] == '\0') snprintf(a->why, sizeof a->why, "%s (%zu)", msg, v);
}

static void *producer(void *arg) {
    pc_arg_t *a = arg;
    uint64_t rng = a->seed;
    for (size_t i = 0; i < a->items; i++) {
        void *p = block_new(travel_size(&rng), a->seed * 1000003u + i, &rng);
        if (p == NULL) {
            note_fail(a, "allocation failed at item", i);
            break;
        }
        pthread_mutex_lock(&a->q->mu);
        while (a->q->count == QCAP) pthread_cond_wait(&a->q->not_full, &a->q->mu);
        a->q->item[(a->q->head + a->q->count++) % QCAP] = p;
        pthread_cond_signal(&a->q->not_empty);
        pthread_mutex_unlock(&a->q->mu);
    }
    pthread_mutex_lock(&a->q->mu);
    a->q->producers_left--;
    pthread_cond_broadcast(&a->q->not_empty);
    pthread_mutex_unlock(&a->q->mu);
    return NULL;
}

static void *consumer(void *arg) {
    pc_arg_t *a = arg;
    uint64_t rng = a->seed;
    for (;;) {
        pthread_mutex_lock(&a->q->mu);
        while (a->q->count == 0 && a->q->producers_left > 0) pthread_cond_wait(&a->q->not_empty, &a->q->mu);
        if (a->q->count == 0) {
            pthread_mutex_unlock(&a->q->mu);
            return NULL;
        }
        void *p = a->q->item[a->q->head];
        a->q->head = (a->q->head + 1) % QCAP;
        a->q->count--;
        pthread_cond_signal(&a->q->not_full);
        pthread_mutex_unlock(&a->q->mu);

        size_t bad = block_check(p);
        if (bad != 0) note_fail(a, "received block corrupted at offset+1", bad);
        if (tu_splitmix64(&rng) % 4 == 0) {
            /* realloc of a foreign thread's block: content must survive the move */
            size_t size;
            memcpy(&size, p, sizeof size);
            size_t to = size + tu_range(&rng, 0, 3000);
            void *q = hak_realloc(p, to);
            if (q == NULL) {
                note_fail(a, "cross-thread realloc failed to", to);
                hak_free(p);
                continue;
            }
            uint64_t seed;
            memcpy(&seed, (char *)q + 8, sizeof seed);
            if (tu_verify(q, HDR, size, seed) != SIZE_MAX) note_fail(a, "cross-thread realloc lost data", to);
            p = q;
        }
        hak_free(p);
    }
}

Test(threads, producers_consumers_cross_thread_free) {
    enum { NP = 4, NC = 4 };
    queue_t q = {.producers_left = NP};
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.not_empty, NULL);
    pthread_cond_init(&q.not_full, NULL);
    atomic_int fails = 0;
    pc_arg_t args[NP + NC];
    pthread_t t[NP + NC];
    size_t per = tu_scaled(25000, 2000);
    for (int i = 0; i < NP + NC; i++) {
        args[i] = (pc_arg_t){.q = &q, .seed = 100u + (unsigned)i, .items = per, .fails = &fails};
        cr_assert(pthread_create(&t[i], NULL, i < NP ? producer : consumer, &args[i]) == 0);
    }
    for (int i = 0; i < NP + NC; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < NP + NC; i++)
        cr_expect(args[i].why[0] == '\0', "%s %d: %s", i < NP ? "producer" : "consumer", i, args[i].why);
    cr_assert(atomic_load(&fails) == 0, "%d failures", atomic_load(&fails));
    pthread_mutex_destroy(&q.mu);
    pthread_cond_destroy(&q.not_empty);
    pthread_cond_destroy(&q.not_full);
}

/* ------------------------------------------------------------------------------------------------ */
/* Threads that exit with live blocks; later threads free them while allocating their own.            */

typedef struct gen_arg {
    void **mine;        /* blocks this thread allocates and leaves live */
    void **inherited;   /* blocks of an exited thread that this thread frees */
    size_t n, n_inherited;
    uint64_t seed;
    size_t bad;         /* 0 or offending offset + 1 of an inherited block */
    int alloc_failed;
} gen_arg_t;

static void *generation_thread(void *arg) {
    gen_arg_t *g = arg;
    uint64_t rng = g->seed;
    for (size_t i = 0; i < g->n; i++) {
        /* interleave: allocate one of ours, free one inherited from a dead thread */
        g->mine[i] = block_new(travel_size(&rng), g->seed * 7919u + i, &rng);
        if (g->mine[i] == NULL) g->alloc_failed = 1;
        if (i < g->n_inherited && g->inherited[i] != NULL) {
            size_t bad = block_check(g->inherited[i]);
            if (bad != 0 && g->bad == 0) g->bad = bad;
            hak_free(g->inherited[i]);
            g->inherited[i] = NULL;
        }
    }
    return NULL; /* exits with g->n live blocks */
}

Test(threads, exited_threads_blocks_freed_by_others) {
    enum { T = 4, GENERATIONS = 6 };
    size_t n = tu_scaled(3000, 400);
    void **blocks[2][T];
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < T; i++) {
            blocks[s][i] = calloc(n, sizeof(void *));
            cr_assert_not_null(blocks[s][i]);
        }
    /* generation k allocates into blocks[k % 2] and frees the blocks generation k-1 left behind */
    for (int gen = 0; gen < GENERATIONS; gen++) {
        gen_arg_t a[T];
        pthread_t t[T];
        for (int i = 0; i < T; i++) {
            a[i] = (gen_arg_t){.mine = blocks[gen % 2][i],
                               .inherited = blocks[(gen + 1) % 2][(i + 1) % T], /* another thread's */
                               .n = n,
                               .n_inherited = gen == 0 ? 0 : n,
                               .seed = 1u + (uint64_t)gen * T + (uint64_t)i};
            cr_assert(pthread_create(&t[i], NULL, generation_thread, &a[i]) == 0);
        }
        for (int i = 0; i < T; i++) pthread_join(t[i], NULL);
        for (int i = 0; i < T; i++) {
            cr_assert(!a[i].alloc_failed, "generation %d thread %d: allocation failed", gen, i);
            cr_assert(a[i].bad == 0, "generation %d thread %d: block left by an exited thread corrupted at %zu", gen,
                      i, a[i].bad - 1);
        }
        /* Every live block of the generation that just exited verifies from this (third) thread. */
        for (int i = 0; i < T; i++)
            for (size_t k = 0; k < n; k++) {
                size_t bad = block_check(blocks[gen % 2][i][k]);
                TU_CHECK(bad == 0, "generation %d thread %d block %zu corrupted at %zu after its thread exited", gen,
                         i, k, bad - 1);
            }
    }
    /* The last generation's blocks are freed by the main thread. */
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < T; i++) {
            for (size_t k = 0; k < n; k++) hak_free(blocks[s][i][k]);
            free(blocks[s][i]);
        }
}

/* ------------------------------------------------------------------------------------------------ */
/* Many threads allocating at once, swapping blocks through shared slots.                             */

#define SLOTS 512
static _Atomic(void *) shared_slot[SLOTS];

typedef struct churn_arg {
    uint64_t seed;
    size_t ops;
    size_t bad;       /* offending offset + 1 */
    int failed;       /* allocation failure or calloc not zero */
} churn_arg_t;

static void *churn_thread(void *arg) {
    churn_arg_t *c = arg;
    enum { LOCAL = 128 };
    void *local[LOCAL] = {0};
    uint64_t rng = c->seed;
    for (size_t op = 0; op < c->ops; op++) {
        size_t i = tu_range(&rng, 0, LOCAL - 1);
        unsigned what = (unsigned)(tu_splitmix64(&rng) % 10);
        if (local[i] != NULL) {
            size_t bad = block_check(local[i]);
            if (bad != 0 && c->bad == 0) c->bad = bad;
        }
        if (what < 4) { /* free and replace */
            hak_free(local[i]);
            local[i] = block_new(travel_size(&rng), c->seed ^ (op << 16), &rng);
            if (local[i] == NULL) c->failed = 1;
        } else if (what < 6 && local[i] != NULL) { /* swap with a shared slot: blocks change threads */
            local[i] = atomic_exchange(&shared_slot[tu_range(&rng, 0, SLOTS - 1)], local[i]);
        } else if (what < 8 && local[i] != NULL) { /* realloc, maybe a block made by another thread */
            size_t size;
            uint64_t seed;
            memcpy(&size, local[i], sizeof size);
            memcpy(&seed, (char *)local[i] + 8, sizeof seed);
            size_t to = tu_range(&rng, HDR, size < 2 * MIB ? size * 2 + 64 : 4 * MIB);
            void *q = hak_realloc(local[i], to);
            if (q == NULL) {
                c->failed = 1;
                continue;
            }
            size_t keep = to < size ? to : size;
            if (tu_verify(q, HDR, keep, seed) != SIZE_MAX && c->bad == 0) c->bad = 1;
            memcpy(q, &to, sizeof to);
            tu_fill(q, keep, to, seed);
            local[i] = q;
        } else { /* calloc must hand out zeroed memory even when recycled from other threads */
            size_t n = tu_range(&rng, 1, 4096);
            unsigned char *z = hak_calloc(n, 1);
            if (z == NULL || tu_first_nonzero(z, n) != SIZE_MAX) c->failed = 2;
            hak_free(z);
        }
    }
    for (size_t i = 0; i < LOCAL; i++) {
        if (local[i] != NULL) {
            size_t bad = block_check(local[i]);
            if (bad != 0 && c->bad == 0) c->bad = bad;
        }
        hak_free(local[i]);
    }
    return NULL;
}

Test(threads, many_threads_allocate_concurrently_with_verification) {
    enum { T = 8 };
    pthread_t t[T];
    churn_arg_t c[T];
    size_t ops = tu_scaled(60000, 4000);
    for (int i = 0; i < T; i++) {
        c[i] = (churn_arg_t){.seed = 0xC0FFEEu + (uint64_t)i, .ops = ops};
        cr_assert(pthread_create(&t[i], NULL, churn_thread, &c[i]) == 0);
    }
    for (int i = 0; i < T; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < T; i++) {
        cr_assert(c[i].failed != 2, "thread %d: hak_calloc returned non-zeroed memory", i);
        cr_assert(c[i].failed == 0, "thread %d: an allocation failed", i);
        cr_assert(c[i].bad == 0, "thread %d: a block was corrupted (offset %zu)", i, c[i].bad - 1);
    }
    for (int s = 0; s < SLOTS; s++) {
        void *p = atomic_exchange(&shared_slot[s], NULL);
        if (p != NULL) {
            size_t bad = block_check(p);
            TU_CHECK(bad == 0, "shared slot %d: block corrupted at %zu", s, bad - 1);
        }
        hak_free(p);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* fork() while other threads allocate                                                                */

static atomic_int fork_stop;

static void *background_allocator(void *arg) {
    uint64_t rng = (uint64_t)(uintptr_t)arg;
    void *keep[64] = {0};
    while (!atomic_load_explicit(&fork_stop, memory_order_relaxed)) {
        size_t i = tu_range(&rng, 0, 63);
        hak_free(keep[i]);
        keep[i] = hak_malloc(travel_size(&rng));
        if (keep[i] != NULL) memset(keep[i], 0x3c, 16);
    }
    for (int i = 0; i < 64; i++) hak_free(keep[i]);
    return NULL;
}

/* Child of a multi-threaded parent: only this thread exists now. Inherited blocks must verify and be
 * freeable, and the allocator must serve this thread (all sizes) without deadlocking on a lock that a
 * vanished thread held at fork time. Returns the exit status: 0 = fine. */
static int fork_child(void **inherited, size_t n) {
    alarm(60); /* a deadlock becomes SIGALRM, reported by the parent, not a hung test */
    for (size_t i = 0; i < n; i++) {
        if (block_check(inherited[i]) != 0) return 3;
        hak_free(inherited[i]);
    }
    uint64_t rng = 99;
    enum { K = 2000 };
    static void *p[K];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < K; i++) {
            p[i] = block_new(travel_size(&rng), (uint64_t)(round * K + i), &rng);
            if (p[i] == NULL) return 4;
        }
        for (int i = 0; i < K; i++) {
            if (block_check(p[i]) != 0) return 5;
            hak_free(p[i]);
        }
    }
    hak_collect();
    return 0;
}

Test(threads, fork_in_multithreaded_process) {
    enum { BG = 3, INHERIT = 300 };
    pthread_t bg[BG];
    atomic_store(&fork_stop, 0);
    for (int i = 0; i < BG; i++)
        cr_assert(pthread_create(&bg[i], NULL, background_allocator, (void *)(uintptr_t)(i + 1)) == 0);
    size_t forks = tu_scaled(12, 3);
    uint64_t rng = 5;
    static void *inherited[INHERIT];
    for (size_t f = 0; f < forks; f++) {
        for (int i = 0; i < INHERIT; i++) inherited[i] = block_new(travel_size(&rng), f * INHERIT + (unsigned)i, &rng);
        pid_t pid = fork();
        cr_assert(pid >= 0, "fork: %s", strerror(errno));
        if (pid == 0) _exit(fork_child(inherited, INHERIT)); /* _exit: skip the test runner's atexit work */
        int status = 0;
        pid_t w;
        do w = waitpid(pid, &status, 0);
        while (w < 0 && errno == EINTR);
        cr_assert(w == pid, "waitpid: %s", strerror(errno));
        if (WIFSIGNALED(status))
            cr_assert_fail("fork %zu: child killed by signal %d (%s)%s", f, WTERMSIG(status), strsignal(WTERMSIG(status)),
                           WTERMSIG(status) == SIGALRM ? ": the allocator deadlocked after fork" : "");
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "fork %zu: child exited %d (3 inherited block corrupt, 4 alloc failed, 5 block corrupt)", f,
                  WEXITSTATUS(status));
        /* The parent's copies are untouched by whatever the child did. */
        for (int i = 0; i < INHERIT; i++) {
            size_t bad = block_check(inherited[i]);
            TU_CHECK(bad == 0, "fork %zu: parent block %d corrupted at %zu", f, i, bad - 1);
            hak_free(inherited[i]);
        }
    }
    atomic_store(&fork_stop, 1);
    for (int i = 0; i < BG; i++) pthread_join(bg[i], NULL);
}
