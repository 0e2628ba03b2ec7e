/* The misuse runner: runs each misuse case in a child process and checks that the hardened allocator
 * aborted it with the right fail-fast report.
 *
 *   misuse_runner [--lib LIB | --prefixed] [--bin DIR] [--variant hardened|debug] [--mode M|all]
 *                 [--repeat N] [--table FILE] [--only SUBSTR] [--list]
 *
 *   --lib LIB      preload flavor: the plain programs run with LD_PRELOAD=LIB
 *   --prefixed     prefixed flavor: the programs linked with the prefixed static library run as they are
 *   --bin DIR      where the misuse programs are (default: the runner's own directory)
 *   --variant V    the variant the report must name (default: "debug" when LIB's name contains
 *                  "debug", else "hardened")
 *   --mode M       HAKMEM_MODE for the children, and the mode the report must name; "all" runs the
 *                  suite once per mode. Default: $HAKMEM_MODE if set, else fast (unset in children)
 *   --repeat N     runs of each probabilistic case (link poisoning), each with MISUSE_SEED=1..N so
 *                  the heap layout differs; every run must be caught (default 200)
 *   --table FILE   writes one line per case: case <TAB> fault <TAB> yes|no <TAB> message
 *
 * For each case the runner asserts: (a) the child died of SIGABRT; (b) stderr holds exactly one report
 * line, shaped as
 *   hakmem: fatal: <fault>: pointer 0x<hex>, class C<n> (<size> B)|class large|class none, thread <tid>,
 *   mode <mode>, variant <variant>
 * with the expected fault name (a few cases accept one alternative, with the reason beside the case),
 * the expected class kind (a slab class or "large"), the faulting thread (the main thread = the
 * child's pid, or another one), and, where the program noted it, the pointer it misused.
 *
 * Cases marked as gaps probe documented limits of the hardened design (e.g. a write after free past
 * the checked fill). They must run to completion undetected, or be caught (then the gap is closed and
 * the case counts as passed); any other outcome (crash, setup failure) fails. They appear in the table
 * with detected = no.
 *
 * Output: one line per case ("ok <case> <fault>", "gap <case>: ...", "FAIL <case>: expected ...,
 * got ..."), then a line "N passed, N failed". Exit status 1 when anything failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Slab classes C0..C44 (HK_NCLASSES in src/common.h; this runner does not link the allocator). */
#define NCLASSES 45
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* exit codes of the programs (misuse.h) */
enum { MU_EXIT_MISSED = 3, MU_EXIT_SETUP = 4, MU_EXIT_UNMAPPED = 5 };

enum { CLS_SMALL, CLS_LARGE, CLS_ANY };
enum { TID_MAIN, TID_OTHER };
enum { FL_PRELOAD = 1, FL_PREFIXED = 2, FL_BOTH = 3 };

/* Fault names, exactly as the allocator prints them (src/hardened/report.c). */
#define F_DFREE "double free"
#define F_INVALID "invalid free"
#define F_INTERIOR "free of an interior pointer"
#define F_FOREIGN "free of a pointer hakmem does not own"
#define F_UAF "write after free"
#define F_BADLINK "free-list corruption (bad link)"
#define F_NOTFREE "free-list corruption (link to a block that is not free)"
#define F_OVERFLOW "heap overflow (canary overwritten)"
#define F_RFREED "realloc of a freed block"
#define F_RINVALID "realloc of a pointer hakmem does not own"
#define F_LDFREE "double free of a large block"

typedef struct mr_case {
    const char *name;
    const char *prog;     /* program basename: misuse_<prog>[_prefixed] */
    const char *args;     /* argv[1..], space separated */
    const char *expect;   /* fault name */
    const char *alt;      /* an alternative fault name that is also right, or NULL (reason in the table) */
    int cls, tid, ptr;    /* class kind, faulting thread, check the reported pointer */
    int repeat;           /* probabilistic: run --repeat times with different seeds */
    int flavors;
    const char *gap;      /* non-NULL: a documented limit, this is why */
} mr_case_t;

/* clang-format off */
static const mr_case_t mr_static_cases[] = {
    /* double free */
    {"double_free.immediate", "double_free", "immediate", F_DFREE, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"double_free.delayed", "double_free", "delayed", F_DFREE, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"double_free.neighbours", "double_free", "neighbours", F_DFREE, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"double_free.mid", "double_free", "mid", F_DFREE, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"double_free.thread", "double_free", "thread", F_DFREE, NULL, CLS_SMALL, TID_OTHER, 1, 0, FL_BOTH, NULL},
    {"double_free.thread_first", "double_free", "thread_first", F_DFREE, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"double_free.thread_exit", "double_free", "thread_exit", F_DFREE, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    /* The slab went back to its region when its thread exited: the descriptor is unused, so the
     * allocator can only tell that the pointer is no live block ("invalid free"). */
    {"double_free.released_slab", "double_free", "released_slab", F_DFREE, F_INVALID, CLS_ANY, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"double_free.large", "double_free", "large", F_LDFREE, NULL, CLS_LARGE, TID_MAIN, 1, 0, FL_BOTH, NULL},
    /* Freed large pointers are remembered in a ring of the last 64 (large.c: hk_recent) and as BigCache
     * entries; after 100 other large frees with the BigCache off (mode minimal) the pointer is
     * forgotten and can only be reported as foreign. */
    {"double_free.large_delayed", "double_free", "large_delayed", F_LDFREE, F_FOREIGN, CLS_LARGE, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"double_free.after_realloc", "double_free", "after_realloc", F_DFREE, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"double_free.large_after_realloc", "double_free", "large_after_realloc", F_LDFREE, NULL, CLS_LARGE, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"double_free.slab_reused", "double_free", "slab_reused", F_DFREE, NULL, CLS_SMALL, TID_MAIN, 0, 0, FL_BOTH,
     "no quarantine: a stale pointer into a slab that was given back and carved again is the new live block"},
    {"double_free.realloc_zero", "double_free", "realloc_zero", F_DFREE, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"double_free.hole", "double_free", "hole", F_DFREE, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    /* invalid free */
    {"invalid_free.interior_small", "invalid_free", "interior_small", F_INTERIOR, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"invalid_free.interior_odd", "invalid_free", "interior_odd", F_INTERIOR, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"invalid_free.interior_mid", "invalid_free", "interior_mid", F_INTERIOR, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"invalid_free.interior_large", "invalid_free", "interior_large", F_INTERIOR, NULL, CLS_LARGE, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"invalid_free.interior_large_odd", "invalid_free", "interior_large_odd", F_INTERIOR, NULL, CLS_LARGE, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"invalid_free.stack", "invalid_free", "stack", F_FOREIGN, NULL, CLS_ANY, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"invalid_free.wild", "invalid_free", "wild", F_FOREIGN, NULL, CLS_ANY, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"invalid_free.unmapped", "invalid_free", "unmapped", F_FOREIGN, NULL, CLS_ANY, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"invalid_free.noncanonical", "invalid_free", "noncanonical", F_FOREIGN, NULL, CLS_ANY, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"invalid_free.mmap", "invalid_free", "mmap", F_FOREIGN, NULL, CLS_ANY, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"invalid_free.region_header", "invalid_free", "region_header", F_INVALID, NULL, CLS_ANY, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"invalid_free.slab_tail", "invalid_free", "slab_tail", F_INVALID, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"invalid_free.uncarved", "invalid_free", "uncarved", F_INVALID, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    /* The block was freed, then its slab's free tail was trimmed: the pointer is no carved block any
     * more ("invalid free"); a double free is the other right name. */
    {"invalid_free.trimmed_tail", "invalid_free", "trimmed_tail", F_INVALID, F_DFREE, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"invalid_free.glibc", "invalid_free", "glibc", F_FOREIGN, NULL, CLS_ANY, TID_MAIN, 1, 0, FL_PREFIXED, NULL},
    /* write after free */
    {"write_after_free.small", "write_after_free", "small", F_UAF, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"write_after_free.small_word", "write_after_free", "small_word", F_UAF, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"write_after_free.mid", "write_after_free", "mid", F_UAF, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"write_after_free.calloc", "write_after_free", "calloc", F_UAF, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"write_after_free.hole", "write_after_free", "hole", F_UAF, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    /* The link word decodes to garbage: the report names the decoded pointer, not the block. */
    {"write_after_free.link_word", "write_after_free", "link_word", F_BADLINK, NULL, CLS_SMALL, TID_MAIN, 0, 0, FL_BOTH, NULL},
    {"write_after_free.marker_word", "write_after_free", "marker_word", F_NOTFREE, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"write_after_free.beyond_fill", "write_after_free", "beyond_fill", F_UAF, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH,
     "a freed block's fill is two words (bytes 16..31, HK_UAF_WORDS) plus the canary; a write at offset 40 is not seen"},
    {"write_after_free.large", "write_after_free", "large", F_UAF, NULL, CLS_LARGE, TID_MAIN, 1, 0, FL_BOTH,
     "hardened: only the first and last 16 KiB of a freed large block kept in the BigCache are filled and checked at "
     "reuse (this write, at offset 100, is caught); debug: the cached block is PROT_NONE"},
    {"write_after_free.large_middle", "write_after_free", "large_middle", F_UAF, NULL, CLS_LARGE, TID_MAIN, 1, 0, FL_BOTH,
     "hardened: a write between the watched first and last 16 KiB of a cached large block is not seen; debug: the "
     "cached block is PROT_NONE"},
    /* link poisoning: probabilistic in principle (the secret), so run many times */
    {"poison_link.live", "poison_link", "live", F_BADLINK, NULL, CLS_SMALL, TID_MAIN, 0, 1, FL_BOTH, NULL},
    {"poison_link.mangled", "poison_link", "mangled", F_BADLINK, NULL, CLS_SMALL, TID_MAIN, 0, 1, FL_BOTH, NULL},
    {"poison_link.stack", "poison_link", "stack", F_BADLINK, NULL, CLS_SMALL, TID_MAIN, 0, 1, FL_BOTH, NULL},
    {"poison_link.null", "poison_link", "null", F_BADLINK, NULL, CLS_SMALL, TID_MAIN, 0, 1, FL_BOTH, NULL},
    /* The neighbour passes the link check; what catches it is either its first word (user data,
     * decoding to garbage) or its missing free marker, whichever the pop looks at first. */
    {"poison_link.partial", "poison_link", "partial", F_BADLINK, F_NOTFREE, CLS_SMALL, TID_MAIN, 0, 1, FL_BOTH, NULL},
    {"poison_link.cycle", "poison_link", "cycle", F_NOTFREE, F_BADLINK, CLS_SMALL, TID_MAIN, 0, 1, FL_BOTH, NULL},
    {"poison_link.remote", "poison_link", "remote", F_BADLINK, NULL, CLS_SMALL, TID_MAIN, 0, 1, FL_BOTH, NULL},
    {"poison_link.abandoned", "poison_link", "abandoned", F_BADLINK, NULL, CLS_SMALL, TID_MAIN, 0, 1, FL_BOTH, NULL},
    /* overflow: the bytes.SIZE.K rows are generated (mr_build_cases) */
    {"overflow.realloc", "overflow", "realloc 24 3", F_OVERFLOW, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"overflow.realloc_mid", "overflow", "realloc 3000 8", F_OVERFLOW, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"overflow.underflow", "overflow", "underflow", F_OVERFLOW, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"overflow.nul", "overflow", "nul 24", F_OVERFLOW, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH,
     "the canary's first byte is zero (so string reads stop there): an off-by-one NUL leaves it intact"},
    {"overflow.large", "overflow", "large", F_OVERFLOW, NULL, CLS_LARGE, TID_MAIN, 1, 0, FL_BOTH,
     "large blocks have neither a canary nor a guard page: an overflow runs into the next mapping"},
    /* realloc misuse */
    {"realloc.freed_small", "realloc_misuse", "freed_small", F_RFREED, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"realloc.freed_same", "realloc_misuse", "freed_same", F_RFREED, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"realloc.freed_mid", "realloc_misuse", "freed_mid", F_RFREED, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"realloc.freed_large", "realloc_misuse", "freed_large", F_RFREED, NULL, CLS_LARGE, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"realloc.interior_small", "realloc_misuse", "interior_small", F_RINVALID, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"realloc.interior_large", "realloc_misuse", "interior_large", F_RINVALID, NULL, CLS_ANY, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"realloc.mmap", "realloc_misuse", "mmap", F_RINVALID, NULL, CLS_ANY, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"realloc.stack", "realloc_misuse", "stack", F_RINVALID, NULL, CLS_ANY, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"realloc.wild", "realloc_misuse", "wild", F_RINVALID, NULL, CLS_ANY, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"realloc.moved_small", "realloc_misuse", "moved_small", F_RFREED, NULL, CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL},
    {"realloc.moved_large", "realloc_misuse", "moved_large", F_RFREED, NULL, CLS_LARGE, TID_MAIN, 1, 0, FL_BOTH, NULL},
};
/* clang-format on */

static const char *const mr_modes[] = {"minimal", "fast", "balanced", "learning", "adaptive", "tight", "lean", "research"};

/* ---- options and state ------------------------------------------------------------------------ */
static const char *opt_lib, *opt_bin, *opt_variant, *opt_mode, *opt_table, *opt_only;
static int opt_prefixed, opt_list, opt_repeat = 200;
static FILE *table_fp;
static int n_pass, n_fail, n_gap;

static mr_case_t *cases;
static size_t n_cases;
static char overflow_names[64][48], overflow_args[64][32];

static void mr_build_cases(void) {
    static const unsigned sizes[] = {24, 200, 1000, 3000, 40000};
    size_t n_static = sizeof mr_static_cases / sizeof mr_static_cases[0], k = 0;
    cases = calloc(n_static + 64, sizeof *cases);
    if (cases == NULL) exit(2);
    for (size_t i = 0; i < n_static; i++) {
        cases[n_cases++] = mr_static_cases[i];
        if (strcmp(mr_static_cases[i].name, "poison_link.abandoned") != 0) continue;
        /* overflow by 1..8 bytes past the usable size, for a tiny, a mid and a large-ish slab class */
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            for (unsigned by = 1; by <= 8; by++, k++) {
                snprintf(overflow_names[k], sizeof overflow_names[k], "overflow.%u+%u", sizes[s], by);
                snprintf(overflow_args[k], sizeof overflow_args[k], "bytes %u %u", sizes[s], by);
                cases[n_cases++] = (mr_case_t){overflow_names[k], "overflow", overflow_args[k], F_OVERFLOW, NULL,
                                               CLS_SMALL, TID_MAIN, 1, 0, FL_BOTH, NULL};
            }
        }
    }
}

/* ---- one run ---------------------------------------------------------------------------------- */
typedef struct mr_result {
    int status;          /* waitpid status */
    pid_t pid;
    char err[4096];      /* the child's stderr (truncated) */
    char noted[64];      /* the pointer the program noted, or "" */
    double secs;
} mr_result_t;

static void mr_read_all(int fd, char *buf, size_t cap) {
    size_t n = 0;
    for (;;) {
        char tmp[1024];
        ssize_t r = read(fd, tmp, sizeof tmp);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        size_t take = (size_t)r < cap - 1 - n ? (size_t)r : cap - 1 - n;
        memcpy(buf + n, tmp, take);
        n += take;
    }
    buf[n] = 0;
}

static double mr_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int mr_run(const mr_case_t *c, const char *mode, unsigned seed, mr_result_t *res) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/misuse_%s%s", opt_bin, c->prog, opt_prefixed ? "_prefixed" : "");
    char argbuf[128];
    snprintf(argbuf, sizeof argbuf, "%s", c->args);
    char *argv[8] = {path};
    int argc = 1;
    for (char *save = NULL, *t = strtok_r(argbuf, " ", &save); t && argc < 7; t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    argv[argc] = NULL;

    int errp[2], ptrp[2];
    if (pipe2(errp, O_CLOEXEC) != 0 || pipe(ptrp) != 0) return -1;
    fcntl(ptrp[0], F_SETFD, FD_CLOEXEC);
    double t0 = mr_now();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(errp[1], 2);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) dup2(devnull, 1), dup2(devnull, 0);
        char fdbuf[16], seedbuf[16];
        snprintf(fdbuf, sizeof fdbuf, "%d", ptrp[1]);
        setenv("MISUSE_PTR_FD", fdbuf, 1);
        if (seed) {
            snprintf(seedbuf, sizeof seedbuf, "%u", seed);
            setenv("MISUSE_SEED", seedbuf, 1);
        } else {
            unsetenv("MISUSE_SEED");
        }
        if (opt_prefixed) unsetenv("LD_PRELOAD");
        else setenv("LD_PRELOAD", opt_lib, 1);
        if (mode) setenv("HAKMEM_MODE", mode, 1);
        /* a misuse the allocator missed may leave the program looping: SIGALRM ends it */
        alarm(20);
        execv(path, argv);
        fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    close(errp[1]);
    close(ptrp[1]);
    mr_read_all(errp[0], res->err, sizeof res->err);
    mr_read_all(ptrp[0], res->noted, sizeof res->noted);
    close(errp[0]);
    close(ptrp[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    res->status = st;
    res->pid = pid;
    res->secs = mr_now() - t0;
    char *nl = strchr(res->noted, '\n');
    if (nl) *nl = 0;
    return 0;
}

/* ---- checking one run ------------------------------------------------------------------------- */
static regex_t re_line;

typedef struct mr_verdict {
    int detected;        /* the allocator caught it with the right report */
    int missed;          /* ran to completion: the allocator did not see the misuse */
    int unmapped;        /* the memory was not mapped: the write would fault */
    char fault[128];     /* the fault the report named, or a description of the outcome */
    char want[300];      /* the expectation that failed, when neither detected nor missed */
    char why[1024];      /* what happened instead */
    char line[400];      /* the report line, if any */
} mr_verdict_t;

static void mr_first_line(const char *s, char *out, size_t cap) {
    size_t n = strcspn(s, "\n");
    if (n >= cap) n = cap - 1;
    memcpy(out, s, n);
    out[n] = 0;
}

static void mr_want_abort(const mr_case_t *c, mr_verdict_t *v) {
    snprintf(v->want, sizeof v->want, "SIGABRT with '%s'%s%s%s", c->expect, c->alt ? " or '" : "", c->alt ? c->alt : "",
             c->alt ? "'" : "");
}

static void mr_check(const mr_case_t *c, const char *mode, const mr_result_t *r, mr_verdict_t *v) {
    memset(v, 0, sizeof *v);
    int st = r->status;
    if (WIFEXITED(st)) {
        int code = WEXITSTATUS(st);
        char first[300];
        mr_first_line(r->err, first, sizeof first);
        if (code == MU_EXIT_MISSED) {
            v->missed = 1;
            snprintf(v->fault, sizeof v->fault, "not detected");
            snprintf(v->line, sizeof v->line, "%s", first);
        } else if (code == MU_EXIT_UNMAPPED) {
            v->unmapped = 1;
            snprintf(v->fault, sizeof v->fault, "memory unmapped");
            snprintf(v->line, sizeof v->line, "the misused memory is not mapped: the write would fault");
        } else {
            snprintf(v->fault, sizeof v->fault, "exit %d", code);
            mr_want_abort(c, v);
            snprintf(v->why, sizeof v->why, "exit %d%s%s", code, first[0] ? ": " : "", first);
        }
        return;
    }
    if (WIFSIGNALED(st) && WTERMSIG(st) != SIGABRT) {
        snprintf(v->fault, sizeof v->fault, "signal %d", WTERMSIG(st));
        mr_want_abort(c, v);
        snprintf(v->why, sizeof v->why, "killed by signal %d (%s)%s", WTERMSIG(st), strsignal(WTERMSIG(st)),
                 WTERMSIG(st) == SIGALRM ? ": timeout" : "");
        return;
    }
    /* SIGABRT: find the report line; exactly one is allowed */
    const char *hit = NULL;
    int nhits = 0;
    for (const char *s = r->err; (s = strstr(s, "hakmem: fatal: ")) != NULL; s++) {
        if (s == r->err || s[-1] == '\n') {
            if (!hit) hit = s;
            nhits++;
        }
    }
    snprintf(v->fault, sizeof v->fault, "SIGABRT");
    if (hit == NULL) {
        char first[300];
        mr_first_line(r->err, first, sizeof first);
        snprintf(v->want, sizeof v->want, "a report line");
        snprintf(v->why, sizeof v->why, "SIGABRT without one (stderr: %s)", first[0] ? first : "empty");
        return;
    }
    mr_first_line(hit, v->line, sizeof v->line);
    if (nhits > 1) {
        snprintf(v->want, sizeof v->want, "one report line");
        snprintf(v->why, sizeof v->why, "%d", nhits);
        return;
    }
    regmatch_t m[10];
    if (regexec(&re_line, v->line, 10, m, 0) != 0) {
        snprintf(v->want, sizeof v->want, "a report line of the documented shape");
        snprintf(v->why, sizeof v->why, "'%s'", v->line);
        return;
    }
#define GRP(i, buf) snprintf(buf, sizeof buf, "%.*s", (int)(m[i].rm_eo - m[i].rm_so), v->line + m[i].rm_so)
    char ptr[40], cls[64], tid[24], rmode[32], var[32];
    GRP(1, v->fault);
    GRP(2, ptr);
    GRP(3, cls);
    GRP(6, tid);
    GRP(7, rmode);
    GRP(8, var);
#undef GRP
    if (strcmp(v->fault, c->expect) != 0 && !(c->alt && strcmp(v->fault, c->alt) == 0)) {
        mr_want_abort(c, v);
        snprintf(v->why, sizeof v->why, "'%s' (%s)", v->fault, v->line);
        return;
    }
    int is_large = strcmp(cls, "large") == 0, is_none = strcmp(cls, "none") == 0;
    if ((c->cls == CLS_SMALL && (is_large || is_none)) || (c->cls == CLS_LARGE && !is_large)) {
        snprintf(v->want, sizeof v->want, "class %s", c->cls == CLS_SMALL ? "C<n> (a slab class)" : "large");
        snprintf(v->why, sizeof v->why, "class %s", cls);
        return;
    }
    if (!is_large && !is_none) {
        long idx = strtol(cls + 1, NULL, 10);
        if (idx < 0 || idx >= NCLASSES) {
            snprintf(v->want, sizeof v->want, "a class index below %d", NCLASSES);
            snprintf(v->why, sizeof v->why, "%s", cls);
            return;
        }
    }
    long t = strtol(tid, NULL, 10);
    if (c->tid == TID_MAIN && t != (long)r->pid) {
        snprintf(v->want, sizeof v->want, "thread %ld (the main thread)", (long)r->pid);
        snprintf(v->why, sizeof v->why, "thread %ld", t);
        return;
    }
    if (c->tid == TID_OTHER && t == (long)r->pid) {
        snprintf(v->want, sizeof v->want, "a thread other than the main one");
        snprintf(v->why, sizeof v->why, "the main thread %ld", t);
        return;
    }
    if (c->ptr) {
        if (r->noted[0] == 0) {
            snprintf(v->want, sizeof v->want, "the program to note its pointer (MISUSE_PTR_FD)");
            snprintf(v->why, sizeof v->why, "nothing");
            return;
        }
        if (strtoull(r->noted, NULL, 16) != strtoull(ptr, NULL, 16)) {
            snprintf(v->want, sizeof v->want, "pointer %s (the misused one)", r->noted);
            snprintf(v->why, sizeof v->why, "pointer 0x%s", ptr);
            return;
        }
    }
    if (strcmp(rmode, mode ? mode : "fast") != 0) {
        snprintf(v->want, sizeof v->want, "mode %s", mode ? mode : "fast");
        snprintf(v->why, sizeof v->why, "mode %s", rmode);
        return;
    }
    if (strcmp(var, opt_variant) != 0) {
        snprintf(v->want, sizeof v->want, "variant %s", opt_variant);
        snprintf(v->why, sizeof v->why, "variant %s", var);
        return;
    }
    v->detected = 1;
}

/* ---- one case (all its runs) ------------------------------------------------------------------ */
static void mr_table_row(const char *name, const char *fault, int detected, const char *msg) {
    if (!table_fp) return;
    /* tabs separate the columns: none may appear inside one */
    char m[2048];
    snprintf(m, sizeof m, "%s", msg);
    for (char *p = m; *p; p++)
        if (*p == '\t' || *p == '\n') *p = ' ';
    fprintf(table_fp, "%s\t%s\t%s\t%s\n", name, fault, detected ? "yes" : "no", m);
}

static void mr_case(const mr_case_t *c, const char *mode, const char *suffix) {
    char name[160];
    snprintf(name, sizeof name, "%s%s", c->name, suffix);
    int runs = c->repeat ? opt_repeat : 1;
    int caught = 0;
    double secs = 0;
    mr_verdict_t v, first_bad;
    int have_bad = 0;
    char faults_seen[2][128] = {"", ""};
    int fault_count[2] = {0, 0};
    for (int i = 0; i < runs; i++) {
        mr_result_t r;
        memset(&r, 0, sizeof r);
        if (mr_run(c, mode, c->repeat ? (unsigned)i + 1 : 0, &r) != 0) {
            printf("FAIL %s: could not run (%s)\n", name, strerror(errno));
            n_fail++;
            mr_table_row(name, c->expect, 0, "runner error");
            return;
        }
        secs += r.secs;
        mr_check(c, mode, &r, &v);
        if (v.detected) {
            caught++;
            for (int k = 0; k < 2; k++) {
                if (faults_seen[k][0] == 0) snprintf(faults_seen[k], sizeof faults_seen[k], "%s", v.fault);
                if (strcmp(faults_seen[k], v.fault) == 0) {
                    fault_count[k]++;
                    break;
                }
            }
        } else if (!have_bad) {
            first_bad = v;
            have_bad = 1;
        }
    }
    if (c->gap) {
        /* a documented limit: "not detected" (or "unmapped") is the expected outcome; detection closes it */
        if (caught == runs) {
            printf("ok %s %s (documented gap closed: %s)\n", name, v.fault, c->gap);
            n_pass++;
            mr_table_row(name, c->expect, 1, v.line);
        } else if (have_bad && (first_bad.missed || first_bad.unmapped) && caught == 0) {
            if (first_bad.unmapped) {
                printf("ok %s memory unmapped or protected (the write would fault; gap otherwise: %s)\n", name, c->gap);
                n_pass++;
                mr_table_row(name, "memory unmapped or protected", 1, first_bad.line);
            } else {
                printf("gap %s: not detected (%s)\n", name, c->gap);
                n_gap++;
                char msg[700];
                snprintf(msg, sizeof msg, "known gap: %s", c->gap);
                mr_table_row(name, c->expect, 0, msg);
            }
        } else {
            printf("FAIL %s: expected the documented gap (runs to completion) or SIGABRT with '%s', got %s\n", name,
                   c->expect, first_bad.why[0] ? first_bad.why : first_bad.fault);
            n_fail++;
            mr_table_row(name, c->expect, 0, first_bad.why[0] ? first_bad.why : first_bad.fault);
        }
        return;
    }
    if (caught == runs) {
        if (runs > 1) {
            char how[300];
            if (fault_count[1])
                snprintf(how, sizeof how, "%d x '%s', %d x '%s'", fault_count[0], faults_seen[0], fault_count[1],
                         faults_seen[1]);
            else
                snprintf(how, sizeof how, "all '%s'", faults_seen[0]);
            printf("ok %s %s [%d/%d runs caught: %s; %.1f s]\n", name, faults_seen[0], caught, runs, how, secs);
            char msg[800];
            snprintf(msg, sizeof msg, "%d/%d runs caught (%s); last: %s", caught, runs, how, v.line);
            mr_table_row(name, c->expect, 1, msg);
        } else {
            printf("ok %s %s\n", name, v.fault);
            mr_table_row(name, c->expect, 1, v.line);
        }
        n_pass++;
        return;
    }
    char expect[300], got[1100];
    if (first_bad.missed) {
        mr_want_abort(c, &first_bad);
        snprintf(got, sizeof got, "%s", first_bad.line[0] ? first_bad.line : "not detected (ran to completion)");
    } else if (first_bad.unmapped) {
        mr_want_abort(c, &first_bad);
        snprintf(got, sizeof got, "%s", first_bad.line);
    } else {
        snprintf(got, sizeof got, "%s", first_bad.why);
    }
    snprintf(expect, sizeof expect, "%s", first_bad.want);
    if (runs > 1)
        printf("FAIL %s: expected %s in every run, got %d/%d caught; first miss: %s\n", name, expect, caught, runs, got);
    else
        printf("FAIL %s: expected %s, got %s\n", name, expect, got);
    n_fail++;
    char msg[1600];
    snprintf(msg, sizeof msg, "%sexpected %s, got %s", runs > 1 ? "some runs not caught; " : "", expect, got);
    mr_table_row(name, c->expect, 0, msg);
}

/* ---- main ------------------------------------------------------------------------------------- */
static void mr_usage(void) {
    fprintf(stderr, "usage: misuse_runner [--lib LIB | --prefixed] [--bin DIR] [--variant V] [--mode M|all]\n"
                    "                     [--repeat N] [--table FILE] [--only SUBSTR] [--list]\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define ARG() (i + 1 < argc ? argv[++i] : (mr_usage(), ""))
        if (!strcmp(a, "--lib")) opt_lib = ARG();
        else if (!strcmp(a, "--prefixed")) opt_prefixed = 1;
        else if (!strcmp(a, "--bin")) opt_bin = ARG();
        else if (!strcmp(a, "--variant")) opt_variant = ARG();
        else if (!strcmp(a, "--mode")) opt_mode = ARG();
        else if (!strcmp(a, "--repeat")) opt_repeat = atoi(ARG());
        else if (!strcmp(a, "--table")) opt_table = ARG();
        else if (!strcmp(a, "--only")) opt_only = ARG();
        else if (!strcmp(a, "--list")) opt_list = 1;
        else mr_usage();
#undef ARG
    }
    mr_build_cases();
    if (opt_list) {
        for (size_t i = 0; i < n_cases; i++)
            printf("%-34s %-18s %-16s %s%s\n", cases[i].name, cases[i].prog, cases[i].args, cases[i].expect,
                   cases[i].gap ? "  [gap]" : cases[i].repeat ? "  [repeated]" : "");
        return 0;
    }
    if (!opt_prefixed && !opt_lib) {
        fprintf(stderr, "misuse_runner: give --lib LIB (preload flavor) or --prefixed\n");
        return 2;
    }
    if (opt_lib && access(opt_lib, R_OK) != 0) {
        fprintf(stderr, "misuse_runner: %s: %s\n", opt_lib, strerror(errno));
        return 2;
    }
    if (opt_repeat < 1) opt_repeat = 1;
    static char selfdir[PATH_MAX];
    if (!opt_bin) {
        ssize_t n = readlink("/proc/self/exe", selfdir, sizeof selfdir - 1);
        if (n <= 0) return 2;
        selfdir[n] = 0;
        char *slash = strrchr(selfdir, '/');
        if (slash) *slash = 0;
        opt_bin = selfdir;
    }
    if (!opt_variant) opt_variant = (opt_lib && strstr(strrchr(opt_lib, '/') ? strrchr(opt_lib, '/') : opt_lib, "debug")) ? "debug" : "hardened";
    const char *env_mode = getenv("HAKMEM_MODE");
    if (!opt_mode && env_mode && *env_mode) opt_mode = env_mode;

    if (regcomp(&re_line,
                "^hakmem: fatal: ([^:]+): pointer 0x([0-9a-f]+), class (C([0-9]+) \\(([0-9]+) B\\)|large|none), "
                "thread ([0-9]+), mode ([a-z]+), variant ([a-z]+)$",
                REG_EXTENDED) != 0) {
        fprintf(stderr, "misuse_runner: regcomp failed\n");
        return 2;
    }
    if (opt_table && (table_fp = fopen(opt_table, "w")) == NULL) {
        fprintf(stderr, "misuse_runner: %s: %s\n", opt_table, strerror(errno));
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int flavor = opt_prefixed ? FL_PREFIXED : FL_PRELOAD;
    int all = opt_mode && !strcmp(opt_mode, "all");
    size_t nmodes = all ? sizeof mr_modes / sizeof mr_modes[0] : 1;
    double t0 = mr_now();
    for (size_t mi = 0; mi < nmodes; mi++) {
        const char *mode = all ? mr_modes[mi] : opt_mode;
        char suffix[32] = "";
        if (all) snprintf(suffix, sizeof suffix, "@%s", mode);
        for (size_t i = 0; i < n_cases; i++) {
            if (!(cases[i].flavors & flavor)) continue;
            if (opt_only && !strstr(cases[i].name, opt_only)) continue;
            mr_case(&cases[i], mode, suffix);
        }
    }
    if (table_fp) fclose(table_fp);
    printf("%d known gaps (documented limits, not detected); %s flavor, variant %s, %.1f s\n", n_gap,
           opt_prefixed ? "prefixed" : "preload", opt_variant, mr_now() - t0);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
