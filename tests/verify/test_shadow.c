/* The shadow heap and the interpreter on programs with known outcomes: clean programs pass on glibc,
 * hakmem and a fake allocator; each planted bug in the fake is caught under the right check name. */
#include "test_runner.h" /* criterion, or its compatible runner under TSan */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "vt_util.h"

/* ---- a fake allocator with plantable bugs ------------------------------------------------------
 * Bump allocation from a private mapping; each block has a 16-byte header holding its size; free
 * does nothing (addresses never repeat, so a planted overlap is the only overlap). */
enum fault {
    F_NONE, F_OVERLAP, F_REALLOC_CORRUPT, F_MISALIGN, F_USABLE_SHORT, F_FREE_SCRIBBLE, F_CALLOC_DIRTY,
    F_SLL, F_HEAP, F_USABLE_DRIFT, F_CORRUPT_LIVE,
};
static enum fault fault;
static unsigned fault_after; /* the fault fires on the call after this many calls of its kind */
static unsigned calls;
static uint8_t *arena, *bump, *last;

static void fake_reset(enum fault f, unsigned after)
{
    if (!arena) {
        arena = mmap(NULL, 256u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        cr_assert_neq(arena, MAP_FAILED);
    }
    bump = arena;
    last = NULL;
    fault = f;
    fault_after = after;
    calls = 0;
}

static int fires(enum fault f)
{
    return fault == f && ++calls > fault_after;
}

static void *carve(size_t size, size_t align)
{
    if (size > (64u << 20) || align > (1u << 22))
        return errno = ENOMEM, NULL;
    if (align < 16)
        align = 16;
    uintptr_t p = ((uintptr_t)bump + 16 + align - 1) & ~(uintptr_t)(align - 1);
    ((uint64_t *)p)[-1] = size;
    bump = (uint8_t *)(p + ((size + 15) & ~(size_t)15));
    last = (uint8_t *)p;
    return (void *)p;
}

static size_t fake_usable(void *p)
{
    size_t s = ((uint64_t *)p)[-1];
    if (fault == F_USABLE_SHORT && s > 1)
        return s - 1;
    if (fault == F_USABLE_DRIFT && fires(F_USABLE_DRIFT))
        return s + 16;
    return s;
}

static void *fake_malloc(size_t s)
{
    if (last && fires(F_OVERLAP)) {
        void *p = last + 16; /* inside the previous block */
        ((uint64_t *)p)[-1] = s;
        return p;
    }
    return carve(s, 16);
}

static void fake_free(void *p)
{
    if (p && fault == F_FREE_SCRIBBLE && fires(F_FREE_SCRIBBLE)) {
        size_t s = ((uint64_t *)p)[-1];
        memset((uint8_t *)p + ((s + 15) & ~(size_t)15) + 16, 0xEE, 8); /* the next block's first bytes */
    }
    if (p && fault == F_CORRUPT_LIVE && fires(F_CORRUPT_LIVE) && last && last != p)
        last[2000] ^= 1; /* the middle of some other live block (away from its edges) */
}

static void *fake_calloc(size_t n, size_t s)
{
    size_t t;
    if (__builtin_mul_overflow(n, s, &t))
        return errno = ENOMEM, NULL;
    uint8_t *p = carve(t, 16);
    if (p && fires(F_CALLOC_DIRTY) && t)
        p[t / 2] = 0xAB;
    return p;
}

static void *fake_realloc(void *old, size_t s)
{
    if (!old)
        return fake_malloc(s);
    if (!s)
        return NULL;
    uint8_t *p = carve(s, 16);
    if (!p)
        return NULL;
    size_t os = ((uint64_t *)old)[-1];
    memcpy(p, old, os < s ? os : s);
    if (fires(F_REALLOC_CORRUPT))
        p[(os < s ? os : s) / 2] ^= 0x40;
    return p;
}

static void *fake_reallocarray(void *old, size_t n, size_t s)
{
    size_t t;
    if (__builtin_mul_overflow(n, s, &t))
        return errno = ENOMEM, NULL;
    return fake_realloc(old, t);
}

static void *fake_memalign(size_t a, size_t s)
{
    if (!a || (a & (a - 1)))
        return errno = EINVAL, NULL;
    uint8_t *p = carve(s + (a >= 64 ? 16 : 0), a);
    if (p && a >= 64 && fires(F_MISALIGN)) {
        p += 16;
        ((uint64_t *)p)[-1] = s;
    }
    return p;
}

static int fake_posix_memalign(void **out, size_t a, size_t s)
{
    if (a < sizeof(void *) || (a & (a - 1)))
        return EINVAL;
    void *p = fake_memalign(a, s);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

static void *fake_valloc(size_t s) { return fake_memalign(4096, s); }
static void *fake_pvalloc(size_t s) { return fake_memalign(4096, (s + 4095) & ~(size_t)4095); }

static int fake_check_thread(hak_check_report_t *rep)
{
    rep->ok = 1;
    if (fires(F_SLL)) {
        rep->ok = 0;
        rep->check = "sll.cycle";
        snprintf(rep->msg, sizeof rep->msg, "planted: class 3 list loops");
    }
    return rep->ok;
}

static int fake_check_heap(hak_check_report_t *rep)
{
    rep->ok = 1;
    if (fires(F_HEAP)) {
        rep->ok = 0;
        rep->check = "heap.count";
        snprintf(rep->msg, sizeof rep->msg, "planted: slab counts disagree");
    }
    return rep->ok;
}

static const hk_backend_t fake = {
    .name = "fake",
    .malloc_fn = fake_malloc, .free_fn = fake_free, .calloc_fn = fake_calloc, .realloc_fn = fake_realloc,
    .reallocarray_fn = fake_reallocarray, .posix_memalign_fn = fake_posix_memalign,
    .aligned_alloc_fn = fake_memalign, .memalign_fn = fake_memalign, .valloc_fn = fake_valloc,
    .pvalloc_fn = fake_pvalloc, .usable_fn = fake_usable, .check_thread = fake_check_thread,
    .check_heap = fake_check_heap,
};

/* ---- helpers ---------------------------------------------------------------------------------- */

static hk_prog_t parse(const char *src)
{
    hk_prog_t p;
    hk_prog_init(&p);
    char err[256];
    cr_assert_eq(hk_prog_parse_text(&p, src, strlen(src), err, sizeof err), 0, "%s", err);
    return p;
}

/* Runs src on be with all checks; returns the failure's check name ("" when clean). */
static const char *run(const hk_backend_t *be, const char *src, hk_verify_failure_t *f)
{
    hk_prog_t p = parse(src);
    hk_interp_opts_t o = {.flags = HK_CHECK_ALL};
    int bad = hk_interp_run(&p, be, &o, 0, f);
    hk_prog_free(&p);
    if (bad) {
        hk_verify_failure_print(stderr, f);
        return f->check;
    }
    return "";
}

static const char *clean_program =
    "alloc 0 24\nalloc 1 100\ncalloc 2 3 40\nmemalign 3 64 200\nposix_memalign 4 256 33\n"
    "aligned_alloc 5 32 64\nrealloc 1 5000\nrealloc 0 8\nusable 1\nvalloc 6 10\npvalloc 7 5000\n"
    "thread 1\nfree 2\nrealloc 3 10\nreallocarray 4 10 10\nalloc 0 70000\ncheck\nfree 9\nusable 9\n"
    "realloc 8 16\nalloc 8 0\nfree 1\ncheck\n";

Test(shadow, clean_program_passes_everywhere)
{
    hk_verify_failure_t f;
    fake_reset(F_NONE, 0);
    cr_assert_str_eq(run(&fake, clean_program, &f), "");
    cr_assert_str_eq(run(&hk_backend_glibc, clean_program, &f), "");
    cr_assert_str_eq(run(&hk_backend_hakmem, clean_program, &f), "");
}

Test(shadow, results_are_recorded)
{
    hk_prog_t p = parse("alloc 0 24\nfree 0\nfree 0\nalloc 1 0x7fffffffffffffff\nusable 2\nrealloc 3 0\n"
                        "alloc 4 100M\nrealloc 3 40\nrealloc 3 0\n");
    hk_op_result_t res[9];
    hk_interp_opts_t o = {.flags = HK_CHECK_ALL, .results = res};
    hk_verify_failure_t f;
    cr_assert_eq(hk_interp_run(&p, &hk_backend_glibc, &o, 0, &f), 0);
    cr_assert_eq(res[0].status, HK_RES_OK);
    cr_assert_geq(res[0].usable, 24);
    cr_assert_eq(res[0].align_ok, 1);
    cr_assert_eq(res[1].status, HK_RES_OK);
    cr_assert_eq(res[2].status, HK_RES_EMPTY, "a free of an empty id never reaches the allocator");
    cr_assert_eq(res[3].status, HK_RES_FAIL);
    cr_assert_eq(res[3].err, ENOMEM);
    cr_assert_eq(res[4].status, HK_RES_EMPTY);
    cr_assert_eq(res[5].status, HK_RES_OK, "realloc of an empty id is malloc (glibc: malloc(0) is a block)");
    cr_assert_eq(res[6].status, HK_RES_SKIPPED, "100 MiB is beyond the default 4 MiB limit");
    cr_assert_eq(res[7].status, HK_RES_OK);
    cr_assert_eq(res[8].status, HK_RES_FREED, "glibc: realloc(p, 0) frees and returns NULL");
    hk_prog_free(&p);
}

Test(shadow, planted_overlap)
{
    hk_verify_failure_t f;
    fake_reset(F_OVERLAP, 1);
    cr_assert_str_eq(run(&fake, "alloc 0 64\nalloc 1 64\nalloc 2 64\nalloc 3 64\n", &f), "shadow.overlap");
    cr_assert_eq(f.op_index, 2);
    cr_assert_eq(f.id, 2);
    cr_assert_eq(f.other_id, 1);
    cr_assert_str_eq(f.backend, "fake");
}

Test(shadow, planted_realloc_corruption)
{
    hk_verify_failure_t f;
    fake_reset(F_REALLOC_CORRUPT, 1);
    cr_assert_str_eq(run(&fake, "alloc 0 300\nrealloc 0 600\nrealloc 0 100\nrealloc 0 50\n", &f), "shadow.content");
    cr_assert_eq(f.op_index, 2);
    cr_assert(strstr(f.msg, "realloc from 600 to 100 bytes lost data: byte 50") != NULL, "%s", f.msg);
}

Test(shadow, planted_misalignment)
{
    hk_verify_failure_t f;
    fake_reset(F_MISALIGN, 0);
    cr_assert_str_eq(run(&fake, "memalign 0 32 100\nmemalign 1 128 100\n", &f), "shadow.align");
    cr_assert_eq(f.op_index, 1);
    fake_reset(F_MISALIGN, 0);
    cr_assert_str_eq(run(&fake, "posix_memalign 0 4096 10\n", &f), "shadow.align");
}

Test(shadow, planted_short_usable_size)
{
    hk_verify_failure_t f;
    fake_reset(F_USABLE_SHORT, 0);
    cr_assert_str_eq(run(&fake, "alloc 0 1\nalloc 1 100\n", &f), "shadow.usable");
    cr_assert_eq(f.op_index, 1);
}

Test(shadow, planted_usable_size_drift)
{
    hk_verify_failure_t f;
    fake_reset(F_USABLE_DRIFT, 1);
    cr_assert_str_eq(run(&fake, "alloc 0 100\nusable 0\n", &f), "shadow.usable");
    cr_assert_eq(f.op_index, 1);
}

Test(shadow, planted_scribble_on_free_hits_the_neighbour)
{
    hk_verify_failure_t f;
    fake_reset(F_FREE_SCRIBBLE, 0);
    cr_assert_str_eq(run(&fake, "alloc 0 48\nalloc 1 48\nalloc 2 48\nfree 0\n", &f), "shadow.content");
    cr_assert_eq(f.op_index, 3, "found right after the free, by the neighbour check");
    cr_assert_eq(f.id, 1);
}

Test(shadow, planted_corruption_of_a_far_block_is_found_by_check)
{
    hk_verify_failure_t f;
    fake_reset(F_CORRUPT_LIVE, 0);
    /* id 9 is allocated last and hit in its middle, away from the edges the neighbour checks read:
     * only the sweep of CHECK can see it. */
    const char *src = "alloc 0 5000\nalloc 1 5000\nalloc 2 5000\nalloc 3 5000\nalloc 9 4000\nfree 0\nalloc 4 8\ncheck\n";
    cr_assert_str_eq(run(&fake, src, &f), "shadow.content");
    cr_assert_eq(f.op_index, 7);
    cr_assert_eq(f.id, 9);
    cr_assert_eq((uint8_t *)f.other - (uint8_t *)f.ptr, 2000);
}

Test(shadow, planted_dirty_calloc)
{
    hk_verify_failure_t f;
    fake_reset(F_CALLOC_DIRTY, 1);
    cr_assert_str_eq(run(&fake, "calloc 0 10 10\ncalloc 1 10 10\n", &f), "shadow.content");
    cr_assert_eq(f.op_index, 1);
    cr_assert(strstr(f.msg, "calloc block not zeroed: byte 50") != NULL, "%s", f.msg);
}

Test(shadow, checker_reports_become_failures)
{
    hk_verify_failure_t f;
    fake_reset(F_SLL, 3);
    cr_assert_str_eq(run(&fake, "alloc 0 8\nalloc 1 8\nfree 0\nfree 1\nalloc 2 8\n", &f), "sll");
    cr_assert_eq(f.op_index, 3);
    cr_assert_str_eq(f.detail, "sll.cycle");
    cr_assert_str_eq(f.msg, "planted: class 3 list loops");
    fake_reset(F_HEAP, 0);
    cr_assert_str_eq(run(&fake, "alloc 0 8\ncheck\n", &f), "heap");
    cr_assert_eq(f.op_index, 1);
    cr_assert_str_eq(f.detail, "heap.count");
    fake_reset(F_HEAP, 0);
    cr_assert_str_eq(run(&fake, "alloc 0 8\n", &f), "heap");
    cr_assert_eq(f.op_index, HK_AT_END, "the end-of-program heap walk");
}

/* ---- the shadow alone: the treap against brute force --------------------------------------------- */

Test(shadow, overlap_detection_matches_brute_force)
{
    uint64_t s = 11;
    enum { N = 256 };
    for (int round = 0; round < 40; round++) {
        hk_shadow_t sh;
        cr_assert_eq(hk_shadow_init(&sh, N, HK_SHADOW_ORDERED | HK_SHADOW_CHECKS), 0);
        uintptr_t addr[N] = {0};
        uint64_t len[N] = {0};
        for (int step = 0; step < 2000; step++) {
            uint32_t id = (uint32_t)(vt_next(&s) % N);
            if (addr[id]) {
                hk_shadow_remove(&sh, id, 0, NULL);
                addr[id] = 0;
                continue;
            }
            /* Synthetic addresses (never dereferenced: content checks are off). */
            uintptr_t a = 0x100000 + (vt_next(&s) % 100000) * 16;
            uint64_t l = 1 + vt_next(&s) % 3000;
            int want = 0;
            for (int j = 0; j < N; j++)
                if (addr[j] && a < addr[j] + len[j] && addr[j] < a + l)
                    want = 1;
            hk_verify_failure_t f;
            int got = hk_shadow_add(&sh, id, (void *)a, l, l, 1, 0, &f);
            cr_assert_eq(got, want, "round %d step %d: overlap %d, brute force %d", round, step, got, want);
            if (got) {
                cr_assert_str_eq(f.check, "shadow.overlap");
                hk_shadow_remove(&sh, id, 0, NULL); /* keep the live set disjoint */
            } else {
                addr[id] = a;
                len[id] = l;
            }
        }
        cr_assert_eq(hk_shadow_self_check(&sh, NULL), 0);
        hk_shadow_destroy(&sh);
    }
}

Test(shadow, pattern_depends_on_id_generation_and_size_class)
{
    uint64_t a = hk_shadow_pattern_seed(1, 1, 100);
    cr_assert_neq(a, hk_shadow_pattern_seed(2, 1, 100));
    cr_assert_neq(a, hk_shadow_pattern_seed(1, 2, 100));
    cr_assert_neq(a, hk_shadow_pattern_seed(1, 1, 1000));
    uint8_t buf[300];
    for (uint64_t off = 0; off < 16; off++) {
        hk_shadow_pattern_fill(a, buf, off, 280);
        cr_assert_eq(hk_shadow_pattern_find_mismatch(a, buf, off, 280), UINT64_MAX);
        buf[off + 277] ^= 4;
        cr_assert_eq(hk_shadow_pattern_find_mismatch(a, buf, off, 280), off + 277);
    }
}

Test(shadow, large_blocks_are_sampled_but_every_page_is_stamped)
{
    /* 256 KiB block: a decommitted (zeroed) page in the middle must be seen. */
    hk_prog_t p = parse("alloc 0 262144\ncheck\n");
    hk_interp_t in;
    hk_interp_opts_t o = {.flags = HK_CHECK_ALL};
    cr_assert_eq(hk_interp_init(&in, &p, &hk_backend_glibc, &o), 0);
    hk_verify_failure_t f;
    cr_assert_eq(hk_interp_step(&in, 0, 0, NULL, &f), 0);
    uint8_t *b = hk_shadow_get(&in.shadow, 0)->ptr;
    memset(b + 20 * 4096, 0, 4096);
    cr_assert_eq(hk_interp_step(&in, 1, 0, NULL, &f), 1);
    cr_assert_str_eq(f.check, "shadow.content");
    cr_assert_eq((uint8_t *)f.other - b, 20 * 4096);
    hk_interp_destroy(&in); /* leaks the block: the run failed */
    hk_prog_free(&p);
}
