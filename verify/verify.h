/* hakmem_verify: the entry points fuzz harnesses, stress programs and tools call.
 *
 *   hk_verify_run_bytes   fuzz bytes -> program -> hakmem and glibc side by side, shadow heaps,
 *                         TLS-SLL and heap checkers -> 0 or the first failure
 *   hk_verify_run_prog    the same for a program already decoded (replays, regressions)
 *   hk_verify_failure_print (report.h) prints a failure as one line
 *
 * The library links hakmem_prefixed: hakmem is reached only through hak_*, glibc stays the process
 * malloc (the oracle, and the library's own memory).
 *
 * A fuzz harness is three lines:
 *     hk_verify_failure_t fail;
 *     if (hk_verify_run_bytes(data, size, NULL, &fail)) { hk_verify_failure_print(stderr, &fail); abort(); }
 *     return 0;
 */
#ifndef HK_VERIFY_VERIFY_H
#define HK_VERIFY_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "interp.h"
#include "op.h"
#include "oracle.h"
#include "report.h"
#include "shadow.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    /* the checks, as in interp.h */
    HK_VERIFY_SHADOW = HK_CHECK_SHADOW,
    HK_VERIFY_CONTENT = HK_CHECK_CONTENT,
    HK_VERIFY_CHECK_THREAD = HK_CHECK_THREAD,
    HK_VERIFY_CHECK_HEAP = HK_CHECK_HEAP,
    HK_VERIFY_ALLOW_LARGE = HK_INTERP_ALLOW_LARGE,
    /* how to run */
    HK_VERIFY_NO_ORACLE = 1u << 16, /* run hakmem alone (no glibc comparison) */
    HK_VERIFY_THREADS = 1u << 17,   /* real threads under the turnstile (default: logical threads) */
    HK_VERIFY_STRICT = 1u << 18,    /* no tolerated divergences from glibc */
    HK_VERIFY_GLIBC_ONLY = 1u << 19,/* run glibc alone (calibrates the framework itself) */
};
#define HK_VERIFY_DEFAULT_FLAGS (HK_VERIFY_SHADOW | HK_VERIFY_CONTENT | HK_VERIFY_CHECK_THREAD | HK_VERIFY_CHECK_HEAP)

typedef struct hk_verify_opts {
    unsigned flags;        /* HK_VERIFY_*; 0 is not "defaults": use hk_verify_opts_default */
    uint64_t max_size;     /* 0 = HK_OP_MAX_SIZE_DEFAULT (4 MiB) */
    uint32_t thread_check_period; /* TLS-SLL check after every Nth op; 0/1 = every op */
} hk_verify_opts_t;

void hk_verify_opts_default(hk_verify_opts_t *o);
/* Applies words from a string to o, so a harness can take its configuration from the environment:
 *   all noshadow nocontent nosll noheap nochecks large nooracle threads strict glibc sll=N max=BYTES
 * (comma or blank separated). Unknown words are skipped and make the return value -1. */
int hk_verify_opts_parse(hk_verify_opts_t *o, const char *words);

/* Decodes data as fuzz bytes and runs it. opts NULL = defaults. Returns 0, or 1 with *out filled
 * (out may be NULL). Never fails on the input itself: every byte string is a program. */
int hk_verify_run_bytes(const uint8_t *data, size_t n, const hk_verify_opts_t *opts, hk_verify_failure_t *out);
/* Runs a decoded program the same way. */
int hk_verify_run_prog(const hk_prog_t *prog, const hk_verify_opts_t *opts, hk_verify_failure_t *out);

#ifdef __cplusplus
}
#endif
#endif /* HK_VERIFY_VERIFY_H */
