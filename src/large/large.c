#include "large/large.h"

#include <errno.h>
#include <string.h>

#include "config/config.h"
#include "hardened/harden.h"
#include "superslab/lock.h"
#include "superslab/os.h"

HK_HIDDEN hk_large_counters_t hk_large_counters;
#define HK_LCNT(f, v) atomic_fetch_add_explicit(&hk_large_counters.f, (v), memory_order_relaxed)

typedef struct hk_large_entry {
    uintptr_t ptr;  /* user pointer (page-aligned); 0 = empty; a tombstone keeps the freed pointer | 1 */
    uintptr_t base; /* mapping start */
    size_t map_size;
    size_t usable;  /* what malloc_usable_size reports: the page-rounded request (the mapping may be
                     * larger when a cached block was reused: usable sizes depend only on the request) */
} hk_large_entry_t;

#define HK_EMPTY 0u
/* A removed entry stays as a tombstone holding ptr | 1 until the slot is reused, so a second free of
 * the same pointer is recognised as a double free, not as a foreign pointer. */
#define HK_TOMB_BIT 1u
static int hk_live(uintptr_t v) { return v != HK_EMPTY && !(v & HK_TOMB_BIT); }

static hk_lock_t hk_large_lock = HK_LOCK_INIT;
static hk_large_entry_t *hk_tab;   /* open addressing, linear probing, mmap'd */
static size_t hk_tab_cap, hk_tab_used, hk_tab_live;

#define HK_BIGCACHE_MAX 256
static hk_large_entry_t hk_bigcache[HK_BIGCACHE_MAX];
static int hk_bigcache_n;
static size_t hk_bigcache_bytes;

/* Recently freed large pointers (hardened diagnostics: "double free of a large block"). */
#define HK_RECENT 64
static uintptr_t hk_recent[HK_RECENT];
static unsigned hk_recent_pos;

/* Write-after-free watch of a block kept in the BigCache (hardened variant). The debug variant makes
 * the whole mapping PROT_NONE (any access faults). The hardened variant fills the first and the last
 * HK_LARGE_WATCH bytes with HK_UAF_PATTERN at free and checks them at reuse, before the mapping is
 * trimmed or grown: two mprotect calls per reuse (and the kernel's page-table walk over megabytes)
 * cost large_blocks about a third of its time, the fill a few microseconds. A write after free
 * between the two windows goes unseen (a documented limit, harden.h). */
#define HK_LARGE_WATCH ((size_t)16384)
#define HK_LARGE_PROTECT HAK_DEBUG

static void hk_large_watch_fill(char *base, size_t size) {
    size_t w = HK_MIN(size / 2, HK_LARGE_WATCH);
    memset(base, HK_UAF_PATTERN, w);
    memset(base + size - w, HK_UAF_PATTERN, w);
}

static int hk_large_watch_intact(const char *base, size_t size) {
    size_t w = HK_MIN(size / 2, HK_LARGE_WATCH) / 8;
    const uint64_t *head = (const uint64_t *)(const void *)base, *tail = (const uint64_t *)(const void *)(base + size) - w;
    uint64_t diff = 0, fill = 0x0101010101010101ull * HK_UAF_PATTERN;
    for (size_t i = 0; i < w; i++) diff |= (head[i] ^ fill) | (tail[i] ^ fill);
    return diff == 0;
}

static size_t hk_hash(uintptr_t p, size_t cap) { return (size_t)(((p >> 12) * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1); }

static int hk_tab_grow_locked(void) {
    /* Tombstones count as used: a table mostly of tombstones is rebuilt at the same size. */
    size_t ncap = hk_tab_cap == 0 ? 1024 : (hk_tab_live * 4 < hk_tab_cap ? hk_tab_cap : hk_tab_cap * 2);
    hk_large_entry_t *nt = hk_os_map(ncap * sizeof *nt);
    if (nt == NULL) return -1;
    for (size_t i = 0; i < hk_tab_cap; i++) {
        if (!hk_live(hk_tab[i].ptr)) continue;
        size_t j = hk_hash(hk_tab[i].ptr, ncap);
        while (nt[j].ptr != HK_EMPTY) j = (j + 1) & (ncap - 1);
        nt[j] = hk_tab[i];
    }
    if (hk_tab) hk_os_unmap(hk_tab, hk_tab_cap * sizeof *hk_tab);
    hk_tab = nt;
    hk_tab_cap = ncap;
    hk_tab_used = hk_tab_live;
    return 0;
}

static hk_large_entry_t *hk_tab_find_locked(uintptr_t p) {
    if (hk_tab_cap == 0) return NULL;
    for (size_t j = hk_hash(p, hk_tab_cap), n = 0; n < hk_tab_cap; j = (j + 1) & (hk_tab_cap - 1), n++) {
        if (hk_tab[j].ptr == p) return &hk_tab[j];
        if (hk_tab[j].ptr == HK_EMPTY) return NULL;
    }
    return NULL;
}

static int hk_tab_insert_locked(uintptr_t p, uintptr_t base, size_t map_size, size_t usable) {
    if ((hk_tab_used + 1) * 2 > hk_tab_cap && hk_tab_grow_locked() != 0) return -1;
    size_t j = hk_hash(p, hk_tab_cap);
    while (hk_live(hk_tab[j].ptr)) j = (j + 1) & (hk_tab_cap - 1);
    if (hk_tab[j].ptr == HK_EMPTY) hk_tab_used++;
    hk_tab[j] = (hk_large_entry_t){p, base, map_size, usable};
    hk_tab_live++;
    return 0;
}

static void hk_tab_remove_locked(hk_large_entry_t *e) {
    e->ptr |= HK_TOMB_BIT;
    hk_tab_live--;
}

/* Takes the cached mapping that best fits `need` bytes: the smallest one at least as large (up to
 * twice), else the largest one at least half as large (grown with mremap, which keeps its pages).
 * Excess beyond half of `need` is unmapped; up to that it stays with the block (its pages are
 * resident already: trimming them would only fault them in again at the next larger request).
 * Returns the base and the mapping size through *size, or NULL. Takes the lock. */
static void *hk_bigcache_take(size_t need, size_t *size) {
    if (HK_KNOB(bigcache_entries) == 0) return NULL;
    hk_lock(&hk_large_lock);
    int best = -1;
    for (int i = 0; i < hk_bigcache_n; i++) {
        size_t s = hk_bigcache[i].map_size;
        if (s > need * 2 || s < need / 2) continue;
        if (best < 0) { best = i; continue; }
        size_t b = hk_bigcache[best].map_size;
        if (s >= need ? (b < need || s < b) : (b < need && s > b)) best = i;
    }
    hk_large_entry_t e = {0, 0, 0, 0};
    if (best >= 0) {
        e = hk_bigcache[best];
        hk_bigcache[best] = hk_bigcache[--hk_bigcache_n];
        hk_bigcache_bytes -= e.map_size;
        atomic_store_explicit(&hk_large_counters.bigcache_entries, (uint64_t)hk_bigcache_n, memory_order_relaxed);
        atomic_store_explicit(&hk_large_counters.bigcache_bytes, (uint64_t)hk_bigcache_bytes, memory_order_relaxed);
    }
    hk_unlock(&hk_large_lock);
    if (best < 0) return NULL;
    char *base = (char *)e.base;
    size_t keep = e.map_size;
    if (HAK_HARDENED && HK_LARGE_PROTECT) hk_os_protect(base, e.map_size, 1); /* cached blocks are inaccessible */
    if (HAK_HARDENED && !HK_LARGE_PROTECT && !hk_large_watch_intact(base, e.map_size))
        hk_report(HK_FAULT_WRITE_AFTER_FREE, base, -1);
    size_t most = HK_ALIGN_UP(need + need / 2, (size_t)HK_PAGE);
    if (e.map_size > most) {
        hk_os_unmap(base + most, e.map_size - most);
        keep = most;
    } else if (e.map_size < need) {
        void *q = hk_os_remap(base, e.map_size, need, 1);
        if (q == NULL) { hk_os_unmap(base, e.map_size); return NULL; }
        base = q;
        keep = need;
    }
    *size = keep;
    return base;
}

/* Offers a freed mapping to the BigCache; returns 1 if kept. Lock held. Evicts the oldest entries
 * (returned through *evict so the caller unmaps them outside the lock). */
static int hk_bigcache_put_locked(uintptr_t base, size_t size, hk_large_entry_t *evict, int *nevict) {
    int max_n = HK_KNOB(bigcache_entries);
    size_t max_bytes = HK_KNOB(bigcache_max_bytes);
    *nevict = 0;
    if (max_n <= 0 || size > max_bytes / 2) return 0;
    if (max_n > HK_BIGCACHE_MAX) max_n = HK_BIGCACHE_MAX;
    while (hk_bigcache_n > 0 && (hk_bigcache_n >= max_n || hk_bigcache_bytes + size > max_bytes) && *nevict < 4) {
        evict[(*nevict)++] = hk_bigcache[0];
        hk_bigcache_bytes -= hk_bigcache[0].map_size;
        memmove(&hk_bigcache[0], &hk_bigcache[1], (size_t)(--hk_bigcache_n) * sizeof hk_bigcache[0]);
    }
    if (hk_bigcache_n >= max_n || hk_bigcache_bytes + size > max_bytes) return 0;
    hk_bigcache[hk_bigcache_n++] = (hk_large_entry_t){base, base, size, size};
    hk_bigcache_bytes += size;
    atomic_store_explicit(&hk_large_counters.bigcache_entries, (uint64_t)hk_bigcache_n, memory_order_relaxed);
    atomic_store_explicit(&hk_large_counters.bigcache_bytes, (uint64_t)hk_bigcache_bytes, memory_order_relaxed);
    return 1;
}

void *hk_large_alloc(size_t size, size_t align, int *fresh) {
    if (align < HK_PAGE) align = HK_PAGE;
    if (size == 0) size = 1; /* memalign(big, 0) still returns a unique block */
    size_t need = HK_ALIGN_UP(size, (size_t)HK_PAGE);
    if (need < size || need > ((size_t)1 << 62)) { errno = ENOMEM; return NULL; }
    HK_LCNT(allocs, 1);
    char *base = NULL, *p;
    size_t map_size = need;
    *fresh = 1;
    if (align == HK_PAGE && (base = hk_bigcache_take(need, &map_size)) != NULL) {
        *fresh = 0;
        HK_LCNT(bigcache_hits, 1);
        p = base;
    } else {
        if (align == HK_PAGE) HK_LCNT(bigcache_misses, 1);
        base = hk_os_map_aligned(need, align);
        if (base == NULL) { errno = ENOMEM; return NULL; }
        p = base;
        int thp = HK_KNOB(thp);
        if (need >= HK_SS_SIZE) hk_os_advise_thp(base, need, thp);
    }
    hk_lock(&hk_large_lock);
    int rc = hk_tab_insert_locked((uintptr_t)p, (uintptr_t)base, map_size, need); /* p == base: need <= map_size */
    hk_unlock(&hk_large_lock);
    if (rc != 0) { hk_os_unmap(base, map_size); errno = ENOMEM; return NULL; }
    HK_LCNT(live, 1);
    return p;
}

int hk_large_free(void *ptr) {
    uintptr_t p = (uintptr_t)ptr;
    hk_large_entry_t evict[4];
    int nevict = 0, cached = 0;
    hk_lock(&hk_large_lock);
    hk_large_entry_t *e = hk_tab_find_locked(p);
    if (e == NULL) { hk_unlock(&hk_large_lock); return 0; }
    hk_large_entry_t copy = *e;
    hk_tab_remove_locked(e);
    if (HAK_HARDENED && copy.base == copy.ptr && HK_KNOB(bigcache_entries) > 0) {
        /* Hardened: a block offered to the BigCache is watched first (before another thread can
         * take it): made inaccessible (debug), or its ends filled and checked at reuse. */
        hk_unlock(&hk_large_lock);
        if (HK_LARGE_PROTECT) hk_os_protect((void *)copy.base, copy.map_size, 0);
        else hk_large_watch_fill((char *)copy.base, copy.map_size);
        hk_lock(&hk_large_lock);
    }
    hk_recent[hk_recent_pos++ % HK_RECENT] = p;
    if (copy.base == copy.ptr) cached = hk_bigcache_put_locked(copy.base, copy.map_size, evict, &nevict);
    hk_unlock(&hk_large_lock);
    HK_LCNT(live, (uint64_t)-1);
    HK_LCNT(frees, 1);
    for (int i = 0; i < nevict; i++) hk_os_unmap((void *)evict[i].base, evict[i].map_size);
    if (!cached) hk_os_unmap((void *)copy.base, copy.map_size);
    return 1;
}

size_t hk_large_usable(const void *ptr) {
    hk_lock(&hk_large_lock);
    hk_large_entry_t *e = hk_tab_find_locked((uintptr_t)ptr);
    size_t r = e ? e->usable : 0;
    hk_unlock(&hk_large_lock);
    return r;
}

void *hk_large_realloc(void *ptr, size_t size) {
    size_t need = HK_ALIGN_UP(size, (size_t)HK_PAGE);
    if (need < size) { errno = ENOMEM; return NULL; }
    hk_lock(&hk_large_lock);
    hk_large_entry_t *e = hk_tab_find_locked((uintptr_t)ptr);
    if (e == NULL) { hk_unlock(&hk_large_lock); return NULL; }
    hk_large_entry_t copy = *e;
    if (copy.base != copy.ptr) { hk_unlock(&hk_large_lock); errno = EINVAL; return NULL; } /* caller copies */
    if (need <= copy.map_size && need >= copy.map_size / 2) {
        /* fits the mapping: no syscall, the usable size follows the request */
        e->usable = need;
        hk_unlock(&hk_large_lock);
        return ptr;
    }
    /* Remove first: while the lock is dropped for mremap nobody may find the old entry. */
    hk_tab_remove_locked(e);
    hk_unlock(&hk_large_lock);
    void *q = hk_os_remap((void *)copy.base, copy.map_size, need, 1);
    hk_lock(&hk_large_lock);
    int rc;
    if (q == NULL) rc = hk_tab_insert_locked(copy.ptr, copy.base, copy.map_size, copy.usable);
    else rc = hk_tab_insert_locked((uintptr_t)q, (uintptr_t)q, need, need);
    hk_unlock(&hk_large_lock);
    if (q != NULL && q != ptr) {
        hk_lock(&hk_large_lock);
        hk_recent[hk_recent_pos++ % HK_RECENT] = copy.ptr; /* the old pointer is now a freed one */
        hk_unlock(&hk_large_lock);
    }
    if (q != NULL && need >= HK_SS_SIZE && copy.map_size < HK_SS_SIZE) hk_os_advise_thp(q, need, HK_KNOB(thp));
    if (rc != 0) { /* cannot happen unless the table cannot grow; the block stays valid */ }
    if (q == NULL) errno = ENOMEM;
    return q;
}

int hk_large_was_freed(const void *ptr) {
    int r = 0;
    hk_lock(&hk_large_lock);
    for (int i = 0; i < HK_RECENT; i++)
        if (hk_recent[i] == (uintptr_t)ptr) r = 1;
    for (int i = 0; i < hk_bigcache_n; i++)
        if (hk_bigcache[i].ptr == (uintptr_t)ptr) r = 1;
    if (!r && hk_tab_cap && ((uintptr_t)ptr & (HK_PAGE - 1)) == 0) {
        uintptr_t tomb = (uintptr_t)ptr | HK_TOMB_BIT;
        for (size_t j = hk_hash((uintptr_t)ptr, hk_tab_cap), n = 0; n < hk_tab_cap && hk_tab[j].ptr != HK_EMPTY;
             j = (j + 1) & (hk_tab_cap - 1), n++)
            if (hk_tab[j].ptr == tomb) { r = 1; break; }
    }
    hk_unlock(&hk_large_lock);
    return r;
}

int hk_large_is_interior(const void *ptr) {
    uintptr_t p = (uintptr_t)ptr;
    int r = 0;
    hk_lock(&hk_large_lock);
    for (size_t i = 0; i < hk_tab_cap && !r; i++)
        if (hk_live(hk_tab[i].ptr) && p > hk_tab[i].ptr && p < hk_tab[i].base + hk_tab[i].map_size) r = 1;
    hk_unlock(&hk_large_lock);
    return r;
}

void hk_large_trim(void) {
    hk_lock(&hk_large_lock);
    hk_large_entry_t all[HK_BIGCACHE_MAX];
    int n = hk_bigcache_n;
    memcpy(all, hk_bigcache, (size_t)n * sizeof all[0]);
    hk_bigcache_n = 0;
    hk_bigcache_bytes = 0;
    atomic_store_explicit(&hk_large_counters.bigcache_entries, 0, memory_order_relaxed);
    atomic_store_explicit(&hk_large_counters.bigcache_bytes, 0, memory_order_relaxed);
    hk_unlock(&hk_large_lock);
    for (int i = 0; i < n; i++) hk_os_unmap((void *)all[i].base, all[i].map_size);
}

void hk_large_lock_all(void) { hk_lock(&hk_large_lock); }
void hk_large_unlock_all(void) { hk_unlock(&hk_large_lock); }
void hk_large_reset_locks(void) { hk_lock_reset(&hk_large_lock); }
