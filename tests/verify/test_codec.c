/* The three forms of an op program: round trips, and hostile input to the binary and text decoders. */
#include "test_runner.h" /* criterion, or its compatible runner under TSan */
#include <string.h>
#include <unistd.h>

#include "vt_util.h"

/* ---- fuzz bytes ------------------------------------------------------------------------------- */

Test(fuzz_codec, any_bytes_decode_to_a_valid_program)
{
    uint64_t s = 1;
    uint8_t buf[512];
    hk_prog_t p, q;
    hk_prog_init(&p);
    hk_prog_init(&q);
    for (int it = 0; it < 2000; it++) {
        size_t n = vt_next(&s) % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)vt_next(&s);
        cr_assert_eq(hk_prog_from_fuzz(&p, buf, n), 0);
        cr_assert(p.n <= n, "every op consumes at least one byte");
        for (size_t i = 0; i < p.n; i++) {
            const char *why = NULL;
            cr_assert_eq(hk_op_validate(&p.ops[i], &why), 0, "op %zu invalid: %s", i, why);
            if (hk_op_is_block_op(p.ops[i].kind))
                cr_assert_lt(p.ops[i].id, HK_FUZZ_IDS);
        }
        /* Canonical re-encoding decodes to the same program. */
        uint8_t *e;
        size_t elen;
        cr_assert_eq(hk_prog_to_fuzz(&p, &e, &elen), 0);
        cr_assert_eq(hk_prog_from_fuzz(&q, e, elen), 0);
        cr_assert(hk_prog_equal(&p, &q), "iteration %d: re-encoded program differs", it);
        free(e);
    }
    hk_prog_free(&p);
    hk_prog_free(&q);
}

Test(fuzz_codec, programs_round_trip)
{
    uint64_t s = 2;
    hk_prog_t p, q;
    hk_prog_init(&p);
    hk_prog_init(&q);
    for (int it = 0; it < 500; it++) {
        vt_random_prog(&p, &s, 1 + vt_next(&s) % 200, 1);
        uint8_t *e;
        size_t elen;
        cr_assert_eq(hk_prog_to_fuzz(&p, &e, &elen), 0, "iteration %d: not encodable", it);
        cr_assert_eq(hk_prog_from_fuzz(&q, e, elen), 0);
        cr_assert(hk_prog_equal(&p, &q), "iteration %d: fuzz round trip differs", it);
        free(e);
    }
    hk_prog_free(&p);
    hk_prog_free(&q);
}

Test(fuzz_codec, sizes_hit_the_interesting_values)
{
    /* The decoder's bias is the point of it: over random inputs we must see 0, class boundaries +-1,
     * impossible sizes, and large blocks, but large ones rarely. */
    uint64_t s = 3;
    uint8_t buf[256];
    hk_prog_t p;
    hk_prog_init(&p);
    size_t zero = 0, b1023 = 0, b1025 = 0, impossible = 0, large = 0, sizes = 0;
    for (int it = 0; it < 3000; it++) {
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (uint8_t)vt_next(&s);
        hk_prog_from_fuzz(&p, buf, sizeof buf);
        for (size_t i = 0; i < p.n; i++) {
            if (!hk_op_allocates(p.ops[i].kind))
                continue;
            uint64_t z = p.ops[i].size;
            sizes++;
            zero += z == 0;
            b1023 += z == 1023;
            b1025 += z == 1025;
            impossible += z >= HK_OP_SIZE_HUGE;
            large += z > 65536 && z < HK_OP_SIZE_HUGE;
        }
    }
    cr_assert_gt(zero, 0);
    cr_assert_gt(b1023, 0);
    cr_assert_gt(b1025, 0);
    cr_assert_gt(impossible, 0);
    cr_assert_gt(large, 0);
    cr_assert_lt(large * 20, sizes, "large requests must stay rare (%zu of %zu)", large, sizes);
    hk_prog_free(&p);
}

Test(fuzz_codec, unencodable_programs_are_refused)
{
    hk_prog_t p;
    hk_prog_init(&p);
    hk_op_t op = {.kind = HK_OP_ALLOC, .id = HK_FUZZ_IDS, .size = 8};
    hk_prog_push(&p, op);
    uint8_t *e;
    size_t n;
    cr_assert_eq(hk_prog_to_fuzz(&p, &e, &n), -1);
    hk_prog_free(&p);
}

/* ---- binary ----------------------------------------------------------------------------------- */

Test(binary_codec, round_trip)
{
    uint64_t s = 4;
    hk_prog_t p, q;
    hk_prog_init(&p);
    hk_prog_init(&q);
    char err[256];
    for (int it = 0; it < 300; it++) {
        vt_random_prog(&p, &s, vt_next(&s) % 300, 0);
        uint8_t *e;
        size_t n;
        cr_assert_eq(hk_prog_encode(&p, &e, &n), 0);
        cr_assert_eq(memcmp(e, "HKOP", 4), 0);
        cr_assert_eq(hk_prog_decode(&q, e, n, err, sizeof err), 0, "iteration %d: %s", it, err);
        cr_assert(hk_prog_equal(&p, &q));
        cr_assert_eq(q.id_count, p.id_count);
        cr_assert_eq(q.thread_count, p.thread_count);
        free(e);
    }
    hk_prog_free(&p);
    hk_prog_free(&q);
}

Test(binary_codec, known_layout)
{
    /* The layout is a contract with recorders written elsewhere (docs/op-program.md). */
    hk_prog_t p;
    hk_prog_init(&p);
    hk_op_t a = {.kind = HK_OP_ALLOC, .id = 3, .size = 300};
    hk_op_t f = {.kind = HK_OP_FREE, .id = 3};
    hk_op_t c = {.kind = HK_OP_CHECK};
    hk_prog_push(&p, a);
    hk_prog_push(&p, f);
    hk_prog_push(&p, c);
    uint8_t *e;
    size_t n;
    cr_assert_eq(hk_prog_encode(&p, &e, &n), 0);
    static const uint8_t want[] = {'H', 'K', 'O', 'P', 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0,
                                   0, 3, 0xAC, 0x02, /* alloc 3 300 */
                                   6, 3,             /* free 3 */
                                   10};              /* check */
    cr_assert_eq(n, sizeof want + 4);
    cr_assert_eq(memcmp(e, want, sizeof want), 0);
    uint32_t crc = hk_op_crc32(0, want, sizeof want);
    cr_assert_eq(e[n - 4] | e[n - 3] << 8 | e[n - 2] << 16 | (uint32_t)e[n - 1] << 24, crc);
    /* CRC-32 check value of the standard ("123456789" -> 0xCBF43926). */
    cr_assert_eq(hk_op_crc32(0, "123456789", 9), 0xCBF43926u);
    free(e);
    hk_prog_free(&p);
}

static void assert_offset_error(const char *err, size_t n)
{
    cr_assert(strncmp(err, "offset ", 7) == 0, "error must start with a byte offset: '%s'", err);
    char *end;
    unsigned long off = strtoul(err + 7, &end, 10);
    cr_assert(end != err + 7 && *end == ':', "bad error format: '%s'", err);
    cr_assert_leq(off, n, "offset %lu beyond the input (%zu bytes): '%s'", off, n, err);
}

Test(binary_codec, every_truncation_is_rejected_with_an_offset)
{
    uint64_t s = 5;
    hk_prog_t p, q;
    hk_prog_init(&p);
    hk_prog_init(&q);
    vt_random_prog(&p, &s, 120, 0);
    uint8_t *e;
    size_t n;
    cr_assert_eq(hk_prog_encode(&p, &e, &n), 0);
    char err[256];
    for (size_t cut = 0; cut < n; cut++) {
        /* An exact-size heap copy: a read past the end is a sanitizer error, not a silent pass. */
        uint8_t *t = malloc(cut ? cut : 1);
        memcpy(t, e, cut);
        err[0] = 0;
        cr_assert_eq(hk_prog_decode(&q, t, cut, err, sizeof err), -1, "truncation at %zu accepted", cut);
        assert_offset_error(err, cut);
        free(t);
    }
    free(e);
    hk_prog_free(&p);
    hk_prog_free(&q);
}

Test(binary_codec, every_flipped_byte_is_rejected_with_an_offset)
{
    uint64_t s = 6;
    hk_prog_t p, q;
    hk_prog_init(&p);
    hk_prog_init(&q);
    vt_random_prog(&p, &s, 80, 0);
    uint8_t *e;
    size_t n;
    cr_assert_eq(hk_prog_encode(&p, &e, &n), 0);
    uint8_t *t = malloc(n);
    char err[256];
    static const uint8_t masks[] = {0x01, 0x80, 0xFF, 0x5A};
    for (size_t i = 0; i < n; i++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            memcpy(t, e, n);
            t[i] ^= masks[m];
            err[0] = 0;
            /* CRC-32 catches every error burst of up to 32 bits, so no single-byte change can pass. */
            cr_assert_eq(hk_prog_decode(&q, t, n, err, sizeof err), -1, "flip of byte %zu (^0x%02x) accepted",
                         i, masks[m]);
            assert_offset_error(err, n);
        }
    }
    free(t);
    free(e);
    hk_prog_free(&p);
    hk_prog_free(&q);
}

Test(binary_codec, garbage_never_crashes)
{
    uint64_t s = 7;
    hk_prog_t q;
    hk_prog_init(&q);
    char err[256];
    for (int it = 0; it < 3000; it++) {
        size_t n = vt_next(&s) % 96;
        uint8_t *t = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++)
            t[i] = (uint8_t)vt_next(&s);
        if (n >= 8 && it % 2) { /* a valid header makes the decoder go deeper */
            memcpy(t, "HKOP\x01\x00\x00\x00", 8);
            if (n >= 16)
                memset(t + 9, 0, 7);
        }
        if (hk_prog_decode(&q, t, n, err, sizeof err) != 0)
            assert_offset_error(err, n);
        free(t);
    }
    hk_prog_free(&q);
}

Test(binary_codec, specific_errors)
{
    hk_prog_t q;
    hk_prog_init(&q);
    char err[256];
    uint8_t bad_magic[20] = "HKOX";
    cr_assert_eq(hk_prog_decode(&q, bad_magic, sizeof bad_magic, err, sizeof err), -1);
    cr_assert_str_eq(err, "offset 0: bad magic (not an HKOP binary program)");
    uint8_t v2[20] = {'H', 'K', 'O', 'P', 2};
    cr_assert_eq(hk_prog_decode(&q, v2, sizeof v2, err, sizeof err), -1);
    cr_assert(strncmp(err, "offset 4: unsupported version 2", 31) == 0, "%s", err);
    /* Count claims more ops than bytes exist: refused before any allocation. */
    uint8_t big[20] = {'H', 'K', 'O', 'P', 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
    cr_assert_eq(hk_prog_decode(&q, big, sizeof big, err, sizeof err), -1);
    cr_assert(strncmp(err, "offset 8: op count", 18) == 0, "%s", err);
    /* A non-canonical varint (0x80 0x00 = 0) is refused: one program, one encoding. */
    uint8_t nc[16 + 3 + 4] = {'H', 'K', 'O', 'P', 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 6, 0x80, 0x00};
    uint32_t crc = hk_op_crc32(0, nc, 19);
    memcpy(nc + 19, &crc, 4);
    cr_assert_eq(hk_prog_decode(&q, nc, sizeof nc, err, sizeof err), -1);
    cr_assert_str_eq(err, "offset 17: id: overlong varint (not canonical)");
    hk_prog_free(&q);
}

/* ---- text ------------------------------------------------------------------------------------- */

Test(text_codec, round_trip)
{
    uint64_t s = 8;
    hk_prog_t p, q;
    hk_prog_init(&p);
    hk_prog_init(&q);
    char err[256];
    for (int it = 0; it < 300; it++) {
        vt_random_prog(&p, &s, vt_next(&s) % 300, 0);
        size_t len;
        char *txt = hk_prog_to_text(&p, &len);
        cr_assert_not_null(txt);
        cr_assert_eq(hk_prog_parse_text(&q, txt, len, err, sizeof err), 0, "iteration %d: %s", it, err);
        cr_assert(hk_prog_equal(&p, &q), "iteration %d: text round trip differs", it);
        free(txt);
    }
    hk_prog_free(&p);
    hk_prog_free(&q);
}

Test(text_codec, syntax)
{
    const char *src = "# a program\n"
                      "alloc 3 128   # trailing comment\n"
                      "\n"
                      "  calloc 1 4 0x10\r\n"
                      "thread 2\n"
                      "memalign 7 64 1K\n"
                      "set tiny_cap 64\n"
                      "set mode balanced\n"
                      "realloc 3 2M\n"
                      "usable 3\n"
                      "free 3\n"
                      "check";
    hk_prog_t p;
    hk_prog_init(&p);
    char err[256];
    cr_assert_eq(hk_prog_parse_text(&p, src, strlen(src), err, sizeof err), 0, "%s", err);
    cr_assert_eq(p.n, 10);
    cr_assert_eq(p.ops[0].kind, HK_OP_ALLOC);
    cr_assert_eq(p.ops[0].size, 128);
    cr_assert_eq(p.ops[1].arg, 4);
    cr_assert_eq(p.ops[1].size, 16);
    cr_assert_eq(p.ops[2].id, 2);
    cr_assert_eq(p.ops[3].size, 1024);
    cr_assert_eq(p.ops[4].kind, HK_OP_SET);
    cr_assert_str_eq(hk_op_knobs[p.ops[4].id].name, "tiny_cap");
    cr_assert_eq(p.ops[4].arg, 64);
    cr_assert_str_eq(hk_op_knobs[p.ops[5].id].name, "mode");
    cr_assert_eq(p.ops[5].arg, 2, "an enum knob takes its choice names");
    cr_assert_eq(p.ops[6].size, 2u << 20);
    cr_assert_eq(p.ops[9].kind, HK_OP_CHECK);
    cr_assert_eq(p.id_count, 8);
    cr_assert_eq(p.thread_count, 3);
    /* Enum knobs print as names again. */
    char line[64];
    hk_op_format(&p.ops[5], line, sizeof line);
    cr_assert_str_eq(line, "set mode balanced");
    hk_prog_free(&p);
}

static void expect_error(const char *src, const char *want)
{
    hk_prog_t p;
    hk_prog_init(&p);
    char err[256] = "";
    cr_assert_eq(hk_prog_parse_text(&p, src, strlen(src), err, sizeof err), -1, "accepted: %s", src);
    cr_assert_str_eq(err, want);
    hk_prog_free(&p);
}

Test(text_codec, errors_name_line_and_column)
{
    expect_error("alloc 1 8\nallox 2 8\n", "2:1: unknown op 'allox'");
    expect_error("alloc 1\n", "1:8: expected size");
    expect_error("free 1\n  alloc 2 12q\n", "2:13: bad character 'q' in size");
    expect_error("thread 8\n", "1:8: thread 8 out of range (0..7)");
    expect_error("alloc 1048576 8\n", "1:7: block id 1048576 out of range (0..1048575)");
    expect_error("free 1 2\n", "1:8: unexpected '2' after free");
    expect_error("set nope 1\n", "1:5: unknown knob 'nope'");
    expect_error("set mode fastest\n", "1:10: unknown choice 'fastest' for knob mode");
    expect_error("alloc 1 99999999999999999999\n", "1:9: size '99999999999999999999' does not fit in 64 bits");
    expect_error("alloc 1 16777216T\n", "1:9: size '16777216T' does not fit in 64 bits");
    expect_error("check\nalloc 0 0x\n", "2:9: expected size, got '0x'");
}

/* ---- files ------------------------------------------------------------------------------------ */

Test(files, load_detects_the_form)
{
    uint64_t s = 9;
    hk_prog_t p, q;
    hk_prog_init(&p);
    hk_prog_init(&q);
    vt_random_prog(&p, &s, 50, 0);
    char path[] = "/tmp/hkv_test_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    char err[512];
    for (int bin = 0; bin < 2; bin++) {
        cr_assert_eq(hk_prog_save_file(&p, path, bin), 0);
        cr_assert_eq(hk_prog_load_file(&q, path, err, sizeof err), 0, "%s", err);
        cr_assert(hk_prog_equal(&p, &q));
    }
    FILE *f = fopen(path, "w");
    fputs("alloc 1 8\nfree\n", f);
    fclose(f);
    cr_assert_eq(hk_prog_load_file(&q, path, err, sizeof err), -1);
    char want[600];
    snprintf(want, sizeof want, "%s:2:5: expected block id", path);
    cr_assert_str_eq(err, want);
    unlink(path);
    hk_prog_free(&p);
    hk_prog_free(&q);
}
