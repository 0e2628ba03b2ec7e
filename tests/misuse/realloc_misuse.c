/* realloc of a pointer that is not a live block of ours.
 *
 *   freed_small     free(p); realloc(p, 100) for a 24-byte block
 *   freed_same      free(p); realloc(p, 20): a size that would stay in place
 *   freed_mid       free(p); realloc(p, 10000) for a 3000-byte block
 *   freed_large     free(p); realloc(p, 2 MiB) for a 1 MiB block
 *   interior_small  realloc(p + 16, 100)
 *   interior_large  realloc(p + 4096, 100) of a 1 MiB block
 *   mmap            realloc of the program's own mmap'd page
 *   stack           realloc of a stack array
 *   wild            realloc((void *)0x12345678, 100)
 *   moved_small     q = realloc(p, 4000) moved the block; then realloc(p, 10) of the old pointer
 *   moved_large     q = realloc(p, 8 MiB) moved a 1 MiB block (mremap); then realloc(p, 100)
 */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "misuse.h"

static void rm_realloc_noted(void *p, size_t n, const char *what) {
    mu_note_ptr(p);
    void *q = MU_REALLOC(mu_launder(p), n);
    (void)q;
    mu_missed(what);
}

static void rm_freed(size_t size, size_t n, const char *what) {
    char *p = MU_MALLOC(size);
    if (p == NULL) mu_setup_failed("malloc");
    memset(p, 3, size < 4096 ? size : 4096);
    MU_FREE(p);
    rm_realloc_noted(p, n, what);
}

static void rm_freed_small(int argc, char **argv) {
    (void)argc, (void)argv;
    rm_freed(24, 100, "realloc of a freed 24-byte block");
}

static void rm_freed_same(int argc, char **argv) {
    (void)argc, (void)argv;
    rm_freed(24, 20, "realloc of a freed 24-byte block to 20 bytes");
}

static void rm_freed_mid(int argc, char **argv) {
    (void)argc, (void)argv;
    rm_freed(3000, 10000, "realloc of a freed 3000-byte block");
}

static void rm_freed_large(int argc, char **argv) {
    (void)argc, (void)argv;
    rm_freed(1u << 20, 2u << 20, "realloc of a freed 1 MiB block");
}

static void rm_interior_small(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(64);
    rm_realloc_noted(p + 16, 100, "realloc of p + 16");
}

static void rm_interior_large(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(1u << 20);
    p[0] = 1;
    rm_realloc_noted(p + 4096, 100, "realloc of p + 4096 of a 1 MiB block");
}

static void rm_mmap(int argc, char **argv) {
    (void)argc, (void)argv;
    char *pg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pg == MAP_FAILED) mu_setup_failed("mmap");
    pg[0] = 1;
    rm_realloc_noted(pg, 100, "realloc of the program's own mmap'd page");
}

static void rm_stack(int argc, char **argv) {
    (void)argc, (void)argv;
    char buf[64];
    memset(buf, 1, sizeof buf);
    rm_realloc_noted(buf, 100, "realloc of a stack array");
}

static void rm_wild(int argc, char **argv) {
    (void)argc, (void)argv;
    rm_realloc_noted((void *)(uintptr_t)0x12345678, 100, "realloc of 0x12345678");
}

static void rm_moved(size_t size, size_t grow, size_t n, const char *what) {
    char *p = MU_MALLOC(size);
    if (p == NULL) mu_setup_failed("malloc");
    p[0] = 1;
    char *q = MU_REALLOC(p, grow);
    if (q == NULL) mu_setup_failed("realloc");
    if (q == p) mu_setup_failed("the growing realloc stayed in place");
    q[0] = 2;
    rm_realloc_noted(p, n, what);
}

static void rm_moved_small(int argc, char **argv) {
    (void)argc, (void)argv;
    rm_moved(24, 4000, 10, "realloc of the old pointer after realloc moved a small block");
}

static void rm_moved_large(int argc, char **argv) {
    (void)argc, (void)argv;
    rm_moved(1u << 20, 8u << 20, 100, "realloc of the old pointer after realloc moved a large block");
}

int main(int argc, char **argv) {
    static const mu_variant_t v[] = {
        {"freed_small", rm_freed_small},       {"freed_same", rm_freed_same}, {"freed_mid", rm_freed_mid},
        {"freed_large", rm_freed_large},       {"interior_small", rm_interior_small},
        {"interior_large", rm_interior_large}, {"mmap", rm_mmap},             {"stack", rm_stack},
        {"wild", rm_wild},                     {"moved_small", rm_moved_small}, {"moved_large", rm_moved_large},
    };
    return mu_dispatch(v, MU_COUNT(v), argc, argv);
}
