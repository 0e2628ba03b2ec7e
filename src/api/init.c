/* Lazy, reentrant initialisation; thread exit; fork.
 *
 * The first malloc of the process runs hk_init_slow(). It reads the options (no allocation, no
 * stdio), draws the secret, maps the prewarm regions and only then marks the heap ready; the calls
 * that may allocate (pthread_key_create, pthread_atfork) come after, so when they re-enter malloc the
 * heap already works. Another thread arriving meanwhile waits; the initialising thread re-entering
 * proceeds. */
#include <pthread.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "config/config.h"
#include "hakmem.h"
#include "large/large.h"
#include "tiny/heap.h"
#include "trace/trace.h"

HK_HIDDEN _Atomic int hk_init_state;
static _Atomic long hk_init_tid;
static pthread_key_t hk_thread_key;
static _Atomic int hk_key_ready;

static void hk_thread_exit(void *arg) {
    (void)arg;
    if (hk_trace_on) hk_trace_thread_exit();
    hk_heap_teardown(&hk_tls_heap);
}

void hk_thread_register(void) {
    /* The destructor runs at thread exit for a non-NULL value; the main thread never runs it. */
    if (atomic_load_explicit(&hk_key_ready, memory_order_acquire))
        (void)pthread_setspecific(hk_thread_key, &hk_tls_heap);
}

static void hk_atfork_prepare(void) {
    hk_abandon_lock_all();
    hk_large_lock_all();
    hk_ss_lock_all();
}
static void hk_atfork_parent(void) {
    hk_ss_unlock_all();
    hk_large_unlock_all();
    hk_abandon_unlock_all();
}
static void hk_atfork_child(void) {
    hk_ss_reset_locks();
    hk_large_reset_locks();
    hk_abandon_reset_locks();
    hk_heap_fork_child();
    hk_trace_fork_child();
}

static uintptr_t hk_draw_secret(void) {
    uintptr_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        const unsigned char *at = (const unsigned char *)getauxval(AT_RANDOM);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = (uintptr_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uintptr_t)&s;
        if (at)
            for (int i = 0; i < 8; i++) s ^= (uintptr_t)at[i] << (8 * i);
    }
    return s | 1; /* never zero */
}

void hk_init_slow(void) {
    long me = (long)syscall(SYS_gettid);
    int expected = 0;
    if (atomic_compare_exchange_strong(&hk_init_state, &expected, 1)) {
        atomic_store(&hk_init_tid, me);
        hk_config_init();
        hk_secret = hk_draw_secret();
        hk_ss_init();
        hk_trace_init(); /* HAKMEM_TRACE / HAKMEM_TRACE_RING: before any op can be missed */
        atomic_store_explicit(&hk_init_state, 2, memory_order_release);
        /* From here on allocation works; these may allocate. */
        if (pthread_key_create(&hk_thread_key, hk_thread_exit) == 0) atomic_store_explicit(&hk_key_ready, 1, memory_order_release);
        pthread_atfork(hk_atfork_prepare, hk_atfork_parent, hk_atfork_child);
        hk_thread_register();
        if (HK_KNOB(debug_level) >= 1) {
            hk_log_line("hakmem: initialised, variant " HAK_VARIANT_NAME ", mode ", hk_mode_name(), NULL, NULL, NULL);
        }
        return;
    }
    if (atomic_load(&hk_init_tid) == me) return; /* re-entered from our own initialisation */
    while (atomic_load_explicit(&hk_init_state, memory_order_acquire) != 2) sched_yield();
}

const char *hak_variant(void) { return HAK_VARIANT_NAME; }
const char *hak_mode(void) {
    hk_ensure_init();
    return hk_mode_name();
}

void hak_collect(void) {
    hk_ensure_init();
    hk_heap_collect(&hk_tls_heap);
    hk_large_trim();
    hk_ss_trim();
}

void hak_stats_print(void) {
    hk_ensure_init();
    hk_stats_report();
}

/* Initialise at load, so option warnings appear even in programs that never allocate. */
__attribute__((constructor)) static void hk_at_load(void) { hk_ensure_init(); }

/* Runs when the program exits normally (and when the library is unloaded). */
__attribute__((destructor)) static void hk_at_exit(void) {
    if (atomic_load(&hk_init_state) != 2) return;
    if (HK_KNOB(stats) || HK_KNOB(os_stats)) hk_stats_report();
}
