/* hakmem introspection: used by verify/, tests, fuzzers and tools. Not for production callers.
 *
 * Thread-safety: hak_debug_check_thread() inspects only the calling thread and is always safe.
 * hak_debug_check_heap() walks every region; call it when other threads are quiescent (between
 * turnstile steps, after joins), otherwise it may report in-flight states of other threads.
 */
#ifndef HAKMEM_DEBUG_H
#define HAKMEM_DEBUG_H

#include <stddef.h>
#include <stdint.h>

#include "hakmem.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where a block lives. */
typedef enum hak_block_kind {
    HAK_BLOCK_FOREIGN = 0, /* not a pointer hakmem handed out (or not its start) */
    HAK_BLOCK_SLAB = 1,    /* tiny or mid class block inside a 2 MiB superslab */
    HAK_BLOCK_LARGE = 2    /* direct mapping (large/ layer) */
} hak_block_kind_t;

typedef struct hak_block_info {
    hak_block_kind_t kind;
    int cls;            /* size class index (slab blocks), -1 otherwise */
    size_t class_size;  /* block size of the class, or mapping size for large */
    size_t usable;      /* what malloc_usable_size reports */
    void *region;       /* superslab base or mapping base */
} hak_block_info_t;

/* The outcome of a checker. ok == 1 means every invariant held. */
typedef struct hak_check_report {
    int ok;
    const char *check;  /* the name of the failed check, e.g. "sll.cycle" */
    void *ptr;          /* the offending pointer, if any */
    int cls;            /* the size class involved, or -1 */
    char msg[192];      /* one line, human readable */
} hak_check_report_t;

HAK_API int hak_debug_class_count(void);
HAK_API size_t hak_debug_class_size(int cls);
HAK_API int hak_debug_size_to_class(size_t size); /* -1 when served by large */

/* Looks a pointer up without touching the block. Returns its kind. */
HAK_API hak_block_kind_t hak_debug_block_info(const void *ptr, hak_block_info_t *out);

/* TLS-SLL checker: every node of the calling thread's per-class free lists lies in a region of
 * ours, on a block boundary of the right class, appears once (no cycle), and the counts match.
 * Cost: O(cached blocks). */
HAK_API int hak_debug_check_thread(hak_check_report_t *rep);

/* Heap walker: every region and slab is consistent, and for each slab
 * used + local free + remote + uncarved == capacity; every free-list node is a block of its slab.
 * Cost: O(regions + free blocks). */
HAK_API int hak_debug_check_heap(hak_check_report_t *rep);

/* Number of blocks in the calling thread's cache for a class. */
HAK_API size_t hak_debug_tls_count(int cls);
/* The calling thread's current cap for a class (the cache holds at most this many blocks after
 * every free). */
HAK_API size_t hak_debug_tls_cap(int cls);
/* Address of the first node of the calling thread's cache for a class (NULL if empty). */
HAK_API void *hak_debug_tls_head(int cls);

/* Sets an option at run time, as an API call (highest precedence). Returns 0, or -1 with errno
 * EINVAL (unknown name or bad value; nothing changed). Learning-tunable knobs are safe to change
 * at any moment: they take effect on the next slow path. */
HAK_API int hak_debug_set_option(const char *name, const char *value);
/* Reads an option's current value as an integer. Returns -1 with errno EINVAL if unknown. */
HAK_API long long hak_debug_get_option(const char *name);

/* Aggregated counters (all threads). */
typedef struct hak_debug_stats {
    uint64_t mmap_calls, munmap_calls, madvise_calls, mremap_calls;
    uint64_t bytes_mapped;       /* currently mapped by hakmem */
    uint64_t superslabs_live;    /* regions currently mapped */
    uint64_t slabs_live;
    uint64_t large_live;         /* large blocks handed out and not freed */
    uint64_t bigcache_hits, bigcache_misses, bigcache_entries;
    uint64_t refills, flushes, remote_frees, remote_drains;
    uint64_t slabs_abandoned, slabs_adopted;
    uint64_t lean_decommit, lean_retire;
    uint64_t bigcache_bytes;     /* mapped bytes held by the BigCache (bounded by its budget) */
    uint64_t lean_borrowed;      /* lean mode: mallocs served by a free block of a larger class
                                  * instead of a new page (tiny/tcache.c) */
    uint64_t lean_holes;         /* lean mode: pages given back from slabs still in use (holes) */
    uint64_t lean_holes_back;    /* holes taken back (made resident again when their class grew) */
    uint64_t lean_vacated;       /* of the holes, pages vacated: steered empty while blocks were live */
} hak_debug_stats_t;
HAK_API void hak_debug_stats(hak_debug_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* HAKMEM_DEBUG_H */
