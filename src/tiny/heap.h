/* The thread heap: per-class thread caches (the TLS SLL) and the slabs the thread owns.
 *
 * Invariants:
 *   - every block in tc[c] belongs to a slab of class c owned by this heap (only the owner pushes);
 *   - cap - room is the length of tc[c].head's list; a list never has a cycle;
 *   - a slab is on exactly one of this heap's lists for its class (cur, partial, full) while owned;
 *     full_tail[c] is the last slab of full[c];
 *   - cap is read from the knobs on slow paths only; any cap is safe: a cache over its cap is
 *     flushed on the next free, never lost.
 * hk_heap_check_thread() (tiny/check.c) verifies these for the calling thread.
 */
#ifndef HK_HEAP_H
#define HK_HEAP_H

#include "common.h"
#include "hardened/checks.h"
#include "hardened/harden.h"
#include "superslab/superslab.h"
#include "tiny/sizeclass.h"
#include "trace/trace.h"

typedef struct hk_tcache {
    void *head;     /* first free block (link-encoded list) */
    int32_t room;   /* cap - count: a free that makes it negative flushes */
    uint32_t cap;   /* most blocks kept (read from the knobs on slow paths) */
} hk_tcache_t;

HK_INLINE uint32_t hk_tc_count(const hk_tcache_t *tc) { return (uint32_t)((int64_t)tc->cap - tc->room); }

/* Empty slabs a thread keeps per class before giving slabs back to their region: hysteresis, so a
 * class whose live count hovers around a slab boundary does not map, fault and decommit a slab on
 * every crossing. */
#define HK_SPARE_SLABS 1

enum { HK_HEAP_UNINIT = 0, HK_HEAP_ACTIVE = 1, HK_HEAP_DEAD = 2 };

typedef struct hk_heap_stats {
    uint64_t refills, refill_blocks, flushes, flush_blocks, remote_frees, drains, drained_blocks;
    uint64_t slabs_new, slabs_released, adopted, abandoned;
    uint64_t borrowed; /* lean mode: mallocs of the class served by a block of a larger class */
    uint64_t traded;   /* lean mode: pages the class took after giving back another slab's free tail or page */
    uint64_t holes;    /* lean mode: pages of the class's slabs given back while in use (holes punched) */
    uint64_t holes_back; /* holes of the class's slabs taken back (made resident again) */
    uint64_t vacated;  /* lean mode: of those holes, pages vacated (steered empty while blocks were live) */
} hk_heap_stats_t;

/* Words of a bitmap with a bit per block overlapping one page (blocks of 8 bytes and more). */
#define HK_PAGE_BLOCK_WORDS ((HK_PAGE / 8u + 1u + 63u) / 64u)

typedef struct hk_heap {
    hk_tcache_t tc[HK_NCLASSES]; /* hot: the fast path touches only this and token */
    uint64_t token;              /* owner token of this heap's slabs (HK_OWNER_UNINIT until init) */
    hk_trace_cur_t trace;        /* trace/trace.h: the ring cursor, here so that the recording fast paths
                                  * reach it from the heap's TLS base */
    uint32_t epoch;              /* knob epoch the caps were read at */
    uint32_t state;              /* HK_HEAP_* */
    uint32_t batch[HK_NCLASSES];
    hk_slab_t *cur[HK_NCLASSES];     /* the slab refills carve from */
    hk_slab_t *partial[HK_NCLASSES]; /* owned slabs with local free blocks (or, parked by a refill, uncarved ones) */
    hk_slab_t *full[HK_NCLASSES];    /* owned slabs with nothing local (remote frees may be pending); a
                                      * FIFO: a slab joins at the tail, the refill's scan reads the head */
    hk_slab_t *full_tail[HK_NCLASSES]; /* the full list's last slab (NULL when empty) */
    uint8_t empty[HK_NCLASSES];      /* empty slabs kept on the partial list (at most HK_SPARE_SLABS) */
    uint64_t refills;                /* refills of this heap, all classes */
    uint64_t grown_at[HK_NCLASSES];  /* lean mode: `refills` when the class last grew */
    uint64_t debt_at[HK_NCLASSES];   /* lean mode: `refills` when the class's borrowing window began */
    uint32_t debt[HK_NCLASSES];      /* lean mode: blocks borrowed from larger classes in the window, less own refills */
    int64_t resident;                /* pages of this heap's slabs it made resident less those it gave back
                                      * (a ledger kept on the slow paths in every mode, tiny/tcache.c) */
    int64_t resident_peak;           /* the most `resident` has been (since the last hak_collect) */
    int64_t resident_cap;            /* lean mode: the pages the heap keeps to once settled (0: not yet):
                                      * the peak at that moment; pages above it are owed (hk_heap_repay) */
    uint32_t repay_tries;            /* attempts left to repay the oldest owed page (hk_heap_repay) */
    uint64_t repay_at;               /* `refills` at the last attempt */
    hk_slab_t *holed[HK_NCLASSES];   /* lean mode: the class's slabs owned here that have holes (linked by
                                      * hole_next); the first takes a hole back before the class grows */
    hk_slab_t *vacate;               /* lean mode: the slab of the page being vacated (hk_heap_repay), or NULL */
    uint32_t vacate_page;            /* that page (from the slab's start) ... */
    uint32_t vacate_first, vacate_last; /* ... and the first and last block overlapping it */
    uint64_t vacate_bits[HK_PAGE_BLOCK_WORDS]; /* blocks of the page held so far (bit i: vacate_first + i) */
    hk_heap_stats_t cls_stats[HK_NCLASSES];
} hk_heap_t;

extern HK_HIDDEN __thread hk_heap_t hk_tls_heap __attribute__((tls_model("initial-exec")));

/* ---- fast paths ---------------------------------------------------------------------------------- */

/* Pops b, the head of tc[cls] (not NULL). */
HK_INLINE void *hk_tcache_pop_head(hk_heap_t *h, unsigned cls, void *b) {
    hk_tcache_t *tc = &h->tc[cls];
    if (HAK_HARDENED && HAK_UNLIKELY(hk_harden_pop_bad(b, cls))) return hk_harden_alloc_fault(b, cls);
    tc->head = hk_link_get(b);
    tc->room++;
    if (HAK_HARDENED) hk_harden_on_alloc(b, cls);
    return b;
}

HK_INLINE void *hk_tcache_pop(hk_heap_t *h, unsigned cls) {
    void *b = h->tc[cls].head;
    if (HAK_UNLIKELY(b == NULL)) return NULL;
    return hk_tcache_pop_head(h, cls, b);
}

HK_HIDDEN void hk_tcache_flush(hk_heap_t *h, unsigned cls);
HK_HIDDEN void hk_free_remote(hk_slab_t *s, void *p);

/* Pushes a block (already checked) onto this thread's cache of its class; flushes when over the cap. */
HK_INLINE void hk_tcache_push(hk_heap_t *h, unsigned cls, void *p) {
    hk_tcache_t *tc = &h->tc[cls];
    hk_link_set(p, tc->head);
    tc->head = p;
    if (HAK_UNLIKELY(--tc->room < 0)) hk_tcache_flush(h, cls);
}

/* Frees a block of a region. Returns after pushing it to this thread's cache, or to the slab's
 * remote stack when another thread owns the slab. */
HK_INLINE void hk_slab_free(void *p) {
    uintptr_t a = (uintptr_t)p;
    hk_superslab_t *ss = hk_ss_of(a);
    unsigned u = (unsigned)(a >> HK_UNIT_SHIFT) & (HK_UNITS - 1);
    hk_heap_t *h = &hk_tls_heap;
    /* Owner and class come from per-unit arrays: both loads depend only on p. The hardened checks
     * need the class first; the release path loads it only for a local push, as it always did. */
    unsigned hcls = 0;
    if (HAK_HARDENED) {
        hcls = ss->unit_cls[u];
        if (HAK_UNLIKELY(hk_harden_free_bad(p, ss, u, hcls))) {
            hk_harden_free_fault(p); /* does not return; a tail call */
            return;
        }
    }
    if (HAK_LIKELY(atomic_load_explicit(&ss->unit_owner[u], memory_order_relaxed) == h->token)) {
        hk_tcache_push(h, HAK_HARDENED ? hcls : ss->unit_cls[u], p);
        return;
    }
    hk_free_remote(hk_slab_of(a), p);
}

/* ---- slow paths ---------------------------------------------------------------------------------- */
/* Refills the cache of `cls` and pops one block; NULL when out of memory. Unless `exact`, lean mode may
 * return a free block of a larger class (up to twice the size) instead of making a page resident:
 * callers that need the class's alignment (memalign) pass exact. */
HK_HIDDEN void *hk_tcache_refill(unsigned cls, int exact);
/* Initialises the calling thread's heap (idempotent). */
HK_HIDDEN void hk_heap_init(hk_heap_t *h);
/* Gives back everything of the calling thread: caches flushed, empty slabs released, the rest abandoned. */
HK_HIDDEN void hk_heap_teardown(hk_heap_t *h);
/* Flushes every cache of the calling thread and releases its empty slabs (keeps the heap). */
HK_HIDDEN void hk_heap_collect(hk_heap_t *h);
/* In a forked child: slabs owned by threads that do not exist in the child become abandoned. */
HK_HIDDEN void hk_heap_fork_child(void);
/* api/init.c: arms the thread-exit destructor for the calling thread (may allocate). */
HK_HIDDEN void hk_thread_register(void);
HK_HIDDEN void hk_abandon_lock_all(void);
HK_HIDDEN void hk_abandon_unlock_all(void);
HK_HIDDEN void hk_abandon_reset_locks(void);
/* Counters of exited threads, summed (under a lock) when each thread exits. */
HK_HIDDEN void hk_heap_stats_sum(hk_heap_stats_t out[HK_NCLASSES]);

#endif
