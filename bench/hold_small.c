/* bench/hold_small.c — a program that keeps many small blocks: --blocks 64-byte blocks (default 4M,
 * 256 MiB) are allocated and written one after the other and all held, then freed. It measures what
 * the allocator's slow paths cost when a thread owns thousands of full slabs and regions: a search
 * that walks them for each new slab turns quadratic (hakmem took 15.6 s for 32M blocks before its
 * full-slab and region lists were bounded; mimalloc about 1 s). Prints the run time in seconds (lower
 * is better):
 *   RESULT name=hold_small ops=<blocks> secs=<s> ... seconds=<s>
 * Every block's first byte is checked before it is freed. */
#include "alloc_api.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    hs_common_t c;
    hs_init(&c, "hold_small", argc, argv);
    uint64_t blocks = 4u << 20, size = 64;
    c.threads = 1;
    if (c.short_mode)
        blocks = 1u << 18;
    const hs_opt_t opts[] = {
        {"blocks", HS_OPT_U64, &blocks, "blocks held at once (default 4M, --short 256K)"},
        {"size", HS_OPT_U64, &size, "bytes per block (default 64)"},
        {NULL, HS_OPT_FLAG, NULL, NULL}};
    hs_parse(&c, argc, argv, opts);
    if (blocks == 0 || size == 0 || size > 65536) {
        fprintf(stderr, "hold_small: need blocks > 0 and 0 < size <= 65536\n");
        return 2;
    }
    unsigned char **blk = malloc(blocks * sizeof *blk);
    if (blk == NULL)
        hs_fatal("bookkeeping allocation failed");
    double t0 = hs_now();
    for (uint64_t i = 0; i < blocks; i++) {
        unsigned char *p = S_MALLOC(size);
        HS_CHECK_ALLOC(p, size);
        p[0] = (unsigned char)i;
        blk[i] = p;
    }
    for (uint64_t i = 0; i < blocks; i++) {
        if (blk[i][0] != (unsigned char)i)
            hs_fatal("block %p did not keep its contents", (void *)blk[i]);
        S_FREE(blk[i]);
    }
    double secs = hs_now() - t0;
    free(blk);
    char extra[64];
    snprintf(extra, sizeof extra, " seconds=%.3f", secs);
    hs_report(&c, blocks, secs, extra);
    return 0;
}
