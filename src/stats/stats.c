/* The statistics report (HAKMEM_STATS_ENABLE=1 at exit, or hak_stats_print()). Formatted without
 * stdio or allocation. Per-class counters come from exited threads plus the calling thread; counts
 * of other live threads join when they exit. */
#include "api/api.h"
#include "config/config.h"
#include "large/large.h"
#include "superslab/os.h"
#include "tiny/heap.h"

typedef struct hk_line { char buf[256]; size_t n; } hk_line_t;

static void hk_put(hk_line_t *l, const char *s) { l->n += hk_strlcpy(l->buf + l->n, s, sizeof l->buf - l->n); }
static void hk_put_num(hk_line_t *l, uint64_t v, int width) {
    char num[24];
    size_t len = hk_fmt_u64(num, v);
    for (int i = (int)len; i < width && l->n + 1 < sizeof l->buf; i++) l->buf[l->n++] = ' ';
    hk_put(l, num);
}
static void hk_emit(hk_line_t *l) {
    if (l->n < sizeof l->buf) l->buf[l->n++] = '\n';
    hk_os_write_all(2, l->buf, l->n);
    l->n = 0;
}

static uint64_t hk_ld(_Atomic uint64_t *v) { return atomic_load_explicit(v, memory_order_relaxed); }

void hk_stats_report(void) {
    hk_heap_stats_t cs[HK_NCLASSES];
    hk_heap_stats_sum(cs);
    for (int c = 0; c < HK_NCLASSES; c++) {
        uint64_t *d = (uint64_t *)&cs[c], *s = (uint64_t *)&hk_tls_heap.cls_stats[c];
        for (size_t i = 0; i < sizeof(hk_heap_stats_t) / sizeof(uint64_t); i++) d[i] += s[i];
    }
    hk_line_t l = {{0}, 0};
    hk_put(&l, "hakmem stats: variant " HAK_VARIANT_NAME ", mode ");
    hk_put(&l, hk_mode_name());
    hk_emit(&l);
    if (HK_KNOB(stats)) {
        hk_put(&l, "class    size   refills  blocks_out   flushes   blocks_in    remote  slabs_new  released  adopted  borrowed  traded  holes  vacated");
        hk_emit(&l);
        for (int c = 0; c < HK_NCLASSES; c++) {
            hk_heap_stats_t *s = &cs[c];
            if (!s->refills && !s->flushes && !s->remote_frees && !s->slabs_new) continue;
            hk_put(&l, "C");
            hk_put_num(&l, (uint64_t)c, 0);
            hk_put(&l, c < 10 ? " " : "");
            hk_put_num(&l, hk_class_info[c].size, 8);
            hk_put_num(&l, s->refills, 10);
            hk_put_num(&l, s->refill_blocks, 12);
            hk_put_num(&l, s->flushes, 10);
            hk_put_num(&l, s->flush_blocks + s->drained_blocks, 12);
            hk_put_num(&l, s->remote_frees, 10);
            hk_put_num(&l, s->slabs_new, 11);
            hk_put_num(&l, s->slabs_released, 10);
            hk_put_num(&l, s->adopted, 9);
            hk_put_num(&l, s->borrowed, 10);
            hk_put_num(&l, s->traded, 8);
            hk_put_num(&l, s->holes, 7);
            hk_put_num(&l, s->vacated, 9);
            hk_emit(&l);
        }
        hk_put(&l, "large: allocs ");
        hk_put_num(&l, hk_ld(&hk_large_counters.allocs), 0);
        hk_put(&l, ", frees ");
        hk_put_num(&l, hk_ld(&hk_large_counters.frees), 0);
        hk_put(&l, ", live ");
        hk_put_num(&l, hk_ld(&hk_large_counters.live), 0);
        hk_put(&l, "; BigCache hits ");
        hk_put_num(&l, hk_ld(&hk_large_counters.bigcache_hits), 0);
        hk_put(&l, ", misses ");
        hk_put_num(&l, hk_ld(&hk_large_counters.bigcache_misses), 0);
        hk_put(&l, ", entries ");
        hk_put_num(&l, hk_ld(&hk_large_counters.bigcache_entries), 0);
        hk_emit(&l);
        hk_put(&l, "regions: live ");
        hk_put_num(&l, hk_ld(&hk_ss_counters.regions_live), 0);
        hk_put(&l, ", slabs live ");
        hk_put_num(&l, hk_ld(&hk_ss_counters.slabs_live), 0);
        hk_put(&l, ", lean_decommit ");
        hk_put_num(&l, hk_ld(&hk_ss_counters.lean_decommit), 0);
        hk_put(&l, ", lean_retire ");
        hk_put_num(&l, hk_ld(&hk_ss_counters.lean_retire), 0);
        hk_emit(&l);
    }
    uint64_t sys = hk_ld(&hk_os_stats.mmap_calls) + hk_ld(&hk_os_stats.munmap_calls) + hk_ld(&hk_os_stats.madvise_calls) +
                   hk_ld(&hk_os_stats.mremap_calls);
    hk_put(&l, "os: mmap ");
    hk_put_num(&l, hk_ld(&hk_os_stats.mmap_calls), 0);
    hk_put(&l, ", munmap ");
    hk_put_num(&l, hk_ld(&hk_os_stats.munmap_calls), 0);
    hk_put(&l, ", madvise ");
    hk_put_num(&l, hk_ld(&hk_os_stats.madvise_calls), 0);
    hk_put(&l, ", mremap ");
    hk_put_num(&l, hk_ld(&hk_os_stats.mremap_calls), 0);
    hk_put(&l, ", syscalls ");
    hk_put_num(&l, sys, 0);
    hk_put(&l, ", mapped KiB ");
    hk_put_num(&l, hk_ld(&hk_os_stats.bytes_mapped) >> 10, 0);
    hk_emit(&l);
}
