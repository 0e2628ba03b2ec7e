/* Shared pieces of the fuzz harnesses (see fz.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fz.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hakmem_debug.h"

const char *const fz_mode_names[FZ_MODES] = {"minimal", "fast",  "balanced", "learning",
                                             "adaptive", "tight", "lean",     "research"};

static const char *fz_name = "fuzz";
static hk_verify_opts_t fz_vopts;
static int fz_ready;
static int fz_forced_mode = -1;
static int fz_print;
static unsigned fz_mode_now;
static unsigned long long fz_execs[FZ_MODES], fz_execs_modeless;
static struct timespec fz_t0;

void (*fz_crash_hook)(void);

int fz_printing(void)
{
    return fz_print;
}

static double fz_elapsed(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - fz_t0.tv_sec) + (double)(t.tv_nsec - fz_t0.tv_nsec) / 1e9;
}

/* One line per mode that ran, then a total: fuzz/campaign.sh and fuzz/fuzz.mk read these. */
static void fz_report_stats(void)
{
    const char *s = getenv("FUZZ_STATS");
    if (s && strcmp(s, "0") == 0)
        return;
    unsigned long long total = 0;
    double secs = fz_elapsed();
    for (unsigned m = 0; m < FZ_MODES; m++) {
        total += fz_execs[m];
        if (fz_execs[m])
            fprintf(stderr, "fuzz-stats: harness=%s mode=%s execs=%llu\n", fz_name, fz_mode_names[m], fz_execs[m]);
    }
    if (fz_execs_modeless)
        fprintf(stderr, "fuzz-stats: harness=%s mode=none execs=%llu\n", fz_name, fz_execs_modeless);
    total += fz_execs_modeless;
    fprintf(stderr, "fuzz-stats: harness=%s mode=all execs=%llu seconds=%.1f\n", fz_name, total, secs);
    /* What the runs left behind in hakmem (every block was freed: growth here is retained memory). */
    hak_debug_stats_t st;
    if (getenv("FUZZ_COLLECT_AT_EXIT"))
        hak_collect();
    hak_debug_stats(&st);
    fprintf(stderr,
            "fuzz-stats: harness=%s hakmem regions_live=%llu slabs_live=%llu large_live=%llu mapped_mib=%.1f "
            "slabs_abandoned=%llu slabs_adopted=%llu remote_frees=%llu\n",
            fz_name, (unsigned long long)st.superslabs_live, (unsigned long long)st.slabs_live,
            (unsigned long long)st.large_live, (double)st.bytes_mapped / 1048576.0,
            (unsigned long long)st.slabs_abandoned, (unsigned long long)st.slabs_adopted,
            (unsigned long long)st.remote_frees);
}

void fz_init(const char *name)
{
    if (fz_ready)
        return;
    fz_ready = 1;
    fz_name = name;
    clock_gettime(CLOCK_MONOTONIC, &fz_t0);
    hk_interp_libc_ensure();
    hk_verify_opts_default(&fz_vopts);
    const char *w = getenv("FUZZ_OPTS");
    if (w && hk_verify_opts_parse(&fz_vopts, w) != 0)
        fprintf(stderr, "%s: FUZZ_OPTS='%s' has unknown words (ignored)\n", name, w);
    const char *m = getenv("FUZZ_MODE");
    if (m && *m) {
        char *end;
        long v = strtol(m, &end, 10);
        if (*end == 0 && v >= 0 && v < (long)FZ_MODES)
            fz_forced_mode = (int)v;
        for (unsigned i = 0; i < FZ_MODES; i++)
            if (strcasecmp(m, fz_mode_names[i]) == 0)
                fz_forced_mode = (int)i;
        if (fz_forced_mode < 0) {
            fprintf(stderr, "%s: FUZZ_MODE='%s' is not a mode (0..7 or a name)\n", name, m);
            exit(2);
        }
    }
    const char *p = getenv("FUZZ_PRINT");
    fz_print = p && *p && strcmp(p, "0") != 0;
    atexit(fz_report_stats);
}

const hk_verify_opts_t *fz_opts(void)
{
    return &fz_vopts;
}

unsigned fz_pick_mode(uint8_t byte)
{
    unsigned m = fz_forced_mode >= 0 ? (unsigned)fz_forced_mode : byte % FZ_MODES;
    fz_mode_now = m;
    fz_execs[m]++;
    return m;
}

void fz_count_exec(void)
{
    fz_execs_modeless++;
    fz_mode_now = FZ_MODES; /* "none" in reports */
}

static const char *mode_now_name(void)
{
    return fz_mode_now < FZ_MODES ? fz_mode_names[fz_mode_now] : "none";
}

unsigned fz_current_mode(void)
{
    return fz_mode_now;
}

/* ---- program shaping -------------------------------------------------------------------------- */

int fz_prog_prepend_mode(hk_prog_t *p, unsigned mode)
{
    static int knob = -2;
    if (knob == -2)
        knob = hk_op_knob_find("mode", 4);
    if (knob < 0)
        return -1;
    if (hk_prog_reserve(p, p->n + 1) != 0)
        return -1;
    memmove(p->ops + 1, p->ops, p->n * sizeof *p->ops);
    memset(&p->ops[0], 0, sizeof p->ops[0]);
    p->ops[0].kind = HK_OP_SET;
    p->ops[0].id = (uint32_t)knob;
    p->ops[0].arg = mode;
    p->n++;
    hk_prog_recount(p);
    return 0;
}

int fz_prog_prepend_config(hk_prog_t *p, uint8_t byte)
{
    static const uint16_t pct[16] = {1, 2, 3, 5, 8, 12, 20, 30, 50, 75, 100, 150, 200, 400, 600, 800};
    static int knob = -2;
    if (knob == -2)
        knob = hk_op_knob_find("tiny_cap", 8);
    unsigned mode = fz_pick_mode(byte);
    unsigned sel = byte >> 3;
    if (fz_prog_prepend_mode(p, mode) != 0)
        return -1;
    if (sel >= 16 && knob >= 0) {
        /* before the mode op: the interpreter records each knob's value at its first SET */
        if (hk_prog_reserve(p, p->n + 1) != 0)
            return -1;
        memmove(p->ops + 1, p->ops, p->n * sizeof *p->ops);
        memset(&p->ops[0], 0, sizeof p->ops[0]);
        p->ops[0].kind = HK_OP_SET;
        p->ops[0].id = (uint32_t)knob;
        p->ops[0].arg = pct[sel - 16];
        p->n++;
        hk_prog_recount(p);
    }
    return (int)mode;
}

void fz_prog_drop(hk_prog_t *p, unsigned kind_mask)
{
    size_t j = 0;
    for (size_t i = 0; i < p->n; i++)
        if (!(kind_mask & (1u << p->ops[i].kind)))
            p->ops[j++] = p->ops[i];
    p->n = j;
    hk_prog_recount(p);
}

static uint64_t clamp_align(uint64_t a, uint64_t max_align)
{
    if (a <= max_align || a >= HK_OP_SIZE_HUGE)
        return a;
    /* keep the shape: a power of two stays one (bit index folded), a bogus value stays bogus-ish */
    if (!(a & (a - 1)))
        return (uint64_t)1 << (__builtin_ctzll(a) % (__builtin_ctzll(max_align) + 1));
    return a % (max_align + 1);
}

void fz_prog_clamp(hk_prog_t *p, uint64_t max_req, uint64_t max_align)
{
    for (size_t i = 0; i < p->n; i++) {
        hk_op_t *op = &p->ops[i];
        switch (op->kind) {
        case HK_OP_VALLOC: case HK_OP_PVALLOC:
            op->kind = HK_OP_ALLOC;
            /* fall through */
        case HK_OP_ALLOC: case HK_OP_REALLOC:
            if (op->size > max_req && op->size < HK_OP_SIZE_HUGE)
                op->size %= max_req + 1;
            break;
        case HK_OP_CALLOC: case HK_OP_REALLOCARRAY: {
            uint64_t total;
            if (__builtin_mul_overflow(op->arg, op->size, &total) || total >= HK_OP_SIZE_HUGE || total <= max_req)
                break;
            uint64_t per = op->arg ? max_req / op->arg : max_req; /* arg > 0 here: total > max_req */
            op->size %= per + 1;
            break;
        }
        case HK_OP_MEMALIGN: case HK_OP_POSIX_MEMALIGN: case HK_OP_ALIGNED_ALLOC:
            op->arg = clamp_align(op->arg, max_align);
            if (op->size > max_req && op->size < HK_OP_SIZE_HUGE)
                op->size %= max_req + 1;
            break;
        default:
            break;
        }
    }
}

uint64_t fz_tiny_max_request(void)
{
    static uint64_t max;
    if (max)
        return max;
    /* The largest request served by a tiny class, one of at most 1 KiB (hak_debug_size_to_class
     * accounts for canaries). */
    uint64_t n = 1;
    while (n < 65536) {
        int c = hak_debug_size_to_class((size_t)(n + 1));
        if (c < 0 || hak_debug_class_size(c) > 1024)
            break;
        n++;
    }
    max = n;
    return max;
}

void fz_shape_tiny(hk_prog_t *p)
{
    fz_prog_drop(p, 1u << HK_OP_SET | 1u << HK_OP_THREAD);
    fz_prog_clamp(p, fz_tiny_max_request(), 1024);
}

/* ---- running ---------------------------------------------------------------------------------- */

int fz_check_now(hk_verify_failure_t *f)
{
    hak_check_report_t rep;
    memset(&rep, 0, sizeof rep);
    const char *check = "sll";
    if (hak_debug_check_thread(&rep)) {
        memset(&rep, 0, sizeof rep);
        check = "heap";
        if (hak_debug_check_heap(&rep))
            return 0;
    }
    hk_verify_fail(f, check, "%s", rep.msg[0] ? rep.msg : "checker failed without a message");
    if (f) {
        snprintf(f->detail, sizeof f->detail, "%s", rep.check ? rep.check : "");
        f->ptr = rep.ptr;
        f->backend = "hakmem";
    }
    return 1;
}

int fz_leak_check(hk_verify_failure_t *f)
{
    /* Every block of the input was freed: after the calling thread's caches are flushed (and the
     * slabs of exited threads reclaimed), no slab may hold a block and no large block may be live.
     * A block the allocator lost (dropped from a free list, never returned) keeps its slab alive. */
    hak_collect();
    hak_debug_stats_t st;
    hak_debug_stats(&st);
    if (st.slabs_live == 0 && st.large_live == 0)
        return 0;
    hk_verify_fail(f, "leak", "after every block was freed and hak_collect(): %llu slab(s) and %llu large block(s) "
                   "still live (a block the allocator lost or kept twice)",
                   (unsigned long long)st.slabs_live, (unsigned long long)st.large_live);
    if (f) {
        f->backend = "hakmem";
        f->op_index = HK_AT_END;
        snprintf(f->detail, sizeof f->detail, "leak.slabs");
    }
    return 1;
}

static void mark_failure(hk_verify_failure_t *f, const hk_prog_t *prog, size_t i, unsigned t, const char *be)
{
    if (!f)
        return;
    f->op_index = i;
    f->op = prog->ops[i];
    f->thread = t;
    if (!f->backend)
        f->backend = be;
}

/* The thread-cache bound after a free: a free that takes a cache over its cap flushes it, so right after
 * a free of a class-c block the calling thread's count for c is at most its current cap (after a refill
 * the cache may legitimately hold more: the whole local list comes in; the next free flushes). Needs
 * the cap the thread uses now, which hakmem_debug.h does not export yet: hak_debug_tls_cap() is looked
 * up as a weak symbol; without it, a harness that knows the cap provides it (fz_set_cap_source). */
extern size_t hak_debug_tls_cap(int cls) __attribute__((weak));

/* Class of the slab block op frees as its LAST action (FREE; a realloc that moves frees the old block
 * after allocating the new one), or -1. An allocating op on an occupied id frees first and then
 * allocates, and that allocation may reload the caps: the bound does not hold after it. */
static int freed_class(hk_interp_t *a, const hk_op_t *op)
{
    if (op->kind != HK_OP_FREE && op->kind != HK_OP_REALLOC && op->kind != HK_OP_REALLOCARRAY)
        return -1;
    hk_block_t *b = hk_shadow_get(&a->shadow, op->id);
    if (!b->ptr)
        return -1;
    hak_block_info_t bi;
    return hak_debug_block_info(b->ptr, &bi) == HAK_BLOCK_SLAB ? bi.cls : -1;
}

static fz_cap_fn fz_cap_source;

void fz_set_cap_source(fz_cap_fn fn)
{
    fz_cap_source = fn;
}

static int check_cache_bound(int cls, const void *old, hk_interp_t *a, const hk_op_t *op, hk_verify_failure_t *f)
{
    if (cls < 0 || (!hak_debug_tls_cap && !fz_cap_source))
        return 0;
    /* a realloc that stayed in place freed nothing */
    if ((op->kind == HK_OP_REALLOC || op->kind == HK_OP_REALLOCARRAY) && hk_shadow_get(&a->shadow, op->id)->ptr == old)
        return 0;
    size_t count = hak_debug_tls_count(cls), cap = hak_debug_tls_cap ? hak_debug_tls_cap(cls) : fz_cap_source(cls);
    if (count <= cap)
        return 0; /* (SIZE_MAX: the cap is unknown) */
    hk_verify_fail(f, "sll", "after a free of a class %d block the thread cache holds %zu blocks, over its cap %zu "
                   "(a free over the cap must flush)", cls, count, cap);
    if (f) {
        snprintf(f->detail, sizeof f->detail, "sll.cap");
        f->backend = "hakmem";
    }
    return 1;
}

int fz_oracle_run_hooked(const hk_prog_t *prog, const hk_verify_opts_t *vo, fz_hook_fn hook, void *ctx,
                         hk_verify_failure_t *f)
{
    hk_interp_opts_t io;
    memset(&io, 0, sizeof io);
    io.flags = vo->flags & (HK_CHECK_ALL | HK_INTERP_ALLOW_LARGE);
    io.max_size = vo->max_size;
    io.thread_check_period = vo->thread_check_period;
    int with_ref = !(vo->flags & HK_VERIFY_NO_ORACLE);
    int strict = (vo->flags & HK_VERIFY_STRICT) != 0;
    if (f)
        hk_verify_failure_clear(f);
    hk_interp_t a, b;
    if (hk_interp_init(&a, prog, &hk_backend_hakmem, &io) != 0)
        return hk_verify_fail(f, "interp", "out of memory");
    if (with_ref && hk_interp_init(&b, prog, hk_backend_get(HK_BACKEND_GLIBC), &io) != 0) {
        hk_interp_destroy(&a);
        return hk_verify_fail(f, "interp", "out of memory");
    }
    int bad = 0;
    unsigned t = 0;
    for (size_t i = 0; i < prog->n && !bad; i++) {
        const hk_op_t *op = &prog->ops[i];
        if (op->kind == HK_OP_THREAD)
            t = op->id;
        if (hook && hook(ctx, i, f)) {
            mark_failure(f, prog, i, t, "hakmem");
            bad = 1;
            break;
        }
        hk_op_result_t ra, rb;
        int fcls = freed_class(&a, op);
        const void *old = fcls >= 0 ? hk_shadow_get(&a.shadow, op->id)->ptr : NULL;
        if (hk_interp_step(&a, i, t, &ra, f)) {
            bad = 1;
            break;
        }
        if (check_cache_bound(fcls, old, &a, op, f)) {
            mark_failure(f, prog, i, t, "hakmem");
            bad = 1;
            break;
        }
        if (!with_ref)
            continue;
        if (hk_interp_step(&b, i, t, &rb, f)) {
            bad = 1;
            break;
        }
        int tolerated;
        if (hk_oracle_compare_named(op, &ra, &rb, strict, a.be->name, b.be->name, &tolerated, f)) {
            mark_failure(f, prog, i, t, "oracle");
            if (f && hk_op_is_block_op(op->kind))
                f->id = op->id;
            bad = 1;
            break;
        }
        if (tolerated) {
            hk_interp_drop(&a, op->id);
            hk_interp_drop(&b, op->id);
        }
    }
    if (bad) {
        /* The allocator is known broken: leak what is live rather than free into a broken heap. */
        a.failed = 1;
        if (with_ref)
            b.failed = 1;
    } else {
        bad = hk_interp_finish(&a, f);
        if (!bad && with_ref)
            bad = hk_interp_finish(&b, f);
    }
    hk_interp_destroy(&a);
    if (with_ref)
        hk_interp_destroy(&b);
    return bad;
}

void fz_maybe_print(const hk_prog_t *p)
{
    if (!fz_print)
        return;
    fprintf(stderr, "--- %s: mode %s, %zu ops\n", fz_name, mode_now_name(), p->n);
    hk_prog_print_text(stderr, p);
    fprintf(stderr, "---\n");
}

void fz_crash(const hk_verify_failure_t *f, const hk_prog_t *p, const char *what)
{
    fprintf(stderr, "fuzz-crash: harness=%s mode=%s check=%s\n", fz_name, mode_now_name(),
            f && f->check ? f->check : "?");
    if (f)
        hk_verify_failure_print(stderr, f);
    if (what)
        fprintf(stderr, "  %s\n", what);
    if (p && fz_print) {
        fprintf(stderr, "--- program (%zu ops)\n", p->n);
        hk_prog_print_text(stderr, p);
        fprintf(stderr, "---\n");
    } else if (p) {
        fprintf(stderr, "  (FUZZ_PRINT=1 prints the program as text)\n");
    }
    if (fz_crash_hook)
        fz_crash_hook();
    fflush(stderr);
    abort();
}

void fz_crashf(const char *fmt, ...)
{
    fprintf(stderr, "fuzz-crash: harness=%s mode=%s check=", fz_name, mode_now_name());
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (fz_crash_hook)
        fz_crash_hook();
    fflush(stderr);
    abort();
}
