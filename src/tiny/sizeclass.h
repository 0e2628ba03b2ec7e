/* Size classes: C0..C20 tiny (8, 16, 32, 48, 64, ... 128, then four per doubling up to 1024; the
 * sizes and the reasons are in tools/gen-sizeclass.py, which writes sizeclass.c), C21..C44 mid
 * (mid/midclass.h). Sizes above 64 KiB go to large/. A class whose size is a multiple of 2^k hands
 * out 2^k-aligned blocks (slabs start on 64 KiB boundaries): memalign picks such a class. */
#ifndef HK_SIZECLASS_H
#define HK_SIZECLASS_H

#include "common.h"
#include "mid/midclass.h"

/* hk_tiny_class_tbl[(n + 7) >> 3] is the class of n <= 1024. */
extern HK_HIDDEN const uint8_t hk_tiny_class_tbl[129];

typedef struct hk_class_info {
    uint32_t size;
    uint32_t units;     /* 64 KiB units per slab */
    uint32_t capacity;  /* blocks per slab */
    uint32_t span;      /* capacity * size: the bytes of a slab that hold blocks */
    uint64_t div_magic; /* UINT64_MAX / size + 1: exact division and divisibility (hk_slab_t's) */
} hk_class_info_t;
extern HK_HIDDEN const hk_class_info_t hk_class_info[HK_NCLASSES];

/* n <= HK_MID_MAX */
HK_INLINE unsigned hk_size_class(size_t n) {
    if (HAK_LIKELY(n <= HK_TINY_MAX)) return hk_tiny_class_tbl[(n + 7) >> 3];
    return hk_mid_class(n);
}

HK_HIDDEN size_t hk_class_size_of(int cls);

#endif
