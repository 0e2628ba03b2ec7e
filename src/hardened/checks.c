/* The cold halves of the hardened checks (hardened/checks.h): which fault a failed fast test found. */
#include "hardened/checks.h"

#include "superslab/superslab.h"

void hk_harden_free_block_fault(void *b, unsigned cls) {
    uintptr_t a = (uintptr_t)b;
    if (!hk_region_is_ss(a)) hk_report(HK_FAULT_LINK_CORRUPT, b, (int)cls);
    hk_slab_t *s = hk_slab_of(a);
    /* In a region but no block start of this class (another class, a header, a free unit, an
     * uncarved or interior address): the link is bad. A block start of the class without the
     * marker: a live block (or one whose marker was overwritten after free). */
    if (s->capacity == 0 || s->cls != cls || (char *)b < s->start || (char *)b >= s->bump ||
        !hk_slab_on_boundary(s, a - (uintptr_t)s->start))
        hk_report(HK_FAULT_LINK_CORRUPT, b, (int)cls);
    hk_report(HK_FAULT_LIVE_IN_LIST, b, (int)cls); /* the marker test failed */
}

void hk_harden_free_fault(void *p) {
    uintptr_t a = (uintptr_t)p;
    hk_slab_t *s = hk_slab_of(a);
    if (HK_HARDEN(HK_H_INVALID)) {
        if (s->capacity == 0 || (char *)p < s->start || (char *)p >= s->bump)
            hk_report(HK_FAULT_INVALID_FREE, p, s->capacity ? s->cls : -1);
        if (!hk_slab_on_boundary(s, a - (uintptr_t)s->start)) hk_report(HK_FAULT_INTERIOR_FREE, p, s->cls);
    }
    hk_superslab_t *ss = hk_ss_of(a);
    unsigned cls = ss->unit_cls[(a >> HK_UNIT_SHIFT) & (HK_UNITS - 1)];
    size_t bs = hk_class_info[cls].size;
    /* a held block (free, in a page lean mode gave back: tiny/tcache.c) lost its canary */
    if (s->capacity != 0 && (char *)p >= s->start && (char *)p < s->bump && hk_slab_in_hole(s, a - (uintptr_t)s->start))
        hk_report(HK_FAULT_DOUBLE_FREE, p, (int)cls);
    if (HK_HARDEN(HK_H_DFREE) && *hk_marker_slot(p) == hk_marker(p, cls)) hk_report(HK_FAULT_DOUBLE_FREE, p, (int)cls);
    if (HK_HARDEN(HK_H_CANARY) && *hk_canary_slot(p, bs) != hk_canary(p, cls)) hk_report(HK_FAULT_OVERFLOW, p, (int)cls);
    hk_report(HK_FAULT_INVALID_FREE, p, (int)cls); /* unreachable in a correct program: see checks.h */
}

void *hk_harden_alloc_fault(void *b, unsigned cls) {
    if (HK_HARDEN(HK_H_VALIDATE) && (!hk_region_is_ss((uintptr_t)b) || *hk_marker_slot(b) != hk_marker(b, cls)))
        hk_harden_free_block_fault(b, cls);
    hk_report(HK_FAULT_WRITE_AFTER_FREE, b, (int)cls); /* the marker is intact: a fill word or the canary is not */
}

void hk_harden_slab_block_fault(const hk_slab_t *s, void *b) {
    if ((uintptr_t)b - (uintptr_t)s->start >= (uintptr_t)(s->bump - s->start))
        hk_report(HK_FAULT_LINK_CORRUPT, b, s->cls); /* not a carved block of the slab whose list it is on */
    hk_harden_free_block_fault(b, s->cls);
}
