/* include/hakmem_debug.h: introspection for verify/, tests and tools. The checkers here are the
 * executable form of the invariants written in superslab/superslab.h and tiny/heap.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "config/config.h"
#include "hakmem_debug.h"
#include "large/large.h"
#include "tiny/heap.h"

int hak_debug_class_count(void) { return HK_NCLASSES; }
size_t hak_debug_class_size(int cls) { return (cls >= 0 && cls < HK_NCLASSES) ? hk_class_info[cls].size : 0; }
int hak_debug_size_to_class(size_t size) { return size <= HK_SMALL_LIMIT ? (int)hk_size_class(HK_REQ(size)) : -1; }

hak_block_kind_t hak_debug_block_info(const void *ptr, hak_block_info_t *out) {
    hak_block_info_t info = {HAK_BLOCK_FOREIGN, -1, 0, 0, NULL};
    uintptr_t a = (uintptr_t)ptr;
    if (ptr && (a >> HK_VA_BITS) == 0 && hk_region_is_ss(a)) {
        hk_slab_t *s = hk_slab_of(a);
        if (s->capacity && (char *)ptr >= s->start && (char *)ptr < s->bump && hk_slab_on_boundary(s, a - (uintptr_t)s->start)) {
            info.kind = HAK_BLOCK_SLAB;
            info.cls = s->cls;
            info.class_size = s->block_size;
            info.usable = s->block_size - HK_CANARY_BYTES;
            info.region = hk_ss_of(a);
        }
    } else if (ptr) {
        size_t u = hk_large_usable(ptr);
        if (u) {
            info.kind = HAK_BLOCK_LARGE;
            info.class_size = u;
            info.usable = u;
            info.region = (void *)ptr;
        }
    }
    if (out) *out = info;
    return info.kind;
}

/* ---- reports --------------------------------------------------------------------------------- */
static int hk_rep_fail(hak_check_report_t *rep, const char *check, const void *ptr, int cls, const char *what) {
    if (rep) {
        rep->ok = 0;
        rep->check = check;
        rep->ptr = (void *)ptr;
        rep->cls = cls;
        snprintf(rep->msg, sizeof rep->msg, "%s: %s (pointer %p, class %d)", check, what, ptr, cls);
    }
    return 0;
}
static int hk_rep_ok(hak_check_report_t *rep) {
    if (rep) {
        rep->ok = 1;
        rep->check = NULL;
        rep->ptr = NULL;
        rep->cls = -1;
        rep->msg[0] = 0;
    }
    return 1;
}

/* A free-list node must be a carved block start of slab-class `cls` (slab `want` if given). */
static const char *hk_node_problem(void *b, unsigned cls, hk_slab_t *want) {
    uintptr_t a = (uintptr_t)b;
    if ((a >> HK_VA_BITS) != 0 || !hk_region_is_ss(a)) return "node outside every region";
    hk_slab_t *s = hk_slab_of(a);
    if (s->capacity == 0) return "node in a free unit";
    if (want && s != want) return "node belongs to another slab";
    if (s->cls != cls) return "node of the wrong class";
    if ((char *)b < s->start || (char *)b >= s->bump) return "node outside the carved part of its slab";
    if (!hk_slab_on_boundary(s, a - (uintptr_t)s->start)) return "node not on a block boundary";
    if (HK_HARDEN(HK_H_DFREE) && *hk_marker_slot(b) != hk_marker(b, cls)) return "node without the free marker (live block)";
    return NULL;
}

/* Walks a list of at most `limit` nodes; returns its length, or -1 if longer (a cycle). */
static long hk_walk(void *head, unsigned cls, hk_slab_t *want, long limit, const char **problem, void **bad) {
    long n = 0;
    for (void *b = head; b; b = hk_link_get(b)) {
        if (++n > limit) { *problem = "list longer than its count (cycle?)"; *bad = b; return -1; }
        const char *p = hk_node_problem(b, cls, want);
        if (p) { *problem = p; *bad = b; return -1; }
    }
    return n;
}

int hak_debug_check_thread(hak_check_report_t *rep) {
    hk_heap_t *h = &hk_tls_heap;
    if (h->state != HK_HEAP_ACTIVE) return hk_rep_ok(rep);
    for (unsigned c = 0; c < HK_NCLASSES; c++) {
        hk_tcache_t *tc = &h->tc[c];
        const char *problem = NULL;
        void *bad = NULL;
        long n = hk_walk(tc->head, c, NULL, (long)hk_tc_count(tc), &problem, &bad);
        if (n < 0) return hk_rep_fail(rep, "sll.node", bad, (int)c, problem);
        if ((uint32_t)n != hk_tc_count(tc)) return hk_rep_fail(rep, "sll.count", tc->head, (int)c, "count differs from list length");
        for (void *b = tc->head; b; b = hk_link_get(b))
            if (hk_slab_owner(hk_slab_of((uintptr_t)b)) != h->token)
                return hk_rep_fail(rep, "sll.owner", b, (int)c, "cached block of a slab this thread does not own");
        hk_slab_t *lists[3] = {h->cur[c], h->partial[c], h->full[c]};
        const uint8_t tags[3] = {HK_LIST_CUR, HK_LIST_PARTIAL, HK_LIST_FULL};
        for (int l = 0; l < 3; l++) {
            long guard = 0;
            hk_slab_t *last = NULL;
            for (hk_slab_t *s = lists[l]; s; last = s, s = (l == 0 ? NULL : s->next)) {
                if (++guard > 1000000) return hk_rep_fail(rep, "slab.list", s, (int)c, "slab list has a cycle");
                if (s->cls != c || s->list != tags[l]) return hk_rep_fail(rep, "slab.list", s->start, (int)c, "slab on the wrong list");
                if (hk_slab_owner(s) != h->token)
                    return hk_rep_fail(rep, "slab.owner", s->start, (int)c, "listed slab owned by another thread");
                long m = hk_walk(s->local_free, c, s, (long)s->local_count, &problem, &bad);
                if (m < 0) return hk_rep_fail(rep, "slab.local", bad, (int)c, problem);
                if ((uint32_t)m != s->local_count) return hk_rep_fail(rep, "slab.local", s->start, (int)c, "local count differs from list length");
            }
            if (l == 2 && last != h->full_tail[c])
                return hk_rep_fail(rep, "slab.list", last ? last->start : NULL, (int)c, "full list's tail pointer is not its last slab");
        }
    }
    return hk_rep_ok(rep);
}

/* ---- heap walker --------------------------------------------------------------------------------- */
typedef struct hk_walk_ctx {
    hak_check_report_t *rep;
    int ok;
    int64_t resident; /* the calling thread's slabs' pages, against its ledger */
    uint8_t seen[8192 / 8];
} hk_walk_ctx_t;

static int hk_mark(hk_walk_ctx_t *w, hk_slab_t *s, void *b) {
    uint32_t i = hk_slab_index(s, (uintptr_t)b - (uintptr_t)s->start);
    if (w->seen[i >> 3] & (1u << (i & 7))) return 0;
    w->seen[i >> 3] |= (uint8_t)(1u << (i & 7));
    return 1;
}

static void hk_walk_region(hk_superslab_t *ss, void *arg) {
    hk_walk_ctx_t *w = arg;
    if (!w->ok) return;
    const char *check = NULL;
    char msg[128];
    if (!hk_superslab_check(ss, &check, msg, sizeof msg)) {
        w->ok = hk_rep_fail(w->rep, check, ss, -1, msg);
        return;
    }
    hk_heap_t *h = &hk_tls_heap;
    for (int u = 1; u < HK_UNITS; u++) {
        if ((ss->free_mask & (1u << u)) || ss->unit_slab[u] != u) continue;
        hk_slab_t *s = &ss->slabs[u];
        memset(w->seen, 0, sizeof w->seen);
        const char *problem = NULL;
        void *bad = NULL;
        long local = hk_walk(s->local_free, s->cls, s, (long)s->capacity, &problem, &bad);
        if (local < 0) { w->ok = hk_rep_fail(w->rep, "heap.local", bad, s->cls, problem); return; }
        for (void *b = s->local_free; b; b = hk_link_get(b))
            if (!hk_mark(w, s, b)) { w->ok = hk_rep_fail(w->rep, "heap.duplicate", b, s->cls, "block twice on the local list"); return; }
        void *rhead = (void *)atomic_load_explicit(&s->remote, memory_order_acquire);
        long remote = hk_walk(rhead, s->cls, s, (long)s->capacity, &problem, &bad);
        if (remote < 0) { w->ok = hk_rep_fail(w->rep, "heap.remote", bad, s->cls, problem); return; }
        for (void *b = rhead; b; b = hk_link_get(b))
            if (!hk_mark(w, s, b)) { w->ok = hk_rep_fail(w->rep, "heap.duplicate", b, s->cls, "block on both the local and the remote list"); return; }
        /* The calling thread's cache blocks of this slab must not be on the slab's lists either. */
        if (hk_slab_owner(s) == h->token)
            for (void *b = h->tc[s->cls].head; b; b = hk_link_get(b))
                if (hk_slab_of((uintptr_t)b) == s && !hk_mark(w, s, b)) {
                    w->ok = hk_rep_fail(w->rep, "heap.duplicate", b, s->cls, "cached block also on a slab list");
                    return;
                }
        uint32_t uncarved = (uint32_t)((size_t)(s->end - s->bump) / s->block_size);
        /* Held blocks (overlapping a hole, tiny/tcache.c) are on no list: none was marked above, and
         * they are counted apart. */
        uint32_t held = 0;
        for (uint32_t i = 0; s->holes != 0 && i < s->capacity && s->start + (size_t)i * s->block_size < s->bump; i++) {
            if (!hk_slab_in_hole(s, (uintptr_t)i * s->block_size)) continue;
            held++;
            if (w->seen[i >> 3] & (1u << (i & 7))) {
                w->ok = hk_rep_fail(w->rep, "heap.hole", s->start + (size_t)i * s->block_size, s->cls, "a block in a hole is on a free list");
                return;
            }
        }
        /* ... and so are the blocks of a page being vacated (this thread's: the heap says which) */
        if (s == hk_tls_heap.vacate) {
            const hk_heap_t *v = &hk_tls_heap;
            uint32_t vacated = 0;
            for (uint32_t i = v->vacate_first; i <= v->vacate_last; i++) {
                uint32_t j = i - v->vacate_first;
                if (!((v->vacate_bits[j / 64] >> (j % 64)) & 1u)) continue;
                vacated++;
                if (w->seen[i >> 3] & (1u << (i & 7))) {
                    w->ok = hk_rep_fail(w->rep, "heap.vacate", s->start + (size_t)i * s->block_size, s->cls,
                                        "a held block of the page being vacated is on a free list");
                    return;
                }
            }
            if (vacated != s->vacated) {
                w->ok = hk_rep_fail(w->rep, "heap.vacate", s->start, s->cls, "vacated count differs from the held blocks of the page");
                return;
            }
        }
        if (held + s->vacated != s->held || (s->held == s->vacated) != (s->holes == 0)) {
            w->ok = hk_rep_fail(w->rep, "heap.hole", s->start, s->cls, "held count differs from the blocks in the slab's holes");
            return;
        }
        /* used counts live, cached and remote-pending blocks (remote ones leave `used` when drained) */
        if ((uint64_t)s->used + (uint64_t)s->local_count + s->held + uncarved != s->capacity || (uint64_t)remote > s->used) {
            char text[160];
            snprintf(text, sizeof text, "used %u + local %u + held %u + uncarved %u != capacity %u, or remote %ld > used", s->used,
                     s->local_count, s->held, uncarved, s->capacity, remote);
            w->ok = hk_rep_fail(w->rep, "heap.accounting", s->start, s->cls, text);
            return;
        }
        if ((uint32_t)local != s->local_count) {
            w->ok = hk_rep_fail(w->rep, "heap.local", s->start, s->cls, "local count differs from list length");
            return;
        }
        if (hk_slab_owner(s) == h->token) w->resident += hk_slab_resident(s);
    }
}

int hak_debug_check_heap(hak_check_report_t *rep) {
    hk_ensure_init();
    hak_check_report_t tmp;
    if (!hak_debug_check_thread(rep ? rep : &tmp)) return 0;
    static hk_walk_ctx_t ctx; /* large; serialised by the region lock held during the walk */
    ctx.rep = rep;
    ctx.ok = 1;
    ctx.resident = 0;
    hk_ss_foreach(hk_walk_region, &ctx);
    if (ctx.ok && hk_tls_heap.state == HK_HEAP_ACTIVE && ctx.resident != hk_tls_heap.resident) {
        char text[128];
        snprintf(text, sizeof text, "the thread's slabs have %lld pages up to their committed marks less holes, its ledger says %lld",
                 (long long)ctx.resident, (long long)hk_tls_heap.resident);
        ctx.ok = hk_rep_fail(rep, "heap.ledger", NULL, -1, text);
    }
    return ctx.ok ? hk_rep_ok(rep) : 0;
}

size_t hak_debug_tls_count(int cls) {
    return (cls >= 0 && cls < HK_NCLASSES && hk_tls_heap.state == HK_HEAP_ACTIVE) ? hk_tc_count(&hk_tls_heap.tc[cls]) : 0;
}
size_t hak_debug_tls_cap(int cls) {
    return (cls >= 0 && cls < HK_NCLASSES && hk_tls_heap.state == HK_HEAP_ACTIVE) ? hk_tls_heap.tc[cls].cap : 0;
}
void *hak_debug_tls_head(int cls) { return (cls >= 0 && cls < HK_NCLASSES) ? hk_tls_heap.tc[cls].head : NULL; }

int hak_debug_set_option(const char *name, const char *value) {
    hk_ensure_init();
    return hk_config_set(name, value, HK_SRC_API, 0);
}

long long hak_debug_get_option(const char *name) {
    hk_ensure_init();
    int id = hk_config_find(name);
    if (id < 0) {
        errno = EINVAL;
        return -1;
    }
    return hk_config_get((hk_opt_id_t)id);
}

void hak_debug_stats(hak_debug_stats_t *out) {
    hk_heap_stats_t cs[HK_NCLASSES];
    hk_heap_stats_sum(cs);
    memset(out, 0, sizeof *out);
    for (int c = 0; c < HK_NCLASSES; c++) {
        hk_heap_stats_t *a = &cs[c], *b = &hk_tls_heap.cls_stats[c];
        out->refills += a->refills + b->refills;
        out->flushes += a->flushes + b->flushes;
        out->remote_frees += a->remote_frees + b->remote_frees;
        out->remote_drains += a->drains + b->drains;
        out->slabs_abandoned += a->abandoned + b->abandoned;
        out->slabs_adopted += a->adopted + b->adopted;
        out->lean_borrowed += a->borrowed + b->borrowed;
        out->lean_holes += a->holes + b->holes;
        out->lean_holes_back += a->holes_back + b->holes_back;
        out->lean_vacated += a->vacated + b->vacated;
    }
#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)
    out->mmap_calls = LD(hk_os_stats.mmap_calls);
    out->munmap_calls = LD(hk_os_stats.munmap_calls);
    out->madvise_calls = LD(hk_os_stats.madvise_calls);
    out->mremap_calls = LD(hk_os_stats.mremap_calls);
    out->bytes_mapped = LD(hk_os_stats.bytes_mapped);
    out->superslabs_live = LD(hk_ss_counters.regions_live);
    out->slabs_live = LD(hk_ss_counters.slabs_live);
    out->large_live = LD(hk_large_counters.live);
    out->bigcache_hits = LD(hk_large_counters.bigcache_hits);
    out->bigcache_misses = LD(hk_large_counters.bigcache_misses);
    out->bigcache_entries = LD(hk_large_counters.bigcache_entries);
    out->bigcache_bytes = LD(hk_large_counters.bigcache_bytes);
    out->lean_decommit = LD(hk_ss_counters.lean_decommit);
    out->lean_retire = LD(hk_ss_counters.lean_retire);
#undef LD
}
