/* Minimizer and C writer (tmin.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "tmin.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct mctx {
    const hk_min_opts_t *o;
    int reverse; /* ddmin tries chunks from the end first */
    char target[96];
    size_t tests;
    double t0;
} mctx_t;

/* The program without the ops whose keep[] is 0. */
static int subset(const hk_rprog_t *rp, const uint8_t *keep, hk_rprog_t *out)
{
    hk_rprog_init(out);
    for (size_t i = 0; i < rp->prog.n; i++)
        if (keep[i] && hk_rprog_push(out, rp->prog.ops[i], rp->meta[i]) != 0)
            return -1;
    if (rp->nraw) {
        out->raw = malloc(rp->nraw * sizeof *out->raw);
        if (!out->raw)
            return -1;
        memcpy(out->raw, rp->raw, rp->nraw * sizeof *out->raw);
        out->nraw = rp->nraw;
    }
    out->nthreads = rp->nthreads;
    return 0;
}

static int still_fails(mctx_t *m, const hk_rprog_t *rp, const uint8_t *keep)
{
    hk_rprog_t s;
    if (subset(rp, keep, &s) != 0) {
        hk_rprog_free(&s);
        return 0;
    }
    char sig[96];
    m->tests++;
    int ok = hk_replay_forked(&s, &m->o->replay, 0, sig, sizeof sig, NULL, 0) == 0 && hk_sig_matches(m->target, sig);
    hk_rprog_free(&s);
    return ok;
}

static int over_budget(const mctx_t *m)
{
    return m->o->budget_s > 0 && now_s() - m->t0 > m->o->budget_s;
}

/* ddmin over units: unit_of[i] names the unit of op i (UINT32_MAX = not removable here). */
static int ddmin(mctx_t *m, const hk_rprog_t *rp, uint8_t *keep, const uint32_t *unit_of, uint32_t nunits)
{
    if (nunits == 0)
        return 0;
    uint8_t *alive = malloc(nunits);
    uint8_t *trial = malloc(rp->prog.n ? rp->prog.n : 1);
    uint32_t *ids = malloc(nunits * sizeof *ids);
    uint8_t *rm = calloc(nunits, 1);
    if (!alive || !trial || !ids || !rm) {
        free(alive), free(trial), free(ids), free(rm);
        return -1;
    }
    memset(alive, 0, nunits);
    for (size_t i = 0; i < rp->prog.n; i++)
        if (keep[i] && unit_of[i] != UINT32_MAX)
            alive[unit_of[i]] = 1;
    int removed_any = 0;
    for (;;) {
        uint32_t na = 0;
        for (uint32_t u = 0; u < nunits; u++)
            if (alive[u])
                ids[na++] = u;
        if (na == 0)
            break;
        uint32_t chunk = na / 2 ? na / 2 : 1;
        int progress = 0;
        while (chunk >= 1 && !over_budget(m)) {
            progress = 0;
            uint32_t nchunks = (na + chunk - 1) / chunk;
            for (uint32_t c = 0; c < nchunks && !over_budget(m); c++) {
                uint32_t start = (m->reverse ? nchunks - 1 - c : c) * chunk;
                uint32_t end = start + chunk < na ? start + chunk : na;
                int any = 0;
                for (uint32_t k = start; k < end; k++)
                    any |= alive[ids[k]];
                if (!any)
                    continue;
                memcpy(trial, keep, rp->prog.n);
                for (uint32_t k = start; k < end; k++)
                    rm[ids[k]] = alive[ids[k]];
                for (size_t i = 0; i < rp->prog.n; i++)
                    if (unit_of[i] != UINT32_MAX && rm[unit_of[i]])
                        trial[i] = 0;
                for (uint32_t k = start; k < end; k++)
                    rm[ids[k]] = 0;
                if (still_fails(m, rp, trial)) {
                    memcpy(keep, trial, rp->prog.n);
                    for (uint32_t k = start; k < end; k++)
                        alive[ids[k]] = 0;
                    progress = removed_any = 1;
                    if (m->o->verbose)
                        fprintf(stderr, "minimize: removed units %u..%u (test %zu)\n", start, end - 1, m->tests);
                }
            }
            if (chunk == 1)
                break;
            if (!progress)
                chunk /= 2;
        }
        if (!progress || over_budget(m))
            break;
    }
    free(alive), free(trial), free(ids), free(rm);
    return removed_any;
}

/* Units = block lifecycles: every op on one id from the op that gives it a block to the FREE that ends
 * it (a realloc stays in the same lifecycle). */
static int phase_lifecycles(mctx_t *m, const hk_rprog_t *rp, uint8_t *keep)
{
    size_t n = rp->prog.n;
    uint32_t *unit = malloc((n ? n : 1) * sizeof *unit);
    uint32_t *cur = malloc((rp->prog.id_count ? rp->prog.id_count : 1) * sizeof *cur);
    if (!unit || !cur) {
        free(unit), free(cur);
        return -1;
    }
    for (uint32_t k = 0; k < rp->prog.id_count; k++)
        cur[k] = UINT32_MAX;
    uint32_t nu = 0;
    for (size_t i = 0; i < n; i++) {
        const hk_op_t *op = &rp->prog.ops[i];
        unit[i] = UINT32_MAX;
        if (!keep[i] || !hk_op_is_block_op(op->kind))
            continue;
        if (cur[op->id] == UINT32_MAX)
            cur[op->id] = nu++;
        unit[i] = cur[op->id];
        if (op->kind == HK_OP_FREE)
            cur[op->id] = UINT32_MAX; /* the next use of the id is another block */
    }
    int r = ddmin(m, rp, keep, unit, nu);
    free(unit), free(cur);
    return r;
}

static int phase_ops(mctx_t *m, const hk_rprog_t *rp, uint8_t *keep)
{
    size_t n = rp->prog.n;
    uint32_t *unit = malloc((n ? n : 1) * sizeof *unit);
    if (!unit)
        return -1;
    uint32_t nu = 0;
    /* SETs are configuration: a removal that keeps the failure without them may only have found another
     * way to fail (e.g. filling slabs instead of a small cache); phase_sets tries them last. */
    for (size_t i = 0; i < n; i++)
        unit[i] = (keep[i] && rp->prog.ops[i].kind != HK_OP_THREAD && rp->prog.ops[i].kind != HK_OP_SET) ? nu++ : UINT32_MAX;
    int r = ddmin(m, rp, keep, unit, nu);
    free(unit);
    return r;
}

static int phase_sets(mctx_t *m, const hk_rprog_t *rp, uint8_t *keep)
{
    size_t n = rp->prog.n;
    uint8_t *trial = malloc(n ? n : 1);
    if (!trial)
        return -1;
    int removed = 0;
    for (size_t i = 0; i < n && !over_budget(m); i++) {
        if (!keep[i] || rp->prog.ops[i].kind != HK_OP_SET)
            continue;
        memcpy(trial, keep, n);
        trial[i] = 0;
        if (still_fails(m, rp, trial)) {
            keep[i] = 0;
            removed = 1;
        }
    }
    free(trial);
    return removed;
}

static int phase_threads(mctx_t *m, const hk_rprog_t *rp, uint8_t *keep)
{
    size_t n = rp->prog.n;
    uint32_t *unit = malloc((n ? n : 1) * sizeof *unit);
    if (!unit)
        return -1;
    for (size_t i = 0; i < n; i++)
        unit[i] = (keep[i] && rp->prog.ops[i].kind != HK_OP_SET) ? rp->meta[i].thread : UINT32_MAX;
    int r = ddmin(m, rp, keep, unit, rp->nthreads);
    free(unit);
    return r;
}

/* Drops the longest prefix of ops (SETs stay: they set the configuration) that keeps the failure: a
 * crash usually depends on recent history only, and ddmin alone can stop in a local minimum that keeps
 * old blocks around just to fill slabs. Binary search on the cut point (not guaranteed monotonic:
 * a cut is kept only when it was tested). */
static int phase_prefix(mctx_t *m, const hk_rprog_t *rp, uint8_t *keep)
{
    size_t n = rp->prog.n;
    uint8_t *trial = malloc(n ? n : 1);
    if (!trial)
        return -1;
    size_t cut = 0, step = n / 128;
    int removed = 0;
    /* coarse scan from the longest cut down (failure is not monotonic in the cut), then refine */
    for (int k = 63; k >= 1 && !over_budget(m); k--) {
        size_t c = n * (size_t)k / 64;
        memcpy(trial, keep, n);
        int any = 0;
        for (size_t i = 0; i < c; i++)
            if (trial[i] && rp->prog.ops[i].kind != HK_OP_SET && rp->prog.ops[i].kind != HK_OP_THREAD) {
                trial[i] = 0;
                any = 1;
            }
        if (any && still_fails(m, rp, trial)) {
            memcpy(keep, trial, n);
            cut = c;
            removed = 1;
            break;
        }
    }
    while (step >= 1 && !over_budget(m)) {
        if (cut + step < n) {
            memcpy(trial, keep, n);
            int any = 0;
            for (size_t i = 0; i < cut + step; i++)
                if (trial[i] && rp->prog.ops[i].kind != HK_OP_SET && rp->prog.ops[i].kind != HK_OP_THREAD) {
                    trial[i] = 0;
                    any = 1;
                }
            if (any && still_fails(m, rp, trial)) {
                memcpy(keep, trial, n);
                cut += step;
                removed = 1;
                if (m->o->verbose)
                    fprintf(stderr, "minimize: dropped the first %zu ops (test %zu)\n", cut, m->tests);
                continue;
            }
        }
        step /= 2;
    }
    free(trial);
    return removed;
}

int hk_minimize(hk_rprog_t *rp, const hk_min_opts_t *o, char *sig, size_t siglen, size_t *tests)
{
    mctx_t m;
    memset(&m, 0, sizeof m);
    m.o = o;
    m.t0 = now_s();
    char first[96], det[256];
    if (hk_replay_forked(rp, &o->replay, 0, first, sizeof first, det, sizeof det) != 0)
        return -1;
    m.tests++;
    if (o->target && *o->target) {
        if (!hk_sig_matches(o->target, first)) {
            snprintf(sig, siglen, "%s", first);
            return -1;
        }
    } else if (strcmp(first, "ok") == 0) {
        snprintf(sig, siglen, "%s", first);
        return -1;
    }
    snprintf(m.target, sizeof m.target, "%s", first);
    /* Two passes, chunks tried from the front and from the back: delta debugging stops in a local
     * minimum (1-minimal), and which one depends on the order; the smaller result is kept. */
    uint8_t *keep = malloc(rp->prog.n ? rp->prog.n : 1), *best = malloc(rp->prog.n ? rp->prog.n : 1);
    if (!keep || !best) {
        free(keep), free(best);
        return -1;
    }
    size_t best_n = SIZE_MAX;
    for (m.reverse = 0; m.reverse < 2; m.reverse++) {
    memset(keep, 1, rp->prog.n);
    for (int round = 0; round < 8 && !over_budget(&m); round++) {
        int p = phase_prefix(&m, rp, keep);
        if (p >= 0 && phase_threads(&m, rp, keep) > 0) /* cheap, and big when threads only add noise */
            p = 1;
        int a = phase_lifecycles(&m, rp, keep);
        int b = phase_ops(&m, rp, keep);
        int c = phase_threads(&m, rp, keep);
        if (p < 0 || a < 0 || b < 0 || c < 0)
            break;
        if (!p && !a && !b && !c)
            break;
    }
    (void)phase_sets(&m, rp, keep);
    size_t kept = 0;
    for (size_t i = 0; i < rp->prog.n; i++)
        kept += keep[i];
    if (kept < best_n) {
        best_n = kept;
        memcpy(best, keep, rp->prog.n);
    }
    if (m.o->verbose)
        fprintf(stderr, "minimize: pass %d kept %zu ops\n", m.reverse, kept);
    }
    memcpy(keep, best, rp->prog.n);
    free(best);
    hk_rprog_t out;
    if (subset(rp, keep, &out) == 0) {
        hk_rprog_compact(&out);
        memcpy(out.expect, rp->expect, sizeof out.expect);
        hk_rprog_free(rp);
        *rp = out;
    }
    free(keep);
    snprintf(sig, siglen, "%s", m.target);
    if (tests)
        *tests = m.tests;
    return 0;
}

/* ---- C writer ----------------------------------------------------------------------------------- */
int hk_write_c(FILE *f, const hk_rprog_t *rp, const char *origin, const char *signature)
{
    uint32_t T = rp->nthreads ? rp->nthreads : 1, ids = rp->prog.id_count ? rp->prog.id_count : 1;
    size_t n = rp->prog.n;
    fprintf(f, "/* Generated by hakmem-trace to-c from %s: %zu ops on %u threads.\n", origin, n, T);
    if (signature && *signature)
        fprintf(f, " * Failure it reproduced when generated: %s.\n", signature);
    fprintf(f, " *\n"
               " * Replays the ops in their recorded order, one thread per recorded thread (a turnstile admits\n"
               " * each op at its turn; threads stay alive until the last op). Every block gets a pattern over\n"
               " * its first bytes; a new block must not overlap a live one, and a block must keep its pattern\n"
               " * until it is freed or reallocated. Exit 0: the allocator passed; a failed check prints FAIL\n"
               " * and aborts. */\n"
               "#define _GNU_SOURCE\n#include <pthread.h>\n#include <sched.h>\n#include <stdatomic.h>\n"
               "#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\n"
               "#include \"hakmem.h\"\n#include \"hakmem_debug.h\"\n\n");
    fprintf(f, "#define NIDS %u\n#define NOPS %zu\n#define NTHREADS %u\n\n", ids, n, T);
    fprintf(f, "static unsigned char *blk[NIDS];\nstatic size_t req[NIDS];\nstatic _Atomic unsigned turn;\n\n"
               "static void fail(const char *what, unsigned id)\n{\n"
               "    fprintf(stderr, \"FAIL %%s: block %%u at %%p (op %%u)\\n\", what, id, (void *)blk[id], atomic_load(&turn));\n"
               "    abort();\n}\n\n"
               "static void wait_turn(unsigned k)\n{\n"
               "    for (unsigned spin = 0; atomic_load_explicit(&turn, memory_order_acquire) != k; spin++)\n"
               "        if (spin > 64)\n            sched_yield();\n}\n\n"
               "static void next_turn(void) { atomic_fetch_add_explicit(&turn, 1, memory_order_release); }\n\n"
               "static unsigned char pat(unsigned id, size_t k) { return (unsigned char)(0x5a ^ (id * 7) ^ k); }\n\n"
               "static size_t span(unsigned id) { return req[id] < 256 ? req[id] : 256; }\n\n"
               "static void check(unsigned id)\n{\n"
               "    for (size_t k = 0; blk[id] && k < span(id); k++)\n"
               "        if (blk[id][k] != pat(id, k))\n            fail(\"content changed\", id);\n}\n\n"
               "static void got(unsigned id, void *p, size_t n)\n{\n"
               "    if (!p)\n        return;\n"
               "    for (unsigned o = 0; o < NIDS; o++) {\n"
               "        if (o == id || !blk[o])\n            continue;\n"
               "        unsigned char *a = p, *b = blk[o];\n"
               "        size_t na = n ? n : 1, nb = req[o] ? req[o] : 1;\n"
               "        if (a < b + nb && b < a + na)\n            fail(\"overlaps a live block\", o);\n"
               "    }\n"
               "    blk[id] = p;\n    req[id] = n;\n"
               "    for (size_t k = 0; k < span(id); k++)\n        blk[id][k] = pat(id, k);\n}\n\n"
               "static void drop(unsigned id)\n{\n"
               "    if (!blk[id])\n        return;\n"
               "    check(id);\n    hak_free(blk[id]);\n    blk[id] = NULL;\n}\n\n"
               "__attribute__((unused)) static void *re(unsigned id, size_t n)\n{\n"
               "    check(id);\n    void *p = hak_realloc(blk[id], n);\n"
               "    if (p || n == 0)\n        blk[id] = NULL;\n    return p;\n}\n\n");
    for (uint32_t t = 0; t < T; t++) {
        fprintf(f, "static void *thread%u(void *arg)\n{\n    (void)arg;\n", t);
        for (size_t i = 0; i < n; i++) {
            if (rp->meta[i].thread != t)
                continue;
            const hk_op_t *op = &rp->prog.ops[i];
            unsigned id = op->id;
            unsigned long long a = (unsigned long long)op->arg, s = (unsigned long long)op->size;
            fprintf(f, "    wait_turn(%zu); ", i);
            switch (op->kind) {
            case HK_OP_ALLOC: fprintf(f, "drop(%u); got(%u, hak_malloc(%lluu), %lluu);", id, id, s, s); break;
            case HK_OP_CALLOC: fprintf(f, "drop(%u); got(%u, hak_calloc(%lluu, %lluu), %lluu * %lluu);", id, id, a, s, a, s); break;
            case HK_OP_MEMALIGN: fprintf(f, "drop(%u); got(%u, hak_memalign(%lluu, %lluu), %lluu);", id, id, a, s, s); break;
            case HK_OP_ALIGNED_ALLOC: fprintf(f, "drop(%u); got(%u, hak_aligned_alloc(%lluu, %lluu), %lluu);", id, id, a, s, s); break;
            case HK_OP_VALLOC: fprintf(f, "drop(%u); got(%u, hak_valloc(%lluu), %lluu);", id, id, s, s); break;
            case HK_OP_PVALLOC: fprintf(f, "drop(%u); got(%u, hak_pvalloc(%lluu), %lluu);", id, id, s, s); break;
            case HK_OP_POSIX_MEMALIGN:
                fprintf(f, "{ void *p = NULL; drop(%u); if (hak_posix_memalign(&p, %lluu, %lluu) == 0) got(%u, p, %lluu); }", id, a, s, id, s);
                break;
            case HK_OP_REALLOC: fprintf(f, "{ void *p = re(%u, %lluu); got(%u, p, %lluu); }", id, s, id, s); break;
            case HK_OP_REALLOCARRAY:
                fprintf(f, "{ check(%u); void *p = hak_reallocarray(blk[%u], %lluu, %lluu); if (p) { blk[%u] = NULL; got(%u, p, %lluu * %lluu); } }",
                        id, id, a, s, id, id, a, s);
                break;
            case HK_OP_FREE: fprintf(f, "drop(%u);", id); break;
            case HK_OP_USABLE: fprintf(f, "if (blk[%u]) (void)hak_malloc_usable_size(blk[%u]);", id, id); break;
            case HK_OP_SET:
                if (rp->meta[i].flags & HK_RM_RAWSET) {
                    if (id < rp->nraw)
                        fprintf(f, "hak_debug_set_option(\"%s\", \"%s\");", rp->raw[id].name, rp->raw[id].value);
                } else if (id < hk_op_knob_count) {
                    char v[32];
                    hk_op_knob_value_str(&hk_op_knobs[id], op->arg, v, sizeof v);
                    fprintf(f, "hak_debug_set_option(\"%s\", \"%s\");", hk_op_knobs[id].option, v);
                }
                break;
            case HK_OP_CHECK: fprintf(f, "{ hak_check_report_t r; memset(&r, 0, sizeof r); if (!hak_debug_check_heap(&r) || !r.ok) { fprintf(stderr, \"FAIL heap: %%s\\n\", r.msg); abort(); } }"); break;
            default: break;
            }
            fprintf(f, " next_turn();\n");
        }
        fprintf(f, "    wait_turn(NOPS);\n    return NULL;\n}\n\n");
    }
    fprintf(f, "int main(void)\n{\n    void *(*fn[NTHREADS])(void *) = {");
    for (uint32_t t = 0; t < T; t++)
        fprintf(f, "%sthread%u", t ? ", " : "", t);
    fprintf(f, "};\n    pthread_t th[NTHREADS];\n"
               "    for (unsigned t = 0; t < NTHREADS; t++)\n"
               "        if (pthread_create(&th[t], NULL, fn[t], NULL) != 0) {\n"
               "            perror(\"pthread_create\");\n            return 2;\n        }\n"
               "    for (unsigned t = 0; t < NTHREADS; t++)\n        pthread_join(th[t], NULL);\n"
               "    for (unsigned id = 0; id < NIDS; id++)\n        drop(id);\n"
               "    printf(\"ok: %%d ops replayed, every check held\\n\", NOPS);\n    return 0;\n}\n");
    return ferror(f) ? -1 : 0;
}
