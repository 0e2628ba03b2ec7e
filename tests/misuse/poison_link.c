/* Free-list link poisoning (tcache-poisoning style): the program overwrites the link word (the first
 * 8 bytes) of a freed block, as a use-after-free write or an overflow from the previous block would,
 * so that a later malloc would hand out an address the attacker chose. Links are stored encoded
 * (next ^ (slot >> 12) ^ secret) and validated when popped, so a raw address decodes to garbage and
 * is caught; the per-process secret makes detection probabilistic in principle, so the runner runs
 * these cases many times (MISUSE_SEED varies the heap layout, the secret varies per process).
 *
 *   live      link of the most recently freed block := address of a live block of the same class
 *   stack     link := address of a stack variable
 *   mangled   link := live ^ (slot >> 12): glibc's safe-linking encoding, which an attacker who knows
 *             one heap address can forge; the per-process secret in hakmem's encoding defeats it
 *   null      link := 0 (an attempt to cut the list)
 *   partial   only the low byte of the link is changed, by the XOR of two heap addresses the
 *             attacker knows (the known weakness of safe-linking): it now decodes to a live
 *             neighbour, which passes the link check; the next pop must catch it (the neighbour
 *             carries no free marker and its first word is user data, not a link)
 *   cycle     the low byte of the head's link is changed so that it decodes to the head itself: a
 *             cycle that would hand out the same block twice
 *   remote    another thread frees two blocks (pushed on the slab's remote stack); the program
 *             poisons the head's link; the owner validates the links when it drains the stack
 *   abandoned a thread frees two blocks and exits (its cache is flushed to the slab list, the slab
 *             abandoned); the program poisons one link; the slab is adopted and the list popped
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "misuse.h"

#define PL_SIZE 24 /* 32-byte class in every variant */

/* Allocates PL_SIZE-byte blocks until `target` comes back, then `extra` more (the allocations that
 * consume target's poisoned link); if all of that returns, the misuse went through undetected. */
static void pl_drain_until(void *target, int extra, const char *what) {
    for (int i = 0; i < 300000; i++) {
        void *q = MU_MALLOC(PL_SIZE);
        if (q == NULL) mu_setup_failed("malloc");
        if (q == target) {
            for (int k = 0; k < extra; k++) (void)MU_MALLOC(PL_SIZE);
            mu_missed(what);
        }
    }
    mu_setup_failed("the poisoned block never came back in 300000 allocations");
}

static void pl_poison_raw(uintptr_t value, const char *what) {
    char *a = MU_MALLOC(PL_SIZE), *b = MU_MALLOC(PL_SIZE);
    if (a == NULL || b == NULL) mu_setup_failed("malloc");
    MU_FREE(a);
    MU_FREE(b);
    *(uintptr_t *)mu_launder(b) = value; /* b is the list head: its link pointed to a */
    pl_drain_until(b, 1, what);
}

static void pl_live(int argc, char **argv) {
    (void)argc, (void)argv;
    char *live = MU_MALLOC(PL_SIZE);
    memset(live, 0x42, PL_SIZE);
    pl_poison_raw((uintptr_t)live, "poisoned link to a live block");
}

static void pl_mangled(int argc, char **argv) {
    (void)argc, (void)argv;
    char *live = MU_MALLOC(PL_SIZE);
    memset(live, 0x42, PL_SIZE);
    char *a = MU_MALLOC(PL_SIZE), *b = MU_MALLOC(PL_SIZE);
    if (a == NULL || b == NULL || live == NULL) mu_setup_failed("malloc");
    MU_FREE(a);
    MU_FREE(b);
    *(uintptr_t *)mu_launder(b) = (uintptr_t)live ^ ((uintptr_t)b >> 12);
    pl_drain_until(b, 1, "link forged with glibc's safe-linking encoding");
}

static void pl_stack(int argc, char **argv) {
    (void)argc, (void)argv;
    volatile char target[PL_SIZE];
    target[0] = 1;
    pl_poison_raw((uintptr_t)&target[0], "poisoned link to a stack variable");
}

static void pl_null(int argc, char **argv) {
    (void)argc, (void)argv;
    pl_poison_raw(0, "link zeroed");
}

/* Two distinct blocks of `blk` whose addresses differ only in the low byte. */
static int pl_pair(char **blk, int n, int *ia, int *ic) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (i != j && (((uintptr_t)blk[i] ^ (uintptr_t)blk[j]) >> 8) == 0) {
                *ia = i, *ic = j;
                return 1;
            }
    return 0;
}

static void pl_partial(int argc, char **argv) {
    (void)argc, (void)argv;
    enum { N = 64 };
    char *blk[N];
    for (int i = 0; i < N; i++) {
        blk[i] = MU_MALLOC(PL_SIZE);
        memset(blk[i], 0, PL_SIZE); /* user data: the "link" of a live block is whatever was stored */
    }
    int ia, ic;
    if (!pl_pair(blk, N, &ia, &ic)) mu_setup_failed("no two blocks share an address window of 256 bytes");
    char *a = blk[ia], *c = blk[ic], *b = blk[ia == 0 || ic == 0 ? (ia == 1 || ic == 1 ? 2 : 1) : 0];
    MU_FREE(a);
    MU_FREE(b);
    /* b's link decodes to a; flipping bits of the low byte by a ^ c makes it decode to c (live) */
    *(unsigned char *)mu_launder(b) ^= (unsigned char)((uintptr_t)a ^ (uintptr_t)c);
    pl_drain_until(b, 1, "partially overwritten link to a live neighbour");
}

static void pl_cycle(int argc, char **argv) {
    (void)argc, (void)argv;
    enum { N = 64 };
    char *blk[N];
    for (int i = 0; i < N; i++) blk[i] = MU_MALLOC(PL_SIZE);
    int ia, ib;
    if (!pl_pair(blk, N, &ia, &ib)) mu_setup_failed("no two blocks share an address window of 256 bytes");
    char *a = blk[ia], *b = blk[ib];
    MU_FREE(a);
    MU_FREE(b);
    /* b -> a becomes b -> b */
    *(unsigned char *)mu_launder(b) ^= (unsigned char)((uintptr_t)a ^ (uintptr_t)b);
    mu_note_ptr(b);
    pl_drain_until(b, 1, "self-cycle in the free list");
}

static void *pl_free_two(void *arg) {
    char **ab = arg;
    MU_FREE(ab[0]);
    MU_FREE(ab[1]);
    return NULL;
}

static void pl_remote(int argc, char **argv) {
    (void)argc, (void)argv;
    char *live = MU_MALLOC(PL_SIZE);
    char *ab[2] = {MU_MALLOC(PL_SIZE), MU_MALLOC(PL_SIZE)};
    pthread_t t;
    if (pthread_create(&t, NULL, pl_free_two, ab) != 0) mu_setup_failed("pthread_create");
    pthread_join(t, NULL);
    *(uintptr_t *)mu_launder(ab[1]) = (uintptr_t)live; /* ab[1] heads the remote stack */
    pl_drain_until(ab[1], 1, "poisoned link on a remote-free stack");
}

static void *pl_alloc_free_exit(void *arg) {
    char **ab = arg;
    ab[2] = MU_MALLOC(PL_SIZE); /* stays live: the slab is abandoned, not given back */
    ab[0] = MU_MALLOC(PL_SIZE);
    ab[1] = MU_MALLOC(PL_SIZE);
    MU_FREE(ab[0]);
    MU_FREE(ab[1]);
    return NULL;
}

static void pl_abandoned(int argc, char **argv) {
    (void)argc, (void)argv;
    char *live = MU_MALLOC(PL_SIZE);
    char *ab[3];
    pthread_t t;
    if (pthread_create(&t, NULL, pl_alloc_free_exit, ab) != 0) mu_setup_failed("pthread_create");
    pthread_join(t, NULL);
    *(uintptr_t *)mu_launder(ab[1]) = (uintptr_t)live;
    pl_drain_until(ab[1], 1, "poisoned link in an abandoned slab's free list");
}

int main(int argc, char **argv) {
    static const mu_variant_t v[] = {
        {"live", pl_live},   {"mangled", pl_mangled}, {"stack", pl_stack},   {"null", pl_null},         {"partial", pl_partial},
        {"cycle", pl_cycle}, {"remote", pl_remote}, {"abandoned", pl_abandoned},
    };
    return mu_dispatch(v, MU_COUNT(v), argc, argv);
}
