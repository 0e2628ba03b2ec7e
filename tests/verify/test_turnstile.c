/* The turnstile: one OS thread per logical thread, ops in exactly the program's order, real
 * cross-thread frees, and the same per-op results on every run. */
#include "test_runner.h" /* criterion, or its compatible runner under TSan */
#include <pthread.h>
#include <string.h>

#include "vt_util.h"

/* Four threads; in each round every thread allocates a batch, then the next thread frees or reallocs
 * what the previous one allocated (the frees are cross-thread), with CHECKs in between. */
static void build(hk_prog_t *p, unsigned rounds)
{
    uint64_t s = 31;
    hk_prog_clear(p);
    for (unsigned r = 0; r < rounds; r++) {
        for (unsigned t = 0; t < 4; t++) {
            hk_op_t th = {.kind = HK_OP_THREAD, .id = t};
            hk_prog_push(p, th);
            for (unsigned k = 0; k < 16; k++) {
                static const uint64_t sizes[] = {8, 16, 24, 100, 512, 1024, 1500, 4096, 20000, 70000, 300000};
                hk_op_t a = {.kind = HK_OP_ALLOC, .id = t * 16 + k, .size = sizes[vt_next(&s) % 11]};
                if (k % 5 == 4) {
                    a.kind = HK_OP_CALLOC;
                    a.arg = 3;
                }
                hk_prog_push(p, a);
            }
        }
        for (unsigned t = 0; t < 4; t++) {
            hk_op_t th = {.kind = HK_OP_THREAD, .id = (t + 1) % 4};
            hk_prog_push(p, th);
            for (unsigned k = 0; k < 16; k++) {
                hk_op_t f = {.kind = k % 4 == 3 ? HK_OP_REALLOC : HK_OP_FREE, .id = t * 16 + k};
                if (f.kind == HK_OP_REALLOC)
                    f.size = 1 + vt_next(&s) % 3000;
                hk_prog_push(p, f);
            }
            hk_op_t u = {.kind = HK_OP_USABLE, .id = t * 16 + 3};
            hk_prog_push(p, u);
        }
        hk_op_t c = {.kind = HK_OP_CHECK};
        hk_prog_push(p, c);
    }
}

Test(turnstile, same_results_every_run)
{
    hk_prog_t p;
    hk_prog_init(&p);
    build(&p, 6);
    cr_assert_eq(p.thread_count, 4);
    hk_op_result_t *first = calloc(p.n, sizeof *first), *res = calloc(p.n, sizeof *res);
    hk_interp_opts_t o = {.flags = HK_CHECK_ALL, .results = first};
    hk_verify_failure_t f;
    /* The serial run is the reference: threads must not change what any op observes. */
    int bad = hk_interp_run(&p, &hk_backend_hakmem, &o, 0, &f);
    if (bad)
        hk_verify_failure_print(stderr, &f);
    cr_assert_eq(bad, 0);
    o.results = res;
    for (int run = 0; run < 20; run++) {
        memset(res, 0xA5, p.n * sizeof *res);
        bad = hk_interp_run(&p, &hk_backend_hakmem, &o, 1, &f);
        if (bad)
            hk_verify_failure_print(stderr, &f);
        cr_assert_eq(bad, 0, "run %d", run);
        for (size_t i = 0; i < p.n; i++)
            cr_assert(hk_op_result_same(&first[i], &res[i]), "run %d op %zu: status %u/%u usable %llu/%llu", run,
                      i, first[i].status, res[i].status, (unsigned long long)first[i].usable,
                      (unsigned long long)res[i].usable);
    }
    free(first);
    free(res);
    hk_prog_free(&p);
}

Test(turnstile, oracle_under_threads)
{
    hk_prog_t p;
    hk_prog_init(&p);
    build(&p, 3);
    hk_verify_failure_t f;
    hk_oracle_opts_t o = {.interp = {.flags = HK_CHECK_ALL}, .strict = 1};
    int bad = hk_oracle_run(&p, &o, 1, &f);
    if (bad)
        hk_verify_failure_print(stderr, &f);
    cr_assert_eq(bad, 0);
    hk_prog_free(&p);
}

/* The runner itself: every op runs once, in order, on its logical thread's own OS thread. */
typedef struct seen {
    size_t next;
    pthread_t who[HK_OP_MAX_THREADS];
    int have[HK_OP_MAX_THREADS];
    int order_ok, thread_ok;
} seen_t;

static int record_step(void *ctx, size_t i, unsigned t, hk_verify_failure_t *f)
{
    seen_t *s = ctx;
    if (s->next != i)
        s->order_ok = 0;
    s->next = i + 1;
    if (!s->have[t]) {
        s->have[t] = 1;
        s->who[t] = pthread_self();
    } else if (!pthread_equal(s->who[t], pthread_self())) {
        s->thread_ok = 0;
    }
    return 0;
}

Test(turnstile, order_and_thread_identity)
{
    hk_prog_t p;
    hk_prog_init(&p);
    uint64_t s = 41;
    vt_random_prog(&p, &s, 3000, 1);
    seen_t seen = {.order_ok = 1, .thread_ok = 1};
    cr_assert_eq(hk_interp_run_turnstile(&p, record_step, &seen, NULL), 0);
    cr_assert_eq(seen.next, p.n, "every op ran");
    cr_assert(seen.order_ok, "ops ran out of order");
    cr_assert(seen.thread_ok, "a logical thread moved between OS threads");
    for (unsigned a = 0; a < HK_OP_MAX_THREADS; a++)
        for (unsigned b = a + 1; b < HK_OP_MAX_THREADS; b++)
            if (seen.have[a] && seen.have[b])
                cr_assert(!pthread_equal(seen.who[a], seen.who[b]), "threads %u and %u share an OS thread", a, b);
    hk_prog_free(&p);
}

static int fail_at_500(void *ctx, size_t i, unsigned t, hk_verify_failure_t *f)
{
    (void)ctx;
    if (i == 500)
        return hk_verify_fail(f, "interp", "planted failure at op %zu on thread %u", i, t);
    return 0;
}

Test(turnstile, a_failure_stops_every_thread)
{
    hk_prog_t p;
    hk_prog_init(&p);
    uint64_t s = 43;
    vt_random_prog(&p, &s, 3000, 1);
    hk_verify_failure_t f;
    cr_assert_eq(hk_interp_run_turnstile(&p, fail_at_500, NULL, &f), 1);
    cr_assert_str_eq(f.check, "interp");
    cr_assert(strstr(f.msg, "op 500") != NULL);
    hk_prog_free(&p);
}
