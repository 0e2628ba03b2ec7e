/* Routing shared by the api/ files: size -> tiny/mid class or large; lazy init. */
#ifndef HK_API_H
#define HK_API_H

#include "common.h"
#include "hardened/harden.h"

/* 0 = not started, 1 = in progress, 2 = ready */
extern HK_HIDDEN _Atomic int hk_init_state;
HK_HIDDEN void hk_init_slow(void);
HK_INLINE void hk_ensure_init(void) {
    if (HAK_UNLIKELY(atomic_load_explicit(&hk_init_state, memory_order_acquire) != 2)) hk_init_slow();
}

/* The slab bytes a request of n needs: n itself, plus the canary in hardened builds, and at least
 * HK_HARDEN_MIN_BLOCK (hardened/harden.h: link, marker, fill and canary each in a word of their own). */
#if HK_HARDEN(HK_H_CANARY) || HK_HARDEN(HK_H_DFREE)
#define HK_REQ(n) ((n) + HK_CANARY_BYTES < HK_HARDEN_MIN_BLOCK ? (size_t)HK_HARDEN_MIN_BLOCK : (n) + HK_CANARY_BYTES)
#define HK_SMALL_LIMIT (HK_MID_MAX - HK_CANARY_BYTES)
#else
#define HK_REQ(n) (n)
#define HK_SMALL_LIMIT HK_MID_MAX
#endif

HK_HIDDEN void *hk_memalign(size_t align, size_t size);
HK_HIDDEN void hk_stats_report(void);

#endif
