/* The op program: the data type, op names, knob table, validation, one-line formatting.
 * verify/ never allocates through hak_*: its own memory comes from the process malloc (glibc). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "op.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Knobs SET may change. Index = binary/fuzz code: append only. The option names are those of
 * src/config/options.def (runtime-safe options only: "every value in [min, max] is safe at every
 * moment"). An unknown name makes hak_debug_set_option fail with EINVAL, which the interpreter records
 * as the op's result (not a failure), so a stale entry is visible, not fatal. `mode` is first so that
 * restoring knobs at the end of a run re-applies the mode's presets before the individual values. */
const hk_op_knob_t hk_op_knobs[] = {
    {"mode", "HAKMEM_MODE", 0, 7, "minimal|fast|balanced|learning|adaptive|tight|lean|research"},
    {"thp", "HAKMEM_THP", 0, 2, "off|auto|on"},
    {"bigcache", "HAKMEM_BIGCACHE", 0, 1, NULL},
    {"bigcache_entries", "HAKMEM_BIGCACHE_ENTRIES", 0, 256, NULL},
    {"bigcache_max_mb", "HAKMEM_BIGCACHE_MAX_MB", 0, 65536, NULL},
    {"madvise_batch", "HAKMEM_MADVISE_BATCH", 0, 4096, NULL},
    {"superslab_reuse", "HAKMEM_SUPERSLAB_REUSE", 0, 1024, NULL},
    {"tiny_cap", "HAKMEM_TINY_CAP_PCT", 1, 800, NULL},
    {"mem_lean", "HAKMEM_SS_MEM_LEAN", 0, 1, NULL},
    {"lean_target_mb", "HAKMEM_SS_MEM_LEAN_TARGET_MB", 1, 1048576, NULL},
    {"lean_decommit", "HAKMEM_SS_MEM_LEAN_DECOMMIT", 0, 2, "FREE|DONTNEED|OFF"},
};
const unsigned hk_op_knob_count = sizeof hk_op_knobs / sizeof hk_op_knobs[0];

void hk_op_knob_value_str(const hk_op_knob_t *k, uint64_t v, char *buf, size_t len)
{
    if (k->choices) {
        const char *c = k->choices;
        for (uint64_t i = 0; *c; i++) {
            size_t n = strcspn(c, "|");
            if (i == v) {
                snprintf(buf, len, "%.*s", (int)n, c);
                return;
            }
            c += n + (c[n] == '|');
        }
    }
    snprintf(buf, len, "%" PRIu64, v);
}

int hk_op_knob_find(const char *name, size_t len)
{
    for (unsigned i = 0; i < hk_op_knob_count; i++)
        if (strlen(hk_op_knobs[i].name) == len && memcmp(hk_op_knobs[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

static const char *const kind_names[HK_OP_KIND_COUNT] = {
    [HK_OP_ALLOC] = "alloc",          [HK_OP_CALLOC] = "calloc",
    [HK_OP_REALLOC] = "realloc",      [HK_OP_MEMALIGN] = "memalign",
    [HK_OP_POSIX_MEMALIGN] = "posix_memalign", [HK_OP_ALIGNED_ALLOC] = "aligned_alloc",
    [HK_OP_FREE] = "free",            [HK_OP_USABLE] = "usable",
    [HK_OP_SET] = "set",              [HK_OP_THREAD] = "thread",
    [HK_OP_CHECK] = "check",          [HK_OP_VALLOC] = "valloc",
    [HK_OP_PVALLOC] = "pvalloc",      [HK_OP_REALLOCARRAY] = "reallocarray",
};

const char *hk_op_kind_name(unsigned kind)
{
    return kind < HK_OP_KIND_COUNT ? kind_names[kind] : "?";
}

int hk_op_kind_from_name(const char *s, size_t len)
{
    for (unsigned k = 0; k < HK_OP_KIND_COUNT; k++)
        if (strlen(kind_names[k]) == len && memcmp(kind_names[k], s, len) == 0)
            return (int)k;
    return -1;
}

int hk_op_is_block_op(unsigned kind)
{
    return kind < HK_OP_KIND_COUNT && kind != HK_OP_SET && kind != HK_OP_THREAD && kind != HK_OP_CHECK;
}

int hk_op_allocates(unsigned kind)
{
    return hk_op_is_block_op(kind) && kind != HK_OP_FREE && kind != HK_OP_USABLE;
}

/* Which of (arg, size) a kind uses: bit 0 = arg, bit 1 = size. */
static unsigned kind_fields(unsigned kind)
{
    switch (kind) {
    case HK_OP_ALLOC: case HK_OP_REALLOC: case HK_OP_VALLOC: case HK_OP_PVALLOC: return 2;
    case HK_OP_CALLOC: case HK_OP_REALLOCARRAY: case HK_OP_MEMALIGN: case HK_OP_POSIX_MEMALIGN:
    case HK_OP_ALIGNED_ALLOC: return 3;
    case HK_OP_SET: return 1;
    default: return 0;
    }
}

int hk_op_validate(const hk_op_t *op, const char **why)
{
    const char *w = NULL;
    unsigned f = kind_fields(op->kind);
    if (op->kind >= HK_OP_KIND_COUNT)
        w = "unknown op kind";
    else if (op->pad[0] | op->pad[1] | op->pad[2])
        w = "padding not zero";
    else if (hk_op_is_block_op(op->kind) && op->id >= HK_OP_MAX_IDS)
        w = "block id out of range";
    else if (op->kind == HK_OP_THREAD && op->id >= HK_OP_MAX_THREADS)
        w = "thread out of range";
    else if (op->kind == HK_OP_SET && op->id >= hk_op_knob_count)
        w = "unknown knob";
    else if (op->kind == HK_OP_CHECK && op->id != 0)
        w = "check takes no id";
    else if (!(f & 1) && op->arg != 0)
        w = "unused field arg not zero";
    else if (!(f & 2) && op->size != 0)
        w = "unused field size not zero";
    if (why)
        *why = w;
    return w ? -1 : 0;
}

/* ---- program ---------------------------------------------------------------------------------- */

void hk_prog_init(hk_prog_t *p)
{
    memset(p, 0, sizeof *p);
    p->thread_count = 1;
}

void hk_prog_free(hk_prog_t *p)
{
    free(p->ops);
    hk_prog_init(p);
}

void hk_prog_clear(hk_prog_t *p)
{
    p->n = 0;
    p->id_count = 0;
    p->thread_count = 1;
}

int hk_prog_reserve(hk_prog_t *p, size_t n)
{
    if (n <= p->cap)
        return 0;
    if (n > HK_OP_MAX_OPS)
        return -1;
    size_t cap = p->cap ? p->cap : 64;
    while (cap < n)
        cap *= 2;
    hk_op_t *ops = realloc(p->ops, cap * sizeof *ops);
    if (!ops)
        return -1;
    p->ops = ops;
    p->cap = cap;
    return 0;
}

static void count_op(hk_prog_t *p, const hk_op_t *op)
{
    if (hk_op_is_block_op(op->kind) && op->id + 1 > p->id_count)
        p->id_count = op->id + 1;
    else if (op->kind == HK_OP_THREAD && op->id + 1 > p->thread_count)
        p->thread_count = op->id + 1;
}

int hk_prog_push(hk_prog_t *p, hk_op_t op)
{
    if (p->n == p->cap && hk_prog_reserve(p, p->n + 1) != 0)
        return -1;
    p->ops[p->n++] = op;
    count_op(p, &op);
    return 0;
}

void hk_prog_recount(hk_prog_t *p)
{
    p->id_count = 0;
    p->thread_count = 1;
    for (size_t i = 0; i < p->n; i++)
        count_op(p, &p->ops[i]);
}

int hk_prog_equal(const hk_prog_t *a, const hk_prog_t *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++) {
        const hk_op_t *x = &a->ops[i], *y = &b->ops[i];
        if (x->kind != y->kind || x->id != y->id || x->arg != y->arg || x->size != y->size)
            return 0;
    }
    return 1;
}

int hk_prog_copy(hk_prog_t *dst, const hk_prog_t *src)
{
    hk_prog_clear(dst);
    if (hk_prog_reserve(dst, src->n) != 0)
        return -1;
    if (src->n)
        memcpy(dst->ops, src->ops, src->n * sizeof *src->ops);
    dst->n = src->n;
    dst->id_count = src->id_count;
    dst->thread_count = src->thread_count;
    return 0;
}

/* Values at or above 2^32 print in hex: they are the "impossible" sizes and bogus alignments, whose
 * bit pattern says more than their decimal digits. The parser reads both. */
static int fmt_num(char *buf, size_t len, uint64_t v)
{
    if (v >= ((uint64_t)1 << 32))
        return snprintf(buf, len, "0x%" PRIx64, v);
    return snprintf(buf, len, "%" PRIu64, v);
}

int hk_op_format(const hk_op_t *op, char *buf, size_t len)
{
    char a[24], s[24];
    fmt_num(a, sizeof a, op->arg);
    fmt_num(s, sizeof s, op->size);
    const char *name = hk_op_kind_name(op->kind);
    switch (kind_fields(op->kind)) {
    case 2:
        return snprintf(buf, len, "%s %" PRIu32 " %s", name, op->id, s);
    case 3:
        return snprintf(buf, len, "%s %" PRIu32 " %s %s", name, op->id, a, s);
    default:
        break;
    }
    switch (op->kind) {
    case HK_OP_FREE: case HK_OP_USABLE: case HK_OP_THREAD:
        return snprintf(buf, len, "%s %" PRIu32, name, op->id);
    case HK_OP_SET:
        if (op->id < hk_op_knob_count) {
            const hk_op_knob_t *k = &hk_op_knobs[op->id];
            if (k->choices && op->arg <= k->max)
                hk_op_knob_value_str(k, op->arg, a, sizeof a);
            return snprintf(buf, len, "set %s %s", k->name, a);
        }
        return snprintf(buf, len, "set #%" PRIu32 " %s", op->id, a);
    case HK_OP_CHECK:
        return snprintf(buf, len, "check");
    default:
        return snprintf(buf, len, "? kind=%u", op->kind);
    }
}
