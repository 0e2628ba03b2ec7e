/* The shadow heap: what every live block of one backend should look like.
 *
 * Per id: address, requested size, usable size, generation, content seed. Live blocks also sit in a
 * treap ordered by address, so a new block's overlap check looks at its two neighbours only (O(log n)):
 * as long as the live set is disjoint (checked on every insert), neighbours are the only candidates.
 *
 * Content: every block is filled with a deterministic pattern whose seed mixes (id, generation, size
 * bucket of the requested size), so a block handed to two ids, or bytes from a block of another size
 * class, never look right. Word i (8 bytes, little endian) of a block is seed + i * 0x9E3779B97F4A7C15.
 * Blocks whose filled length exceeds sample_limit (4 KiB by default) are filled and checked only on
 * samples: the first and last 512 bytes, and 64 bytes at the start of every page (the stride doubles
 * until at most 64 stamps remain), so a 4 MiB block costs 66 pages, not 1024 page faults, while a live
 * page the allocator decommits still reads back wrong.
 *
 * Not thread-safe: the interpreters serialize every access (one op at a time, even across threads).
 * Memory comes from the process malloc (glibc), never from the allocator under test.
 */
#ifndef HK_VERIFY_SHADOW_H
#define HK_VERIFY_SHADOW_H

#include <stddef.h>
#include <stdint.h>

#include "report.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HK_SHADOW_NIL UINT32_MAX

typedef struct hk_block {
    uint8_t *ptr;     /* NULL when the id holds no block */
    uint64_t size;    /* requested bytes (nmemb * size for calloc) */
    uint64_t usable;  /* malloc_usable_size at allocation */
    uint64_t seed;    /* content pattern seed (valid when filled) */
    uint64_t filled;  /* bytes covered by the pattern: usable (or size) */
    uint32_t gen;     /* how many blocks this id has held */
    uint32_t left, right, prio; /* treap links (ids) and priority */
} hk_block_t;

enum {
    HK_SHADOW_ORDERED = 1u << 0, /* keep the address treap; check overlap on insert */
    HK_SHADOW_CONTENT = 1u << 1, /* fill blocks with the pattern and verify it */
    HK_SHADOW_CHECKS = 1u << 2,  /* alignment and usable-size checks */
    HK_SHADOW_FILL_REQUESTED = 1u << 3, /* fill only the requested bytes, not the usable slack */
};

typedef struct hk_shadow {
    hk_block_t *blk;
    uint32_t nids;
    uint32_t root;          /* treap root, HK_SHADOW_NIL if empty */
    unsigned flags;
    uint64_t sample_limit;  /* fill/verify blocks longer than this by samples; 0 = 4 KiB */
    size_t live;            /* number of live blocks */
    uint64_t live_bytes;    /* sum of requested sizes */
} hk_shadow_t;

int hk_shadow_init(hk_shadow_t *sh, uint32_t nids, unsigned flags);
void hk_shadow_destroy(hk_shadow_t *sh);

static inline hk_block_t *hk_shadow_get(hk_shadow_t *sh, uint32_t id)
{
    return &sh->blk[id];
}

/* The default alignment a malloc-like call owes a request: min(16, largest power of two <= size),
 * 1 for size 0. */
uint64_t hk_shadow_default_align(uint64_t size);

/* Records a new block in an empty id after a successful allocation and checks it: alignment (align =
 * the alignment owed), usable >= size, no overlap with any live block, zeroed (when zeroed != 0: calloc)
 * then fills the pattern. Returns 0, or 1 with f filled (the block is recorded anyway, so the caller can
 * still free it). */
int hk_shadow_add(hk_shadow_t *sh, uint32_t id, void *ptr, uint64_t size, uint64_t usable,
                  uint64_t align, int zeroed, hk_verify_failure_t *f);

/* Forgets a block (the caller frees it next, or it is gone already). Verifies its content first when
 * verify != 0. Returns 0 or 1 (the block is forgotten either way). */
int hk_shadow_remove(hk_shadow_t *sh, uint32_t id, int verify, hk_verify_failure_t *f);

/* A successful realloc moved id's block to ptr with a new size: checks that the first
 * min(old size, new size) bytes kept their pattern, then records the new block as hk_shadow_add does
 * (next generation, new pattern). Returns 0 or 1. */
int hk_shadow_moved(hk_shadow_t *sh, uint32_t id, void *ptr, uint64_t size, uint64_t usable,
                    uint64_t align, hk_verify_failure_t *f);

/* Verifies one block's content (0 or 1). */
int hk_shadow_verify(hk_shadow_t *sh, uint32_t id, hk_verify_failure_t *f);
/* Verifies the first and last 256 bytes of the blocks just below and above addr in address order
 * (where an allocator writing out of bounds or a stale free-list link would land). */
int hk_shadow_verify_neighbours(hk_shadow_t *sh, const void *addr, hk_verify_failure_t *f);
/* Verifies every live block (CHECK op and end of program). */
int hk_shadow_sweep(hk_shadow_t *sh, hk_verify_failure_t *f);
/* Checks the treap itself: ordered, disjoint, count matches (tests and debugging; O(n)). */
int hk_shadow_self_check(hk_shadow_t *sh, hk_verify_failure_t *f);

/* The pattern, exposed for tests and tools. */
uint64_t hk_shadow_pattern_seed(uint32_t id, uint32_t gen, uint64_t size);
void hk_shadow_pattern_fill(uint64_t seed, void *p, uint64_t off, uint64_t n);
/* Offset of the first byte in [off, off+n) that differs from the pattern, or UINT64_MAX. */
uint64_t hk_shadow_pattern_find_mismatch(uint64_t seed, const void *p, uint64_t off, uint64_t n);

#ifdef __cplusplus
}
#endif
#endif /* HK_VERIFY_SHADOW_H */
