/* The interpreter (see interp.h): backends, one step per op, end-of-run checks, and the two runners. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "interp.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

_Static_assert(sizeof(size_t) == sizeof(uint64_t), "op sizes are passed to the allocator as size_t");

/* ---- backends --------------------------------------------------------------------------------- */

/* hakmem's debug entry points take a const char * value; the table stores them as they are. */
const hk_backend_t hk_backend_hakmem = {
    .name = "hakmem",
    .malloc_fn = hak_malloc,
    .free_fn = hak_free,
    .calloc_fn = hak_calloc,
    .realloc_fn = hak_realloc,
    .reallocarray_fn = hak_reallocarray,
    .posix_memalign_fn = hak_posix_memalign,
    .aligned_alloc_fn = hak_aligned_alloc,
    .memalign_fn = hak_memalign,
    .valloc_fn = hak_valloc,
    .pvalloc_fn = hak_pvalloc,
    .usable_fn = hak_malloc_usable_size,
    .set_option = hak_debug_set_option,
    .get_option = hak_debug_get_option,
    .check_thread = hak_debug_check_thread,
    .check_heap = hak_debug_check_heap,
};

/* The process malloc: glibc when the test links hakmem_prefixed (the allocator's own names stay hak_*).
 * Called through pointers, so the compiler cannot fold or elide the calls. */
hk_backend_t hk_backend_glibc = {
    .name = "glibc",
    .malloc_fn = malloc,
    .free_fn = free,
    .calloc_fn = calloc,
    .realloc_fn = realloc,
    .reallocarray_fn = reallocarray,
    .posix_memalign_fn = posix_memalign,
    .aligned_alloc_fn = aligned_alloc,
    .memalign_fn = memalign,
    .valloc_fn = valloc,
    .pvalloc_fn = pvalloc,
    .usable_fn = malloc_usable_size,
};

const hk_backend_t *hk_backend_get(hk_backend_kind_t kind)
{
    hk_interp_libc_ensure();
    return kind == HK_BACKEND_HAKMEM ? &hk_backend_hakmem : &hk_backend_glibc;
}

int hk_op_result_same(const hk_op_result_t *a, const hk_op_result_t *b)
{
    return a->status == b->status && a->err == b->err && a->usable == b->usable &&
           a->align_ok == b->align_ok;
}

/* ---- init / teardown -------------------------------------------------------------------------- */

int hk_interp_init(hk_interp_t *in, const hk_prog_t *prog, const hk_backend_t *be,
                   const hk_interp_opts_t *opts)
{
    hk_interp_libc_ensure();
    memset(in, 0, sizeof *in);
    in->prog = prog;
    in->be = be;
    if (opts) {
        in->opts = *opts;
    } else {
        in->opts.flags = HK_CHECK_ALL;
    }
    in->max_size = in->opts.max_size ? in->opts.max_size : HK_OP_MAX_SIZE_DEFAULT;
    long pg = sysconf(_SC_PAGESIZE);
    in->page = pg > 0 ? (uint64_t)pg : 4096;
    unsigned sf = 0;
    if (in->opts.flags & HK_CHECK_SHADOW)
        sf |= HK_SHADOW_ORDERED | HK_SHADOW_CHECKS;
    if (in->opts.flags & HK_CHECK_CONTENT)
        sf |= HK_SHADOW_CONTENT;
    if (in->opts.flags & HK_INTERP_FILL_REQUESTED)
        sf |= HK_SHADOW_FILL_REQUESTED;
    if (hk_shadow_init(&in->shadow, prog->id_count, sf) != 0)
        return -1;
    in->shadow.sample_limit = in->opts.sample_limit;
    in->knob_saved = calloc(hk_op_knob_count, sizeof *in->knob_saved);
    in->knob_touched = calloc(hk_op_knob_count, 1);
    if (!in->knob_saved || !in->knob_touched) {
        hk_interp_destroy(in);
        return -1;
    }
    return 0;
}

static void restore_knobs(hk_interp_t *in)
{
    if (!in->knob_touched || !in->be->set_option)
        return;
    for (unsigned k = 0; k < hk_op_knob_count; k++) {
        if (in->knob_touched[k] != 1)
            continue;
        char v[32];
        if (in->knob_saved[k] >= 0)
            hk_op_knob_value_str(&hk_op_knobs[k], (uint64_t)in->knob_saved[k], v, sizeof v);
        else
            snprintf(v, sizeof v, "%lld", in->knob_saved[k]);
        in->be->set_option(hk_op_knobs[k].option, v);
        in->knob_touched[k] = 0;
    }
}

void hk_interp_destroy(hk_interp_t *in)
{
    if (in->shadow.blk && !in->failed && !(in->opts.flags & HK_INTERP_NO_CLEANUP)) {
        for (uint32_t id = 0; id < in->shadow.nids; id++) {
            hk_block_t *b = hk_shadow_get(&in->shadow, id);
            if (b->ptr) {
                void *p = b->ptr;
                hk_shadow_remove(&in->shadow, id, 0, NULL);
                in->be->free_fn(p);
            }
        }
    }
    if (in->be)
        restore_knobs(in);
    hk_shadow_destroy(&in->shadow);
    free(in->knob_saved);
    free(in->knob_touched);
    in->knob_saved = NULL;
    in->knob_touched = NULL;
}

void hk_interp_drop(hk_interp_t *in, uint32_t id)
{
    hk_block_t *b = hk_shadow_get(&in->shadow, id);
    if (!b->ptr)
        return;
    void *p = b->ptr;
    hk_shadow_remove(&in->shadow, id, 0, NULL);
    in->be->free_fn(p);
}

/* ---- helpers ---------------------------------------------------------------------------------- */

static int report_fail(const hak_check_report_t *rep, const char *check, hk_verify_failure_t *f)
{
    hk_verify_fail(f, check, "%s", rep->msg[0] ? rep->msg : "checker reported a failure without a message");
    if (f) {
        snprintf(f->detail, sizeof f->detail, "%s", rep->check ? rep->check : "");
        f->ptr = rep->ptr;
    }
    return 1;
}

static int run_checker(int (*fn)(hak_check_report_t *), const char *check, hk_verify_failure_t *f)
{
    if (!fn)
        return 0;
    hak_check_report_t rep;
    memset(&rep, 0, sizeof rep);
    rep.cls = -1;
    fn(&rep);
    return rep.ok ? 0 : report_fail(&rep, check, f);
}

/* Whether a request may run: within the size limit, or impossible to satisfy (then it tests the
 * failure path without using memory). */
static int may_run(const hk_interp_t *in, uint64_t total, int overflow, uint64_t align)
{
    if (overflow || (in->opts.flags & HK_INTERP_ALLOW_LARGE))
        return 1;
    if (total >= HK_OP_SIZE_HUGE || align >= HK_OP_SIZE_HUGE)
        return 1;
    return total <= in->max_size && align <= in->max_size;
}

static int is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

/* Frees id's live block: verify it, forget it, free it, look at its neighbours. A block that fails its
 * check is not freed (the allocator is broken; freeing could crash before the report is out). */
static int release(hk_interp_t *in, uint32_t id, hk_verify_failure_t *f)
{
    hk_block_t *b = hk_shadow_get(&in->shadow, id);
    void *p = b->ptr;
    int bad = hk_shadow_remove(&in->shadow, id, 1, f);
    if (bad)
        return 1;
    in->be->free_fn(p);
    return hk_shadow_verify_neighbours(&in->shadow, p, f);
}

/* Records a new block (align = alignment owed) into r and the shadow. */
static int got_block(hk_interp_t *in, uint32_t id, void *p, uint64_t total, uint64_t align, int zeroed,
                     int moved, hk_op_result_t *r, hk_verify_failure_t *f)
{
    uint64_t usable = in->be->usable_fn(p);
    r->status = HK_RES_OK;
    r->ptr = p;
    r->usable = usable;
    r->align_ok = ((uintptr_t)p & (align - 1)) == 0;
    int bad = moved ? hk_shadow_moved(&in->shadow, id, p, total, usable, align, f)
                    : hk_shadow_add(&in->shadow, id, p, total, usable, align, zeroed, f);
    if (!bad)
        bad = hk_shadow_verify_neighbours(&in->shadow, p, f);
    return bad;
}

static int do_alloc(hk_interp_t *in, const hk_op_t *op, hk_op_result_t *r, hk_verify_failure_t *f)
{
    const hk_backend_t *be = in->be;
    uint64_t total = op->size, align = 0;
    int ovf = 0;
    if (op->kind == HK_OP_CALLOC)
        ovf = __builtin_mul_overflow(op->arg, op->size, &total);
    else if (op->kind == HK_OP_MEMALIGN || op->kind == HK_OP_POSIX_MEMALIGN || op->kind == HK_OP_ALIGNED_ALLOC)
        align = op->arg;
    else if (op->kind == HK_OP_VALLOC || op->kind == HK_OP_PVALLOC)
        align = in->page;
    if (!may_run(in, total, ovf, align)) {
        r->status = HK_RES_SKIPPED;
        return 0;
    }
    if (hk_shadow_get(&in->shadow, op->id)->ptr && release(in, op->id, f))
        return 1;
    void *p = NULL;
    int err = 0;
    errno = 0;
    switch (op->kind) {
    case HK_OP_ALLOC: p = be->malloc_fn(op->size); break;
    case HK_OP_CALLOC: p = be->calloc_fn(op->arg, op->size); break;
    case HK_OP_MEMALIGN: p = be->memalign_fn(op->arg, op->size); break;
    case HK_OP_ALIGNED_ALLOC: p = be->aligned_alloc_fn(op->arg, op->size); break;
    case HK_OP_VALLOC: p = be->valloc_fn(op->size); break;
    case HK_OP_PVALLOC: p = be->pvalloc_fn(op->size); break;
    case HK_OP_POSIX_MEMALIGN: {
        void *out = NULL;
        err = be->posix_memalign_fn(&out, op->arg, op->size);
        p = err ? NULL : out;
        if (!err && !p)
            err = -1; /* success without a block: recorded as a failure with an impossible code */
        break;
    }
    default: break;
    }
    if (!p) {
        if (op->kind != HK_OP_POSIX_MEMALIGN)
            err = errno;
        r->status = HK_RES_FAIL;
        r->err = err;
        return 0;
    }
    /* Alignment owed: the requested one when it is a power of two (memalign family), a page (valloc),
     * else the default for the size. */
    uint64_t owed = (align && is_pow2(align)) ? align : hk_shadow_default_align(total);
    return got_block(in, op->id, p, total, owed, op->kind == HK_OP_CALLOC, 0, r, f);
}

static int do_realloc(hk_interp_t *in, const hk_op_t *op, hk_op_result_t *r, hk_verify_failure_t *f)
{
    uint64_t total = op->size;
    int ovf = 0;
    if (op->kind == HK_OP_REALLOCARRAY)
        ovf = __builtin_mul_overflow(op->arg, op->size, &total);
    if (!may_run(in, total, ovf, 0)) {
        r->status = HK_RES_SKIPPED;
        return 0;
    }
    hk_block_t *b = hk_shadow_get(&in->shadow, op->id);
    void *old = b->ptr;
    if (old && hk_shadow_verify(&in->shadow, op->id, f))
        return 1;
    errno = 0;
    void *p = op->kind == HK_OP_REALLOC ? in->be->realloc_fn(old, op->size)
                                        : in->be->reallocarray_fn(old, op->arg, op->size);
    int err = errno;
    if (p)
        return got_block(in, op->id, p, total, hk_shadow_default_align(total), 0, old != NULL, r, f);
    if (old && total == 0 && !ovf) {
        /* realloc(p, 0) returning NULL freed p (glibc's documented behaviour). */
        hk_shadow_remove(&in->shadow, op->id, 0, NULL);
        r->status = HK_RES_FREED;
        return 0;
    }
    r->status = HK_RES_FAIL;
    r->err = err;
    /* A failed realloc leaves the old block untouched. */
    return old ? hk_shadow_verify(&in->shadow, op->id, f) : 0;
}

static int do_set(hk_interp_t *in, const hk_op_t *op, hk_op_result_t *r)
{
    const hk_backend_t *be = in->be;
    if (!be->set_option)
        return 0;
    const hk_op_knob_t *k = &hk_op_knobs[op->id];
    if (!in->knob_touched[op->id] && be->get_option) {
        errno = 0;
        long long v = be->get_option(k->option);
        /* 1: restore at the end; 2: unknown option, nothing to restore. */
        in->knob_touched[op->id] = (v == -1 && errno == EINVAL) ? 2 : 1;
        in->knob_saved[op->id] = v;
    }
    char v[32];
    hk_op_knob_value_str(k, op->arg, v, sizeof v);
    errno = 0;
    int rc = be->set_option(k->option, v);
    r->status = rc == 0 ? HK_RES_OK : HK_RES_FAIL;
    r->err = rc == 0 ? 0 : errno;
    return 0;
}

static int do_check(hk_interp_t *in, hk_verify_failure_t *f)
{
    if ((in->opts.flags & HK_CHECK_CONTENT) && hk_shadow_sweep(&in->shadow, f))
        return 1;
    if ((in->opts.flags & HK_CHECK_SHADOW) && hk_shadow_self_check(&in->shadow, f))
        return 1;
    if ((in->opts.flags & HK_CHECK_HEAP) && run_checker(in->be->check_heap, "heap", f))
        return 1;
    return 0;
}

/* ---- step ------------------------------------------------------------------------------------- */

int hk_interp_step(hk_interp_t *in, size_t i, unsigned thread, hk_op_result_t *res, hk_verify_failure_t *f)
{
    const hk_op_t *op = &in->prog->ops[i];
    hk_op_result_t r;
    memset(&r, 0, sizeof r);
    r.align_ok = 1;
    int bad = 0;
    switch (op->kind) {
    case HK_OP_ALLOC: case HK_OP_CALLOC: case HK_OP_MEMALIGN: case HK_OP_POSIX_MEMALIGN:
    case HK_OP_ALIGNED_ALLOC: case HK_OP_VALLOC: case HK_OP_PVALLOC:
        bad = do_alloc(in, op, &r, f);
        break;
    case HK_OP_REALLOC: case HK_OP_REALLOCARRAY:
        bad = do_realloc(in, op, &r, f);
        break;
    case HK_OP_FREE:
        if (!hk_shadow_get(&in->shadow, op->id)->ptr) {
            r.status = HK_RES_EMPTY;
        } else {
            r.status = HK_RES_OK;
            bad = release(in, op->id, f);
        }
        break;
    case HK_OP_USABLE: {
        hk_block_t *b = hk_shadow_get(&in->shadow, op->id);
        if (!b->ptr) {
            r.status = HK_RES_EMPTY;
            break;
        }
        r.status = HK_RES_OK;
        r.usable = in->be->usable_fn(b->ptr);
        if ((in->opts.flags & HK_CHECK_SHADOW) && r.usable != b->usable) {
            bad = hk_verify_fail(f, "shadow.usable", "usable size changed from %llu to %llu while the block was live",
                          (unsigned long long)b->usable, (unsigned long long)r.usable);
            if (f) {
                f->id = op->id;
                f->ptr = b->ptr;
            }
        }
        break;
    }
    case HK_OP_SET:
        bad = do_set(in, op, &r);
        break;
    case HK_OP_CHECK:
        bad = do_check(in, f);
        break;
    default: /* THREAD: the runner already switched */
        break;
    }
    if (!bad && (in->opts.flags & HK_CHECK_THREAD) &&
        (op->kind == HK_OP_CHECK || in->opts.thread_check_period <= 1 ||
         (in->ops_run + 1) % in->opts.thread_check_period == 0))
        bad = run_checker(in->be->check_thread, "sll", f);
    if (res)
        *res = r;
    if (in->opts.results)
        in->opts.results[i] = r;
    in->ops_run++;
    if (bad) {
        in->failed = 1;
        if (f) {
            f->op_index = i;
            f->op = *op;
            f->thread = thread;
            f->backend = in->be->name;
        }
    }
    return bad;
}

int hk_interp_finish(hk_interp_t *in, hk_verify_failure_t *f)
{
    int bad = 0;
    if (in->failed)
        return 0;
    bad = do_check(in, f);
    if (!bad && !(in->opts.flags & HK_INTERP_NO_CLEANUP)) {
        for (uint32_t id = 0; id < in->shadow.nids && !bad; id++)
            if (hk_shadow_get(&in->shadow, id)->ptr)
                bad = release(in, id, f);
        if (!bad && (in->opts.flags & HK_CHECK_HEAP))
            bad = run_checker(in->be->check_heap, "heap", f);
        if (!bad && (in->opts.flags & HK_CHECK_THREAD))
            bad = run_checker(in->be->check_thread, "sll", f);
    }
    restore_knobs(in);
    if (bad) {
        in->failed = 1;
        if (f) {
            f->op_index = HK_AT_END;
            memset(&f->op, 0, sizeof f->op);
            f->backend = in->be->name;
        }
    }
    return bad;
}

/* ---- runners ---------------------------------------------------------------------------------- */

int hk_interp_run_serial(const hk_prog_t *prog, hk_interp_step_fn step, void *ctx, hk_verify_failure_t *f)
{
    unsigned t = 0;
    for (size_t i = 0; i < prog->n; i++) {
        if (prog->ops[i].kind == HK_OP_THREAD)
            t = prog->ops[i].id;
        if (step(ctx, i, t, f))
            return 1;
    }
    return 0;
}

/* The turnstile: `turn` is the index of the only op allowed to run. A thread waits (spin, then a futex
 * wait on its own bit of the bitset) until turn equals its next op, runs it, then publishes turn + 1
 * with release order and wakes only the owner of the next op. The acquire load that admits a thread
 * pairs with that release, so everything the previous op did (to the heap and to the shadow) is
 * visible: the ops form one total order, exactly the program's. */
typedef struct ts {
    _Atomic uint32_t turn;
    _Atomic uint32_t stop;
    const hk_prog_t *prog;
    uint8_t *owner;
    hk_interp_step_fn step;
    void *ctx;
    hk_verify_failure_t fail;
    int failed;
} ts_t;

typedef struct ts_arg {
    ts_t *ts;
    unsigned t;
} ts_arg_t;

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, uint32_t mask)
{
    return syscall(SYS_futex, (uint32_t *)addr, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, mask);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int ts_wait(ts_t *ts, uint32_t want, unsigned t)
{
    for (unsigned spin = 0;; spin++) {
        uint32_t v = atomic_load_explicit(&ts->turn, memory_order_acquire);
        if (atomic_load_explicit(&ts->stop, memory_order_acquire))
            return -1;
        if (v == want)
            return 0;
        if (spin < 64)
            cpu_relax();
        else
            futex(&ts->turn, FUTEX_WAIT_BITSET, v, 1u << t);
    }
}

static void ts_stop(ts_t *ts)
{
    atomic_store_explicit(&ts->stop, 1, memory_order_release);
    atomic_store_explicit(&ts->turn, UINT32_MAX, memory_order_release);
    futex(&ts->turn, FUTEX_WAKE_BITSET, INT_MAX, FUTEX_BITSET_MATCH_ANY);
}

static void *ts_main(void *arg)
{
    ts_t *ts = ((ts_arg_t *)arg)->ts;
    unsigned t = ((ts_arg_t *)arg)->t;
    size_t n = ts->prog->n;
    for (size_t i = 0; i < n; i++) {
        if (ts->owner[i] != t)
            continue;
        if (ts_wait(ts, (uint32_t)i, t) != 0)
            break;
        if (ts->step(ts->ctx, i, t, &ts->fail)) {
            ts->failed = 1;
            ts_stop(ts);
            break;
        }
        atomic_store_explicit(&ts->turn, (uint32_t)(i + 1), memory_order_release);
        if (i + 1 == n)
            futex(&ts->turn, FUTEX_WAKE_BITSET, INT_MAX, FUTEX_BITSET_MATCH_ANY);
        else if (ts->owner[i + 1] != t)
            futex(&ts->turn, FUTEX_WAKE_BITSET, INT_MAX, 1u << ts->owner[i + 1]);
    }
    /* Stay alive until the last op has run: a thread's exit runs the allocator's thread teardown
     * (cache flush, slab hand-back), which must not overlap later ops, nor a heap walk on a CHECK. */
    ts_wait(ts, (uint32_t)n, t);
    return NULL;
}

int hk_interp_run_turnstile(const hk_prog_t *prog, hk_interp_step_fn step, void *ctx, hk_verify_failure_t *f)
{
    if (prog->n >= UINT32_MAX)
        return hk_verify_fail(f, "interp", "program too long for the turnstile (%zu ops)", prog->n);
    ts_t *ts = calloc(1, sizeof *ts);
    uint8_t *owner = malloc(prog->n ? prog->n : 1);
    if (!ts || !owner) {
        free(ts);
        free(owner);
        return hk_verify_fail(f, "interp", "out of memory");
    }
    unsigned used = 0, t = 0;
    for (size_t i = 0; i < prog->n; i++) {
        if (prog->ops[i].kind == HK_OP_THREAD)
            t = prog->ops[i].id;
        owner[i] = (uint8_t)t;
        used |= 1u << t;
    }
    ts->prog = prog;
    ts->owner = owner;
    ts->step = step;
    ts->ctx = ctx;
    hk_verify_failure_clear(&ts->fail);
    pthread_t th[HK_OP_MAX_THREADS];
    ts_arg_t args[HK_OP_MAX_THREADS];
    int started[HK_OP_MAX_THREADS] = {0};
    int create_failed = 0;
    for (unsigned k = 0; k < HK_OP_MAX_THREADS; k++) {
        if (!(used & (1u << k)))
            continue;
        args[k].ts = ts;
        args[k].t = k;
        if (pthread_create(&th[k], NULL, ts_main, &args[k]) != 0) {
            create_failed = 1;
            ts_stop(ts);
            break;
        }
        started[k] = 1;
    }
    for (unsigned k = 0; k < HK_OP_MAX_THREADS; k++)
        if (started[k])
            pthread_join(th[k], NULL);
    int bad = 0;
    if (ts->failed) {
        if (f)
            *f = ts->fail;
        bad = 1;
    } else if (create_failed) {
        bad = hk_verify_fail(f, "interp", "pthread_create failed");
    }
    free(owner);
    free(ts);
    return bad;
}

/* ---- convenience ------------------------------------------------------------------------------ */

static int interp_step_cb(void *ctx, size_t i, unsigned thread, hk_verify_failure_t *f)
{
    return hk_interp_step(ctx, i, thread, NULL, f);
}

int hk_interp_run(const hk_prog_t *prog, const hk_backend_t *be, const hk_interp_opts_t *opts,
                  int threaded, hk_verify_failure_t *f)
{
    hk_interp_t in;
    if (f)
        hk_verify_failure_clear(f);
    if (hk_interp_init(&in, prog, be, opts) != 0)
        return hk_verify_fail(f, "interp", "out of memory");
    int bad = threaded ? hk_interp_run_turnstile(prog, interp_step_cb, &in, f)
                       : hk_interp_run_serial(prog, interp_step_cb, &in, f);
    if (!bad)
        bad = hk_interp_finish(&in, f);
    hk_interp_destroy(&in);
    return bad;
}
