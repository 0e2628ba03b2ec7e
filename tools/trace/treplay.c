/* Replay runners (treplay.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "treplay.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem.h"
#include "hakmem_debug.h"
#include "interp.h"

/* The recording layer's decision entry (src/trace/vclock.h, hidden in the library, reachable because
 * the tools link the static prefixed library): a forced decision is applied exactly as the controller
 * applied it, and recorded if this process traces itself. */
int hk_ctl_set(const char *name, const char *value);

void hk_replay_opts_default(hk_replay_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->order = HK_ORDER_EXACT;
    o->checks = 0;
    o->learning = HK_LEARN_FORCED;
    o->touch = 1;
}

int hk_replay_parse_checks(const char *s, unsigned *out)
{
    unsigned f = 0;
    const char *p = s;
    while (*p) {
        size_t l = strcspn(p, ",");
        if ((l == 4 && !strncmp(p, "none", 4)))
            f = 0;
        else if (l == 3 && !strncmp(p, "all", 3))
            f = HK_CHECK_ALL;
        else if (l == 6 && !strncmp(p, "shadow", 6))
            f |= HK_CHECK_SHADOW | HK_CHECK_CONTENT;
        else if (l == 7 && !strncmp(p, "content", 7))
            f |= HK_CHECK_CONTENT;
        else if (l == 3 && !strncmp(p, "sll", 3))
            f |= HK_CHECK_THREAD;
        else if (l == 4 && !strncmp(p, "heap", 4))
            f |= HK_CHECK_HEAP;
        else
            return -1;
        p += l;
        if (*p == ',')
            p++;
    }
    *out = f;
    return 0;
}

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, uint32_t mask)
{
    return syscall(SYS_futex, (uint32_t *)addr, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, mask);
}

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* A SET: applied by name (forced controller decisions through the recording layer's own entry). 1 if it
 * was handled here, 0 if the interpreter should run it. */
static int do_set(const hk_rprog_t *rp, size_t i, const hk_replay_opts_t *o)
{
    const hk_op_t *op = &rp->prog.ops[i];
    unsigned mf = rp->meta[i].flags;
    if (op->kind != HK_OP_SET)
        return 0;
    if ((mf & HK_RM_CTL) && o->learning == HK_LEARN_OFF)
        return 1;
    if (mf & HK_RM_RAWSET) {
        if (op->id < rp->nraw) {
            if (mf & HK_RM_CTL)
                hk_ctl_set(rp->raw[op->id].name, rp->raw[op->id].value);
            else
                hak_debug_set_option(rp->raw[op->id].name, rp->raw[op->id].value);
        }
        return 1;
    }
    if ((mf & HK_RM_CTL) && op->id < hk_op_knob_count) {
        char v[32];
        hk_op_knob_value_str(&hk_op_knobs[op->id], op->arg, v, sizeof v);
        hk_ctl_set(hk_op_knobs[op->id].option, v);
        return 1;
    }
    return 0;
}

static void touch_block(void *p, uint64_t usable, uint32_t id)
{
    if (!p)
        return;
    uint64_t n = usable < 64 ? usable : 64;
    uint64_t w = 0xa5a5a5a5a5a5a5a5ull ^ ((uint64_t)id << 8);
    for (uint64_t k = 0; k + 8 <= n; k += 8)
        memcpy((char *)p + k, &w, 8);
}

/* ---- exact order -------------------------------------------------------------------------------- */
typedef struct xrun {
    const hk_rprog_t *rp;
    const hk_replay_opts_t *o;
    hk_interp_t in;
    _Atomic uint32_t turn;
    _Atomic uint32_t stop;
    hk_verify_failure_t fail;
    int failed;
} xrun_t;

typedef struct xarg {
    xrun_t *x;
    unsigned t;
} xarg_t;

static int xstep(xrun_t *x, size_t i, unsigned t, hk_verify_failure_t *f)
{
    const hk_rprog_t *rp = x->rp;
    if (do_set(rp, i, x->o))
        return 0;
    const hk_op_t *op = &rp->prog.ops[i];
    if (op->kind == HK_OP_SET && op->id >= hk_op_knob_count)
        return 0;
    hk_op_result_t r;
    int bad = hk_interp_step(&x->in, i, t, &r, f);
    if (!bad && x->o->touch && !(x->o->checks & HK_CHECK_CONTENT) && r.status == HK_RES_OK && r.ptr &&
        (hk_op_allocates(op->kind)))
        touch_block(r.ptr, r.usable, op->id);
    return bad;
}

static int xwait(xrun_t *x, uint32_t want, unsigned t)
{
    for (unsigned spin = 0;; spin++) {
        uint32_t v = atomic_load_explicit(&x->turn, memory_order_acquire);
        if (atomic_load_explicit(&x->stop, memory_order_acquire))
            return -1;
        if (v == want)
            return 0;
        if (spin < 128)
            relax();
        else
            futex(&x->turn, FUTEX_WAIT_BITSET, v, 1u << (t % 32));
    }
}

static void xstop(xrun_t *x)
{
    atomic_store_explicit(&x->stop, 1, memory_order_release);
    atomic_store_explicit(&x->turn, UINT32_MAX, memory_order_release);
    futex(&x->turn, FUTEX_WAKE_BITSET, INT_MAX, FUTEX_BITSET_MATCH_ANY);
}

static void *xmain(void *arg)
{
    xrun_t *x = ((xarg_t *)arg)->x;
    unsigned t = ((xarg_t *)arg)->t;
    const hk_rprog_t *rp = x->rp;
    size_t n = rp->prog.n;
    for (size_t i = 0; i < n; i++) {
        if (rp->meta[i].thread != t)
            continue;
        if (xwait(x, (uint32_t)i, t) != 0)
            break;
        if (xstep(x, i, t, &x->fail)) {
            x->failed = 1;
            xstop(x);
            break;
        }
        atomic_store_explicit(&x->turn, (uint32_t)(i + 1), memory_order_release);
        if (i + 1 == n)
            futex(&x->turn, FUTEX_WAKE_BITSET, INT_MAX, FUTEX_BITSET_MATCH_ANY);
        else if (rp->meta[i + 1].thread != t)
            futex(&x->turn, FUTEX_WAKE_BITSET, INT_MAX, 1u << (rp->meta[i + 1].thread % 32));
    }
    xwait(x, (uint32_t)n, t); /* threads exit together: their teardown must not overlap later ops */
    return NULL;
}

static void interp_opts(const hk_replay_opts_t *o, hk_interp_opts_t *io)
{
    memset(io, 0, sizeof *io);
    io->flags = o->checks | (o->allow_large ? HK_INTERP_ALLOW_LARGE : 0u);
    io->max_size = o->max_size;
    io->thread_check_period = o->sll_period;
}

static int run_exact(const hk_rprog_t *rp, const hk_replay_opts_t *o, hk_verify_failure_t *f)
{
    xrun_t *x = calloc(1, sizeof *x);
    if (!x)
        return hk_verify_fail(f, "interp", "out of memory");
    x->rp = rp;
    x->o = o;
    hk_verify_failure_clear(&x->fail);
    hk_interp_opts_t io;
    interp_opts(o, &io);
    if (hk_interp_init(&x->in, &rp->prog, &hk_backend_hakmem, &io) != 0) {
        free(x);
        return hk_verify_fail(f, "interp", "out of memory");
    }
    uint32_t T = rp->nthreads ? rp->nthreads : 1;
    int bad = 0;
    if (T == 1) {
        /* one recorded thread: no turnstile, the calling thread runs it */
        for (size_t i = 0; i < rp->prog.n && !bad; i++)
            bad = xstep(x, i, 0, &x->fail);
        x->failed = bad;
    } else {
        pthread_t *th = calloc(T, sizeof *th);
        xarg_t *args = calloc(T, sizeof *args);
        uint8_t *used = calloc(T, 1);
        int started_fail = 0;
        if (!th || !args || !used) {
            free(th), free(args), free(used);
            hk_interp_destroy(&x->in);
            free(x);
            return hk_verify_fail(f, "interp", "out of memory");
        }
        for (size_t i = 0; i < rp->prog.n; i++)
            used[rp->meta[i].thread] = 1;
        for (uint32_t t = 0; t < T; t++) {
            if (!used[t])
                continue;
            args[t].x = x;
            args[t].t = t;
            if (pthread_create(&th[t], NULL, xmain, &args[t]) != 0) {
                started_fail = 1;
                xstop(x);
                used[t] = 0;
                for (uint32_t k = t + 1; k < T; k++)
                    used[k] = 0;
                break;
            }
        }
        for (uint32_t t = 0; t < T; t++)
            if (used[t])
                pthread_join(th[t], NULL);
        free(th), free(args), free(used);
        if (started_fail && !x->failed) {
            hk_verify_fail(&x->fail, "interp", "pthread_create failed");
            x->failed = 1;
        }
    }
    bad = x->failed;
    if (!bad)
        bad = hk_interp_finish(&x->in, &x->fail);
    if (bad && f)
        *f = x->fail;
    hk_interp_destroy(&x->in);
    free(x);
    return bad;
}

/* ---- dependency order ----------------------------------------------------------------------------- */
typedef struct drun {
    const hk_rprog_t *rp;
    const hk_replay_opts_t *o;
    int32_t *dep;              /* op that must finish first (another thread's op on the same block), or -1 */
    _Atomic uint32_t *done;    /* 0 not yet, 1 done, 2 someone waits */
    void **blk;
    uint64_t *req;             /* requested bytes of the live block */
    _Atomic uint32_t stop;
    pthread_mutex_t fail_lock;
    hk_verify_failure_t fail;
    int failed;
    uint64_t page;
} drun_t;

static uint64_t stamp_of(uint32_t id, const void *p) { return 0x6b8b4567c0ffee00ull ^ ((uint64_t)id * 0x9e3779b97f4a7c15ull) ^ (uint64_t)(uintptr_t)p; }

static void dstamp(drun_t *d, uint32_t id, void *p, uint64_t req)
{
    if (!p)
        return;
    if (d->o->checks & HK_CHECK_CONTENT) {
        uint64_t s = stamp_of(id, p);
        if (req >= 8)
            memcpy(p, &s, 8);
        if (req >= 16)
            memcpy((char *)p + req - 8, &s, 8);
    } else if (d->o->touch) {
        touch_block(p, req, id);
    }
}

static int dverify(drun_t *d, size_t i, unsigned t, uint32_t id, hk_verify_failure_t *f)
{
    void *p = d->blk[id];
    uint64_t req = d->req[id];
    if (!p || !(d->o->checks & HK_CHECK_CONTENT) || req < 8)
        return 0;
    uint64_t s = stamp_of(id, p), a = 0, b = 0;
    memcpy(&a, p, 8);
    if (req >= 16)
        memcpy(&b, (char *)p + req - 8, 8);
    if (a == s && (req < 16 || b == s))
        return 0;
    hk_verify_fail(f, "shadow.content", "block %u at %p (requested %llu) lost its stamp (%s word changed)", id, p,
                   (unsigned long long)req, a != s ? "first" : "last");
    f->id = id;
    f->ptr = p;
    f->op_index = i;
    f->op = d->rp->prog.ops[i];
    f->thread = t;
    f->backend = "hakmem";
    return 1;
}

static int may_run(const drun_t *d, uint64_t total, int ovf, uint64_t align)
{
    uint64_t max = d->o->max_size ? d->o->max_size : HK_OP_MAX_SIZE_DEFAULT;
    if (ovf || d->o->allow_large || total >= HK_OP_SIZE_HUGE || align >= HK_OP_SIZE_HUGE)
        return 1;
    return total <= max && align <= max;
}

static int dstep(drun_t *d, size_t i, unsigned t, hk_verify_failure_t *f)
{
    const hk_rprog_t *rp = d->rp;
    const hk_op_t *op = &rp->prog.ops[i];
    if (do_set(rp, i, d->o))
        return 0;
    uint64_t total = op->size;
    int ovf = 0;
    switch (op->kind) {
    case HK_OP_ALLOC: case HK_OP_CALLOC: case HK_OP_MEMALIGN: case HK_OP_POSIX_MEMALIGN:
    case HK_OP_ALIGNED_ALLOC: case HK_OP_VALLOC: case HK_OP_PVALLOC: {
        uint64_t align = 0;
        if (op->kind == HK_OP_CALLOC)
            ovf = __builtin_mul_overflow(op->arg, op->size, &total);
        else if (op->kind == HK_OP_MEMALIGN || op->kind == HK_OP_POSIX_MEMALIGN || op->kind == HK_OP_ALIGNED_ALLOC)
            align = op->arg;
        if (!may_run(d, total, ovf, align))
            return 0;
        if (d->blk[op->id]) {
            if (dverify(d, i, t, op->id, f))
                return 1;
            hak_free(d->blk[op->id]);
            d->blk[op->id] = NULL;
        }
        void *p = NULL;
        switch (op->kind) {
        case HK_OP_ALLOC: p = hak_malloc(op->size); break;
        case HK_OP_CALLOC: p = hak_calloc(op->arg, op->size); break;
        case HK_OP_MEMALIGN: p = hak_memalign(op->arg, op->size); break;
        case HK_OP_ALIGNED_ALLOC: p = hak_aligned_alloc(op->arg, op->size); break;
        case HK_OP_VALLOC: p = hak_valloc(op->size); break;
        case HK_OP_PVALLOC: p = hak_pvalloc(op->size); break;
        default: if (hak_posix_memalign(&p, op->arg, op->size) != 0) p = NULL; break;
        }
        d->blk[op->id] = p;
        d->req[op->id] = total;
        dstamp(d, op->id, p, total);
        break;
    }
    case HK_OP_REALLOC: case HK_OP_REALLOCARRAY: {
        if (op->kind == HK_OP_REALLOCARRAY)
            ovf = __builtin_mul_overflow(op->arg, op->size, &total);
        if (!may_run(d, total, ovf, 0))
            return 0;
        if (dverify(d, i, t, op->id, f))
            return 1;
        void *old = d->blk[op->id];
        void *p = op->kind == HK_OP_REALLOC ? hak_realloc(old, op->size) : hak_reallocarray(old, op->arg, op->size);
        if (p) {
            uint64_t keep = d->req[op->id] < total ? d->req[op->id] : total;
            d->blk[op->id] = p;
            d->req[op->id] = total;
            (void)keep;
            dstamp(d, op->id, p, total);
        } else if (old && total == 0 && !ovf) {
            d->blk[op->id] = NULL;
        }
        break;
    }
    case HK_OP_FREE:
        if (d->blk[op->id]) {
            if (dverify(d, i, t, op->id, f))
                return 1;
            hak_free(d->blk[op->id]);
            d->blk[op->id] = NULL;
        }
        break;
    case HK_OP_USABLE:
        if (d->blk[op->id])
            (void)hak_malloc_usable_size(d->blk[op->id]);
        break;
    case HK_OP_SET:
        if (op->id < hk_op_knob_count) {
            char v[32];
            hk_op_knob_value_str(&hk_op_knobs[op->id], op->arg, v, sizeof v);
            hak_debug_set_option(hk_op_knobs[op->id].option, v);
        }
        break;
    default:
        break;
    }
    if ((d->o->checks & HK_CHECK_THREAD) &&
        (op->kind == HK_OP_CHECK || d->o->sll_period <= 1 || i % d->o->sll_period == 0)) {
        hak_check_report_t rep;
        memset(&rep, 0, sizeof rep);
        rep.cls = -1;
        hak_debug_check_thread(&rep);
        if (!rep.ok) {
            hk_verify_fail(f, "sll", "%s", rep.msg[0] ? rep.msg : "TLS-SLL check failed");
            snprintf(f->detail, sizeof f->detail, "%s", rep.check ? rep.check : "");
            f->ptr = rep.ptr;
            f->op_index = i;
            f->op = *op;
            f->thread = t;
            f->backend = "hakmem";
            return 1;
        }
    }
    return 0;
}

typedef struct darg {
    drun_t *d;
    unsigned t;
} darg_t;

static void *dmain(void *arg)
{
    drun_t *d = ((darg_t *)arg)->d;
    unsigned t = ((darg_t *)arg)->t;
    const hk_rprog_t *rp = d->rp;
    hk_verify_failure_t f;
    hk_verify_failure_clear(&f);
    for (size_t i = 0; i < rp->prog.n; i++) {
        if (rp->meta[i].thread != t)
            continue;
        int32_t w = d->dep[i];
        if (w >= 0) {
            for (unsigned spin = 0; atomic_load_explicit(&d->done[w], memory_order_acquire) == 0; spin++) {
                if (atomic_load_explicit(&d->stop, memory_order_relaxed))
                    return NULL;
                if (spin < 256) {
                    relax();
                    continue;
                }
                uint32_t z = 0;
                atomic_compare_exchange_strong(&d->done[w], &z, 2);
                if (z == 1)
                    break;
                struct timespec ts = {0, 10 * 1000 * 1000}; /* re-check stop now and then */
                syscall(SYS_futex, (uint32_t *)&d->done[w], FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 2, &ts, NULL, 0);
            }
        }
        if (atomic_load_explicit(&d->stop, memory_order_relaxed))
            return NULL;
        if (dstep(d, i, t, &f)) {
            pthread_mutex_lock(&d->fail_lock);
            if (!d->failed) {
                d->failed = 1;
                d->fail = f;
            }
            pthread_mutex_unlock(&d->fail_lock);
            atomic_store(&d->stop, 1);
            return NULL;
        }
        if (atomic_exchange_explicit(&d->done[i], 1, memory_order_acq_rel) == 2)
            futex(&d->done[i], FUTEX_WAKE, INT_MAX, 0);
    }
    return NULL;
}

static int run_deps(const hk_rprog_t *rp, const hk_replay_opts_t *o, hk_verify_failure_t *f)
{
    drun_t d;
    memset(&d, 0, sizeof d);
    d.rp = rp;
    d.o = o;
    size_t n = rp->prog.n, ids = rp->prog.id_count ? rp->prog.id_count : 1;
    d.dep = malloc((n ? n : 1) * sizeof *d.dep);
    d.done = calloc(n ? n : 1, sizeof *d.done);
    d.blk = calloc(ids, sizeof *d.blk);
    d.req = calloc(ids, sizeof *d.req);
    int32_t *last = malloc(ids * sizeof *last);
    uint32_t T = rp->nthreads ? rp->nthreads : 1;
    pthread_t *th = calloc(T, sizeof *th);
    darg_t *args = calloc(T, sizeof *args);
    uint8_t *used = calloc(T, 1);
    int bad = 0;
    if (!d.dep || !d.done || !d.blk || !d.req || !last || !th || !args || !used) {
        bad = hk_verify_fail(f, "interp", "out of memory");
        goto out;
    }
    pthread_mutex_init(&d.fail_lock, NULL);
    hk_verify_failure_clear(&d.fail);
    /* the sync edges: a block passing from one thread to another */
    for (size_t k = 0; k < ids; k++)
        last[k] = -1;
    for (size_t i = 0; i < n; i++) {
        const hk_op_t *op = &rp->prog.ops[i];
        d.dep[i] = -1;
        used[rp->meta[i].thread] = 1;
        if (!hk_op_is_block_op(op->kind))
            continue;
        int32_t p = last[op->id];
        if (p >= 0 && rp->meta[p].thread != rp->meta[i].thread)
            d.dep[i] = p;
        last[op->id] = (int32_t)i;
    }
    for (uint32_t t = 0; t < T; t++) {
        if (!used[t])
            continue;
        args[t].d = &d;
        args[t].t = t;
        if (pthread_create(&th[t], NULL, dmain, &args[t]) != 0) {
            atomic_store(&d.stop, 1);
            for (uint32_t k = t; k < T; k++)
                used[k] = 0;
            if (!d.failed) {
                d.failed = 1;
                hk_verify_fail(&d.fail, "interp", "pthread_create failed");
            }
            break;
        }
    }
    for (uint32_t t = 0; t < T; t++)
        if (used[t])
            pthread_join(th[t], NULL);
    bad = d.failed;
    if (bad) {
        if (f)
            *f = d.fail;
    } else {
        for (size_t k = 0; k < ids && !bad; k++) {
            if (!d.blk[k])
                continue;
            if (d.o->checks & HK_CHECK_CONTENT) {
                hk_verify_failure_t g;
                if (dverify(&d, 0, 0, (uint32_t)k, &g)) {
                    g.op_index = HK_AT_END;
                    if (f)
                        *f = g;
                    bad = 1;
                    break;
                }
            }
            hak_free(d.blk[k]);
            d.blk[k] = NULL;
        }
    }
out:
    free(d.dep);
    free(d.done);
    free(d.blk);
    free(d.req);
    free(last);
    free(th);
    free(args);
    free(used);
    return bad;
}

int hk_replay_run(const hk_rprog_t *rp, const hk_replay_opts_t *o, hk_verify_failure_t *f)
{
    if (f)
        hk_verify_failure_clear(f);
    if (rp->prog.n >= UINT32_MAX - 1)
        return hk_verify_fail(f, "interp", "program too long (%zu ops)", rp->prog.n);
    return o->order == HK_ORDER_DEPS ? run_deps(rp, o, f) : run_exact(rp, o, f);
}

/* ---- forked runs ------------------------------------------------------------------------------- */
/* SIGSEGV and SIGBUS are one fault kind here, a wild memory access: which of the two the kernel sends
 * depends on the garbage address and on the register the faulting instruction used (a non-canonical
 * address through the stack or frame pointer raises a stack fault, delivered as SIGBUS), and the replay
 * cannot write the program's own data into its blocks. */
static int memory_fault(const char *s)
{
    return strcmp(s, "signal:SIGSEGV") == 0 || strcmp(s, "signal:SIGBUS") == 0;
}

int hk_sig_matches(const char *expect, const char *got)
{
    if (!expect || !*expect)
        return 1;
    if (strcmp(expect, "report") == 0)
        return strncmp(got, "report:", 7) == 0;
    if (memory_fault(expect) && memory_fault(got))
        return 1;
    return strcmp(expect, got) == 0;
}

#define HK_RESULT_TAG "hakmem-replay-result: "

int hk_replay_forked(const hk_rprog_t *rp, const hk_replay_opts_t *o, int echo, char *sig, size_t siglen,
                     char *detail, size_t detlen)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        close(pfd[0]);
        dup2(pfd[1], 2);
        close(pfd[1]);
        hk_verify_failure_t f;
        int bad = hk_replay_run(rp, o, &f);
        if (bad) {
            fprintf(stderr, HK_RESULT_TAG "FAIL %s ", f.check ? f.check : "?");
            hk_verify_failure_print(stderr, &f);
        } else {
            fprintf(stderr, HK_RESULT_TAG "OK\n");
        }
        fflush(stderr);
        _exit(bad ? 1 : 0);
    }
    close(pfd[1]);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        char tmp[4096];
        ssize_t k = read(pfd[0], tmp, sizeof tmp);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        if (echo)
            fwrite(tmp, 1, (size_t)k, stderr);
        if (buf) {
            if (n + (size_t)k > cap) { /* keep the tail */
                size_t drop = n + (size_t)k - cap;
                if (drop > n)
                    drop = n;
                memmove(buf, buf + drop, n - drop);
                n -= drop;
            }
            size_t c = (size_t)k < cap - n ? (size_t)k : cap - n;
            memcpy(buf + n, tmp + (size_t)k - c, c);
            n += c;
        }
    }
    close(pfd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (buf)
        buf[n] = 0;
    const char *rep = buf ? strstr(buf, "hakmem: fatal: ") : NULL;
    const char *res = buf ? strstr(buf, HK_RESULT_TAG) : NULL;
    if (detail && detlen)
        detail[0] = 0;
    if (rep) {
        const char *s = rep + 15, *e = strchr(s, ':');
        size_t l = e ? (size_t)(e - s) : strcspn(s, "\n");
        snprintf(sig, siglen, "report:%.*s", (int)l, s);
        if (detail)
            snprintf(detail, detlen, "%.*s", (int)strcspn(rep, "\n"), rep);
    } else if (WIFSIGNALED(st)) {
        snprintf(sig, siglen, "signal:%s", hk_signame(WTERMSIG(st)));
    } else if (res && strncmp(res + strlen(HK_RESULT_TAG), "FAIL ", 5) == 0) {
        const char *s = res + strlen(HK_RESULT_TAG) + 5;
        snprintf(sig, siglen, "check:%.*s", (int)strcspn(s, " \n"), s);
        if (detail)
            snprintf(detail, detlen, "%.*s", (int)strcspn(s, "\n"), s);
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && res) {
        snprintf(sig, siglen, "ok");
    } else {
        snprintf(sig, siglen, "exit:%d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    free(buf);
    return 0;
}
