/* fuzz_trace: the trace decoder and converter under a fuzzer.
 *
 * Each input is decoded twice: as is (almost every mutation fails a checksum: the reader must say so
 * with an offset, never crash), and after hk_tf_fix_sums() repaired the checksums (so mutations reach
 * the record-level code: unknown kinds, absurd counts, gaps, EXT records, crash and end chunks). A
 * trace that decodes is converted to a replay program and to an op program, and the op program must
 * survive verify/'s binary codec round trip. Nothing is replayed: the allocator is the other fuzzers'.
 *
 * Built two ways: with -fsanitize=fuzzer (tools/trace/fuzz_trace.sh: clang, libFuzzer, ASan, UBSan), and
 * as a plain program (FUZZ_TRACE_MAIN) that runs every file or directory named on its command line: ctest
 * runs it over corpus/traces.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tconv.h"
#include "tfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_trace: %s\n", what);
        abort();
    }
}

static void one(const uint8_t *data, size_t size)
{
    hk_trace_file_t t;
    hk_tf_init(&t);
    char err[256] = "";
    if (hk_tf_parse(&t, data, size, 1, err, sizeof err) != 0) {
        must(strncmp(err, "offset ", 7) == 0 || strcmp(err, "out of memory") == 0, "an error without a byte offset");
        hk_tf_free(&t);
        return;
    }
    hk_rprog_t rp;
    if (hk_rprog_from_trace(&rp, &t, err, sizeof err) == 0) {
        size_t lines = 1;
        for (const char *c = t.text; c && *c; c++)
            lines += *c == '\n';
        must(rp.prog.n <= t.nrecords * 2 + lines,
             "more ops than records (each record gives at most one op plus a re-created one, each header line one SET)");
        for (size_t i = 0; i < rp.prog.n; i++) {
            const hk_op_t *op = &rp.prog.ops[i];
            if (hk_op_is_block_op(op->kind))
                must(op->id < rp.prog.id_count, "a block id beyond id_count");
        }
        hk_prog_t p, q;
        hk_prog_init(&p);
        hk_prog_init(&q);
        if (hk_rprog_to_prog(&rp, &p, NULL) == 0) {
            uint8_t *bin = NULL;
            size_t blen = 0;
            if (hk_prog_encode(&p, &bin, &blen) == 0) {
                char e2[256];
                must(hk_prog_decode(&q, bin, blen, e2, sizeof e2) == 0, "a converted program does not decode");
                must(hk_prog_equal(&p, &q), "a converted program does not survive the binary round trip");
                free(bin);
            }
        }
        hk_prog_free(&p);
        hk_prog_free(&q);
        hk_rprog_free(&rp);
    }
    /* the writer's image of what was read must read back the same */
    uint8_t *img = NULL;
    size_t ilen = 0;
    if (hk_tf_write(&t, &img, &ilen) == 0) {
        hk_trace_file_t u;
        hk_tf_init(&u);
        must(hk_tf_parse(&u, img, ilen, 0, err, sizeof err) == 0, "a written trace does not read back");
        size_t na = 0, nb = 0;
        for (size_t k = 0; k < t.nthr; k++)
            na += t.thr[k].n;
        for (size_t k = 0; k < u.nthr; k++)
            nb += u.thr[k].n;
        must(na == nb, "a written trace reads back with another record count");
        hk_tf_free(&u);
        free(img);
    }
    hk_tf_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size);
    if (size > 0 && size < (1u << 22)) {
        uint8_t *copy = malloc(size);
        if (copy) {
            memcpy(copy, data, size);
            hk_tf_fix_sums(copy, size);
            one(copy, size);
            free(copy);
        }
    }
    return 0;
}

#ifdef FUZZ_TRACE_MAIN
static int run_path(const char *path, unsigned *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return 1;
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) {
            perror(path);
            return 1;
        }
        struct dirent *e;
        int bad = 0;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            bad |= run_path(sub, count);
        }
        closedir(d);
        return bad;
    }
    uint8_t *data;
    size_t n;
    if (hk_tf_read_all(path, &data, &n) != 0) {
        perror(path);
        return 1;
    }
    LLVMFuzzerTestOneInput(data, n);
    /* and every truncation and a flipped byte at a few places: the reader must reject, never crash */
    for (size_t cut = 0; cut < n; cut += n / 64 + 1)
        LLVMFuzzerTestOneInput(data, cut);
    for (size_t at = 0; at < n; at += n / 64 + 1) {
        data[at] ^= 0x5a;
        LLVMFuzzerTestOneInput(data, n);
        data[at] ^= 0x5a;
    }
    free(data);
    (*count)++;
    return 0;
}

int main(int argc, char **argv)
{
    unsigned count = 0;
    int bad = 0;
    for (int i = 1; i < argc; i++)
        bad |= run_path(argv[i], &count);
    printf("fuzz_trace: %u inputs (each also truncated and with flipped bytes): no crash\n", count);
    return bad;
}
#endif
