/* stress/soak.c — long-running random-mixed load with RSS and throughput sampling.
 *
 * Variants:
 *   mixed  (default) the random-mixed workload (ws=400, 16..1024 B); --ws 4000 for the large set.
 *   churn  heavy churn: each thread fills its whole working set (16 B..32 KiB) and then frees all
 *          of it, over and over, so the heap swings between full and empty and the allocator's
 *          return-to-OS and reuse paths run all the time.
 * Every --interval seconds (default 1) the main thread samples RSS (/proc/self/statm) and the ops
 * done since the last sample. At the end it prints the peak RSS, the drift (final sample vs the
 * first sample after 20% of the run; a leak or fragmentation shows as steady growth) and the
 * coefficient of variation of the per-interval throughput (stalls and learning oscillations show
 * as a high CV). Beside the drift it prints the growth of the live set's high-water mark over the
 * same window (hw_growth_kb, mixed.h: per 64-byte size bucket the most blocks ever live at once):
 * a random workload keeps setting new peaks now and then, which every allocator must back with
 * memory, so RSS growth up to that much is the workload's, not the allocator's. RSS counts the
 * pages of the program's and the libraries' code it has run so far too (file-backed pages: a code
 * path first taken late in the run, such as printing a wider number, adds a page); the anonymous
 * part alone (anon_drift_kb: heap, stacks, bss) is printed beside it. The drift compares one
 * sample with one: an RSS that swings in a band reports where the last sample fell. trend_kb
 * compares windows instead: the median of the last tenth of the samples against the median of as
 * many samples from the early one on (anon_trend_kb: the anonymous part). --max-drift-pct
 * makes a drift above that a failure; by default drift is reported, not judged. All blocks are
 * stamped and checked as in random_mixed.
 */
#include "alloc_api.h"
#include "common.h"
#include "mixed.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SK_MAX_SAMPLES 100000

typedef struct sk_worker {
    uint64_t id;
    _Alignas(64) atomic_uint_fast64_t ops;
    atomic_uint_fast64_t hw; /* the worker's live-set high-water mark in bytes (mixed.h) */
} sk_worker_t;

static hs_common_t sk_c;
static double sk_seconds = 10.0, sk_interval = 1.0, sk_max_drift_pct = 0.0;
static uint64_t sk_ws = 400, sk_min = 0, sk_max = 0;
static const char *sk_variant = "mixed";
static int sk_churn;
static atomic_int sk_stop;

static void *sk_thread(void *arg)
{
    sk_worker_t *w = (sk_worker_t *)arg;
    hs_mixed_t m;
    hs_mixed_init(&m, sk_c.seed, w->id, sk_ws, sk_min, sk_max, sk_c.stamp, !sk_c.bench);
    m.track_hw = 1;
    uint64_t cursor = 0;
    int filling = 1;
    while (!atomic_load_explicit(&sk_stop, memory_order_relaxed)) {
        if (!sk_churn) {
            for (int k = 0; k < 256; k++)
                hs_mixed_step(&m);
        } else {
            /* Fill every slot in order, then free every slot in order. */
            for (int k = 0; k < 256; k++) {
                if (filling)
                    hs_mixed_fill(&m, cursor, hs_rng_range(&m.rng, m.min, m.max));
                else
                    hs_mixed_release(&m, cursor);
                m.steps++;
                if (++cursor == m.ws) {
                    cursor = 0;
                    filling = !filling;
                }
            }
        }
        atomic_fetch_add_explicit(&w->ops, 256, memory_order_relaxed);
        atomic_store_explicit(&w->hw, m.hw_bytes, memory_order_relaxed);
    }
    hs_mixed_destroy(&m);
    return NULL;
}

/* The median of v[0..n) (n > 0), through scratch (the harness's own memory: no allocation). */
static long sk_median(const long *v, size_t n, long *scratch)
{
    memcpy(scratch, v, n * sizeof *v);
    for (size_t i = 1; i < n; i++) { /* insertion sort: windows are a tenth of the samples */
        long x = scratch[i];
        size_t j = i;
        for (; j > 0 && scratch[j - 1] > x; j--)
            scratch[j] = scratch[j - 1];
        scratch[j] = x;
    }
    return n % 2 ? scratch[n / 2] : (scratch[n / 2 - 1] + scratch[n / 2]) / 2;
}

static void sk_sleep(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

int main(int argc, char **argv)
{
    hs_init(&sk_c, "soak", argc, argv);
    if (sk_c.short_mode) {
        sk_seconds = 1.5;
        sk_interval = 0.25;
    }
    const hs_opt_t opts[] = {
        {"seconds", HS_OPT_DOUBLE, &sk_seconds, "run time (default 10, --short 1.5)"},
        {"interval", HS_OPT_DOUBLE, &sk_interval, "sampling interval in seconds (default 1, --short 0.25)"},
        {"variant", HS_OPT_STRING, &sk_variant, "mixed | churn (default mixed)"},
        {"ws", HS_OPT_U64, &sk_ws, "working-set slots per thread (default 400)"},
        {"min", HS_OPT_U64, &sk_min, "smallest block (default 16)"},
        {"max", HS_OPT_U64, &sk_max, "largest block (default 1024; churn 32768)"},
        {"max-drift-pct", HS_OPT_DOUBLE, &sk_max_drift_pct, "fail if RSS drift exceeds this (default off)"},
        {NULL, HS_OPT_FLAG, NULL, NULL}};
    hs_parse(&sk_c, argc, argv, opts);
    if (strcmp(sk_variant, "churn") == 0)
        sk_churn = 1;
    else if (strcmp(sk_variant, "mixed") != 0) {
        fprintf(stderr, "soak: --variant takes mixed or churn, not '%s'\n", sk_variant);
        return 2;
    }
    if (sk_min == 0)
        sk_min = 16;
    if (sk_max == 0)
        sk_max = sk_churn ? 32768 : 1024;
    if (sk_ws == 0 || sk_max < sk_min || sk_max > UINT32_MAX || !(sk_seconds > 0) ||
        !(sk_interval > 0.001)) {
        fprintf(stderr, "soak: need ws > 0, 0 < min <= max, seconds > 0, interval > 1 ms\n");
        return 2;
    }
    size_t cap = (size_t)(sk_seconds / sk_interval) + 4;
    if (cap > SK_MAX_SAMPLES)
        hs_fatal("%zu samples needed; raise --interval (at most %d)", cap, SK_MAX_SAMPLES);
    static long rss[SK_MAX_SAMPLES], anon[SK_MAX_SAMPLES], hw[SK_MAX_SAMPLES];
    static double rate[SK_MAX_SAMPLES], when[SK_MAX_SAMPLES];
    /* Touch every sample slot the run will use before the clock starts: the arrays are the harness's
     * own memory, and filling them page by page during the run would show as RSS drift (up to a page
     * per array between the early and the final sample). */
    memset(rss, 0, cap * sizeof rss[0]);
    memset(anon, 0, cap * sizeof anon[0]);
    memset(hw, 0, cap * sizeof hw[0]);
    memset(rate, 0, cap * sizeof rate[0]);
    memset(when, 0, cap * sizeof when[0]);

    const uint64_t nt = sk_c.threads;
    sk_worker_t *ws = (sk_worker_t *)S_CALLOC(nt, sizeof *ws);
    HS_CHECK_ALLOC(ws, nt * sizeof *ws);
    pthread_t tids[nt];
    double t0 = hs_now();
    for (uint64_t t = 0; t < nt; t++) {
        ws[t].id = t;
        atomic_init(&ws[t].ops, 0);
        atomic_init(&ws[t].hw, 0);
        hs_thread_start(&tids[t], sk_thread, &ws[t]);
    }
    size_t ns = 0;
    uint64_t last_ops = 0;
    double last_t = t0;
    const int verbose = !sk_c.bench && !sk_c.short_mode;
    while (ns < cap) {
        double next = t0 + (double)(ns + 1) * sk_interval;
        double now = hs_now();
        if (next > now)
            sk_sleep(next - now);
        now = hs_now();
        uint64_t ops = 0, hwb = 0;
        for (uint64_t t = 0; t < nt; t++) {
            ops += atomic_load_explicit(&ws[t].ops, memory_order_relaxed);
            hwb += atomic_load_explicit(&ws[t].hw, memory_order_relaxed);
        }
        hw[ns] = (long)(hwb / 1024);
        rss[ns] = hs_rss_kb();
        anon[ns] = hs_rss_anon_kb();
        rate[ns] = (double)(ops - last_ops) / (now - last_t);
        when[ns] = now - t0;
        if (verbose)
            printf("soak: t=%6.2f s  rss=%8ld KiB  %8.2f Mops/s  live high-water %ld KiB\n", when[ns], rss[ns],
                   rate[ns] / 1e6, hw[ns]);
        last_ops = ops;
        last_t = now;
        ns++;
        if (now - t0 >= sk_seconds)
            break;
    }
    atomic_store(&sk_stop, 1);
    uint64_t total = 0;
    for (uint64_t t = 0; t < nt; t++) {
        hs_thread_join(tids[t]);
        total += atomic_load(&ws[t].ops);
    }
    double secs = hs_now() - t0;
    long rss_end = hs_rss_kb();
    S_FREE(ws);

    /* Early = first sample at or after 20% of the run (past warm-up); final = last sample. */
    size_t early = 0;
    while (early + 1 < ns && when[early] < 0.2 * sk_seconds)
        early++;
    long peak = 0;
    double mean = 0, var = 0;
    for (size_t i = 0; i < ns; i++) {
        if (rss[i] > peak)
            peak = rss[i];
        mean += rate[i];
    }
    mean /= (double)ns;
    for (size_t i = 0; i < ns; i++)
        var += (rate[i] - mean) * (rate[i] - mean);
    double cv = ns > 1 && mean > 0 ? sqrt(var / (double)(ns - 1)) / mean : 0.0;
    long drift = rss[ns - 1] - rss[early];
    /* Windows of a tenth of the samples: from the early sample on, and the last ones. */
    static long scratch[SK_MAX_SAMPLES];
    size_t win = ns / 10 > 0 ? ns / 10 : 1;
    size_t early_win = early + win <= ns ? win : ns - early;
    long trend = sk_median(rss + ns - win, win, scratch) - sk_median(rss + early, early_win, scratch);
    long anon_trend = sk_median(anon + ns - win, win, scratch) - sk_median(anon + early, early_win, scratch);
    double drift_pct = rss[early] > 0 ? 100.0 * (double)drift / (double)rss[early] : 0.0;
    if (hs_peak_rss_kb() > peak)
        peak = hs_peak_rss_kb();

    char extra[640];
    snprintf(extra, sizeof extra,
             " variant=%s ws=%llu min=%llu max=%llu samples=%zu peak_sampled_kb=%ld early_rss_kb=%ld "
             "final_rss_kb=%ld drift_kb=%ld drift_pct=%.1f cv=%.3f rss_after_free_kb=%ld early_hw_kb=%ld "
             "final_hw_kb=%ld hw_growth_kb=%ld early_anon_kb=%ld final_anon_kb=%ld anon_drift_kb=%ld "
             "trend_kb=%ld anon_trend_kb=%ld",
             sk_variant, (unsigned long long)sk_ws, (unsigned long long)sk_min,
             (unsigned long long)sk_max, ns, peak, rss[early], rss[ns - 1], drift, drift_pct, cv,
             rss_end, hw[early], hw[ns - 1], hw[ns - 1] - hw[early], anon[early], anon[ns - 1],
             anon[ns - 1] - anon[early], trend, anon_trend);
    if (sk_max_drift_pct > 0 && drift_pct > sk_max_drift_pct)
        hs_fatal("RSS drift %.1f%% (%ld KiB -> %ld KiB) exceeds --max-drift-pct %.1f", drift_pct,
                 rss[early], rss[ns - 1], sk_max_drift_pct);
    hs_report(&sk_c, total, secs, extra);
    return 0;
}
