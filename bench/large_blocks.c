/* bench/large_blocks.c — the large-block workload (after mimalloc-bench's malloc-large): blocks of
 * 5..25 MiB, at most 20 live, each one written on every page. What it measures is whether freed
 * large blocks go back to the kernel and are faulted in again (a minor fault per page) or are
 * reused while still mapped. Prints the run time in seconds (lower is better):
 *   RESULT name=large_blocks ops=<allocations> secs=<s> ... seconds=<s>
 * Each block's first and last byte are checked before it is freed. */
#include "alloc_api.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    hs_common_t c;
    hs_init(&c, "large_blocks", argc, argv);
    uint64_t steps = 500, slots = 20, min_mib = 5, max_mib = 25;
    c.threads = 1;
    if (c.short_mode)
        steps = 40;
    const hs_opt_t opts[] = {
        {"steps", HS_OPT_U64, &steps, "allocations (default 500, --short 40)"},
        {"slots", HS_OPT_U64, &slots, "most live blocks (default 20)"},
        {"min-mib", HS_OPT_U64, &min_mib, "smallest block in MiB (default 5)"},
        {"max-mib", HS_OPT_U64, &max_mib, "largest block in MiB (default 25)"},
        {NULL, HS_OPT_FLAG, NULL, NULL}};
    hs_parse(&c, argc, argv, opts);
    if (slots == 0 || slots > 1024 || min_mib == 0 || max_mib < min_mib) {
        fprintf(stderr, "large_blocks: need 1..1024 slots and 0 < min-mib <= max-mib\n");
        return 2;
    }
    unsigned char **blk = calloc(slots, sizeof *blk);
    size_t *len = calloc(slots, sizeof *len);
    if (blk == NULL || len == NULL)
        hs_fatal("bookkeeping allocation failed");
    hs_rng_t r = hs_rng_make(c.seed, 0, 0);
    double t0 = hs_now();
    for (uint64_t i = 0; i < steps; i++) {
        uint64_t s = hs_rng_below(&r, slots);
        if (blk[s] != NULL) {
            if (blk[s][0] != (unsigned char)s || blk[s][len[s] - 1] != (unsigned char)(s + 1))
                hs_fatal("block %p of %zu bytes did not keep its contents", (void *)blk[s], len[s]);
            S_FREE(blk[s]);
        }
        size_t n = (size_t)hs_rng_range(&r, min_mib << 20, max_mib << 20);
        unsigned char *p = S_MALLOC(n);
        HS_CHECK_ALLOC(p, n);
        for (size_t off = 0; off < n; off += 4096)
            p[off] = (unsigned char)off;
        p[0] = (unsigned char)s;
        p[n - 1] = (unsigned char)(s + 1);
        blk[s] = p;
        len[s] = n;
    }
    double secs = hs_now() - t0;
    for (uint64_t s = 0; s < slots; s++)
        S_FREE(blk[s]);
    free(blk);
    free(len);
    char extra[64];
    snprintf(extra, sizeof extra, " seconds=%.3f", secs);
    hs_report(&c, steps, secs, extra);
    return 0;
}
