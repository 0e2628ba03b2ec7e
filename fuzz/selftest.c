/* fuzz_selftest: checks the assumptions the harnesses rest on, against this build of hakmem.
 *
 *  1. Content patterns per size class: the shadow heap's pattern seed mixes (id, generation, size
 *     bucket). For one (id, generation), the requests that fill each hakmem class exactly (its class
 *     size) must get pairwise different patterns, so a block handed to the wrong class never reads
 *     right; and any two (id, generation) pairs must differ for one size. Requests of two classes that
 *     share a bucket (the bucket is floor-based on the request, the classes ceiling-based: 8 | 9) are
 *     counted and printed: two live blocks still never share a pattern, since ids and generations
 *     differ.
 *  2. fuzz_tiny's shaping keeps every block it allocates in a tiny class (C0..C20): random programs are
 *     shaped and run step by step on hakmem, and hak_debug_block_info classifies each block.
 *  3. The turnstile is deterministic: random multi-thread programs run twice under the oracle give the
 *     same observable result for every op (hakmem: status, errno, usable size, alignment; glibc: all
 *     but the usable size, which depends on its heap's history), which is what lets a fuzz_mt crash
 *     reproduce from its file alone.
 * Exit 0 when all hold, 1 otherwise (each failure printed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fz.h"
#include "hakmem_debug.h"

static int failures;

#define FAILF(...)                                                                                           \
    do {                                                                                                     \
        fprintf(stderr, "selftest: FAIL: " __VA_ARGS__);                                                     \
        failures++;                                                                                          \
    } while (0)

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct seed_cls {
    uint64_t seed;
    int cls;
    uint32_t size;
} seed_cls_t;

static int cmp_seed(const void *a, const void *b)
{
    const seed_cls_t *x = a, *y = b;
    return x->seed < y->seed ? -1 : x->seed > y->seed ? 1 : x->size < y->size ? -1 : x->size > y->size;
}

static void check_patterns(void)
{
    int nc = hak_debug_class_count();
    for (int a = 0; a < nc; a++) {
        for (int b = a + 1; b < nc; b++) {
            size_t sa = hak_debug_class_size(a), sb = hak_debug_class_size(b);
            uint64_t xa = hk_shadow_pattern_seed(5, 1, sa), xb = hk_shadow_pattern_seed(5, 1, sb);
            uint8_t pa[16], pb[16];
            hk_shadow_pattern_fill(xa, pa, 0, sizeof pa);
            hk_shadow_pattern_fill(xb, pb, 0, sizeof pb);
            if (xa == xb || memcmp(pa, pb, sizeof pa) == 0)
                FAILF("classes C%d (%zu B) and C%d (%zu B) get the same content pattern\n", a, sa, b, sb);
        }
    }
    /* every request size up to the largest class: which bucket-sharing pairs straddle two classes */
    size_t max = hak_debug_class_size(nc - 1);
    seed_cls_t *v = malloc(max * sizeof *v);
    for (size_t s = 1; s <= max; s++)
        v[s - 1] = (seed_cls_t){hk_shadow_pattern_seed(5, 1, s), hak_debug_size_to_class(s), (uint32_t)s};
    qsort(v, max, sizeof *v, cmp_seed);
    size_t shared = 0;
    for (size_t i = 1; i < max; i++) {
        if (v[i].seed == v[i - 1].seed && v[i].cls != v[i - 1].cls) {
            if (shared < 6)
                fprintf(stderr, "selftest: note: requests %u (C%d) and %u (C%d) share a pattern bucket\n",
                        v[i - 1].size, v[i - 1].cls, v[i].size, v[i].cls);
            shared++;
        }
    }
    fprintf(stderr, "selftest: %zu adjacent request sizes in different classes share a bucket (of %zu sizes); "
                    "class sizes never do\n", shared, max);
    free(v);
    /* (id, generation) always matters */
    uint64_t r = 7;
    for (int k = 0; k < 100000; k++) {
        uint32_t id = (uint32_t)(rng(&r) % 64), gen = (uint32_t)(rng(&r) % 1000);
        uint32_t id2 = (uint32_t)(rng(&r) % 64), gen2 = (uint32_t)(rng(&r) % 1000);
        uint64_t size = 1 + rng(&r) % 70000;
        if ((id != id2 || gen != gen2) && hk_shadow_pattern_seed(id, gen, size) == hk_shadow_pattern_seed(id2, gen2, size))
            FAILF("ids %u/%u gen %u/%u share a pattern at size %llu\n", id, id2, gen, gen2, (unsigned long long)size);
    }
}

static void check_tiny_shaping(void)
{
    uint64_t r = 11;
    hk_prog_t prog;
    hk_prog_init(&prog);
    uint8_t in[600];
    size_t blocks = 0;
    for (int k = 0; k < 300; k++) {
        size_t n = 1 + rng(&r) % sizeof in;
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)rng(&r);
        if (hk_prog_from_fuzz(&prog, in, n) != 0) {
            FAILF("out of memory decoding\n");
            return;
        }
        fz_shape_tiny(&prog);
        hk_interp_t it;
        hk_interp_opts_t io = {.flags = HK_CHECK_ALL};
        if (hk_interp_init(&it, &prog, &hk_backend_hakmem, &io) != 0) {
            FAILF("out of memory\n");
            return;
        }
        hk_verify_failure_t f;
        for (size_t i = 0; i < prog.n; i++) {
            hk_op_result_t res;
            if (hk_interp_step(&it, i, 0, &res, &f)) {
                hk_verify_failure_print(stderr, &f);
                FAILF("tiny program %d failed a check\n", k);
                break;
            }
            if (res.status == HK_RES_OK && res.ptr && hk_op_allocates(prog.ops[i].kind)) {
                hak_block_info_t bi;
                blocks++;
                if (hak_debug_block_info(res.ptr, &bi) != HAK_BLOCK_SLAB || bi.cls < 0 || bi.class_size > 1024) {
                    char t[160];
                    hk_op_format(&prog.ops[i], t, sizeof t);
                    FAILF("fuzz_tiny shaping let '%s' reach class %d (kind %d)\n", t, bi.cls, (int)bi.kind);
                }
            }
        }
        if (hk_interp_finish(&it, &f)) {
            hk_verify_failure_print(stderr, &f);
            FAILF("tiny program %d failed its end checks\n", k);
        }
        hk_interp_destroy(&it);
    }
    fprintf(stderr, "selftest: fuzz_tiny shaping: %zu blocks from 300 random programs, all tiny-class (max request %llu)\n",
            blocks, (unsigned long long)fz_tiny_max_request());
    hk_prog_free(&prog);
}

static void check_turnstile_determinism(void)
{
    uint64_t r = 13;
    hk_prog_t prog;
    hk_prog_init(&prog);
    uint8_t in[400];
    int runs = 0;
    for (int k = 0; k < 40; k++) {
        size_t n = 40 + rng(&r) % (sizeof in - 40);
        for (size_t i = 0; i < n; i++) {
            in[i] = (uint8_t)rng(&r);
            if (i % 5 == 0 && rng(&r) % 3 == 0)
                in[i] = 25; /* a THREAD selector: switch threads often */
        }
        if (hk_prog_from_fuzz(&prog, in, n) != 0)
            return;
        fz_prog_drop(&prog, 1u << HK_OP_SET);
        hk_op_result_t *res[2][2];
        for (int run = 0; run < 2; run++)
            for (int s = 0; s < 2; s++)
                res[run][s] = calloc(prog.n ? prog.n : 1, sizeof(hk_op_result_t));
        int bad[2];
        for (int run = 0; run < 2; run++) {
            hk_oracle_opts_t oo;
            memset(&oo, 0, sizeof oo);
            oo.interp.flags = HK_CHECK_ALL;
            oo.test_results = res[run][0];
            oo.ref_results = res[run][1];
            hk_verify_failure_t f;
            bad[run] = hk_oracle_run(&prog, &oo, 1, &f);
            if (bad[run]) {
                hk_verify_failure_print(stderr, &f);
                FAILF("threaded program %d failed a check\n", k);
            }
        }
        if (!bad[0] && !bad[1]) {
            runs++;
            for (size_t i = 0; i < prog.n; i++)
                for (int s = 0; s < 2; s++) {
                    const hk_op_result_t *x = &res[0][s][i], *y = &res[1][s][i];
                    /* glibc's usable size depends on its heap's history (arenas, split remainders),
                     * which earlier runs changed: compare what it owes, hakmem's class sizes fully */
                    int same = s ? x->status == y->status && x->err == y->err && x->align_ok == y->align_ok
                                 : hk_op_result_same(x, y);
                    if (!same)
                        FAILF("threaded program %d op %zu: two runs differ on the %s side\n", k, i, s ? "glibc" : "hakmem");
                }
        }
        for (int run = 0; run < 2; run++)
            for (int s = 0; s < 2; s++)
                free(res[run][s]);
    }
    fprintf(stderr, "selftest: turnstile: %d threaded programs ran twice with identical per-op results\n", runs);
    hk_prog_free(&prog);
}

int main(void)
{
    hk_interp_libc_ensure();
    check_patterns();
    check_tiny_shaping();
    check_turnstile_determinism();
    if (failures)
        fprintf(stderr, "selftest: %d failure(s)\n", failures);
    else
        fprintf(stderr, "selftest: ok\n");
    return failures ? 1 : 0;
}
