/* hakmem: a drop-in malloc for Linux.
 *
 * Public API. The drop-in libraries (libhakmem.so, libhakmem-hardened.so) export the standard malloc
 * family and these hak_ twins; the "prefixed" static library (libhakmem-prefixed.a) exports only the
 * hak_ names, so glibc stays the process's malloc and both allocators can run side by side (tests,
 * fuzzers, sanitizer builds).
 */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define HAK_API __attribute__((visibility("default")))
#define HAK_MALLOC_ATTR __attribute__((malloc))
#else
#define HAK_API
#define HAK_MALLOC_ATTR
#endif

HAK_API HAK_MALLOC_ATTR void *hak_malloc(size_t size);
HAK_API void hak_free(void *ptr);
HAK_API HAK_MALLOC_ATTR void *hak_calloc(size_t nmemb, size_t size);
HAK_API void *hak_realloc(void *ptr, size_t size);
HAK_API void *hak_reallocarray(void *ptr, size_t nmemb, size_t size);
HAK_API int hak_posix_memalign(void **out, size_t alignment, size_t size);
HAK_API HAK_MALLOC_ATTR void *hak_aligned_alloc(size_t alignment, size_t size);
HAK_API HAK_MALLOC_ATTR void *hak_memalign(size_t alignment, size_t size);
HAK_API HAK_MALLOC_ATTR void *hak_valloc(size_t size);
HAK_API HAK_MALLOC_ATTR void *hak_pvalloc(size_t size);
HAK_API size_t hak_malloc_usable_size(void *ptr);

/* Returns the build variant ("release", "hardened", "debug") and the active mode name. */
HAK_API const char *hak_variant(void);
HAK_API const char *hak_mode(void);

/* Flushes the calling thread's caches back to their slabs (as a thread exit does, but the thread
 * keeps its heap), gives back its empty slabs and the pages of the free blocks at the end of the
 * slabs it still uses (whose free lists are then kept in address order, so that live blocks gather at
 * the start), and releases empty regions beyond the reuse budget. Other threads' slabs are untouched. */
HAK_API void hak_collect(void);
/* malloc_trim: hak_collect; returns 1 when memory went back to the kernel, else 0. pad is ignored. */
HAK_API int hak_malloc_trim(size_t pad);

/* Prints the statistics report to stderr now (the same report HAKMEM_STATS_ENABLE=1 prints at exit). */
HAK_API void hak_stats_print(void);

#ifdef __cplusplus
}
#endif
#endif /* HAKMEM_H */
