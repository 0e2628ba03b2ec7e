/* Trace -> replay program (tconv.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "tconv.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- replay programs -------------------------------------------------------------------------- */
void hk_rprog_init(hk_rprog_t *rp)
{
    memset(rp, 0, sizeof *rp);
    hk_prog_init(&rp->prog);
}

void hk_rprog_free(hk_rprog_t *rp)
{
    hk_prog_free(&rp->prog);
    free(rp->meta);
    free(rp->raw);
    memset(rp, 0, sizeof *rp);
    hk_prog_init(&rp->prog);
}

int hk_rprog_push(hk_rprog_t *rp, hk_op_t op, hk_rmeta_t m)
{
    if (rp->prog.n + 1 > rp->meta_cap) {
        size_t nc = rp->meta_cap ? rp->meta_cap * 2 : 256;
        hk_rmeta_t *nm = realloc(rp->meta, nc * sizeof *nm);
        if (!nm)
            return -1;
        rp->meta = nm;
        rp->meta_cap = nc;
    }
    /* hk_prog_push keeps id_count; a raw SET's id indexes rp->raw, not a knob: count it by hand */
    if (hk_prog_reserve(&rp->prog, rp->prog.n + 1) != 0)
        return -1;
    rp->prog.ops[rp->prog.n] = op;
    rp->meta[rp->prog.n] = m;
    rp->prog.n++;
    if (hk_op_is_block_op(op.kind) && op.id + 1 > rp->prog.id_count)
        rp->prog.id_count = op.id + 1;
    if (op.kind == HK_OP_THREAD && op.id + 1 > rp->prog.thread_count)
        rp->prog.thread_count = op.id + 1;
    if ((uint32_t)m.thread + 1 > rp->nthreads)
        rp->nthreads = (uint32_t)m.thread + 1;
    return 0;
}

int hk_rprog_copy(hk_rprog_t *dst, const hk_rprog_t *src)
{
    hk_rprog_init(dst);
    for (size_t i = 0; i < src->prog.n; i++)
        if (hk_rprog_push(dst, src->prog.ops[i], src->meta[i]) != 0)
            return -1;
    if (src->nraw) {
        dst->raw = malloc(src->nraw * sizeof *dst->raw);
        if (!dst->raw)
            return -1;
        memcpy(dst->raw, src->raw, src->nraw * sizeof *dst->raw);
        dst->nraw = src->nraw;
    }
    dst->nthreads = src->nthreads;
    memcpy(dst->expect, src->expect, sizeof dst->expect);
    return 0;
}

const char *hk_signame(int sig)
{
    static __thread char buf[16];
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGABRT: return "SIGABRT";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGTRAP: return "SIGTRAP";
    default: snprintf(buf, sizeof buf, "SIG%d", sig); return buf;
    }
}

/* ---- the merge -------------------------------------------------------------------------------- */
enum { ROLE_ACQ = 1, ROLE_REL = 2, ROLE_USE = 3 };

typedef struct tev {
    uint64_t in, out, size, arg, old_usable;
    uint64_t e_in, key;
    uint32_t xin, xout; /* cross events of the in / out address, UINT32_MAX if none */
    uint8_t kind, path, flags, err;
    uint8_t role_in, role_out;
    uint8_t pad[2];
} tev_t;

typedef struct xev {
    uint64_t key, e_in;
    uint32_t thread, pos;
    uint32_t addr; /* address entry */
    uint8_t role, done;
    uint8_t pad[2];
} xev_t;

typedef struct aent {
    uint64_t addr;
    uint32_t first_thread;
    uint8_t multi, seen;
    uint8_t pad[2];
    uint32_t holder; /* thread of the op that made the newest live id (valid while nids > 0) */
    uint32_t *ids; /* live ids at this address, most recent last */
    uint32_t nids, capids;
    uint32_t xstart, xend, xcur; /* this address's cross events in the global array, and the first not done */
} aent_t;

typedef struct amap {
    uint32_t *slot; /* entry index + 1, 0 = empty */
    size_t cap;
    aent_t *e;
    size_t n, ecap;
} amap_t;

static size_t ahash(uint64_t a, size_t cap)
{
    a ^= a >> 33;
    a *= 0xff51afd7ed558ccdull;
    a ^= a >> 33;
    return (size_t)a & (cap - 1);
}

static aent_t *amap_get(amap_t *m, uint64_t addr, int create)
{
    if (m->cap == 0 || (m->n + 1) * 2 > m->cap) {
        if (!create && m->cap)
            goto lookup;
        size_t nc = m->cap ? m->cap * 2 : 1024;
        uint32_t *ns = calloc(nc, sizeof *ns);
        if (!ns)
            return NULL;
        for (size_t i = 0; i < m->n; i++) {
            size_t j = ahash(m->e[i].addr, nc);
            while (ns[j])
                j = (j + 1) & (nc - 1);
            ns[j] = (uint32_t)i + 1;
        }
        free(m->slot);
        m->slot = ns;
        m->cap = nc;
    }
lookup:
    for (size_t j = ahash(addr, m->cap);; j = (j + 1) & (m->cap - 1)) {
        if (m->slot[j] == 0) {
            if (!create)
                return NULL;
            if (m->n == m->ecap) {
                size_t nc = m->ecap ? m->ecap * 2 : 1024;
                aent_t *ne = realloc(m->e, nc * sizeof *ne);
                if (!ne)
                    return NULL;
                m->e = ne;
                m->ecap = nc;
            }
            aent_t *e = &m->e[m->n];
            memset(e, 0, sizeof *e);
            e->addr = addr;
            e->first_thread = UINT32_MAX;
            m->slot[j] = (uint32_t)++m->n;
            return e;
        }
        if (m->e[m->slot[j] - 1].addr == addr)
            return &m->e[m->slot[j] - 1];
    }
}

static void amap_free(amap_t *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->e[i].ids);
    free(m->e);
    free(m->slot);
}

static int is_alloc_kind(unsigned k)
{
    return k == HK_OP_ALLOC || k == HK_OP_CALLOC || k == HK_OP_MEMALIGN || k == HK_OP_POSIX_MEMALIGN ||
           k == HK_OP_ALIGNED_ALLOC || k == HK_OP_VALLOC || k == HK_OP_PVALLOC;
}
static int is_realloc_kind(unsigned k) { return k == HK_OP_REALLOC || k == HK_OP_REALLOCARRAY; }

/* Roles of an event's addresses. */
static void set_roles(tev_t *e)
{
    e->role_in = e->role_out = 0;
    if (is_alloc_kind(e->kind)) {
        if (e->out)
            e->role_out = ROLE_ACQ;
    } else if (e->kind == HK_OP_FREE) {
        if (e->in)
            e->role_in = ROLE_REL;
    } else if (e->kind == HK_OP_USABLE) {
        if (e->in)
            e->role_in = ROLE_USE;
    } else if (is_realloc_kind(e->kind)) {
        int failed = (e->flags & HK_TR_F_FAILED) != 0;
        if (e->in) {
            if (failed || e->out == e->in || (e->flags & HK_TR_F_INFLIGHT))
                e->role_in = ROLE_USE;
            else
                e->role_in = ROLE_REL;
        }
        if (e->out && e->out != e->in)
            e->role_out = ROLE_ACQ;
    }
}

typedef struct conv {
    hk_rprog_t *rp;
    hk_rprog_t synth; /* re-created allocations, emitted before everything */
    amap_t am;
    uint32_t *pool;
    size_t npool, cappool;
    uint32_t next_id;
    const hk_trace_file_t *tf;
    char *err;
    size_t errlen;
} conv_t;

static int new_id(conv_t *c, uint32_t *out)
{
    if (c->npool) {
        *out = c->pool[--c->npool];
        return 0;
    }
    if (c->next_id >= HK_OP_MAX_IDS) {
        snprintf(c->err, c->errlen, "more than %u blocks live at once: beyond the op-program id space", HK_OP_MAX_IDS);
        return -1;
    }
    *out = c->next_id++;
    return 0;
}

static int free_id(conv_t *c, uint32_t id)
{
    if (c->npool == c->cappool) {
        size_t nc = c->cappool ? c->cappool * 2 : 1024;
        uint32_t *np = realloc(c->pool, nc * sizeof *np);
        if (!np)
            return -1;
        c->pool = np;
        c->cappool = nc;
    }
    c->pool[c->npool++] = id;
    return 0;
}

static int push_live(aent_t *a, uint32_t id)
{
    if (a->nids == a->capids) {
        uint32_t nc = a->capids ? a->capids * 2 : 2;
        uint32_t *n = realloc(a->ids, nc * sizeof *n);
        if (!n)
            return -1;
        a->ids = n;
        a->capids = nc;
    }
    a->ids[a->nids++] = id;
    return 0;
}

static int emit(hk_rprog_t *rp, unsigned kind, uint32_t id, uint64_t arg, uint64_t size, uint32_t thread,
                unsigned path, unsigned flags)
{
    hk_op_t op;
    memset(&op, 0, sizeof op);
    op.kind = (uint8_t)kind;
    op.id = id;
    op.arg = arg;
    op.size = size;
    hk_rmeta_t m = {(uint16_t)thread, (uint8_t)path, (uint8_t)flags};
    return hk_rprog_push(rp, op, m);
}

/* An id for the block at address a that some op of thread t uses: the live one, or one re-created at
 * the start when the address was never handed out in the trace (its allocation was cut off). Returns 1
 * with *id, 0 if the use is a misuse of the recorded program (the address was live once and is not
 * now), -1 on error. */
static int use_id(conv_t *c, aent_t *a, uint32_t t, uint64_t usable, int pop, uint32_t *id)
{
    if (a->nids == 0) {
        if (a->seen)
            return 0;
        uint32_t nid;
        if (new_id(c, &nid) != 0)
            return -1;
        if (emit(&c->synth, HK_OP_ALLOC, nid, 0, usable ? usable : 16, t, HK_TR_PATH_NONE, HK_RM_SYNTH) != 0 ||
            push_live(a, nid) != 0)
            return -1;
        c->rp->synthesized++;
        a->seen = 1;
        a->holder = t;
    }
    *id = a->ids[a->nids - 1];
    if (pop)
        a->nids--;
    return 1;
}

static int apply(conv_t *c, const tev_t *e, uint32_t t)
{
    hk_rprog_t *rp = c->rp;
    unsigned mflags = (e->flags & HK_TR_F_INFLIGHT) ? HK_RM_INFLIGHT : 0u;
    if (e->flags & HK_TR_F_INFLIGHT)
        rp->inflight++;
    if (e->kind == HK_OP_SET) {
        char name[64];
        if (hk_tf_option_name(c->tf, (unsigned)e->in, name, sizeof name) != 0)
            snprintf(name, sizeof name, "HAKMEM_OPTION_%llu", (unsigned long long)e->in);
        int knob = -1;
        for (unsigned k = 0; k < hk_op_knob_count; k++)
            if (strcmp(hk_op_knobs[k].option, name) == 0)
                knob = (int)k;
        unsigned f = mflags | ((e->flags & HK_TR_F_CTL) ? HK_RM_CTL : 0u);
        if (knob >= 0)
            return emit(rp, HK_OP_SET, (uint32_t)knob, e->out, 0, t, HK_TR_PATH_NONE, f);
        hk_rawset_t *nr = realloc(rp->raw, (rp->nraw + 1) * sizeof *nr);
        if (!nr)
            return -1;
        rp->raw = nr;
        snprintf(nr[rp->nraw].name, sizeof nr[rp->nraw].name, "%s", name);
        snprintf(nr[rp->nraw].value, sizeof nr[rp->nraw].value, "%llu", (unsigned long long)e->out);
        return emit(rp, HK_OP_SET, (uint32_t)rp->nraw++, 0, 0, t, HK_TR_PATH_NONE, f | HK_RM_RAWSET);
    }
    uint32_t id = UINT32_MAX;
    aent_t *ain = e->in && (e->role_in) ? amap_get(&c->am, e->in, 0) : NULL;
    if (e->role_in && ain) {
        uint64_t usable = e->kind == HK_OP_FREE ? e->size : e->kind == HK_OP_USABLE ? e->out : e->old_usable;
        int r = use_id(c, ain, t, usable, e->role_in == ROLE_REL, &id);
        if (r < 0)
            return -1;
        if (r == 0) {
            rp->misuse++;
            if (!is_realloc_kind(e->kind))
                return 0; /* a free / usable of a dead address: nothing the interpreter can replay */
            id = UINT32_MAX; /* realloc of a dead pointer: replayed as realloc(NULL) */
        }
    }
    if ((e->kind == HK_OP_FREE || e->kind == HK_OP_USABLE) && id == UINT32_MAX)
        return 0; /* free(NULL) / usable(NULL): nothing to replay */
    switch (e->kind) {
    case HK_OP_FREE:
        if (emit(rp, HK_OP_FREE, id, 0, 0, t, e->path, mflags) != 0)
            return -1;
        return free_id(c, id);
    case HK_OP_USABLE:
        return emit(rp, HK_OP_USABLE, id, 0, 0, t, HK_TR_PATH_NONE, mflags);
    default:
        break;
    }
    int failed = (e->flags & HK_TR_F_FAILED) != 0;
    if (is_realloc_kind(e->kind)) {
        if (id == UINT32_MAX && new_id(c, &id) != 0)
            return -1;
        uint64_t arg = e->kind == HK_OP_REALLOCARRAY ? e->arg : 0;
        if (emit(rp, e->kind, id, arg, e->size, t, e->path, mflags) != 0)
            return -1;
        if (e->flags & HK_TR_F_INFLIGHT)
            return 0; /* the result is unknown: the id keeps whatever the replay gets */
        if (failed) { /* the old block (if any) is still live at its address */
            if (e->in && ain && e->role_in == ROLE_USE)
                return 0;
            return 0;
        }
        if (e->out == 0) /* realloc(p, 0) freed p */
            return free_id(c, id);
        if (e->out == e->in && ain)
            return 0; /* in place: the id stays live at the same address (use_id did not pop) */
        aent_t *ao = amap_get(&c->am, e->out, 1);
        if (!ao)
            return -1;
        ao->seen = 1;
        ao->holder = t;
        return push_live(ao, id);
    }
    if (!is_alloc_kind(e->kind))
        return 0;
    if (new_id(c, &id) != 0)
        return -1;
    uint64_t arg = (e->kind == HK_OP_VALLOC || e->kind == HK_OP_PVALLOC) ? 0 : e->in;
    if (emit(rp, e->kind, id, e->kind == HK_OP_ALLOC ? 0 : arg, e->size, t, e->path, mflags) != 0)
        return -1;
    if (failed || (e->flags & HK_TR_F_INFLIGHT) || e->out == 0)
        return 0; /* the id is not reused: the replay may still get a block for it */
    aent_t *ao = amap_get(&c->am, e->out, 1);
    if (!ao)
        return -1;
    ao->seen = 1;
    ao->holder = t;
    return push_live(ao, id);
}

static int cmp_xev(const void *a, const void *b)
{
    const xev_t *x = a, *y = b;
    if (x->addr != y->addr)
        return x->addr < y->addr ? -1 : 1;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    if (x->thread != y->thread)
        return x->thread < y->thread ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Whether the head event e of thread t may go now (see tconv.h). */
static int ready(conv_t *c, xev_t *xs, const tev_t *e, uint32_t t)
{
    if (e->role_in && e->xin != UINT32_MAX) {
        aent_t *a = &c->am.e[xs[e->xin].addr];
        while (a->xcur < a->xend && xs[a->xcur].done)
            a->xcur++;
        if (a->nids == 0) {
            for (uint32_t k = a->xcur; k < a->xend && xs[k].key <= e->key; k++)
                if (!xs[k].done && xs[k].role == ROLE_ACQ && xs[k].thread != t)
                    return 0;
        } else if (e->role_in == ROLE_REL && a->holder != t) {
            /* The address is live, taken by another thread (the holder). If the holder's next use
             * of it (in this or an earlier epoch) is a release or a size query, that use is of this
             * lifetime: the holder took the block, used it (or freed it and took it again within
             * one epoch: its own cache, no epoch bump), and this release is later. Going first would
             * free the lifetime under the holder and make its use one of a dead address. */
            for (uint32_t k = a->xcur; k < a->xend && xs[k].key <= e->key; k++) {
                if (xs[k].done || xs[k].thread != a->holder)
                    continue;
                if (xs[k].role == ROLE_REL || xs[k].role == ROLE_USE)
                    return 0;
                break;
            }
        }
    }
    if (e->role_out == ROLE_ACQ && e->xout != UINT32_MAX) {
        aent_t *a = &c->am.e[xs[e->xout].addr];
        if (a->nids > 0) {
            while (a->xcur < a->xend && xs[a->xcur].done)
                a->xcur++;
            unsigned seen = 0;
            for (uint32_t k = a->xcur; k < a->xend && seen < 64; k++) {
                if (xs[k].done)
                    continue;
                seen++;
                if (xs[k].role == ROLE_REL && xs[k].thread != t && xs[k].e_in < e->key)
                    return 0;
            }
        }
    }
    return 1;
}

/* Options the recorded process ran with (header lines HAKMEM_X=value, every option not at its default)
 * become SETs at the start, so the replay runs with them. Options read only at start-up or that only
 * change diagnostics are left out. */
static int header_sets(hk_rprog_t *rp, const hk_trace_file_t *tf)
{
    static const char *const skip[] = {"HAKMEM_TRACE", "HAKMEM_TRACE_RING", "HAKMEM_STRICT", "HAKMEM_DEBUG_LEVEL",
                                       "HAKMEM_STATS_ENABLE", "HAKMEM_SS_OS_STATS", "HAKMEM_SUPERSLAB_PREWARM"};
    for (const char *l = tf->text; l && *l;) {
        const char *e = strchr(l, '\n');
        size_t ll = e ? (size_t)(e - l) : strlen(l);
        const char *eq = memchr(l, '=', ll);
        if (ll > 7 && !strncmp(l, "HAKMEM_", 7) && eq) {
            char name[64], value[256];
            snprintf(name, sizeof name, "%.*s", (int)(eq - l), l);
            snprintf(value, sizeof value, "%.*s", (int)(ll - (size_t)(eq - l) - 1), eq + 1);
            int skipped = 0;
            for (size_t k = 0; k < sizeof skip / sizeof skip[0]; k++)
                skipped |= !strcmp(name, skip[k]);
            int knob = -1;
            for (unsigned k = 0; k < hk_op_knob_count && !skipped; k++)
                if (!strcmp(hk_op_knobs[k].option, name))
                    knob = (int)k;
            uint64_t v = 0;
            int have_v = 0;
            if (knob >= 0) {
                const char *ch = hk_op_knobs[knob].choices;
                if (ch) { /* enum: the choice's index */
                    uint64_t idx = 0;
                    for (const char *c = ch; *c; idx++) {
                        size_t cl = strcspn(c, "|");
                        if (cl == strlen(value) && !strncasecmp(c, value, cl)) {
                            v = idx;
                            have_v = 1;
                            break;
                        }
                        c += cl + (c[cl] == '|');
                    }
                } else {
                    char *end;
                    v = strtoull(value, &end, 10);
                    have_v = *value && *end == 0;
                }
            }
            if (!skipped && knob >= 0 && have_v) {
                if (emit(rp, HK_OP_SET, (uint32_t)knob, v, 0, 0, HK_TR_PATH_NONE, 0) != 0)
                    return -1;
            } else if (!skipped && strcmp(value, "(none)") != 0) {
                hk_rawset_t *nr = realloc(rp->raw, (rp->nraw + 1) * sizeof *nr);
                if (!nr)
                    return -1;
                rp->raw = nr;
                snprintf(nr[rp->nraw].name, sizeof nr[rp->nraw].name, "%s", name);
                snprintf(nr[rp->nraw].value, sizeof nr[rp->nraw].value, "%s", value);
                if (emit(rp, HK_OP_SET, (uint32_t)rp->nraw++, 0, 0, 0, HK_TR_PATH_NONE, HK_RM_RAWSET) != 0)
                    return -1;
            }
        }
        l = e ? e + 1 : l + ll;
    }
    return 0;
}

int hk_rprog_from_trace(hk_rprog_t *rp, const hk_trace_file_t *tf, char *err, size_t errlen)
{
    hk_rprog_init(rp);
    conv_t c;
    memset(&c, 0, sizeof c);
    c.rp = rp;
    c.tf = tf;
    c.err = err;
    c.errlen = errlen;
    hk_rprog_init(&c.synth);
    size_t T = tf->nthr;
    tev_t **ev = calloc(T ? T : 1, sizeof *ev);
    size_t *nev = calloc(T ? T : 1, sizeof *nev), *cur = calloc(T ? T : 1, sizeof *cur);
    xev_t *xs = NULL;
    int rc = -1;
    if (!ev || !nev || !cur)
        goto oom;
    /* 1. per-thread events: EXT records folded into their op, epochs unwrapped (monotonic per thread) */
    for (size_t t = 0; t < T; t++) {
        const hk_tthread_t *th = &tf->thr[t];
        ev[t] = calloc(th->n ? th->n : 1, sizeof **ev);
        if (!ev[t])
            goto oom;
        uint64_t prev = 0;
        int have_prev = 0, have_ext = 0;
        hk_trec_file_t ext = {0};
        for (size_t k = 0; k < th->n; k++) {
            const hk_trec_file_t *r = &th->rec[k];
            uint64_t e64 = have_prev ? prev + (uint64_t)(int64_t)(int32_t)(r->epoch - (uint32_t)prev) : r->epoch;
            if (have_prev && (int64_t)(e64 - prev) < 0)
                e64 = prev;
            if (r->kind == HK_TR_KIND_EXT) {
                ext = *r;
                have_ext = 1;
                continue;
            }
            if (r->kind == HK_OP_THREAD || r->kind == HK_OP_CHECK)
                continue;
            tev_t *e = &ev[t][nev[t]++];
            e->kind = r->kind;
            e->path = r->path;
            e->flags = r->flags;
            e->err = r->err;
            e->in = r->in;
            e->out = r->out;
            e->size = r->size;
            e->key = e64;
            e->e_in = e64;
            if (is_realloc_kind(r->kind) && have_ext) {
                e->old_usable = ext.out;
                e->arg = ext.in;
                uint64_t x64 = prev + (uint64_t)(int64_t)(int32_t)(ext.epoch - (uint32_t)prev);
                if (have_prev && x64 <= e64 && (int64_t)(x64 - prev) >= 0)
                    e->e_in = x64;
            } else if (r->kind == HK_OP_REALLOCARRAY) {
                e->arg = 1;
            }
            have_ext = 0;
            e->xin = e->xout = UINT32_MAX;
            set_roles(e);
            prev = e64;
            have_prev = 1;
        }
    }
    /* 2. addresses: which threads touch each (only addresses of several threads need cross checks) */
    size_t nx = 0;
    for (size_t t = 0; t < T; t++)
        for (size_t k = 0; k < nev[t]; k++) {
            tev_t *e = &ev[t][k];
            uint64_t as[2] = {e->role_in ? e->in : 0, e->role_out ? e->out : 0};
            for (int j = 0; j < 2; j++) {
                if (!as[j])
                    continue;
                aent_t *a = amap_get(&c.am, as[j], 1);
                if (!a)
                    goto oom;
                if (a->first_thread == UINT32_MAX)
                    a->first_thread = (uint32_t)t;
                else if (a->first_thread != t && !a->multi) {
                    a->multi = 1;
                }
            }
        }
    for (size_t t = 0; t < T; t++)
        for (size_t k = 0; k < nev[t]; k++) {
            tev_t *e = &ev[t][k];
            if (e->role_in && amap_get(&c.am, e->in, 0)->multi)
                nx++;
            if (e->role_out && amap_get(&c.am, e->out, 0)->multi)
                nx++;
        }
    xs = calloc(nx ? nx : 1, sizeof *xs);
    if (!xs)
        goto oom;
    nx = 0;
    for (size_t t = 0; t < T; t++)
        for (size_t k = 0; k < nev[t]; k++) {
            tev_t *e = &ev[t][k];
            for (int j = 0; j < 2; j++) {
                uint64_t addr = j == 0 ? (e->role_in ? e->in : 0) : (e->role_out ? e->out : 0);
                if (!addr)
                    continue;
                aent_t *a = amap_get(&c.am, addr, 0);
                if (!a->multi)
                    continue;
                xev_t *x = &xs[nx++];
                x->key = e->key;
                x->e_in = e->e_in;
                x->thread = (uint32_t)t;
                x->pos = (uint32_t)k;
                x->addr = (uint32_t)(a - c.am.e);
                x->role = j == 0 ? e->role_in : e->role_out;
            }
        }
    qsort(xs, nx, sizeof *xs, cmp_xev);
    for (size_t i = 0; i < nx; i++) {
        aent_t *a = &c.am.e[xs[i].addr];
        if (i == 0 || xs[i - 1].addr != xs[i].addr)
            a->xstart = a->xcur = (uint32_t)i;
        a->xend = (uint32_t)i + 1;
        tev_t *e = &ev[xs[i].thread][xs[i].pos];
        if (xs[i].role == ROLE_ACQ && e->role_out == ROLE_ACQ && e->out == a->addr)
            e->xout = (uint32_t)i;
        else
            e->xin = (uint32_t)i;
    }
    /* 3. the merge */
    for (;;) {
        size_t best = SIZE_MAX, pick = SIZE_MAX;
        int any = 0;
        /* candidates in (key, thread) order: the first ready one goes */
        uint64_t last_key = 0;
        size_t last_t = 0;
        int have_last = 0;
        for (size_t round = 0; round < T; round++) {
            size_t m = SIZE_MAX;
            for (size_t t = 0; t < T; t++) {
                if (cur[t] >= nev[t])
                    continue;
                uint64_t k = ev[t][cur[t]].key;
                if (have_last && (k < last_key || (k == last_key && t <= last_t)))
                    continue;
                if (m == SIZE_MAX || k < ev[m][cur[m]].key)
                    m = t;
            }
            if (m == SIZE_MAX)
                break;
            any = 1;
            if (best == SIZE_MAX)
                best = m;
            if (ready(&c, xs, &ev[m][cur[m]], (uint32_t)m)) {
                pick = m;
                break;
            }
            last_key = ev[m][cur[m]].key;
            last_t = m;
            have_last = 1;
        }
        if (!any)
            break;
        if (pick == SIZE_MAX) {
            pick = best;
            rp->forced++;
        } else if (pick != best) {
            rp->repaired++;
        }
        tev_t *e = &ev[pick][cur[pick]];
        if (apply(&c, e, (uint32_t)pick) != 0)
            goto fail;
        if (e->xin != UINT32_MAX)
            xs[e->xin].done = 1;
        if (e->xout != UINT32_MAX)
            xs[e->xout].done = 1;
        cur[pick]++;
    }
    /* 4. the recorded process's options, then re-created allocations, then the merged ops */
    {
        hk_rprog_t out;
        hk_rprog_init(&out);
        if (header_sets(&out, tf) != 0)
            goto oom;
        for (size_t i = 0; i < c.synth.prog.n; i++)
            if (hk_rprog_push(&out, c.synth.prog.ops[i], c.synth.meta[i]) != 0)
                goto oom;
        for (size_t i = 0; i < rp->prog.n; i++)
            if (hk_rprog_push(&out, rp->prog.ops[i], rp->meta[i]) != 0)
                goto oom;
        /* the merged ops' raw SETs index rp->raw: append it after the header's */
        if (rp->nraw) {
            size_t base = out.nraw;
            hk_rawset_t *nr = realloc(out.raw, (out.nraw + rp->nraw) * sizeof *nr);
            if (!nr)
                goto oom;
            memcpy(nr + base, rp->raw, rp->nraw * sizeof *nr);
            out.raw = nr;
            out.nraw += rp->nraw;
            for (size_t i = out.prog.n - rp->prog.n; i < out.prog.n; i++)
                if (out.meta[i].flags & HK_RM_RAWSET)
                    out.prog.ops[i].id += (uint32_t)base;
        }
        out.synthesized = rp->synthesized;
        out.misuse = rp->misuse;
        out.repaired = rp->repaired;
        out.forced = rp->forced;
        out.inflight = rp->inflight;
        hk_rprog_free(rp);
        *rp = out;
    }
    if (tf->crashed)
        snprintf(rp->expect, sizeof rp->expect, "%s",
                 (tf->crash_flags & 1) ? "report" : hk_signame((int)tf->crash_sig));
    if (tf->crashed && !(tf->crash_flags & 1))
        snprintf(rp->expect, sizeof rp->expect, "signal:%s", hk_signame((int)tf->crash_sig));
    rc = 0;
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    hk_rprog_free(rp);
done:
    for (size_t t = 0; t < T && ev; t++)
        free(ev[t]);
    free(ev);
    free(nev);
    free(cur);
    free(xs);
    free(c.pool);
    amap_free(&c.am);
    hk_rprog_free(&c.synth);
    return rc;
}

/* ---- op programs ------------------------------------------------------------------------------ */
int hk_rprog_from_prog(hk_rprog_t *rp, const hk_prog_t *p)
{
    hk_rprog_init(rp);
    unsigned t = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (p->ops[i].kind == HK_OP_THREAD)
            t = p->ops[i].id;
        hk_rmeta_t m = {(uint16_t)t, HK_TR_PATH_NONE, 0};
        if (hk_rprog_push(rp, p->ops[i], m) != 0)
            return -1;
    }
    if (rp->nthreads == 0)
        rp->nthreads = 1;
    return 0;
}

int hk_rprog_to_prog(const hk_rprog_t *rp, hk_prog_t *p, int *folded)
{
    hk_prog_clear(p);
    if (folded)
        *folded = 0;
    unsigned cur = 0;
    for (size_t i = 0; i < rp->prog.n; i++) {
        hk_op_t op = rp->prog.ops[i];
        if (op.kind == HK_OP_THREAD)
            continue;
        if (op.kind == HK_OP_SET && (rp->meta[i].flags & HK_RM_RAWSET))
            continue; /* no knob for it in the op-program table */
        unsigned t = rp->meta[i].thread;
        if (t >= HK_OP_MAX_THREADS) {
            t %= HK_OP_MAX_THREADS;
            if (folded)
                *folded = 1;
        }
        if (t != cur || (i == 0 && t != 0)) {
            hk_op_t th;
            memset(&th, 0, sizeof th);
            th.kind = HK_OP_THREAD;
            th.id = t;
            if (hk_prog_push(p, th) != 0)
                return -1;
            cur = t;
        }
        if (hk_prog_push(p, op) != 0)
            return -1;
    }
    return 0;
}

void hk_rprog_compact(hk_rprog_t *rp)
{
    uint32_t *tmap = calloc(65536, sizeof *tmap);
    uint32_t *imap = calloc(rp->prog.id_count ? rp->prog.id_count : 1, sizeof *imap);
    if (!tmap || !imap) {
        free(tmap);
        free(imap);
        return;
    }
    uint32_t nt = 0, ni = 0;
    for (size_t i = 0; i < rp->prog.n; i++) {
        hk_rmeta_t *m = &rp->meta[i];
        if (!tmap[m->thread])
            tmap[m->thread] = ++nt;
        m->thread = (uint16_t)(tmap[m->thread] - 1);
        hk_op_t *op = &rp->prog.ops[i];
        if (op->kind == HK_OP_THREAD)
            op->id = m->thread;
        if (hk_op_is_block_op(op->kind)) {
            if (!imap[op->id])
                imap[op->id] = ++ni;
            op->id = imap[op->id] - 1;
        }
    }
    rp->nthreads = nt ? nt : 1;
    rp->prog.id_count = ni;
    rp->prog.thread_count = rp->nthreads < HK_OP_MAX_THREADS ? rp->nthreads : HK_OP_MAX_THREADS;
    free(tmap);
    free(imap);
}

int hk_rprog_load(hk_rprog_t *rp, const char *path, int salvage, char *err, size_t errlen)
{
    hk_rprog_init(rp);
    uint8_t *data;
    size_t n;
    if (hk_tf_read_all(path, &data, &n) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    if (hk_tf_is_trace(data, n)) {
        hk_trace_file_t tf;
        hk_tf_init(&tf);
        char e[256];
        if (hk_tf_parse(&tf, data, n, salvage, e, sizeof e) != 0) {
            snprintf(err, errlen, "%s: %s", path, e);
        } else if (hk_rprog_from_trace(rp, &tf, e, sizeof e) != 0) {
            snprintf(err, errlen, "%s: %s", path, e);
        } else {
            if (tf.warn[0] && salvage)
                fprintf(stderr, "%s: warning: %s\n", path, tf.warn);
            rc = 0;
        }
        hk_tf_free(&tf);
    } else {
        hk_prog_t p;
        hk_prog_init(&p);
        char e[256];
        int bad = (n >= 4 && memcmp(data, HK_BIN_MAGIC, 4) == 0) ? hk_prog_decode(&p, data, n, e, sizeof e)
                                                                  : hk_prog_parse_text(&p, (const char *)data, n, e, sizeof e);
        if (bad) {
            snprintf(err, errlen, "%s: %s", path, e);
        } else if (hk_rprog_from_prog(rp, &p) != 0) {
            snprintf(err, errlen, "%s: out of memory", path);
        } else {
            rc = 0;
            /* "# expect: SIGNATURE" in a text program */
            if (!(n >= 4 && memcmp(data, HK_BIN_MAGIC, 4) == 0)) {
                const char *s = memmem(data, n, "# expect:", 9);
                if (s) {
                    s += 9;
                    while (s < (const char *)data + n && *s == ' ')
                        s++;
                    size_t l = 0;
                    while (s + l < (const char *)data + n && s[l] != '\n' && s[l] != '\r' && s[l] != ' ' && l + 1 < sizeof rp->expect)
                        l++;
                    memcpy(rp->expect, s, l);
                    rp->expect[l] = 0;
                }
            }
        }
        hk_prog_free(&p);
    }
    free(data);
    return rc;
}
