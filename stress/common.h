/* stress/common.h — helpers shared by the stress programs (stress/) and the benchmarks (bench/):
 * a seeded PRNG, block stamping and verification, timing, RSS, thread start, argument parsing and
 * the one-line result report.
 *
 * Nothing here allocates from the heap under test: the helpers must not disturb the workload they
 * measure, and in prefixed builds a helper's own malloc would land in the sanitizer's heap anyway.
 *
 * Determinism: every random choice a program makes comes from an hs_rng_t seeded from --seed and
 * the program's own indices (thread, lineage, slot), never from time or addresses, so one seed
 * gives one operation sequence per thread.
 */
#ifndef HAK_STRESS_COMMON_H
#define HAK_STRESS_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* --------------------------------------------------------------------------------------------
 * Build detection. HS_SLOW_BUILD is 1 under a sanitizer or in the prefixed (sanitizer) build;
 * hs_init() adds run-time reasons (debug variant preloaded) into hs_common_t.slow, which short
 * modes use to scale their loops down so CI stays within a few seconds per program. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(undefined_behavior_sanitizer)
#define HS_SANITIZED 1
#endif
#endif
#ifndef HS_SANITIZED
#define HS_SANITIZED 0
#endif

#if defined(__SANITIZE_THREAD__)
#define HS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HS_TSAN 1
#endif
#endif
#ifndef HS_TSAN
#define HS_TSAN 0
#endif

#if HS_SANITIZED || defined(HAK_STRESS_PREFIXED)
#define HS_SLOW_BUILD 1
#else
#define HS_SLOW_BUILD 0
#endif

#define HS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define HS_NOINLINE __attribute__((noinline))
#define HS_NORETURN __attribute__((noreturn))
#define HS_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Keeps the compiler from eliding a malloc/free pair or a store whose value is never read. */
static inline void hs_escape(void *p) { __asm__ volatile("" : : "g"(p) : "memory"); }

/* --------------------------------------------------------------------------------------------
 * PRNG: splitmix64. One 64-bit state, passes BigCrush, and any seed (including 0) is fine. */
typedef struct hs_rng {
    uint64_t s;
} hs_rng_t;

static inline uint64_t hs_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A stream for (seed, a, b): distinct indices give unrelated sequences. */
static inline hs_rng_t hs_rng_make(uint64_t seed, uint64_t a, uint64_t b)
{
    hs_rng_t r = {hs_mix64(seed ^ hs_mix64(a * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) ^
                           hs_mix64(b + 0xD1B54A32D192ED03ull))};
    return r;
}

static inline uint64_t hs_rng_next(hs_rng_t *r)
{
    r->s += 0x9E3779B97F4A7C15ull;
    return hs_mix64(r->s);
}

/* Uniform in [0, n) by multiply-high (bias < n / 2^64, irrelevant here). n must be > 0. */
static inline uint64_t hs_rng_below(hs_rng_t *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)hs_rng_next(r) * n) >> 64);
}

/* Uniform in [lo, hi], inclusive. */
static inline uint64_t hs_rng_range(hs_rng_t *r, uint64_t lo, uint64_t hi)
{
    return lo + hs_rng_below(r, hi - lo + 1);
}

/* The tag stamped into one block: a function of the seed and the block's identity, so a verifier
 * can recompute it without trusting the block's contents. */
static inline uint64_t hs_tag(uint64_t seed, uint64_t a, uint64_t b)
{
    return hs_mix64(seed ^ hs_mix64(a ^ 0xA0761D6478BD642Full) ^ hs_mix64(b + 0xE7037ED1A0B428DBull));
}

/* --------------------------------------------------------------------------------------------
 * Block stamps.
 *
 * Layout of a stamped block of n bytes:
 *   n >= 16:  [tag : 8 B][fill byte F repeated n-16 times][~tag : 8 B]
 *   n <  16:  byte i = byte (i & 7) of tag, xor i          (always written and checked whole)
 * F is derived from the tag. HS_STAMP_ENDS writes and checks only the two 8-byte stamps (bench mode:
 * measures the allocator, not memset); HS_STAMP_FULL also fills and checks the middle, which catches
 * a block overlapping another or a stale free-list link written into it.
 * What must hold: every byte a stamp writes is inside [p, p+n), so stamping never hides an overflow
 * that the allocator's own checks are meant to catch. */
typedef enum hs_stamp_level {
    HS_STAMP_ENDS = 0,
    HS_STAMP_FULL = 1
} hs_stamp_level_t;

static inline uint8_t hs_fill_byte(uint64_t tag) { return (uint8_t)((tag >> 56) ^ 0xA5u); }

static inline void hs_stamp(void *p, size_t n, uint64_t tag, hs_stamp_level_t level)
{
    unsigned char *b = (unsigned char *)p;
    if (n >= 16) {
        uint64_t inv = ~tag;
        memcpy(b, &tag, 8);
        memcpy(b + n - 8, &inv, 8);
        if (level == HS_STAMP_FULL && n > 16)
            memset(b + 8, hs_fill_byte(tag), n - 16);
    } else {
        for (size_t i = 0; i < n; i++)
            b[i] = (unsigned char)((tag >> ((i & 7) * 8)) ^ i);
    }
}

/* Reports one corrupt block and exits the process with status 1. Never returns. */
HS_NORETURN void hs_stamp_fail(const void *p, size_t n, uint64_t tag, const char *what, uint64_t id,
                               size_t offset, uint64_t expected, uint64_t actual);

/* Checks the stamps hs_stamp() wrote; on mismatch prints one line naming the program, the block
 * (what=id), its size, the offset and expected/actual values, then exits 1. */
static inline void hs_verify(const void *p, size_t n, uint64_t tag, hs_stamp_level_t level,
                             const char *what, uint64_t id)
{
    const unsigned char *b = (const unsigned char *)p;
    if (n >= 16) {
        uint64_t head, tail;
        memcpy(&head, b, 8);
        memcpy(&tail, b + n - 8, 8);
        if (HS_UNLIKELY(head != tag))
            hs_stamp_fail(p, n, tag, what, id, 0, tag, head);
        if (HS_UNLIKELY(tail != ~tag))
            hs_stamp_fail(p, n, tag, what, id, n - 8, ~tag, tail);
        if (level == HS_STAMP_FULL && n > 16) {
            const unsigned char f = hs_fill_byte(tag);
            const uint64_t fw = 0x0101010101010101ull * f;
            size_t i = 8, end = n - 8;
            /* Word-wide scan; the byte loop below only runs from the first bad word on. */
            for (; i + 8 <= end; i += 8) {
                uint64_t w;
                memcpy(&w, b + i, 8);
                if (HS_UNLIKELY(w != fw))
                    break;
            }
            for (; i < end; i++)
                if (HS_UNLIKELY(b[i] != f))
                    hs_stamp_fail(p, n, tag, what, id, i, f, b[i]);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            unsigned char e = (unsigned char)((tag >> ((i & 7) * 8)) ^ i);
            if (HS_UNLIKELY(b[i] != e))
                hs_stamp_fail(p, n, tag, what, id, i, e, b[i]);
        }
    }
}

/* --------------------------------------------------------------------------------------------
 * Failure reporting. All failures are one line on stderr starting with the program name, then
 * _exit(1): other threads may still be inside the allocator, and running atexit handlers (or the
 * allocator's own exit hooks) over a heap that just proved corrupt would only bury the first error. */
HS_NORETURN HS_PRINTF(1, 2) void hs_fatal(const char *fmt, ...);

/* Allocation that must succeed (the stress sizes are far below any limit). */
#define HS_CHECK_ALLOC(p, n)                                                                  \
    do {                                                                                      \
        if (HS_UNLIKELY((p) == NULL))                                                         \
            hs_fatal("allocation of %zu bytes returned NULL (%s:%d)", (size_t)(n), __FILE__, \
                     __LINE__);                                                               \
    } while (0)

/* --------------------------------------------------------------------------------------------
 * Time, memory, threads. */
double hs_now(void);                 /* CLOCK_MONOTONIC seconds */
long hs_rss_kb(void);                /* current resident set (/proc/self/statm), -1 if unreadable */
long hs_rss_anon_kb(void);           /* its anonymous part (heap, stacks, bss; not code or files) */
long hs_peak_rss_kb(void);           /* getrusage ru_maxrss */
void hs_thread_start(pthread_t *t, void *(*fn)(void *), void *arg); /* retries EAGAIN; fatal else */
void hs_thread_join(pthread_t t);
static inline void hs_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* --------------------------------------------------------------------------------------------
 * Command line.
 *
 * Every program takes the common flags --short, --bench, --seed N, --threads N, --verify full|ends,
 * --help, plus its own (a NULL-terminated hs_opt_t table). Usage pattern, so that --short picks
 * smaller defaults while explicit flags still win:
 *     hs_common_t c;  hs_init(&c, "larson", argc, argv);   // sees --short/--bench first
 *     if (c.short_mode) { slots = 1000; ... }                // program's short defaults
 *     hs_parse(&c, argc, argv, opts);                         // explicit flags override
 * Numbers accept K/M/G suffixes (powers of 1000 for counts are confusing: K=1024 everywhere). */
typedef enum hs_opt_kind {
    HS_OPT_U64,
    HS_OPT_DOUBLE,
    HS_OPT_STRING,
    HS_OPT_FLAG
} hs_opt_kind_t;

typedef struct hs_opt {
    const char *name; /* without the leading "--" */
    hs_opt_kind_t kind;
    void *dst; /* uint64_t*, double*, const char**, int* */
    const char *help;
} hs_opt_t;

typedef struct hs_common {
    const char *prog;
    int short_mode;
    int bench;
    uint64_t seed;
    uint64_t threads;
    hs_stamp_level_t stamp;
    const char *allocator; /* "system", "hakmem <variant> mode=<m>", "hakmem-prefixed ..." */
    int slow; /* sanitizer/prefixed build, hakmem's debug variant, or HAK_STRESS_SLOW=1: short
               * modes scale down further */
    double t_start;
} hs_common_t;

void hs_init(hs_common_t *c, const char *prog, int argc, char **argv);
void hs_parse(hs_common_t *c, int argc, char **argv, const hs_opt_t *opts);

/* Ends the run: bench mode prints one machine-readable line
 *   RESULT name=<prog> ops=<n> secs=<s> mops=<ops/s/1e6> peak_rss_kb=<k> threads=<t><extra>
 * otherwise a human line with the same numbers followed by "PASS". extra (may be NULL) is appended
 * verbatim and must start with a space, e.g. " ns_per_pair=9.1". */
void hs_report(const hs_common_t *c, uint64_t ops, double secs, const char *extra);

#endif /* HAK_STRESS_COMMON_H */
