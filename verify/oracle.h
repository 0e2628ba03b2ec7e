/* The glibc oracle: runs one program on hakmem and on glibc side by side, op by op, in one process
 * (hakmem through hak_*, glibc as the process malloc), each with its own shadow heap, and compares what
 * a caller can observe after every op:
 *   - success or failure (NULL, realloc(p, 0) freeing, posix_memalign's return code)   -> oracle.null
 *   - errno (or the return code) when both fail: ENOMEM vs EINVAL                         -> oracle.errno
 * while each shadow checks its own backend (alignment, usable >= requested, overlap, contents,
 * realloc preserving data). Usable sizes and addresses are never compared: they are the allocator's
 * business.
 *
 * The reference is what glibc does in this process, not what a manual says (glibc 2.36: realloc(p, 0)
 * frees and returns NULL; aligned_alloc accepts any size and rounds a non-power-of-two alignment up,
 * as memalign does; posix_memalign returns EINVAL for an alignment that is not a power-of-two multiple
 * of sizeof(void *)). One divergence is tolerated unless strict: aligned_alloc may fail with EINVAL
 * where glibc rounds a bad alignment up (C11 allows it and glibc >= 2.38 does it); the oracle then
 * drops glibc's block so both sides go on from the same state.
 */
#ifndef HK_VERIFY_ORACLE_H
#define HK_VERIFY_ORACLE_H

#include "interp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hk_oracle_opts {
    hk_interp_opts_t interp;   /* checks and limits for both sides (results ignored: see below) */
    int strict;                /* 1: no tolerated divergences */
    const hk_backend_t *test;  /* the allocator under test; NULL = hakmem */
    const hk_backend_t *ref;   /* the reference; NULL = glibc (the process malloc) */
    hk_op_result_t *test_results, *ref_results; /* optional, prog->n entries each */
} hk_oracle_opts_t;

/* Runs prog on both backends (serial, or under the turnstile when threaded: each logical thread runs
 * its ops on both allocators). Returns 0, or 1 with f filled. opts may be NULL. */
int hk_oracle_run(const hk_prog_t *prog, const hk_oracle_opts_t *opts, int threaded, hk_verify_failure_t *f);

/* Compares two results of op `op`: 0 if a caller could not tell them apart, else 1 with f filled
 * (check oracle.null or oracle.errno). *tolerated is set when the difference is a tolerated one. */
int hk_oracle_compare(const hk_op_t *op, const hk_op_result_t *test, const hk_op_result_t *ref, int strict,
                      int *tolerated, hk_verify_failure_t *f);
/* The same, naming the two sides in the message (hk_oracle_compare says "hakmem" and "glibc"). */
int hk_oracle_compare_named(const hk_op_t *op, const hk_op_result_t *test, const hk_op_result_t *ref,
                            int strict, const char *test_name, const char *ref_name, int *tolerated,
                            hk_verify_failure_t *f);

#ifdef __cplusplus
}
#endif
#endif /* HK_VERIFY_ORACLE_H */
