/* The OS box: the only place that calls mmap / munmap / madvise / mremap. Counts every call. */
#ifndef HK_OS_H
#define HK_OS_H

#include "common.h"

typedef struct hk_os_stats {
    _Atomic uint64_t mmap_calls, munmap_calls, madvise_calls, mremap_calls;
    _Atomic uint64_t bytes_mapped; /* currently mapped by hakmem (regions + large + metadata) */
} hk_os_stats_t;

extern HK_HIDDEN hk_os_stats_t hk_os_stats;

typedef enum hk_decommit { HK_DECOMMIT_FREE = 0, HK_DECOMMIT_DONTNEED = 1, HK_DECOMMIT_OFF = 2 } hk_decommit_t;

/* Anonymous read-write mapping; NULL on failure (errno from mmap). */
HK_HIDDEN void *hk_os_map(size_t size);
/* Mapping whose start is aligned to `align` (a power of two >= page); trims the excess. */
HK_HIDDEN void *hk_os_map_aligned(size_t size, size_t align);
HK_HIDDEN void hk_os_unmap(void *p, size_t size);
/* Gives the pages back to the kernel; their contents are lost (reads as zero after DONTNEED). */
HK_HIDDEN void hk_os_decommit(void *p, size_t size, hk_decommit_t how);
/* mremap; NULL on failure. may_move = 0 grows or shrinks in place only. */
HK_HIDDEN void *hk_os_remap(void *p, size_t old_size, size_t new_size, int may_move);
/* Access to a range: rw = 1 read-write, 0 none (a write then faults). */
HK_HIDDEN void hk_os_protect(void *p, size_t size, int rw);
/* THP advice: 1 = huge pages, 0 = none, -1 = leave the system default. */
HK_HIDDEN void hk_os_advise_thp(void *p, size_t size, int on);
/* Writes a whole buffer to a file descriptor, retrying short writes (async-signal-safe). */
HK_HIDDEN void hk_os_write_all(int fd, const char *buf, size_t len);

#endif
