/* Fuzz bytes <-> op program.
 *
 * The decoder accepts every byte string: each op starts with a selector byte, reads the bytes its
 * kind needs, and missing bytes at the end of the input read as 0. Sizes are drawn from categories
 * that hit what allocators get wrong (class boundaries +-1, zero, powers of two, small, medium,
 * rarely large, impossible). The exact rules are in docs/op-program.md; keep the two in step.
 * The encoder is the decoder's inverse, so traces can seed fuzz corpora. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "op.h"

#include <stdlib.h>
#include <string.h>

/* Selector byte (low 5 bits) -> kind. Weights: allocation and free dominate, the rest is spice. */
static const uint8_t sel_kind[32] = {
    HK_OP_ALLOC, HK_OP_ALLOC, HK_OP_ALLOC, HK_OP_ALLOC, HK_OP_ALLOC, HK_OP_ALLOC, HK_OP_ALLOC,
    HK_OP_ALLOC,                                                                  /* 0..7 */
    HK_OP_FREE, HK_OP_FREE, HK_OP_FREE, HK_OP_FREE, HK_OP_FREE, HK_OP_FREE, HK_OP_FREE, /* 8..14 */
    HK_OP_REALLOC, HK_OP_REALLOC, HK_OP_REALLOC, HK_OP_REALLOC,                   /* 15..18 */
    HK_OP_CALLOC, HK_OP_CALLOC,                                                   /* 19..20 */
    HK_OP_MEMALIGN, HK_OP_POSIX_MEMALIGN, HK_OP_ALIGNED_ALLOC, HK_OP_USABLE,      /* 21..24 */
    HK_OP_THREAD, HK_OP_THREAD, HK_OP_SET, HK_OP_CHECK,                           /* 25..28 */
    HK_OP_VALLOC, HK_OP_PVALLOC, HK_OP_REALLOCARRAY,                              /* 29..31 */
};

/* Sizes that can never be served: each must fail with ENOMEM, never allocate. */
static const uint64_t impossible_sizes[8] = {
    UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - 4095, (uint64_t)1 << 63,
    ((uint64_t)1 << 63) - 1, /* PTRDIFF_MAX */ (uint64_t)1 << 62, HK_OP_SIZE_HUGE,
    UINT64_MAX / 2 + 2,
};

/* Alignments that are wrong or absurd (0, not a power of two, beyond any address space). */
static const uint64_t bogus_aligns[15] = {
    0, 3, 12, 24, 48, 100, 1000, 4097, 65535, (uint64_t)3 << 20, (uint64_t)1 << 63,
    ((uint64_t)1 << 63) + 1, UINT64_MAX, (uint64_t)1 << 62, HK_OP_SIZE_HUGE,
};
static const uint64_t common_aligns[6] = {8, 16, 32, 64, 128, 4096};

static const uint64_t special_nmemb[5] = {
    UINT64_MAX, (uint64_t)1 << 32, ((uint64_t)1 << 32) + 1, UINT64_MAX / 2, (uint64_t)1 << 62,
};

/* Class-boundary table: 78 entries, the first 50 at most 64 KiB. Entries 0..13: powers of two
 * 8 B .. 64 KiB; 14..43: the quarter steps 5/4, 6/4, 7/4 of 2^6 .. 2^15 (the usual shape of size-class
 * series); 44..49: odd small classes; 50..55: powers of two 128 KiB .. 4 MiB; 56..73: quarter steps of
 * 2^16 .. 2^21; 74..77: more odd small classes. Computed, not stored, so it cannot drift; the order is
 * part of the format. */
#define NBOUND 78u
static uint64_t boundary(unsigned idx)
{
    static const uint16_t odd[10] = {24, 40, 48, 56, 80, 96, 112, 160, 192, 224};
    if (idx < 14)
        return (uint64_t)1 << (idx + 3);
    if (idx < 44) {
        unsigned j = idx - 14, k = 6 + j / 3, m = 5 + j % 3;
        return (((uint64_t)1 << k) * m) / 4;
    }
    if (idx < 50)
        return odd[idx - 44];
    if (idx < 56)
        return (uint64_t)1 << (idx - 50 + 17);
    if (idx < 74) {
        unsigned j = idx - 56, k = 16 + j / 3, m = 5 + j % 3;
        return (((uint64_t)1 << k) * m) / 4;
    }
    return odd[6 + (idx - 74)];
}

/* ---- decoder ---------------------------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    size_t n, pos;
} rd_t;

static uint8_t rd_u8(rd_t *r)
{
    return r->pos < r->n ? r->p[r->pos++] : (r->pos++, 0);
}

static uint64_t rd_le(rd_t *r, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)rd_u8(r) << (8 * i);
    return v;
}

/* Size byte c (then n = the next byte when the category reads one):
 *     0.. 95  small      1 + ((c & 31) << 5 | (n & 31))             1 .. 1024
 *    96..127  tiny       (c - 96) % 17                               0 .. 16
 *   128..159  boundary   class boundary + ((c - 128) % 3) - 1; the boundary is entry n % 50 of the
 *                        table (all entries <= 64 KiB) when c < 156, else n % 78 (any)
 *   160..191  pow2       1 << ((c - 160) % 17)                       1 .. 64 KiB
 *   192..223  medium     1025 + u16 % 15360                          1025 .. 16 KiB
 *   224..231  medium+    1025 + u16                                  1025 .. 66560
 *   232..239  struct     (c - 231) * 48                              48 .. 384
 *   240..247  impossible impossible_sizes[c - 240]
 *   248..249  large      65536 + u24 % (4 MiB - 65536 + 1)           64 KiB .. 4 MiB
 *   250..254  literal    u16                                         0 .. 65535
 *   255       literal    u64
 * (u16/u24/u64: little endian bytes that follow.) Large requests are rare (about 1 in 80) because each
 * costs an mmap and page faults on both allocators; the fuzzer's mutations find them when they matter. */
#define NBOUND_SMALL 50u
static uint64_t rd_size(rd_t *r)
{
    uint8_t c = rd_u8(r);
    if (c < 96)
        return 1 + (((uint64_t)(c & 31) << 5) | (rd_u8(r) & 31u));
    if (c < 128)
        return (uint64_t)(c - 96) % 17;
    if (c < 160) {
        uint8_t n = rd_u8(r);
        unsigned idx = c < 156 ? n % NBOUND_SMALL : n % NBOUND;
        return boundary(idx) + (uint64_t)((c - 128) % 3) - 1;
    }
    if (c < 192)
        return (uint64_t)1 << ((c - 160) % 17);
    if (c < 224)
        return 1025 + rd_le(r, 2) % 15360;
    if (c < 232)
        return 1025 + rd_le(r, 2);
    if (c < 240)
        return (uint64_t)(c - 231) * 48;
    if (c < 248)
        return impossible_sizes[c - 240];
    if (c < 250)
        return 65536 + rd_le(r, 3) % (HK_FUZZ_LARGE_MAX - 65536 + 1);
    if (c < 255)
        return rd_le(r, 2);
    return rd_le(r, 8);
}

static uint64_t rd_align(rd_t *r)
{
    uint8_t a = rd_u8(r);
    if (a < 192)
        return (uint64_t)1 << (a % 22);
    if (a < 240)
        return common_aligns[(a - 192) % 6];
    if (a < 255)
        return bogus_aligns[a - 240];
    return rd_le(r, 8);
}

/* Mostly 0..4 elements (calloc(1, n) is the common call), sometimes 5..30: a calloc of hundreds of
 * elements would spend the exec zeroing megabytes. */
static uint64_t rd_nmemb(rd_t *r)
{
    uint8_t b = rd_u8(r);
    if (b < 224)
        return b % 5;
    if (b < 250)
        return b - 224 + 5;
    if (b < 255)
        return special_nmemb[b - 250];
    return rd_le(r, 8);
}

static uint64_t knob_value(const hk_op_knob_t *k, unsigned c)
{
    if (c < 240)
        return k->min + ((k->max - k->min) * c) / 239;
    switch (c) {
    case 240: return k->max + 1;
    case 241: return k->max + 100;
    case 242: return (uint64_t)1 << 31;
    case 243: return UINT32_MAX;
    case 244: return k->min - 1; /* wraps to 2^64-1 for min 0: also invalid */
    default: return k->min;      /* 245..254 */
    }
}

int hk_prog_from_fuzz(hk_prog_t *p, const uint8_t *data, size_t n)
{
    rd_t r = {data, n, 0};
    hk_prog_clear(p);
    while (r.pos < r.n && p->n < HK_FUZZ_MAX_OPS) {
        hk_op_t op = {0};
        op.kind = sel_kind[rd_u8(&r) & 31];
        switch (op.kind) {
        case HK_OP_ALLOC: case HK_OP_REALLOC: case HK_OP_VALLOC: case HK_OP_PVALLOC:
            op.id = rd_u8(&r) % HK_FUZZ_IDS;
            op.size = rd_size(&r);
            break;
        case HK_OP_CALLOC: case HK_OP_REALLOCARRAY:
            op.id = rd_u8(&r) % HK_FUZZ_IDS;
            op.arg = rd_nmemb(&r);
            op.size = rd_size(&r);
            break;
        case HK_OP_MEMALIGN: case HK_OP_POSIX_MEMALIGN: case HK_OP_ALIGNED_ALLOC:
            op.id = rd_u8(&r) % HK_FUZZ_IDS;
            op.arg = rd_align(&r);
            op.size = rd_size(&r);
            break;
        case HK_OP_FREE: case HK_OP_USABLE:
            op.id = rd_u8(&r) % HK_FUZZ_IDS;
            break;
        case HK_OP_THREAD:
            op.id = rd_u8(&r) % HK_OP_MAX_THREADS;
            break;
        case HK_OP_SET: {
            op.id = rd_u8(&r) % hk_op_knob_count;
            uint8_t c = rd_u8(&r);
            op.arg = c == 255 ? rd_le(&r, 4) : knob_value(&hk_op_knobs[op.id], c);
            break;
        }
        default: /* CHECK */
            break;
        }
        if (hk_prog_push(p, op) != 0)
            return -1;
    }
    return 0;
}

/* ---- encoder ---------------------------------------------------------------------------------- */

typedef struct wr {
    uint8_t *p;
    size_t n, cap;
    int oom;
} wr_t;

static void wr_u8(wr_t *w, uint8_t b)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        uint8_t *q = realloc(w->p, cap);
        if (!q) {
            w->oom = 1;
            return;
        }
        w->p = q;
        w->cap = cap;
    }
    w->p[w->n++] = b;
}

static void wr_le(wr_t *w, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        wr_u8(w, (uint8_t)(v >> (8 * i)));
}

static int log2_exact(uint64_t v)
{
    return (v && !(v & (v - 1))) ? __builtin_ctzll(v) : -1;
}

static void wr_size(wr_t *w, uint64_t s)
{
    if (s <= 16) {
        wr_u8(w, (uint8_t)(96 + s));
    } else if (s <= 1024) {
        wr_u8(w, (uint8_t)((s - 1) >> 5));
        wr_u8(w, (uint8_t)((s - 1) & 31));
    } else if (s <= 16384) {
        wr_u8(w, 192);
        wr_le(w, s - 1025, 2);
    } else if (s <= 66560) {
        wr_u8(w, 224);
        wr_le(w, s - 1025, 2);
    } else if (s <= HK_FUZZ_LARGE_MAX) {
        wr_u8(w, 248);
        wr_le(w, s - 65536, 3);
    } else {
        for (unsigned i = 0; i < 8; i++) {
            if (impossible_sizes[i] == s) {
                wr_u8(w, (uint8_t)(240 + i));
                return;
            }
        }
        wr_u8(w, 255);
        wr_le(w, s, 8);
    }
}

static void wr_align(wr_t *w, uint64_t a)
{
    int l = log2_exact(a);
    if (l >= 0 && l < 22) {
        wr_u8(w, (uint8_t)l);
        return;
    }
    for (unsigned i = 0; i < 15; i++) {
        if (bogus_aligns[i] == a) {
            wr_u8(w, (uint8_t)(240 + i));
            return;
        }
    }
    wr_u8(w, 255);
    wr_le(w, a, 8);
}

static void wr_nmemb(wr_t *w, uint64_t n)
{
    if (n <= 4) {
        wr_u8(w, (uint8_t)n);
        return;
    }
    if (n <= 30) {
        wr_u8(w, (uint8_t)(n - 5 + 224));
        return;
    }
    for (unsigned i = 0; i < 5; i++) {
        if (special_nmemb[i] == n) {
            wr_u8(w, (uint8_t)(250 + i));
            return;
        }
    }
    wr_u8(w, 255);
    wr_le(w, n, 8);
}

static uint8_t kind_selector(unsigned kind)
{
    for (unsigned i = 0; i < 32; i++)
        if (sel_kind[i] == kind)
            return (uint8_t)i;
    return 0; /* unreachable for valid kinds: every kind has a selector */
}

int hk_prog_to_fuzz(const hk_prog_t *p, uint8_t **out, size_t *len)
{
    wr_t w = {0};
    *out = NULL;
    *len = 0;
    if (p->n > HK_FUZZ_MAX_OPS)
        return -1;
    for (size_t i = 0; i < p->n; i++) {
        const hk_op_t *op = &p->ops[i];
        if (hk_op_validate(op, NULL) != 0)
            goto fail;
        if (hk_op_is_block_op(op->kind) && op->id >= HK_FUZZ_IDS)
            goto fail;
        wr_u8(&w, kind_selector(op->kind));
        switch (op->kind) {
        case HK_OP_ALLOC: case HK_OP_REALLOC: case HK_OP_VALLOC: case HK_OP_PVALLOC:
            wr_u8(&w, (uint8_t)op->id);
            wr_size(&w, op->size);
            break;
        case HK_OP_CALLOC: case HK_OP_REALLOCARRAY:
            wr_u8(&w, (uint8_t)op->id);
            wr_nmemb(&w, op->arg);
            wr_size(&w, op->size);
            break;
        case HK_OP_MEMALIGN: case HK_OP_POSIX_MEMALIGN: case HK_OP_ALIGNED_ALLOC:
            wr_u8(&w, (uint8_t)op->id);
            wr_align(&w, op->arg);
            wr_size(&w, op->size);
            break;
        case HK_OP_FREE: case HK_OP_USABLE: case HK_OP_THREAD:
            wr_u8(&w, (uint8_t)op->id);
            break;
        case HK_OP_SET: {
            const hk_op_knob_t *k = &hk_op_knobs[op->id];
            int c = -1;
            for (unsigned v = 0; v < 245 && c < 0; v++)
                if (knob_value(k, v) == op->arg)
                    c = (int)v;
            wr_u8(&w, (uint8_t)op->id);
            if (c >= 0) {
                wr_u8(&w, (uint8_t)c);
            } else if (op->arg <= UINT32_MAX) {
                wr_u8(&w, 255);
                wr_le(&w, op->arg, 4);
            } else {
                goto fail;
            }
            break;
        }
        default:
            break;
        }
    }
    if (w.oom)
        goto fail;
    *out = w.p;
    *len = w.n;
    return 0;
fail:
    free(w.p);
    return -1;
}
