/* The glibc oracle: hakmem agrees with glibc on programs that probe the documented corner cases; a
 * fake allocator that differs from glibc in what a caller can see is caught as oracle.null /
 * oracle.errno; the fuzz entry point runs clean on random inputs. */
#include "test_runner.h" /* criterion, or its compatible runner under TSan */
#include <errno.h>
#include <string.h>

#include "vt_util.h"

static hk_prog_t parse(const char *src)
{
    hk_prog_t p;
    hk_prog_init(&p);
    char err[256];
    cr_assert_eq(hk_prog_parse_text(&p, src, strlen(src), err, sizeof err), 0, "%s", err);
    return p;
}

static const char *oracle(const hk_backend_t *test, const char *src, int strict, hk_verify_failure_t *f)
{
    hk_prog_t p = parse(src);
    hk_oracle_opts_t o = {.interp = {.flags = HK_CHECK_ALL}, .strict = strict, .test = test};
    int bad = hk_oracle_run(&p, &o, 0, f);
    hk_prog_free(&p);
    if (bad) {
        hk_verify_failure_print(stderr, f);
        return f->check;
    }
    return "";
}

/* ---- hakmem against glibc -------------------------------------------------------------------- */

static const char *const semantic_programs[] = {
    /* zero sizes: malloc(0) is a block; realloc(p, 0) frees (glibc); realloc(NULL, 0) is malloc(0) */
    "alloc 0 0\nusable 0\nrealloc 0 0\nrealloc 1 0\nfree 1\ncalloc 2 0 8\ncalloc 3 8 0\nreallocarray 4 0 9\n"
    "alloc 5 10\nreallocarray 5 0 9\n",
    /* impossible sizes: ENOMEM, the old block survives a failed realloc */
    "alloc 0 0xffffffffffffffff\nalloc 1 0x7fffffffffffffff\nalloc 2 0x8000000000000000\n"
    "calloc 3 0xffffffffffffffff 2\ncalloc 4 0x100000000 0x100000000\ncalloc 5 0 0xffffffffffffffff\n"
    "realloc 6 0xffffffffffffffff\nalloc 7 64\nrealloc 7 0xffffffffffffffff\nusable 7\n"
    "reallocarray 7 0x100000000 0x100000000\nrealloc 7 0xfffffffffffff000\nfree 7\n",
    /* alignments: memalign rounds a bad alignment up; posix_memalign says EINVAL */
    "memalign 0 3 10\nmemalign 1 0 10\nmemalign 2 24 100\nmemalign 3 0x8000000000000000 1\n"
    "memalign 4 0x8000000000000001 1\nmemalign 5 1 1\nmemalign 6 2 1\nmemalign 7 4096 4096\n"
    "memalign 8 65536 100\nmemalign 9 1M 5\n",
    "posix_memalign 0 0 10\nposix_memalign 1 4 10\nposix_memalign 2 24 10\nposix_memalign 3 8 10\n"
    "posix_memalign 4 4096 0xffffffffffffffff\nposix_memalign 5 0x8000000000000000 8\nposix_memalign 6 64 0\n"
    "posix_memalign 7 2M 100\n",
    "aligned_alloc 0 16 10\naligned_alloc 1 64 64\naligned_alloc 2 4096 100\naligned_alloc 3 8 3\n"
    "valloc 4 0xffffffffffffffff\npvalloc 5 0xffffffffffffffff\nvalloc 6 0\npvalloc 7 0\nvalloc 8 5000\n"
    "pvalloc 9 5000\n",
    /* realloc across every size range, in both directions, contents checked by the shadows */
    "alloc 0 1\nrealloc 0 8\nrealloc 0 17\nrealloc 0 1000\nrealloc 0 1025\nrealloc 0 30000\n"
    "realloc 0 70000\nrealloc 0 3M\nrealloc 0 2M\nrealloc 0 65536\nrealloc 0 100\nrealloc 0 3\n"
    "calloc 1 10 100\nrealloc 1 100000\nrealloc 1 500\nusable 1\ncheck\n",
    /* options: switching modes and caps between ops changes speed, never answers */
    "set mode learning\nalloc 0 100\nset tiny_cap 1\nfree 0\nalloc 0 40\nset mode tight\n"
    "set bigcache 0\nalloc 1 200000\nfree 1\nset bigcache 1\nalloc 1 200000\nset mode lean\ncheck\n"
    "set mode minimal\nset thp on\nalloc 2 2M\nset mode fast\ncheck\n",
};

Test(oracle, hakmem_agrees_with_glibc_on_the_corner_cases)
{
    hk_verify_failure_t f;
    for (size_t i = 0; i < sizeof semantic_programs / sizeof semantic_programs[0]; i++)
        cr_expect_str_eq(oracle(NULL, semantic_programs[i], 1, &f), "", "program %zu", i);
}

Test(oracle, glibc_agrees_with_itself)
{
    /* Calibration: the framework must not see differences where there are none. */
    hk_verify_failure_t f;
    for (size_t i = 0; i < sizeof semantic_programs / sizeof semantic_programs[0]; i++)
        cr_assert_str_eq(oracle(&hk_backend_glibc, semantic_programs[i], 1, &f), "", "program %zu", i);
}

Test(oracle, fuzz_inputs_run_clean)
{
    uint64_t s = 21;
    uint8_t buf[256];
    hk_verify_opts_t o;
    hk_verify_opts_default(&o);
    o.flags |= HK_VERIFY_STRICT;
    for (int it = 0; it < 300; it++) {
        size_t n = 16 + vt_next(&s) % (sizeof buf - 16);
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)vt_next(&s);
        hk_verify_failure_t f;
        int bad = hk_verify_run_bytes(buf, n, &o, &f);
        if (bad) {
            hk_verify_failure_print(stderr, &f);
            hk_prog_t p;
            hk_prog_init(&p);
            hk_prog_from_fuzz(&p, buf, n);
            hk_prog_print_text(stderr, &p);
            hk_prog_free(&p);
        }
        cr_assert_eq(bad, 0, "input %d: %s %s", it, f.check, f.msg);
    }
}

/* ---- a fake that differs from glibc ----------------------------------------------------------- */

/* Built on the glibc backend (libc.so.6's own functions in sanitizer builds, where the process malloc
 * is the sanitizer's and aborts on impossible sizes). */
static int quirk;
#define G hk_backend_glibc
enum { Q_MALLOC0_NULL = 1, Q_EINVAL_FOR_ENOMEM, Q_ALIGNED_ALLOC_STRICT, Q_REALLOC0_KEEPS };

static void *q_malloc(size_t s)
{
    if (quirk == Q_MALLOC0_NULL && s == 0)
        return NULL;
    void *p = G.malloc_fn(s);
    if (!p && quirk == Q_EINVAL_FOR_ENOMEM)
        errno = EINVAL;
    return p;
}

static void *q_realloc(void *p, size_t s)
{
    if (quirk == Q_REALLOC0_KEEPS && p && s == 0)
        return G.realloc_fn(p, 1);
    return G.realloc_fn(p, s);
}

static void *q_aligned_alloc(size_t a, size_t s)
{
    if (quirk == Q_ALIGNED_ALLOC_STRICT && (!a || (a & (a - 1)) || s % a))
        return errno = EINVAL, NULL;
    return G.aligned_alloc_fn(a, s);
}

static hk_backend_t quirky;

static void use_quirk(int q)
{
    quirk = q;
    quirky = hk_backend_glibc;
    quirky.name = "quirky";
    quirky.malloc_fn = q_malloc;
    quirky.realloc_fn = q_realloc;
    quirky.aligned_alloc_fn = q_aligned_alloc;
}

Test(oracle, malloc_zero_returning_null_is_caught)
{
    hk_verify_failure_t f;
    use_quirk(Q_MALLOC0_NULL);
    cr_assert_str_eq(oracle(&quirky, "alloc 0 10\nalloc 1 0\n", 0, &f), "oracle.null");
    cr_assert_eq(f.op_index, 1);
    cr_assert_str_eq(f.backend, "oracle");
    cr_assert_eq(f.id, 1);
}

Test(oracle, wrong_errno_is_caught)
{
    hk_verify_failure_t f;
    use_quirk(Q_EINVAL_FOR_ENOMEM);
    cr_assert_str_eq(oracle(&quirky, "alloc 0 10\nalloc 1 0xffffffffffffffff\n", 0, &f), "oracle.errno");
    cr_assert_eq(f.op_index, 1);
    cr_assert(strstr(f.msg, "EINVAL") && strstr(f.msg, "ENOMEM"), "%s", f.msg);
}

Test(oracle, realloc_zero_keeping_the_block_is_caught)
{
    hk_verify_failure_t f;
    use_quirk(Q_REALLOC0_KEEPS);
    cr_assert_str_eq(oracle(&quirky, "alloc 0 10\nrealloc 0 0\n", 0, &f), "oracle.null");
    cr_assert_eq(f.op_index, 1);
}

Test(oracle, strict_aligned_alloc_is_tolerated_unless_strict)
{
    hk_verify_failure_t f;
    use_quirk(Q_ALIGNED_ALLOC_STRICT);
    const char *src = "aligned_alloc 0 24 100\nusable 0\nfree 0\naligned_alloc 1 16 10\nrealloc 1 20\n"
                      "aligned_alloc 2 64 64\n";
    cr_assert_str_eq(oracle(&quirky, src, 0, &f), "", "C11 allows EINVAL for a bad alignment");
    cr_assert_str_eq(oracle(&quirky, src, 1, &f), "oracle.null");
    cr_assert_eq(f.op_index, 0);
}

Test(oracle, compare_rules)
{
    hk_op_t op = {.kind = HK_OP_ALLOC, .id = 0, .size = 8};
    hk_op_result_t a = {.status = HK_RES_OK, .usable = 8, .align_ok = 1};
    hk_op_result_t b = {.status = HK_RES_OK, .usable = 24, .align_ok = 1};
    int tol;
    cr_assert_eq(hk_oracle_compare(&op, &a, &b, 1, &tol, NULL), 0, "usable sizes are the allocator's business");
    b.status = HK_RES_FAIL;
    b.err = ENOMEM;
    cr_assert_eq(hk_oracle_compare(&op, &a, &b, 1, &tol, NULL), 1);
    a = b;
    a.err = EINVAL;
    cr_assert_eq(hk_oracle_compare(&op, &a, &b, 1, &tol, NULL), 1);
    op.kind = HK_OP_SET;
    cr_assert_eq(hk_oracle_compare(&op, &a, &b, 1, &tol, NULL), 0, "options exist on one side only");
}
