/* Mid classes C21..C44: 1 KiB < size <= 64 KiB, four classes per doubling (1280, 1536, 1792, 2048,
 * 2560, ... 65536), so internal waste stays under 20%. Served by the same slab engine as the tiny
 * classes, with larger slabs (up to 8 units) so every slab holds at least 8 blocks, and smaller
 * thread caches. Power-of-two mid classes are naturally aligned to their size (slabs start on a
 * 64 KiB boundary), which memalign uses for alignments up to 64 KiB. */
#ifndef HK_MIDCLASS_H
#define HK_MIDCLASS_H

#include "common.h"

/* n in (1024, 65536]. */
HK_INLINE unsigned hk_mid_class(size_t n) {
    unsigned k = 63u - (unsigned)__builtin_clzll((unsigned long long)(n - 1)); /* n in (2^k, 2^(k+1)] */
    unsigned sub = (unsigned)((n - 1 - ((size_t)1 << k)) >> (k - 2));      /* 0..3 */
    return HK_TINY_CLASSES + (k - 10) * 4 + sub;
}

HK_INLINE size_t hk_mid_class_size(unsigned cls) {
    unsigned i = cls - HK_TINY_CLASSES, k = 10 + i / 4, sub = i % 4;
    return ((size_t)1 << k) + (size_t)(sub + 1) * ((size_t)1 << (k - 2));
}

/* 64 KiB units per slab: at least 8 blocks per slab. */
HK_INLINE unsigned hk_mid_units(unsigned cls) {
    size_t s = hk_mid_class_size(cls);
    return s <= 8192 ? 1 : s <= 16384 ? 2 : s <= 32768 ? 4 : 8;
}

#endif
