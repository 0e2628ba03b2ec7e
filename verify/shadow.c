/* The shadow heap (see shadow.h): block records, the address treap, the content pattern. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "shadow.h"

#include <stdlib.h>
#include <string.h>

#define NIL HK_SHADOW_NIL
#define PAT_K 0x9E3779B97F4A7C15ull
#define SAMPLE_EDGE 512u      /* bytes covered at each end of a sampled block */
#define SAMPLE_STAMP 64u      /* bytes covered at the start of each stride in between */
#define SAMPLE_MAX_STAMPS 64u /* the stride doubles from one page until a block has at most this many */
#define NEIGHBOUR_BYTES 256u
#define DEFAULT_SAMPLE_LIMIT 4096u

static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Size bucket of a request: a fixed log-linear function (4 steps per power of two), independent of
 * any allocator's classes, so the pattern differs between neighbouring size classes of every allocator
 * we compare. */
static uint64_t size_bucket(uint64_t size)
{
    if (size <= 64)
        return size / 8;
    unsigned l = 63u - (unsigned)__builtin_clzll(size);
    return 16 + (uint64_t)l * 4 + ((size >> (l - 2)) & 3);
}

uint64_t hk_shadow_pattern_seed(uint32_t id, uint32_t gen, uint64_t size)
{
    return mix64(((uint64_t)id << 32 | gen) ^ mix64(size_bucket(size)));
}

static inline uint64_t pat_word_le(uint64_t seed, uint64_t i)
{
    uint64_t w = seed + i * PAT_K;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

static inline uint8_t pat_byte(uint64_t seed, uint64_t off)
{
    return (uint8_t)((seed + (off >> 3) * PAT_K) >> (8 * (off & 7)));
}

void hk_shadow_pattern_fill(uint64_t seed, void *p, uint64_t off, uint64_t n)
{
    uint8_t *b = p;
    uint64_t o = off, end = off + n;
    for (; o < end && (o & 7); o++)
        b[o] = pat_byte(seed, o);
    /* Induction by addition (not a multiply per word) so the loop vectorizes. */
    uint64_t w = seed + (o >> 3) * PAT_K;
    for (; o + 8 <= end; o += 8, w += PAT_K) {
        uint64_t x = w;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        x = __builtin_bswap64(x);
#endif
        memcpy(b + o, &x, 8);
    }
    for (; o < end; o++)
        b[o] = pat_byte(seed, o);
}

uint64_t hk_shadow_pattern_find_mismatch(uint64_t seed, const void *p, uint64_t off, uint64_t n)
{
    const uint8_t *b = p;
    uint64_t o = off, end = off + n;
    for (; o < end && (o & 7); o++)
        if (b[o] != pat_byte(seed, o))
            return o;
    /* Blocks of 32 words compared with an OR of differences (vectorizes); the byte loop below finds
     * the exact offset once a block differs. */
    while (o + 256 <= end) {
        uint64_t w = seed + (o >> 3) * PAT_K, acc = 0;
        for (unsigned k = 0; k < 32; k++, w += PAT_K) {
            uint64_t x, e = w;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            e = __builtin_bswap64(e);
#endif
            memcpy(&x, b + o + 8 * k, 8);
            acc |= x ^ e;
        }
        if (acc)
            break;
        o += 256;
    }
    for (uint64_t w = seed + (o >> 3) * PAT_K; o + 8 <= end; o += 8, w += PAT_K) {
        uint64_t x, e = w;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        e = __builtin_bswap64(e);
#endif
        memcpy(&x, b + o, 8);
        if (x != e)
            break;
    }
    for (; o < end; o++)
        if (b[o] != pat_byte(seed, o))
            return o;
    return UINT64_MAX;
}

/* Segments of a block of length len that the pattern covers: all of it up to the sample limit,
 * otherwise the head, a stamp at the start of every stride, and the tail. The stride is a page (a live
 * page that gets decommitted reads back as zeros: caught), doubled until at most SAMPLE_MAX_STAMPS
 * stamps remain (a 4 MiB block touches 66 pages, not 1024). *cur starts at 0. */
static int seg_next(uint64_t len, uint64_t limit, uint64_t *cur, uint64_t *off, uint64_t *n)
{
    if (len <= limit) {
        if (*cur)
            return 0;
        *cur = 1;
        *off = 0;
        *n = len;
        return 1;
    }
    if (*cur == UINT64_MAX)
        return 0;
    if (*cur == 0) {
        *cur = 1;
        *off = 0;
        *n = SAMPLE_EDGE;
        return 1;
    }
    uint64_t stride = 4096;
    while (len / stride > SAMPLE_MAX_STAMPS)
        stride *= 2;
    uint64_t tail = len - SAMPLE_EDGE, o = *cur * stride;
    if (o + SAMPLE_STAMP <= tail) {
        (*cur)++;
        *off = o;
        *n = SAMPLE_STAMP;
        return 1;
    }
    *cur = UINT64_MAX;
    *off = tail;
    *n = SAMPLE_EDGE;
    return 1;
}

static uint64_t limit_of(const hk_shadow_t *sh)
{
    return sh->sample_limit >= 2 * SAMPLE_EDGE ? sh->sample_limit : DEFAULT_SAMPLE_LIMIT;
}

/* ---- treap ------------------------------------------------------------------------------------ */

static inline uintptr_t key(const hk_shadow_t *sh, uint32_t t)
{
    return (uintptr_t)sh->blk[t].ptr;
}

/* Bytes a block occupies for overlap purposes: its usable size (at least the requested size, and at
 * least 1, so two blocks at the same address always overlap). */
static inline uint64_t extent(const hk_block_t *b)
{
    uint64_t e = b->usable > b->size ? b->usable : b->size;
    return e ? e : 1;
}

/* Splits t into keys < k (l) and keys >= k (r). */
static void split(hk_shadow_t *sh, uint32_t t, uintptr_t k, uint32_t *l, uint32_t *r)
{
    if (t == NIL) {
        *l = *r = NIL;
    } else if (key(sh, t) < k) {
        split(sh, sh->blk[t].right, k, &sh->blk[t].right, r);
        *l = t;
    } else {
        split(sh, sh->blk[t].left, k, l, &sh->blk[t].left);
        *r = t;
    }
}

/* Every key of a is below every key of b. */
static uint32_t merge(hk_shadow_t *sh, uint32_t a, uint32_t b)
{
    if (a == NIL)
        return b;
    if (b == NIL)
        return a;
    if (sh->blk[a].prio > sh->blk[b].prio) {
        sh->blk[a].right = merge(sh, sh->blk[a].right, b);
        return a;
    }
    sh->blk[b].left = merge(sh, a, sh->blk[b].left);
    return b;
}

static uint32_t tmax(hk_shadow_t *sh, uint32_t t)
{
    if (t != NIL)
        while (sh->blk[t].right != NIL)
            t = sh->blk[t].right;
    return t;
}

static uint32_t tmin(hk_shadow_t *sh, uint32_t t)
{
    if (t != NIL)
        while (sh->blk[t].left != NIL)
            t = sh->blk[t].left;
    return t;
}

/* Removes node id from a treap whose keys are all equal (only overlapping blocks share a key). */
static uint32_t erase_id(hk_shadow_t *sh, uint32_t t, uint32_t id)
{
    if (t == NIL)
        return NIL;
    if (t == id)
        return merge(sh, sh->blk[t].left, sh->blk[t].right);
    sh->blk[t].left = erase_id(sh, sh->blk[t].left, id);
    sh->blk[t].right = erase_id(sh, sh->blk[t].right, id);
    return t;
}

/* Inserts id; reports an overlap with its neighbours (the node is inserted either way). */
static int tree_insert(hk_shadow_t *sh, uint32_t id, hk_verify_failure_t *f)
{
    hk_block_t *b = &sh->blk[id];
    uintptr_t k = (uintptr_t)b->ptr;
    uint32_t l, r;
    b->left = b->right = NIL;
    b->prio = (uint32_t)mix64((uint64_t)id << 32 ^ b->gen ^ k);
    split(sh, sh->root, k, &l, &r);
    uint32_t pred = tmax(sh, l), succ = tmin(sh, r), hit = NIL;
    if (pred != NIL && k - key(sh, pred) < extent(&sh->blk[pred]))
        hit = pred;
    else if (succ != NIL && key(sh, succ) - k < extent(b))
        hit = succ;
    sh->root = merge(sh, merge(sh, l, id), r);
    if (hit == NIL)
        return 0;
    const hk_block_t *o = &sh->blk[hit];
    hk_verify_fail(f, "shadow.overlap",
            "new block [%p, +%llu) overlaps live block of id %u [%p, +%llu) (usable sizes)", (void *)b->ptr,
            (unsigned long long)extent(b), hit, (void *)o->ptr, (unsigned long long)extent(o));
    if (f) {
        f->id = id;
        f->ptr = b->ptr;
        f->other_id = hit;
        f->other = o->ptr;
    }
    return 1;
}

static void tree_erase(hk_shadow_t *sh, uint32_t id)
{
    uintptr_t k = key(sh, id);
    uint32_t l, m, r;
    split(sh, sh->root, k, &l, &r);
    split(sh, r, k + 1, &m, &r);
    m = erase_id(sh, m, id);
    sh->root = merge(sh, merge(sh, l, m), r);
    sh->blk[id].left = sh->blk[id].right = NIL;
}

/* ---- blocks ----------------------------------------------------------------------------------- */

int hk_shadow_init(hk_shadow_t *sh, uint32_t nids, unsigned flags)
{
    memset(sh, 0, sizeof *sh);
    sh->flags = flags;
    sh->root = NIL;
    sh->nids = nids;
    sh->blk = calloc(nids ? nids : 1, sizeof *sh->blk);
    if (!sh->blk)
        return -1;
    for (uint32_t i = 0; i < nids; i++)
        sh->blk[i].left = sh->blk[i].right = NIL;
    return 0;
}

void hk_shadow_destroy(hk_shadow_t *sh)
{
    free(sh->blk);
    memset(sh, 0, sizeof *sh);
    sh->root = NIL;
}

uint64_t hk_shadow_default_align(uint64_t size)
{
    if (size >= 16)
        return 16;
    if (size == 0)
        return 1;
    return (uint64_t)1 << (63 - __builtin_clzll(size));
}

/* How many bytes to cover with the pattern: the usable size (writing the slack proves it is really
 * usable), unless asked for the requested size only, or unless the usable size is far beyond any
 * plausible rounding (a broken report must not make us write outside the mapping). */
static uint64_t fill_len(const hk_shadow_t *sh, uint64_t size, uint64_t usable, uint64_t align)
{
    if ((sh->flags & HK_SHADOW_FILL_REQUESTED) || usable <= size)
        return size;
    if (usable - size > ((uint64_t)4 << 20) + align + size)
        return size;
    return usable;
}

static int content_fail(hk_shadow_t *sh, uint32_t id, uint64_t off, const char *what,
                        hk_verify_failure_t *f)
{
    const hk_block_t *b = &sh->blk[id];
    uint8_t got = b->ptr[off];
    hk_verify_fail(f, "shadow.content",
            "%s: byte %llu of the block (requested %llu, usable %llu, gen %u) is 0x%02x, expected 0x%02x",
            what, (unsigned long long)off, (unsigned long long)b->size, (unsigned long long)b->usable,
            b->gen, got, pat_byte(b->seed, off));
    if (f) {
        f->id = id;
        f->ptr = b->ptr;
        f->other = b->ptr + off;
    }
    return 1;
}

static uint64_t check_pattern(const hk_shadow_t *sh, const hk_block_t *b, uint64_t clip)
{
    uint64_t cur = 0, off, n, lim = limit_of(sh);
    while (seg_next(b->filled, lim, &cur, &off, &n)) {
        if (off >= clip)
            continue;
        if (off + n > clip)
            n = clip - off;
        uint64_t bad = hk_shadow_pattern_find_mismatch(b->seed, b->ptr, off, n);
        if (bad != UINT64_MAX)
            return bad;
    }
    return UINT64_MAX;
}

static void fill_pattern(const hk_shadow_t *sh, const hk_block_t *b)
{
    uint64_t cur = 0, off, n, lim = limit_of(sh);
    while (seg_next(b->filled, lim, &cur, &off, &n))
        hk_shadow_pattern_fill(b->seed, b->ptr, off, n);
}

/* Fills the record of a new block in id and runs the per-block checks. */
static int record(hk_shadow_t *sh, uint32_t id, void *ptr, uint64_t size, uint64_t usable, uint64_t align,
                  int zeroed, hk_verify_failure_t *f)
{
    hk_block_t *b = &sh->blk[id];
    b->ptr = ptr;
    b->size = size;
    b->usable = usable;
    b->gen++;
    b->seed = hk_shadow_pattern_seed(id, b->gen, size);
    b->filled = fill_len(sh, size, usable, align);
    sh->live++;
    sh->live_bytes += size;
    int bad = 0;
    if (sh->flags & HK_SHADOW_CHECKS) {
        if (align > 1 && ((uintptr_t)ptr & (align - 1))) {
            bad = hk_verify_fail(f, "shadow.align", "block %p of %llu bytes is not aligned to %llu", ptr,
                          (unsigned long long)size, (unsigned long long)align);
        } else if (usable < size) {
            bad = hk_verify_fail(f, "shadow.usable", "usable size %llu is below the requested %llu",
                          (unsigned long long)usable, (unsigned long long)size);
        }
        if (bad && f) {
            f->id = id;
            f->ptr = ptr;
        }
    }
    if (sh->flags & HK_SHADOW_ORDERED) {
        if (tree_insert(sh, id, bad ? NULL : f) && !bad)
            bad = 1;
    }
    if (bad)
        return 1;
    if (zeroed && (sh->flags & HK_SHADOW_CONTENT)) {
        uint64_t cur = 0, off, n, lim = limit_of(sh);
        while (seg_next(size, lim, &cur, &off, &n)) {
            for (uint64_t o = off; o < off + n; o++) {
                if (b->ptr[o] != 0) {
                    hk_verify_fail(f, "shadow.content", "calloc block not zeroed: byte %llu of %llu is 0x%02x",
                            (unsigned long long)o, (unsigned long long)size, b->ptr[o]);
                    if (f) {
                        f->id = id;
                        f->ptr = ptr;
                        f->other = b->ptr + o;
                    }
                    return 1;
                }
            }
        }
    }
    if (sh->flags & HK_SHADOW_CONTENT)
        fill_pattern(sh, b);
    return 0;
}

int hk_shadow_add(hk_shadow_t *sh, uint32_t id, void *ptr, uint64_t size, uint64_t usable, uint64_t align,
                  int zeroed, hk_verify_failure_t *f)
{
    return record(sh, id, ptr, size, usable, align, zeroed, f);
}

static void forget(hk_shadow_t *sh, uint32_t id)
{
    hk_block_t *b = &sh->blk[id];
    if (sh->flags & HK_SHADOW_ORDERED)
        tree_erase(sh, id);
    sh->live--;
    sh->live_bytes -= b->size;
    b->ptr = NULL;
}

int hk_shadow_verify(hk_shadow_t *sh, uint32_t id, hk_verify_failure_t *f)
{
    hk_block_t *b = &sh->blk[id];
    if (!b->ptr || !(sh->flags & HK_SHADOW_CONTENT))
        return 0;
    uint64_t bad = check_pattern(sh, b, UINT64_MAX);
    if (bad == UINT64_MAX)
        return 0;
    return content_fail(sh, id, bad, "live block changed", f);
}

int hk_shadow_remove(hk_shadow_t *sh, uint32_t id, int verify, hk_verify_failure_t *f)
{
    int bad = verify ? hk_shadow_verify(sh, id, f) : 0;
    forget(sh, id);
    return bad;
}

int hk_shadow_moved(hk_shadow_t *sh, uint32_t id, void *ptr, uint64_t size, uint64_t usable,
                    uint64_t align, hk_verify_failure_t *f)
{
    hk_block_t old = sh->blk[id];
    forget(sh, id);
    if (sh->flags & HK_SHADOW_CONTENT) {
        /* The new block must start with the old block's first min(old, new) requested bytes. */
        hk_block_t view = old;
        view.ptr = ptr;
        uint64_t keep = old.size < size ? old.size : size;
        uint64_t bad = check_pattern(sh, &view, keep);
        if (bad != UINT64_MAX) {
            uint8_t got = ((uint8_t *)ptr)[bad];
            hk_verify_fail(f, "shadow.content",
                    "realloc from %llu to %llu bytes lost data: byte %llu is 0x%02x, expected 0x%02x "
                    "(old block %p)",
                    (unsigned long long)old.size, (unsigned long long)size, (unsigned long long)bad, got,
                    pat_byte(old.seed, bad), (void *)old.ptr);
            if (f) {
                f->id = id;
                f->ptr = ptr;
                f->other = old.ptr;
            }
            /* Record the block without refilling it, so the caller still knows to free it. */
            sh->flags &= ~(unsigned)HK_SHADOW_CONTENT;
            record(sh, id, ptr, size, usable, align, 0, NULL);
            sh->flags |= HK_SHADOW_CONTENT;
            return 1;
        }
    }
    return record(sh, id, ptr, size, usable, align, 0, f);
}

static int verify_edges(hk_shadow_t *sh, uint32_t id, hk_verify_failure_t *f)
{
    const hk_block_t *b = &sh->blk[id];
    uint64_t n = b->filled < NEIGHBOUR_BYTES ? b->filled : NEIGHBOUR_BYTES;
    uint64_t bad = hk_shadow_pattern_find_mismatch(b->seed, b->ptr, 0, n);
    if (bad == UINT64_MAX)
        bad = hk_shadow_pattern_find_mismatch(b->seed, b->ptr, b->filled - n, n);
    if (bad == UINT64_MAX)
        return 0;
    return content_fail(sh, id, bad, "neighbouring block changed", f);
}

int hk_shadow_verify_neighbours(hk_shadow_t *sh, const void *addr, hk_verify_failure_t *f)
{
    if (!(sh->flags & HK_SHADOW_ORDERED) || !(sh->flags & HK_SHADOW_CONTENT))
        return 0;
    uintptr_t k = (uintptr_t)addr;
    uint32_t pred = NIL, succ = NIL;
    for (uint32_t t = sh->root; t != NIL;) {
        if (key(sh, t) < k) {
            pred = t;
            t = sh->blk[t].right;
        } else {
            t = sh->blk[t].left;
        }
    }
    for (uint32_t t = sh->root; t != NIL;) {
        if (key(sh, t) > k) {
            succ = t;
            t = sh->blk[t].left;
        } else {
            t = sh->blk[t].right;
        }
    }
    if (pred != NIL && verify_edges(sh, pred, f))
        return 1;
    if (succ != NIL && verify_edges(sh, succ, f))
        return 1;
    return 0;
}

int hk_shadow_sweep(hk_shadow_t *sh, hk_verify_failure_t *f)
{
    if (!(sh->flags & HK_SHADOW_CONTENT))
        return 0;
    for (uint32_t id = 0; id < sh->nids; id++)
        if (sh->blk[id].ptr && hk_shadow_verify(sh, id, f))
            return 1;
    return 0;
}

/* In-order walk with an explicit stack (the treap is shallow, but a broken one must not overflow). */
int hk_shadow_self_check(hk_shadow_t *sh, hk_verify_failure_t *f)
{
    if (!(sh->flags & HK_SHADOW_ORDERED))
        return 0;
    size_t cap = 64, top = 0, seen = 0;
    uint32_t *stack = malloc(cap * sizeof *stack), prev = NIL, t = sh->root;
    if (!stack)
        return hk_verify_fail(f, "interp", "out of memory");
    int bad = 0;
    while (!bad && (t != NIL || top)) {
        while (t != NIL) {
            if (top == cap) {
                uint32_t *s = realloc(stack, 2 * cap * sizeof *s);
                if (!s) {
                    free(stack);
                    return hk_verify_fail(f, "interp", "out of memory");
                }
                stack = s;
                cap *= 2;
            }
            stack[top++] = t;
            t = sh->blk[t].left;
        }
        t = stack[--top];
        if (++seen > sh->live) {
            bad = hk_verify_fail(f, "shadow.overlap", "shadow tree holds more nodes than live blocks (cycle?)");
            break;
        }
        if (prev != NIL && (key(sh, t) < key(sh, prev) || key(sh, t) - key(sh, prev) < extent(&sh->blk[prev]))) {
            bad = hk_verify_fail(f, "shadow.overlap", "live blocks %u and %u overlap or are out of order", prev, t);
            if (f) {
                f->id = t;
                f->other_id = prev;
                f->ptr = sh->blk[t].ptr;
                f->other = sh->blk[prev].ptr;
            }
        }
        prev = t;
        t = sh->blk[t].right;
    }
    free(stack);
    if (!bad && seen != sh->live)
        bad = hk_verify_fail(f, "shadow.overlap", "shadow tree holds %zu nodes, %zu blocks are live", seen, sh->live);
    return bad;
}
