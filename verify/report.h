/* A verification failure: which check fired, where in the program, which blocks, and why.
 *
 * Check names (stable: scripts and the campaign runner match on them):
 *   shadow.overlap  a new block overlaps a live one (by usable size)
 *   shadow.content  a live block's bytes changed (or a calloc block was not zeroed, or realloc lost data)
 *   shadow.align    a block is not aligned as requested (or to the default alignment for its size)
 *   shadow.usable   usable size below the requested size, or changed while the block was live
 *   oracle.null     hakmem and glibc disagree on success (one returned NULL / freed, the other did not)
 *   oracle.errno    both failed, with different errno (or posix_memalign return codes)
 *   sll             hak_debug_check_thread() reported a broken thread cache free list
 *   heap            hak_debug_check_heap() reported an inconsistent region or slab
 *   interp          the interpreter itself could not run (out of memory, thread creation failed)
 */
#ifndef HK_VERIFY_REPORT_H
#define HK_VERIFY_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "op.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HK_NO_ID UINT32_MAX
#define HK_AT_END SIZE_MAX /* op_index of a failure found by the end-of-program checks */

typedef struct hk_verify_failure {
    const char *check;   /* one of the names above (static string); NULL = no failure */
    const char *backend; /* "hakmem", "glibc", the name of a test backend, or "oracle" */
    size_t op_index;     /* index of the op being run, or HK_AT_END */
    hk_op_t op;          /* a copy of that op (zeroed at end) */
    unsigned thread;     /* logical thread that ran it */
    uint32_t id;         /* the block involved, or HK_NO_ID */
    uint32_t other_id;   /* a second block (overlap), or HK_NO_ID */
    void *ptr;           /* the block's address (the hakmem block for oracle checks) */
    void *other;         /* the other block's address (the glibc block for oracle checks) */
    char detail[48];     /* the checker's own name for sll/heap failures, e.g. "sll.cycle" */
    char msg[256];       /* one human-readable sentence */
} hk_verify_failure_t;

void hk_verify_failure_clear(hk_verify_failure_t *f);
/* Fills check, msg (printf-style) and resets the rest; the caller sets ids/pointers. Returns 1 so a
 * checker can `return hk_verify_fail(...)`. f may be NULL (then only the return value matters). */
int hk_verify_fail(hk_verify_failure_t *f, const char *check, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* One line: "FAIL <check> op <i> [thread t] '<op text>' id <id> ptr <p> [other ...]: <msg>\n" */
void hk_verify_failure_print(FILE *out, const hk_verify_failure_t *f);

#ifdef __cplusplus
}
#endif
#endif /* HK_VERIFY_REPORT_H */
