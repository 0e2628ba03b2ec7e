/* hakmem-trace: look at, convert, compare and minimize traces.
 *
 *   hakmem-trace dump FILE [--program]     the header, every thread's records and the crash; --program:
 *                                          the converted program (op-program text, one op per line)
 *   hakmem-trace stat FILE                 ops per kind, per size class, per thread, per path served
 *   hakmem-trace from-fuzz IN OUT          fuzz bytes (verify/'s hk_prog_from_fuzz) -> op program
 *   hakmem-trace to-corpus IN OUT          trace or program -> op program (OUT.hkop: binary, else text)
 *   hakmem-trace minimize IN OUT [replay options] [--expect=SIG] [--budget=SECONDS] [-v]
 *                                          delta debugging that keeps the failure signature
 *   hakmem-trace to-c IN OUT.c             the program as a standalone C reproducer
 *   hakmem-trace compare A B [--ignore-usable] [--ignore-sets]
 *                                          same ops and SETs on each thread (threads matched up to
 *                                          renumbering)?
 *
 * Replay options (minimize): --order=, --check=, --learning=, --large, --no-touch as hakmem-replay.
 * Exit status: 0 ok, 1 a difference (compare) or nothing to minimize, 2 bad usage or unreadable input.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tconv.h"
#include "tfile.h"
#include "tmin.h"
#include "treplay.h"

static int usage(void)
{
    fprintf(stderr, "usage: hakmem-trace dump FILE [--program] | stat FILE | from-fuzz IN OUT | to-corpus IN OUT |\n"
                    "                    minimize IN OUT [--order=..] [--check=..] [--expect=SIG] [--budget=S] [-v] |\n"
                    "                    to-c IN OUT.c | compare A B [--ignore-usable] [--ignore-sets]\n");
    return 2;
}

static const char *path_name(unsigned p, char *buf, size_t len)
{
    if (p == HK_TR_PATH_LARGE)
        return "large";
    if (p == HK_TR_PATH_BIGCACHE)
        return "bigcache";
    if (p == HK_TR_PATH_NONE)
        return "-";
    if (p < HK_TR_TINY_CLASSES)
        snprintf(buf, len, "tiny:C%u", p);
    else if (p < HK_TR_CLASSES)
        snprintf(buf, len, "mid:C%u", p);
    else
        snprintf(buf, len, "?%u", p);
    return buf;
}

static int save_prog(const hk_rprog_t *rp, const char *out, const char *comment)
{
    hk_prog_t p;
    hk_prog_init(&p);
    int folded = 0;
    if (hk_rprog_to_prog(rp, &p, &folded) != 0) {
        fprintf(stderr, "hakmem-trace: out of memory\n");
        return 2;
    }
    if (folded)
        fprintf(stderr, "hakmem-trace: warning: %u threads folded onto 8 (the op-program form has 8)\n", rp->nthreads);
    size_t l = strlen(out);
    int binary = l > 5 && strcmp(out + l - 5, ".hkop") == 0;
    int rc = 0;
    if (binary) {
        rc = hk_prog_save_file(&p, out, 1);
    } else {
        FILE *f = strcmp(out, "-") == 0 ? stdout : fopen(out, "w");
        if (!f) {
            rc = -1;
        } else {
            if (comment)
                fputs(comment, f);
            rc = hk_prog_print_text(f, &p);
            if (f != stdout && fclose(f) != 0)
                rc = -1;
        }
    }
    hk_prog_free(&p);
    if (rc != 0) {
        fprintf(stderr, "hakmem-trace: %s: %s\n", out, strerror(errno));
        return 2;
    }
    return 0;
}

/* Loads a trace or op program, or prints why not (with the byte offset for a corrupt trace). */
static int load_or_say(hk_rprog_t *rp, const char *path, int flag)
{
    char err[512];
    if (hk_rprog_load(rp, path, flag, err, sizeof err) == 0)
        return 0;
    fprintf(stderr, "hakmem-trace: %s\n", err);
    return -1;
}

static int cmd_dump(int argc, char **argv)
{
    if (argc < 1)
        return usage();
    int program = argc > 1 && strcmp(argv[1], "--program") == 0;
    char err[512];
    if (program) {
        hk_rprog_t rp;
        if (hk_rprog_load(&rp, argv[0], 1, err, sizeof err) != 0) {
            fprintf(stderr, "hakmem-trace: %s\n", err);
            return 2;
        }
        for (size_t i = 0; i < rp.prog.n; i++) {
            char line[352], pb[16]; /* "set", a 64-byte name and a 256-byte value */
            hk_op_format(&rp.prog.ops[i], line, sizeof line);
            if (rp.meta[i].flags & HK_RM_RAWSET)
                snprintf(line, sizeof line, "set %s %s", rp.raw[rp.prog.ops[i].id].name, rp.raw[rp.prog.ops[i].id].value);
            printf("%6zu  t%-3u %-40s # %s%s%s%s\n", i, rp.meta[i].thread, line, path_name(rp.meta[i].path, pb, sizeof pb),
                   (rp.meta[i].flags & HK_RM_SYNTH) ? " re-created" : "", (rp.meta[i].flags & HK_RM_INFLIGHT) ? " in-flight" : "",
                   (rp.meta[i].flags & HK_RM_CTL) ? " controller" : "");
        }
        hk_rprog_free(&rp);
        return 0;
    }
    hk_trace_file_t t;
    hk_tf_init(&t);
    if (hk_tf_load(&t, argv[0], 1, err, sizeof err) != 0) {
        fprintf(stderr, "hakmem-trace: %s\n", err);
        return 2;
    }
    printf("trace %s: version %u, %s%s, pid %u, %zu threads, %zu chunks, %zu records\n", argv[0], t.version,
           t.ring_cap ? "ring" : "full", (t.flags & 2) ? " (crash dump)" : "", t.pid, t.nthr, t.nchunks, t.nrecords);
    if (t.ring_cap)
        printf("ring capacity: %llu records per thread\n", (unsigned long long)t.ring_cap);
    printf("--- header text\n%s---\n", t.text ? t.text : "");
    for (size_t k = 0; k < t.nthr; k++) {
        hk_tthread_t *th = &t.thr[k];
        printf("thread %u (tid %u): records %" PRIu64 "..%" PRIu64 "%s%s\n", th->slot, th->tid, th->first,
               th->first + th->n, th->first ? " (start cut off)" : "", (th->flags & HK_TR_CK_CRASHED) ? " [crashed here]" : "");
        for (size_t i = 0; i < th->n; i++) {
            hk_trec_file_t *r = &th->rec[i];
            char pb[16];
            printf("  %8" PRIu64 " e%-8u %-14s in=0x%-14" PRIx64 " out=0x%-14" PRIx64 " size=%-8" PRIu64 " %s%s%s%s%s", th->first + i,
                   r->epoch, r->kind == HK_TR_KIND_EXT ? "ext" : hk_op_kind_name(r->kind), r->in, r->out, r->size,
                   path_name(r->path, pb, sizeof pb), (r->flags & HK_TR_F_INFLIGHT) ? " IN-FLIGHT" : "",
                   (r->flags & HK_TR_F_FAILED) ? " failed" : "", (r->flags & HK_TR_F_CTL) ? " ctl" : "",
                   (r->flags & HK_TR_F_BUMP) ? " bump" : "");
            if (r->flags & HK_TR_F_FAILED)
                printf(" err=%u", r->err);
            printf("\n");
        }
    }
    if (t.crashed)
        printf("crash: signal %u (%s)%s on thread %u (tid %u)\n", t.crash_sig, hk_signame((int)t.crash_sig),
               (t.crash_flags & 1) ? " from a hardened report" : "", t.crash_slot, t.crash_tid);
    if (t.ended)
        printf("end: %" PRIu64 " records%s\n", t.end_total, t.end_lost ? " (some threads were not recorded)" : "");
    if (t.warn[0])
        printf("warning: %s\n", t.warn);
    hk_tf_free(&t);
    return 0;
}

static int cmd_stat(int argc, char **argv)
{
    if (argc < 1)
        return usage();
    hk_rprog_t rp;
    if (load_or_say(&rp, argv[0], 1) != 0)
        return 2;
    uint64_t kind[HK_OP_KIND_COUNT] = {0}, size_bucket[66] = {0}, path[4] = {0};
    uint64_t *per_thread = calloc(rp.nthreads ? rp.nthreads : 1, sizeof *per_thread);
    uint64_t sets_ctl = 0;
    for (size_t i = 0; i < rp.prog.n; i++) {
        const hk_op_t *op = &rp.prog.ops[i];
        kind[op->kind]++;
        if (per_thread)
            per_thread[rp.meta[i].thread]++;
        if (hk_op_allocates(op->kind)) {
            uint64_t s = op->size;
            size_bucket[s ? 64 - __builtin_clzll(s) : 0]++;
        }
        unsigned p = rp.meta[i].path;
        path[p < HK_TR_TINY_CLASSES ? 0 : p < HK_TR_CLASSES ? 1 : p == HK_TR_PATH_LARGE ? 2 : p == HK_TR_PATH_BIGCACHE ? 3 : 0] += p != HK_TR_PATH_NONE;
        sets_ctl += op->kind == HK_OP_SET && (rp.meta[i].flags & HK_RM_CTL);
    }
    printf("%s: %zu ops, %u threads, %u block ids\n", argv[0], rp.prog.n, rp.nthreads, rp.prog.id_count);
    printf("ops per kind:\n");
    for (unsigned k = 0; k < HK_OP_KIND_COUNT; k++)
        if (kind[k])
            printf("  %-16s %" PRIu64 "%s\n", hk_op_kind_name(k), kind[k], k == HK_OP_SET && sets_ctl ? " (controller decisions included)" : "");
    printf("requested sizes (allocating ops):\n");
    for (unsigned b = 0; b < 66; b++)
        if (size_bucket[b])
            printf("  %s%-12llu %" PRIu64 "\n", b ? "<= " : "   ", b ? (unsigned long long)((b >= 64) ? UINT64_MAX : ((1ull << b) - 1)) : 0ull, size_bucket[b]);
    printf("ops per thread:\n");
    for (uint32_t t = 0; t < rp.nthreads && per_thread; t++)
        printf("  thread %-4u %" PRIu64 "\n", t, per_thread[t]);
    printf("path served (recorded): tiny %" PRIu64 ", mid %" PRIu64 ", large %" PRIu64 ", bigcache %" PRIu64 "\n", path[0], path[1],
           path[2], path[3]);
    printf("conversion: %llu re-created allocations, %llu misuses skipped, %llu in-flight ops, %llu order repairs, %llu forced\n",
           (unsigned long long)rp.synthesized, (unsigned long long)rp.misuse, (unsigned long long)rp.inflight,
           (unsigned long long)rp.repaired, (unsigned long long)rp.forced);
    if (rp.expect[0])
        printf("expected outcome: %s\n", rp.expect);
    free(per_thread);
    hk_rprog_free(&rp);
    return 0;
}

static int cmd_from_fuzz(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    uint8_t *data;
    size_t n;
    if (hk_tf_read_all(argv[0], &data, &n) != 0) {
        fprintf(stderr, "hakmem-trace: %s: %s\n", argv[0], strerror(errno));
        return 2;
    }
    hk_prog_t p;
    hk_prog_init(&p);
    int rc = hk_prog_from_fuzz(&p, data, n);
    free(data);
    hk_rprog_t rp;
    if (rc != 0 || hk_rprog_from_prog(&rp, &p) != 0) {
        fprintf(stderr, "hakmem-trace: out of memory\n");
        return 2;
    }
    hk_prog_free(&p);
    char comment[512];
    snprintf(comment, sizeof comment, "# from fuzz input %s (%zu bytes)\n", argv[0], n);
    rc = save_prog(&rp, argv[1], comment);
    hk_rprog_free(&rp);
    return rc;
}

static int cmd_to_corpus(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    hk_rprog_t rp;
    if (load_or_say(&rp, argv[0], 0) != 0)
        return 2;
    char comment[512];
    snprintf(comment, sizeof comment, "# converted from %s by hakmem-trace to-corpus: %zu ops, %u threads\n%s%s%s", argv[0],
             rp.prog.n, rp.nthreads, rp.expect[0] ? "# recorded outcome: " : "", rp.expect, rp.expect[0] ? "\n" : "");
    int rc = save_prog(&rp, argv[1], comment);
    hk_rprog_free(&rp);
    return rc;
}

static int parse_replay_opt(const char *a, hk_replay_opts_t *o)
{
    if (!strncmp(a, "--order=", 8))
        o->order = !strcmp(a + 8, "deps") ? HK_ORDER_DEPS : HK_ORDER_EXACT;
    else if (!strncmp(a, "--check=", 8))
        return hk_replay_parse_checks(a + 8, &o->checks);
    else if (!strncmp(a, "--learning=", 11))
        o->learning = !strcmp(a + 11, "off") ? HK_LEARN_OFF : HK_LEARN_FORCED;
    else if (!strcmp(a, "--large"))
        o->allow_large = 1;
    else if (!strcmp(a, "--no-touch"))
        o->touch = 0;
    else
        return -1;
    return 0;
}

static int cmd_minimize(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    hk_min_opts_t mo;
    memset(&mo, 0, sizeof mo);
    hk_replay_opts_default(&mo.replay);
    mo.replay.quiet = 1;
    for (int i = 2; i < argc; i++) {
        if (!strncmp(argv[i], "--expect=", 9))
            mo.target = argv[i] + 9;
        else if (!strncmp(argv[i], "--budget=", 9))
            mo.budget_s = atof(argv[i] + 9);
        else if (!strcmp(argv[i], "-v"))
            mo.verbose = 1;
        else if (parse_replay_opt(argv[i], &mo.replay) != 0)
            return usage();
    }
    hk_rprog_t rp;
    if (load_or_say(&rp, argv[0], 1) != 0)
        return 2;
    if (!mo.target && rp.expect[0])
        mo.target = rp.expect;
    size_t before = rp.prog.n, tests = 0;
    uint32_t threads_before = rp.nthreads;
    char sig[96];
    if (hk_minimize(&rp, &mo, sig, sizeof sig, &tests) != 0) {
        fprintf(stderr, "hakmem-trace: %s does not fail as required (replay outcome: %s%s%s); nothing to minimize\n", argv[0], sig,
                mo.target ? ", wanted " : "", mo.target ? mo.target : "");
        hk_rprog_free(&rp);
        return 1;
    }
    char comment[768];
    snprintf(comment, sizeof comment,
             "# minimized by hakmem-trace minimize from %s: %zu ops on %u threads -> %zu ops on %u threads (%zu replays)\n"
             "# failure signature kept: %s (replay with --order=%s --check=%s)\n",
             argv[0], before, threads_before, rp.prog.n, rp.nthreads, tests, sig,
             mo.replay.order == HK_ORDER_DEPS ? "deps" : "exact", mo.replay.checks ? "<as given>" : "none");
    int rc = save_prog(&rp, argv[1], comment);
    printf("%s: %zu ops, %u threads -> %s: %zu ops, %u threads; signature %s; %zu replays\n", argv[0], before, threads_before,
           argv[1], rp.prog.n, rp.nthreads, sig, tests);
    hk_rprog_free(&rp);
    return rc;
}

static int cmd_to_c(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    hk_rprog_t rp;
    if (load_or_say(&rp, argv[0], 1) != 0)
        return 2;
    FILE *f = strcmp(argv[1], "-") == 0 ? stdout : fopen(argv[1], "w");
    if (!f) {
        fprintf(stderr, "hakmem-trace: %s: %s\n", argv[1], strerror(errno));
        hk_rprog_free(&rp);
        return 2;
    }
    const char *base = strrchr(argv[0], '/');
    int rc = hk_write_c(f, &rp, base ? base + 1 : argv[0], rp.expect);
    if (f != stdout && fclose(f) != 0)
        rc = -1;
    hk_rprog_free(&rp);
    return rc ? 2 : 0;
}

/* Compares two programs thread by thread: each thread's ops (kind, size, arg, SET value) in order. The
 * threads are matched up to renumbering (two recordings number threads as they happened to start), and
 * block ids are not compared (they follow the merge of the threads, which may differ within an epoch). */
typedef struct tseq {
    uint64_t hash;
    size_t n, sets;
    uint32_t thread;
} tseq_t;

static int skip_op(const hk_rprog_t *r, size_t i, int ign_usable, int ign_sets)
{
    unsigned k = r->prog.ops[i].kind;
    return k == HK_OP_THREAD || (ign_usable && k == HK_OP_USABLE) || (ign_sets && k == HK_OP_SET);
}

static uint64_t op_hash(const hk_rprog_t *r, size_t i)
{
    const hk_op_t *op = &r->prog.ops[i];
    uint64_t h = (uint64_t)op->kind * 0x9e3779b97f4a7c15ull ^ op->size * 0xff51afd7ed558ccdull ^ op->arg;
    if (op->kind == HK_OP_SET) {
        const char *v = (r->meta[i].flags & HK_RM_RAWSET) ? r->raw[op->id].value : NULL;
        h ^= (uint64_t)op->id << 40;
        for (; v && *v; v++)
            h = (h ^ (unsigned char)*v) * 0x100000001b3ull;
    }
    return h;
}

static tseq_t *thread_seqs(const hk_rprog_t *r, int iu, int is)
{
    tseq_t *t = calloc(r->nthreads ? r->nthreads : 1, sizeof *t);
    if (!t)
        return NULL;
    for (uint32_t k = 0; k < r->nthreads; k++)
        t[k].thread = k, t[k].hash = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < r->prog.n; i++) {
        if (skip_op(r, i, iu, is))
            continue;
        tseq_t *q = &t[r->meta[i].thread];
        q->hash = (q->hash ^ op_hash(r, i)) * 0x100000001b3ull;
        q->hash ^= q->hash >> 31;
        q->n++;
        q->sets += r->prog.ops[i].kind == HK_OP_SET;
    }
    return t;
}

static int cmp_seq(const void *a, const void *b)
{
    const tseq_t *x = a, *y = b;
    if (x->n != y->n)
        return x->n < y->n ? -1 : 1;
    return x->hash < y->hash ? -1 : x->hash > y->hash;
}

static int cmd_compare(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    int ign_usable = 0, ign_sets = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--ignore-usable"))
            ign_usable = 1;
        else if (!strcmp(argv[i], "--ignore-sets"))
            ign_sets = 1;
        else
            return usage();
    }
    hk_rprog_t a, b;
    char err[512];
    if (hk_rprog_load(&a, argv[0], 1, err, sizeof err) != 0 || hk_rprog_load(&b, argv[1], 1, err, sizeof err) != 0) {
        fprintf(stderr, "hakmem-trace: %s\n", err);
        return 2;
    }
    tseq_t *ta = thread_seqs(&a, ign_usable, ign_sets), *tb = thread_seqs(&b, ign_usable, ign_sets);
    size_t na = 0, nb = 0, ops_a = 0, ops_b = 0, sets_a = 0, sets_b = 0;
    for (uint32_t k = 0; ta && k < a.nthreads; k++)
        if (ta[k].n)
            ta[na++] = ta[k], ops_a += ta[k].n, sets_a += ta[k].sets;
    for (uint32_t k = 0; tb && k < b.nthreads; k++)
        if (tb[k].n)
            tb[nb++] = tb[k], ops_b += tb[k].n, sets_b += tb[k].sets;
    int same = ta && tb && na == nb;
    if (same) {
        qsort(ta, na, sizeof *ta, cmp_seq);
        qsort(tb, nb, sizeof *tb, cmp_seq);
        for (size_t k = 0; k < na; k++)
            if (ta[k].n != tb[k].n || ta[k].hash != tb[k].hash) {
                same = 0;
                printf("thread %u of %s (%zu ops, %zu SETs) has no match in %s\n", ta[k].thread, argv[0], ta[k].n, ta[k].sets, argv[1]);
            }
    }
    printf("compared %zu vs %zu ops on %zu vs %zu threads: %s; SETs: %zu vs %zu%s\n", ops_a, ops_b, na, nb,
           same ? "same" : "DIFFERENT", sets_a, sets_b, ign_sets ? " (ignored)" : "");
    free(ta);
    free(tb);
    hk_rprog_free(&a);
    hk_rprog_free(&b);
    return same ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *c = argv[1];
    if (!strcmp(c, "dump"))
        return cmd_dump(argc - 2, argv + 2);
    if (!strcmp(c, "stat"))
        return cmd_stat(argc - 2, argv + 2);
    if (!strcmp(c, "from-fuzz"))
        return cmd_from_fuzz(argc - 2, argv + 2);
    if (!strcmp(c, "to-corpus"))
        return cmd_to_corpus(argc - 2, argv + 2);
    if (!strcmp(c, "minimize"))
        return cmd_minimize(argc - 2, argv + 2);
    if (!strcmp(c, "to-c"))
        return cmd_to_c(argc - 2, argv + 2);
    if (!strcmp(c, "compare"))
        return cmd_compare(argc - 2, argv + 2);
    return usage();
}
