/* Invalid free: a pointer that is not the start of a live block of ours.
 *
 *   interior_small    p + 16 of a 64-byte block
 *   interior_odd      p + 1 of a 24-byte block
 *   interior_mid      p + 2048 of a 5000-byte block
 *   interior_large    p + 4096 of a 1 MiB block
 *   interior_large_odd p + 100 of a 1 MiB block
 *   stack             a local array
 *   wild              (void *)0x12345678
 *   unmapped          a page the program mapped and unmapped again
 *   noncanonical      0xdead000000000000 (no user address on x86-64 / aarch64 looks like this)
 *   mmap              a page the program mapped itself (foreign memory)
 *   region_header     the start of the 2 MiB region a small block lives in (allocator metadata)
 *   slab_tail         inside the slab's unit but past its last block (1280-byte class: 51 blocks
 *                     fill 65280 of the 65536 bytes)
 *   uncarved          a block start of a slab that the slab has not carved yet (the last block of a
 *                     224-byte slab when one block was asked for)
 *   trimmed_tail      a block freed, its slab's free tail given back by malloc_trim (the block is
 *                     uncarved again), then freed a second time
 *   glibc             a block from glibc's malloc (prefixed build only: glibc is the process malloc)
 */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "misuse.h"

static void mu_free_noted(void *p, const char *what) {
    mu_note_ptr(p);
    MU_FREE(mu_launder(p));
    mu_missed(what);
}

static void if_interior_small(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(64);
    memset(p, 0, 64);
    mu_free_noted(p + 16, "free of p + 16");
}

static void if_interior_odd(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(24);
    mu_free_noted(p + 1, "free of p + 1");
}

static void if_interior_mid(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(5000);
    mu_free_noted(p + 2048, "free of p + 2048 of a mid block");
}

static void if_interior_large(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(1u << 20);
    p[0] = 1;
    mu_free_noted(p + 4096, "free of p + 4096 of a 1 MiB block");
}

static void if_interior_large_odd(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(1u << 20);
    p[0] = 1;
    mu_free_noted(p + 100, "free of p + 100 of a 1 MiB block");
}

static void if_stack(int argc, char **argv) {
    (void)argc, (void)argv;
    char buf[64];
    memset(buf, 0, sizeof buf);
    mu_free_noted(buf, "free of a stack array");
}

static void if_wild(int argc, char **argv) {
    (void)argc, (void)argv;
    mu_free_noted((void *)(uintptr_t)0x12345678, "free of 0x12345678");
}

static void if_unmapped(int argc, char **argv) {
    (void)argc, (void)argv;
    void *pg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pg == MAP_FAILED) mu_setup_failed("mmap");
    munmap(pg, 4096);
    mu_free_noted(pg, "free of a pointer into an unmapped page");
}

static void if_noncanonical(int argc, char **argv) {
    (void)argc, (void)argv;
    mu_free_noted((void *)(uintptr_t)0xdead000000000000ull, "free of a non-canonical pointer");
}

static void if_mmap(int argc, char **argv) {
    (void)argc, (void)argv;
    char *pg = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pg == MAP_FAILED) mu_setup_failed("mmap");
    pg[0] = 1;
    mu_free_noted(pg, "free of the program's own mmap'd page");
}

static void if_region_header(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(24);
    void *region = (void *)((uintptr_t)p & ~(uintptr_t)((2u << 20) - 1));
    mu_free_noted(region, "free of the region header");
}

static void if_slab_tail(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(1200); /* 1280-byte class (with the 8-byte canary: 1208 B) */
    uintptr_t unit = (uintptr_t)p & ~(uintptr_t)0xffff;
    mu_free_noted((void *)(unit + 65280 + 64), "free past the last block of a slab");
}

static void if_uncarved(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(200); /* 224-byte class (208 B with the canary): 292 blocks per 64 KiB slab */
    size_t bs = MU_USABLE(p) + 8;
    uintptr_t unit = (uintptr_t)p & ~(uintptr_t)0xffff;
    mu_free_noted((void *)(unit + (65536 / bs - 1) * bs), "free of a block the slab has not carved");
}

static void if_trimmed_tail(int argc, char **argv) {
    (void)argc, (void)argv;
    enum { N = 64 };
    char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = MU_MALLOC(700);
        if (p[i] == NULL) mu_setup_failed("malloc");
        memset(p[i], 0x11, 700);
    }
    /* The highest block: past every other one of its slab (blocks are carved in address order). */
    int top = 0;
    for (int i = 1; i < N; i++)
        if (p[i] > p[top] && ((uintptr_t)p[i] >> 16) == ((uintptr_t)p[0] >> 16)) top = i;
    for (int i = 0; i < N; i++)
        if (i != 0) MU_FREE(p[i]);
    (void)MU_TRIM(0); /* p[0] stays live: the slab stays and its free tail becomes uncarved */
    mu_free_noted(p[top], "second free of a block whose slab tail was trimmed");
}

#ifdef MU_PREFIXED
static void if_glibc(int argc, char **argv) {
    (void)argc, (void)argv;
    char *g = malloc(32); /* glibc's: the prefixed library leaves the process malloc alone */
    if (g == NULL) mu_setup_failed("glibc malloc");
    mu_free_noted(g, "hak_free of a glibc block");
}
#endif

int main(int argc, char **argv) {
    static const mu_variant_t v[] = {
        {"interior_small", if_interior_small}, {"interior_odd", if_interior_odd},
        {"interior_mid", if_interior_mid},     {"interior_large", if_interior_large},
        {"interior_large_odd", if_interior_large_odd}, {"stack", if_stack},
        {"wild", if_wild},                     {"unmapped", if_unmapped},
        {"noncanonical", if_noncanonical},     {"mmap", if_mmap},
        {"region_header", if_region_header},   {"slab_tail", if_slab_tail},
        {"uncarved", if_uncarved},             {"trimmed_tail", if_trimmed_tail},
#ifdef MU_PREFIXED
        {"glibc", if_glibc},
#endif
    };
    return mu_dispatch(v, MU_COUNT(v), argc, argv);
}
