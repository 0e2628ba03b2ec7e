/* Write after free: the program writes into a block it freed, then allocates the same size until
 * the allocator hands that block out again (plus one more allocation: the one that follows the
 * block's link). The hardened allocator decorates a freed slab block as
 *   | link | marker | fill | fill | ... | canary |     (words 0, 1, 2, 3, ..., last)
 * checks fill and canary when the block is handed out again, and checks the marker (and, through
 * it, the link) when the block leaves a free list.
 *
 *   small        a 64-byte request, one byte written at offset 16 (fill word 2)
 *   small_word   a 64-byte request, 8 zero bytes written at offset 24 (fill word 3)
 *   mid          a 3000-byte request, 4 bytes written at offset 20
 *   link_word    the first 8 bytes (the free-list link) overwritten with zeros: the link decodes to
 *                garbage, caught when the list is followed to it
 *   marker_word  bytes 8..15 (the free marker) overwritten
 *   beyond_fill  a 64-byte request, one byte at offset 40: past the two fill words (a documented
 *                limit of the hardened design)
 *   calloc       write after free, then calloc of the same size hands the block out again
 *   large        a 1 MiB block: freed, written at offset 100 if its page is still mapped (a
 *                BigCache entry), then 1 MiB blocks allocated until it comes back. The hardened
 *                variant fills the first and last 16 KiB of a cached block and checks them at reuse;
 *                the debug variant makes the cached block PROT_NONE
 *   large_middle the same, written at offset 512 KiB: between the watched ends (a documented limit
 *                of the hardened variant)
 *   hole         lean mode: a block of a page given back while its slab is in use (misuse.h
 *                mu_hole_block), written at offset 100; the page must read as zeros when the class
 *                takes it back
 */
#define _GNU_SOURCE
#include "misuse.h"

/* Allocates `size` until p comes back, and once more (by then the allocator must have aborted). The
 * blocks that are not p stay live, so the class's free list drains towards p. */
static void waf_reclaim(void *p, size_t size, int use_calloc, const char *what) {
    for (int i = 0; i < 200000; i++) {
        void *q = use_calloc ? MU_CALLOC(1, size) : MU_MALLOC(size);
        if (q == NULL) mu_setup_failed("allocation failed");
        if (q == p) {
            (void)(use_calloc ? MU_CALLOC(1, size) : MU_MALLOC(size)); /* follows p's link */
            mu_missed(what);
        }
    }
    mu_setup_failed("the freed block never came back in 200000 allocations");
}

static void waf_write(size_t size, size_t off, size_t len, int byte, int use_calloc, const char *what) {
    unsigned char *p = MU_MALLOC(size);
    if (p == NULL) mu_setup_failed("malloc");
    memset(p, 0x5c, size);
    mu_note_ptr(p);
    MU_FREE(p);
    memset((unsigned char *)mu_launder(p) + off, byte, len);
    waf_reclaim(p, size, use_calloc, what);
}

static void waf_small(int argc, char **argv) {
    (void)argc, (void)argv;
    waf_write(64, 16, 1, 0x41, 0, "one byte written at offset 16 of a freed 64-byte block");
}

static void waf_small_word(int argc, char **argv) {
    (void)argc, (void)argv;
    waf_write(64, 24, 8, 0x00, 0, "8 zero bytes written at offset 24 of a freed 64-byte block");
}

static void waf_mid(int argc, char **argv) {
    (void)argc, (void)argv;
    waf_write(3000, 20, 4, 0x7f, 0, "4 bytes written at offset 20 of a freed 3000-byte block");
}

static void waf_link_word(int argc, char **argv) {
    (void)argc, (void)argv;
    waf_write(64, 0, 8, 0x00, 0, "free-list link of a freed block zeroed");
}

static void waf_marker_word(int argc, char **argv) {
    (void)argc, (void)argv;
    waf_write(64, 8, 8, 0x33, 0, "free marker of a freed block overwritten");
}

static void waf_beyond_fill(int argc, char **argv) {
    (void)argc, (void)argv;
    waf_write(64, 40, 1, 0x41, 0, "one byte written at offset 40 of a freed 64-byte block");
}

static void waf_calloc(int argc, char **argv) {
    (void)argc, (void)argv;
    waf_write(64, 24, 1, 0x41, 1, "write after free, block handed out again by calloc");
}

static void waf_large_at(size_t off) {
    size_t size = 1u << 20;
    unsigned char *p = MU_MALLOC(size);
    if (p == NULL) mu_setup_failed("malloc");
    memset(p, 0x5c, 4096);
    mu_note_ptr(p);
    MU_FREE(p);
    if (!mu_page_mapped(p + off) || !mu_page_accessible(p + off)) mu_unmapped(); /* the write would fault */
    ((unsigned char *)mu_launder(p))[off] = 0x41;
    for (int i = 0; i < 64; i++) {
        void *q = MU_MALLOC(size);
        if (q == NULL) mu_setup_failed("malloc");
        if (q == p) mu_missed("write after free of a 1 MiB block kept in the BigCache");
    }
    mu_missed("write after free of a 1 MiB block (its mapping stayed writable)");
}

static void waf_large(int argc, char **argv) {
    (void)argc, (void)argv;
    waf_large_at(100);
}

static void waf_large_middle(int argc, char **argv) {
    (void)argc, (void)argv;
    waf_large_at(512u << 10);
}

static void waf_hole(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = mu_hole_block();
    mu_note_ptr(p);
    memset((char *)mu_launder(p) + 100, 0x41, 1);
    waf_reclaim(p, 850, 0, "a write into a block of a page lean mode gave back");
}

int main(int argc, char **argv) {
    static const mu_variant_t v[] = {
        {"small", waf_small},         {"small_word", waf_small_word},   {"mid", waf_mid},
        {"link_word", waf_link_word}, {"marker_word", waf_marker_word}, {"beyond_fill", waf_beyond_fill},
        {"calloc", waf_calloc},       {"large", waf_large},             {"large_middle", waf_large_middle},
        {"hole", waf_hole},
    };
    return mu_dispatch(v, MU_COUNT(v), argc, argv);
}
