/* stress/common.c — out-of-line helpers for the stress and bench programs (see common.h). */
#include "common.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifdef HAK_STRESS_PREFIXED
#include "hakmem.h"
#endif

static const char *hs_prog_name = "stress";

/* --------------------------------------------------------------------------------------------
 * Failures */

void hs_fatal(const char *fmt, ...)
{
    char line[512];
    int k = snprintf(line, sizeof line, "%s: FAIL ", hs_prog_name);
    va_list ap;
    va_start(ap, fmt);
    if (k > 0 && (size_t)k < sizeof line)
        vsnprintf(line + k, sizeof line - (size_t)k, fmt, ap);
    va_end(ap);
    /* One write() so lines from several failing threads do not interleave mid-line. */
    size_t len = strlen(line);
    if (len < sizeof line - 1)
        line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
    _exit(1);
}

void hs_stamp_fail(const void *p, size_t n, uint64_t tag, const char *what, uint64_t id, size_t offset,
                   uint64_t expected, uint64_t actual)
{
    hs_fatal("corrupt block %s=%" PRIu64 " ptr=%p size=%zu tag=0x%016" PRIx64
             " at offset %zu: expected 0x%" PRIx64 " actual 0x%" PRIx64,
             what, id, p, n, tag, offset, expected, actual);
}

/* --------------------------------------------------------------------------------------------
 * Time, memory, threads */

double hs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* /proc/self/statm: size resident shared text lib data dt, in pages ("shared": resident pages backed
 * by a file, such as the program's and the libraries' code). Read with raw syscalls: fopen would
 * allocate from the heap under test. anon: resident minus shared. */
static long hs_statm_kb(int anon)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t k = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (k <= 0)
        return -1;
    buf[k] = '\0';
    char *s = buf;
    strtoul(s, &s, 10); /* size */
    unsigned long resident = strtoul(s, &s, 10), shared = strtoul(s, NULL, 10);
    unsigned long pages = anon ? (resident > shared ? resident - shared : 0) : resident;
    return (long)(pages * (unsigned long)sysconf(_SC_PAGESIZE) / 1024ul);
}

long hs_rss_kb(void) { return hs_statm_kb(0); }
long hs_rss_anon_kb(void) { return hs_statm_kb(1); }

long hs_peak_rss_kb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss; /* kilobytes on Linux */
}

void hs_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    /* EAGAIN is transient when thousands of short-lived threads are still being reaped. */
    for (int attempt = 0;; attempt++) {
        int rc = pthread_create(t, NULL, fn, arg);
        if (rc == 0)
            return;
        if (rc != EAGAIN || attempt >= 1000)
            hs_fatal("pthread_create failed: %s (after %d retries)", strerror(rc), attempt);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

void hs_thread_join(pthread_t t)
{
    int rc = pthread_join(t, NULL);
    if (rc != 0)
        hs_fatal("pthread_join failed: %s", strerror(rc));
}

/* --------------------------------------------------------------------------------------------
 * Which allocator is under test */

static char hs_alloc_desc[160];
static int hs_alloc_is_debug;

static const char *hs_detect_allocator(void)
{
#ifdef HAK_STRESS_PREFIXED
    snprintf(hs_alloc_desc, sizeof hs_alloc_desc, "hakmem-prefixed %s mode=%s", hak_variant(),
             hak_mode());
    hs_alloc_is_debug = strcmp(hak_variant(), "debug") == 0;
#else
    /* LD_PRELOAD=libhakmem.so makes hak_variant visible in the global scope. */
    const char *(*variant)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "hak_variant");
    const char *(*mode)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "hak_mode");
    if (variant != NULL) {
        snprintf(hs_alloc_desc, sizeof hs_alloc_desc, "hakmem %s mode=%s", variant(),
                 mode != NULL ? mode() : "?");
        hs_alloc_is_debug = strcmp(variant(), "debug") == 0;
    } else {
        /* A preload that failed to load only warns (ld.so), and the test would silently run on
         * glibc: the ctest registrations set HAK_STRESS_EXPECT_HAKMEM=1 to make that a failure. */
        const char *expect = getenv("HAK_STRESS_EXPECT_HAKMEM");
        if (expect != NULL && expect[0] == '1')
            hs_fatal("HAK_STRESS_EXPECT_HAKMEM=1 but hakmem is not loaded (LD_PRELOAD=%s)",
                     getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "(unset)");
        const char *pre = getenv("LD_PRELOAD");
        snprintf(hs_alloc_desc, sizeof hs_alloc_desc, "%s", pre != NULL && pre[0] ? pre : "system");
    }
#endif
    return hs_alloc_desc;
}

/* --------------------------------------------------------------------------------------------
 * Command line */

static int hs_parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    /* Decimal, or hex with 0x (base 0 would read a leading 0 as octal). */
    int hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    unsigned long long v = strtoull(s, &end, hex ? 16 : 10);
    if (errno != 0 || end == s || s[0] == '-')
        return -1;
    uint64_t mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1ull << 10; end++; break;
    case 'm': case 'M': mul = 1ull << 20; end++; break;
    case 'g': case 'G': mul = 1ull << 30; end++; break;
    default: break;
    }
    if (*end != '\0' || (mul > 1 && v > UINT64_MAX / mul))
        return -1;
    *out = (uint64_t)v * mul;
    return 0;
}

static const hs_opt_t hs_common_opts[] = {
    {"short", HS_OPT_FLAG, NULL, "CI mode: small sizes, finishes in a few seconds"},
    {"bench", HS_OPT_FLAG, NULL, "print one RESULT line (stamps checked at the ends only)"},
    {"seed", HS_OPT_U64, NULL, "PRNG seed (default 42)"},
    {"threads", HS_OPT_U64, NULL, "worker threads"},
    {"verify", HS_OPT_STRING, NULL, "full | ends: how much of each block is stamped and checked"},
    {NULL, HS_OPT_FLAG, NULL, NULL}};

static void hs_usage(const hs_common_t *c, const hs_opt_t *opts, int status)
{
    FILE *f = status == 0 ? stdout : stderr;
    fprintf(f, "usage: %s [options]\n", c->prog);
    for (int pass = 0; pass < 2; pass++) {
        const hs_opt_t *o = pass == 0 ? hs_common_opts : opts;
        for (; o != NULL && o->name != NULL; o++) {
            const char *arg = o->kind == HS_OPT_FLAG     ? ""
                              : o->kind == HS_OPT_STRING ? " S"
                              : o->kind == HS_OPT_DOUBLE ? " X"
                                                         : " N";
            fprintf(f, "  --%s%-*s %s\n", o->name, (int)(18 - strlen(o->name)), arg, o->help);
        }
    }
    exit(status);
}

void hs_init(hs_common_t *c, const char *prog, int argc, char **argv)
{
    memset(c, 0, sizeof *c);
    c->prog = prog;
    hs_prog_name = prog;
    c->seed = 42;
    c->threads = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--short") == 0)
            c->short_mode = 1;
        else if (strcmp(argv[i], "--bench") == 0)
            c->bench = 1;
    }
    c->stamp = c->bench ? HS_STAMP_ENDS : HS_STAMP_FULL;
    c->allocator = hs_detect_allocator();
    const char *slow = getenv("HAK_STRESS_SLOW");
    c->slow = HS_SLOW_BUILD || hs_alloc_is_debug || (slow != NULL && slow[0] == '1');
}

void hs_parse(hs_common_t *c, int argc, char **argv, const hs_opt_t *opts)
{
    const char *verify_arg = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            hs_usage(c, opts, 0);
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "%s: unexpected argument '%s'\n", c->prog, a);
            hs_usage(c, opts, 2);
        }
        const char *name = a + 2;
        const char *val = NULL;
        size_t nlen = strlen(name);
        const char *eq = strchr(name, '=');
        if (eq != NULL) {
            nlen = (size_t)(eq - name);
            val = eq + 1;
        }
        /* Common flags first. */
        if (nlen == 5 && strncmp(name, "short", 5) == 0) continue;
        if (nlen == 5 && strncmp(name, "bench", 5) == 0) continue;
        const hs_opt_t *o = NULL;
        void *dst = NULL;
        if (nlen == 4 && strncmp(name, "seed", 4) == 0) {
            o = &hs_common_opts[2];
            dst = &c->seed;
        } else if (nlen == 7 && strncmp(name, "threads", 7) == 0) {
            o = &hs_common_opts[3];
            dst = &c->threads;
        } else if (nlen == 6 && strncmp(name, "verify", 6) == 0) {
            o = &hs_common_opts[4];
            dst = &verify_arg;
        } else {
            for (const hs_opt_t *p = opts; p != NULL && p->name != NULL; p++) {
                if (strlen(p->name) == nlen && strncmp(p->name, name, nlen) == 0) {
                    o = p;
                    dst = p->dst;
                    break;
                }
            }
        }
        if (o == NULL) {
            fprintf(stderr, "%s: unknown option '%s'\n", c->prog, a);
            hs_usage(c, opts, 2);
        }
        if (o->kind == HS_OPT_FLAG) {
            if (val != NULL) {
                fprintf(stderr, "%s: option --%s takes no value\n", c->prog, o->name);
                exit(2);
            }
            *(int *)dst = 1;
            continue;
        }
        if (val == NULL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: option --%s needs a value\n", c->prog, o->name);
                exit(2);
            }
            val = argv[++i];
        }
        int bad = 0;
        switch (o->kind) {
        case HS_OPT_U64:
            bad = hs_parse_u64(val, (uint64_t *)dst);
            break;
        case HS_OPT_DOUBLE: {
            char *end = NULL;
            double d = strtod(val, &end);
            bad = end == val || *end != '\0' || !(d >= 0);
            if (!bad)
                *(double *)dst = d;
            break;
        }
        case HS_OPT_STRING:
            *(const char **)dst = val;
            break;
        case HS_OPT_FLAG:
            break;
        }
        if (bad) {
            fprintf(stderr, "%s: bad value '%s' for --%s\n", c->prog, val, o->name);
            exit(2);
        }
        if (dst == &verify_arg) {
            if (strcmp(val, "full") == 0)
                c->stamp = HS_STAMP_FULL;
            else if (strcmp(val, "ends") == 0)
                c->stamp = HS_STAMP_ENDS;
            else {
                fprintf(stderr, "%s: --verify takes full or ends, not '%s'\n", c->prog, val);
                exit(2);
            }
        }
    }
    if (c->threads == 0 || c->threads > 4096) {
        fprintf(stderr, "%s: --threads must be in 1..4096\n", c->prog);
        exit(2);
    }
    c->t_start = hs_now();
}

void hs_report(const hs_common_t *c, uint64_t ops, double secs, const char *extra)
{
    double mops = secs > 0 ? (double)ops / secs / 1e6 : 0.0;
    long peak = hs_peak_rss_kb();
    if (c->bench) {
        printf("RESULT name=%s ops=%" PRIu64 " secs=%.4f mops=%.3f peak_rss_kb=%ld threads=%" PRIu64
               "%s\n",
               c->prog, ops, secs, mops, peak, c->threads, extra != NULL ? extra : "");
    } else {
        printf("%s: %" PRIu64 " ops in %.3f s (%.2f Mops/s), peak RSS %ld KiB, threads %" PRIu64
               ", seed %" PRIu64 ", allocator %s%s%s\nPASS\n",
               c->prog, ops, secs, mops, peak, c->threads, c->seed, c->allocator,
               c->short_mode ? ", short" : "", extra != NULL ? extra : "");
    }
    fflush(stdout);
}
