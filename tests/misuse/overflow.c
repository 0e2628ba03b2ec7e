/* Heap overflow into the next block: the program writes past the usable size of a block, then frees
 * it (or reallocs it, which frees it after the copy). The hardened allocator keeps a canary in the last
 * 8 bytes of each slab block (its first byte zero, so string reads stop there) and checks it at free.
 *
 *   bytes SIZE K     malloc(SIZE), K bytes of 0x41 written from offset malloc_usable_size(p), free
 *   realloc SIZE K   the same, then realloc(p, 4 * SIZE) (moves the block, freeing the old one)
 *   nul SIZE         one zero byte written at malloc_usable_size(p) (an off-by-one string
 *                    terminator): it lands on the canary's zero byte, a documented limit
 *   underflow        two neighbouring 24-byte blocks a, b: 8 bytes written just before b (a's
 *                    canary), then free(a): the report names a, the block whose canary was hit
 *   large            eight 1 MiB blocks; for two whose mappings are adjacent, 8 bytes are written
 *                    past the lower one's usable size (into the upper block) and both are freed.
 *                    Large blocks have no canary; a guard page would make the write fault instead
 *                    (exit MU_EXIT_UNMAPPED when the page past a block is not mapped)
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

static void of_underflow(int argc, char **argv) {
    (void)argc, (void)argv;
    enum { N = 16 };
    unsigned char *blk[N];
    for (int i = 0; i < N; i++) blk[i] = MU_MALLOC(24);
    /* neighbours: b starts right after a's block (usable bytes plus the 8-byte canary) */
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < N; j++) {
            unsigned char *a = blk[i], *b = blk[j];
            if (b != a + MU_USABLE(a) + 8) continue;
            mu_note_ptr(a);
            memset((unsigned char *)mu_launder(b) - 8, 0x41, 8);
            MU_FREE(a);
            mu_missed("8 bytes written before a block (into its neighbour's canary), then free of the neighbour");
        }
    }
    mu_setup_failed("no two neighbouring 24-byte blocks among 16 allocations");
}

static void of_large(int argc, char **argv) {
    (void)argc, (void)argv;
    enum { N = 8 };
    size_t size = 1u << 20;
    unsigned char *blk[N];
    for (int i = 0; i < N; i++)
        if ((blk[i] = MU_MALLOC(size)) == NULL) mu_setup_failed("malloc");
    /* Mappings usually stack up next to each other: find a block whose end is another's start. */
    for (int i = 0; i < N; i++) {
        size_t u = MU_USABLE(blk[i]);
        for (int j = 0; j < N; j++) {
            if (blk[i] + u != blk[j]) continue;
            mu_note_ptr(blk[i]);
            memset((unsigned char *)mu_launder(blk[i]) + u, 0x41, 8);
            MU_FREE(blk[i]);
            MU_FREE(blk[j]);
            mu_missed("8 bytes written past a 1 MiB block into the adjacent one");
        }
        if (!mu_page_mapped(blk[i] + u)) mu_unmapped();
    }
    mu_setup_failed("no two 1 MiB blocks are adjacent and every block is followed by a foreign mapping");
}

int main(int argc, char **argv) {
    static const mu_variant_t v[] = {{"bytes", of_bytes}, {"realloc", of_realloc}, {"nul", of_nul}, {"underflow", of_underflow},
                                     {"large", of_large}};
    return mu_dispatch(v, MU_COUNT(v), argc, argv);
}
