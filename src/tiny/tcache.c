/* Thread caches: refill from slabs, flush to slabs, remote frees, thread exit and adoption. */
#include <string.h>

#include "config/config.h"
#include "tiny/heap.h"

HK_HIDDEN __thread hk_heap_t hk_tls_heap __attribute__((tls_model("initial-exec")));

static _Atomic uint64_t hk_next_token = 2;

/* Slabs whose owner exited with blocks still live, per class; adopted by threads that need a slab. */
static hk_lock_t hk_abandon_lock = HK_LOCK_INIT;
static hk_slab_t *hk_abandoned[HK_NCLASSES];
static _Atomic uint32_t hk_abandoned_count; /* slabs on the lists, for a lock-free "any?" */
#define HK_ABANDONED_SWEEP_AT 64u
static hk_heap_stats_t hk_exited_stats[HK_NCLASSES]; /* under hk_abandon_lock */



/* ---- list helpers (owner only) -------------------------------------------------------------- */
static hk_slab_t **hk_list_head(hk_heap_t *h, hk_slab_t *s) {
    switch (s->list) {
    case HK_LIST_PARTIAL: return &h->partial[s->cls];
    case HK_LIST_FULL: return &h->full[s->cls];
    default: return NULL;
    }
}

static void hk_list_remove(hk_heap_t *h, hk_slab_t *s) {
    if (s->list == HK_LIST_CUR) {
        h->cur[s->cls] = NULL;
    } else {
        hk_slab_t **head = hk_list_head(h, s);
        if (s->list == HK_LIST_FULL && h->full_tail[s->cls] == s) h->full_tail[s->cls] = s->prev;
        if (head) {
            if (s->prev) s->prev->next = s->next;
            else *head = s->next;
            if (s->next) s->next->prev = s->prev;
        }
    }
    s->next = s->prev = NULL;
    s->list = HK_LIST_NONE;
}

static void hk_list_push(hk_heap_t *h, hk_slab_t *s, uint8_t list) {
    s->list = list;
    if (list == HK_LIST_CUR) {
        h->cur[s->cls] = s;
        return;
    }
    if (list == HK_LIST_FULL) { /* FIFO: at the tail */
        hk_slab_t *last = h->full_tail[s->cls];
        s->next = NULL;
        s->prev = last;
        if (last) last->next = s;
        else h->full[s->cls] = s;
        h->full_tail[s->cls] = s;
        return;
    }
    hk_slab_t **head = hk_list_head(h, s);
    s->prev = NULL;
    s->next = *head;
    if (*head) (*head)->prev = s;
    *head = s;
}

/* ---- draining the remote stack ------------------------------------------------------------- */
/* Moves every remotely freed block of s onto its local list. Returns how many. Owner only. */
static uint32_t hk_slab_drain(hk_heap_t *h, hk_slab_t *s) {
    if (atomic_load_explicit(&s->remote, memory_order_relaxed) == 0) return 0;
    void *head = (void *)atomic_exchange_explicit(&s->remote, 0, memory_order_acquire);
    if (head == NULL) return 0;
    uint32_t n = 1;
    void *tail = head;
    hk_harden_check_slab_block(s, head);
    for (void *next; (next = hk_link_get(tail)) != NULL; tail = next) {
        hk_harden_check_slab_block(s, next);
        if (HAK_UNLIKELY(++n > s->capacity)) hk_report(HK_FAULT_LINK_CORRUPT, tail, s->cls); /* a cycle */
    }
    hk_link_set(tail, s->local_free);
    s->local_free = head;
    s->local_count += n;
    s->used -= n;
    h->cls_stats[s->cls].drains++;
    h->cls_stats[s->cls].drained_blocks += n;
    return n;
}

/* ---- releasing and abandoning ------------------------------------------------------------- */
static void hk_holed_unlink(hk_heap_t *h, hk_slab_t *s);
static void hk_slab_fill_holes(hk_heap_t *h, hk_slab_t *s, uint64_t mask);

static void hk_vacate_forget(hk_heap_t *h);

/* Pages made resident, in the heap's ledger (and its peak). */
static inline void hk_ledger_add(hk_heap_t *h, int64_t pages) {
    h->resident += pages;
    if (h->resident > h->resident_peak) h->resident_peak = h->resident;
}

static void hk_slab_give_back(hk_heap_t *h, hk_slab_t *s) {
    if (s->holes) hk_holed_unlink(h, s); /* its holes go with its pages */
    if (s == h->vacate) hk_vacate_forget(h); /* and the page being vacated */
    h->resident -= hk_slab_resident(s);
    hk_list_remove(h, s);
    h->cls_stats[s->cls].slabs_released++;
    hk_ss_slab_release(s);
}

/* Puts a slab nobody owns on its class's abandoned list (lock held, or single-threaded). */
static void hk_abandoned_push_locked(hk_slab_t *s) {
    s->list = HK_LIST_ABANDONED;
    hk_slab_set_owner(s, HK_OWNER_NONE);
    s->prev = NULL;
    s->next = hk_abandoned[s->cls];
    if (s->next) s->next->prev = s;
    __atomic_store_n(&hk_abandoned[s->cls], s, __ATOMIC_RELAXED);
    atomic_fetch_add_explicit(&hk_abandoned_count, 1, memory_order_relaxed);
}

static void hk_abandoned_unlink_locked(hk_heap_t *h, hk_slab_t *s);

/* The abandoning side of a handshake with hk_free_remote. A free that still saw the old owner may
 * push to the remote stack after the owner's last drain; then no later free need come to adopt the
 * slab. So: the owner is stored as none with a seq_cst store, then the remote stack is loaded
 * (seq_cst); the freeing side does its CAS, then loads the owner (both seq_cst). One of the two sees
 * the other: either the freer finds no owner and adopts, or blocks are found here and drained (the
 * lock keeps adopters out meanwhile), and an emptied slab is given back. Lock held. */
static void hk_abandoned_settle_locked(hk_heap_t *h, hk_slab_t *s) {
    atomic_store_explicit(&hk_ss_of((uintptr_t)s)->unit_owner[s->first_unit], HK_OWNER_NONE, memory_order_seq_cst);
    if (atomic_load_explicit(&s->remote, memory_order_seq_cst) == 0) return;
    hk_slab_drain(h, s);
    if (s->used == 0) {
        hk_abandoned_unlink_locked(h, s);
        h->cls_stats[s->cls].slabs_released++;
        hk_ss_slab_release(s);
    }
}

static void hk_vacate_stop(hk_heap_t *h);

static void hk_slab_abandon(hk_heap_t *h, hk_slab_t *s) {
    if (s == h->vacate) hk_vacate_stop(h); /* an adopter would not know its held blocks ... */
    if (s->holes) hk_slab_fill_holes(h, s, s->holes); /* ... nor its holes */
    h->resident -= hk_slab_resident(s);
    hk_list_remove(h, s);
    h->cls_stats[s->cls].abandoned++;
    hk_lock(&hk_abandon_lock);
    hk_abandoned_push_locked(s);
    hk_abandoned_settle_locked(h, s);
    hk_unlock(&hk_abandon_lock);
}

/* Takes a given slab off the abandoned list (lock held) and makes h its owner. */
static void hk_abandoned_unlink_locked(hk_heap_t *h, hk_slab_t *s) {
    if (s->prev) s->prev->next = s->next;
    else __atomic_store_n(&hk_abandoned[s->cls], s->next, __ATOMIC_RELAXED);
    if (s->next) s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->list = HK_LIST_NONE;
    hk_slab_set_owner(s, h->token);
    atomic_fetch_sub_explicit(&hk_abandoned_count, 1, memory_order_relaxed);
}

static hk_slab_t *hk_slab_adopt(hk_heap_t *h, unsigned cls) {
    if (__atomic_load_n(&hk_abandoned[cls], __ATOMIC_RELAXED) == NULL) return NULL;
    hk_lock(&hk_abandon_lock);
    hk_slab_t *s = hk_abandoned[cls];
    if (s) hk_abandoned_unlink_locked(h, s);
    hk_unlock(&hk_abandon_lock);
    if (s) {
        h->cls_stats[cls].adopted++;
        hk_ledger_add(h, hk_slab_resident(s));
    }
    return s;
}

/* Drains up to `budget` abandoned slabs and gives back those that became empty; the others go back
 * on their list. Bounds what exited threads leave behind when nobody adopts their classes. */
static void hk_abandoned_reclaim(hk_heap_t *h, unsigned budget) {
    for (unsigned c = 0; c < HK_NCLASSES && budget > 0; c++) {
        if (__atomic_load_n(&hk_abandoned[c], __ATOMIC_RELAXED) == NULL) continue;
        /* Detach up to `budget` slabs of the class, then work on them without the lock. */
        hk_slab_t *batch = NULL;
        hk_lock(&hk_abandon_lock);
        while (budget > 0 && hk_abandoned[c]) {
            hk_slab_t *s = hk_abandoned[c];
            hk_abandoned_unlink_locked(h, s);
            s->next = batch;
            batch = s;
            budget--;
        }
        hk_unlock(&hk_abandon_lock);
        while (batch) {
            hk_slab_t *s = batch;
            batch = s->next;
            s->next = NULL;
            hk_slab_drain(h, s);
            if (s->used == 0) {
                h->cls_stats[c].slabs_released++;
                hk_ss_slab_release(s);
            } else {
                /* live blocks remain: back on the list. It is on no heap list, so no list write
                 * happens outside the lock (a freeing thread reads s->list under it). */
                hk_lock(&hk_abandon_lock);
                hk_abandoned_push_locked(s);
                hk_abandoned_settle_locked(h, s);
                hk_unlock(&hk_abandon_lock);
            }
        }
    }
}

#define HK_BIT(bits, i) (((bits)[(i) / 64] >> ((i) % 64)) & 1u)

/* ---- heap life cycle ------------------------------------------------------------------------ */
static void hk_heap_load_knobs(hk_heap_t *h) {
    h->epoch = __atomic_load_n(&hk_knobs.epoch, __ATOMIC_ACQUIRE);
    for (int c = 0; c < HK_NCLASSES; c++) {
        uint32_t cap = HK_KNOB(tcache_cap[c]);
        h->tc[c].room += (int32_t)cap - (int32_t)h->tc[c].cap; /* the count stays */
        h->tc[c].cap = cap;
        h->batch[c] = HK_MAX(1u, HK_KNOB(tcache_batch[c]));
    }
    if (!HK_KNOB(lean)) { /* only lean mode repays pages; switched on again, it settles anew */
        if (h->vacate != NULL) hk_vacate_stop(h);
        h->resident_cap = 0;
    }
}

void hk_heap_init(hk_heap_t *h) {
    if (h->state == HK_HEAP_ACTIVE) return;
    if (h->token == HK_OWNER_UNINIT) h->token = atomic_fetch_add_explicit(&hk_next_token, 1, memory_order_relaxed);
    h->state = HK_HEAP_ACTIVE;
    hk_heap_load_knobs(h);
    hk_thread_register(); /* may allocate (pthread_setspecific): the heap is usable already */
}

/* Whether b, a free block of s (the slab h is vacating a page of), lies in that page; then it is held
 * (marked in vacate_bits, counted in s->held and s->vacated) and goes on no list. */
static int hk_vacate_hold(hk_heap_t *h, hk_slab_t *s, void *b) {
    uint32_t i = hk_slab_index(s, (uintptr_t)b - (uintptr_t)s->start);
    if (i < h->vacate_first || i > h->vacate_last) return 0;
    i -= h->vacate_first;
    if (HAK_UNLIKELY(HK_BIT(h->vacate_bits, i))) hk_report(HK_FAULT_LINK_CORRUPT, b, s->cls); /* held twice */
    h->vacate_bits[i / 64] |= (uint64_t)1 << (i % 64);
    s->held++;
    s->vacated++;
    return 1;
}

/* Returns every block of a class cache to its slab (blocks of a page being vacated are held). */
static void hk_tcache_flush_n(hk_heap_t *h, unsigned cls, uint32_t n) {
    hk_tcache_t *tc = &h->tc[cls];
    h->cls_stats[cls].flushes++;
    h->cls_stats[cls].flush_blocks += n;
    while (n-- > 0 && tc->head) {
        void *b = tc->head;
        hk_harden_check_free_block(b, cls);
        tc->head = hk_link_get(b);
        tc->room++;
        hk_slab_t *s = hk_slab_of((uintptr_t)b);
        if (HAK_LIKELY(s != h->vacate) || !hk_vacate_hold(h, s, b)) {
            hk_link_set(b, s->local_free);
            s->local_free = b;
            s->local_count++;
        }
        if (--s->used == 0 && s->list != HK_LIST_CUR) {
            if (h->empty[cls] >= HK_SPARE_SLABS) {
                hk_slab_give_back(h, s);
                continue;
            }
            h->empty[cls]++; /* kept as the class's spare, on the partial list */
            if (s->list == HK_LIST_FULL) {
                hk_list_remove(h, s);
                hk_list_push(h, s, HK_LIST_PARTIAL);
            }
        } else if (s->list == HK_LIST_FULL) {
            hk_list_remove(h, s);
            hk_list_push(h, s, HK_LIST_PARTIAL);
        }
    }
}

void hk_tcache_flush(hk_heap_t *h, unsigned cls) {
    hk_tcache_t *tc = &h->tc[cls];
    if (HAK_UNLIKELY(h->epoch != __atomic_load_n(&hk_knobs.epoch, __ATOMIC_RELAXED))) hk_heap_load_knobs(h);
    if (tc->room >= 0) return;
    /* Down to half the cap: the next frees have room, the next allocations still hit. */
    hk_tcache_flush_n(h, cls, hk_tc_count(tc) - tc->cap / 2);
}

static size_t hk_heap_trim(hk_heap_t *h);

/* Flushes this heap's caches and gives back its empty slabs. sweep: also drain every abandoned slab
 * of exited threads and give back the empty ones, and trim the free tails of the slabs left
 * (hak_collect; not at thread exit, where it would only steal slabs other threads are about to
 * adopt). */
static void hk_heap_collect_own(hk_heap_t *h, int sweep) {
    if (h->state == HK_HEAP_UNINIT) hk_heap_init(h);
    if (h->state != HK_HEAP_ACTIVE) return;
    if (sweep) hk_abandoned_reclaim(h, UINT32_MAX);
    for (unsigned c = 0; c < HK_NCLASSES; c++) {
        hk_tcache_flush_n(h, c, hk_tc_count(&h->tc[c]));
        hk_slab_t *lists[3] = {h->cur[c], h->partial[c], h->full[c]};
        for (int l = 0; l < 3; l++) {
            for (hk_slab_t *s = lists[l], *next; s; s = next) {
                next = (l == 0) ? NULL : s->next;
                hk_slab_drain(h, s);
                if (s->used == 0) hk_slab_give_back(h, s);
            }
        }
        h->empty[c] = 0; /* every empty slab was given back */
    }
    if (sweep) {
        hk_heap_trim(h); /* hak_collect: the free tails of the slabs still in use too */
        h->resident_peak = h->resident; /* memory given back on purpose: the peak starts again */
    }
}

void hk_heap_collect(hk_heap_t *h) { hk_heap_collect_own(h, 1); }

void hk_heap_teardown(hk_heap_t *h) {
    if (h->state != HK_HEAP_ACTIVE) return;
    hk_heap_collect_own(h, 0);
    for (unsigned c = 0; c < HK_NCLASSES; c++) {
        while (h->cur[c]) hk_slab_abandon(h, h->cur[c]);
        while (h->partial[c]) hk_slab_abandon(h, h->partial[c]);
        while (h->full[c]) hk_slab_abandon(h, h->full[c]);
        h->tc[c].room = 0;
        h->tc[c].cap = 0;
    }
    hk_lock(&hk_abandon_lock);
    for (unsigned c = 0; c < HK_NCLASSES; c++) {
        uint64_t *dst = (uint64_t *)&hk_exited_stats[c], *src = (uint64_t *)&h->cls_stats[c];
        for (size_t i = 0; i < sizeof(hk_heap_stats_t) / sizeof(uint64_t); i++) dst[i] += src[i];
    }
    hk_unlock(&hk_abandon_lock);
    memset(h->cls_stats, 0, sizeof h->cls_stats);
    h->state = HK_HEAP_DEAD; /* a later malloc in this thread re-activates it with the same token */
}

void hk_heap_stats_sum(hk_heap_stats_t out[HK_NCLASSES]) {
    hk_lock(&hk_abandon_lock);
    memcpy(out, hk_exited_stats, sizeof hk_exited_stats);
    hk_unlock(&hk_abandon_lock);
}

/* ---- refill ------------------------------------------------------------------------------------ */
/* Carves up to `want` never-used blocks of s into a list; returns its head. */
static void *hk_slab_carve(hk_heap_t *h, hk_slab_t *s, uint32_t want, uint32_t *got) {
    size_t bs = s->block_size;
    uint32_t avail = (uint32_t)((size_t)(s->end - s->bump) / bs);
    uint32_t n = HK_MIN(want, avail);
    char *first = s->bump;
    for (uint32_t i = 0; i < n; i++) {
        char *b = first + i * bs;
        hk_link_set(b, i + 1 < n ? b + bs : NULL);
        if (HAK_HARDENED) hk_harden_on_carve(b, bs, s->cls);
    }
    s->bump += (size_t)n * bs;
    char *touched = (char *)HK_ALIGN_UP((uintptr_t)s->bump, (uintptr_t)HK_PAGE);
    if (touched > s->committed) {
        hk_ledger_add(h, (int64_t)((size_t)(touched - s->committed) / HK_PAGE));
        s->committed = touched;
    }
    *got = n;
    return first;
}

/* How many blocks a refill carves from s: a batch; in lean mode no more than reach the end of the
 * page the bump is in (at least one block). Carving writes every block it hands to the cache, so a
 * batch of 32 blocks of 1 KiB makes 32 KiB resident when the class needed one more block; lean mode
 * makes memory resident a page at a time instead. Carving is rare once a slab's free list carries
 * the load, so the extra refills cost little. */
static uint32_t hk_carve_want(const hk_heap_t *h, const hk_slab_t *s) {
    uint32_t want = h->batch[s->cls];
    if (HK_KNOB(lean)) {
        uintptr_t room = HK_ALIGN_UP((uintptr_t)s->bump + 1, (uintptr_t)HK_PAGE) - (uintptr_t)s->bump;
        want = HK_MIN(want, HK_MAX(1u, (uint32_t)(room / s->block_size)));
    }
    return want;
}

/* Full slabs a refill looks at for remote frees before it takes a new slab. */
#define HK_FULL_SCAN 16

/* Partial slabs a refill compares before taking one. */
#define HK_PARTIAL_SCAN 8

/* The next partial slab a refill takes: the fullest (most `used`) of the first HK_PARTIAL_SCAN on
 * the list, or NULL if the list is empty. Allocating from the fullest slabs leaves the sparse ones
 * to drain until they are empty and can be given back; taking any slab instead spreads a random
 * workload's live blocks over every slab it ever had. Slabs that gain free blocks from the full
 * list are pushed at the head, so the nearly full ones are the ones compared and sparse ones sink.
 * Bounded: a thread with thousands of partial slabs pays a few loads per refill. */
static hk_slab_t *hk_partial_pick(hk_heap_t *h, unsigned cls) {
    hk_slab_t *best = h->partial[cls];
    if (best == NULL) return NULL;
    hk_slab_t *s = best->next;
    for (unsigned i = 1; s != NULL && i < HK_PARTIAL_SCAN; i++, s = s->next)
        if (s->used > best->used) best = s;
    return best;
}

/* Moves the current slab of its class to the partial list (it still has uncarved blocks). An empty
 * one is counted as the class's spare, or given back when the class has its spares. */
static void hk_cur_park(hk_heap_t *h, hk_slab_t *s) {
    if (s->used == 0) {
        if (h->empty[s->cls] >= HK_SPARE_SLABS) {
            hk_slab_give_back(h, s);
            return;
        }
        h->empty[s->cls]++;
    }
    hk_list_remove(h, s);
    hk_list_push(h, s, HK_LIST_PARTIAL);
}

/* ---- a slab's free blocks as a bitmap (trimming and holes) ---------------------------------------- */
/* The most blocks a slab may have for hk_slab_trim and hk_slab_punch to look at it (the bitmap is on
 * the stack): one unit of the smallest class. */
#define HK_TRIM_MAX_BLOCKS (HK_UNIT_SIZE / 8u)

/* Marks the blocks of s's local list in bits (the first `carved` bits, cleared by the caller). A block
 * outside the carved part, twice on the list or more blocks than counted: the list is corrupt (checked
 * in every variant: the rebuild below would spread it). Returns how many were marked. */
static uint32_t hk_slab_free_bits(hk_slab_t *s, uint64_t *bits, uint32_t carved) {
    uint32_t n = 0;
    for (void *b = s->local_free; b != NULL; b = hk_link_get(b)) {
        hk_harden_check_slab_block(s, b);
        uint32_t i = hk_slab_index(s, (uintptr_t)b - (uintptr_t)s->start);
        if (HAK_UNLIKELY(i >= carved || HK_BIT(bits, i) || ++n > s->local_count)) hk_report(HK_FAULT_LINK_CORRUPT, b, s->cls);
        bits[i / 64] |= (uint64_t)1 << (i % 64);
    }
    return n;
}

/* Rebuilds s's local list from bits: the marked blocks below `limit`, in address order, so that the
 * next refills hand out the lowest blocks first and the live blocks gather at the slab's start.
 * Returns how many are on it. */
static uint32_t hk_slab_relist(hk_slab_t *s, const uint64_t *bits, uint32_t limit) {
    void *head = NULL, *last = NULL;
    uint32_t n = 0;
    for (uint32_t w = 0; w < (limit + 63) / 64; w++) {
        for (uint64_t m = bits[w]; m != 0; m &= m - 1) {
            uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(m);
            if (i >= limit) break;
            char *b = s->start + (size_t)i * s->block_size;
            if (last) hk_link_set(last, b);
            else head = b;
            last = b;
            n++;
        }
    }
    if (last) hk_link_set(last, NULL);
    s->local_free = head;
    return n;
}

/* Drains s's remote stack and marks its free blocks (those on its local list) in bits. Returns how many
 * blocks are carved, or 0 when s has no free block or is too large for the bitmap (bits untouched). */
static uint32_t hk_slab_free_map(hk_heap_t *h, hk_slab_t *s, uint64_t *bits) {
    hk_slab_drain(h, s);
    uint32_t carved = hk_slab_index(s, (uintptr_t)(s->bump - s->start));
    if (s->local_count == 0 || carved > HK_TRIM_MAX_BLOCKS) return 0;
    memset(bits, 0, (carved + 63) / 64 * sizeof bits[0]);
    hk_slab_free_bits(s, bits, carved);
    return carved;
}

/* ---- trimming a slab's free tail ------------------------------------------------------------------ */
/* Gives back the free tail of slab s (owner only; hak_collect, malloc_trim and lean trades). Its remote
 * stack is drained, then its free blocks (those on its local list) are marked in a bitmap: the run of
 * free blocks that ends at the bump becomes uncarved again (the bump moves down over it) and its pages
 * go back to the kernel; the local list is rebuilt in address order. A slab whose blocks are all live
 * or whose last block is live (or held) keeps its pages. spare: free blocks of the tail that stay
 * carved (on the rebuilt list). Keeps used + local_count + held + uncarved == capacity. Returns the
 * bytes given back. */
static size_t hk_slab_trim(hk_heap_t *h, hk_slab_t *s, uint32_t spare) {
    uint64_t bits[HK_TRIM_MAX_BLOCKS / 64];
    uint32_t carved = hk_slab_free_map(h, s, bits);
    if (carved != 0) {
        uint32_t keep = carved;
        while (keep > 0 && HK_BIT(bits, keep - 1)) keep--;
        keep = HK_MIN(carved, keep + spare);
        if (s == h->vacate) keep = HK_MAX(keep, h->vacate_last + 1); /* its blocks stay carved */
        s->local_count = hk_slab_relist(s, bits, keep);
        s->bump = s->start + (size_t)keep * s->block_size;
    }
    char *from = (char *)HK_ALIGN_UP((uintptr_t)s->bump, (uintptr_t)HK_PAGE);
    if (s->committed <= from) return 0;
    size_t len = (size_t)(s->committed - from);
    hk_os_decommit(from, len, HK_KNOB(decommit));
    s->committed = from;
    h->resident -= (int64_t)(len / HK_PAGE);
    return len;
}

/* ---- holes: pages given back from a slab in use (lean mode) -------------------------------------- */
/* The first and the last block of s that overlap its page k. */
static inline uint32_t hk_page_first(const hk_slab_t *s, uint32_t k) { return hk_slab_index(s, (uintptr_t)k * HK_PAGE); }
static inline uint32_t hk_page_last(const hk_slab_t *s, uint32_t k) {
    return hk_slab_index(s, (uintptr_t)k * HK_PAGE + HK_PAGE - 1);
}

/* A slab's free blocks are spread over its pages, and a free tail (above) is rare in a random
 * workload: the soak's last page growths were of its largest class, with no tail anywhere to give
 * back. A page whose blocks are all free can go back wherever it lies: its blocks leave the local
 * list and become held (on no list, not handed out; the hole mask says which pages, `held` how many
 * blocks), and the page is decommitted. The slab's other blocks are untouched. Before the class grows
 * (hk_tcache_refill), one of its holed slabs takes a hole back: the held blocks are written again as
 * fresh blocks and put on the local list, which makes that page resident instead of a new one.
 * Rules:
 *   - only pages wholly below the bump (every block overlapping one is carved), of slabs of at most
 *     HK_HOLE_MAX_PAGES pages; a block overlapping two holes is held once;
 *   - the heap lists its holed slabs per class (h->holed, linked by hole_next; with one holed slab
 *     per class, a free page of the class's other slabs could not be given back). A slab given back
 *     takes its holes with its pages; one abandoned at thread exit takes them back first (an adopter
 *     would not know them). Slabs a forked child finds owned by threads it does not have keep their
 *     held blocks until they are empty and released;
 *   - hardened builds: a held block keeps the free marker where its first words stay resident and
 *     loses its canary (zeroed, and a hole reads as zeros), so a second free of it fails the
 *     double-free or the canary test; the cold path then names it a double free (hk_slab_in_hole). Holes
 *     need the canary check; without it they are not made. Holes are discarded with MADV_DONTNEED
 *     whatever the decommit knob says (MADV_FREE may keep the contents, and the knob can change with
 *     the mode before the holes come back), and when they are taken back they must still read as
 *     zeros: a write into a held block is reported as a write after free. */
/* Page k of s, whose blocks are all held now, becomes a hole: on the mask, s on the class's list of
 * holed slabs, the page decommitted. */
static void hk_slab_hole(hk_heap_t *h, hk_slab_t *s, uint32_t k) {
    if (s->holes == 0) { /* onto the class's list of holed slabs */
        s->hole_next = h->holed[s->cls];
        h->holed[s->cls] = s;
    }
    s->holes |= (uint64_t)1 << k;
    h->cls_stats[s->cls].holes++;
    h->resident--;
    /* hardened: discarded, whatever the knob says now (MADV_FREE may keep the contents), so that
     * the page reads as zeros when it is taken back, even after a change of mode */
    hk_os_decommit(s->start + (size_t)k * HK_PAGE, HK_PAGE, HAK_HARDENED ? HK_DECOMMIT_DONTNEED : HK_KNOB(decommit));
}

/* Whether lean mode may make holes in s at all (punching and vacating). */
static inline int hk_slab_holeable(const hk_slab_t *s) {
    if (HAK_HARDENED && !HK_HARDEN(HK_H_CANARY)) return 0;
    if (HK_KNOB(decommit) == HK_DECOMMIT_OFF) return 0;
    return (size_t)s->units * (HK_UNIT_SIZE / HK_PAGE) <= HK_HOLE_MAX_PAGES;
}

static size_t hk_slab_punch(hk_heap_t *h, hk_slab_t *s) {
    if (!hk_slab_holeable(s)) return 0;
    uint64_t bits[HK_TRIM_MAX_BLOCKS / 64];
    uint32_t carved = hk_slab_free_map(h, s, bits);
    if (carved == 0) return 0;
    size_t bs = s->block_size;
    /* the highest page first: live blocks gather at the slab's start (refills take the lowest) */
    for (uint32_t k = (uint32_t)((size_t)(s->bump - s->start) / HK_PAGE); k-- > 0;) {
        if ((s->holes >> k) & 1u) continue;
        uint32_t first = hk_page_first(s, k), last = hk_page_last(s, k);
        uint32_t i = first;
        while (i <= last && (HK_BIT(bits, i) || hk_slab_in_hole(s, (uintptr_t)i * bs))) i++;
        if (i <= last) continue; /* a block of the page is live, cached or remote-pending */
        uint32_t n = 0;
        for (i = first; i <= last; i++) {
            if (!HK_BIT(bits, i)) continue; /* held already (it overlaps another hole) */
            bits[i / 64] &= ~((uint64_t)1 << (i % 64));
            if (HAK_HARDENED) *hk_canary_slot(s->start + (size_t)i * bs, bs) = 0;
            n++;
        }
        s->local_count = hk_slab_relist(s, bits, carved);
        s->held += n;
        hk_slab_hole(h, s, k);
        return HK_PAGE;
    }
    /* No page: the list is still rebuilt in address order, so that the next refills take the lowest
     * blocks and the high pages drain (the next attempt may find one free). */
    s->local_count = hk_slab_relist(s, bits, carved);
    return 0;
}

/* Unlinks s (which has holes) from h's list of holed slabs of its class. */
static void hk_holed_unlink(hk_heap_t *h, hk_slab_t *s) {
    for (hk_slab_t **p = &h->holed[s->cls]; *p != NULL; p = &(*p)->hole_next)
        if (*p == s) {
            *p = s->hole_next;
            break;
        }
    s->hole_next = NULL;
}

/* Takes the holes of slab s in mask back: the held blocks overlapping them go on the local list as
 * fresh blocks. mask must hold every hole a block overlapping one of them also overlaps. */
static void hk_slab_fill_holes(hk_heap_t *h, hk_slab_t *s, uint64_t mask) {
    size_t bs = s->block_size;
    uint32_t n = 0, next = 0;
    /* Every hole is checked before any block is written: a block spanning pages (32 KiB ones span
     * eight) may overlap two holes, and writing it for the first would put its canary in the second. */
    for (uint64_t m = mask; m != 0 && HAK_HARDENED && HK_HARDEN(HK_H_UAF); m &= m - 1) {
        /* a discarded page reads as zeros until somebody writes to it */
        uint32_t k = (uint32_t)__builtin_ctzll(m);
        const uint64_t *w = (const uint64_t *)(s->start + (size_t)k * HK_PAGE);
        for (uint32_t j = 0; j < HK_PAGE / 8; j++)
            if (HAK_UNLIKELY(w[j] != 0))
                hk_report(HK_FAULT_WRITE_AFTER_FREE, s->start + (size_t)hk_slab_index(s, (uintptr_t)k * HK_PAGE + j * 8) * bs, s->cls);
    }
    for (uint64_t m = mask; m != 0; m &= m - 1) {
        uint32_t k = (uint32_t)__builtin_ctzll(m);
        uint32_t first = hk_page_first(s, k), last = hk_page_last(s, k);
        for (uint32_t i = HK_MAX(first, next); i <= last; i++) {
            char *b = s->start + (size_t)i * bs;
            if (HAK_HARDENED) hk_harden_on_carve(b, bs, s->cls);
            hk_link_set(b, s->local_free);
            s->local_free = b;
            n++;
        }
        next = last + 1;
        h->cls_stats[s->cls].holes_back++;
    }
    /* the counts disagree: more blocks than held, or (all holes) not as many */
    if (HAK_UNLIKELY(n > s->held - s->vacated || (mask == s->holes && n != s->held - s->vacated)))
        hk_report(HK_FAULT_LINK_CORRUPT, s->start, s->cls);
    s->local_count += n;
    s->held -= n; /* a page being vacated stays so */
    s->holes &= ~mask;
    hk_ledger_add(h, __builtin_popcountll(mask));
    if (s->holes == 0) hk_holed_unlink(h, s);
}

/* The holes of s that come back with its hole k: k, and those a block overlapping one of them also
 * overlaps (such a block is written whole when it comes back). */
static uint64_t hk_hole_with_neighbours(const hk_slab_t *s, uint32_t k) {
    uint64_t mask = (uint64_t)1 << k, grown;
    do {
        grown = mask;
        for (uint64_t m = mask; m != 0; m &= m - 1) {
            uint32_t j = (uint32_t)__builtin_ctzll(m);
            uint32_t lo = (uint32_t)(((size_t)hk_page_first(s, j) * s->block_size) / HK_PAGE);
            uint32_t hi = (uint32_t)(((size_t)hk_page_last(s, j) * s->block_size + s->block_size - 1) / HK_PAGE);
            for (uint32_t p = lo; p <= hi && p < HK_HOLE_MAX_PAGES; p++) grown |= s->holes & ((uint64_t)1 << p);
        }
        if (grown == mask) return mask;
        mask = grown;
    } while (1);
}

/* Takes one hole of slab s back, its lowest (with the holes its blocks overlap), as the class is about
 * to grow, and makes s the class's current slab, so the refill that follows takes the blocks instead of
 * carving new pages. One page, as one is grown: taking every hole back at once made pages resident
 * that no trade or debt accounted for (the soak's RSS rose by a page when a growth took back two). */
static void hk_slab_unpunch(hk_heap_t *h, hk_slab_t *s) {
    uint64_t mask = hk_hole_with_neighbours(s, (uint32_t)__builtin_ctzll(s->holes));
    hk_slab_fill_holes(h, s, mask);
    if (h->cur[s->cls] != s) {
        if (h->cur[s->cls]) hk_cur_park(h, h->cur[s->cls]);
        if (s->used == 0 && s->list == HK_LIST_PARTIAL && h->empty[s->cls] > 0) h->empty[s->cls]--; /* the spare is back in use */
        hk_list_remove(h, s);
        hk_list_push(h, s, HK_LIST_CUR);
    }
}

/* Whether this heap owns no slab of class c. */
static inline int hk_class_idle(const hk_heap_t *h, unsigned c) {
    return h->cur[c] == NULL && h->partial[c] == NULL && h->full[c] == NULL;
}

/* Refills of the thread within which a class that grew is not asked to repay a page: its free page
 * is the one its next peak takes back (the soak's largest class repaid with its own pages, took them
 * back, grew and owed again: ten madvise calls and page faults a second, RSS swinging by 16 KiB). */
#define HK_REPAY_QUIET 16384u
static inline int hk_class_grew_lately(const hk_heap_t *h, unsigned c) {
    return h->grown_at[c] != 0 && h->refills - h->grown_at[c] < HK_REPAY_QUIET;
}

/* ---- vacating: a page steered empty (lean mode) ---------------------------------------------------
 * A page goes back only when all its blocks are free, and in a random workload a page can keep a live
 * block or two for minutes: a freed block goes to the thread cache and is handed out again first,
 * wherever it lies (the soak's owed pages stayed owed to the end of the run, RSS a page or four up).
 * So when a repayment finds no free page, it picks one to vacate: the page with the fewest live
 * blocks of the slabs a trade looks at, in a slab with at least a page's worth of free blocks besides
 * (so that the class need not grow meanwhile), the largest class first on a tie. From then on the
 * page's free blocks are held as they come back (cache flushes, and each repayment's look at the
 * slab's list) instead of being handed out again, so a live block of the page, once freed, is not
 * replaced there. When the last one is held, the page becomes a hole and the owed page is repaid. One
 * page per heap. Rules:
 *   - held blocks are counted in the slab's held and vacated and marked in h->vacate_bits; they keep
 *     their free-state words (hardened: marker, fill and canary), so a second free of one is a double
 *     free as for any free block; when the page becomes a hole they are checked as a malloc would
 *     (a write into one is a write after free) and lose their canary like every held block;
 *   - vacating stops, its blocks going back on the list, when the class would otherwise take a block
 *     of a larger class or grow (cheaper than a new page), when no page is owed any more, when the
 *     thread exits and when lean mode is switched off; a trim leaves the page carved, a slab given
 *     back takes it along. */

/* Ends the vacating with nothing to do: the slab was given back (its held blocks went with it) or
 * the page became a hole. */
static void hk_vacate_forget(hk_heap_t *h) {
    h->vacate->vacated = 0;
    memset(h->vacate_bits, 0, sizeof h->vacate_bits);
    h->vacate = NULL;
}

/* Stops vacating: the held blocks of the page go back on the slab's list. */
static void hk_vacate_stop(hk_heap_t *h) {
    hk_slab_t *s = h->vacate;
    uint32_t n = 0;
    for (uint32_t w = 0; w < HK_PAGE_BLOCK_WORDS; w++)
        for (uint64_t m = h->vacate_bits[w]; m != 0; m &= m - 1) {
            char *b = s->start + (size_t)(h->vacate_first + w * 64 + (uint32_t)__builtin_ctzll(m)) * s->block_size;
            hk_link_set(b, s->local_free);
            s->local_free = b;
            n++;
        }
    if (HAK_UNLIKELY(n != s->vacated)) hk_report(HK_FAULT_LINK_CORRUPT, s->start, s->cls); /* the counts disagree */
    s->local_count += n;
    s->held -= n;
    hk_vacate_forget(h);
    if (n != 0 && s->list == HK_LIST_FULL) {
        hk_list_remove(h, s);
        hk_list_push(h, s, HK_LIST_PARTIAL);
    }
}

/* Holds the free blocks of the page being vacated (those in the class's cache, on the slab's remote
 * stack and on its list); when none of its blocks is live any more, the page becomes a hole. Returns
 * the bytes given back. */
static size_t hk_vacate_collect(hk_heap_t *h) {
    hk_slab_t *s = h->vacate;
    hk_tcache_flush_n(h, s->cls, hk_tc_count(&h->tc[s->cls]));
    if ((s = h->vacate) == NULL) return 0; /* the flush emptied the slab, which was given back */
    uint32_t k = h->vacate_page;
    if ((s->holes >> k) & 1u) { /* punched meanwhile (all its blocks were free before any was held) */
        hk_vacate_forget(h);
        return 0;
    }
    hk_slab_drain(h, s);
    void *prev = NULL;
    uint32_t seen = 0, count = s->local_count;
    for (void *b = s->local_free, *next; b != NULL; b = next) {
        hk_harden_check_slab_block(s, b);
        if (HAK_UNLIKELY(++seen > count)) hk_report(HK_FAULT_LINK_CORRUPT, b, s->cls); /* a cycle, or more than counted */
        next = hk_link_get(b);
        if (!hk_vacate_hold(h, s, b)) {
            prev = b;
            continue;
        }
        if (prev) hk_link_set(prev, next);
        else s->local_free = next;
        s->local_count--;
    }
    size_t bs = s->block_size;
    for (uint32_t i = h->vacate_first; i <= h->vacate_last; i++)
        if (!HK_BIT(h->vacate_bits, i - h->vacate_first) && !hk_slab_in_hole(s, (uintptr_t)i * bs)) return 0; /* live */
    for (uint32_t i = h->vacate_first; HAK_HARDENED && i <= h->vacate_last; i++) {
        if (!HK_BIT(h->vacate_bits, i - h->vacate_first)) continue;
        char *b = s->start + (size_t)i * bs;
        if (HAK_UNLIKELY(hk_harden_pop_bad(b, s->cls))) (void)hk_harden_alloc_fault(b, s->cls); /* reports */
        *hk_canary_slot(b, bs) = 0; /* as every held block's */
    }
    hk_vacate_forget(h); /* the blocks stay held, now as those of a hole */
    hk_slab_hole(h, s, k);
    h->cls_stats[s->cls].vacated++;
    return HK_PAGE;
}

/* The candidate to vacate so far. */
typedef struct hk_vacate_pick {
    hk_slab_t *s;
    uint32_t page, live;
} hk_vacate_pick_t;

/* Looks at the pages of s (the caches were flushed) for a better candidate than *best. */
static void hk_vacate_consider(hk_heap_t *h, hk_slab_t *s, hk_vacate_pick_t *best) {
    /* s->vacated != 0: blocks of a page another thread was vacating (a forked child adopted the slab) */
    if (!hk_slab_holeable(s) || s->vacated != 0) return;
    uint64_t bits[HK_TRIM_MAX_BLOCKS / 64];
    if (hk_slab_free_map(h, s, bits) == 0) return;
    size_t bs = s->block_size;
    for (uint32_t k = 0; k < (uint32_t)((size_t)(s->bump - s->start) / HK_PAGE); k++) {
        if ((s->holes >> k) & 1u) continue;
        uint32_t first = hk_page_first(s, k), last = hk_page_last(s, k), live = 0, free = 0;
        for (uint32_t i = first; i <= last; i++) {
            if (HK_BIT(bits, i)) free++;
            else if (!hk_slab_in_hole(s, (uintptr_t)i * bs)) live++;
        }
        if (live == 0 || live >= best->live || s->local_count - free < last - first + 1) continue;
        best->s = s;
        best->page = k;
        best->live = live;
    }
}

/* Picks a page to vacate (the caches were flushed) and holds its free blocks. */
static void hk_vacate_pick(hk_heap_t *h) {
    hk_vacate_pick_t best = {NULL, 0, UINT32_MAX};
    for (unsigned c = HK_NCLASSES; c-- > 0;) {
        if (hk_class_idle(h, c) || hk_class_grew_lately(h, c)) continue;
        if (h->cur[c]) hk_vacate_consider(h, h->cur[c], &best);
        hk_slab_t *p = h->partial[c];
        for (unsigned i = 0; p != NULL && i < HK_PARTIAL_SCAN; i++, p = p->next) hk_vacate_consider(h, p, &best);
    }
    if (best.s == NULL) return;
    h->vacate = best.s;
    h->vacate_page = best.page;
    h->vacate_first = hk_page_first(best.s, best.page);
    h->vacate_last = hk_page_last(best.s, best.page);
    (void)hk_vacate_collect(h); /* not done: a block is live */
}

/* Trims the slabs this heap allocates from (each class's current slab and the first partial ones;
 * the caches were flushed, so their blocks count as free). Returns the bytes given back. */
static size_t hk_heap_trim(hk_heap_t *h) {
    size_t bytes = 0;
    for (unsigned c = 0; c < HK_NCLASSES; c++) {
        if (h->cur[c]) bytes += hk_slab_trim(h, h->cur[c], 0);
        hk_slab_t *p = h->partial[c];
        for (unsigned i = 0; p != NULL && i < HK_PARTIAL_SCAN; i++, p = p->next) bytes += hk_slab_trim(h, p, 0);
    }
    if (bytes && HK_KNOB(lean)) atomic_fetch_add_explicit(&hk_ss_counters.lean_decommit, 1, memory_order_relaxed);
    return bytes;
}

/* Refills the cache of cls and pops one block. With no_grow the refill makes no page resident: it
 * takes free blocks (local lists, remote frees, adopted slabs) and carves only inside pages a slab has
 * already made resident (below its `committed`); where it would have to carve further or take a new
 * slab it stops, and returns NULL if it found nothing. */
static void *hk_refill(hk_heap_t *h, unsigned cls, int no_grow) {
    hk_tcache_t *tc = &h->tc[cls];
    hk_slab_t *s = h->cur[cls];
    /* Blocks gathered so far: tc->head .. tail, `got` of them. A slab whose local list is short (the
     * flushes of a thread that frees at random spread blocks over many slabs) does not end the
     * refill: lists of further partial slabs are appended until half a batch is in hand. */
    uint32_t got = 0, want = HK_MAX(h->batch[cls] / 2, 1u);
    void *tail = NULL;
    for (;;) {
        if (s) {
            if (s->local_free) {
                void *list = s->local_free;
                uint32_t n = s->local_count;
                s->used += n;
                s->local_free = NULL;
                s->local_count = 0;
                if (tail) hk_link_set(tail, list);
                else tc->head = list;
                got += n;
                if (got >= want || h->partial[cls] == NULL || s->bump < s->end) break;
                /* Going on: find this list's tail (its blocks are about to be used anyway). */
                for (tail = list;;) {
                    hk_harden_check_slab_block(s, tail);
                    void *next = hk_link_get(tail);
                    if (next == NULL) break;
                    tail = next;
                }
                hk_list_remove(h, s);
                hk_list_push(h, s, HK_LIST_FULL); /* nothing local, nothing uncarved */
                s = NULL;
                continue;
            }
            if (s->bump < s->end) {
                /* Uncarved blocks are the last resort: while a fuller slab has free blocks, the
                 * refill takes those and this slab waits on the partial list. A slab made for a
                 * peak of live blocks is then not carved out to the end by the next refills (which
                 * would spread live blocks over one slab more for good): it drains and is given back. */
                hk_slab_t *p = hk_partial_pick(h, cls);
                /* Lean mode takes any free blocks before it carves: carving makes new pages resident
                 * while blocks of another slab lie free (the soak's RSS stepped up 44 KiB in one
                 * millisecond with the live set flat, a new slab carved to its end because it had
                 * become fuller than the old one). The switch needs free blocks on p, so lean mode
                 * cannot bounce between two slabs that only have uncarved space either. */
                if (p != NULL && (p->used > s->used || (HK_KNOB(lean) && p->local_free != NULL))) {
                    /* p itself becomes current, not whatever a new pick finds: the pick scans only
                     * the head of the list, where s is now parked, so p may be out of its reach and
                     * s be picked again, and again (a livelock seen under Larson). Each switch goes
                     * to a strictly fuller slab, or (lean) to one whose free blocks the refill then
                     * takes, so a refill switches a bounded number of times. */
                    hk_cur_park(h, s);
                    hk_list_remove(h, p);
                    hk_list_push(h, p, HK_LIST_CUR);
                    s = p;
                    continue;
                }
                uint32_t cw = hk_carve_want(h, s);
                if (no_grow) {
                    uint32_t room = s->committed > s->bump ? (uint32_t)((size_t)(s->committed - s->bump) / s->block_size) : 0;
                    if (room == 0) {
                        if (got) break;
                        return NULL;
                    }
                    cw = HK_MIN(cw, room);
                }
                uint32_t n;
                void *list = hk_slab_carve(h, s, cw, &n);
                if (tail) hk_link_set(tail, list);
                else tc->head = list;
                got += n;
                s->used += n;
                break;
            }
            if (hk_slab_drain(h, s)) continue;
            hk_list_remove(h, s);
            hk_list_push(h, s, HK_LIST_FULL);
            s = NULL;
        }
        if ((s = hk_partial_pick(h, cls)) != NULL) {
            if (s->used == 0 && h->empty[cls] > 0) h->empty[cls]--; /* the spare is back in use */
            hk_list_remove(h, s);
            hk_list_push(h, s, HK_LIST_CUR);
            continue;
        }
        /* Full slabs whose blocks came back from other threads, looked for only when a new slab
         * would otherwise be needed: at most HK_FULL_SCAN of them, oldest first (the list is FIFO).
         * A slab found without remote frees moves to the tail, so successive refills go round the
         * whole list and a slab anywhere in it is reached within length / HK_FULL_SCAN refills, while
         * one refill costs the same however many full slabs the thread holds (scanning the whole list
         * made a thread holding 2 GiB of 64-byte blocks take 15.6 s instead of 0.9). Oldest first
         * also suits producer/consumer patterns: the oldest full slabs are the ones whose blocks have
         * all come back, drained in one go and not while the consumer is still pushing to them. */
        for (unsigned i = 0; i < HK_FULL_SCAN && h->full[cls] != NULL; i++) {
            hk_slab_t *f = h->full[cls];
            if (atomic_load_explicit(&f->remote, memory_order_relaxed) != 0) {
                s = f;
                break;
            }
            if (f == h->full_tail[cls]) break; /* alone on the list */
            hk_list_remove(h, f);
            hk_list_push(h, f, HK_LIST_FULL);
        }
        /* Many abandoned slabs waiting: give back a few that became empty (frees from threads
         * without a live heap cannot adopt them). Rare; adoption below is the common way back. */
        if (s == NULL && atomic_load_explicit(&hk_abandoned_count, memory_order_relaxed) > HK_ABANDONED_SWEEP_AT)
            hk_abandoned_reclaim(h, 8);
        if (s == NULL && (s = hk_slab_adopt(h, cls)) != NULL) {
            hk_slab_drain(h, s);
        } else if (s == NULL) {
            if (no_grow) {
                if (got) break;
                return NULL;
            }
            s = hk_ss_slab_new((int)cls, h->token);
            if (s == NULL) {
                if (got) break; /* out of memory, but blocks are in hand */
                return NULL;
            }
            h->cls_stats[cls].slabs_new++;
            hk_ledger_add(h, hk_slab_resident(s)); /* a reused unit's pages may still be resident */
        } else {
            hk_list_remove(h, s);
        }
        hk_list_push(h, s, HK_LIST_CUR);
    }
    h->cls_stats[cls].refills++;
    h->refills++;
    h->cls_stats[cls].refill_blocks += got;
    tc->room = (int32_t)tc->cap - (int32_t)got;
    return hk_tcache_pop(h, cls);
}

/* Classes above a class that lean mode borrows from: those up to twice its size (four classes per
 * doubling in the tiny range). */
#define HK_BORROW_MAX_RATIO 2u
/* A class borrows only once it has not grown for this many refills of the thread (of any class: a
 * class that refills rarely would otherwise never leave its warm-up); while the heap is still
 * filling up, growing is the right answer ... */
#define HK_BORROW_AFTER 256u
/* ... and at most this many blocks, less refills of its own blocks, within HK_BORROW_WINDOW refills of
 * the thread: a class whose demand has moved up for good would otherwise take a slow path per
 * malloc; past it, the class grows. */
#define HK_BORROW_DEBT 32u
#define HK_BORROW_WINDOW 4096u

/* Punches one hole in a slab of class c: its current slab, then its first partial ones (the slabs a
 * trade trims). Returns the bytes given back. */
static size_t hk_class_punch(hk_heap_t *h, unsigned c) {
    size_t bytes = h->cur[c] ? hk_slab_punch(h, h->cur[c]) : 0;
    hk_slab_t *p = h->partial[c];
    for (unsigned i = 0; bytes == 0 && p != NULL && i < HK_PARTIAL_SCAN; i++, p = p->next) bytes = hk_slab_punch(h, p);
    return bytes;
}

/* Gives back a page of a class other than cls: the free tail of one slab (each class's current slab,
 * then its first partial ones, largest class first: its tails span whole pages soonest), or failing
 * that a page of one whose blocks are all free (a hole, hk_slab_punch; the same slabs in the same
 * order). The first slab that gives back a page ends the search. A class's cache is flushed before its
 * slabs are looked at: blocks in a cache are not on a slab's list, so they would count as live and end
 * the free tail early. Of the current slab's free tail a refill's batch stays carved: giving back the
 * page the class's next refill carves gains nothing (seen in the soak: the 16-byte class's tail was
 * given back and made resident again at once). Returns the bytes given back. */
static size_t hk_heap_trim_other(hk_heap_t *h, unsigned cls) {
    size_t bytes = 0;
    for (unsigned c = HK_NCLASSES; bytes == 0 && c-- > 0;) {
        if (c == cls || hk_class_idle(h, c)) continue;
        hk_tcache_flush_n(h, c, hk_tc_count(&h->tc[c]));
        bytes = h->cur[c] ? hk_slab_trim(h, h->cur[c], h->batch[c]) : 0;
        hk_slab_t *p = h->partial[c];
        for (unsigned i = 0; bytes == 0 && p != NULL && i < HK_PARTIAL_SCAN; i++, p = p->next) bytes = hk_slab_trim(h, p, 0);
    }
    for (unsigned c = HK_NCLASSES; bytes == 0 && c-- > 0;)
        if (c != cls) bytes = hk_class_punch(h, c);
    if (bytes) {
        atomic_fetch_add_explicit(&hk_ss_counters.lean_decommit, 1, memory_order_relaxed);
        h->cls_stats[cls].traded++;
    }
    return bytes;
}

/* Owed pages. Every heap keeps a ledger of the pages of its slabs (h->resident: pages up to each
 * slab's committed mark, less holes; carving, taking a hole back and adopting a slab add, a hole, a
 * trim and a slab given back or abandoned subtract; the heap walker checks it against the thread's
 * slabs). A lean heap settles once a trade finds no page to give back, or at HK_OWE_AFTER refills:
 * its cap is then the most pages the ledger has held (since the last hak_collect), and pages above
 * the cap are owed. Counting events instead (a page owed per growth that found nothing to trade) left
 * pages unaccounted: a growth that took back two holes, a slab emptied, given back and taken again.
 * A page whose blocks are all free often appears later (a class's live count falls back from its
 * peak; the trades' rebuilt lists hand out the lowest blocks first), so every HK_REPAY_EVERY refills
 * of the thread an owed page is looked for, as a hole only: a free tail is where its class carves
 * next (repaying with tails was tried: the class carved the tail again within milliseconds); failing
 * that, a page is vacated (above). An owed page is given up (the cap rises by one) after
 * HK_REPAY_TRIES attempts (a live set that really grew has no page to give), and at most HK_OWED_MAX
 * are owed (the cap follows a ledger that rose further). */
#define HK_REPAY_EVERY 4096u
#define HK_REPAY_TRIES 4096u
#define HK_OWED_MAX 16u
/* Refills of the thread after which a lean heap settles at the latest. */
#define HK_OWE_AFTER 65536u

/* Pages the heap owes: those of its ledger above the cap, at most HK_OWED_MAX (the cap follows a
 * ledger that rose further: a live set that really grew has no pages to give). */
static uint32_t hk_owed(hk_heap_t *h) {
    if (h->resident_cap == 0 || h->resident <= h->resident_cap) return 0;
    if (h->resident - h->resident_cap > HK_OWED_MAX) h->resident_cap = h->resident - HK_OWED_MAX;
    return (uint32_t)(h->resident - h->resident_cap);
}

static void hk_heap_repay(hk_heap_t *h) {
    h->repay_at = h->refills;
    size_t bytes = h->vacate != NULL ? hk_vacate_collect(h) : 0;
    for (unsigned c = HK_NCLASSES; bytes == 0 && c-- > 0;) {
        if (hk_class_idle(h, c) || hk_class_grew_lately(h, c)) continue;
        hk_tcache_flush_n(h, c, hk_tc_count(&h->tc[c])); /* cached blocks would count as live */
        bytes = hk_class_punch(h, c);
    }
    if (bytes == 0 && h->vacate == NULL) hk_vacate_pick(h); /* no page is free: steer one empty */
    if (bytes) atomic_fetch_add_explicit(&hk_ss_counters.lean_decommit, 1, memory_order_relaxed);
    if (bytes == 0 && --h->repay_tries == 0) h->resident_cap++; /* given up */
    if (bytes || h->repay_tries == 0) h->repay_tries = HK_REPAY_TRIES;
    if (hk_owed(h) == 0 && h->vacate != NULL) hk_vacate_stop(h);
}

/* When cls is the class of the page being vacated: stops vacating and refills from the blocks it held
 * (and the class's other free blocks) without growing. NULL otherwise, or if that finds nothing. */
static void *hk_vacate_unheld(hk_heap_t *h, unsigned cls) {
    if (h->vacate == NULL || h->vacate->cls != cls) return NULL;
    hk_vacate_stop(h);
    return hk_refill(h, cls, 1);
}

void *hk_tcache_refill(unsigned cls, int exact) {
    hk_heap_t *h = &hk_tls_heap;
    if (HAK_UNLIKELY(h->state != HK_HEAP_ACTIVE)) hk_heap_init(h);
    if (HAK_UNLIKELY(h->epoch != __atomic_load_n(&hk_knobs.epoch, __ATOMIC_RELAXED))) hk_heap_load_knobs(h);
    if (h->tc[cls].head) return hk_tcache_pop(h, cls); /* refilled by a reentrant call (thread registration) */
    if (HK_KNOB(lean) && !exact) {
        /* Lean mode borrows before it grows. A workload whose live set is steady still sets new peaks
         * class by class (each class's count is a random walk), and a class at a new peak needs a new
         * page while larger classes hold free blocks in pages already resident: the soak's RSS grew in
         * 4 KiB steps at such moments. So a refill that would make a page resident first looks for a
         * free block of the next larger classes (up to twice the size) and hands that out; the block
         * keeps its own class (free, usable size and the hardened checks take the class from its
         * unit). Only when none has one does the class grow. The cost is a slow path per malloc while
         * the class is above its old peak; frees of the class end it, and the limits above bound it. */
        if (HAK_UNLIKELY(h->resident_cap == 0) && h->refills >= HK_OWE_AFTER) h->resident_cap = HK_MAX(h->resident_peak, 1);
        if (HAK_UNLIKELY(hk_owed(h) != 0) && h->refills - h->repay_at >= HK_REPAY_EVERY) hk_heap_repay(h);
        if (HAK_UNLIKELY(h->vacate != NULL) && hk_owed(h) == 0) hk_vacate_stop(h); /* repaid otherwise */
        void *b = hk_refill(h, cls, 1);
        if (b == NULL) b = hk_vacate_unheld(h, cls); /* the page's blocks, rather than others' */
        if (b != NULL) {
            if (h->debt[cls] > 0) h->debt[cls]--;
            return b;
        }
        if (h->refills - h->debt_at[cls] >= HK_BORROW_WINDOW) { /* a new window */
            h->debt_at[cls] = h->refills;
            h->debt[cls] = 0;
        }
        /* past its warm-up and within its window's debt it may borrow, or trade (below); past its
         * warm-up with its window's debt spent it grows (the page is owed if above the cap) */
        int warm = h->refills - h->grown_at[cls] >= HK_BORROW_AFTER, settled = warm && h->debt[cls] < HK_BORROW_DEBT;
        if (settled) {
            uint32_t limit = hk_class_info[cls].size * HK_BORROW_MAX_RATIO;
            for (unsigned y = cls + 1; y < HK_NCLASSES && hk_class_info[y].size <= limit; y++) {
                b = h->tc[y].head != NULL ? hk_tcache_pop(h, y) : hk_refill(h, y, 1);
                if (b != NULL) {
                    h->cls_stats[cls].borrowed++;
                    h->debt[cls]++;
                    return b;
                }
            }
        }
        /* No lender (the largest class a workload uses has none): trade a page instead. A free tail
         * or a free page of another class's slab is given back first (hk_heap_trim_other), so the
         * page this class is about to make resident leaves the resident total as it was; when there
         * is none, the heap settles if it has not yet, and the page is owed (the ledger rises above
         * the cap; hk_heap_repay). Only past the warm-up: a class trades at most once per
         * HK_BORROW_AFTER refills of the thread. A class that has borrowed its window's worth does
         * not trade (a trade flushes every cache: classes whose demand moved up traded so often that
         * slabs emptied by the flushes were given back and taken again, 131,000 madvise calls in a
         * 5-minute soak); past the cap, its page is owed like any other. */
        if (settled && hk_heap_trim_other(h, cls) == 0 && h->resident_cap == 0)
            h->resident_cap = HK_MAX(h->resident_peak, 1); /* settled: the most pages the warm-up needed */
        if (h->resident_cap != 0) {
            if (hk_owed(h) == 0) h->repay_tries = HK_REPAY_TRIES;
            h->repay_at = h->refills; /* the page about to be owed is looked for later, not now */
        }
        h->grown_at[cls] = h->refills;
        h->debt[cls] = 0;
        h->debt_at[cls] = h->refills;
    }
    /* The class grows: the page it is vacating and its holes first (their pages are resident, or become
     * resident again instead of new ones). */
    if (HAK_UNLIKELY(h->vacate != NULL)) {
        void *b = hk_vacate_unheld(h, cls);
        if (b != NULL) return b;
    }
    if (HAK_UNLIKELY(h->holed[cls] != NULL)) hk_slab_unpunch(h, h->holed[cls]);
    return hk_refill(h, cls, 0);
}

/* ---- remote frees ---------------------------------------------------------------------------- */
/* Makes h the owner of an abandoned slab (drained, on h's lists). Returns 0 if someone else got it. */
static int hk_slab_try_adopt(hk_heap_t *h, hk_slab_t *s) {
    if (h->state == HK_HEAP_UNINIT) hk_heap_init(h);
    int mine = 0;
    hk_lock(&hk_abandon_lock);
    /* Owner re-checked under the lock: it leaves NONE only under this lock, so while it is NONE
     * nobody writes s->list outside it. */
    if (hk_slab_owner(s) == HK_OWNER_NONE && s->list == HK_LIST_ABANDONED) {
        hk_abandoned_unlink_locked(h, s);
        mine = 1;
    }
    hk_unlock(&hk_abandon_lock);
    if (!mine) return 0;
    h->cls_stats[s->cls].adopted++;
    hk_ledger_add(h, hk_slab_resident(s));
    hk_slab_drain(h, s);
    hk_list_push(h, s, s->local_free ? HK_LIST_PARTIAL : HK_LIST_FULL);
    return 1;
}

HK_OP_TEXT void hk_free_remote(hk_slab_t *s, void *p) {
    if (HK_HARDEN(HK_H_INVALID) && HAK_UNLIKELY(s->capacity == 0)) hk_report(HK_FAULT_INVALID_FREE, p, -1);
    hk_heap_t *h = &hk_tls_heap;
    /* Reclaim on free: a block of an abandoned slab makes this thread the slab's owner, so the
     * memory of exited threads comes back to a live heap instead of waiting on a remote stack. */
    if (HAK_UNLIKELY(hk_slab_owner(s) == HK_OWNER_NONE) && h->state != HK_HEAP_DEAD && hk_slab_try_adopt(h, s)) {
        hk_tcache_push(h, s->cls, p); /* the hardened free checks already ran */
        return;
    }
    /* The descriptor's fields are read before the push: once p is on the remote stack the owner may
     * drain it, release the slab and another thread may set the descriptor up for a new slab. */
    unsigned cls = s->cls, first_unit = s->first_unit;
    uintptr_t old = atomic_load_explicit(&s->remote, memory_order_relaxed);
    do {
        hk_link_set(p, (void *)old);
    } while (!atomic_compare_exchange_weak_explicit(&s->remote, &old, (uintptr_t)p, memory_order_seq_cst,
                                                    memory_order_relaxed));
    h->cls_stats[cls].remote_frees++;
    /* The freeing side of the handshake in hk_abandoned_settle_locked: if the owner left while this
     * block was being pushed, nobody may drain it: adopt the slab (which drains it). On x86 the CAS is
     * already a full barrier and the load a plain move. */
    if (HAK_UNLIKELY(atomic_load_explicit(&hk_ss_of((uintptr_t)s)->unit_owner[first_unit], memory_order_seq_cst) ==
                     HK_OWNER_NONE) &&
        h->state != HK_HEAP_DEAD)
        (void)hk_slab_try_adopt(h, s);
}

/* ---- fork ---------------------------------------------------------------------------------------- */
static void hk_fork_adopt_region(hk_superslab_t *ss, void *arg) {
    uint64_t me = *(uint64_t *)arg;
    for (int u = 1; u < HK_UNITS; u++) {
        hk_slab_t *s = &ss->slabs[u];
        if ((ss->free_mask & (1u << u)) || ss->unit_slab[u] != u || s->capacity == 0) continue;
        uint64_t owner = hk_slab_owner(s);
        if (owner == me || owner == HK_OWNER_NONE) continue;
        /* Its thread does not exist here: the slab is abandoned; blocks in that thread's cache are lost. */
        hk_abandoned_push_locked(s); /* the child is single-threaded */
    }
}

void hk_heap_fork_child(void) {
    uint64_t me = hk_tls_heap.token;
    hk_ss_foreach(hk_fork_adopt_region, &me);
}

void hk_abandon_lock_all(void) { hk_lock(&hk_abandon_lock); }
void hk_abandon_unlock_all(void) { hk_unlock(&hk_abandon_lock); }
void hk_abandon_reset_locks(void) { hk_lock_reset(&hk_abandon_lock); }
