/* stress/realloc_chain.c — realloc growth and shrink chains across size classes.
 *
 * A chain starts as a tiny block (1..64 B; from malloc, calloc or posix_memalign), grows by
 * realloc in steps of 1.25x..2x up to a peak drawn log-uniformly between 256 B and --max (tiny ->
 * mid -> large), then shrinks back in steps of 0.4x..0.75x to a few bytes and is freed. Each thread
 * keeps --live chains in flight and steps a random one at a time, so chains of every size are
 * interleaved on the heap.
 *
 * Contents: byte i of a chain is byte (i mod 8) of the word tag + (i / 8) * phi, so any slice can
 * be checked on its own. After every realloc the first min(old, new) bytes must still match; the
 * grown part is then written. Also checked: calloc'ed memory is zero, posix_memalign honours its
 * alignment, every result is aligned for any object of its size, malloc_usable_size >= size.
 *
 * With more than one thread, a chain at its peak may be swapped through a process-wide exchange
 * and continue (shrink, free) on another thread: realloc and free of a block another thread
 * allocated.
 */
#include "alloc_api.h"
#include "common.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define RC_PHI 0x9E3779B97F4A7C15ull

typedef struct rc_chain {
    unsigned char *p;
    size_t n;
    size_t peak;
    uint64_t tag;
    uint64_t id;
    int growing;
} rc_chain_t;

static hs_common_t rc_c;
static uint64_t rc_chains = 2000, rc_live = 8, rc_max = 1u << 20;
static pthread_mutex_t rc_xmu = PTHREAD_MUTEX_INITIALIZER;
static rc_chain_t rc_xchg; /* under rc_xmu; p == NULL when empty */

static inline uint64_t rc_word(uint64_t tag, size_t k) { return tag + (uint64_t)k * RC_PHI; }

static inline unsigned char rc_byte(uint64_t tag, size_t i)
{
    uint64_t w = rc_word(tag, i >> 3);
    unsigned char b[8];
    memcpy(b, &w, 8); /* host byte order on both sides: write and check agree on any endianness */
    return b[i & 7];
}

static void rc_write(unsigned char *p, size_t from, size_t to, uint64_t tag)
{
    size_t i = from;
    for (; i < to && (i & 7) != 0; i++)
        p[i] = rc_byte(tag, i);
    for (; i + 8 <= to; i += 8) {
        uint64_t w = rc_word(tag, i >> 3);
        memcpy(p + i, &w, 8);
    }
    for (; i < to; i++)
        p[i] = rc_byte(tag, i);
}

static void rc_check(const rc_chain_t *ch, const unsigned char *p, size_t upto, const char *when)
{
    size_t i = 0;
    for (; i + 8 <= upto; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (HS_UNLIKELY(w != rc_word(ch->tag, i >> 3)))
            break;
    }
    for (; i < upto; i++)
        if (HS_UNLIKELY(p[i] != rc_byte(ch->tag, i)))
            hs_fatal("chain %llu %s: content lost at offset %zu of %zu (block %p, now %zu bytes): "
                     "expected 0x%02x actual 0x%02x",
                     (unsigned long long)ch->id, when, i, upto, (const void *)p, ch->n,
                     rc_byte(ch->tag, i), p[i]);
}

static void rc_check_block(const void *p, size_t n, size_t align)
{
    size_t need = n >= 16 ? 16 : 8; /* what malloc promises for any object of this size */
    if (align < need)
        align = need;
    if (((uintptr_t)p & (align - 1)) != 0)
        hs_fatal("block %p of %zu bytes not aligned to %zu", p, n, align);
    size_t us = S_MALLOC_USABLE_SIZE((void *)p);
    if (us < n)
        hs_fatal("malloc_usable_size(%p) = %zu < requested %zu", p, us, n);
}

static void rc_start(rc_chain_t *ch, hs_rng_t *r, uint64_t id)
{
    ch->id = id;
    ch->tag = hs_tag(rc_c.seed, 0x5245414Cull /* "REAL" */, id);
    ch->n = hs_rng_range(r, 1, 64);
    /* Peak: log-uniform in [256, max]. */
    unsigned lo = 8, hi = 0;
    while ((2ull << hi) <= rc_max)
        hi++;
    unsigned e = (unsigned)hs_rng_range(r, lo, hi > lo ? hi : lo);
    size_t peak = ((size_t)1 << e) + hs_rng_below(r, (size_t)1 << e);
    ch->peak = peak > rc_max ? rc_max : peak;
    ch->growing = 1;
    size_t align = 0;
    switch (hs_rng_below(r, 3)) {
    case 0:
        ch->p = (unsigned char *)S_MALLOC(ch->n);
        HS_CHECK_ALLOC(ch->p, ch->n);
        break;
    case 1:
        ch->p = (unsigned char *)S_CALLOC(1, ch->n);
        HS_CHECK_ALLOC(ch->p, ch->n);
        for (size_t i = 0; i < ch->n; i++)
            if (ch->p[i] != 0)
                hs_fatal("calloc(1, %zu) = %p: byte %zu is 0x%02x, not zero", ch->n, (void *)ch->p,
                         i, ch->p[i]);
        break;
    default: {
        align = (size_t)1 << hs_rng_range(r, 4, 12);
        void *q = NULL;
        int rc = S_POSIX_MEMALIGN(&q, align, ch->n);
        if (rc != 0 || q == NULL)
            hs_fatal("posix_memalign(%zu, %zu) failed: %d", align, ch->n, rc);
        ch->p = (unsigned char *)q;
        break;
    }
    }
    rc_check_block(ch->p, ch->n, align);
    rc_write(ch->p, 0, ch->n, ch->tag);
}

/* One realloc step. Returns 0 when the chain has ended (freed). */
static int rc_step(rc_chain_t *ch, hs_rng_t *r)
{
    size_t n = ch->n, nn;
    if (ch->growing) {
        nn = n + (n * hs_rng_range(r, 25, 100)) / 100 + hs_rng_below(r, 16) + 1;
        if (nn >= ch->peak) {
            nn = ch->peak;
            ch->growing = 0;
        }
        if (hs_rng_below(r, 32) == 0)
            nn = n; /* same-size realloc now and then */
    } else {
        if (n <= 24) {
            rc_check(ch, ch->p, n, "before free");
            S_FREE(ch->p);
            ch->p = NULL;
            return 0;
        }
        size_t cut = (n * hs_rng_range(r, 25, 60)) / 100 + hs_rng_below(r, 16);
        nn = n - (cut < n - 1 ? cut : n - 1);
    }
    unsigned char *q = (unsigned char *)S_REALLOC(ch->p, nn);
    HS_CHECK_ALLOC(q, nn);
    ch->p = q;
    ch->n = nn;
    rc_check_block(q, nn, 0);
    rc_check(ch, q, n < nn ? n : nn, nn >= n ? "after growing realloc" : "after shrinking realloc");
    if (nn > n)
        rc_write(q, n, nn, ch->tag);
    return 1;
}

typedef struct rc_arg {
    uint64_t id;
    uint64_t ops;
} rc_arg_t;

static void *rc_thread(void *arg)
{
    rc_arg_t *a = (rc_arg_t *)arg;
    hs_rng_t r = hs_rng_make(rc_c.seed, 0x43484149ull /* "CHAI" */, a->id);
    rc_chain_t *live = (rc_chain_t *)S_CALLOC(rc_live, sizeof *live);
    HS_CHECK_ALLOC(live, rc_live * sizeof *live);
    uint64_t started = 0, ops = 0;
    for (uint64_t i = 0; i < rc_live && started < rc_chains; i++)
        rc_start(&live[i], &r, (a->id << 32) | started++);
    uint64_t active = started;
    while (active > 0) {
        rc_chain_t *ch = &live[hs_rng_below(&r, rc_live)];
        if (ch->p == NULL)
            continue;
        int peak_before = !ch->growing;
        if (!rc_step(ch, &r)) {
            active--;
            if (started < rc_chains) {
                rc_start(ch, &r, (a->id << 32) | started++);
                active++;
            }
        } else if (!peak_before && !ch->growing && rc_c.threads > 1 && hs_rng_below(&r, 4) == 0) {
            /* Just reached the peak: trade it for whatever another thread left. */
            pthread_mutex_lock(&rc_xmu);
            rc_chain_t other = rc_xchg;
            rc_xchg = *ch;
            pthread_mutex_unlock(&rc_xmu);
            if (other.p != NULL) {
                rc_check(&other, other.p, other.n, "after crossing threads");
                *ch = other;
            } else {
                ch->p = NULL; /* parked in the exchange; the slot starts a new chain */
                active--;
                if (started < rc_chains) {
                    rc_start(ch, &r, (a->id << 32) | started++);
                    active++;
                }
            }
        }
        ops++;
    }
    S_FREE(live);
    a->ops = ops;
    return NULL;
}

int main(int argc, char **argv)
{
    hs_init(&rc_c, "realloc_chain", argc, argv);
    if (rc_c.short_mode) {
        rc_chains = rc_c.slow ? 100 : 800;
        rc_max = rc_c.slow ? (256u << 10) : (1u << 20);
    }
    const hs_opt_t opts[] = {
        {"chains", HS_OPT_U64, &rc_chains, "chains per thread (default 2000, --short 800)"},
        {"live", HS_OPT_U64, &rc_live, "chains in flight per thread (default 8)"},
        {"max", HS_OPT_U64, &rc_max, "largest peak size (default 1M)"},
        {NULL, HS_OPT_FLAG, NULL, NULL}};
    hs_parse(&rc_c, argc, argv, opts);
    if (rc_live == 0 || rc_chains == 0 || rc_max < 256 || rc_max > (1ull << 32)) {
        fprintf(stderr, "realloc_chain: need chains, live > 0 and 256 <= max <= 4G\n");
        return 2;
    }

    uint64_t nt = rc_c.threads;
    rc_arg_t args[nt];
    pthread_t tids[nt];
    double t0 = hs_now();
    for (uint64_t t = 0; t < nt; t++) {
        args[t] = (rc_arg_t){t, 0};
        hs_thread_start(&tids[t], rc_thread, &args[t]);
    }
    uint64_t ops = 0;
    for (uint64_t t = 0; t < nt; t++) {
        hs_thread_join(tids[t]);
        ops += args[t].ops;
    }
    /* A chain parked in the exchange when every thread had finished: finish it here. */
    if (rc_xchg.p != NULL) {
        hs_rng_t r = hs_rng_make(rc_c.seed, 0x4C415354ull /* "LAST" */, 0);
        rc_check(&rc_xchg, rc_xchg.p, rc_xchg.n, "left in the exchange");
        while (rc_step(&rc_xchg, &r))
            ops++;
    }
    double secs = hs_now() - t0;

    char extra[64];
    snprintf(extra, sizeof extra, " max=%llu", (unsigned long long)rc_max);
    hs_report(&rc_c, ops, secs, extra);
    return 0;
}
