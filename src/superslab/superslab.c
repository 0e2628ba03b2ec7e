#include "superslab/superslab.h"

#include <string.h>

#include "config/config.h"
#include "tiny/sizeclass.h"

HK_HIDDEN uint8_t hk_region_kind[HK_MAP_ENTRIES];
HK_HIDDEN hk_ss_counters_t hk_ss_counters;

/* Every live region. Guarded by hk_ss_lock, like every header field except the slab descriptors'
 * owner-side fields (owned by the slab's thread) and `remote`.
 * Order: every region with a free unit comes before every region without one (a region that fills
 * moves to the tail, one that gets a unit back moves to the head), so the search for a free unit
 * stops at the first full region: a process holding thousands of full regions does not pay a walk
 * over all of them for each new slab (that walk made 2 GiB of 64-byte blocks take seconds). */
static hk_lock_t hk_ss_lock = HK_LOCK_INIT;
static hk_superslab_t *hk_ss_list, *hk_ss_tail;
static uint32_t hk_ss_empty;        /* regions with every unit free */
static uint32_t hk_ss_dirty_units;  /* free units not yet given back, across regions */

#define HK_CNT_ADD(f, v) atomic_fetch_add_explicit(&hk_ss_counters.f, (v), memory_order_relaxed)

static void hk_region_mark(hk_superslab_t *ss, uint8_t kind) {
    __atomic_store_n(&hk_region_kind[((uintptr_t)ss >> HK_SS_SHIFT) & (HK_MAP_ENTRIES - 1)], kind, __ATOMIC_RELEASE);
}

static hk_superslab_t *hk_ss_map_locked(void) {
    hk_superslab_t *ss = hk_os_map_aligned(HK_SS_SIZE, HK_SS_SIZE);
    if (ss == NULL) return NULL;
    /* Fresh anonymous memory is zero: only the non-zero fields are set. */
    ss->magic = HK_SS_MAGIC;
    ss->free_mask = HK_ALL_UNITS_FREE;
    for (int u = 0; u < HK_UNITS; u++) atomic_store_explicit(&ss->unit_owner[u], HK_OWNER_NONE, memory_order_relaxed);
    ss->next = hk_ss_list;
    if (hk_ss_list) hk_ss_list->prev = ss;
    else hk_ss_tail = ss;
    hk_ss_list = ss;
    hk_ss_empty++;
    HK_CNT_ADD(regions_live, 1);
    hk_region_mark(ss, HK_REGION_SS);
    return ss;
}

static void hk_ss_unlink_locked(hk_superslab_t *ss) {
    if (ss->prev) ss->prev->next = ss->next;
    else hk_ss_list = ss->next;
    if (ss->next) ss->next->prev = ss->prev;
    else hk_ss_tail = ss->prev;
    ss->next = ss->prev = NULL;
}

/* Moves a region to the head (it has a free unit again) or the tail (it has none left). */
static void hk_ss_move_locked(hk_superslab_t *ss, int to_head) {
    if (to_head ? hk_ss_list == ss : hk_ss_tail == ss) return;
    hk_ss_unlink_locked(ss);
    if (to_head) {
        ss->next = hk_ss_list;
        if (hk_ss_list) hk_ss_list->prev = ss;
        else hk_ss_tail = ss;
        hk_ss_list = ss;
    } else {
        ss->prev = hk_ss_tail;
        if (hk_ss_tail) hk_ss_tail->next = ss;
        else hk_ss_list = ss;
        hk_ss_tail = ss;
    }
}

static void hk_ss_unmap_locked(hk_superslab_t *ss) {
    hk_ss_unlink_locked(ss);
    hk_ss_empty--;
    hk_ss_dirty_units -= (uint32_t)__builtin_popcount(ss->dirty_mask);
    hk_region_mark(ss, HK_REGION_NONE);
    ss->magic = 0;
    HK_CNT_ADD(regions_live, (uint64_t)-1);
    if (HK_KNOB(lean)) HK_CNT_ADD(lean_retire, 1);
    hk_os_unmap(ss, HK_SS_SIZE);
}

/* First position where `n` consecutive bits of mask are set, or -1. */
static int hk_find_run(uint32_t mask, unsigned n) {
    uint32_t m = mask;
    for (unsigned i = 1; i < n; i++) m &= mask >> i;
    m &= (n < 32) ? ((~(uint32_t)0) >> (n - 1)) : 1u; /* a run must end inside the region */
    return m ? __builtin_ctz(m) : -1;
}

/* Gives back the pages of each run of dirty units of one region. */
static void hk_ss_decommit_dirty_locked(hk_superslab_t *ss, hk_decommit_t how) {
    uint32_t d = ss->dirty_mask;
    while (d) {
        int first = __builtin_ctz(d);
        int len = 0;
        while (first + len < HK_UNITS && (d >> (first + len)) & 1u) len++;
        hk_os_decommit((char *)ss + ((size_t)first << HK_UNIT_SHIFT), (size_t)len << HK_UNIT_SHIFT, how);
        if (HK_KNOB(lean)) HK_CNT_ADD(lean_decommit, 1);
        d &= ~(((len == 32) ? ~0u : ((1u << len) - 1)) << first);
    }
    hk_ss_dirty_units -= (uint32_t)__builtin_popcount(ss->dirty_mask);
    ss->dirty_mask = 0;
}

hk_slab_t *hk_ss_slab_new(int cls, uint64_t owner) {
    const hk_class_info_t *ci = &hk_class_info[cls];
    hk_lock(&hk_ss_lock);
    /* Prefer the fullest region that fits, so that sparse regions drain and can be released. */
    hk_superslab_t *best = NULL;
    int best_unit = -1, best_free = 99;
    for (hk_superslab_t *ss = hk_ss_list; ss && ss->free_mask != 0; ss = ss->next) {
        int nfree = __builtin_popcount(ss->free_mask);
        if (nfree < (int)ci->units || nfree >= best_free) continue;
        int u = hk_find_run(ss->free_mask, ci->units);
        if (u < 0) continue;
        best = ss, best_unit = u, best_free = nfree;
        if (nfree == (int)ci->units) break;
    }
    if (best == NULL) {
        best = hk_ss_map_locked();
        if (best == NULL) { hk_unlock(&hk_ss_lock); return NULL; }
        best_unit = 1;
    }
    hk_superslab_t *ss = best;
    uint32_t bits = ((ci->units == 32) ? ~0u : ((1u << ci->units) - 1)) << best_unit;
    if (ss->free_mask == HK_ALL_UNITS_FREE) hk_ss_empty--;
    ss->free_mask &= ~bits;
    if (ss->free_mask == 0) hk_ss_move_locked(ss, 0);
    /* Dirty units are reused as they are: their pages are still resident, which is the point. */
    int dirty = (ss->dirty_mask & bits) != 0;
    hk_ss_dirty_units -= (uint32_t)__builtin_popcount(ss->dirty_mask & bits);
    ss->dirty_mask &= ~bits;
    ss->live_slabs++;
    for (unsigned u = 0; u < ci->units; u++) {
        ss->unit_slab[best_unit + u] = (uint8_t)best_unit;
        ss->unit_cls[best_unit + u] = (uint8_t)cls;
    }
    hk_slab_t *s = &ss->slabs[best_unit];
    s->start = (char *)ss + ((size_t)best_unit << HK_UNIT_SHIFT);
    s->bump = s->start;
    s->end = s->start + (size_t)ci->capacity * ci->size;
    s->block_size = ci->size;
    s->capacity = ci->capacity;
    s->div_magic = ci->div_magic;
    s->used = 0;
    s->local_count = 0;
    s->local_free = NULL;
    s->holes = 0;
    s->held = 0;
    s->vacated = 0;
    s->hole_next = NULL;
    s->next = s->prev = NULL;
    s->cls = (uint8_t)cls;
    s->units = (uint8_t)ci->units;
    s->first_unit = (uint8_t)best_unit;
    s->list = HK_LIST_NONE;
    s->committed = dirty ? s->start + ((size_t)ci->units << HK_UNIT_SHIFT) : s->start;
    atomic_store_explicit(&s->remote, 0, memory_order_relaxed);
    hk_slab_set_owner(s, owner);
    hk_unlock(&hk_ss_lock);
    HK_CNT_ADD(slabs_live, 1);
    return s;
}

void hk_ss_slab_release(hk_slab_t *s) {
    hk_superslab_t *ss = hk_ss_of((uintptr_t)s);
    int batch = HK_KNOB(madvise_batch);
    hk_lock(&hk_ss_lock);
    hk_slab_set_owner(s, HK_OWNER_NONE);
    uint32_t bits = ((s->units == 32) ? ~0u : ((1u << s->units) - 1)) << s->first_unit;
    for (unsigned u = 0; u < s->units; u++) ss->unit_slab[s->first_unit + u] = 0;
    s->capacity = 0; /* marks the descriptor unused: frees that land here are invalid */
    s->bump = s->start; /* and so does an empty carved range (the hardened free's one range test) */
    s->block_size = 0;
    if (ss->free_mask == 0) hk_ss_move_locked(ss, 1);
    ss->free_mask |= bits;
    ss->dirty_mask |= bits;
    hk_ss_dirty_units += s->units;
    ss->live_slabs--;
    HK_CNT_ADD(slabs_live, (uint64_t)-1);
    if (batch == 0) {
        hk_ss_decommit_dirty_locked(ss, HK_KNOB(decommit));
    } else if (hk_ss_dirty_units >= (uint32_t)batch) {
        /* Batched madvise: one pass over every region, one call per run of dirty units. */
        for (hk_superslab_t *r = hk_ss_list; r; r = r->next)
            if (r->dirty_mask) hk_ss_decommit_dirty_locked(r, HK_KNOB(decommit));
    }
    if (ss->free_mask == HK_ALL_UNITS_FREE) {
        hk_ss_empty++;
        if (hk_ss_empty > (uint32_t)HK_KNOB(ss_reuse)) hk_ss_unmap_locked(ss);
    }
    hk_unlock(&hk_ss_lock);
}

void hk_ss_init(void) {
    int n = HK_KNOB(prewarm);
    hk_lock(&hk_ss_lock);
    for (int i = 0; i < n; i++)
        if (hk_ss_map_locked() == NULL) break;
    hk_unlock(&hk_ss_lock);
}

void hk_ss_trim(void) {
    hk_lock(&hk_ss_lock);
    for (hk_superslab_t *r = hk_ss_list; r; r = r->next)
        if (r->dirty_mask) hk_ss_decommit_dirty_locked(r, HK_KNOB(decommit));
    hk_superslab_t *r = hk_ss_list;
    while (r && hk_ss_empty > (uint32_t)HK_KNOB(ss_reuse)) {
        hk_superslab_t *next = r->next;
        if (r->free_mask == HK_ALL_UNITS_FREE) hk_ss_unmap_locked(r);
        r = next;
    }
    hk_unlock(&hk_ss_lock);
}

void hk_ss_foreach(void (*fn)(hk_superslab_t *, void *), void *arg) {
    hk_lock(&hk_ss_lock);
    for (hk_superslab_t *r = hk_ss_list; r; r = r->next) fn(r, arg);
    hk_unlock(&hk_ss_lock);
}

void hk_ss_lock_all(void) { hk_lock(&hk_ss_lock); }
void hk_ss_unlock_all(void) { hk_unlock(&hk_ss_lock); }
void hk_ss_reset_locks(void) { hk_lock_reset(&hk_ss_lock); }

static int hk_fail(const char **check, const char *name, char *msg, size_t len, const char *text) {
    *check = name;
    hk_strlcpy(msg, text, len);
    return 0;
}

int hk_superslab_check(hk_superslab_t *ss, const char **check, char *msg, size_t len) {
    if (ss->magic != HK_SS_MAGIC) return hk_fail(check, "region.magic", msg, len, "region header magic is wrong");
    if (!hk_region_is_ss((uintptr_t)ss)) return hk_fail(check, "region.map", msg, len, "region missing from the region map");
    if (ss->free_mask & 1u) return hk_fail(check, "region.unit0", msg, len, "unit 0 (the header) is marked free");
    if (ss->dirty_mask & ~ss->free_mask) return hk_fail(check, "region.dirty", msg, len, "a dirty unit is not free");
    uint32_t covered = 0, slabs = 0;
    for (int u = 1; u < HK_UNITS; u++) {
        if (ss->free_mask & (1u << u)) {
            if (ss->unit_slab[u] != 0) return hk_fail(check, "region.unit_map", msg, len, "a free unit maps to a slab");
            continue;
        }
        if (covered & (1u << u)) continue;
        if (ss->unit_slab[u] != u) return hk_fail(check, "region.unit_map", msg, len, "unit does not start its slab");
        hk_slab_t *s = &ss->slabs[u];
        slabs++;
        if (s->cls >= HK_NCLASSES || s->block_size != hk_class_info[s->cls].size || s->units != hk_class_info[s->cls].units ||
            s->capacity != hk_class_info[s->cls].capacity)
            return hk_fail(check, "slab.geometry", msg, len, "slab geometry does not match its class");
        for (unsigned k = 0; k < s->units; k++) {
            if (u + (int)k >= HK_UNITS || ss->unit_slab[u + k] != u || (ss->free_mask & (1u << (u + k))))
                return hk_fail(check, "region.unit_map", msg, len, "slab units are not all mapped to the slab");
            covered |= 1u << (u + k);
        }
        if (s->bump < s->start || s->bump > s->end || (size_t)(s->bump - s->start) % s->block_size)
            return hk_fail(check, "slab.bump", msg, len, "bump pointer outside the slab or off a block boundary");
    }
    if (slabs != ss->live_slabs) return hk_fail(check, "region.count", msg, len, "live slab count does not match the units");
    return 1;
}
