/* stress/mixed.h — the "random mixed" working-set workload, shared by random_mixed.c and soak.c.
 *
 * A working set of ws slots; each step picks a slot uniformly, frees its block if occupied
 * (after checking its stamps) and allocates a new block of a uniform size in [min, max], stamped
 * with a tag derived from (seed, owner id, step). With ws=400 and 16–1024 B this is the "Mixed
 * WS=400" workload of the reference numbers. Header-only so the hot step inlines into each program
 * and follows that program's alloc_api.h mapping.
 */
#ifndef HAK_STRESS_MIXED_H
#define HAK_STRESS_MIXED_H

#include "alloc_api.h"
#include "common.h"

#define HS_HW_BUCKETS 64

typedef struct hs_mixed {
    void **ptr;       /* ws slots, NULL when empty */
    uint64_t *tag;    /* tag of the block in each slot */
    uint32_t *size;   /* requested size of the block in each slot */
    uint64_t ws, min, max;
    uint64_t seed, owner; /* owner: distinguishes threads' tags */
    uint64_t steps;       /* steps done so far */
    uint64_t live_bytes;  /* requested bytes currently held */
    hs_rng_t rng;
    hs_stamp_level_t stamp;
    int check_usable; /* also check malloc_usable_size >= size on every 64th allocation */
    /* The live set's high-water mark, allocator-neutral (soak): per 64-byte size bucket, the most
     * blocks ever live at once; hw_bytes = sum of peak x bucket top. It grows only when some bucket
     * reaches a new peak, which any allocator must back with memory. Kept when track_hw is set. */
    int track_hw;
    uint64_t hw_bytes;
    uint32_t bucket_live[HS_HW_BUCKETS], bucket_peak[HS_HW_BUCKETS];
} hs_mixed_t;

/* The size bucket of a request for the high-water mark: 64 bytes wide, the last open-ended. */
static inline unsigned hs_hw_bucket(uint64_t n)
{
    uint64_t b = (n - 1) / 64;
    return b < HS_HW_BUCKETS - 1 ? (unsigned)b : HS_HW_BUCKETS - 1;
}

static inline void hs_mixed_init(hs_mixed_t *m, uint64_t seed, uint64_t owner, uint64_t ws,
                                 uint64_t min, uint64_t max, hs_stamp_level_t stamp, int check_usable)
{
    memset(m, 0, sizeof *m);
    if (ws == 0 || min == 0 || max < min || max > UINT32_MAX)
        hs_fatal("mixed: bad parameters ws=%llu min=%llu max=%llu", (unsigned long long)ws,
                 (unsigned long long)min, (unsigned long long)max);
    m->ws = ws;
    m->min = min;
    m->max = max;
    m->seed = seed;
    m->owner = owner;
    m->stamp = stamp;
    m->check_usable = check_usable;
    m->rng = hs_rng_make(seed, 0x4D495845ull /* "MIXE" */, owner);
    /* Bookkeeping comes from the allocator under test too: it is part of a real program's heap. */
    m->ptr = (void **)S_CALLOC(ws, sizeof *m->ptr);
    m->tag = (uint64_t *)S_CALLOC(ws, sizeof *m->tag);
    m->size = (uint32_t *)S_CALLOC(ws, sizeof *m->size);
    HS_CHECK_ALLOC(m->ptr, ws * sizeof *m->ptr);
    HS_CHECK_ALLOC(m->tag, ws * sizeof *m->tag);
    HS_CHECK_ALLOC(m->size, ws * sizeof *m->size);
    for (uint64_t i = 0; i < ws; i++)
        if (m->ptr[i] != NULL || m->size[i] != 0)
            hs_fatal("calloc(%llu, %zu) returned non-zero memory at slot %llu",
                     (unsigned long long)ws, sizeof *m->ptr, (unsigned long long)i);
}

/* Frees slot i if occupied, after checking its stamps. */
static inline void hs_mixed_release(hs_mixed_t *m, uint64_t i)
{
    void *p = m->ptr[i];
    if (p != NULL) {
        hs_verify(p, m->size[i], m->tag[i], m->stamp, "slot", i);
        m->live_bytes -= m->size[i];
        if (m->track_hw)
            m->bucket_live[hs_hw_bucket(m->size[i])]--;
        S_FREE(p);
        m->ptr[i] = NULL;
    }
}

/* Fills slot i (which must be empty) with a new block of size n. */
static inline void hs_mixed_fill(hs_mixed_t *m, uint64_t i, uint64_t n)
{
    void *p = S_MALLOC(n);
    HS_CHECK_ALLOC(p, n);
    if (m->check_usable && (m->steps & 63) == 0) {
        size_t us = S_MALLOC_USABLE_SIZE(p);
        if (us < n)
            hs_fatal("malloc_usable_size(%p) = %zu < requested %llu", p, us, (unsigned long long)n);
    }
    uint64_t tag = hs_tag(m->seed, (m->owner << 32) ^ i, m->steps);
    hs_stamp(p, n, tag, m->stamp);
    m->ptr[i] = p;
    m->tag[i] = tag;
    m->size[i] = (uint32_t)n;
    m->live_bytes += n;
    if (m->track_hw) {
        unsigned b = hs_hw_bucket(n);
        if (++m->bucket_live[b] > m->bucket_peak[b]) {
            m->bucket_peak[b] = m->bucket_live[b];
            m->hw_bytes += b < HS_HW_BUCKETS - 1 ? (uint64_t)(b + 1) * 64 : m->max;
        }
    }
}

/* One step of the workload. */
static inline void hs_mixed_step(hs_mixed_t *m)
{
    uint64_t i = hs_rng_below(&m->rng, m->ws);
    hs_mixed_release(m, i);
    hs_mixed_fill(m, i, hs_rng_range(&m->rng, m->min, m->max));
    m->steps++;
}

/* Checks and frees every live block; the working set can be refilled afterwards. */
static inline void hs_mixed_drain(hs_mixed_t *m)
{
    for (uint64_t i = 0; i < m->ws; i++)
        hs_mixed_release(m, i);
}

static inline void hs_mixed_destroy(hs_mixed_t *m)
{
    hs_mixed_drain(m);
    S_FREE(m->ptr);
    S_FREE(m->tag);
    S_FREE(m->size);
    memset(m, 0, sizeof *m);
}

#endif /* HAK_STRESS_MIXED_H */
