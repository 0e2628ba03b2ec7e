/* Heap overflow into the next block: the program writes past the usable size of a block, then frees
 * it (or reallocs it, which frees it after the copy). The hardened allocator keeps a canary in the last
 * 8 bytes of each slab block (its first byte zero, so string reads stop there) and checks it at free.
 *
 *   bytes SIZE K     malloc(SIZE), K bytes of 0x41 written from offset malloc_usable_size(p), free
 *   realloc SIZE K   the same, then realloc(p, 4 * SIZE) (moves the block, freeing the old one)
 *   nul SIZE         one zero byte written at malloc_usable_size(p) (an off-by-one string
 *                    terminator): it lands on the canary's zero byte, a documented limit
 */
#define _GNU_SOURCE
#include "misuse.h"

static size_t of_arg(int argc, char **argv, int i, size_t dflt) {
    return argc > i ? (size_t)strtoull(argv[i], NULL, 10) : dflt;
}

static unsigned char *of_overflow(size_t size, size_t k, int byte) {
    unsigned char *p = MU_MALLOC(size);
    if (p == NULL) mu_setup_failed("malloc");
    size_t u = MU_USABLE(p);
    if (u < size) mu_setup_failed("usable size below the requested size");
    memset(p, 0x5a, u);
    mu_note_ptr(p);
    memset((unsigned char *)mu_launder(p) + u, byte, k);
    return p;
}

static void of_bytes(int argc, char **argv) {
    unsigned char *p = of_overflow(of_arg(argc, argv, 2, 24), of_arg(argc, argv, 3, 1), 0x41);
    MU_FREE(p);
    mu_missed("overflow past the usable size, then free");
}

static void of_realloc(int argc, char **argv) {
    size_t size = of_arg(argc, argv, 2, 24);
    unsigned char *p = of_overflow(size, of_arg(argc, argv, 3, 1), 0x41);
    void *q = MU_REALLOC(p, 4 * size);
    (void)q;
    mu_missed("overflow past the usable size, then realloc");
}

static void of_nul(int argc, char **argv) {
    unsigned char *p = of_overflow(of_arg(argc, argv, 2, 24), 1, 0);
    MU_FREE(p);
    mu_missed("one zero byte past the usable size, then free");
}

int main(int argc, char **argv) {
    static const mu_variant_t v[] = {{"bytes", of_bytes}, {"realloc", of_realloc}, {"nul", of_nul}};
    return mu_dispatch(v, MU_COUNT(v), argc, argv);
}
