/* Shared by the misuse programs: each program performs one kind of heap misuse (chosen by argv[1])
 * that the hardened allocator must catch with a fail-fast report and abort().
 *
 * Exit protocol (read by run_misuse.c):
 *   killed by SIGABRT   the allocator caught the misuse (the runner then checks the report line);
 *   exit MU_EXIT_MISSED the misuse was performed and nothing happened: the allocator missed it;
 *   exit MU_EXIT_SETUP  the program could not arrange the heap layout the case needs (a test bug or
 *                       an allocator behaviour the case did not expect; the reason is on stderr);
 *   exit MU_EXIT_UNMAPPED the freed or overflowed memory is not mapped: the write the case would do
 *                       faults, so the misuse cannot corrupt anything (large blocks, guard pages);
 *   exit MU_EXIT_USAGE  unknown variant.
 * On the paths that perform the misuse nothing is printed, so the allocator's report is the only
 * line on stderr.
 *
 * Two builds of each program: plain (calls malloc/free/realloc; run with LD_PRELOAD of the drop-in
 * library) and prefixed (-DMU_PREFIXED: calls hak_*; linked with the prefixed static library, glibc
 * stays the process malloc, which also makes "free of a glibc block" expressible).
 *
 * Environment:
 *   MISUSE_SEED=n    n > 0: a seeded prelude of allocations and frees first, so repeated runs see
 *                    different heap layouts (the secret of the link encoding differs per process anyway);
 *   MISUSE_PTR_FD=n  the program writes the pointer it is about to misuse ("0x...\n") to fd n, so the
 *                    runner can check that the report names that pointer.
 */
#ifndef HAK_TESTS_MISUSE_H
#define HAK_TESTS_MISUSE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef MU_PREFIXED
#include "hakmem.h"
#define MU_MALLOC hak_malloc
#define MU_FREE hak_free
#define MU_REALLOC hak_realloc
#define MU_CALLOC hak_calloc
#define MU_USABLE hak_malloc_usable_size
#define MU_TRIM hak_malloc_trim
#else
#include <malloc.h>
#define MU_MALLOC malloc
#define MU_FREE free
#define MU_REALLOC realloc
#define MU_CALLOC calloc
#define MU_USABLE malloc_usable_size
#define MU_TRIM malloc_trim
#endif

enum { MU_EXIT_USAGE = 2, MU_EXIT_MISSED = 3, MU_EXIT_SETUP = 4, MU_EXIT_UNMAPPED = 5 };

/* Hides a pointer's provenance from the compiler: the misuse must reach the allocator exactly as
 * written (no -Wuse-after-free / -Wfree-nonheap-object folding, no dead-store elimination). */
static inline void *mu_launder(void *p) {
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

static inline uint64_t mu_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Called when the misuse went through without an abort. */
static inline __attribute__((noreturn)) void mu_missed(const char *what) {
    fprintf(stderr, "misuse not detected: %s\n", what);
    fflush(stderr);
    _exit(MU_EXIT_MISSED);
}

static inline __attribute__((noreturn)) void mu_setup_failed(const char *what) {
    fprintf(stderr, "setup failed: %s\n", what);
    fflush(stderr);
    _exit(MU_EXIT_SETUP);
}

/* Whether the page holding p is mapped (msync fails with ENOMEM on an unmapped range). */
static inline int mu_page_mapped(const void *p) {
    uintptr_t pg = (uintptr_t)p & ~(uintptr_t)4095;
    return msync((void *)pg, 4096, MS_ASYNC) == 0;
}

/* Whether the page can be read (a PROT_NONE page cannot: write(2) into a pipe copies from it and
 * fails with EFAULT; /dev/null would not read the buffer at all). */
static inline int mu_page_accessible(const void *p) {
    int fds[2];
    if (pipe(fds) != 0) return 1;
    ssize_t w = write(fds[1], p, 1);
    close(fds[0]);
    close(fds[1]);
    return w == 1;
}

static inline __attribute__((noreturn)) void mu_unmapped(void) { _exit(MU_EXIT_UNMAPPED); }

/* Tells the runner which pointer the report must name (no allocation, no stdio). */
static inline void mu_note_ptr(const void *p) {
    const char *fd_s = getenv("MISUSE_PTR_FD");
    if (fd_s == NULL) return;
    int fd = atoi(fd_s);
    char buf[24];
    uintptr_t v = (uintptr_t)p;
    int n = 0;
    char tmp[20];
    do { tmp[n++] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v);
    size_t k = 0;
    buf[k++] = '0', buf[k++] = 'x';
    while (n > 0) buf[k++] = tmp[--n];
    buf[k++] = '\n';
    ssize_t w = write(fd, buf, k);
    (void)w;
}

/* A seeded prelude: allocations of assorted sizes (tiny, mid, a few large), about half freed again
 * in a shuffled order, the rest kept live. It moves every later block to a seed-dependent place and
 * leaves partially used caches and slabs behind. At most 24 blocks are freed, so a thread cache
 * rarely overflows; the cases do not depend on that either (they loop until the block they misused
 * comes back, wherever the cache flush put it). */
static inline void mu_prelude(void) {
    const char *s = getenv("MISUSE_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : 0;
    if (seed == 0) return;
    uint64_t st = seed * 0x2545F4914F6CDD1Dull;
    enum { N = 48 };
    void *blk[N];
    size_t n = 1 + (size_t)(mu_splitmix64(&st) % N);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = mu_splitmix64(&st);
        size_t size;
        switch (r % 8) {
        case 0: size = 65536 + (size_t)((r >> 8) % (1u << 20)); break; /* large */
        case 1: case 2: size = 1025 + (size_t)((r >> 8) % 64000); break; /* mid */
        default: size = 1 + (size_t)((r >> 8) % 1024); break;             /* tiny */
        }
        blk[i] = MU_MALLOC(size);
        if (blk[i] == NULL) mu_setup_failed("prelude allocation");
        memset(blk[i], (int)(r >> 40), size < 64 ? size : 64);
    }
    for (size_t i = 0; i < n && i < 24; i++) {
        size_t j = (size_t)(mu_splitmix64(&st) % n);
        if (blk[j] != NULL && (mu_splitmix64(&st) & 1)) {
            MU_FREE(blk[j]);
            blk[j] = NULL;
        }
    }
    /* the rest stays live until exit: the layout must persist while the case runs */
}

/* Switches an option on at run time through hak_debug_set_option (the prefixed build links it; the
 * drop-in library exports it). 0 on success. */
#ifdef MU_PREFIXED
#include "hakmem_debug.h"
static inline int mu_set_option(const char *name, const char *value) { return hak_debug_set_option(name, value); }
#else
#include <dlfcn.h>
static inline int mu_set_option(const char *name, const char *value) {
    int (*set)(const char *, const char *) = (int (*)(const char *, const char *))dlsym(RTLD_DEFAULT, "hak_debug_set_option");
    return set ? set(name, value) : -1;
}
#endif

/* Whether the page holding p is resident. */
static inline int mu_page_resident(const void *p) {
    unsigned char v = 0;
    return mincore((void *)((uintptr_t)p & ~(uintptr_t)4095), 4096, &v) == 0 && (v & 1u);
}

/* A free block in a hole (lean mode, src/tiny/tcache.c): a page of the 896-byte class whose blocks
 * are all free while the slab's other blocks stay live, given back when the 1024-byte class (no
 * larger class has free blocks to lend it) grows past its warm-up and no slab has a free tail. The
 * block returned starts inside that page: freed once, held since, its page discarded. */
static inline char *mu_hole_block(void) {
    if (mu_set_option("HAKMEM_SS_MEM_LEAN", "1") != 0 || mu_set_option("HAKMEM_SS_MEM_LEAN_DECOMMIT", "DONTNEED") != 0)
        mu_setup_failed("could not switch lean mode on");
    enum { MAXV = 80 };
    static char *v[MAXV];
    /* a run of 850-byte blocks carved one after the other in one 64 KiB slab unit, all live */
    size_t n = 1, stride = 0;
    v[0] = MU_MALLOC(850);
    while (n < MAXV) {
        char *q = MU_MALLOC(850);
        if (q == NULL) mu_setup_failed("malloc");
        if (n == 1) stride = (size_t)(q - v[0]);
        if (q != v[0] + n * stride || ((uintptr_t)q >> 16) != ((uintptr_t)v[0] >> 16)) break; /* q stays live */
        v[n++] = q;
    }
    if (stride < 850 || n * stride < 8 * 4096) mu_setup_failed("no run of 850-byte blocks in one slab");
    uintptr_t page = ((uintptr_t)v[0] & ~(uintptr_t)4095) + 4 * 4096;
    char *x = NULL;
    for (size_t i = 0; i < n; i++) {
        uintptr_t b = (uintptr_t)v[i];
        if (b < page + 4096 && b + stride > page) {
            if (x == NULL && b >= page) x = v[i];
            MU_FREE(v[i]);
        }
    }
    /* the grower: a page of 1024-byte blocks, then refills of another class (past the warm-up) */
    for (int i = 0; i < 4; i++) (void)mu_launder(MU_MALLOC(1000));
    static void *c[256];
    for (int round = 0; round < 400; round++) {
        for (int i = 0; i < 256; i++) c[i] = MU_MALLOC(64);
        for (int i = 0; i < 256; i++) MU_FREE(c[i]);
    }
    MU_TRIM(0); /* every free tail goes: the page the grower takes must come from a hole */
    for (int i = 0; i < 8 && mu_page_resident(x); i++) (void)mu_launder(MU_MALLOC(1000));
    if (mu_page_resident(x)) mu_setup_failed("the free page of 896-byte blocks is still resident: no hole");
    return x;
}

/* The variant table of one program: name and function; argv[1] picks one. */
typedef struct mu_variant {
    const char *name;
    void (*run)(int argc, char **argv);
} mu_variant_t;

static inline int mu_dispatch(const mu_variant_t *v, size_t n, int argc, char **argv) {
    if (argc >= 2) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(argv[1], v[i].name) == 0) {
                mu_prelude();
                v[i].run(argc, argv);
                return MU_EXIT_MISSED; /* run() ends with mu_missed(); never reached */
            }
        }
    }
    fprintf(stderr, "usage: %s VARIANT   (variants:", argv[0]);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %s", v[i].name);
    fprintf(stderr, ")\n");
    return MU_EXIT_USAGE;
}

#define MU_COUNT(a) (sizeof(a) / sizeof((a)[0]))

#endif
