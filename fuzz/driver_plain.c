/* The plain driver: a main for the harnesses without a fuzzing engine (gcc or clang, any preset).
 *
 *   fuzz_<h> FILE|DIR ...                   replay files (a directory: its regular files, sorted;
 *                                           names starting with '.' or README, and *.md, are skipped)
 *   fuzz_<h> --random N [--seed S] [--max-len L] [FILE|DIR ...]
 *                                           N seeded pseudo-random inputs: mutations of the given files,
 *                                           or fresh bytes when none are given (a short smoke fuzz that
 *                                           runs in every preset, including the TSan one)
 *   fuzz_<h> --random N --seed S --only I --save OUT [FILE|DIR ...]
 *                                           writes random input #I to OUT (to keep a crash it found)
 *
 * Exit status: 0 when every input ran clean; a failed check aborts (the harness prints the failure and
 * the input's name first); 77 when there was nothing to run (ctest SKIP_RETURN_CODE); 2 on usage errors.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fz.h"

#define FZ_MAX_INPUT (1u << 20)

typedef struct buf {
    uint8_t *p;
    size_t n;
} buf_t;

static const char *g_prog = "fuzz";
static const char *g_current;          /* file being replayed */
static unsigned long long g_seed, g_index, g_count;
static int g_random_mode;

/* ---- what is running (printed when a check fails or a signal arrives) ------------------------- */
static void describe_input(void)
{
    if (g_random_mode)
        fprintf(stderr,
                "fuzz-input: random input #%llu of --seed %llu; keep it with:\n"
                "  %s --random %llu --seed %llu --only %llu --save crash.bin <same corpus arguments>\n",
                g_index, g_seed, g_prog, g_count, g_seed, g_index);
    else if (g_current)
        fprintf(stderr, "fuzz-input: %s\n", g_current);
    fflush(stderr);
}

static void on_signal(int sig)
{
    describe_input();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- inputs ---------------------------------------------------------------------------------------- */
static int read_file(const char *path, buf_t *b)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    b->p = malloc(FZ_MAX_INPUT);
    b->n = b->p ? fread(b->p, 1, FZ_MAX_INPUT, f) : 0;
    int err = ferror(f) || !b->p;
    fclose(f);
    if (err) {
        free(b->p);
        b->p = NULL;
        return -1;
    }
    uint8_t *q = realloc(b->p, b->n ? b->n : 1); /* keep only what was read */
    if (q)
        b->p = q;
    return 0;
}

static int skip_name(const char *n)
{
    size_t l = strlen(n);
    return n[0] == '.' || strncmp(n, "README", 6) == 0 || (l > 3 && strcmp(n + l - 3, ".md") == 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends the paths named by arg (a file, or a directory's files) to *list. */
static int collect(const char *arg, char ***list, size_t *n, size_t *cap)
{
    struct stat st;
    if (stat(arg, &st) != 0) {
        fprintf(stderr, "%s: %s: %s\n", g_prog, arg, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t nn = 0, nc = 0;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(arg);
        if (!d) {
            fprintf(stderr, "%s: %s: %s\n", g_prog, arg, strerror(errno));
            return -1;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (skip_name(e->d_name))
                continue;
            char *path;
            if (asprintf(&path, "%s/%s", arg, e->d_name) < 0)
                break;
            struct stat fs;
            if (stat(path, &fs) != 0 || !S_ISREG(fs.st_mode)) {
                free(path);
                continue;
            }
            if (nn == nc) {
                nc = nc ? nc * 2 : 64;
                names = realloc(names, nc * sizeof *names);
            }
            names[nn++] = path;
        }
        closedir(d);
        qsort(names, nn, sizeof *names, cmp_str);
    } else {
        names = malloc(sizeof *names);
        names[0] = strdup(arg);
        nn = 1;
    }
    for (size_t i = 0; i < nn; i++) {
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            *list = realloc(*list, *cap * sizeof **list);
        }
        (*list)[(*n)++] = names[i];
    }
    free(names);
    return 0;
}

/* ---- seeded mutations --------------------------------------------------------------------------- */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Input #index of a seed: a function of (seed, index, corpus) only, so --only regenerates it. */
static size_t make_input(uint64_t seed, uint64_t index, const buf_t *corpus, size_t nc, size_t max_len, uint8_t *out)
{
    uint64_t s = seed * 0x2545F4914F6CDD1Dull ^ (index + 1) * 0x9E3779B97F4A7C15ull;
    size_t n;
    if (nc == 0 || splitmix64(&s) % 8 == 0) {
        n = 1 + splitmix64(&s) % max_len;
        for (size_t i = 0; i < n; i++)
            out[i] = (uint8_t)splitmix64(&s);
        return n;
    }
    const buf_t *src = &corpus[splitmix64(&s) % nc];
    n = src->n < max_len ? src->n : max_len;
    memcpy(out, src->p, n);
    unsigned edits = 1 + (unsigned)(splitmix64(&s) % 8);
    for (unsigned e = 0; e < edits; e++) {
        uint64_t r = splitmix64(&s);
        size_t at = n ? (size_t)(splitmix64(&s) % n) : 0;
        switch (r % 6) {
        case 0: /* flip a bit */
            if (n) out[at] ^= (uint8_t)(1u << (r >> 8) % 8);
            break;
        case 1: /* set a byte */
            if (n) out[at] = (uint8_t)(r >> 8);
            break;
        case 2: /* insert a few random bytes */
            if (n < max_len) {
                size_t k = 1 + (r >> 8) % 8;
                if (k > max_len - n) k = max_len - n;
                memmove(out + at + k, out + at, n - at);
                for (size_t i = 0; i < k; i++) out[at + i] = (uint8_t)splitmix64(&s);
                n += k;
            }
            break;
        case 3: /* erase a range */
            if (n > 1) {
                size_t k = 1 + (r >> 8) % (n - at);
                memmove(out + at, out + at + k, n - at - k);
                n -= k;
            }
            break;
        case 4: /* duplicate a chunk */
            if (n && n < max_len) {
                size_t k = 1 + (r >> 8) % (n - at);
                if (k > max_len - n) k = max_len - n;
                memmove(out + at + k, out + at, n - at);
                n += k;
            }
            break;
        default: { /* splice a chunk of another input */
            const buf_t *o = &corpus[(r >> 8) % nc];
            if (o->n && n < max_len) {
                size_t from = (size_t)(splitmix64(&s) % o->n), k = 1 + (r >> 24) % (o->n - from);
                if (k > max_len - n) k = max_len - n;
                memmove(out + at + k, out + at, n - at);
                memcpy(out + at, o->p + from, k);
                n += k;
            }
            break;
        }
        }
    }
    return n;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: %s FILE|DIR ...\n"
            "       %s --random N [--seed S] [--max-len L] [--only I --save OUT] [FILE|DIR ...]\n",
            g_prog, g_prog);
    exit(2);
}

int main(int argc, char **argv)
{
    g_prog = argv[0];
    unsigned long long count = 0, seed = 1, only = ~0ull;
    size_t max_len = 512;
    const char *save = NULL;
    char **paths = NULL;
    size_t np = 0, cap = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--random") == 0 && i + 1 < argc) {
            count = strtoull(argv[++i], NULL, 0);
            g_random_mode = 1;
        } else if (strcmp(a, "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(a, "--max-len") == 0 && i + 1 < argc) {
            max_len = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(a, "--only") == 0 && i + 1 < argc) {
            only = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(a, "--save") == 0 && i + 1 < argc) {
            save = argv[++i];
        } else if (a[0] == '-' && a[1] == '-') {
            usage();
        } else if (collect(a, &paths, &np, &cap) != 0) {
            return 2;
        }
    }
    if (max_len == 0 || max_len > FZ_MAX_INPUT || (save && only == ~0ull))
        usage();
    if (!g_random_mode && np == 0) {
        fprintf(stderr, "%s: no input files (nothing to replay): skipped\n", g_prog);
        return 77;
    }
    signal(SIGSEGV, on_signal);
    signal(SIGBUS, on_signal);
    signal(SIGILL, on_signal);
    signal(SIGFPE, on_signal);
    fz_crash_hook = describe_input;
    LLVMFuzzerInitialize(&argc, &argv);

    buf_t *files = calloc(np ? np : 1, sizeof *files);
    for (size_t i = 0; i < np; i++) {
        if (read_file(paths[i], &files[i]) != 0) {
            fprintf(stderr, "%s: cannot read %s\n", g_prog, paths[i]);
            return 2;
        }
    }
    int rc = 0;
    if (!g_random_mode) {
        for (size_t i = 0; i < np; i++) {
            g_current = paths[i];
            LLVMFuzzerTestOneInput(files[i].p, files[i].n);
        }
        g_current = NULL;
        fprintf(stderr, "%s: %zu input(s) replayed, no failure\n", g_prog, np);
        goto out;
    }
    uint8_t *in = malloc(FZ_MAX_INPUT);
    g_seed = seed;
    g_count = count;
    for (unsigned long long k = 0; k < count; k++) {
        if (only != ~0ull && k != only)
            continue;
        g_index = k;
        size_t n = make_input(seed, k, files, np, max_len, in);
        if (save) {
            FILE *f = fopen(save, "wb");
            if (!f || fwrite(in, 1, n, f) != n || fclose(f) != 0) {
                fprintf(stderr, "%s: cannot write %s\n", g_prog, save);
                rc = 2;
            } else {
                fprintf(stderr, "%s: random input #%llu of seed %llu saved to %s (%zu bytes)\n", g_prog, k, seed, save, n);
            }
            break;
        }
        LLVMFuzzerTestOneInput(in, n);
    }
    if (!save)
        fprintf(stderr, "%s: %llu random input(s) (seed %llu, %zu corpus file(s)), no failure\n", g_prog,
                only != ~0ull ? 1ull : count, seed, np);
    free(in);
out:
    for (size_t i = 0; i < np; i++) {
        free(files[i].p);
        free(paths[i]);
    }
    free(files);
    free(paths);
    return rc;
}
