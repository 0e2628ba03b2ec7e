/* prog_run — runs a real program as a benchmark workload (bench/run.sh's program rows).
 *
 * usage: prog_run --name NAME [--stdin FILE] -- COMMAND [ARGS...]
 *
 * Runs COMMAND (the allocator under test comes in through LD_PRELOAD, which the child inherits) with
 * its standard output read through a pipe, and prints one line:
 *
 *   RESULT name=NAME seconds=S secs=S peak_rss_kb=K out_bytes=B out_hash=H
 *
 * seconds: wall-clock time from fork to exit; peak_rss_kb: the largest resident set of the
 * command and its own children (getrusage RUSAGE_CHILDREN); out_hash: FNV-1a of everything it wrote
 * to stdout, so that run.sh can check that every allocator made the program print the same bytes.
 * Exits non-zero (and prints no RESULT) when the command cannot be run, is killed by a signal or
 * exits non-zero: its stderr passes through, so the run's log shows why. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void usage(void) {
    fprintf(stderr, "usage: prog_run --name NAME [--stdin FILE] -- COMMAND [ARGS...]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *name = NULL, *in = NULL;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) name = argv[++i];
        else if (strcmp(argv[i], "--stdin") == 0 && i + 1 < argc) in = argv[++i];
        else usage();
    }
    if (name == NULL || i >= argc) usage();

    int fds[2];
    if (pipe(fds) != 0) {
        perror("prog_run: pipe");
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("prog_run: fork");
        return 1;
    }
    if (pid == 0) {
        if (in != NULL) {
            int fd = open(in, O_RDONLY);
            if (fd < 0 || dup2(fd, 0) < 0) {
                fprintf(stderr, "prog_run: %s: %s\n", in, strerror(errno));
                _exit(127);
            }
            close(fd);
        }
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[i], argv + i);
        fprintf(stderr, "prog_run: cannot run %s: %s\n", argv[i], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    uint64_t hash = 0xcbf29ce484222325ull, bytes = 0;
    unsigned char buf[1 << 16];
    for (;;) {
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (ssize_t k = 0; k < n; k++) hash = (hash ^ buf[k]) * 0x100000001b3ull;
        bytes += (uint64_t)n;
    }
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror("prog_run: waitpid");
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "prog_run: %s: killed by signal %d (%s)\n", name, WTERMSIG(status), strsignal(WTERMSIG(status)));
        return 1;
    }
    if (WEXITSTATUS(status) != 0) {
        fprintf(stderr, "prog_run: %s: exit status %d\n", name, WEXITSTATUS(status));
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("RESULT name=%s seconds=%.4f secs=%.4f peak_rss_kb=%ld out_bytes=%" PRIu64 " out_hash=%016" PRIx64 "\n", name,
           secs, secs, ru.ru_maxrss, bytes, hash);
    return 0;
}
