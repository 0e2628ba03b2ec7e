/* Entry points for harnesses (see verify.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "verify.h"

#include <stdlib.h>
#include <string.h>

void hk_verify_opts_default(hk_verify_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->flags = HK_VERIFY_DEFAULT_FLAGS;
}

int hk_verify_opts_parse(hk_verify_opts_t *o, const char *words)
{
    static const struct {
        const char *word;
        unsigned set, clear;
    } table[] = {
        {"all", HK_VERIFY_DEFAULT_FLAGS, 0},
        {"noshadow", 0, HK_VERIFY_SHADOW},       {"nocontent", 0, HK_VERIFY_CONTENT},
        {"nosll", 0, HK_VERIFY_CHECK_THREAD},    {"noheap", 0, HK_VERIFY_CHECK_HEAP},
        {"nochecks", 0, HK_VERIFY_DEFAULT_FLAGS},{"large", HK_VERIFY_ALLOW_LARGE, 0},
        {"nooracle", HK_VERIFY_NO_ORACLE, 0},    {"threads", HK_VERIFY_THREADS, 0},
        {"strict", HK_VERIFY_STRICT, 0},         {"glibc", HK_VERIFY_GLIBC_ONLY, 0},
    };
    int rc = 0;
    if (!words)
        return 0;
    const char *s = words;
    while (*s) {
        size_t len = strcspn(s, ", \t");
        if (len) {
            int found = 0;
            for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
                if (strlen(table[i].word) == len && memcmp(table[i].word, s, len) == 0) {
                    o->flags = (o->flags | table[i].set) & ~table[i].clear;
                    found = 1;
                }
            }
            char *end;
            if (!found && len > 4 && memcmp(s, "sll=", 4) == 0) {
                unsigned long v = strtoul(s + 4, &end, 10);
                found = end == s + len;
                if (found)
                    o->thread_check_period = (uint32_t)v;
            } else if (!found && len > 4 && memcmp(s, "max=", 4) == 0) {
                unsigned long long v = strtoull(s + 4, &end, 10);
                found = end == s + len;
                if (found)
                    o->max_size = v;
            }
            if (!found)
                rc = -1;
        }
        s += len;
        if (*s)
            s++;
    }
    return rc;
}

int hk_verify_run_prog(const hk_prog_t *prog, const hk_verify_opts_t *opts, hk_verify_failure_t *out)
{
    hk_verify_opts_t def;
    if (!opts) {
        hk_verify_opts_default(&def);
        opts = &def;
    }
    int threaded = (opts->flags & HK_VERIFY_THREADS) != 0;
    hk_interp_opts_t io;
    memset(&io, 0, sizeof io);
    io.flags = opts->flags & (HK_CHECK_ALL | HK_INTERP_ALLOW_LARGE);
    io.max_size = opts->max_size;
    io.thread_check_period = opts->thread_check_period;
    if (opts->flags & HK_VERIFY_GLIBC_ONLY)
        return hk_interp_run(prog, &hk_backend_glibc, &io, threaded, out);
    if (opts->flags & HK_VERIFY_NO_ORACLE)
        return hk_interp_run(prog, &hk_backend_hakmem, &io, threaded, out);
    hk_oracle_opts_t oo;
    memset(&oo, 0, sizeof oo);
    oo.interp = io;
    oo.strict = (opts->flags & HK_VERIFY_STRICT) != 0;
    return hk_oracle_run(prog, &oo, threaded, out);
}

int hk_verify_run_bytes(const uint8_t *data, size_t n, const hk_verify_opts_t *opts, hk_verify_failure_t *out)
{
    /* One program per thread, reused across calls: a fuzzer calls this millions of times. */
    static __thread hk_prog_t prog;
    static __thread int ready;
    if (!ready) {
        hk_prog_init(&prog);
        ready = 1;
    }
    if (hk_prog_from_fuzz(&prog, data, n) != 0)
        return hk_verify_fail(out, "interp", "out of memory decoding %zu bytes", n);
    return hk_verify_run_prog(&prog, opts, out);
}
