/* Superslabs: 2 MiB-aligned regions carved into slabs, and the region map.
 *
 *   region (2 MiB, aligned)
 *   |-- unit 0: header ----|-- unit 1 --|-- unit 2 --| ... |-- unit 31 --|
 *   | hk_superslab_t        | slab A (1 unit)  | slab B (2 units)  | free  |
 *
 * Invariants (checked by hk_superslab_check()):
 *   - a pointer's region is p & ~(2 MiB-1) and is confirmed by hk_region_kind[] == HK_REGION_SS;
 *   - a slab's class and owner live in its descriptor in the header, never next to a block;
 *   - unit_slab[u] is the first unit of the slab that covers unit u (0 for free units and unit 0);
 *   - for every active slab: used + local_count + held + uncarved == capacity, and |remote| <= used
 *     (used counts live blocks, blocks in a thread cache and remote-pending ones until drained;
 *     held counts the free blocks that overlap a page given back with the slab still in use, a
 *     "hole", and those of a page being vacated: they are on no list until the owner takes the
 *     holes back or stops vacating, see tiny/tcache.c);
 *   - only the owner (owner == its heap token) touches local_free, bump, used, local_count and the list
 *     links; other threads only push to `remote` (release CAS); the owner drains it with an exchange.
 */
#ifndef HK_SUPERSLAB_H
#define HK_SUPERSLAB_H

#include "common.h"
#include "superslab/lock.h"
#include "superslab/os.h"

#define HK_SS_MAGIC 0x48414b4d454d5353ull /* "HAKMEMSS" */

enum { HK_REGION_NONE = 0, HK_REGION_SS = 1 };

/* Owner tokens: 0 = a thread whose heap is not initialised, 1 = nobody (free or abandoned slab),
 * >= 2 = a live heap. Tokens are never reused, so a stale owner can never match a new thread. */
#define HK_OWNER_UNINIT 0u
#define HK_OWNER_NONE 1u

enum { HK_LIST_NONE = 0, HK_LIST_CUR, HK_LIST_PARTIAL, HK_LIST_FULL, HK_LIST_ABANDONED };

/* A slab descriptor: the owner's fields in the first cache line; `remote`, written by other
 * threads, alone in the second, so remote frees do not evict the owner's line. The owner token
 * and class live in the region's per-unit arrays (one load on the free fast path). */
typedef struct hk_slab {
    void *local_free;           /* owner-only free list */
    char *start;                /* first block */
    char *bump;                 /* uncarved blocks are [bump, end) */
    char *end;                  /* start + capacity * block_size */
    uint64_t div_magic;         /* UINT64_MAX / block_size + 1: exact division and divisibility */
    uint32_t block_size;
    uint32_t capacity;
    uint32_t used;              /* blocks outside local_free and uncarved: live, cached or remote-pending */
    uint32_t local_count;
    struct hk_slab *next, *prev;/* the owner's class list, or the abandoned list */
    uint8_t cls;
    uint8_t units;
    uint8_t first_unit;
    uint8_t list;               /* HK_LIST_* */
    char *committed;            /* page-aligned end of the pages the slab may have made resident (the
                                 * highest bump, rounded up); past it, up to its last unit, none are */
    uint64_t holes;             /* bit k: page k of the slab (from start) was given back while the slab
                                 * was in use; every block overlapping it is held (owner only) */
    uint32_t held;              /* blocks overlapping a hole, and blocks of a page being vacated: free,
                                 * on no list (held == vacated iff holes == 0) */
    uint32_t vacated;           /* of those, the blocks of the owner's page being vacated (tiny/tcache.c) */
    struct hk_slab *hole_next;  /* the owner's list of its slabs of this class that have holes */
    _Alignas(64) _Atomic uintptr_t remote; /* remote-free stack head (link-encoded like every free list) */
} hk_slab_t;

typedef struct hk_superslab {
    uint64_t magic;
    struct hk_superslab *next, *prev; /* every live region, under hk_ss_lock */
    uint32_t free_mask;               /* bit u set: unit u is free (bit 0 never) */
    uint32_t dirty_mask;              /* free units whose pages were not yet given back */
    uint32_t live_slabs;
    uint8_t unit_slab[HK_UNITS];
    uint8_t unit_cls[HK_UNITS];       /* class of the slab covering each unit */
    _Alignas(64) _Atomic uint64_t unit_owner[HK_UNITS]; /* owner token of the slab covering each unit */
    hk_slab_t slabs[HK_UNITS];        /* indexed by a slab's first unit */
} hk_superslab_t;

_Static_assert(sizeof(hk_superslab_t) <= HK_UNIT_SIZE, "the header must fit in unit 0");

#define HK_ALL_UNITS_FREE (~(uint32_t)1) /* units 1..31 */

/* The region map: one byte per 2 MiB of address space (64 MiB of untouched bss on x86-64: only the
 * pages covering regions in use become resident). */
extern HK_HIDDEN uint8_t hk_region_kind[HK_MAP_ENTRIES];

HK_INLINE int hk_region_is_ss(uintptr_t a) {
#if HAK_HARDENED
    /* one test for a non-canonical or kernel address: its map index is past the map */
    uintptr_t i = a >> HK_SS_SHIFT;
    if (HAK_UNLIKELY(i >= HK_MAP_ENTRIES)) return 0;
    return __atomic_load_n(&hk_region_kind[i], __ATOMIC_RELAXED) == HK_REGION_SS;
#else
    return __atomic_load_n(&hk_region_kind[(a >> HK_SS_SHIFT) & (HK_MAP_ENTRIES - 1)], __ATOMIC_RELAXED) == HK_REGION_SS;
#endif
}
HK_INLINE hk_superslab_t *hk_ss_of(uintptr_t a) { return (hk_superslab_t *)(a & ~(uintptr_t)HK_SS_MASK); }
HK_INLINE hk_slab_t *hk_slab_of(uintptr_t a) {
    hk_superslab_t *ss = hk_ss_of(a);
    return &ss->slabs[ss->unit_slab[(a >> HK_UNIT_SHIFT) & (HK_UNITS - 1)]];
}
HK_INLINE uint64_t hk_slab_owner(const hk_slab_t *s) {
    return atomic_load_explicit(&hk_ss_of((uintptr_t)s)->unit_owner[s->first_unit], memory_order_relaxed);
}
/* Sets the owner of every unit of s (slow paths: new, release, abandon, adopt). */
HK_INLINE void hk_slab_set_owner(hk_slab_t *s, uint64_t token) {
    hk_superslab_t *ss = hk_ss_of((uintptr_t)s);
    for (unsigned u = 0; u < s->units; u++)
        atomic_store_explicit(&ss->unit_owner[s->first_unit + u], token, memory_order_release);
}

/* Index of the block at byte offset off (exact for off < 2^32). */
HK_INLINE uint32_t hk_slab_index(const hk_slab_t *s, uintptr_t off) {
    return (uint32_t)(((unsigned __int128)s->div_magic * off) >> 64);
}
/* Whether off is a multiple of the block size (Lemire's divisibility test). */
HK_INLINE int hk_slab_on_boundary(const hk_slab_t *s, uintptr_t off) { return off * s->div_magic <= s->div_magic - 1; }
/* Pages of a slab that the hole mask covers (slabs of more pages never get holes). */
#define HK_HOLE_MAX_PAGES 64u
/* Whether the block at byte offset off of s overlaps one of its holes (then it is held). */
HK_INLINE int hk_slab_in_hole(const hk_slab_t *s, uintptr_t off) {
    if (s->holes == 0) return 0;
    uintptr_t k0 = off / HK_PAGE, k1 = (off + s->block_size - 1) / HK_PAGE;
    if (k0 >= HK_HOLE_MAX_PAGES) return 0;
    if (k1 >= HK_HOLE_MAX_PAGES) k1 = HK_HOLE_MAX_PAGES - 1;
    return (s->holes & ((~(uint64_t)0 >> (63 - (k1 - k0))) << k0)) != 0;
}

/* The pages of s that count as resident in its owner's ledger (hk_heap_t.resident): those up to its
 * committed mark, less its holes. */
HK_INLINE int64_t hk_slab_resident(const hk_slab_t *s) {
    return (int64_t)((size_t)(s->committed - s->start) / HK_PAGE) - __builtin_popcountll(s->holes);
}

/* Takes a slab for class cls (units, block size from the class table), owned by `owner`. NULL if out of memory. */
HK_HIDDEN hk_slab_t *hk_ss_slab_new(int cls, uint64_t owner);
/* Gives an empty slab (used == 0) back to its region. The caller owns it and has unlinked it. */
HK_HIDDEN void hk_ss_slab_release(hk_slab_t *s);
/* Maps the prewarm regions. */
HK_HIDDEN void hk_ss_init(void);
/* Gives back every dirty unit now, and unmaps empty regions beyond the reuse budget. */
HK_HIDDEN void hk_ss_trim(void);
/* Calls fn on every region with hk_ss_lock held. */
HK_HIDDEN void hk_ss_foreach(void (*fn)(hk_superslab_t *, void *), void *arg);
HK_HIDDEN void hk_ss_lock_all(void);
HK_HIDDEN void hk_ss_unlock_all(void);
HK_HIDDEN void hk_ss_reset_locks(void);
/* Invariant checker of one region (cost: O(slabs)); fills msg and returns 0 on failure. */
HK_HIDDEN int hk_superslab_check(hk_superslab_t *ss, const char **check, char *msg, size_t len);

typedef struct hk_ss_counters {
    _Atomic uint64_t regions_live, slabs_live, lean_decommit, lean_retire;
} hk_ss_counters_t;
extern HK_HIDDEN hk_ss_counters_t hk_ss_counters;

#endif
