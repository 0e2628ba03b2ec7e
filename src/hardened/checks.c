/* The hardened checks behind the fast paths (tiny/heap.h calls them only when the bits are on). */
#include <string.h>

#include "hardened/harden.h"
#include "tiny/heap.h"

void hk_harden_pop_check(void *b, void *next, unsigned cls) {
    (void)b;
    if (next == NULL) return;
    uintptr_t a = (uintptr_t)next;
    if (!hk_region_is_ss(a)) hk_report(HK_FAULT_LINK_CORRUPT, next, (int)cls);
    hk_slab_t *s = hk_slab_of(a);
    if (s->capacity == 0 || s->cls != cls || (char *)next < s->start || (char *)next >= s->bump ||
        !hk_slab_on_boundary(s, a - (uintptr_t)s->start))
        hk_report(HK_FAULT_LINK_CORRUPT, next, (int)cls);
}

void hk_harden_on_alloc(void *b, unsigned cls) {
    size_t bs = hk_class_info[cls].size;
    if (HK_HARDEN(HK_H_DFREE)) {
        uintptr_t *m = hk_marker_slot(b);
        if (*m != hk_marker(b)) hk_report(HK_FAULT_LIVE_IN_LIST, b, (int)cls);
        *m = 0;
    }
    if (HK_HARDEN(HK_H_UAF) && bs > 16) {
        const unsigned char *q = (const unsigned char *)b + 16;
        size_t n = HK_MIN((size_t)HK_UAF_BYTES, bs - 16);
        /* word-wise compare; HK_UAF_BYTES and class sizes are multiples of 8 */
        uint64_t pat = 0x0101010101010101ull * HK_UAF_PATTERN, diff = 0;
        for (size_t i = 0; i < n; i += 8) {
            uint64_t w;
            memcpy(&w, q + i, 8);
            diff |= w ^ pat;
        }
        if (diff) hk_report(HK_FAULT_WRITE_AFTER_FREE, b, (int)cls);
    }
    if (HK_HARDEN(HK_H_CANARY)) *(uint64_t *)((char *)b + bs - 8) = hk_canary(b);
}

void hk_harden_on_free(void *b, hk_slab_t *s) {
    if (HK_HARDEN(HK_H_INVALID)) {
        if (s->capacity == 0 || (char *)b < s->start || (char *)b >= s->bump)
            hk_report(HK_FAULT_INVALID_FREE, b, s->capacity ? s->cls : -1);
        if (!hk_slab_on_boundary(s, (uintptr_t)b - (uintptr_t)s->start)) hk_report(HK_FAULT_INTERIOR_FREE, b, s->cls);
    }
    size_t bs = s->block_size;
    if (HK_HARDEN(HK_H_DFREE) && *hk_marker_slot(b) == hk_marker(b)) hk_report(HK_FAULT_DOUBLE_FREE, b, s->cls);
    if (HK_HARDEN(HK_H_CANARY) && *(uint64_t *)((char *)b + bs - 8) != hk_canary(b)) hk_report(HK_FAULT_OVERFLOW, b, s->cls);
    if (HK_HARDEN(HK_H_DFREE)) *hk_marker_slot(b) = hk_marker(b);
    if (HK_HARDEN(HK_H_UAF) && bs > 16) memset((char *)b + 16, HK_UAF_PATTERN, HK_MIN((size_t)HK_UAF_BYTES, bs - 16));
}
