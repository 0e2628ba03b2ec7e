/* The binary form of an op program (layout in docs/op-program.md):
 *
 *   offset 0   "HKOP"
 *   offset 4   version, u16 little endian (1)
 *   offset 6   flags, u16 LE (0; decoders reject anything else)
 *   offset 8   op count, u64 LE (fixed width so a streaming writer can patch it at close)
 *   offset 16  records: kind byte, then the kind's fields as canonical ULEB128 varints
 *   last 4     CRC-32 (zlib's) of every byte before it, u32 LE
 *
 * The decoder trusts nothing: every read is bounded by the start of the trailer, every field is
 * range-checked, and each error names the byte offset where the bad data starts. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "op.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- CRC-32 ---------------------------------------------------------------------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t hk_op_crc32(uint32_t crc, const void *data, size_t n)
{
    const uint8_t *p = data;
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

/* ---- encoder ---------------------------------------------------------------------------------- */

static unsigned fields_of(unsigned kind)
{
    /* bit 0: arg, bit 1: size (id is always written except for CHECK) */
    switch (kind) {
    case HK_OP_ALLOC: case HK_OP_REALLOC: case HK_OP_VALLOC: case HK_OP_PVALLOC: return 2;
    case HK_OP_CALLOC: case HK_OP_REALLOCARRAY: case HK_OP_MEMALIGN: case HK_OP_POSIX_MEMALIGN:
    case HK_OP_ALIGNED_ALLOC: return 3;
    case HK_OP_SET: return 1;
    default: return 0;
    }
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int hk_prog_encode(const hk_prog_t *p, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    /* Worst case per record: kind + 3 varints of 10 bytes. */
    size_t cap = HK_BIN_HEADER_SIZE + HK_BIN_TRAILER_SIZE + p->n * 31;
    uint8_t *b = malloc(cap);
    if (!b)
        return -1;
    memcpy(b, HK_BIN_MAGIC, 4);
    put_le(b + 4, HK_BIN_VERSION, 2);
    put_le(b + 6, 0, 2);
    put_le(b + 8, p->n, 8);
    size_t pos = HK_BIN_HEADER_SIZE;
    for (size_t i = 0; i < p->n; i++) {
        const hk_op_t *op = &p->ops[i];
        if (hk_op_validate(op, NULL) != 0) {
            free(b);
            return -1;
        }
        unsigned f = fields_of(op->kind);
        b[pos++] = op->kind;
        if (op->kind != HK_OP_CHECK)
            pos += put_varint(b + pos, op->id);
        if (f & 1)
            pos += put_varint(b + pos, op->arg);
        if (f & 2)
            pos += put_varint(b + pos, op->size);
    }
    put_le(b + pos, hk_op_crc32(0, b, pos), 4);
    pos += 4;
    *out = b;
    *len = pos;
    return 0;
}

int hk_prog_write_binary(FILE *f, const hk_prog_t *p)
{
    uint8_t *b;
    size_t n;
    if (hk_prog_encode(p, &b, &n) != 0)
        return -1;
    int rc = fwrite(b, 1, n, f) == n ? 0 : -1;
    free(b);
    return rc;
}

/* ---- decoder ---------------------------------------------------------------------------------- */

static int fail(char *err, size_t errlen, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, size_t off, const char *fmt, ...)
{
    if (err && errlen) {
        int k = snprintf(err, errlen, "offset %zu: ", off);
        if (k >= 0 && (size_t)k < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static uint64_t get_le(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Reads one canonical ULEB128 from [*pos, end). 0, or -1 with the error written. */
static int get_varint(const uint8_t *d, size_t *pos, size_t end, uint64_t *v, const char *what,
                      char *err, size_t errlen)
{
    size_t start = *pos;
    uint64_t x = 0;
    for (unsigned i = 0;; i++) {
        if (*pos >= end)
            return fail(err, errlen, *pos, "%s runs into the CRC trailer (input truncated or count wrong)",
                        what);
        uint8_t b = d[(*pos)++];
        if (i == 9 && b > 1)
            return fail(err, errlen, start, "%s: varint exceeds 64 bits", what);
        x |= (uint64_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            if (b == 0 && i > 0)
                return fail(err, errlen, start, "%s: overlong varint (not canonical)", what);
            break;
        }
    }
    *v = x;
    return 0;
}

int hk_prog_decode(hk_prog_t *p, const uint8_t *d, size_t n, char *err, size_t errlen)
{
    hk_prog_clear(p);
    if (err && errlen)
        err[0] = 0;
    if (n < HK_BIN_HEADER_SIZE + HK_BIN_TRAILER_SIZE) {
        if (n >= 4 && memcmp(d, HK_BIN_MAGIC, 4) != 0)
            return fail(err, errlen, 0, "bad magic (not an HKOP binary program)");
        return fail(err, errlen, n, "input ends inside the header (%zu bytes, need at least %u)", n,
                    HK_BIN_HEADER_SIZE + HK_BIN_TRAILER_SIZE);
    }
    if (memcmp(d, HK_BIN_MAGIC, 4) != 0)
        return fail(err, errlen, 0, "bad magic (not an HKOP binary program)");
    uint64_t version = get_le(d + 4, 2), flags = get_le(d + 6, 2), count = get_le(d + 8, 8);
    if (version != HK_BIN_VERSION)
        return fail(err, errlen, 4, "unsupported version %llu (this decoder reads %u)",
                    (unsigned long long)version, HK_BIN_VERSION);
    if (flags != 0)
        return fail(err, errlen, 6, "unknown flags 0x%llx", (unsigned long long)flags);
    size_t end = n - HK_BIN_TRAILER_SIZE;
    /* Every record takes at least one byte: a count beyond the bytes present is corrupt, and checking
     * it here keeps a flipped count byte from asking for a huge allocation. */
    if (count > end - HK_BIN_HEADER_SIZE || count > HK_OP_MAX_OPS)
        return fail(err, errlen, 8, "op count %llu cannot fit in the %zu record bytes present",
                    (unsigned long long)count, end - HK_BIN_HEADER_SIZE);
    if (hk_prog_reserve(p, (size_t)count) != 0)
        return fail(err, errlen, 8, "out of memory for %llu ops", (unsigned long long)count);
    size_t pos = HK_BIN_HEADER_SIZE;
    for (uint64_t i = 0; i < count; i++) {
        size_t at = pos;
        if (pos >= end)
            return fail(err, errlen, pos, "op %llu of %llu runs into the CRC trailer (input truncated?)",
                        (unsigned long long)i, (unsigned long long)count);
        hk_op_t op = {0};
        op.kind = d[pos++];
        if (op.kind >= HK_OP_KIND_COUNT)
            return fail(err, errlen, at, "op %llu: unknown op kind %u", (unsigned long long)i, op.kind);
        unsigned f = fields_of(op.kind);
        uint64_t id = 0;
        if (op.kind != HK_OP_CHECK && get_varint(d, &pos, end, &id, "id", err, errlen) != 0)
            return -1;
        if ((f & 1) && get_varint(d, &pos, end, &op.arg, "arg", err, errlen) != 0)
            return -1;
        if ((f & 2) && get_varint(d, &pos, end, &op.size, "size", err, errlen) != 0)
            return -1;
        if (id >= HK_OP_MAX_IDS)
            return fail(err, errlen, at + 1, "op %llu (%s): id %llu out of range", (unsigned long long)i,
                        hk_op_kind_name(op.kind), (unsigned long long)id);
        op.id = (uint32_t)id;
        const char *why;
        if (hk_op_validate(&op, &why) != 0)
            return fail(err, errlen, at, "op %llu (%s): %s", (unsigned long long)i,
                        hk_op_kind_name(op.kind), why);
        if (hk_prog_push(p, op) != 0)
            return fail(err, errlen, at, "out of memory");
    }
    if (pos != end)
        return fail(err, errlen, pos, "%zu unexpected bytes after the last op (count says %llu ops)",
                    end - pos, (unsigned long long)count);
    uint32_t stored = (uint32_t)get_le(d + end, 4), computed = hk_op_crc32(0, d, end);
    if (stored != computed)
        return fail(err, errlen, end, "CRC mismatch (stored 0x%08x, computed 0x%08x over bytes 0..%zu)",
                    stored, computed, end);
    return 0;
}
