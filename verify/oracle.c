/* The glibc oracle (see oracle.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "oracle.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *status_name(unsigned s)
{
    switch (s) {
    case HK_RES_NONE: return "nothing";
    case HK_RES_OK: return "success";
    case HK_RES_FAIL: return "failure";
    case HK_RES_FREED: return "NULL (block freed)";
    case HK_RES_SKIPPED: return "skipped";
    case HK_RES_EMPTY: return "empty id";
    default: return "?";
    }
}

static const char *err_name(int e)
{
    switch (e) {
    case 0: return "0";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    case -1: return "success-without-block";
    default: return strerror(e);
    }
}

static int pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

int hk_oracle_compare(const hk_op_t *op, const hk_op_result_t *test, const hk_op_result_t *ref, int strict,
                      int *tolerated, hk_verify_failure_t *f)
{
    return hk_oracle_compare_named(op, test, ref, strict, "hakmem", "glibc", tolerated, f);
}

int hk_oracle_compare_named(const hk_op_t *op, const hk_op_result_t *test, const hk_op_result_t *ref,
                            int strict, const char *tn, const char *rn, int *tolerated, hk_verify_failure_t *f)
{
    *tolerated = 0;
    if (op->kind == HK_OP_SET || op->kind == HK_OP_THREAD || op->kind == HK_OP_CHECK)
        return 0; /* options exist on one side only; THREAD/CHECK observe nothing */
    if (test->status == ref->status) {
        if (test->status != HK_RES_FAIL || test->err == ref->err)
            return 0;
        if (!strict && op->kind == HK_OP_ALIGNED_ALLOC && test->err == EINVAL &&
            (!pow2(op->arg) || (op->arg && op->size % op->arg))) {
            *tolerated = 1;
            return 0;
        }
        hk_verify_fail(f, "oracle.errno", "both failed: %s errno %s, %s errno %s", tn, err_name(test->err), rn,
                       err_name(ref->err));
        return 1;
    }
    /* aligned_alloc with an alignment glibc 2.36 rounds up (or a size that is not a multiple of it):
     * C11 lets an implementation fail with EINVAL, and newer glibc does. */
    if (!strict && op->kind == HK_OP_ALIGNED_ALLOC && test->status == HK_RES_FAIL && test->err == EINVAL &&
        ref->status == HK_RES_OK && (!pow2(op->arg) || (op->arg && op->size % op->arg))) {
        *tolerated = 1;
        return 0;
    }
    hk_verify_fail(f, "oracle.null", "%s: %s%s%s; %s: %s%s%s", tn, status_name(test->status),
            test->status == HK_RES_FAIL ? " errno " : "", test->status == HK_RES_FAIL ? err_name(test->err) : "",
            rn, status_name(ref->status), ref->status == HK_RES_FAIL ? " errno " : "",
            ref->status == HK_RES_FAIL ? err_name(ref->err) : "");
    if (f) {
        f->ptr = test->ptr;
        f->other = ref->ptr;
    }
    return 1;
}

typedef struct oracle {
    hk_interp_t test, ref;
    int strict;
    hk_op_result_t *test_results, *ref_results;
} oracle_t;

static int oracle_step(void *ctx, size_t i, unsigned thread, hk_verify_failure_t *f)
{
    oracle_t *o = ctx;
    hk_op_result_t a, b;
    if (hk_interp_step(&o->test, i, thread, &a, f))
        return 1;
    if (hk_interp_step(&o->ref, i, thread, &b, f))
        return 1;
    if (o->test_results)
        o->test_results[i] = a;
    if (o->ref_results)
        o->ref_results[i] = b;
    const hk_op_t *op = &o->test.prog->ops[i];
    int tolerated;
    if (hk_oracle_compare_named(op, &a, &b, o->strict, o->test.be->name, o->ref.be->name, &tolerated, f)) {
        if (f) {
            f->op_index = i;
            f->op = *op;
            f->thread = thread;
            f->backend = "oracle";
            if (hk_op_is_block_op(op->kind))
                f->id = op->id;
        }
        /* Both sides may hold blocks the caller can no longer match up: leak them rather than free. */
        o->test.failed = o->ref.failed = 1;
        return 1;
    }
    if (tolerated) {
        /* Re-converge: the id is empty on the side that failed, so empty it on the other too. */
        hk_interp_drop(&o->test, op->id);
        hk_interp_drop(&o->ref, op->id);
    }
    return 0;
}

int hk_oracle_run(const hk_prog_t *prog, const hk_oracle_opts_t *opts, int threaded, hk_verify_failure_t *f)
{
    hk_oracle_opts_t def;
    if (!opts) {
        memset(&def, 0, sizeof def);
        def.interp.flags = HK_CHECK_ALL;
        opts = &def;
    }
    if (f)
        hk_verify_failure_clear(f);
    oracle_t o;
    memset(&o, 0, sizeof o);
    o.strict = opts->strict;
    o.test_results = opts->test_results;
    o.ref_results = opts->ref_results;
    hk_interp_opts_t io = opts->interp;
    io.results = NULL;
    const hk_backend_t *test = opts->test ? opts->test : &hk_backend_hakmem;
    const hk_backend_t *ref = opts->ref ? opts->ref : &hk_backend_glibc;
    if (hk_interp_init(&o.test, prog, test, &io) != 0)
        return hk_verify_fail(f, "interp", "out of memory");
    if (hk_interp_init(&o.ref, prog, ref, &io) != 0) {
        hk_interp_destroy(&o.test);
        return hk_verify_fail(f, "interp", "out of memory");
    }
    int bad = threaded ? hk_interp_run_turnstile(prog, oracle_step, &o, f) : hk_interp_run_serial(prog, oracle_step, &o, f);
    if (!bad)
        bad = hk_interp_finish(&o.test, f);
    if (!bad)
        bad = hk_interp_finish(&o.ref, f);
    hk_interp_destroy(&o.test);
    hk_interp_destroy(&o.ref);
    return bad;
}
