/* stress/alloc_api.h — the allocation calls the stress and bench programs make.
 *
 * Default: the standard names, so a program runs on whatever malloc the process has (glibc, or
 * hakmem / a peer allocator through LD_PRELOAD — the drop-in path users take).
 * With -DHAK_STRESS_PREFIXED (sanitizer builds): hakmem's hak_ names from libhakmem-prefixed.a, so
 * the sanitizer keeps its own malloc for the process and hakmem runs beside it, instrumented.
 * Programs must allocate only through these macros; a stray malloc() would bypass hakmem in the
 * prefixed build (and a hak_free() of it would be an invalid free).
 */
#ifndef HAK_STRESS_ALLOC_API_H
#define HAK_STRESS_ALLOC_API_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* posix_memalign, malloc_usable_size */
#endif

#include <stddef.h>

#ifdef HAK_STRESS_PREFIXED
#include "hakmem.h"
#define S_MALLOC(n) hak_malloc(n)
#define S_FREE(p) hak_free(p)
#define S_CALLOC(n, s) hak_calloc((n), (s))
#define S_REALLOC(p, n) hak_realloc((p), (n))
#define S_POSIX_MEMALIGN(out, al, n) hak_posix_memalign((out), (al), (n))
#define S_MALLOC_USABLE_SIZE(p) hak_malloc_usable_size(p)
#define S_MALLOC_TRIM(pad) hak_malloc_trim(pad)
#define S_ALLOCATOR_PREFIXED 1
#else
#include <malloc.h>
#include <stdlib.h>
#define S_MALLOC(n) malloc(n)
#define S_FREE(p) free(p)
#define S_CALLOC(n, s) calloc((n), (s))
#define S_REALLOC(p, n) realloc((p), (n))
#define S_POSIX_MEMALIGN(out, al, n) posix_memalign((out), (al), (n))
#define S_MALLOC_USABLE_SIZE(p) malloc_usable_size(p)
#define S_MALLOC_TRIM(pad) malloc_trim(pad)
#define S_ALLOCATOR_PREFIXED 0
#endif

#endif /* HAK_STRESS_ALLOC_API_H */
