/* A small lock for slow paths: test-and-test-and-set with yield. Never allocates, fork-safe when
 * the atfork handlers take every lock (api/init.c). */
#ifndef HK_LOCK_H
#define HK_LOCK_H

#include <sched.h>

#include "common.h"

HK_INLINE void hk_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause");
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

typedef struct hk_lock { _Atomic int v; } hk_lock_t;
#define HK_LOCK_INIT {0}

HK_INLINE void hk_lock(hk_lock_t *l) {
    for (int spins = 0;; spins++) {
        if (atomic_load_explicit(&l->v, memory_order_relaxed) == 0 &&
            atomic_exchange_explicit(&l->v, 1, memory_order_acquire) == 0)
            return;
        if (spins > 64) sched_yield();
        else hk_cpu_relax();
    }
}
HK_INLINE void hk_unlock(hk_lock_t *l) { atomic_store_explicit(&l->v, 0, memory_order_release); }
HK_INLINE void hk_lock_reset(hk_lock_t *l) { atomic_store_explicit(&l->v, 0, memory_order_relaxed); }

#endif
