/* stress/fork_alloc.c — fork while other threads allocate and free.
 *
 * --threads workers churn their own random-mixed working sets and now and then trade a block with
 * a shared pool. The main thread forks --forks times while they run. Each child (a single thread,
 * holding a copy of a heap that other threads were in the middle of changing):
 *   - checks and frees every pool block (allocated by parent threads that do not exist in the child),
 *   - runs its own random-mixed workload and checks it,
 *   - starts a thread that does the same (skipped under TSan, which does not support threads after
 *     a multi-threaded fork),
 *   - exits 0.
 * The parent waits for each child with a deadline: a child that hangs (an allocator lock held across
 * fork by another thread) is killed and reported, as is any non-zero exit or signal.
 * The pool is consistent at fork time because pthread_atfork takes its lock around fork().
 */
#include "alloc_api.h"
#include "common.h"
#include "mixed.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct fa_block {
    void *p;
    uint64_t tag;
    uint32_t size;
} fa_block_t;

#define FA_POOL 128

static hs_common_t fa_c;
static uint64_t fa_forks = 40, fa_child_steps = 20000, fa_ws = 256;
static double fa_deadline = 30.0;
static atomic_int fa_stop;
static pthread_mutex_t fa_pool_mu = PTHREAD_MUTEX_INITIALIZER;
static fa_block_t fa_pool[FA_POOL]; /* under fa_pool_mu */
static uint64_t fa_pool_seq;        /* under fa_pool_mu */

static void fa_prepare(void) { pthread_mutex_lock(&fa_pool_mu); }
static void fa_after(void) { pthread_mutex_unlock(&fa_pool_mu); }

static void fa_release(fa_block_t *b)
{
    if (b->p == NULL)
        return;
    hs_verify(b->p, b->size, b->tag, fa_c.stamp, "pooltag", b->tag);
    S_FREE(b->p);
    b->p = NULL;
}

static void *fa_worker(void *arg)
{
    const uint64_t id = (uint64_t)(uintptr_t)arg;
    hs_mixed_t m;
    hs_mixed_init(&m, fa_c.seed, id, fa_ws, 16, 4096, fa_c.stamp, 1);
    hs_rng_t r = hs_rng_make(fa_c.seed, 0x504F4F4Cull /* "POOL" */, id);
    uint64_t *ops = (uint64_t *)S_MALLOC(sizeof *ops);
    HS_CHECK_ALLOC(ops, sizeof *ops);
    *ops = 0;
    while (!atomic_load_explicit(&fa_stop, memory_order_relaxed)) {
        for (int k = 0; k < 64; k++)
            hs_mixed_step(&m);
        *ops += 64;
        /* Trade: put a fresh block in a random pool slot, free what was there. */
        fa_block_t nb;
        nb.size = (uint32_t)hs_rng_range(&r, 8, 2048);
        nb.p = S_MALLOC(nb.size);
        HS_CHECK_ALLOC(nb.p, nb.size);
        uint64_t x = hs_rng_below(&r, FA_POOL);
        pthread_mutex_lock(&fa_pool_mu);
        nb.tag = hs_tag(fa_c.seed, 0x504F4F4Cull, fa_pool_seq++);
        hs_stamp(nb.p, nb.size, nb.tag, fa_c.stamp);
        fa_block_t old = fa_pool[x];
        fa_pool[x] = nb;
        pthread_mutex_unlock(&fa_pool_mu);
        fa_release(&old);
        *ops += 2;
    }
    hs_mixed_destroy(&m);
    return ops;
}

static void *fa_child_thread(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    hs_mixed_t m;
    hs_mixed_init(&m, fa_c.seed, id, fa_ws, 16, 4096, fa_c.stamp, 1);
    for (uint64_t s = 0; s < fa_child_steps; s++)
        hs_mixed_step(&m);
    hs_mixed_destroy(&m);
    return NULL;
}

/* Runs in the child: single-threaded copy of the parent. */
static HS_NORETURN void fa_child(uint64_t iter)
{
    /* pthread_atfork released the pool lock; the pool is the child's alone now. */
    pthread_mutex_lock(&fa_pool_mu);
    for (int i = 0; i < FA_POOL; i++)
        fa_release(&fa_pool[i]);
    pthread_mutex_unlock(&fa_pool_mu);
    fa_child_thread((void *)(uintptr_t)(1000000 + iter * 2));
    if (!HS_TSAN) {
        pthread_t t;
        hs_thread_start(&t, fa_child_thread, (void *)(uintptr_t)(1000000 + iter * 2 + 1));
        hs_thread_join(t);
    }
    _exit(0);
}

static void fa_wait_child(pid_t pid, uint64_t iter)
{
    double end = hs_now() + fa_deadline;
    for (;;) {
        int st = 0;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                return;
            if (WIFEXITED(st))
                hs_fatal("fork %llu: child %d exited with status %d", (unsigned long long)iter,
                         (int)pid, WEXITSTATUS(st));
            hs_fatal("fork %llu: child %d killed by signal %d (%s)", (unsigned long long)iter,
                     (int)pid, WTERMSIG(st), strsignal(WTERMSIG(st)));
        }
        if (w < 0)
            hs_fatal("fork %llu: waitpid(%d): %s", (unsigned long long)iter, (int)pid, strerror(errno));
        if (hs_now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            hs_fatal("fork %llu: child %d still running after %.0f s (deadlock after fork?); killed",
                     (unsigned long long)iter, (int)pid, fa_deadline);
        }
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv)
{
    hs_init(&fa_c, "fork_alloc", argc, argv);
    if (fa_c.short_mode) {
        fa_forks = fa_c.slow ? (HS_TSAN ? 4 : 10) : 30;
        fa_child_steps = fa_c.slow ? 2000 : 20000;
    }
    const hs_opt_t opts[] = {
        {"forks", HS_OPT_U64, &fa_forks, "fork iterations (default 40, --short 30)"},
        {"child-steps", HS_OPT_U64, &fa_child_steps, "random-mixed steps per child thread (default 20000)"},
        {"ws", HS_OPT_U64, &fa_ws, "working-set slots of workers and children (default 256)"},
        {"deadline", HS_OPT_DOUBLE, &fa_deadline, "seconds before a child counts as hung (default 30)"},
        {NULL, HS_OPT_FLAG, NULL, NULL}};
    hs_parse(&fa_c, argc, argv, opts);
    if (fa_ws == 0 || fa_forks == 0) {
        fprintf(stderr, "fork_alloc: need ws > 0 and forks > 0\n");
        return 2;
    }
    if (pthread_atfork(fa_prepare, fa_after, fa_after) != 0)
        hs_fatal("pthread_atfork failed");

    const uint64_t nw = fa_c.threads;
    pthread_t tids[nw];
    double t0 = hs_now();
    for (uint64_t t = 0; t < nw; t++)
        hs_thread_start(&tids[t], fa_worker, (void *)(uintptr_t)t);
    for (uint64_t i = 0; i < fa_forks; i++) {
        struct timespec ts = {0, 2000000}; /* let the workers get well into their loops */
        nanosleep(&ts, NULL);
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            hs_fatal("fork %llu: %s", (unsigned long long)i, strerror(errno));
        if (pid == 0)
            fa_child(i);
        fa_wait_child(pid, i);
    }
    atomic_store(&fa_stop, 1);
    uint64_t ops = 0;
    for (uint64_t t = 0; t < nw; t++) {
        void *ret = NULL;
        if (pthread_join(tids[t], &ret) != 0 || ret == NULL)
            hs_fatal("worker %llu did not finish", (unsigned long long)t);
        ops += *(uint64_t *)ret;
        S_FREE(ret);
    }
    for (int i = 0; i < FA_POOL; i++)
        fa_release(&fa_pool[i]);
    double secs = hs_now() - t0;

    char extra[64];
    snprintf(extra, sizeof extra, " forks=%llu", (unsigned long long)fa_forks);
    hs_report(&fa_c, ops, secs, extra);
    return 0;
}
