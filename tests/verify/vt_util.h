/* Helpers shared by the verify/ unit tests: a seeded PRNG and a random program generator. */
#ifndef VT_UTIL_H
#define VT_UTIL_H

#include <stdint.h>
#include <stdlib.h>

#include "verify/verify.h"

static inline uint64_t vt_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A value of every flavour the codecs must carry: small, class-like, large, 64-bit extremes. */
static inline uint64_t vt_value(uint64_t *s)
{
    uint64_t r = vt_next(s);
    switch (r % 6) {
    case 0: return r >> 56;
    case 1: return (r >> 8) % 1100;
    case 2: return (uint64_t)1 << ((r >> 8) % 64);
    case 3: return (r >> 8) % (5u << 20);
    case 4: return UINT64_MAX - ((r >> 8) % 5);
    default: return vt_next(s);
    }
}

/* A random well-formed program of n ops. fuzzable != 0 keeps it within what the fuzz encoding can
 * express (ids < HK_FUZZ_IDS, SET values <= 2^32-1). */
static inline void vt_random_prog(hk_prog_t *p, uint64_t *s, size_t n, int fuzzable)
{
    hk_prog_clear(p);
    for (size_t i = 0; i < n; i++) {
        hk_op_t op = {0};
        op.kind = (uint8_t)(vt_next(s) % HK_OP_KIND_COUNT);
        uint32_t idmax = fuzzable ? HK_FUZZ_IDS : HK_OP_MAX_IDS;
        switch (op.kind) {
        case HK_OP_ALLOC: case HK_OP_REALLOC: case HK_OP_VALLOC: case HK_OP_PVALLOC:
            op.id = (uint32_t)(vt_next(s) % idmax);
            op.size = vt_value(s);
            break;
        case HK_OP_CALLOC: case HK_OP_REALLOCARRAY: case HK_OP_MEMALIGN: case HK_OP_POSIX_MEMALIGN:
        case HK_OP_ALIGNED_ALLOC:
            op.id = (uint32_t)(vt_next(s) % idmax);
            op.arg = vt_value(s);
            op.size = vt_value(s);
            break;
        case HK_OP_FREE: case HK_OP_USABLE:
            op.id = (uint32_t)(vt_next(s) % idmax);
            break;
        case HK_OP_THREAD:
            op.id = (uint32_t)(vt_next(s) % HK_OP_MAX_THREADS);
            break;
        case HK_OP_SET:
            op.id = (uint32_t)(vt_next(s) % hk_op_knob_count);
            op.arg = fuzzable ? (vt_next(s) & 0xFFFFFFFFu) : vt_value(s);
            break;
        default:
            break;
        }
        hk_prog_push(p, op);
    }
}

#endif /* VT_UTIL_H */
