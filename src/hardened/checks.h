/* The hardened checks, inline on the fast paths (compiled away when their bits are off).
 *
 * Layout of a slab block in the hardened variant (class size bs, usable bs - 8):
 *
 *   live:  | user data ..........................................| canary |
 *   free:  | link | marker | fill | fill | (stale user data) ...| canary |
 *           word0   word1    word2  word3                          last word
 *
 * link: encoded next pointer; marker: secret value derived from the block address and class,
 * present exactly while the block is free; canary: the marker with its first byte zeroed, written at
 * carve, checked at free and at reuse; fill: HK_UAF_PATTERN (words 2..3, in a 32-byte block word 2
 * only, word 3 being the canary; the whole block in debug builds), checked at reuse. Blocks are at
 * least 32 bytes (HK_HARDEN_MIN_BLOCK), so link, marker and canary each have a word of their own. One value (the marker) is computed per operation and every
 * free-state word is compared against it or against the canary derived from it: the checks at
 * reuse are one combined test, and a failure is told apart on the cold path. */
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
HK_INLINE uint64_t *hk_canary_slot(void *b, size_t bs) { return (uint64_t *)((char *)b + bs - 8); }

/* The fill: HK_UAF_WORD in the words after the marker that stay clear of the canary (two in the
 * hardened variant, the whole block in debug builds). With two fill words, an 8-byte canary and
 * blocks of 32 bytes and more (the hardened variant) the fill is words 2 and 3 for every block
 * without a loop: in a 32-byte block word 3 is the canary, and "its fill" is the canary value c (one
 * conditional move picks the value). Runs `stmt` with `i` on each fill word index and `v` its value. */
#define HK_UAF_WORD (0x0101010101010101ull * HK_UAF_PATTERN)
#define HK_FILL_FIXED (HK_UAF_WORDS == 2 && HK_CANARY_BYTES == 8 && HK_HARDEN_MIN_BLOCK >= 32)
#define HK_FOR_FILL(bs, c, i, v, stmt)                                                                   \
    do {                                                                                                 \
        if (HK_FILL_FIXED && HK_HARDEN(HK_H_UAF)) {                                                      \
            unsigned i = 2;                                                                              \
            uint64_t v = HK_UAF_WORD;                                                                    \
            stmt;                                                                                        \
            i = 3;                                                                                       \
            v = (bs) >= 40 ? HK_UAF_WORD : (c);                                                          \
            stmt;                                                                                        \
        } else {                                                                                         \
            for (unsigned i = 2, n_ = 2 + hk_uaf_words(bs); i < n_; i++) {                               \
                uint64_t v = HK_UAF_WORD;                                                                \
                stmt;                                                                                    \
            }                                                                                            \
        }                                                                                                \
    } while (0)

/* Puts the free-state words on a block (free, carve): marker m and the fill (c: its canary value). */
HK_INLINE void hk_harden_mark_free(void *b, size_t bs, uintptr_t m, uint64_t c) {
    uint64_t *w = (uint64_t *)b;
    if (HK_HARDEN(HK_H_DFREE)) w[1] = m;
    HK_FOR_FILL(bs, c, i, v, w[i] = v);
}

/* Cold halves of the checks below: they run only once the fast test failed, work out which fault it
 * is (the same tests in the order of the old one-test-per-branch code, every field re-read) and
 * report it. A fast test fails only on a fault (the fields it reads are the owner's, or only grow,
 * like a slab's bump), so these never return: were nothing found, they would still report.
 * The two called from malloc's and free's fast paths are not declared noreturn, and those paths
 * call them last (`return hk_harden_alloc_fault(...)`): the compiler then jumps to them (a tail
 * call) and the fast paths need no stack frame; a noreturn call would need one. */
HK_HIDDEN __attribute__((noreturn, cold)) void hk_harden_free_block_fault(void *b, unsigned cls);
HK_HIDDEN __attribute__((cold, returns_nonnull)) void *hk_harden_alloc_fault(void *b, unsigned cls);
HK_HIDDEN __attribute__((noreturn, cold)) void hk_harden_slab_block_fault(const hk_slab_t *s, void *b);
HK_HIDDEN __attribute__((cold)) void hk_harden_free_fault(void *p);

/* A block about to leave a free list (flush, drain, refill), checked before its link is read:
 * inside a region of ours (so its words can be read) and carrying the free marker of class cls
 * (which only a block start of that class that was freed carries: forging it needs the secret).
 * A poisoned link fails here, before the block it names is handed out or its memory is followed.
 * The class is part of the marker, so a free block of another class fails like a live one; the
 * cold path tells the two apart for the report (bad link vs link to a block that is not free). */
HK_INLINE void hk_harden_check_free_block(void *b, unsigned cls) {
    if (!HK_HARDEN(HK_H_VALIDATE)) return;
    if (HAK_UNLIKELY(!hk_region_is_ss((uintptr_t)b) || *hk_marker_slot(b) != hk_marker(b, cls)))
        hk_harden_free_block_fault(b, cls);
}

/* A block of one of slab s's own lists (its remote stack, its local list), checked before its link
 * is followed: inside the carved part of s (cheaper than the region map and stronger: every block on
 * those lists belongs to s) and carrying the free marker of s's class. Owner only (bump is stable). */
HK_INLINE void hk_harden_check_slab_block(const hk_slab_t *s, void *b) {
    if (!HK_HARDEN(HK_H_VALIDATE)) return;
    if (HAK_UNLIKELY((uintptr_t)b - (uintptr_t)s->start >= (uintptr_t)(s->bump - s->start) ||
                     *hk_marker_slot(b) != hk_marker(b, s->cls)))
        hk_harden_slab_block_fault(s, b);
}

/* A block popped from a thread cache for malloc (its link not yet followed): the free-block check
 * above and the write-after-free check (fill and canary unchanged since the free) as one test.
 * Nonzero: a fault (the caller returns hk_harden_alloc_fault(b, cls)). */
HK_INLINE int hk_harden_pop_bad(void *b, unsigned cls) {
    if (HK_HARDEN(HK_H_VALIDATE) && HAK_UNLIKELY(!hk_region_is_ss((uintptr_t)b))) return 1;
    size_t bs = hk_class_info[cls].size;
    uintptr_t m = hk_marker(b, cls);
    uint64_t c = hk_canary_of(m), *w = (uint64_t *)b, diff = 0;
    if (HK_HARDEN(HK_H_VALIDATE)) diff |= w[1] ^ m;
    HK_FOR_FILL(bs, c, i, v, diff |= w[i] ^ v);
    if (HK_HARDEN(HK_H_CANARY)) diff |= *hk_canary_slot(b, bs) ^ c;
    return diff != 0;
}

/* A block just taken for malloc (checked by hk_harden_on_pop): it loses the marker. */
HK_INLINE void hk_harden_on_alloc(void *b, unsigned cls) {
    (void)cls;
    if (HK_HARDEN(HK_H_DFREE)) *hk_marker_slot(b) = 0;
}

/* A pointer passed to free that the region map says is in region ss, unit u, of class cls (the
 * unit's class, valid once the pointer is known to be in an active slab): a carved block start of
 * an active slab, not already free, its canary intact. Then it is decorated as free.
 * Two branches. The first: the pointer is a block start of the slab layout of its unit's class (one
 * unsigned range test against the class's span from the slab's first unit, and Lemire's divisibility
 * test), from the region header's unit bytes and the class table only: the slab descriptor (another
 * cache line, often cold) is not read on the fast path. It bounds the block inside the region, so the
 * second, the marker and canary tests, reads only region memory. A block start past the slab's bump
 * (uncarved), or in a free unit (whose unit_slab is 0), passes the first test and fails the second:
 * its memory is zero (fresh or decommitted) or holds the marker of a block that was free when the
 * slab was released or its tail trimmed (only free blocks are released or uncarved), so the
 * canary test or the double-free test fails; the cold path then reads the descriptor and reports
 * an invalid free. Forging the canary or passing the marker needs the secret. */
/* Returns nonzero on a fault (the caller returns after hk_harden_free_fault(p)); else the block is
 * decorated as free. */
HK_INLINE int hk_harden_free_bad(void *p, hk_superslab_t *ss, unsigned u, unsigned cls) {
    uintptr_t a = (uintptr_t)p;
    if (HK_HARDEN(HK_H_INVALID)) {
        const hk_class_info_t *ci = &hk_class_info[cls];
        uintptr_t off = a - ((uintptr_t)ss + ((uintptr_t)ss->unit_slab[u] << HK_UNIT_SHIFT)), magic = ci->div_magic;
        if (HAK_UNLIKELY((off >= ci->span) | (off * magic > magic - 1))) return 1;
    }
    size_t bs = hk_class_info[cls].size;
    uintptr_t m = hk_marker(p, cls);
    uint64_t c = hk_canary_of(m);
    int bad = 0;
    if (HK_HARDEN(HK_H_DFREE)) bad |= *hk_marker_slot(p) == m;
    if (HK_HARDEN(HK_H_CANARY)) bad |= *hk_canary_slot(p, bs) != c;
    if (HAK_UNLIKELY(bad)) return 1;
    hk_harden_mark_free(p, bs, m, c);
    return 0;
}

/* The free checks of a pointer the region map places in a region (slow and traced paths). */
HK_INLINE void hk_harden_on_free(void *p) {
    uintptr_t a = (uintptr_t)p;
    hk_superslab_t *ss = hk_ss_of(a);
    unsigned u = (unsigned)(a >> HK_UNIT_SHIFT) & (HK_UNITS - 1);
    if (HAK_UNLIKELY(hk_harden_free_bad(p, ss, u, ss->unit_cls[u]))) hk_harden_free_fault(p);
}

/* A block carved from a fresh slab: free-state decorations plus its canary. */
HK_INLINE void hk_harden_on_carve(void *b, size_t bs, unsigned cls) {
    uintptr_t m = hk_marker(b, cls);
    uint64_t c = hk_canary_of(m);
    if (HK_HARDEN(HK_H_CANARY)) *hk_canary_slot(b, bs) = c;
    hk_harden_mark_free(b, bs, m, c);
}

#endif
