/* Large blocks (> 64 KiB, or alignments slabs cannot serve): each is its own mapping, described out
 * of line in a hash table keyed by the user pointer (no header next to user data, so an overflow
 * cannot forge one). Freed blocks go to the BigCache (kept mapped, reused by size) up to its budget;
 * reuse adjusts the size with mremap / munmap of the tail, so no page is faulted in twice.
 *
 * Invariants: a table entry exists exactly for each live large block; a BigCache entry is never in
 * the table (a block is either handed out or cached, never both); user pointer = mapping base unless
 * an alignment above the page size forced an offset (then the block is never cached or remapped). */
#ifndef HK_LARGE_H
#define HK_LARGE_H

#include "common.h"

/* NULL + ENOMEM on failure. `*fresh` tells whether the memory is known to be zero. */
HK_HIDDEN void *hk_large_alloc(size_t size, size_t align, int *fresh);
/* Returns 1 if p was a live large block (now freed), 0 if p is not one of ours. */
HK_HIDDEN int hk_large_free(void *p);
/* Usable size of a live large block, 0 if p is not one. */
HK_HIDDEN size_t hk_large_usable(const void *p);
/* Resizes a live large block (to any size, large or not handled by the caller). NULL on failure. */
HK_HIDDEN void *hk_large_realloc(void *p, size_t size);
/* In hardened builds: classifies a pointer that is not a live block (double free / interior / foreign). */
HK_HIDDEN int hk_large_was_freed(const void *p);
HK_HIDDEN int hk_large_is_interior(const void *p);
HK_HIDDEN void hk_large_trim(void);
HK_HIDDEN void hk_large_lock_all(void);
HK_HIDDEN void hk_large_unlock_all(void);
HK_HIDDEN void hk_large_reset_locks(void);

typedef struct hk_large_counters {
    _Atomic uint64_t live, bigcache_hits, bigcache_misses, bigcache_entries, bigcache_bytes, allocs, frees;
} hk_large_counters_t;
extern HK_HIDDEN hk_large_counters_t hk_large_counters;

#endif
