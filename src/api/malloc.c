/* The hak_* family: size -> route, and the C11/POSIX/glibc semantics (errno, alignment, zeroing).
 * The exported malloc family (api/override.c) aliases these. */
#include <errno.h>
#include <string.h>

#include "api/api.h"
#include "hakmem.h"
#include "large/large.h"
#include "tiny/heap.h"
#include "trace/trace.h"
#include "trace/vclock.h"

/* ---- slow paths (out of line; the fast paths tail-call them) ------------------------------- */
/* exact: the block must be of class cls (memalign: the class was picked for its alignment); else
 * lean mode may hand out a free block of a larger class (hk_tcache_refill). */
static HK_NOINLINE void *hk_alloc_class_slow(unsigned cls, int exact) {
    hk_ensure_init();
    hk_ctl_tick(HK_VC_REFILL, cls);
    void *b = hk_tcache_refill(cls, exact);
    if (HAK_UNLIKELY(b == NULL)) errno = ENOMEM;
    return b;
}

static HK_NOINLINE void *hk_malloc_large(size_t n) {
    hk_ensure_init();
    hk_ctl_tick(HK_VC_LARGE, 0);
    int fresh;
    void *p = hk_large_alloc(n, 0, &fresh);
    hk_trace_large_hit = (uint8_t)!fresh; /* the trace tells BigCache hits from fresh mappings */
    return p;
}

HK_INLINE void *hk_alloc_class_as(unsigned cls, int exact) {
    void *b = hk_tcache_pop(&hk_tls_heap, cls);
    if (HAK_LIKELY(b != NULL)) return b;
    return hk_alloc_class_slow(cls, exact);
}

HK_INLINE void *hk_alloc_class(unsigned cls) { return hk_alloc_class_as(cls, 0); }

/* A pointer that is neither a region block nor a live large block. */
static HK_COLD void hk_free_unknown(void *p, int realloc) {
    if (HAK_HARDENED) {
        if (hk_large_was_freed(p)) hk_report(realloc ? HK_FAULT_REALLOC_FREED : HK_FAULT_LARGE_DOUBLE_FREE, p, -1);
        if (hk_large_is_interior(p)) hk_report(realloc ? HK_FAULT_REALLOC_INVALID : HK_FAULT_INTERIOR_FREE, p, -1);
        hk_report(realloc ? HK_FAULT_REALLOC_INVALID : HK_FAULT_FOREIGN_FREE, p, -1);
    }
    /* release: a pointer we never handed out is left alone (freeing it could only do harm) */
}

static HK_NOINLINE void hk_free_slow(void *p) {
    if (p == NULL) return;
    if (hk_large_free(p)) return;
    hk_free_unknown(p, 0);
}

/* ---- the family ------------------------------------------------------------------------------ */
/* Each public function is `if (tracing) record; else its _impl`: with tracing off the only cost is one
 * load and one predictable branch (trace/traced.inc holds the recording wrappers). Internal calls go
 * to the _impl functions, so a realloc is recorded once, not as its inner malloc and free. */
HK_INLINE void *hk_malloc_impl(size_t n) {
    if (HAK_LIKELY(n <= HK_SMALL_LIMIT)) return hk_alloc_class(hk_size_class(HK_REQ(n)));
    return hk_malloc_large(n);
}

HK_INLINE void hk_free_impl(void *p) {
    if (HAK_LIKELY(hk_region_is_ss((uintptr_t)p))) {
        hk_slab_free(p);
        return;
    }
    hk_free_slow(p);
}

HK_INLINE void *hk_calloc_impl(size_t nmemb, size_t size) {
    size_t n;
    if (HAK_UNLIKELY(__builtin_mul_overflow(nmemb, size, &n))) {
        errno = ENOMEM;
        return NULL;
    }
    if (HAK_LIKELY(n <= HK_SMALL_LIMIT)) {
        void *p = hk_alloc_class(hk_size_class(HK_REQ(n)));
        if (HAK_LIKELY(p != NULL)) memset(p, 0, n);
        return p;
    }
    hk_ensure_init();
    int fresh;
    void *p = hk_large_alloc(n, 0, &fresh);
    hk_trace_large_hit = (uint8_t)!fresh;
    if (p != NULL && !fresh) memset(p, 0, n); /* fresh mappings are already zero */
    return p;
}

HK_INLINE size_t hk_usable_impl(void *p) {
    if (p == NULL) return 0;
    if (hk_region_is_ss((uintptr_t)p)) {
        hk_slab_t *s = hk_slab_of((uintptr_t)p);
        return s->block_size ? s->block_size - HK_CANARY_BYTES : 0;
    }
    return hk_large_usable(p);
}

static inline void *hk_realloc_impl(void *p, size_t n) {
    if (p == NULL) return hk_malloc_impl(n);
    if (n == 0) { /* as glibc: frees and returns NULL */
        hk_free_impl(p);
        return NULL;
    }
    size_t old;
    if (hk_region_is_ss((uintptr_t)p)) {
        hk_slab_t *s = hk_slab_of((uintptr_t)p);
        if (HAK_HARDENED) {
            if (s->capacity == 0 || (char *)p < s->start || (char *)p >= s->bump ||
                !hk_slab_on_boundary(s, (uintptr_t)p - (uintptr_t)s->start))
                hk_report(HK_FAULT_REALLOC_INVALID, p, s->capacity ? s->cls : -1);
            if (HK_HARDEN(HK_H_DFREE) && *hk_marker_slot(p) == hk_marker(p, s->cls)) hk_report(HK_FAULT_REALLOC_FREED, p, s->cls);
        }
        old = s->block_size - HK_CANARY_BYTES;
        /* Stay in place when the new size fits and would not fit a smaller class. */
        if (n <= old && (n > HK_SMALL_LIMIT || hk_size_class(HK_REQ(n)) == s->cls)) return p;
    } else {
        old = hk_large_usable(p);
        if (old == 0) {
            hk_free_unknown(p, 1);
            errno = EINVAL;
            return NULL;
        }
        if (n > HK_SMALL_LIMIT) {
            void *q = hk_large_realloc(p, n);
            if (q != NULL || errno == ENOMEM) return q;
            /* an over-aligned block: fall through to copy */
        }
    }
    void *q = hk_malloc_impl(n);
    if (q == NULL) return NULL; /* the old block is intact; errno is ENOMEM */
    memcpy(q, p, n < old ? n : old);
    hk_free_impl(p);
    return q;
}

HK_INLINE void *hk_reallocarray_impl(void *p, size_t nmemb, size_t size) {
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return hk_realloc_impl(p, n);
}

/* align: a power of two. Slab classes whose size is a multiple of the alignment are aligned to it
 * (slabs start on 64 KiB boundaries), so alignments up to 64 KiB stay in slabs. */
void *hk_memalign(size_t align, size_t size) {
    if (align <= 8 || (align <= 16 && size > 8 && !HK_HARDEN(HK_H_CANARY)))
        return hk_malloc_impl(size);
    if (align <= HK_MID_MAX && size <= HK_SMALL_LIMIT) {
        size_t need = HK_MAX(HK_REQ(size), align);
        if (need <= HK_MID_MAX) {
            unsigned c = hk_size_class(need);
            while (c < HK_NCLASSES && (hk_class_info[c].size & (align - 1)) != 0) c++;
            if (c < HK_NCLASSES) return hk_alloc_class_as(c, 1); /* a block of class c itself */
        }
    }
    hk_ensure_init();
    int fresh;
    void *p = hk_large_alloc(size, align, &fresh);
    hk_trace_large_hit = (uint8_t)!fresh;
    return p;
}

static size_t hk_pow2_ceil(size_t a) {
    if (a <= 1) return 1;
    return (size_t)1 << (64 - __builtin_clzll((unsigned long long)(a - 1)));
}

HK_INLINE void *hk_memalign_impl(size_t align, size_t size) {
    /* glibc: an alignment above SIZE_MAX/2+1 is EINVAL; others are rounded up to a power of two */
    if (align > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    return hk_memalign(hk_pow2_ceil(align), size);
}

HK_INLINE int hk_posix_memalign_impl(void **out, size_t align, size_t size) {
    if (align < sizeof(void *) || (align & (align - 1)) != 0) return EINVAL;
    void *p = hk_memalign(align, size);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}

HK_INLINE void *hk_valloc_impl(size_t size) { return hk_memalign(HK_PAGE, size); }

HK_INLINE void *hk_pvalloc_impl(size_t size) {
    size_t n = HK_ALIGN_UP(size, (size_t)HK_PAGE);
    if (n < size) {
        errno = ENOMEM;
        return NULL;
    }
    return hk_memalign(HK_PAGE, n ? n : HK_PAGE);
}

/* The recording wrappers (hk_traced_*), then the public functions. */
#include "trace/traced.inc"

void *hak_malloc(size_t n) {
    if (HAK_UNLIKELY(hk_trace_on)) return hk_traced_malloc(n);
    return hk_malloc_impl(n);
}
void hak_free(void *p) {
    if (HAK_UNLIKELY(hk_trace_on)) {
        hk_traced_free(p);
        return;
    }
    hk_free_impl(p);
}
void *hak_calloc(size_t nmemb, size_t size) {
    if (HAK_UNLIKELY(hk_trace_on)) return hk_traced_calloc(nmemb, size);
    return hk_calloc_impl(nmemb, size);
}
size_t hak_malloc_usable_size(void *p) {
    if (HAK_UNLIKELY(hk_trace_on)) return hk_traced_usable(p);
    return hk_usable_impl(p);
}
void *hak_realloc(void *p, size_t n) {
    if (HAK_UNLIKELY(hk_trace_on)) return hk_traced_realloc(p, n, 1, 0);
    return hk_realloc_impl(p, n);
}
void *hak_reallocarray(void *p, size_t nmemb, size_t size) {
    if (HAK_UNLIKELY(hk_trace_on)) return hk_traced_realloc(p, size, nmemb, 1);
    return hk_reallocarray_impl(p, nmemb, size);
}
void *hak_memalign(size_t align, size_t size) {
    if (HAK_UNLIKELY(hk_trace_on)) return hk_traced_aligned(3 /* MEMALIGN */, align, size);
    return hk_memalign_impl(align, size);
}
void *hak_aligned_alloc(size_t align, size_t size) {
    if (HAK_UNLIKELY(hk_trace_on)) return hk_traced_aligned(5 /* ALIGNED_ALLOC */, align, size);
    return hk_memalign_impl(align, size);
}
int hak_posix_memalign(void **out, size_t align, size_t size) {
    if (HAK_UNLIKELY(hk_trace_on)) return hk_traced_posix_memalign(out, align, size);
    return hk_posix_memalign_impl(out, align, size);
}
void *hak_valloc(size_t size) {
    if (HAK_UNLIKELY(hk_trace_on)) return hk_traced_aligned(11 /* VALLOC */, HK_PAGE, size);
    return hk_valloc_impl(size);
}
void *hak_pvalloc(size_t size) {
    if (HAK_UNLIKELY(hk_trace_on)) return hk_traced_aligned(12 /* PVALLOC */, HK_PAGE, size);
    return hk_pvalloc_impl(size);
}
/* glibc's malloc_trim: hak_collect, and 1 when memory went back to the kernel (an madvise or munmap
 * was made meanwhile), else 0. pad is not used: there is no top of heap to leave slack at. */
int hak_malloc_trim(size_t pad) {
    (void)pad;
    uint64_t before = atomic_load_explicit(&hk_os_stats.madvise_calls, memory_order_relaxed) +
                      atomic_load_explicit(&hk_os_stats.munmap_calls, memory_order_relaxed);
    hak_collect();
    uint64_t after = atomic_load_explicit(&hk_os_stats.madvise_calls, memory_order_relaxed) +
                     atomic_load_explicit(&hk_os_stats.munmap_calls, memory_order_relaxed);
    return after != before;
}

#if !HAK_PREFIXED_ONLY
#include "api/override.inc"
#endif
