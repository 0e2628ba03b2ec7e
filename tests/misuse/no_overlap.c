/* The invariant every variant must keep, release included: a block is never handed out while it is
 * live. Under a valid random workload (all size ranges, calloc, realloc, memalign, frees from other
 * threads) every live block is recorded in one sorted registry; each new block is checked against its
 * neighbours there as it is inserted, which after every step amounts to "no two live blocks overlap"
 * (a removal cannot create an overlap). Every block also carries a stamp over its bytes, verified
 * before it is freed, so a block written through another (overlapping or stale) pointer shows too.
 *
 *   misuse_no_overlap [--short] [--threads T] [--steps N] [--live L] [--seed S]
 *
 * The registry and the mailboxes are mmap'd, so the program's own bookkeeping never comes from the
 * allocator under test. Exit 0 and one summary line when the invariant held; exit 1 with both blocks'
 * addresses on the first overlap or stamp mismatch.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifdef MU_PREFIXED
#include "hakmem.h"
#define NO_MALLOC hak_malloc
#define NO_FREE hak_free
#define NO_CALLOC hak_calloc
#define NO_REALLOC hak_realloc
#define NO_MEMALIGN hak_posix_memalign
#define NO_USABLE hak_malloc_usable_size
#else
#include <malloc.h>
#define NO_MALLOC malloc
#define NO_FREE free
#define NO_CALLOC calloc
#define NO_REALLOC realloc
#define NO_MEMALIGN posix_memalign
#define NO_USABLE malloc_usable_size
#endif

static uint64_t no_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void *no_map(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("no_overlap: mmap");
        exit(2);
    }
    return p;
}

/* ---- the registry: every live block, sorted by address ---------------------------------------- */
typedef struct no_range {
    uintptr_t start, end; /* [start, end): the block's usable bytes (at least one) */
    uint64_t stamp;
} no_range_t;

static pthread_mutex_t no_reg_lock = PTHREAD_MUTEX_INITIALIZER;
static no_range_t *no_reg;
static size_t no_reg_n, no_reg_cap, no_reg_max;

static __attribute__((noreturn, format(printf, 1, 2))) void no_fail(const char *fmt, ...);
static void no_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "no_overlap: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static size_t no_reg_lower_bound(uintptr_t a) {
    size_t lo = 0, hi = no_reg_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (no_reg[mid].start < a) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void no_reg_insert(void *p, size_t usable, uint64_t stamp, const char *op) {
    uintptr_t a = (uintptr_t)p, e = a + (usable ? usable : 1);
    pthread_mutex_lock(&no_reg_lock);
    size_t i = no_reg_lower_bound(a);
    if (i > 0 && no_reg[i - 1].end > a)
        no_fail("%s returned %p (+%zu), which overlaps the live block [%#lx, %#lx)", op, p, usable,
                (unsigned long)no_reg[i - 1].start, (unsigned long)no_reg[i - 1].end);
    if (i < no_reg_n && no_reg[i].start < e)
        no_fail("%s returned %p (+%zu), which overlaps the live block [%#lx, %#lx)", op, p, usable,
                (unsigned long)no_reg[i].start, (unsigned long)no_reg[i].end);
    if (no_reg_n == no_reg_cap) no_fail("registry full (%zu blocks)", no_reg_cap);
    memmove(&no_reg[i + 1], &no_reg[i], (no_reg_n - i) * sizeof *no_reg);
    no_reg[i] = (no_range_t){a, e, stamp};
    no_reg_n++;
    if (no_reg_n > no_reg_max) no_reg_max = no_reg_n;
    pthread_mutex_unlock(&no_reg_lock);
}

static void no_reg_remove(void *p) {
    uintptr_t a = (uintptr_t)p;
    pthread_mutex_lock(&no_reg_lock);
    size_t i = no_reg_lower_bound(a);
    if (i >= no_reg_n || no_reg[i].start != a) no_fail("bookkeeping: %p is not in the registry", p);
    memmove(&no_reg[i], &no_reg[i + 1], (no_reg_n - i - 1) * sizeof *no_reg);
    no_reg_n--;
    pthread_mutex_unlock(&no_reg_lock);
}

/* O(n) sweep of the whole registry (the insert checks make it redundant; it guards the registry). */
static void no_reg_sweep(void) {
    pthread_mutex_lock(&no_reg_lock);
    for (size_t i = 1; i < no_reg_n; i++)
        if (no_reg[i - 1].end > no_reg[i].start)
            no_fail("live blocks [%#lx, %#lx) and [%#lx, %#lx) overlap", (unsigned long)no_reg[i - 1].start,
                    (unsigned long)no_reg[i - 1].end, (unsigned long)no_reg[i].start, (unsigned long)no_reg[i].end);
    pthread_mutex_unlock(&no_reg_lock);
}

/* ---- stamps: byte i of a block with stamp s is a function of (s, i / 8) ----------------------- */
#define NO_STAMP_SPAN 4096 /* bytes stamped at each end of a block (all of it when smaller) */

static uint64_t no_word(uint64_t stamp, size_t i) {
    uint64_t s = stamp ^ (i * 0xD6E8FEB86659FD93ull);
    return no_splitmix64(&s);
}

static void no_stamp_range(unsigned char *p, size_t from, size_t to, uint64_t stamp) {
    for (size_t i = from & ~(size_t)7; i < to; i += 8) {
        uint64_t w = no_word(stamp, i >> 3);
        for (size_t k = 0; k < 8; k++)
            if (i + k >= from && i + k < to) p[i + k] = (unsigned char)(w >> (8 * k));
    }
}

static size_t no_check_range(const unsigned char *p, size_t from, size_t to, uint64_t stamp) {
    for (size_t i = from & ~(size_t)7; i < to; i += 8) {
        uint64_t w = no_word(stamp, i >> 3);
        for (size_t k = 0; k < 8; k++)
            if (i + k >= from && i + k < to && p[i + k] != (unsigned char)(w >> (8 * k))) return i + k;
    }
    return SIZE_MAX;
}

static void no_stamp(void *p, size_t n, uint64_t stamp) {
    if (n <= 2 * NO_STAMP_SPAN) {
        no_stamp_range(p, 0, n, stamp);
    } else {
        no_stamp_range(p, 0, NO_STAMP_SPAN, stamp);
        no_stamp_range(p, n - NO_STAMP_SPAN, n, stamp);
    }
}

static void no_bad(const void *p, size_t size, size_t off, const char *when) {
    no_fail("%s: block %p (%zu bytes) was changed at offset %zu while live: another block shares its memory",
            when, p, size, off);
}

/* Verifies every stamped byte of a block of n bytes. */
static void no_verify(const void *p, size_t n, uint64_t stamp, const char *when) {
    size_t bad;
    if (n <= 2 * NO_STAMP_SPAN) {
        bad = no_check_range(p, 0, n, stamp);
    } else {
        bad = no_check_range(p, 0, NO_STAMP_SPAN, stamp);
        if (bad == SIZE_MAX) bad = no_check_range(p, n - NO_STAMP_SPAN, n, stamp);
    }
    if (bad != SIZE_MAX) no_bad(p, n, bad, when);
}

/* Verifies the stamped bytes among the first `keep` of a block that was stamped with `old` bytes
 * (what realloc must have carried over). */
static void no_verify_prefix(const void *p, size_t keep, size_t old, uint64_t stamp, const char *when) {
    size_t len = old <= 2 * NO_STAMP_SPAN ? keep : (keep < NO_STAMP_SPAN ? keep : NO_STAMP_SPAN);
    size_t bad = no_check_range(p, 0, len, stamp);
    if (bad != SIZE_MAX) no_bad(p, keep, bad, when);
}

/* ---- the workload ------------------------------------------------------------------------------ */
typedef struct no_block {
    void *p;
    size_t size;
    uint64_t stamp;
} no_block_t;

/* A mailbox per thread: blocks other threads pass it to free (cross-thread frees). */
typedef struct no_mailbox {
    pthread_mutex_t lock;
    no_block_t *items;
    size_t n, cap;
} no_mailbox_t;

static int no_threads = 4, no_live = 256;
static long no_steps = 400000; /* per thread; --short: 25000 */
static uint64_t no_seed = 1;
static no_mailbox_t *no_mail;

typedef struct no_thread {
    int id;
    uint64_t rng;
    no_block_t *slots;
    long ops, remote_frees, reallocs, callocs, memaligns;
} no_thread_t;

static size_t no_pick_size(uint64_t *rng) {
    uint64_t r = no_splitmix64(rng);
    switch (r % 100) {
    case 0: return 0;
    case 1: case 2: case 3: case 4: case 5: case 6: return 65537 + (size_t)((r >> 8) % (1u << 20)); /* large */
    default:
        if (r % 100 < 30) return 1025 + (size_t)((r >> 8) % 64512); /* mid */
        return 1 + (size_t)((r >> 8) % 1024);                         /* tiny */
    }
}

static void no_release(no_block_t *b, const char *when) {
    no_verify(b->p, b->size, b->stamp, when);
    no_reg_remove(b->p);
    NO_FREE(b->p);
    b->p = NULL;
}

static void no_drain_mailbox(no_thread_t *t) {
    no_mailbox_t *m = &no_mail[t->id];
    pthread_mutex_lock(&m->lock);
    while (m->n > 0) {
        no_block_t b = m->items[--m->n];
        no_release(&b, "cross-thread free");
        t->remote_frees++;
    }
    pthread_mutex_unlock(&m->lock);
}

static void no_new_block(no_thread_t *t, no_block_t *b) {
    size_t n = no_pick_size(&t->rng);
    uint64_t r = no_splitmix64(&t->rng);
    const char *op = "malloc";
    void *p;
    if (r % 10 == 0) {
        op = "calloc";
        p = NO_CALLOC(1, n);
        if (p) {
            const unsigned char *c = p;
            for (size_t i = 0; i < n; i++)
                if (c[i]) no_fail("calloc(%zu) returned %p with a non-zero byte at %zu", n, p, i);
        }
        t->callocs++;
    } else if (r % 10 == 1) {
        op = "posix_memalign";
        size_t align = (size_t)16 << ((r >> 8) % 9); /* 16 .. 4096 */
        if (NO_MEMALIGN(&p, align, n) != 0) p = NULL;
        if (p && ((uintptr_t)p & (align - 1))) no_fail("posix_memalign(%zu, %zu) returned %p", align, n, p);
        t->memaligns++;
    } else {
        p = NO_MALLOC(n);
    }
    if (p == NULL) no_fail("%s(%zu) returned NULL (errno %d)", op, n, errno);
    size_t usable = NO_USABLE(p);
    if (usable < n) no_fail("%s(%zu) = %p has usable size %zu", op, n, p, usable);
    b->p = p;
    b->size = n;
    b->stamp = no_splitmix64(&t->rng);
    no_reg_insert(p, usable, b->stamp, op);
    no_stamp(p, n, b->stamp);
}

static void no_realloc_block(no_thread_t *t, no_block_t *b) {
    size_t n = no_pick_size(&t->rng);
    if (n == 0) n = 1; /* realloc(p, 0) frees: not what this step is about */
    no_verify(b->p, b->size, b->stamp, "before realloc");
    no_reg_remove(b->p);
    void *q = NO_REALLOC(b->p, n);
    if (q == NULL) no_fail("realloc(%p, %zu) returned NULL", b->p, n);
    size_t keep = n < b->size ? n : b->size;
    /* the stamp is position-based, so the kept prefix verifies against the old stamp */
    no_verify_prefix(q, keep, b->size, b->stamp, "after realloc");
    size_t usable = NO_USABLE(q);
    if (usable < n) no_fail("realloc(.., %zu) = %p has usable size %zu", n, q, usable);
    b->p = q;
    b->size = n;
    b->stamp = no_splitmix64(&t->rng);
    no_reg_insert(q, usable, b->stamp, "realloc");
    no_stamp(q, n, b->stamp);
    t->reallocs++;
}

static void *no_thread_main(void *arg) {
    no_thread_t *t = arg;
    for (long s = 0; s < no_steps; s++) {
        if ((s & 15) == 0) no_drain_mailbox(t);
        no_block_t *b = &t->slots[no_splitmix64(&t->rng) % (uint64_t)no_live];
        uint64_t r = no_splitmix64(&t->rng) % 100;
        if (b->p == NULL) {
            no_new_block(t, b);
        } else if (r < 40) {
            no_release(b, "free");
        } else if (r < 70 && no_threads > 1) {
            /* hand it to another thread, which frees it */
            int to = (int)(no_splitmix64(&t->rng) % (uint64_t)(no_threads - 1));
            if (to >= t->id) to++;
            no_mailbox_t *m = &no_mail[to];
            pthread_mutex_lock(&m->lock);
            if (m->n < m->cap) {
                m->items[m->n++] = *b;
                b->p = NULL;
            }
            pthread_mutex_unlock(&m->lock);
            if (b->p) no_release(b, "free");
        } else if (r < 85) {
            no_realloc_block(t, b);
        } else {
            no_verify(b->p, b->size, b->stamp, "while live");
        }
        t->ops++;
        if (t->id == 0 && (s % 20000) == 19999) no_reg_sweep();
    }
    return NULL;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--short")) no_steps = 25000;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) no_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) no_steps = atol(argv[++i]);
        else if (!strcmp(argv[i], "--live") && i + 1 < argc) no_live = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) no_seed = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--short] [--threads T] [--steps N] [--live L] [--seed S]\n", argv[0]);
            return 2;
        }
    }
    if (no_threads < 1 || no_threads > 64 || no_live < 1 || no_steps < 1) {
        fprintf(stderr, "no_overlap: bad arguments\n");
        return 2;
    }
    size_t mail_cap = (size_t)no_live;
    no_reg_cap = (size_t)no_threads * ((size_t)no_live + mail_cap) + 16;
    no_reg = no_map(no_reg_cap * sizeof *no_reg);
    no_mail = no_map((size_t)no_threads * sizeof *no_mail);
    no_thread_t *th = no_map((size_t)no_threads * sizeof *th);
    pthread_t *tid = no_map((size_t)no_threads * sizeof *tid);
    for (int i = 0; i < no_threads; i++) {
        pthread_mutex_init(&no_mail[i].lock, NULL);
        no_mail[i].items = no_map(mail_cap * sizeof(no_block_t));
        no_mail[i].cap = mail_cap;
        th[i].id = i;
        th[i].rng = no_seed * 0x9E3779B97F4A7C15ull + (uint64_t)i;
        th[i].slots = no_map((size_t)no_live * sizeof(no_block_t));
    }
    for (int i = 0; i < no_threads; i++)
        if (pthread_create(&tid[i], NULL, no_thread_main, &th[i]) != 0) no_fail("pthread_create");
    for (int i = 0; i < no_threads; i++) pthread_join(tid[i], NULL);
    /* everything left: mailboxes, then each thread's slots (from the main thread: cross-thread too) */
    long ops = 0, remote = 0, reallocs = 0, callocs = 0, memaligns = 0;
    for (int i = 0; i < no_threads; i++) {
        no_drain_mailbox(&th[i]);
        for (int k = 0; k < no_live; k++)
            if (th[i].slots[k].p) no_release(&th[i].slots[k], "final free");
        ops += th[i].ops, remote += th[i].remote_frees, reallocs += th[i].reallocs;
        callocs += th[i].callocs, memaligns += th[i].memaligns;
    }
    no_reg_sweep();
    if (no_reg_n != 0) no_fail("bookkeeping: %zu blocks left in the registry", no_reg_n);
    printf("no_overlap: %d threads, %ld steps, %ld cross-thread frees, %ld reallocs, %ld callocs, %ld memaligns, "
           "max %zu live blocks: no overlap\n",
           no_threads, ops, remote, reallocs, callocs, memaligns, no_reg_max);
    return 0;
}
