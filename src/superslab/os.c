#include "superslab/os.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

HK_HIDDEN hk_os_stats_t hk_os_stats;

#define HK_STAT_ADD(f, v) atomic_fetch_add_explicit(&hk_os_stats.f, (v), memory_order_relaxed)
#define HK_STAT_SUB(f, v) atomic_fetch_sub_explicit(&hk_os_stats.f, (v), memory_order_relaxed)

void *hk_os_map(size_t size) {
    HK_STAT_ADD(mmap_calls, 1);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return NULL;
    HK_STAT_ADD(bytes_mapped, size);
    return p;
}

void *hk_os_map_aligned(size_t size, size_t align) {
    if (align <= HK_PAGE) return hk_os_map(size);
    /* First try a plain mapping: the kernel often hands out aligned addresses next to earlier ones. */
    void *p = hk_os_map(size);
    if (p == NULL) return NULL;
    if (((uintptr_t)p & (align - 1)) == 0) return p;
    hk_os_unmap(p, size);
    size_t over = size + align;
    if (over < size) { errno = ENOMEM; return NULL; }
    char *raw = hk_os_map(over);
    if (raw == NULL) return NULL;
    uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
    size_t head = start - (uintptr_t)raw, tail = over - head - size;
    if (head) hk_os_unmap(raw, head);
    if (tail) hk_os_unmap((char *)start + size, tail);
    return (void *)start;
}

void hk_os_unmap(void *p, size_t size) {
    HK_STAT_ADD(munmap_calls, 1);
    if (munmap(p, size) == 0) HK_STAT_SUB(bytes_mapped, size);
}

void hk_os_decommit(void *p, size_t size, hk_decommit_t how) {
    if (how == HK_DECOMMIT_OFF || size == 0) return;
    HK_STAT_ADD(madvise_calls, 1);
#ifdef MADV_FREE
    if (how == HK_DECOMMIT_FREE && madvise(p, size, MADV_FREE) == 0) return;
#endif
    (void)madvise(p, size, MADV_DONTNEED);
}

void *hk_os_remap(void *p, size_t old_size, size_t new_size, int may_move) {
    HK_STAT_ADD(mremap_calls, 1);
    void *q = mremap(p, old_size, new_size, may_move ? MREMAP_MAYMOVE : 0);
    if (q == MAP_FAILED) return NULL;
    if (new_size > old_size) HK_STAT_ADD(bytes_mapped, new_size - old_size);
    else HK_STAT_SUB(bytes_mapped, old_size - new_size);
    return q;
}

void hk_os_protect(void *p, size_t size, int rw) {
    (void)mprotect(p, size, rw ? PROT_READ | PROT_WRITE : PROT_NONE);
}

void hk_os_advise_thp(void *p, size_t size, int on) {
    if (on < 0) return;
#if defined(MADV_HUGEPAGE) && defined(MADV_NOHUGEPAGE)
    HK_STAT_ADD(madvise_calls, 1);
    (void)madvise(p, size, on ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
#endif
}

void hk_os_write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return;
        }
        buf += w;
        len -= (size_t)w;
    }
}
