/* Failure records: filling and printing. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "report.h"

#include <stdarg.h>
#include <string.h>

void hk_verify_failure_clear(hk_verify_failure_t *f)
{
    memset(f, 0, sizeof *f);
    f->id = HK_NO_ID;
    f->other_id = HK_NO_ID;
}

int hk_verify_fail(hk_verify_failure_t *f, const char *check, const char *fmt, ...)
{
    if (!f)
        return 1;
    hk_verify_failure_clear(f);
    f->check = check;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
    return 1;
}

void hk_verify_failure_print(FILE *out, const hk_verify_failure_t *f)
{
    if (!f->check) {
        fprintf(out, "OK\n");
        return;
    }
    char op[160];
    fprintf(out, "FAIL %s", f->check);
    if (f->detail[0])
        fprintf(out, " (%s)", f->detail);
    if (f->backend)
        fprintf(out, " [%s]", f->backend);
    if (f->op_index == HK_AT_END) {
        fprintf(out, " at end");
    } else {
        hk_op_format(&f->op, op, sizeof op);
        fprintf(out, " op %zu thread %u '%s'", f->op_index, f->thread, op);
    }
    if (f->id != HK_NO_ID)
        fprintf(out, " id %u", f->id);
    if (f->ptr)
        fprintf(out, " ptr %p", f->ptr);
    if (f->other_id != HK_NO_ID)
        fprintf(out, " other id %u", f->other_id);
    if (f->other)
        fprintf(out, " other %p", f->other);
    fprintf(out, ": %s\n", f->msg);
}
