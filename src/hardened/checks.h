/* The hardened checks, inline on the fast paths (compiled away when their bits are off).
 *
 * Layout of a slab block in the hardened variant (class size bs, usable bs - 8):
 *
 *   live:  | user data ..........................................| canary |
 *   free:  | link | marker | fill | fill | (stale user data) ...| canary |
 *           word0   word1    word2  word3                          last word
 *
 * link: encoded next pointer; marker: secret value derived from the block address, present exactly
 * while the block is free; fill: HK_UAF_PATTERN, checked at reuse; canary: written at carve and at
 * malloc (bs == 16 shares it with the marker), checked at free and at reuse. */
#ifndef HK_CHECKS_H
#define HK_CHECKS_H

#include "hardened/harden.h"
#include "superslab/superslab.h"
#include "tiny/sizeclass.h"

/* Fill words after the marker: those that stay clear of the canary, at most HK_UAF_WORDS. */
HK_INLINE unsigned hk_uaf_words(size_t bs) {
    if (!HK_HARDEN(HK_H_UAF)) return 0;
    size_t room = (bs - HK_CANARY_BYTES) / 8; /* words before the canary */
    return room > 2 ? (unsigned)HK_MIN(room - 2, (size_t)HK_UAF_WORDS) : 0;
}
#define HK_UAF_WORD (0x0101010101010101ull * HK_UAF_PATTERN)
HK_INLINE uint64_t *hk_canary_slot(void *b, size_t bs) { return (uint64_t *)((char *)b + bs - 8); }

/* Puts the free-state decorations on a block (free, carve). */
HK_INLINE void hk_harden_mark_free(void *b, size_t bs) {
    if (HK_HARDEN(HK_H_DFREE)) *hk_marker_slot(b) = hk_marker(b);
    uint64_t *w = (uint64_t *)b;
    for (unsigned i = 0, n = hk_uaf_words(bs); i < n; i++) w[2 + i] = HK_UAF_WORD;
}

/* A block about to leave a free list (cache pop, flush, drain), checked before its link is read:
 * a block of class cls in a region of ours, carrying the free marker. A poisoned link fails here,
 * before the block it names is handed out or its memory is followed. */
HK_INLINE void hk_harden_check_free_block(void *b, unsigned cls) {
    if (!HK_HARDEN(HK_H_VALIDATE)) return;
    uintptr_t a = (uintptr_t)b;
    if (HAK_UNLIKELY(!hk_region_is_ss(a) || hk_ss_of(a)->unit_cls[(a >> HK_UNIT_SHIFT) & (HK_UNITS - 1)] != cls))
        hk_report(HK_FAULT_LINK_CORRUPT, b, (int)cls);
    if (HAK_UNLIKELY(*hk_marker_slot(b) != hk_marker(b))) hk_report(HK_FAULT_LIVE_IN_LIST, b, (int)cls);
}

/* A block just popped for malloc: nothing was written into it while it was free. */
HK_INLINE void hk_harden_on_alloc(void *b, unsigned cls) {
    size_t bs = hk_class_info[cls].size;
    uint64_t *w = (uint64_t *)b, diff = 0;
    for (unsigned i = 0, n = hk_uaf_words(bs); i < n; i++) diff |= w[2 + i] ^ HK_UAF_WORD;
    if (HK_HARDEN(HK_H_CANARY) && bs > 16) diff |= *hk_canary_slot(b, bs) ^ hk_canary(b);
    if (HAK_UNLIKELY(diff != 0)) hk_report(HK_FAULT_WRITE_AFTER_FREE, b, (int)cls);
    if (HK_HARDEN(HK_H_DFREE)) *hk_marker_slot(b) = 0;
    if (HK_HARDEN(HK_H_CANARY) && bs == 16) *hk_canary_slot(b, bs) = hk_canary(b);
}

/* A pointer passed to free that the region map says is in a region: a carved block start of an
 * active slab, not already free, its canary intact. Then it is decorated as free. */
HK_INLINE void hk_harden_on_free(void *p) {
    uintptr_t a = (uintptr_t)p;
    if (HK_HARDEN(HK_H_INVALID)) {
        hk_slab_t *s = hk_slab_of(a);
        if (HAK_UNLIKELY(s->capacity == 0 || (char *)p < s->start || (char *)p >= s->bump))
            hk_report(HK_FAULT_INVALID_FREE, p, s->capacity ? s->cls : -1);
        if (HAK_UNLIKELY(!hk_slab_on_boundary(s, a - (uintptr_t)s->start))) hk_report(HK_FAULT_INTERIOR_FREE, p, s->cls);
    }
    unsigned cls = hk_ss_of(a)->unit_cls[(a >> HK_UNIT_SHIFT) & (HK_UNITS - 1)];
    size_t bs = hk_class_info[cls].size;
    if (HK_HARDEN(HK_H_DFREE) && HAK_UNLIKELY(*hk_marker_slot(p) == hk_marker(p))) hk_report(HK_FAULT_DOUBLE_FREE, p, (int)cls);
    if (HK_HARDEN(HK_H_CANARY) && HAK_UNLIKELY(*hk_canary_slot(p, bs) != hk_canary(p))) hk_report(HK_FAULT_OVERFLOW, p, (int)cls);
    hk_harden_mark_free(p, bs);
}

/* A block carved from a fresh slab: free-state decorations plus its canary. */
HK_INLINE void hk_harden_on_carve(void *b, size_t bs) {
    if (HK_HARDEN(HK_H_CANARY) && bs > 16) *hk_canary_slot(b, bs) = hk_canary(b);
    hk_harden_mark_free(b, bs);
}

#endif
