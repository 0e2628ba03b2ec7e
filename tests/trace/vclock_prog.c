/* vclock_prog: a deterministic workload under a fake knob controller (src/trace/vclock.h).
 *
 * The controller runs on every 3rd slow-path event; from its seeded PRNG it picks a thread-cache scale
 * (HAKMEM_TINY_CAP_PCT, 10..400 %) and applies it through hk_ctl_set, so every decision is a recorded
 * SET. The workload (single thread, seeded) then behaves differently with and without the decisions:
 * the caps decide how often the cache refills and flushes. Prints the decisions and the refill count.
 *
 *   vclock_prog [seed] [steps]
 * Run with HAKMEM_TRACE=file to record it (full mode).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "hakmem.h"
#include "hakmem_debug.h"
#include "trace/vclock.h"

static unsigned decisions;

static void fake_decide(hk_vclock_t *vc, void *state)
{
    (void)state;
    char v[16];
    unsigned pct = 10 + (unsigned)(hk_vclock_rand(vc) % 391);
    snprintf(v, sizeof v, "%u", pct); /* stdio on glibc: this program links the prefixed library */
    if (hk_ctl_set("HAKMEM_TINY_CAP_PCT", v) == 0)
        decisions++;
}

static const hk_knob_ctl_t fake = {"fake", 3, fake_decide, NULL};

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 42;
    unsigned long steps = argc > 2 ? strtoul(argv[2], NULL, 0) : 20000;
    hk_ctl_register(&fake, seed);
    void *slot[512] = {0};
    uint64_t s = 7;
    for (unsigned long i = 0; i < steps; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        unsigned k = (unsigned)(s >> 33) % 512;
        if (slot[k]) {
            hak_free(slot[k]);
            slot[k] = NULL;
        } else {
            slot[k] = hak_malloc(8 + (size_t)((s >> 20) % 2000));
        }
    }
    for (unsigned k = 0; k < 512; k++)
        hak_free(slot[k]);
    hk_ctl_register(NULL, 0);
    hak_debug_stats_t st;
    hak_debug_stats(&st);
    printf("vclock_prog: %u decisions, clock %llu, tiny cap now %lld %%\n", decisions, (unsigned long long)hk_ctl_now(),
           hak_debug_get_option("HAKMEM_TINY_CAP_PCT"));
    return decisions > 0 ? 0 : 1;
}
