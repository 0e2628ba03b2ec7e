/* Double free: a block freed twice, in the shapes real bugs take.
 *
 *   immediate      free(p); free(p)
 *   delayed        free(p), then eight other blocks of its class, then free(p)
 *   neighbours     free(p); its neighbours are freed, reused and rewritten; then free(p)
 *   mid            immediate, for a mid-class block (3000 B)
 *   thread         free(p) in main, free(p) again in another thread (its free goes the remote way)
 *   thread_first   another thread frees p (pushed on the slab's remote stack), then main frees it
 *   thread_exit    a thread frees p and exits (its cache is flushed to the slab, the slab abandoned
 *                  with a live neighbour), then main frees p
 *   released_slab  as thread_exit, but p was the slab's only block: the slab itself is given back,
 *                  so the second free lands on an unused slab descriptor
 *   large          1 MiB block: free(p); free(p)
 *   large_delayed  1 MiB block freed, then 100 other large blocks allocated and freed, then free(p)
 *   realloc_zero   free(p); realloc(p, 0) (which frees)
 *   after_realloc  q = realloc(p, 4000) moves the block (p is freed by it); then free(p)
 *   large_after_realloc  q = realloc(p, 8 MiB) moves a 1 MiB block (mremap); then free(p)
 *   slab_reused    a thread frees p and exits, so p's slab goes back to its region; the main thread
 *                  gets a new slab of the same class at the same place, and a live block q == p;
 *                  then the stale free(p). Without a quarantine this frees q (a documented limit):
 *                  the program shows the consequence, q handed out again while live
 *   hole           lean mode: p's page was given back while its slab is in use (all the page's blocks
 *                  free, the slab's others live; misuse.h mu_hole_block), then free(p)
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "misuse.h"

static void df_immediate(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(24);
    if (p == NULL) mu_setup_failed("malloc");
    memset(p, 1, 24);
    mu_note_ptr(p);
    MU_FREE(p);
    MU_FREE(mu_launder(p));
    mu_missed("second free of a 24-byte block");
}

static void df_delayed(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(24), *q[8];
    for (int i = 0; i < 8; i++) q[i] = MU_MALLOC(24);
    mu_note_ptr(p);
    MU_FREE(p);
    for (int i = 0; i < 8; i++) MU_FREE(q[i]);
    MU_FREE(mu_launder(p));
    mu_missed("second free after eight other frees of the class");
}

static void df_neighbours(int argc, char **argv) {
    (void)argc, (void)argv;
    /* Consecutive allocations of one class are neighbours in a fresh slab; whether or not they are,
     * the point is that the blocks around p are freed, handed out again and fully written. */
    char *a = MU_MALLOC(40), *p = MU_MALLOC(40), *c = MU_MALLOC(40);
    mu_note_ptr(p);
    MU_FREE(p);
    for (int round = 0; round < 4; round++) {
        memset(a, 0x11 * round, MU_USABLE(a));
        memset(c, 0x22 * round, MU_USABLE(c));
        MU_FREE(c);
        MU_FREE(a);
        c = MU_MALLOC(40);
        a = MU_MALLOC(40);
        if (a == p || c == p) mu_setup_failed("the freed block was handed out again (LIFO cache expected)");
    }
    MU_FREE(mu_launder(p));
    mu_missed("second free after the neighbours were reused");
}

static void df_mid(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(3000);
    memset(p, 2, 3000);
    mu_note_ptr(p);
    MU_FREE(p);
    MU_FREE(mu_launder(p));
    mu_missed("second free of a 3000-byte block");
}

static void *df_free_thread(void *arg) {
    MU_FREE(arg);
    return NULL;
}

static void df_in_thread(void *p) {
    pthread_t t;
    if (pthread_create(&t, NULL, df_free_thread, p) != 0) mu_setup_failed("pthread_create");
    pthread_join(t, NULL);
}

static void df_thread(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(24);
    mu_note_ptr(p);
    MU_FREE(p);
    df_in_thread(mu_launder(p));
    mu_missed("second free from another thread");
}

static void df_thread_first(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(24);
    mu_note_ptr(p);
    df_in_thread(p);
    MU_FREE(mu_launder(p));
    mu_missed("free in main after a remote free");
}

typedef struct df_exit_arg {
    size_t size;
    int keep_neighbour;
    void *p;
} df_exit_arg_t;

static void *df_exit_thread(void *arg) {
    df_exit_arg_t *a = arg;
    void *keep = a->keep_neighbour ? MU_MALLOC(a->size) : NULL; /* stays live: the slab is abandoned */
    a->p = MU_MALLOC(a->size);
    mu_note_ptr(a->p);
    MU_FREE(a->p);
    (void)keep;
    return NULL;
}

static void df_after_exit(size_t size, int keep_neighbour) {
    df_exit_arg_t a = {size, keep_neighbour, NULL};
    pthread_t t;
    if (pthread_create(&t, NULL, df_exit_thread, &a) != 0) mu_setup_failed("pthread_create");
    pthread_join(t, NULL);
    MU_FREE(mu_launder(a.p));
}

static void df_thread_exit(int argc, char **argv) {
    (void)argc, (void)argv;
    df_after_exit(24, 1);
    mu_missed("second free after the freeing thread exited");
}

static void df_released_slab(int argc, char **argv) {
    (void)argc, (void)argv;
    df_after_exit(40000, 0);
    mu_missed("second free after the block's slab was given back");
}

static void df_large(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(1u << 20);
    p[0] = 1;
    mu_note_ptr(p);
    MU_FREE(p);
    MU_FREE(mu_launder(p));
    mu_missed("second free of a 1 MiB block");
}

static void df_large_delayed(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(1u << 20);
    p[0] = 1;
    mu_note_ptr(p);
    MU_FREE(p);
    /* Other large blocks come and go; each stays under half of p's size (BigCache reuses a mapping
     * only within a factor 2), so none takes p's mapping back and p stays a freed pointer. */
    for (int i = 0; i < 100; i++) {
        char *q = MU_MALLOC(200000 + (size_t)i * 2048);
        if (q == NULL) mu_setup_failed("malloc");
        q[0] = 1;
        MU_FREE(q);
    }
    MU_FREE(mu_launder(p));
    mu_missed("second free of a 1 MiB block after 100 other large frees");
}

static void df_realloc_zero(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(24);
    mu_note_ptr(p);
    MU_FREE(p);
    void *r = MU_REALLOC(mu_launder(p), 0);
    (void)r;
    mu_missed("realloc(p, 0) of a freed block");
}

static void df_after_realloc(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(24);
    memset(p, 4, 24);
    char *q = MU_REALLOC(p, 4000);
    if (q == NULL) mu_setup_failed("realloc");
    if (q == p) mu_setup_failed("realloc from 24 to 4000 bytes stayed in place");
    mu_note_ptr(p);
    MU_FREE(mu_launder(p));
    mu_missed("free of the old pointer after realloc moved the block");
}

static void df_large_after_realloc(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = MU_MALLOC(1u << 20);
    p[0] = 1;
    char *q = MU_REALLOC(p, 8u << 20);
    if (q == NULL) mu_setup_failed("realloc");
    if (q == p) mu_setup_failed("realloc from 1 MiB to 8 MiB grew in place");
    q[0] = 2;
    mu_note_ptr(p);
    MU_FREE(mu_launder(p));
    mu_missed("free of the old pointer after realloc moved a large block");
}

static void df_slab_reused(int argc, char **argv) {
    (void)argc, (void)argv;
    df_exit_arg_t a = {40000, 0, NULL};
    pthread_t t;
    if (pthread_create(&t, NULL, df_exit_thread, &a) != 0) mu_setup_failed("pthread_create");
    pthread_join(t, NULL);
    /* the region keeps the freed units; a new slab of the class takes them again */
    char *q = NULL;
    for (int n = 0; n < 64 && (q = MU_MALLOC(40000)) != a.p; n++) {} /* the others stay live */
    if (q != a.p) mu_setup_failed("the stale pointer's memory was not handed out again in 64 allocations");
    memset(q, 7, 40000);
    MU_FREE(mu_launder(a.p)); /* the stale double free: frees q */
    char *r = MU_MALLOC(40000);
    if (r == q) mu_missed("stale double free into a reused slab freed a live block, handed out again");
    mu_missed("stale double free into a reused slab went through");
}

static void df_hole(int argc, char **argv) {
    (void)argc, (void)argv;
    char *p = mu_hole_block();
    mu_note_ptr(p);
    MU_FREE(mu_launder(p));
    mu_missed("second free of a block in a page lean mode gave back");
}

int main(int argc, char **argv) {
    static const mu_variant_t v[] = {
        {"immediate", df_immediate},   {"delayed", df_delayed},         {"neighbours", df_neighbours},
        {"mid", df_mid},               {"thread", df_thread},           {"thread_first", df_thread_first},
        {"thread_exit", df_thread_exit}, {"released_slab", df_released_slab}, {"large", df_large},
        {"large_delayed", df_large_delayed}, {"realloc_zero", df_realloc_zero},
        {"after_realloc", df_after_realloc}, {"large_after_realloc", df_large_after_realloc},
        {"slab_reused", df_slab_reused}, {"hole", df_hole},
    };
    return mu_dispatch(v, MU_COUNT(v), argc, argv);
}
