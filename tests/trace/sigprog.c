/* sigprog: allocates on two threads, then dies the way its argument says, for the crash-dump test.
 *
 *   sigprog segv      writes through a wild pointer (SIGSEGV in the program, not in the allocator)
 *   sigprog abort     abort()
 *   sigprog handler   has its own SIGSEGV handler (prints, exits 42), installed by a constructor that runs
 *                     before the library's start-up: the recorder must give the signal back to it after
 *                     the dump. (A handler a program installs after start-up replaces the recorder's.)
 *   sigprog exit      exits normally
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hakmem.h"

static void *worker(void *arg)
{
    void *v[100];
    for (int r = 0; r < 20; r++) {
        for (int i = 0; i < 100; i++)
            v[i] = hak_malloc(16 + (size_t)i * 24);
        for (int i = 0; i < 100; i++)
            hak_free(v[i]);
    }
    return arg;
}

static void own_handler(int sig)
{
    static const char msg[] = "sigprog: own handler ran\n";
    (void)sig;
    if (write(1, msg, sizeof msg - 1) < 0) {
    }
    _exit(42);
}

/* Before hakmem's own constructor (default priority), so the recorder finds this handler installed. */
__attribute__((constructor(101))) static void install_early(void)
{
    const char *how = getenv("SIGPROG_HANDLER");
    if (how && !strcmp(how, "1"))
        signal(SIGSEGV, own_handler);
}

int main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "exit";
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    void *keep = hak_malloc(200000); /* a live large block at the crash */
    void *p = hak_realloc(hak_malloc(10), 300);
    hak_free(p);
    (void)keep;
    if (!strcmp(how, "segv") || !strcmp(how, "handler")) {
        volatile uintptr_t wild = 16; /* hidden from the compiler: a real wild store */
        *(volatile int *)wild = 1;
    }
    if (!strcmp(how, "abort"))
        abort();
    hak_free(keep);
    puts("sigprog: exit");
    return 0;
}
