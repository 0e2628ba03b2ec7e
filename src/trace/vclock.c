/* Knob controllers on a virtual clock (vclock.h). */
#include "trace/vclock.h"

#include "config/config.h"
#include "superslab/lock.h"
#include "trace/trace.h"

HK_HIDDEN const hk_knob_ctl_t *volatile hk_ctl_active;

/* One controller runs at a time: the clock and the PRNG advance under this lock, so the n-th event
 * always sees the same state whatever thread brings it. */
static hk_lock_t hk_ctl_lock = HK_LOCK_INIT;
static hk_vclock_t hk_ctl_clock;

void hk_ctl_register(const hk_knob_ctl_t *ctl, uint64_t seed) {
    hk_lock(&hk_ctl_lock);
    hk_ctl_clock.now = 0;
    hk_ctl_clock.rng = seed;
    hk_ctl_active = ctl;
    hk_unlock(&hk_ctl_lock);
}

uint64_t hk_vclock_rand(hk_vclock_t *vc) {
    uint64_t z = (vc->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void hk_ctl_tick_slow(unsigned site, unsigned cls) {
    hk_lock(&hk_ctl_lock);
    const hk_knob_ctl_t *ctl = hk_ctl_active;
    if (ctl != NULL) {
        hk_ctl_clock.now++;
        hk_ctl_clock.site = site;
        hk_ctl_clock.cls = cls;
        uint64_t period = ctl->period ? ctl->period : 1;
        if (hk_ctl_clock.now % period == 0) ctl->decide(&hk_ctl_clock, ctl->state);
    }
    hk_unlock(&hk_ctl_lock);
}

uint64_t hk_ctl_now(void) {
    hk_lock(&hk_ctl_lock);
    uint64_t v = hk_ctl_clock.now;
    hk_unlock(&hk_ctl_lock);
    return v;
}

int hk_ctl_set(const char *name, const char *value) {
    if (hk_config_set(name, value, HK_SRC_API, 0) != 0) return -1;
    int id = hk_config_find(name);
    if (hk_trace_on && id >= 0) hk_trace_record_set((unsigned)id, (uint64_t)hk_config_get((hk_opt_id_t)id), 1);
    return 0;
}
