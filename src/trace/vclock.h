/* The knob-controller hook: where a learning layer plugs in so that its decisions replay exactly.
 *
 * A controller is called on allocator slow paths (a class refill, a large-block allocation) with a
 * virtual clock and a seeded PRNG, never with wall time. Its decisions go through hk_ctl_set(), which
 * sets the option as an API call (HK_SRC_API) and records a SET in the trace (flag HK_TF_CTL). So:
 *   - what a controller decides depends only on the op stream: the clock counts slow-path events in the
 *     order the ops ran, and the PRNG is seeded at registration;
 *   - hakmem-replay in exact order with the same controller and seed takes the same decisions;
 *   - hakmem-replay --learning=forced (the default) applies the recorded SETs at their recorded places
 *     with no controller at all, and --learning=off drops them, so a bisection can tell whether a
 *     failure needs the decisions.
 * The clock is global (all threads): in an exact-order replay the n-th slow path is the same event.
 *
 * Cost when no controller is registered: one load and a predictable branch on the slow paths only.
 */
#ifndef HK_VCLOCK_H
#define HK_VCLOCK_H

#include "common.h"

enum { HK_VC_REFILL = 0, HK_VC_LARGE = 1 };

typedef struct hk_vclock {
    uint64_t now;  /* slow-path events so far, all threads (the first event is 1) */
    uint64_t rng;  /* PRNG state (splitmix64): use hk_vclock_rand() */
    unsigned site; /* HK_VC_* */
    unsigned cls;  /* class of a refill, 0 for large */
} hk_vclock_t;

typedef struct hk_knob_ctl {
    const char *name;
    uint64_t period;                              /* decide() runs on every period-th event (>= 1) */
    void (*decide)(hk_vclock_t *vc, void *state); /* may call hk_ctl_set(); must not allocate */
    void *state;
} hk_knob_ctl_t;

extern HK_HIDDEN const hk_knob_ctl_t *volatile hk_ctl_active;

/* Registers a controller (NULL unregisters) and restarts the clock at 0 with the PRNG seeded. */
HK_HIDDEN void hk_ctl_register(const hk_knob_ctl_t *ctl, uint64_t seed);
HK_HIDDEN void hk_ctl_tick_slow(unsigned site, unsigned cls);
HK_INLINE void hk_ctl_tick(unsigned site, unsigned cls) {
    if (HAK_UNLIKELY(hk_ctl_active != NULL)) hk_ctl_tick_slow(site, cls);
}
HK_HIDDEN uint64_t hk_vclock_rand(hk_vclock_t *vc);
/* Sets an option (by name, with or without HAKMEM_) as an API call, and records the SET in the trace
 * with the option's resulting value. 0, or -1 (unknown name or bad value: nothing changed). */
HK_HIDDEN int hk_ctl_set(const char *name, const char *value);
/* The virtual clock now (for tests). */
HK_HIDDEN uint64_t hk_ctl_now(void);

#endif
