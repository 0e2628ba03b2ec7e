#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config/config.h"
#include "hardened/harden.h"
#include "superslab/os.h"
#include "large/large.h"
#include "tiny/sizeclass.h"

HK_HIDDEN uintptr_t hk_secret;
HK_HIDDEN void (*volatile hk_report_hook)(void);

HK_HIDDEN const char *const hk_fault_names[HK_FAULT_COUNT] = {
    [HK_FAULT_DOUBLE_FREE] = "double free",
    [HK_FAULT_INVALID_FREE] = "invalid free",
    [HK_FAULT_INTERIOR_FREE] = "free of an interior pointer",
    [HK_FAULT_FOREIGN_FREE] = "free of a pointer hakmem does not own",
    [HK_FAULT_WRITE_AFTER_FREE] = "write after free",
    [HK_FAULT_LINK_CORRUPT] = "free-list corruption (bad link)",
    [HK_FAULT_LIVE_IN_LIST] = "free-list corruption (link to a block that is not free)",
    [HK_FAULT_OVERFLOW] = "heap overflow (canary overwritten)",
    [HK_FAULT_REALLOC_FREED] = "realloc of a freed block",
    [HK_FAULT_REALLOC_INVALID] = "realloc of a pointer hakmem does not own",
    [HK_FAULT_LARGE_DOUBLE_FREE] = "double free of a large block",
};

static size_t hk_fmt_hex(char *buf, uintptr_t v) {
    static const char digits[] = "0123456789abcdef";
    char tmp[20];
    size_t n = 0;
    do { tmp[n++] = digits[v & 15]; v >>= 4; } while (v);
    buf[0] = '0', buf[1] = 'x';
    for (size_t i = 0; i < n; i++) buf[2 + i] = tmp[n - 1 - i];
    buf[2 + n] = 0;
    return n + 2;
}

void hk_report(hk_fault_t fault, const void *ptr, int cls) {
    char line[320], num[32];
    size_t n = hk_strlcpy(line, "hakmem: fatal: ", sizeof line);
    n += hk_strlcpy(line + n, hk_fault_names[fault], sizeof line - n);
    n += hk_strlcpy(line + n, ": pointer ", sizeof line - n);
    hk_fmt_hex(num, (uintptr_t)ptr);
    n += hk_strlcpy(line + n, num, sizeof line - n);
    if (cls >= 0 && cls < HK_NCLASSES) {
        n += hk_strlcpy(line + n, ", class C", sizeof line - n);
        hk_fmt_u64(num, (uint64_t)cls);
        n += hk_strlcpy(line + n, num, sizeof line - n);
        n += hk_strlcpy(line + n, " (", sizeof line - n);
        hk_fmt_u64(num, hk_class_info[cls].size);
        n += hk_strlcpy(line + n, num, sizeof line - n);
        n += hk_strlcpy(line + n, " B)", sizeof line - n);
    } else {
        /* No slab class: say "large" when the pointer is (or was, or lies inside) a large block. */
        int large = fault == HK_FAULT_LARGE_DOUBLE_FREE || hk_large_usable(ptr) || hk_large_was_freed(ptr) ||
                    hk_large_is_interior(ptr);
        n += hk_strlcpy(line + n, large ? ", class large" : ", class none", sizeof line - n);
    }
    n += hk_strlcpy(line + n, ", thread ", sizeof line - n);
    hk_fmt_u64(num, (uint64_t)syscall(SYS_gettid));
    n += hk_strlcpy(line + n, num, sizeof line - n);
    n += hk_strlcpy(line + n, ", mode ", sizeof line - n);
    n += hk_strlcpy(line + n, hk_mode_name(), sizeof line - n);
    n += hk_strlcpy(line + n, ", variant " HAK_VARIANT_NAME, sizeof line - n);
    if (n < sizeof line - 1) line[n++] = '\n';
    hk_os_write_all(2, line, n);
    void (*hook)(void) = hk_report_hook;
    if (hook) hook();
    abort();
}
