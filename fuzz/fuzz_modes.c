/* fuzz_modes: op programs interleaved with mode and option changes at any point: caches grown and
 * shrunk while they hold blocks, the BigCache resized while it holds mappings.
 *
 * Input:
 *   byte 0             the configuration byte: starting mode and cache scale (fz.h)
 *   then chunks, each starting with a header byte h:
 *     h >= 0xC0        an option change, three parameter bytes a b c follow (table below); it is
 *                      applied to hakmem between two ops, then the TLS-SLL checker and the heap walker
 *                      run at once (the cache and slab accounting must hold right after the change)
 *     h <  0xC0        (h & 63) + 1 bytes of ops in the fuzz byte form (docs/op-program.md), appended
 *                      to the program (THREAD dropped; SET kept: the knob table's own changes)
 *   Block ids persist across chunks, so blocks allocated before a change are freed after it.
 *
 * Option changes (a % 12): 0 HAKMEM_MODE; 1 TINY_CAP_PCT (1..800, sometimes invalid);
 * 2 TINY_TLS_CLASS_OVERRIDE (1..3 entries "C<cls>:<cap>[:<batch>]" with caps 0..65536, or "" to clear,
 * sometimes invalid); 3 BIGCACHE_ENTRIES; 4 BIGCACHE_MAX_MB; 5 BIGCACHE; 6 SS_MEM_LEAN;
 * 7 MADVISE_BATCH; 8 SUPERSLAB_REUSE; 9 hak_collect() (every cache flushed); 10 THP;
 * 11 SS_MEM_LEAN_DECOMMIT or SS_MEM_LEAN_TARGET_MB.
 * A value the option table accepts must be accepted (0) and an invalid one rejected (-1, EINVAL):
 * anything else is reported. Every option a change touched is restored after the run.
 *
 * Checks: as fuzz_mixed (oracle, shadow, TLS-SLL after every op, heap walker at CHECK and at the end,
 * leak check after the run), plus both checkers after every option change, plus the cache bound: after
 * an override set a class's cap, a free of a block of that class leaves at most cap blocks cached
 * (fm_caps_from_override: a cache over its cap must be flushed by the next free).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fz.h"
#include "hakmem_debug.h"

/* The options this harness changes, how to print a saved value back, and the saved value. */
typedef struct fm_opt {
    const char *name;
    const char *choices; /* enum: names by index ('|' separated); NULL: decimal */
    long long saved;
} fm_opt_t;

enum { O_MODE, O_CAP, O_OVERRIDE, O_BC_ENTRIES, O_BC_MAX_MB, O_BC, O_LEAN, O_MADV, O_REUSE, O_THP,
       O_DECOMMIT, O_TARGET, O_COUNT };

static fm_opt_t fm_opts[O_COUNT] = {
    [O_MODE] = {"HAKMEM_MODE", "minimal|fast|balanced|learning|adaptive|tight|lean|research", 0},
    [O_CAP] = {"HAKMEM_TINY_CAP_PCT", NULL, 0},
    [O_OVERRIDE] = {"HAKMEM_TINY_TLS_CLASS_OVERRIDE", NULL, 0},
    [O_BC_ENTRIES] = {"HAKMEM_BIGCACHE_ENTRIES", NULL, 0},
    [O_BC_MAX_MB] = {"HAKMEM_BIGCACHE_MAX_MB", NULL, 0},
    [O_BC] = {"HAKMEM_BIGCACHE", NULL, 0},
    [O_LEAN] = {"HAKMEM_SS_MEM_LEAN", NULL, 0},
    [O_MADV] = {"HAKMEM_MADVISE_BATCH", NULL, 0},
    [O_REUSE] = {"HAKMEM_SUPERSLAB_REUSE", NULL, 0},
    [O_THP] = {"HAKMEM_THP", "off|auto|on", 0},
    [O_DECOMMIT] = {"HAKMEM_SS_MEM_LEAN_DECOMMIT", "FREE|DONTNEED|OFF", 0},
    [O_TARGET] = {"HAKMEM_SS_MEM_LEAN_TARGET_MB", NULL, 0},
};
/* The string option cannot be read back as a number: its start-up value is the environment's. */
static char fm_override_saved[256];

#define FM_MAX_CHANGES 256
typedef struct fm_change {
    size_t at;         /* applied before op `at` */
    uint8_t a, b, c;
} fm_change_t;

typedef struct fm_ctx {
    fm_change_t ch[FM_MAX_CHANGES];
    size_t n, next;
    unsigned touched; /* bit per fm_opts entry */
    char what[192];   /* the change being applied, for the report */
} fm_ctx_t;

static void fm_choice(const char *choices, long long v, char *buf, size_t len)
{
    const char *c = choices;
    for (long long i = 0; i < v && *c; i++) {
        c += strcspn(c, "|");
        if (*c)
            c++;
    }
    size_t n = strcspn(c, "|");
    snprintf(buf, len, "%.*s", (int)n, c);
}

/* Builds the option change of (a, b, c). Returns the option index, or -1 for hak_collect(); *valid
 * says whether the value is one the option table accepts. */
static int fm_describe(uint8_t a, uint8_t b, uint8_t c, char *val, size_t len, int *valid)
{
    static const unsigned caps_pct[] = {1, 2, 5, 10, 25, 50, 75, 100, 150, 200, 400, 800};
    static const unsigned ov_caps[] = {0, 1, 2, 3, 4, 7, 8, 16, 31, 64, 256, 1024, 4096, 65536};
    static const unsigned ov_batch[] = {0, 1, 2, 3, 7, 16, 64, 1000, 65536};
    static const unsigned bc_entries[] = {0, 1, 2, 3, 4, 8, 16, 64, 256};
    static const unsigned bc_mb[] = {0, 1, 2, 3, 4, 8, 16, 64, 1024, 65536};
    static const unsigned madv[] = {0, 1, 2, 32, 4096};
    static const unsigned reuse[] = {0, 1, 2, 8, 1024};
    static const unsigned target[] = {1, 2, 4, 10, 100, 1048576};
#define PICK(t, x) (t)[(x) % (sizeof(t) / sizeof((t)[0]))]
    *valid = 1;
    int bad = c >= 248; /* about 1 in 32 changes tries an invalid value of the same option */
    switch (a % 12) {
    case 0:
        if (bad) { snprintf(val, len, "%s", c & 1 ? "fastest" : "8"); *valid = 0; }
        else fm_choice(fm_opts[O_MODE].choices, b % 8, val, len);
        return O_MODE;
    case 1:
        if (bad) { snprintf(val, len, "%d", c & 1 ? 0 : 801); *valid = 0; }
        else snprintf(val, len, "%u", c < 128 ? PICK(caps_pct, b) : 1u + (unsigned)((b << 8 | c) % 800));
        return O_CAP;
    case 2: {
        if (bad) {
            snprintf(val, len, "%s", c & 1 ? "C45:1" : "C0:65537");
            *valid = 0;
            return O_OVERRIDE;
        }
        if (b % 16 == 0) { /* clear the override */
            val[0] = 0;
            return O_OVERRIDE;
        }
        /* 1..3 entries drawn from a small generator seeded by the three bytes */
        uint64_t s = (uint64_t)a << 16 | (uint64_t)b << 8 | c;
        size_t n = 0;
        unsigned entries = 1 + (b >> 4) % 3;
        for (unsigned e = 0; e < entries; e++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            unsigned cls = (unsigned)(s >> 33) % 32, cap = PICK(ov_caps, s >> 40), batch = PICK(ov_batch, s >> 48);
            n += (size_t)snprintf(val + n, len - n, "%sC%u:%u", e ? "," : "", cls, cap);
            if (batch && n < len)
                n += (size_t)snprintf(val + n, len - n, ":%u", batch);
            if (n >= len)
                break;
        }
        return O_OVERRIDE;
    }
    case 3:
        if (bad) { snprintf(val, len, "257"); *valid = 0; }
        else snprintf(val, len, "%u", PICK(bc_entries, b));
        return O_BC_ENTRIES;
    case 4:
        if (bad) { snprintf(val, len, "65537"); *valid = 0; }
        else snprintf(val, len, "%u", PICK(bc_mb, b));
        return O_BC_MAX_MB;
    case 5: snprintf(val, len, "%u", b & 1); return O_BC;
    case 6: snprintf(val, len, "%u", b & 1); return O_LEAN;
    case 7: snprintf(val, len, "%u", PICK(madv, b)); return O_MADV;
    case 8: snprintf(val, len, "%u", PICK(reuse, b)); return O_REUSE;
    case 9: val[0] = 0; return -1;
    case 10: fm_choice(fm_opts[O_THP].choices, b % 3, val, len); return O_THP;
    default:
        if (b & 1) {
            fm_choice(fm_opts[O_DECOMMIT].choices, (b >> 1) % 3, val, len);
            return O_DECOMMIT;
        }
        snprintf(val, len, "%u", PICK(target, b >> 1));
        return O_TARGET;
    }
#undef PICK
}

/* Caps this harness set with TINY_TLS_CLASS_OVERRIDE (SIZE_MAX: unknown). An override's caps hold
 * through every later re-derivation (mode, TINY_CAP_PCT: the override is applied last) until the
 * override itself changes. A thread reads caps on its slow paths only, so after setting one the harness
 * makes the thread reload them: it allocates (and frees) a block of a class whose cache is empty, which
 * must refill. From then on, right after a free of a class-c block, the cache holds at most cap(c). */
static size_t fm_cap[64];

static size_t fm_cap_of(int cls)
{
    return cls >= 0 && cls < 64 ? fm_cap[cls] : SIZE_MAX;
}

static void fm_caps_unknown(void)
{
    for (size_t c = 0; c < sizeof fm_cap / sizeof fm_cap[0]; c++)
        fm_cap[c] = SIZE_MAX;
}

/* After an accepted override: record its caps, then force the reload (or forget them if it cannot). */
static void fm_caps_from_override(const char *v)
{
    fm_caps_unknown();
    for (const char *p = v; *p;) {
        char *end;
        unsigned long cls = strtoul(p + 1, &end, 10), cap = strtoul(end + 1, &end, 10);
        if (cls < 64)
            fm_cap[cls] = cap;
        while (*end && *end != ',')
            end++;
        p = *end ? end + 1 : end;
    }
    int nc = hak_debug_class_count();
    for (int c = nc - 1; c >= 0; c--) {
        size_t cs = hak_debug_class_size(c), s = cs > 16 ? cs - 16 : cs;
        if (hak_debug_tls_count(c) != 0 || hak_debug_size_to_class(s) != c)
            continue;
        void *p = hak_malloc(s); /* an empty cache: this refills, and every refill reloads the caps */
        hak_free(p);
        return;
    }
    fm_caps_unknown();
}

static int fm_hook(void *vctx, size_t i, hk_verify_failure_t *f)
{
    fm_ctx_t *ctx = vctx;
    while (ctx->next < ctx->n && ctx->ch[ctx->next].at == i) {
        const fm_change_t *c = &ctx->ch[ctx->next++];
        char val[160];
        int valid;
        int o = fm_describe(c->a, c->b, c->c, val, sizeof val, &valid);
        if (o < 0) {
            snprintf(ctx->what, sizeof ctx->what, "after hak_collect() before op %zu", i);
            hak_collect();
        } else {
            snprintf(ctx->what, sizeof ctx->what, "after setting %s=\"%s\" before op %zu", fm_opts[o].name, val, i);
            ctx->touched |= 1u << o;
            errno = 0;
            int rc = hak_debug_set_option(fm_opts[o].name, val);
            int e = errno;
            if (valid ? rc != 0 : (rc != -1 || e != EINVAL)) {
                hk_verify_fail(f, "option", "hak_debug_set_option(%s, \"%s\") returned %d errno %d; expected %s",
                               fm_opts[o].name, val, rc, e, valid ? "0 (a valid value)" : "-1 EINVAL");
                f->backend = "hakmem";
                return 1;
            }
            if (o == O_OVERRIDE && valid)
                fm_caps_from_override(val);
        }
        if (fz_check_now(f))
            return 1;
    }
    return 0;
}

static void fm_restore(fm_ctx_t *ctx)
{
    fm_caps_unknown();
    for (int o = 0; o < O_COUNT; o++) {
        if (!(ctx->touched & (1u << o)))
            continue;
        char v[256];
        if (o == O_OVERRIDE)
            snprintf(v, sizeof v, "%s", fm_override_saved);
        else if (fm_opts[o].choices)
            fm_choice(fm_opts[o].choices, fm_opts[o].saved, v, sizeof v);
        else
            snprintf(v, sizeof v, "%lld", fm_opts[o].saved);
        if (hak_debug_set_option(fm_opts[o].name, v) != 0)
            fz_crashf("restore: hak_debug_set_option(%s, \"%s\") failed for a value it held before", fm_opts[o].name, v);
    }
    ctx->touched = 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init("fuzz_modes");
    fm_caps_unknown();
    fz_set_cap_source(fm_cap_of);
    for (int o = 0; o < O_COUNT; o++)
        fm_opts[o].saved = o == O_OVERRIDE ? 0 : hak_debug_get_option(fm_opts[o].name);
    const char *ov = getenv("HAKMEM_TINY_TLS_CLASS_OVERRIDE");
    snprintf(fm_override_saved, sizeof fm_override_saved, "%s", ov ? ov : "");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hk_prog_t prog, chunk;
    static fm_ctx_t ctx;
    static hk_verify_failure_t fail;
    static int ready;
    if (!ready) {
        LLVMFuzzerInitialize(NULL, NULL);
        ready = 1;
    }
    if (size == 0)
        return 0;
    hk_prog_clear(&prog);
    ctx.n = ctx.next = 0;
    ctx.touched = 0;
    ctx.what[0] = 0;
    if (fz_prog_prepend_config(&prog, data[0]) < 0)
        return 0;
    size_t pos = 1;
    while (pos < size && prog.n < HK_FUZZ_MAX_OPS) {
        uint8_t h = data[pos++];
        if (h >= 0xC0) {
            if (ctx.n < FM_MAX_CHANGES) {
                fm_change_t *c = &ctx.ch[ctx.n++];
                c->at = prog.n;
                c->a = pos < size ? data[pos] : 0;
                c->b = pos + 1 < size ? data[pos + 1] : 0;
                c->c = pos + 2 < size ? data[pos + 2] : 0;
            }
            pos += 3;
            continue;
        }
        size_t len = (size_t)(h & 63) + 1;
        if (len > size - pos)
            len = size - pos;
        if (hk_prog_from_fuzz(&chunk, data + pos, len) != 0)
            return 0;
        pos += len;
        for (size_t i = 0; i < chunk.n && prog.n < HK_FUZZ_MAX_OPS; i++)
            if (chunk.ops[i].kind != HK_OP_THREAD && hk_prog_push(&prog, chunk.ops[i]) != 0)
                return 0;
    }
    /* Changes after the last op still run, before the end-of-run checks. */
    if (ctx.n && ctx.ch[ctx.n - 1].at >= prog.n) {
        hk_op_t check = {.kind = HK_OP_CHECK};
        if (hk_prog_push(&prog, check) != 0)
            return 0;
        for (size_t k = 0; k < ctx.n; k++)
            if (ctx.ch[k].at > prog.n - 1)
                ctx.ch[k].at = prog.n - 1;
    }
    fz_maybe_print(&prog);
    if (fz_printing()) {
        for (size_t k = 0; k < ctx.n; k++) {
            char val[160];
            int valid;
            int o = fm_describe(ctx.ch[k].a, ctx.ch[k].b, ctx.ch[k].c, val, sizeof val, &valid);
            fprintf(stderr, "--- before op %zu: %s%s%s%s\n", ctx.ch[k].at, o < 0 ? "hak_collect()" : fm_opts[o].name,
                    o < 0 ? "" : "=\"", o < 0 ? "" : val, o < 0 ? "" : (valid ? "\"" : "\" (invalid)"));
        }
    }
    int bad = fz_oracle_run_hooked(&prog, fz_opts(), fm_hook, &ctx, &fail);
    if (bad)
        fz_crash(&fail, &prog, ctx.what[0] ? ctx.what : NULL);
    fm_restore(&ctx);
    /* Restoring the options is itself a change: the accounting must still hold. */
    if (fz_check_now(&fail))
        fz_crash(&fail, &prog, "after restoring the options at the end of the run");
    if (fz_leak_check(&fail))
        fz_crash(&fail, &prog, "at the end of the input");
    return 0;
}
