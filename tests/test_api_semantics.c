/* API semantics of the malloc family, checked against glibc in the same process.
 *
 * The program links hakmem_prefixed, so hakmem answers only to hak_* and glibc remains the process's
 * malloc. The oracle is glibc's own malloc family, found in libc.so.6's dynamic symbol table: in a
 * plain build that is the process malloc; in sanitizer builds the process malloc is the sanitizer's,
 * which differs from glibc (ASan rejects aligned_alloc sizes that are not a multiple of the alignment
 * and aborts on huge sizes), so taking the definitions from libc.so.6 itself keeps the comparison
 * with the real glibc everywhere. Where glibc's behaviour is implementation-defined (realloc(p, 0),
 * aligned_alloc with odd alignments, posix_memalign(size 0)), the test asks glibc first and demands
 * the same answer from hakmem instead of assuming one.
 *
 * Every test runs in its own criterion worker process.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <gnu/lib-names.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test_runner.h"

#include "hakmem.h"
#include "hakmem_debug.h"
#include "test_util.h"

#define KIB ((size_t)1024)
#define MIB ((size_t)1024 * 1024)
/* errno value no allocator call ever sets; shows whether a call touched errno. */
#define ERRNO_SENTINEL 0x5a5a

/* ------------------------------------------------------------------------------------------------ */
/* The glibc oracle                                                                                   */

typedef struct oracle {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*reallocarray)(void *, size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*usable)(void *);
} oracle_t;

static oracle_t G;

/* dlsym() cannot be used: for a library loaded at startup it searches the global scope, where a
 * sanitizer runtime's malloc comes first. So the definitions are looked up in libc.so.6's own
 * dynamic symbol table (GNU hash), taking the default symbol version. */
typedef struct libc_image {
    ElfW(Addr) base;
    const ElfW(Sym) *symtab;
    const char *strtab;
    const uint32_t *gnu_hash;
    const ElfW(Half) *versym;
} libc_image_t;

static int find_libc(struct dl_phdr_info *info, size_t size, void *data) {
    libc_image_t *img = data;
    const char *slash = strrchr(info->dlpi_name, '/');
    const char *file = slash != NULL ? slash + 1 : info->dlpi_name;
    if (strcmp(file, LIBC_SO) != 0) return 0;
    img->base = info->dlpi_addr;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        if (info->dlpi_phdr[i].p_type != PT_DYNAMIC) continue;
        for (const ElfW(Dyn) *d = (const void *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr); d->d_tag != DT_NULL;
             d++) {
            /* ld.so relocates these entries in place; an unrelocated one lies below the load base. */
            ElfW(Addr) a = d->d_un.d_ptr < info->dlpi_addr ? d->d_un.d_ptr + info->dlpi_addr : d->d_un.d_ptr;
            if (d->d_tag == DT_SYMTAB) img->symtab = (const void *)a;
            if (d->d_tag == DT_STRTAB) img->strtab = (const void *)a;
            if (d->d_tag == DT_GNU_HASH) img->gnu_hash = (const void *)a;
            if (d->d_tag == DT_VERSYM) img->versym = (const void *)a;
        }
    }
    return 1;
}

/* GNU hash lookup of a defined function with its default version (hidden versions skipped). */
static void *libc_lookup(const libc_image_t *img, const char *name) {
    uint32_t h = 5381;
    for (const char *c = name; *c != '\0'; c++) h = h * 33 + (unsigned char)*c;
    const uint32_t nbuckets = img->gnu_hash[0], symoffset = img->gnu_hash[1], bloom_words = img->gnu_hash[2];
    const uint32_t *buckets = (const uint32_t *)((const ElfW(Addr) *)(img->gnu_hash + 4) + bloom_words);
    const uint32_t *chain = buckets + nbuckets;
    uint32_t i = buckets[h % nbuckets];
    if (i < symoffset) return NULL;
    for (;; i++) {
        const ElfW(Sym) *sym = &img->symtab[i];
        uint32_t ch = chain[i - symoffset];
        if ((ch | 1) == (h | 1) && strcmp(img->strtab + sym->st_name, name) == 0 && sym->st_shndx != SHN_UNDEF &&
            ELF64_ST_TYPE(sym->st_info) == STT_FUNC && (img->versym == NULL || (img->versym[i] & 0x8000) == 0))
            return (void *)(img->base + sym->st_value);
        if (ch & 1) return NULL;
    }
}

static void *oracle_sym(const libc_image_t *img, const char *name) {
    void *f = libc_lookup(img, name);
    if (f == NULL) cr_assert_fail("glibc oracle: %s not found in %s's symbol table", name, LIBC_SO);
    return f;
}

/* Resolves glibc's own entry points. Called at the start of every test that compares. */
static void oracle_init(void) {
    if (G.malloc != NULL) return;
    libc_image_t img = {0};
    if (!dl_iterate_phdr(find_libc, &img) || img.symtab == NULL || img.strtab == NULL || img.gnu_hash == NULL)
        cr_assert_fail("glibc oracle: %s or its GNU hash table not found in this process", LIBC_SO);
    G.malloc = (void *(*)(size_t))oracle_sym(&img, "malloc");
    G.free = (void (*)(void *))oracle_sym(&img, "free");
    G.calloc = (void *(*)(size_t, size_t))oracle_sym(&img, "calloc");
    G.realloc = (void *(*)(void *, size_t))oracle_sym(&img, "realloc");
    /* Called only where it fails before reaching realloc: glibc's reallocarray calls realloc through
     * the PLT, which in a sanitizer build is the sanitizer's. */
    G.reallocarray = (void *(*)(void *, size_t, size_t))oracle_sym(&img, "reallocarray");
    G.posix_memalign = (int (*)(void **, size_t, size_t))oracle_sym(&img, "posix_memalign");
    G.aligned_alloc = (void *(*)(size_t, size_t))oracle_sym(&img, "aligned_alloc");
    G.memalign = (void *(*)(size_t, size_t))oracle_sym(&img, "memalign");
    G.valloc = (void *(*)(size_t))oracle_sym(&img, "valloc");
    G.pvalloc = (void *(*)(size_t))oracle_sym(&img, "pvalloc");
    G.usable = (size_t (*)(void *))oracle_sym(&img, "malloc_usable_size");
#ifndef HAK_TEST_SANITIZER
    /* Without a sanitizer glibc is the process malloc: the lookup must agree with the loader. */
    cr_assert(G.malloc == (void *(*)(size_t))dlsym(RTLD_DEFAULT, "malloc") &&
                  G.posix_memalign == (int (*)(void **, size_t, size_t))dlsym(RTLD_DEFAULT, "posix_memalign"),
              "glibc oracle: symbol-table lookup disagrees with dlsym");
#endif
}

/* ------------------------------------------------------------------------------------------------ */
/* Size lists                                                                                         */

typedef struct size_list {
    size_t n;
    size_t v[1024];
} size_list_t;

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_ptr(const void *a, const void *b) {
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

static void sl_add(size_list_t *l, size_t s) {
    if (s == 0 || l->n == sizeof l->v / sizeof l->v[0]) return;
    l->v[l->n++] = s;
}

/* Sorted, de-duplicated. */
static void sl_finish(size_list_t *l) {
    qsort(l->v, l->n, sizeof l->v[0], cmp_size);
    size_t w = 0;
    for (size_t i = 0; i < l->n; i++)
        if (w == 0 || l->v[w - 1] != l->v[i]) l->v[w++] = l->v[i];
    l->n = w;
}

/* Every size where the allocator's routing can change, up to max: 1..64 one by one, every power of
 * two +-1, and every size class boundary +-1 as the allocator itself reports its classes. */
static void boundary_sizes(size_list_t *l, size_t max) {
    l->n = 0;
    for (size_t s = 1; s <= 64 && s <= max; s++) sl_add(l, s);
    for (size_t p = 64; p <= max; p *= 2) {
        sl_add(l, p - 1);
        sl_add(l, p);
        if (p + 1 <= max) sl_add(l, p + 1);
    }
    int classes = hak_debug_class_count();
    for (int c = 0; c < classes; c++) {
        size_t cs = hak_debug_class_size(c);
        if (cs - 1 <= max) sl_add(l, cs - 1);
        if (cs <= max) sl_add(l, cs);
        if (cs + 1 <= max) sl_add(l, cs + 1);
    }
    sl_finish(l);
}

static size_t pow2_floor(size_t n) {
    size_t p = 1;
    while (p <= n / 2) p *= 2;
    return p;
}

/* Smallest power of two >= a (1 for a <= 1); 0 if it does not fit in size_t. */
static size_t pow2_ceil(size_t a) {
    size_t p = 1;
    while (p < a) {
        if (p > SIZE_MAX / 2) return 0;
        p *= 2;
    }
    return p;
}

/* Sizes no allocator can serve on a 64-bit machine with <= 57-bit virtual addresses. */
static const size_t HUGE_SIZES[] = {
    SIZE_MAX,
    SIZE_MAX - 1,
    SIZE_MAX - 4095,
    SIZE_MAX - 2 * 1024 * 1024,
    (size_t)PTRDIFF_MAX + 1,
    (size_t)PTRDIFF_MAX,
    SIZE_MAX / 2 - 4096,
    (size_t)1 << 62,
};
#define N_HUGE (sizeof HUGE_SIZES / sizeof HUGE_SIZES[0])

/* Fills the whole usable size of p with the pattern of seed and verifies it reads back. */
static void fill_usable_and_verify(void *p, size_t want, uint64_t seed, const char *what) {
    size_t u = hak_malloc_usable_size(p);
    TU_CHECK(u >= want, "%s: usable %zu < requested %zu", what, u, want);
    tu_fill(p, 0, u, seed);
    size_t bad = tu_verify(p, 0, u, seed);
    TU_CHECK(bad == SIZE_MAX, "%s: byte %zu of %zu does not read back", what, bad, u);
}

/* ------------------------------------------------------------------------------------------------ */
/* malloc                                                                                             */

Test(malloc, zero_is_non_null_and_unique) {
    oracle_init();
    void *g = G.malloc(0);
    cr_assert_not_null(g, "oracle: glibc malloc(0) returned NULL");
    G.free(g);

    enum { N = 2000 };
    static void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = hak_malloc(0);
        TU_CHECK(p[i] != NULL, "hak_malloc(0) #%d returned NULL (glibc returns a unique pointer)", i);
    }
    qsort(p, N, sizeof p[0], cmp_ptr);
    for (int i = 1; i < N; i++)
        TU_CHECK(p[i] != p[i - 1], "hak_malloc(0) returned %p twice while both were live", p[i]);
    for (int i = 0; i < N; i++) hak_free(p[i]);
}

Test(malloc, huge_sizes_fail_with_enomem_like_glibc) {
    oracle_init();
    void *live = hak_malloc(100);
    void *glive = G.malloc(100);
    cr_assert_not_null(live);
    for (size_t i = 0; i < N_HUGE; i++) {
        size_t n = HUGE_SIZES[i];
        void *out, *sentinel = (void *)&out;
        int r;
#define EXPECT_ENOMEM(call_h, call_g, name)                                                             \
    do {                                                                                                \
        errno = ERRNO_SENTINEL;                                                                         \
        void *gp_ = (call_g);                                                                           \
        int ge_ = errno;                                                                                \
        TU_CHECK(gp_ == NULL && ge_ == ENOMEM, "oracle: glibc %s(%#zx) = %p errno %d, expected NULL/ENOMEM", \
                 name, n, gp_, ge_);                                                                    \
        errno = ERRNO_SENTINEL;                                                                         \
        void *hp_ = (call_h);                                                                           \
        int he_ = errno;                                                                                \
        TU_CHECK(hp_ == NULL, "hak_%s(%#zx) returned %p, glibc returns NULL", name, n, hp_);            \
        TU_CHECK(he_ == ENOMEM, "hak_%s(%#zx): errno %d, glibc sets ENOMEM (%d)", name, n, he_, ENOMEM); \
    } while (0)
        EXPECT_ENOMEM(hak_malloc(n), G.malloc(n), "malloc");
        EXPECT_ENOMEM(hak_calloc(1, n), G.calloc(1, n), "calloc(1,n)");
        EXPECT_ENOMEM(hak_calloc(n, 1), G.calloc(n, 1), "calloc(n,1)");
        EXPECT_ENOMEM(hak_realloc(NULL, n), G.realloc(NULL, n), "realloc(NULL,n)");
        EXPECT_ENOMEM(hak_realloc(live, n), G.realloc(glive, n), "realloc(live,n)");
        /* glibc's reallocarray(p, 1, n) is realloc(p, n) (no overflow): compare with that */
        EXPECT_ENOMEM(hak_reallocarray(NULL, 1, n), G.realloc(NULL, n), "reallocarray(NULL,1,n)");
        EXPECT_ENOMEM(hak_memalign(64, n), G.memalign(64, n), "memalign(64,n)");
        EXPECT_ENOMEM(hak_aligned_alloc(64, n), G.aligned_alloc(64, n), "aligned_alloc(64,n)");
        EXPECT_ENOMEM(hak_valloc(n), G.valloc(n), "valloc");
        EXPECT_ENOMEM(hak_pvalloc(n), G.pvalloc(n), "pvalloc");
#undef EXPECT_ENOMEM
        out = sentinel;
        r = G.posix_memalign(&out, 64, n);
        TU_CHECK(r == ENOMEM && out == sentinel, "oracle: glibc posix_memalign(64, %#zx) = %d", n, r);
        r = hak_posix_memalign(&out, 64, n);
        TU_CHECK(r == ENOMEM, "hak_posix_memalign(64, %#zx) returned %d, glibc returns ENOMEM", n, r);
        TU_CHECK(out == sentinel, "hak_posix_memalign(64, %#zx) failed but wrote *out = %p", n, out);
    }
    /* The failed realloc calls above must have left the live block alone. */
    memset(live, 0x5c, 100);
    TU_CHECK(tu_first_not(live, 100, 0x5c) == SIZE_MAX, "live block corrupted");
    hak_free(live);
    G.free(glive);
}

/* C11 7.22.3 (as clarified by DR 445 and worded so in C17): the pointer is suitably aligned for any
 * object type with a fundamental alignment that fits in the requested size. So malloc(n) must be
 * aligned to at least min(max_align_t alignment = 16 on x86-64/aarch64, largest power of two <= n);
 * glibc gives 16 everywhere, a size-class allocator may give less to tiny requests, never less than
 * this. */
Test(malloc, c11_alignment) {
    enum { N = 4096 };
    static void *p[N + 1];
    for (size_t n = 1; n <= N; n++) {
        p[n] = hak_malloc(n);
        TU_CHECK(p[n] != NULL, "hak_malloc(%zu) = NULL", n);
        size_t want = pow2_floor(n) < 16 ? pow2_floor(n) : 16;
        TU_CHECK(((uintptr_t)p[n] & (want - 1)) == 0, "hak_malloc(%zu) = %p is not %zu-aligned", n, p[n], want);
    }
    for (size_t n = 1; n <= N; n++) hak_free(p[n]);
    size_list_t l;
    boundary_sizes(&l, 64 * MIB);
    for (size_t i = 0; i < l.n; i++) {
        size_t n = l.v[i];
        void *q = hak_malloc(n);
        TU_CHECK(q != NULL, "hak_malloc(%zu) = NULL", n);
        size_t want = pow2_floor(n) < 16 ? pow2_floor(n) : 16;
        TU_CHECK(((uintptr_t)q & (want - 1)) == 0, "hak_malloc(%zu) = %p is not %zu-aligned", n, q, want);
        hak_free(q);
    }
}

typedef struct interval {
    uintptr_t lo, hi; /* [lo, hi) = [p, p + usable) */
    size_t id;
} interval_t;

static int cmp_interval(const void *a, const void *b) {
    const interval_t *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static size_t random_size(uint64_t *rng) {
    unsigned pick = (unsigned)(tu_splitmix64(rng) % 100);
    if (pick < 75) return tu_range(rng, 0, 1024);
    if (pick < 95) return tu_range(rng, 1025, 64 * KIB);
    if (pick < 99) return tu_range(rng, 64 * KIB + 1, 512 * KIB);
    return tu_range(rng, 512 * KIB + 1, 4 * MIB);
}

/* Many blocks live at once, made by every entry point, never share a byte of their usable ranges.
 * Each block also carries its id at both ends, so an overlap that the interval check could not see
 * (a usable size that lies) still shows up as a clobbered id. */
Test(malloc, live_blocks_never_overlap) {
    size_t n = tu_scaled(12000, 2000);
    uint64_t rng = 0x0123456789ABCDEFull;
    void **p = calloc(n, sizeof *p);
    interval_t *iv = calloc(n, sizeof *iv);
    cr_assert(p != NULL && iv != NULL);

    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < n; i++) {
            if (p[i] != NULL) {
                if (round > 0 && tu_splitmix64(&rng) % 2 == 0) continue; /* keep half from earlier rounds */
                hak_free(p[i]);
            }
            size_t sz = random_size(&rng);
            switch (tu_splitmix64(&rng) % 5) {
            case 0: p[i] = hak_malloc(sz); break;
            case 1: p[i] = hak_calloc(1, sz); break;
            case 2: p[i] = hak_memalign((size_t)1 << tu_range(&rng, 3, 12), sz); break;
            case 3: /* sz + 1: realloc(p, 0) frees (glibc semantics), tested on its own */
                p[i] = hak_realloc(hak_malloc(tu_range(&rng, 1, 200)), sz + 1);
                break;
            default: {
                void *q = NULL;
                int r = hak_posix_memalign(&q, (size_t)1 << tu_range(&rng, 3, 16), sz);
                TU_CHECK(r == 0, "hak_posix_memalign failed %d", r);
                p[i] = q;
            }
            }
            TU_CHECK(p[i] != NULL, "allocation of %zu failed", sz);
            size_t u = hak_malloc_usable_size(p[i]);
            TU_CHECK(u >= sz, "usable %zu < %zu", u, sz);
            if (u >= sizeof(size_t)) {
                memcpy(p[i], &i, sizeof i);
                memcpy((char *)p[i] + u - sizeof i, &i, sizeof i);
            }
        }
        for (size_t i = 0; i < n; i++) {
            size_t u = hak_malloc_usable_size(p[i]);
            iv[i] = (interval_t){(uintptr_t)p[i], (uintptr_t)p[i] + (u ? u : 1), i};
            if (u >= sizeof(size_t)) {
                size_t a, b;
                memcpy(&a, p[i], sizeof a);
                memcpy(&b, (char *)p[i] + u - sizeof b, sizeof b);
                TU_CHECK(a == i && b == i, "round %d: block %zu at %p (usable %zu) holds ids %zu/%zu: overlap",
                         round, i, p[i], u, a, b);
            }
        }
        qsort(iv, n, sizeof *iv, cmp_interval);
        for (size_t k = 1; k < n; k++)
            TU_CHECK(iv[k - 1].hi <= iv[k].lo,
                     "round %d: block %zu [%#lx,%#lx) overlaps block %zu [%#lx,%#lx)", round, iv[k - 1].id,
                     (unsigned long)iv[k - 1].lo, (unsigned long)iv[k - 1].hi, iv[k].id,
                     (unsigned long)iv[k].lo, (unsigned long)iv[k].hi);
    }
    for (size_t i = 0; i < n; i++) hak_free(p[i]);
    free(p);
    free(iv);
}

/* ------------------------------------------------------------------------------------------------ */
/* calloc                                                                                             */

Test(calloc, overflow_fails_with_enomem) {
    oracle_init();
    static const size_t pairs[][2] = {
        {SIZE_MAX, 2},
        {2, SIZE_MAX},
        {(size_t)1 << 32, (size_t)1 << 32},
        {SIZE_MAX / 2 + 1, 2},
        {SIZE_MAX / 3 + 1, 3},
        {(size_t)PTRDIFF_MAX, 2},
        {65537, (SIZE_MAX / 65537) + 1},
        {SIZE_MAX, SIZE_MAX},
        {(size_t)1 << 40, (size_t)1 << 30},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        size_t a = pairs[i][0], b = pairs[i][1];
        errno = ERRNO_SENTINEL;
        void *g = G.calloc(a, b);
        int ge = errno;
        TU_CHECK(g == NULL && ge == ENOMEM, "oracle: glibc calloc(%#zx, %#zx) = %p errno %d", a, b, g, ge);
        errno = ERRNO_SENTINEL;
        void *h = hak_calloc(a, b);
        int he = errno;
        TU_CHECK(h == NULL, "hak_calloc(%#zx, %#zx) = %p: nmemb*size overflows, glibc returns NULL", a, b, h);
        TU_CHECK(he == ENOMEM, "hak_calloc(%#zx, %#zx): errno %d, glibc sets ENOMEM", a, b, he);
    }
}

/* Dirties `count` blocks of size n, frees them, then callocs `count` blocks of n (as count-by-1
 * and as 1-by-n splits) and demands n zero bytes in each: recycled memory must be cleared. */
static void calloc_dirty_cycle(size_t n, int count) {
    void *p[8];
    for (int k = 0; k < count; k++) {
        p[k] = hak_malloc(n);
        TU_CHECK(p[k] != NULL, "hak_malloc(%zu) = NULL", n);
        memset(p[k], 0xAA, hak_malloc_usable_size(p[k]));
    }
    for (int k = count - 1; k >= 0; k--) hak_free(p[k]);
    for (int k = 0; k < count; k++) {
        /* Split n as nmemb * size in different ways; calloc must clear the product, never less. */
        size_t nmemb = 1, size = n;
        if (k % 3 == 1 && n % 8 == 0) nmemb = n / 8, size = 8;
        if (k % 3 == 2) nmemb = n, size = 1;
        p[k] = hak_calloc(nmemb, size);
        TU_CHECK(p[k] != NULL, "hak_calloc(%zu, %zu) = NULL", nmemb, size);
        size_t bad = tu_first_nonzero(p[k], n);
        TU_CHECK(bad == SIZE_MAX, "hak_calloc(%zu, %zu) after dirty free: byte %zu is %#x, not 0", nmemb, size,
                 bad, bad == SIZE_MAX ? 0 : ((unsigned char *)p[k])[bad]);
    }
    for (int k = 0; k < count; k++) {
        memset(p[k], 0xAA, n); /* dirty again for the next size's cycle */
        hak_free(p[k]);
    }
}

Test(calloc, zeroed_after_dirty_free_small_sizes) {
    for (size_t n = 0; n <= 4096; n++) calloc_dirty_cycle(n, 6);
}

Test(calloc, zeroed_after_dirty_free_to_4mib) {
    size_list_t l;
    boundary_sizes(&l, 4 * MIB + 1);
    uint64_t rng = 42;
    for (int i = 0; i < 64; i++) sl_add(&l, tu_range(&rng, 4097, 4 * MIB));
    sl_finish(&l);
    for (size_t i = 0; i < l.n; i++) calloc_dirty_cycle(l.v[i], l.v[i] > 256 * KIB ? 2 : 4);
}

/* ------------------------------------------------------------------------------------------------ */
/* realloc                                                                                            */

Test(realloc, null_pointer_is_malloc) {
    oracle_init();
    errno = ERRNO_SENTINEL;
    void *g = G.realloc(NULL, 0);
    void *h = hak_realloc(NULL, 0);
    TU_CHECK((g == NULL) == (h == NULL), "realloc(NULL, 0): glibc %p, hakmem %p", g, h);
    G.free(g);
    hak_free(h);
    size_list_t l;
    boundary_sizes(&l, 4 * MIB);
    for (size_t i = 0; i < l.n; i++) {
        void *p = hak_realloc(NULL, l.v[i]);
        TU_CHECK(p != NULL, "hak_realloc(NULL, %zu) = NULL", l.v[i]);
        fill_usable_and_verify(p, l.v[i], i, "hak_realloc(NULL, n)");
        hak_free(p);
    }
}

/* glibc's realloc(p, 0) frees p and returns NULL (REALLOC_ZERO_BYTES_FREES) without touching errno;
 * C23 makes this undefined, so the test asks glibc what it does and wants the same from hakmem. */
Test(realloc, zero_size_behaves_like_glibc) {
    oracle_init();
    static const size_t sizes[] = {1, 16, 100, 1024, 5000, 70000, 600 * 1024, 3 * 1024 * 1024, 9 * 1024 * 1024};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *gp = G.malloc(n);
        errno = ERRNO_SENTINEL;
        void *gq = G.realloc(gp, 0);
        int ge = errno;
        if (gq != NULL) G.free(gq);

        void *hp = hak_malloc(n);
        cr_assert_not_null(hp);
        memset(hp, 0x11, n);
        errno = ERRNO_SENTINEL;
        void *hq = hak_realloc(hp, 0);
        int he = errno;
        if (gq == NULL) {
            TU_CHECK(hq == NULL, "hak_realloc(malloc(%zu), 0) = %p; glibc frees the block and returns NULL", n, hq);
        } else {
            TU_CHECK(hq != NULL, "hak_realloc(malloc(%zu), 0) = NULL; glibc returns a block", n);
            hak_free(hq);
        }
        TU_CHECK(he == ge, "hak_realloc(malloc(%zu), 0): errno %d, glibc leaves errno %d", n, he, ge);
    }
    /* If realloc(p, 0) returned NULL, it must also have freed p: large blocks are counted, so repeat
     * it and watch the live count. */
    hak_debug_stats_t before, after;
    void *warm = hak_malloc(8 * MIB);
    hak_free(warm);
    hak_debug_stats(&before);
    for (int i = 0; i < 64; i++) {
        void *q = hak_realloc(hak_malloc(8 * MIB), 0);
        if (q != NULL) hak_free(q);
    }
    hak_debug_stats(&after);
    TU_CHECK(after.large_live == before.large_live,
             "64 x hak_realloc(malloc(8 MiB), 0): large_live went %llu -> %llu (the blocks leaked)",
             (unsigned long long)before.large_live, (unsigned long long)after.large_live);
}

/* realloc(p, to) of a block holding the pattern of seed over its old size keeps min(old, to) bytes. */
static void *realloc_checked(void *p, size_t from, size_t to, uint64_t seed) {
    void *q = hak_realloc(p, to);
    TU_CHECK(q != NULL, "hak_realloc(%zu -> %zu) = NULL", from, to);
    size_t keep = from < to ? from : to;
    size_t bad = tu_verify(q, 0, keep, seed);
    TU_CHECK(bad == SIZE_MAX, "hak_realloc(%zu -> %zu): byte %zu of the %zu preserved bytes changed", from, to,
             bad, keep);
    size_t u = hak_malloc_usable_size(q);
    TU_CHECK(u >= to, "hak_realloc(%zu -> %zu): usable %zu", from, to, u);
    return q;
}

/* Every boundary size to its neighbours in the boundary list (growth and shrink across each class
 * edge) and to a fixed set of far targets in every layer. */
Test(realloc, preserves_content_across_class_boundaries) {
    size_list_t l;
    boundary_sizes(&l, 2 * MIB + 1);
    static const size_t far[] = {1, 17, 1000, 4100, 70000, 1024 * 1024, 4 * 1024 * 1024 + 3};
    static const int steps[] = {-5, -2, -1, 1, 2, 5};
    uint64_t seed = 1;
    for (size_t i = 0; i < l.n; i++) {
        size_t from = l.v[i];
        size_t targets[sizeof steps / sizeof steps[0] + sizeof far / sizeof far[0]];
        size_t nt = 0;
        for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
            long j = (long)i + steps[s];
            if (j >= 0 && (size_t)j < l.n) targets[nt++] = l.v[j];
        }
        for (size_t f = 0; f < sizeof far / sizeof far[0]; f++) targets[nt++] = far[f];
        for (size_t t = 0; t < nt; t++) {
            seed++;
            void *p = hak_malloc(from);
            TU_CHECK(p != NULL, "hak_malloc(%zu) = NULL", from);
            tu_fill(p, 0, from, seed);
            p = realloc_checked(p, from, targets[t], seed);
            hak_free(p);
        }
    }
}

/* One block walked up through every boundary size to 2 MiB and back down: repeated in-place growth
 * and shrink, with the tail refilled at each step so the whole size is checked every time. */
Test(realloc, growth_and_shrink_chain) {
    size_list_t l;
    boundary_sizes(&l, 2 * MIB + 1);
    const uint64_t seed = 77;
    size_t cur = l.v[0];
    void *p = hak_malloc(cur);
    cr_assert_not_null(p);
    tu_fill(p, 0, cur, seed);
    for (size_t i = 1; i < l.n; i++) {
        p = realloc_checked(p, cur, l.v[i], seed);
        tu_fill(p, cur, l.v[i], seed);
        cur = l.v[i];
    }
    for (size_t i = l.n; i-- > 0;) {
        p = realloc_checked(p, cur, l.v[i], seed);
        cur = l.v[i];
    }
    hak_free(p);
}

Test(realloc, large_sizes) {
    static const size_t sizes[] = {2 * MIB + 1, 4 * MIB - 1, 4 * MIB, 4 * MIB + 1, 8 * MIB - 4096, 8 * MIB + 4095,
                                   16 * MIB, 33 * MIB + 5};
    const size_t n = sizeof sizes / sizeof sizes[0];
    uint64_t seed = 1000;
    for (size_t a = 0; a < n; a++) {
        for (size_t b = 0; b < n; b++) {
            if (a == b) continue;
            seed++;
            void *p = hak_malloc(sizes[a]);
            TU_CHECK(p != NULL, "hak_malloc(%zu) = NULL", sizes[a]);
            tu_fill(p, 0, sizes[a], seed);
            p = realloc_checked(p, sizes[a], sizes[b], seed);
            hak_free(p);
        }
    }
}

/* A realloc that fails must leave the old block untouched and usable (C11 7.22.3.5). */
Test(realloc, failure_keeps_old_block) {
    static const size_t sizes[] = {10, 1000, 40000, 3 * 1024 * 1024};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p = hak_malloc(n);
        cr_assert_not_null(p);
        tu_fill(p, 0, n, 500 + i);
        for (size_t h = 0; h < N_HUGE; h++) {
            errno = ERRNO_SENTINEL;
            void *q = hak_realloc(p, HUGE_SIZES[h]);
            int e = errno;
            TU_CHECK(q == NULL, "hak_realloc(%zu-byte block, %#zx) = %p", n, HUGE_SIZES[h], q);
            TU_CHECK(e == ENOMEM, "hak_realloc(%zu-byte block, %#zx): errno %d, want ENOMEM", n, HUGE_SIZES[h], e);
            size_t bad = tu_verify(p, 0, n, 500 + i);
            TU_CHECK(bad == SIZE_MAX, "failed hak_realloc(%#zx) changed byte %zu of the old %zu-byte block",
                     HUGE_SIZES[h], bad, n);
        }
        p = realloc_checked(p, n, n * 2, 500 + i); /* still a live, reallocatable block */
        hak_free(p);
    }
}

Test(reallocarray, overflow_and_normal_use) {
    oracle_init();
    void *g = G.malloc(64);
    errno = ERRNO_SENTINEL;
    void *gq = G.reallocarray(g, SIZE_MAX, 2);
    int ge = errno;
    cr_assert(gq == NULL && ge == ENOMEM, "oracle: glibc reallocarray overflow = %p errno %d", gq, ge);
    G.free(g);

    void *p = hak_malloc(64);
    cr_assert_not_null(p);
    tu_fill(p, 0, 64, 9);
    static const size_t pairs[][2] = {{SIZE_MAX, 2}, {2, SIZE_MAX}, {(size_t)1 << 32, (size_t)1 << 32},
                                      {SIZE_MAX / 3 + 1, 3}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        errno = ERRNO_SENTINEL;
        void *q = hak_reallocarray(p, pairs[i][0], pairs[i][1]);
        int e = errno;
        TU_CHECK(q == NULL && e == ENOMEM, "hak_reallocarray(p, %#zx, %#zx) = %p errno %d, want NULL/ENOMEM",
                 pairs[i][0], pairs[i][1], q, e);
        TU_CHECK(tu_verify(p, 0, 64, 9) == SIZE_MAX, "failed hak_reallocarray changed the old block");
        errno = ERRNO_SENTINEL;
        q = hak_reallocarray(NULL, pairs[i][0], pairs[i][1]);
        e = errno;
        TU_CHECK(q == NULL && e == ENOMEM, "hak_reallocarray(NULL, %#zx, %#zx) = %p errno %d", pairs[i][0],
                 pairs[i][1], q, e);
    }
    /* Without overflow it is realloc(p, nmemb * size). */
    void *q = hak_reallocarray(p, 100, 40);
    cr_assert_not_null(q);
    TU_CHECK(tu_verify(q, 0, 64, 9) == SIZE_MAX, "hak_reallocarray(p, 100, 40) lost content");
    TU_CHECK(hak_malloc_usable_size(q) >= 4000, "hak_reallocarray(p, 100, 40): usable %zu",
             hak_malloc_usable_size(q));
    q = hak_reallocarray(q, 3, 7);
    cr_assert_not_null(q);
    TU_CHECK(tu_verify(q, 0, 21, 9) == SIZE_MAX, "hak_reallocarray(q, 3, 7) lost content");
    hak_free(q);
    q = hak_reallocarray(NULL, 10, 10);
    cr_assert_not_null(q);
    hak_free(q);
}

/* ------------------------------------------------------------------------------------------------ */
/* posix_memalign, aligned_alloc, memalign, valloc, pvalloc                                           */

/* POSIX: EINVAL when the alignment is not a power of two multiple of sizeof(void *); errno is not
 * set (the result is the return value) and *memptr is not modified. */
Test(posix_memalign, einval_leaves_errno_and_out_untouched) {
    oracle_init();
    static const size_t bad[] = {0, 1, 2, 4, 3, 6, 12, 24, 48, 96, 4097, 3 * 1024 * 1024, SIZE_MAX,
                                 SIZE_MAX / 2 + 2};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (size_t size = 0; size <= 4096; size += 2048) {
            void *sentinel = (void *)&sentinel, *out = sentinel;
            errno = ERRNO_SENTINEL;
            int r = G.posix_memalign(&out, bad[i], size);
            TU_CHECK(r == EINVAL && out == sentinel && errno == ERRNO_SENTINEL,
                     "oracle: glibc posix_memalign(%#zx, %zu) = %d", bad[i], size, r);
            errno = ERRNO_SENTINEL;
            r = hak_posix_memalign(&out, bad[i], size);
            int e = errno;
            TU_CHECK(r == EINVAL, "hak_posix_memalign(align %#zx, %zu) returned %d, want EINVAL (%d)", bad[i],
                     size, r, EINVAL);
            TU_CHECK(out == sentinel, "hak_posix_memalign(align %#zx, %zu) wrote *out = %p on EINVAL", bad[i], size,
                     out);
            TU_CHECK(e == ERRNO_SENTINEL, "hak_posix_memalign(align %#zx, %zu) changed errno to %d", bad[i], size, e);
        }
    }
}

Test(posix_memalign, every_power_of_two_alignment) {
    oracle_init();
    uint64_t seed = 3;
    for (size_t a = sizeof(void *); a <= 4 * MIB; a *= 2) {
        const size_t sizes[] = {0, 1, 8, a - 1, a, a + 1, 3 * a + 5, 777, 100000};
        enum { NS = sizeof sizes / sizeof sizes[0] };
        void *live[NS];
        uint64_t seeds[NS];
        for (size_t s = 0; s < NS; s++) {
            size_t n = sizes[s];
            void *out = NULL;
            errno = ERRNO_SENTINEL;
            int r = hak_posix_memalign(&out, a, n);
            TU_CHECK(r == 0, "hak_posix_memalign(align %zu, %zu) returned %d", a, n, r);
            TU_CHECK(errno == ERRNO_SENTINEL, "successful hak_posix_memalign(%zu, %zu) changed errno", a, n);
            live[s] = out;
            seeds[s] = ++seed;
            if (n == 0 && out == NULL) {
                /* POSIX allows NULL for size 0; glibc gives a block, so hakmem must too. */
                void *g = NULL;
                G.posix_memalign(&g, a, 0);
                TU_CHECK(g == NULL, "hak_posix_memalign(align %zu, 0) gave NULL; glibc gives a block", a);
                continue;
            }
            TU_CHECK(out != NULL, "hak_posix_memalign(align %zu, %zu) returned 0 but *out = NULL", a, n);
            TU_CHECK(((uintptr_t)out & (a - 1)) == 0, "hak_posix_memalign(align %zu, %zu) = %p is misaligned", a,
                     n, out);
            fill_usable_and_verify(out, n, seeds[s], "hak_posix_memalign");
        }
        /* All blocks of one alignment live at once: each still holds its own pattern (no overlap). */
        for (size_t s = 0; s < NS; s++) {
            if (live[s] == NULL) continue;
            size_t u = hak_malloc_usable_size(live[s]);
            TU_CHECK(tu_verify(live[s], 0, u, seeds[s]) == SIZE_MAX,
                     "hak_posix_memalign(align %zu, %zu): content clobbered by a later block", a, sizes[s]);
            hak_free(live[s]);
        }
    }
}

/* Calls an (alignment, size) entry point of glibc and of hakmem and wants the same outcome:
 * glibc fails -> hakmem fails with the same errno; glibc succeeds -> hakmem succeeds with a block
 * aligned to at least the alignment rounded up to a power of two, of usable size >= size. */
static void aligned_vs_glibc(const char *fn, void *(*gfn)(size_t, size_t), void *(*hfn)(size_t, size_t), size_t a,
                             size_t n, uint64_t seed) {
    errno = ERRNO_SENTINEL;
    void *g = gfn(a, n);
    int ge = errno;
    if (g != NULL) G.free(g);
    errno = ERRNO_SENTINEL;
    void *h = hfn(a, n);
    int he = errno;
    if (g == NULL) {
        TU_CHECK(h == NULL, "hak_%s(%#zx, %zu) = %p; glibc fails with errno %d", fn, a, n, h, ge);
        TU_CHECK(he == ge, "hak_%s(%#zx, %zu) failed with errno %d; glibc sets errno %d", fn, a, n, he, ge);
        return;
    }
    TU_CHECK(h != NULL, "hak_%s(%#zx, %zu) = NULL errno %d; glibc returns a block", fn, a, n, he);
    size_t want = pow2_ceil(a);
    TU_CHECK(want != 0 && ((uintptr_t)h & (want - 1)) == 0, "hak_%s(%#zx, %zu) = %p is not %zu-aligned", fn, a, n,
             h, want);
    fill_usable_and_verify(h, n, seed, fn);
    hak_free(h);
}

static const size_t ODD_ALIGNMENTS[] = {0, 1, 2, 3, 4, 12, 24, 48, 100, 4097, 3 * 1024 * 1024,
                                        SIZE_MAX / 2 + 1, SIZE_MAX / 2 + 2, SIZE_MAX};
#define N_ODD (sizeof ODD_ALIGNMENTS / sizeof ODD_ALIGNMENTS[0])

static void aligned_matrix(const char *fn, void *(*gfn)(size_t, size_t), void *(*hfn)(size_t, size_t)) {
    uint64_t seed = 11;
    for (size_t a = 1; a <= 4 * MIB; a *= 2) {
        const size_t sizes[] = {0, 1, 17, a, a + 1, 3 * a, 3 * a + 7};
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) aligned_vs_glibc(fn, gfn, hfn, a, sizes[s], ++seed);
    }
    for (size_t i = 0; i < N_ODD; i++) {
        const size_t sizes[] = {0, 1, 17, 64, 4096, 100000};
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            aligned_vs_glibc(fn, gfn, hfn, ODD_ALIGNMENTS[i], sizes[s], ++seed);
    }
}

/* glibc 2.36 accepts any size (not only multiples of the alignment) and rounds odd alignments up;
 * later glibc rejects some alignments with EINVAL. Whatever this machine's glibc does, hakmem must
 * do too: a drop-in is measured against the libc it replaces. */
Test(aligned_alloc, matches_glibc) {
    oracle_init();
    aligned_matrix("aligned_alloc", G.aligned_alloc, hak_aligned_alloc);
}

Test(memalign, matches_glibc) {
    oracle_init();
    aligned_matrix("memalign", G.memalign, hak_memalign);
}

Test(valloc, page_aligned) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t sizes[] = {0, 1, 100, page - 1, page, page + 1, 70000, 3 * MIB + 5};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p = hak_valloc(n);
        TU_CHECK(p != NULL, "hak_valloc(%zu) = NULL", n);
        TU_CHECK(((uintptr_t)p & (page - 1)) == 0, "hak_valloc(%zu) = %p is not page-aligned", n, p);
        fill_usable_and_verify(p, n, 40 + i, "hak_valloc");
        hak_free(p);
        p = hak_memalign(page, n);
        TU_CHECK(p != NULL && ((uintptr_t)p & (page - 1)) == 0, "hak_memalign(page, %zu) = %p", n, p);
        hak_free(p);
    }
}

/* pvalloc rounds the size up to a whole number of pages: all of them are usable. */
Test(pvalloc, page_aligned_and_rounded_up) {
    oracle_init();
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t sizes[] = {0, 1, 100, page - 1, page, page + 1, 70000, 3 * MIB + 5};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        size_t rounded = (n + page - 1) / page * page;
        void *g = G.pvalloc(n);
        cr_assert(g != NULL && G.usable(g) >= rounded, "oracle: glibc pvalloc(%zu)", n);
        G.free(g);
        void *p = hak_pvalloc(n);
        TU_CHECK(p != NULL, "hak_pvalloc(%zu) = NULL", n);
        TU_CHECK(((uintptr_t)p & (page - 1)) == 0, "hak_pvalloc(%zu) = %p is not page-aligned", n, p);
        TU_CHECK(hak_malloc_usable_size(p) >= rounded, "hak_pvalloc(%zu): usable %zu < %zu (size rounded to pages)",
                 n, hak_malloc_usable_size(p), rounded);
        fill_usable_and_verify(p, rounded, 60 + i, "hak_pvalloc");
        hak_free(p);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* malloc_usable_size and free                                                                        */

Test(malloc_usable_size, null_is_zero_and_lower_bound_holds) {
    TU_CHECK(hak_malloc_usable_size(NULL) == 0, "hak_malloc_usable_size(NULL) = %zu", hak_malloc_usable_size(NULL));
    for (size_t n = 0; n <= 9000; n++) {
        void *p = hak_malloc(n);
        TU_CHECK(p != NULL, "hak_malloc(%zu) = NULL", n);
        size_t u = hak_malloc_usable_size(p);
        TU_CHECK(u >= n, "hak_malloc_usable_size(malloc(%zu)) = %zu", n, u);
        hak_free(p);
    }
    size_list_t l;
    boundary_sizes(&l, 16 * MIB);
    for (size_t i = 0; i < l.n; i++) {
        void *p = hak_malloc(l.v[i]);
        TU_CHECK(p != NULL, "hak_malloc(%zu) = NULL", l.v[i]);
        TU_CHECK(hak_malloc_usable_size(p) >= l.v[i], "hak_malloc_usable_size(malloc(%zu)) = %zu", l.v[i],
                 hak_malloc_usable_size(p));
        hak_free(p);
    }
}

/* The usable size is the caller's to write (glibc documents it; programs such as Python rely on it):
 * writing every usable byte of every block must not disturb any other block. */
Test(malloc_usable_size, writing_all_usable_bytes_keeps_neighbours) {
    size_t n = tu_scaled(4000, 800);
    uint64_t rng = 0xFEEDull;
    void **p = calloc(n, sizeof *p);
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++) {
        size_t sz = random_size(&rng);
        if (sz > 1 * MIB) sz = tu_range(&rng, 1, 128); /* keep the resident set small */
        switch (i % 4) {
        case 0: p[i] = hak_malloc(sz); break;
        case 1: p[i] = hak_calloc(sz, 1); break;
        case 2: p[i] = hak_memalign((size_t)16 << (i % 9), sz); break;
        default: p[i] = hak_realloc(hak_malloc(sz / 2 + 1), sz + 1); break; /* never realloc(p, 0) */
        }
        TU_CHECK(p[i] != NULL, "allocation %zu of %zu bytes failed", i, sz);
        tu_fill(p[i], 0, hak_malloc_usable_size(p[i]), i);
    }
    for (size_t i = 0; i < n; i++) {
        size_t u = hak_malloc_usable_size(p[i]);
        size_t bad = tu_verify(p[i], 0, u, i);
        TU_CHECK(bad == SIZE_MAX, "block %zu at %p (usable %zu): byte %zu was overwritten by a neighbour", i, p[i],
                 u, bad);
    }
    /* Free in a scattered order, verifying the survivors as the heap changes around them. */
    for (size_t step = 0; step < n; step++) {
        size_t i = (step * 7919) % n;
        if (p[i] == NULL) continue;
        size_t bad = tu_verify(p[i], 0, hak_malloc_usable_size(p[i]), i);
        TU_CHECK(bad == SIZE_MAX, "block %zu: byte %zu changed before its free", i, bad);
        hak_free(p[i]);
        p[i] = NULL;
    }
    for (size_t i = 0; i < n; i++) hak_free(p[i]);
    free(p);
}

/* ------------------------------------------------------------------------------------------------ */
/* hak_collect                                                                                        */

/* Pages of [from, to) that are resident. */
static size_t resident_pages(uintptr_t from, uintptr_t to) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = 0;
    from &= ~(uintptr_t)(pg - 1);
    unsigned char vec[64];
    for (uintptr_t a = from; a < to; a += 64 * pg) {
        size_t len = to - a < 64 * pg ? to - a : 64 * pg;
        TU_CHECK(mincore((void *)a, len, vec) == 0, "mincore(%p, %zu) failed: %s", (void *)a, len, strerror(errno));
        for (size_t i = 0; i < (len + pg - 1) / pg; i++) n += vec[i] & 1u;
    }
    return n;
}

/* Allocates blocks of `size` bytes (of a class this process has not used) into p[] while they are
 * carved one after the other from p[0] within its 64 KiB unit: the first blocks of one fresh slab
 * (blocks past a slab's end would be another slab, given back whole). Returns how many (at most
 * max); *cs is the class size. */
static size_t slab_run(unsigned char **p, size_t max, size_t size, size_t *cs) {
    hak_block_info_t bi;
    p[0] = hak_malloc(size);
    cr_assert(p[0] != NULL && hak_debug_block_info(p[0], &bi) == HAK_BLOCK_SLAB);
    *cs = bi.class_size;
    size_t n = 1;
    while (n < max) {
        unsigned char *q = hak_malloc(size);
        cr_assert(q != NULL);
        if (q != p[0] + n * *cs || ((uintptr_t)q >> 16) != ((uintptr_t)p[0] >> 16)) {
            hak_free(q);
            break;
        }
        p[n++] = q;
    }
    return n;
}

/* hak_collect gives back the free tail of a slab that still holds live blocks: the blocks past the
 * last live one become uncarved again, their pages leave memory (mincore says so), the live blocks
 * keep their contents, both checkers pass, and the next allocation is carved right after the live
 * blocks. */
Test(collect, gives_back_the_free_tail_of_a_slab) {
    enum { MAXB = 2048, LIVE = 8 };
    static unsigned char *p[MAXB];
    const size_t size = 200;
    size_t cs, n = slab_run(p, MAXB, size, &cs);
    cr_assert(n >= 64, "only %zu blocks of %zu bytes were carved one after the other from %p", n, cs, (void *)p[0]);
    for (size_t i = 0; i < n; i++) tu_fill(p[i], 0, size, 7000 + i);
    uintptr_t tail = ((uintptr_t)p[LIVE] + 4095) & ~(uintptr_t)4095, end = (uintptr_t)p[n - 1] + cs;
    cr_assert(resident_pages(tail, end) > 4, "the blocks' pages should be resident after writing them");
    /* Free every block past the first LIVE, in a shuffled order. */
    static size_t order[MAXB];
    uint64_t rng = 99;
    for (size_t i = LIVE; i < n; i++) order[i] = i;
    for (size_t i = n - 1; i > LIVE; i--) {
        size_t j = tu_range(&rng, LIVE, i), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = LIVE; i < n; i++) hak_free(p[order[i]]);
    hak_debug_stats_t before, after;
    hak_debug_stats(&before);
    hak_collect();
    hak_debug_stats(&after);
    /* MADV_FREE (lean with HAKMEM_SS_MEM_LEAN_DECOMMIT=FREE) leaves pages resident until the kernel
     * needs them, OFF keeps them: only DONTNEED makes them leave at once. */
    int lean = hak_debug_get_option("SS_MEM_LEAN") == 1 || strcmp(hak_mode(), "lean") == 0;
    int dontneed = !lean || hak_debug_get_option("SS_MEM_LEAN_DECOMMIT") == 1;
    if (dontneed) {
        cr_assert(after.madvise_calls > before.madvise_calls, "hak_collect made no madvise call");
        cr_assert(resident_pages(tail, end) == 0, "%zu of the free tail's pages [%p, %p) are still resident",
                  resident_pages(tail, end), (void *)tail, (void *)end);
    }
    if (lean) cr_assert(after.lean_decommit > before.lean_decommit, "the trim was not counted (lean_decommit)");
    for (size_t i = 0; i < LIVE; i++)
        cr_assert(tu_verify(p[i], 0, size, 7000 + i) == SIZE_MAX, "live block %zu changed by the trim", i);
    hak_check_report_t rep;
    cr_assert(hak_debug_check_thread(&rep), "%s: %s", rep.check, rep.msg);
    cr_assert(hak_debug_check_heap(&rep), "%s: %s", rep.check, rep.msg);
    /* The slab carves again from the end of the live blocks. */
    unsigned char *q = hak_malloc(size);
    cr_assert(q == p[0] + LIVE * cs, "next block %p, expected %p (right after the live blocks)", (void *)q,
              (void *)(p[0] + LIVE * cs));
    tu_fill(q, 0, size, 1);
    cr_assert(hak_debug_check_heap(&rep), "%s: %s", rep.check, rep.msg);
    hak_free(q);
    for (size_t i = 0; i < LIVE; i++) hak_free(p[i]);
}

/* malloc_trim (hak_malloc_trim) is hak_collect with glibc's answer: 1 after it gave a slab's free tail
 * back (whose pages are then gone), 0 when a second call finds nothing more to give back. */
Test(collect, malloc_trim_reports_whether_memory_went_back) {
    enum { MAXB = 2048 };
    static unsigned char *p[MAXB];
    size_t cs, n = slab_run(p, MAXB, 700, &cs);
    cr_assert(n >= 16, "only %zu blocks of %zu bytes in the run", n, cs);
    for (size_t i = 0; i < n; i++) memset(p[i], 0x5a, 700);
    for (size_t i = 2; i < n; i++) hak_free(p[i]);
    int lean = strcmp(hak_mode(), "lean") == 0 || hak_debug_get_option("SS_MEM_LEAN") == 1;
    int first = hak_malloc_trim(0), second = hak_malloc_trim(0);
    long long how = lean ? hak_debug_get_option("SS_MEM_LEAN_DECOMMIT") : 1;
    if (how != 2) cr_assert_eq(first, 1, "malloc_trim gave nothing back");
    uintptr_t tail = ((uintptr_t)p[2] + 4095) & ~(uintptr_t)4095, end = (uintptr_t)p[n - 1] + cs;
    if (how == 1) cr_assert(resident_pages(tail, end) == 0, "the free tail [%p, %p) is still resident", (void *)tail, (void *)end);
    cr_assert_eq(second, 0, "a second malloc_trim found more to give back");
    for (size_t i = 0; i < 2; i++)
        for (size_t j = 0; j < 700; j++) TU_CHECK(p[i][j] == 0x5a, "live block %zu byte %zu changed", i, j);
    hak_free(p[0]);
    hak_free(p[1]);
}

/* ------------------------------------------------------------------------------------------------ */
/* lean mode: a class at a new peak borrows a free block of a larger class                           */

static int lean_on(void) { return strcmp(hak_mode(), "lean") == 0 || hak_debug_get_option("SS_MEM_LEAN") == 1; }

/* Allocates and frees k blocks of `size` bytes, round after round, until the thread has made
 * `refills` more refills: the blocks come back every round, so the class stops growing and is past
 * its warm-up (tiny/tcache.c: HK_BORROW_AFTER). */
static void churn_class(size_t size, size_t k, uint64_t refills) {
    static void *p[1024];
    hak_debug_stats_t st;
    hak_debug_stats(&st);
    uint64_t until = st.refills + refills;
    cr_assert(k <= 1024);
    for (int round = 0;; round++) {
        cr_assert(round < 50000, "%d rounds of %zu blocks of %zu B made too few refills (a cache cap above %zu?)", round,
                  k, size, k);
        for (size_t i = 0; i < k; i++) cr_assert((p[i] = hak_malloc(size)) != NULL);
        for (size_t i = 0; i < k; i++) hak_free(p[i]);
        hak_debug_stats(&st);
        if (st.refills >= until) break;
    }
}

/* Frees n blocks of `size` bytes (a larger class, the lender) after allocating them, all but the
 * first: it stays live (returned), so that the slab is not empty and lean mode does not give it back. */
static void *leave_free_blocks(size_t size, size_t n) {
    static void *p[512];
    for (size_t i = 0; i < n; i++) cr_assert((p[i] = hak_malloc(size)) != NULL);
    for (size_t i = 1; i < n; i++) hak_free(p[i]);
    return p[0];
}

/* Past its warm-up, a class that would need a new page takes a free block of a larger class instead:
 * in lean mode only. The block has the larger class's usable size, keeps its contents, frees like any
 * other, the checkers pass, and the debug counter lean_borrowed counts it. Outside lean mode the same
 * steps hand out only blocks of the class itself (checked first, then lean is switched on). */
Test(lean, a_class_past_its_peak_borrows_a_larger_free_block) {
    /* K: above twice the class's cache cap in lean mode (18 blocks of 896 B), and with the pin within
     * one slab (73 blocks), so that the class never empties its slab (lean mode would give it back and
     * grow again) */
    enum { K = 64, MORE = 24 };
    static void *p[K + MORE];
    hak_check_report_t rep;
    if (!lean_on()) {
        void *lend = leave_free_blocks(700, 48), *pin = hak_malloc(600);
        churn_class(600, K, 300);
        size_t own = 0;
        for (size_t i = 0; i < K + MORE; i++) {
            cr_assert((p[i] = hak_malloc(600)) != NULL);
            own += hak_malloc_usable_size(p[i]) < 700;
        }
        cr_assert_eq(own, (size_t)(K + MORE), "outside lean mode %zu of %d blocks of 600 B came from a larger class",
                     (size_t)(K + MORE) - own, K + MORE);
        for (size_t i = 0; i < K + MORE; i++) hak_free(p[i]);
        hak_free(pin);
        hak_free(lend);
        cr_assert_eq(hak_debug_set_option("HAKMEM_SS_MEM_LEAN", "1"), 0, "could not switch lean mode on");
        cr_assert(lean_on());
    }
    hak_debug_stats_t before, after;
    void *lend = leave_free_blocks(1000, 48), *pin = hak_malloc(850);
    churn_class(850, K, 300);
    hak_debug_stats(&before);
    size_t borrowed = 0;
    for (size_t i = 0; i < K + MORE; i++) {
        cr_assert((p[i] = hak_malloc(850)) != NULL);
        borrowed += hak_malloc_usable_size(p[i]) >= 1000;
        tu_fill(p[i], 0, 850, 500 + i);
    }
    hak_debug_stats(&after);
    cr_assert(borrowed > 0, "no block of 850 B past the class's old peak came from a larger class");
    cr_assert_eq(after.lean_borrowed - before.lean_borrowed, (uint64_t)borrowed,
                 "lean_borrowed counted %llu, %zu blocks have the larger class's size",
                 (unsigned long long)(after.lean_borrowed - before.lean_borrowed), borrowed);
    cr_assert(hak_debug_check_thread(&rep), "%s: %s", rep.check, rep.msg);
    cr_assert(hak_debug_check_heap(&rep), "%s: %s", rep.check, rep.msg);
    for (size_t i = 0; i < K + MORE; i++) {
        cr_assert(tu_verify(p[i], 0, 850, 500 + i) == SIZE_MAX, "block %zu changed", i);
        hak_free(p[i]);
    }
    hak_free(pin);
    hak_free(lend);
    cr_assert(hak_debug_check_thread(&rep), "%s: %s", rep.check, rep.msg);
    cr_assert(hak_debug_check_heap(&rep), "%s: %s", rep.check, rep.msg);
}

/* memalign picks a class for its alignment (a multiple of it): lean mode must not hand out a block of
 * a larger class there. 40 bytes at 32 take the 64-byte class (48 is not a multiple of 32); the
 * lender, 80, is not: half its blocks would be only 16-aligned. */
Test(lean, memalign_never_borrows) {
    /* MORE: past the page the class has room in (64 blocks), so that the class must grow */
    enum { K = 512, MORE = 160 };
    static void *p[K + MORE];
    if (!lean_on()) cr_assert_eq(hak_debug_set_option("HAKMEM_SS_MEM_LEAN", "1"), 0);
    void *lend = leave_free_blocks(80, 96), *pin = hak_malloc(56);
    churn_class(56, K, 300);
    size_t own = hak_malloc_usable_size(p[0] = hak_memalign(32, 40));
    hak_free(p[0]);
    for (size_t i = 0; i < K + MORE; i++) {
        cr_assert((p[i] = hak_memalign(32, 40)) != NULL);
        cr_assert(((uintptr_t)p[i] & 31) == 0, "memalign(32, 40) #%zu returned %p", i, p[i]);
        cr_assert_eq(hak_malloc_usable_size(p[i]), own, "memalign(32, 40) #%zu: a block of %zu usable bytes, not %zu",
                     i, hak_malloc_usable_size(p[i]), own);
    }
    /* the same class through malloc does borrow at this point (once the blocks memalign's growth
     * left in the thread cache are used up) */
    static void *q[1024];
    size_t n = 0, larger = 0;
    while (n < 1024 && !larger) {
        cr_assert((q[n] = hak_malloc(56)) != NULL);
        larger = hak_malloc_usable_size(q[n++]) > own;
    }
    cr_assert(larger, "%zu mallocs of 56 B past the class's peak, none borrowed", n);
    for (size_t i = 0; i < n; i++) hak_free(q[i]);
    for (size_t i = 0; i < K + MORE; i++) hak_free(p[i]);
    hak_free(pin);
    hak_free(lend);
}

/* The grower of the hole tests, the 1024-byte class: one page of its blocks, all live (g[0..3]), then
 * 300 refills of another class (past the warm-up); malloc_trim then takes every free tail and the
 * slabs the churn left empty, so the grower's next page can only be traded for a hole. */
static void grower_past_warm_up(void **g) {
    for (int i = 0; i < 4; i++) cr_assert((g[i] = hak_malloc(1000)) != NULL);
    churn_class(64, 256, 300);
    hak_malloc_trim(0);
}

/* A class with no lender (1024 B: nothing of 1280..2048 B is allocated here) that must grow past its
 * warm-up gives back a page of another class first, and with no free tail anywhere that page is a
 * hole: a page of the 896-byte class whose blocks are all free while the slab's other blocks are live.
 * The page leaves memory, its blocks are handed out by nobody (the heap walker checks they are on no
 * list and that the held count adds up), the live blocks keep their contents, and when the 896-byte
 * class itself must grow it takes the hole back: its next blocks come from that page. */
static void hole_round_trip(const char *decommit, const char *decommit_later) {
    if (!lean_on()) cr_assert_eq(hak_debug_set_option("HAKMEM_SS_MEM_LEAN", "1"), 0);
    if (decommit) cr_assert_eq(hak_debug_set_option("HAKMEM_SS_MEM_LEAN_DECOMMIT", decommit), 0);
    int hardened = strcmp(HAK_TEST_VARIANT, "hardened") == 0 || strcmp(HAK_TEST_VARIANT, "debug") == 0;
    enum { MAXV = 80, PAGE = 4096 };
    static unsigned char *v[MAXV];
    static void *q[256];
    hak_check_report_t rep;
    /* 850 B: the 896-byte class in every variant (the hardened one adds an 8-byte canary) */
    size_t cs, n = slab_run(v, MAXV, 850, &cs);
    cr_assert(cs == 896 && n * cs >= 8 * PAGE, "only %zu blocks of %zu B in one slab", n, cs);
    for (size_t i = 0; i < n; i++) tu_fill(v[i], 0, 850, 900 + i);
    /* the blocks overlapping the fifth page of the run become free; the last block stays live, so
     * the slab has no free tail */
    uintptr_t page = ((uintptr_t)v[0] & ~(uintptr_t)(PAGE - 1)) + 4 * PAGE;
    size_t freed = 0;
    for (size_t i = 0; i < n; i++)
        if ((uintptr_t)v[i] < page + PAGE && (uintptr_t)v[i] + cs > page) {
            hak_free(v[i]);
            v[i] = NULL;
            freed++;
        }
    cr_assert(freed >= 4 && v[n - 1] != NULL);
    void *g[4];
    grower_past_warm_up(g);
    hak_debug_stats_t before, mid, after;
    hak_debug_stats(&before);
    void *grown = NULL;
    for (size_t i = 0; i < 8 && before.lean_holes == (hak_debug_stats(&mid), mid.lean_holes); i++) {
        cr_assert((q[i] = hak_malloc(1000)) != NULL);
        grown = q[i];
    }
    cr_assert_eq(mid.lean_holes - before.lean_holes, 1, "the 1024-byte class grew without giving back a page (holes %llu)",
                 (unsigned long long)(mid.lean_holes - before.lean_holes));
    cr_assert(hak_malloc_usable_size(grown) >= 1000 && hak_malloc_usable_size(grown) < 1280);
    /* hardened builds discard holes whatever the knob says (their contents are checked for zeros) */
    if (hak_debug_get_option("SS_MEM_LEAN_DECOMMIT") == 1 || hardened)
        cr_assert_eq(resident_pages(page, page + PAGE), 0, "the free page %p is still resident", (void *)page);
    cr_assert(hak_debug_check_thread(&rep), "%s: %s", rep.check, rep.msg);
    cr_assert(hak_debug_check_heap(&rep), "%s: %s", rep.check, rep.msg);
    for (size_t i = 0; i < n; i++)
        if (v[i]) cr_assert(tu_verify(v[i], 0, 850, 900 + i) == SIZE_MAX, "live block %zu changed", i);
    if (decommit_later) cr_assert_eq(hak_debug_set_option("HAKMEM_SS_MEM_LEAN_DECOMMIT", decommit_later), 0);
    /* the 896-byte class grows: it takes its hole back, and hands out the page's blocks */
    static void *got[256];
    size_t m = 0, in_page = 0;
    while (m < 256 && !in_page) {
        cr_assert((got[m] = hak_malloc(850)) != NULL);
        in_page = (uintptr_t)got[m] >= page && (uintptr_t)got[m] < page + PAGE;
        tu_fill(got[m], 0, 850, 7000 + m);
        m++;
    }
    hak_debug_stats(&after);
    cr_assert(in_page, "%zu blocks of 850 B, none from the hole", m);
    cr_assert_eq(after.lean_holes_back - mid.lean_holes_back, 1, "holes taken back: %llu",
                 (unsigned long long)(after.lean_holes_back - mid.lean_holes_back));
    cr_assert(hak_debug_check_thread(&rep), "%s: %s", rep.check, rep.msg);
    cr_assert(hak_debug_check_heap(&rep), "%s: %s", rep.check, rep.msg);
    for (size_t j = 0; j < m; j++) {
        cr_assert(tu_verify(got[j], 0, 850, 7000 + j) == SIZE_MAX, "block %zu changed", j);
        hak_free(got[j]);
    }
    for (size_t i = 0; i < n; i++)
        if (v[i]) hak_free(v[i]);
    for (int i = 0; i < 4; i++) hak_free(g[i]);
    for (size_t i = 0; i < 8 && q[i]; i++) hak_free(q[i]);
    cr_assert(hak_debug_check_thread(&rep), "%s: %s", rep.check, rep.msg);
    cr_assert(hak_debug_check_heap(&rep), "%s: %s", rep.check, rep.msg);
}

Test(lean, a_class_without_lender_gives_back_a_free_page_of_another_slab) { hole_round_trip(NULL, NULL); }

/* The decommit knob changes (with the mode) while a hole is out: made with MADV_FREE, whose pages may
 * keep their contents, taken back under DONTNEED. Hardened builds discard holes with DONTNEED always,
 * so the zeros they check for when a hole comes back are there (a fuzzer that switched modes saw a
 * false "write after free" before). */
Test(lean, a_hole_made_under_one_decommit_policy_comes_back_under_another) { hole_round_trip("FREE", "DONTNEED"); }

/* Refills within which a class that grew is not asked to repay a page (tiny/tcache.c HK_REPAY_QUIET):
 * the repayment tests churn past it, so that the 896-byte class, grown when the test began, is asked. */
#define REPAY_QUIET 16384

/* A trade that finds no page to give back (every block of every slab live or cached) still grows the
 * class, and the page is owed: once a page whose blocks are all free appears, a later refill (every
 * 4096 refills of the thread, tiny/tcache.c HK_REPAY_EVERY) gives it back as a hole. */
Test(lean, a_page_a_trade_could_not_give_back_is_repaid_later) {
    if (!lean_on()) cr_assert_eq(hak_debug_set_option("HAKMEM_SS_MEM_LEAN", "1"), 0);
    enum { MAXV = 80, PAGE = 4096 };
    static unsigned char *v[MAXV];
    hak_check_report_t rep;
    size_t cs, n = slab_run(v, MAXV, 850, &cs);
    cr_assert(cs == 896 && n * cs >= 8 * PAGE, "only %zu blocks of %zu B in one slab", n, cs);
    void *g[5];
    grower_past_warm_up(g);
    hak_debug_stats_t before, owed, after;
    hak_debug_stats(&before);
    cr_assert((g[4] = hak_malloc(1000)) != NULL); /* grows: nothing to trade, the page is owed */
    hak_debug_stats(&owed);
    cr_assert_eq(owed.lean_holes, before.lean_holes, "a hole was made with every block live");
    /* the churned class grows back after the trim (owing its page too), then stays within its slab:
     * the page freed next can only go back through a repayment, not through a trade */
    churn_class(64, 256, 600);
    uintptr_t page = ((uintptr_t)v[0] & ~(uintptr_t)(PAGE - 1)) + 4 * PAGE;
    for (size_t i = 0; i < n; i++)
        if ((uintptr_t)v[i] < page + PAGE && (uintptr_t)v[i] + cs > page) {
            hak_free(v[i]);
            v[i] = NULL;
        }
    churn_class(64, 256, REPAY_QUIET + 4096 + 512);
    hak_debug_stats(&after);
    cr_assert(after.lean_holes - owed.lean_holes >= 1, "the owed page was not repaid");
    if (hak_debug_get_option("SS_MEM_LEAN_DECOMMIT") == 1)
        cr_assert_eq(resident_pages(page, page + PAGE), 0, "the free page %p is still resident", (void *)page);
    cr_assert(hak_debug_check_thread(&rep), "%s: %s", rep.check, rep.msg);
    cr_assert(hak_debug_check_heap(&rep), "%s: %s", rep.check, rep.msg);
    for (size_t i = 0; i < n; i++)
        if (v[i]) hak_free(v[i]);
    for (int i = 0; i < 5; i++) hak_free(g[i]);
    cr_assert(hak_debug_check_heap(&rep), "%s: %s", rep.check, rep.msg);
}

/* A page owed by a trade while no page is free anywhere is vacated: the repayment picks the page with
 * the fewest live blocks (here the fifth page of a slab of 896-byte blocks, one block live, every other
 * page of every slab with two or more), and from then on its free blocks are not handed out again: the
 * class's next blocks come from elsewhere in the slab. Once its last live block is freed, the next
 * repayment gives the page back as a hole. The heap walker checks the held blocks meanwhile. */
Test(lean, an_owed_page_with_a_live_block_is_vacated_and_given_back) {
    if (!lean_on()) cr_assert_eq(hak_debug_set_option("HAKMEM_SS_MEM_LEAN", "1"), 0);
    int hardened = strcmp(HAK_TEST_VARIANT, "hardened") == 0 || strcmp(HAK_TEST_VARIANT, "debug") == 0;
    enum { MAXV = 80, PAGE = 4096, PINS = 1024, SPARE = 6 };
    static unsigned char *v[MAXV];
    static void *pins[PINS], *g[8], *q[SPARE];
    hak_check_report_t rep;
    size_t cs, n = slab_run(v, MAXV, 850, &cs);
    cr_assert(cs == 896 && n * cs >= 8 * PAGE, "only %zu blocks of %zu B in one slab", n, cs);
    for (size_t i = 0; i < n; i++) tu_fill(v[i], 0, 850, 300 + i);
    grower_past_warm_up(g);
    hak_debug_stats_t before, mid, after;
    hak_debug_stats(&before);
    for (int i = 4; i < 8; i++) cr_assert((g[i] = hak_malloc(1000)) != NULL); /* grows: every block live, the page is owed */
    /* 64-byte blocks for the churn below to cycle through: two stay live in each page, so that no page
     * of theirs is ever free or has a single live block */
    for (size_t i = 0; i < PINS; i++) cr_assert((pins[i] = hak_malloc(64)) != NULL);
    for (size_t i = 0; i < PINS; i++)
        if ((uintptr_t)pins[i] % PAGE >= 2 * 64) {
            hak_free(pins[i]);
            pins[i] = NULL;
        }
    /* the fifth page of the slab keeps one live block (the first one wholly inside it); every other
     * block of the second half's first twelve is freed, so the class has free blocks besides and each
     * of those pages keeps two or more live */
    uintptr_t page = ((uintptr_t)v[0] & ~(uintptr_t)(PAGE - 1)) + 4 * PAGE;
    size_t keep = n;
    for (size_t i = 0; i < n; i++) {
        if ((uintptr_t)v[i] >= page + PAGE || (uintptr_t)v[i] + cs <= page) continue;
        if (keep == n && (uintptr_t)v[i] >= page) {
            keep = i;
            continue;
        }
        hak_free(v[i]);
        v[i] = NULL;
    }
    cr_assert(keep < n);
    for (size_t i = n / 2; i < n / 2 + 2 * SPARE; i += 2) {
        cr_assert((uintptr_t)v[i] >= page + PAGE);
        hak_free(v[i]);
        v[i] = NULL;
    }
    churn_class(64, 256, REPAY_QUIET + 4096 + 512); /* a repayment: no page is free, so one is vacated */
    hak_debug_stats(&mid);
    cr_assert_eq(mid.lean_holes, before.lean_holes, "a page was given back with a block of every page live");
    cr_assert(hak_debug_check_thread(&rep), "%s: %s", rep.check, rep.msg);
    cr_assert(hak_debug_check_heap(&rep), "%s: %s", rep.check, rep.msg);
    /* the page's free blocks are held: the class's next blocks are the spare ones */
    for (size_t i = 0; i < SPARE; i++) {
        cr_assert((q[i] = hak_malloc(850)) != NULL);
        cr_assert((uintptr_t)q[i] + cs <= page || (uintptr_t)q[i] >= page + PAGE,
                  "malloc(850) #%zu returned %p, in the page being vacated", i, q[i]);
    }
    for (size_t i = 0; i < SPARE; i++) hak_free(q[i]);
    hak_free(v[keep]); /* its last live block */
    v[keep] = NULL;
    churn_class(64, 256, 4096 + 512);
    hak_debug_stats(&after);
    cr_assert_eq(after.lean_vacated - mid.lean_vacated, 1, "pages vacated: %llu",
                 (unsigned long long)(after.lean_vacated - mid.lean_vacated));
    cr_assert_eq(after.lean_holes - mid.lean_holes, 1);
    if (hak_debug_get_option("SS_MEM_LEAN_DECOMMIT") == 1 || hardened)
        cr_assert_eq(resident_pages(page, page + PAGE), 0, "the vacated page %p is still resident", (void *)page);
    cr_assert(hak_debug_check_thread(&rep), "%s: %s", rep.check, rep.msg);
    cr_assert(hak_debug_check_heap(&rep), "%s: %s", rep.check, rep.msg);
    for (size_t i = 0; i < n; i++)
        if (v[i]) {
            cr_assert(tu_verify(v[i], 0, 850, 300 + i) == SIZE_MAX, "live block %zu changed", i);
            hak_free(v[i]);
        }
    for (size_t i = 0; i < PINS; i++) hak_free(pins[i]);
    for (int i = 0; i < 8; i++) hak_free(g[i]);
    cr_assert(hak_debug_check_heap(&rep), "%s: %s", rep.check, rep.msg);
}

Test(free, null_is_a_no_op) {
    for (int i = 0; i < 1000; i++) hak_free(NULL);
    void *p = hak_malloc(32);
    cr_assert_not_null(p);
    hak_free(NULL);
    memset(p, 1, 32);
    hak_free(p);
}

Test(api, variant_name_matches_build) {
    const char *v = hak_variant();
    cr_assert_not_null(v);
    cr_assert_str_eq(v, HAK_TEST_VARIANT, "hak_variant() = \"%s\" but this build is \"%s\"", v, HAK_TEST_VARIANT);
    const char *m = hak_mode();
    cr_assert(m != NULL && m[0] != '\0', "hak_mode() is empty");
}

/* ------------------------------------------------------------------------------------------------ */
/* Blocks that change threads                                                                         */

typedef struct handoff {
    size_t n;
    void **p;
    size_t *size;
    uint64_t seed;
    int bad; /* set by the thread: index + 1 of a block that failed verification */
} handoff_t;

static void *thread_allocate(void *arg) {
    handoff_t *h = arg;
    uint64_t rng = h->seed;
    for (size_t i = 0; i < h->n; i++) {
        h->size[i] = random_size(&rng);
        h->p[i] = hak_malloc(h->size[i]);
        if (h->p[i] == NULL) {
            h->bad = (int)i + 1;
            return NULL;
        }
        tu_fill(h->p[i], 0, h->size[i], h->seed + i);
    }
    return NULL;
}

static void *thread_verify_and_free(void *arg) {
    handoff_t *h = arg;
    for (size_t i = 0; i < h->n; i++) {
        if (tu_verify(h->p[i], 0, h->size[i], h->seed + i) != SIZE_MAX && h->bad == 0) h->bad = (int)i + 1;
        hak_free(h->p[i]);
    }
    return NULL;
}

/* Blocks allocated in one thread are freed in another, both ways, several rounds (so remote frees
 * have to be drained and the memory reused). */
Test(threads, allocated_here_freed_there) {
    size_t n = tu_scaled(3000, 500);
    handoff_t h = {n, calloc(n, sizeof(void *)), calloc(n, sizeof(size_t)), 0, 0};
    cr_assert(h.p != NULL && h.size != NULL);
    for (int round = 0; round < 6; round++) {
        pthread_t t;
        h.seed = 1000u * (unsigned)round + 1;
        h.bad = 0;
        if (round % 2 == 0) {
            /* worker allocates, this thread verifies and frees */
            cr_assert(pthread_create(&t, NULL, thread_allocate, &h) == 0);
            pthread_join(t, NULL);
            cr_assert(h.bad == 0, "round %d: worker allocation %d failed", round, h.bad - 1);
            thread_verify_and_free(&h);
            cr_assert(h.bad == 0, "round %d: block %d allocated by the worker was corrupted", round, h.bad - 1);
        } else {
            /* this thread allocates, worker verifies and frees */
            thread_allocate(&h);
            cr_assert(h.bad == 0, "round %d: allocation %d failed", round, h.bad - 1);
            cr_assert(pthread_create(&t, NULL, thread_verify_and_free, &h) == 0);
            pthread_join(t, NULL);
            cr_assert(h.bad == 0, "round %d: block %d was corrupted when the worker freed it", round, h.bad - 1);
        }
    }
    /* The heap is still sound for this thread after all that traffic. */
    hak_collect();
    thread_allocate(&h);
    cr_assert(h.bad == 0);
    thread_verify_and_free(&h);
    cr_assert(h.bad == 0, "after the rounds: block %d corrupted", h.bad - 1);
    free(h.p);
    free(h.size);
}
