/* The text form of an op program: one op per line, "# comment" anywhere, numbers in decimal or 0x hex
 * with an optional K/M/G/T suffix (powers of 1024). Errors name line:column of the offending token.
 * Also: loading and saving files in either form. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "op.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct tp {
    const char *s;
    size_t n, pos;
    size_t line, line_start;
    char *err;
    size_t errlen;
} tp_t;

static int tp_fail(tp_t *t, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int tp_fail(tp_t *t, size_t at, const char *fmt, ...)
{
    if (t->err && t->errlen) {
        int k = snprintf(t->err, t->errlen, "%zu:%zu: ", t->line, at - t->line_start + 1);
        if (k >= 0 && (size_t)k < t->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(t->err + k, t->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Skips blanks; stops at a newline, a comment or the end. */
static void skip_blank(tp_t *t)
{
    while (t->pos < t->n && is_space(t->s[t->pos]))
        t->pos++;
}

static int at_eol(tp_t *t)
{
    skip_blank(t);
    return t->pos >= t->n || t->s[t->pos] == '\n' || t->s[t->pos] == '#';
}

/* The next token: [pos, pos+len). Returns 0 at end of line (no token). */
static size_t token(tp_t *t, size_t *start)
{
    if (at_eol(t))
        return 0;
    *start = t->pos;
    while (t->pos < t->n && !is_space(t->s[t->pos]) && t->s[t->pos] != '\n' && t->s[t->pos] != '#')
        t->pos++;
    return t->pos - *start;
}

static int number(tp_t *t, const char *what, uint64_t *out)
{
    size_t st, len = token(t, &st);
    if (!len)
        return tp_fail(t, t->pos, "expected %s", what);
    const char *s = t->s + st;
    size_t i = 0;
    unsigned base = 10;
    uint64_t v = 0;
    if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
    }
    size_t digits = 0;
    for (; i < len; i++, digits++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (base == 16 && c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            break;
        if (v > (UINT64_MAX - d) / base)
            return tp_fail(t, st, "%s '%.*s' does not fit in 64 bits", what, (int)len, s);
        v = v * base + d;
    }
    if (!digits)
        return tp_fail(t, st, "expected %s, got '%.*s'", what, (int)len, s);
    if (i < len) {
        unsigned shift;
        switch (s[i]) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        case 't': case 'T': shift = 40; break;
        default:
            return tp_fail(t, st + i, "bad character '%c' in %s", s[i], what);
        }
        if (i + 1 != len)
            return tp_fail(t, st + i + 1, "junk after the size suffix of %s", what);
        if (v > (UINT64_MAX >> shift))
            return tp_fail(t, st, "%s '%.*s' does not fit in 64 bits", what, (int)len, s);
        v <<= shift;
    }
    *out = v;
    return 0;
}

static int parse_line(tp_t *t, hk_prog_t *p)
{
    size_t st, len = token(t, &st);
    if (!len)
        return 0; /* blank or comment line */
    int kind = hk_op_kind_from_name(t->s + st, len);
    if (kind < 0)
        return tp_fail(t, st, "unknown op '%.*s'", (int)len, t->s + st);
    hk_op_t op = {0};
    op.kind = (uint8_t)kind;
    uint64_t v;
    size_t id_at = t->pos;
    switch (kind) {
    case HK_OP_SET: {
        size_t kst, klen = token(t, &kst);
        if (!klen)
            return tp_fail(t, t->pos, "expected a knob name");
        int k = hk_op_knob_find(t->s + kst, klen);
        if (k < 0 && klen > 1 && t->s[kst] == '#') {
            char *e;
            unsigned long idx = strtoul(t->s + kst + 1, &e, 10);
            if (e == t->s + kst + klen && idx < hk_op_knob_count)
                k = (int)idx;
        }
        if (k < 0)
            return tp_fail(t, kst, "unknown knob '%.*s'", (int)klen, t->s + kst);
        op.id = (uint32_t)k;
        const hk_op_knob_t *kn = &hk_op_knobs[k];
        skip_blank(t);
        if (kn->choices && t->pos < t->n && !(t->s[t->pos] >= '0' && t->s[t->pos] <= '9')) {
            /* An enum knob by choice name: "set mode balanced". */
            size_t vst, vlen = token(t, &vst);
            int found = -1;
            const char *c = kn->choices;
            for (int i = 0; *c && found < 0; i++) {
                size_t cn = strcspn(c, "|");
                if (cn == vlen && strncasecmp(c, t->s + vst, vlen) == 0)
                    found = i;
                c += cn + (c[cn] == '|');
            }
            if (found < 0)
                return tp_fail(t, vst, "unknown choice '%.*s' for knob %s", (int)vlen, t->s + vst, kn->name);
            op.arg = (uint64_t)found;
        } else if (number(t, "knob value", &op.arg) != 0) {
            return -1;
        }
        break;
    }
    case HK_OP_CHECK:
        break;
    default:
        skip_blank(t);
        id_at = t->pos;
        if (number(t, kind == HK_OP_THREAD ? "thread" : "block id", &v) != 0)
            return -1;
        if (kind == HK_OP_THREAD && v >= HK_OP_MAX_THREADS)
            return tp_fail(t, id_at, "thread %llu out of range (0..%u)", (unsigned long long)v,
                           HK_OP_MAX_THREADS - 1);
        if (v >= HK_OP_MAX_IDS)
            return tp_fail(t, id_at, "block id %llu out of range (0..%u)", (unsigned long long)v,
                           HK_OP_MAX_IDS - 1);
        op.id = (uint32_t)v;
        switch (kind) {
        case HK_OP_CALLOC: case HK_OP_REALLOCARRAY:
            if (number(t, "nmemb", &op.arg) != 0)
                return -1;
            if (number(t, "size", &op.size) != 0)
                return -1;
            break;
        case HK_OP_MEMALIGN: case HK_OP_POSIX_MEMALIGN: case HK_OP_ALIGNED_ALLOC:
            if (number(t, "alignment", &op.arg) != 0)
                return -1;
            if (number(t, "size", &op.size) != 0)
                return -1;
            break;
        case HK_OP_ALLOC: case HK_OP_REALLOC: case HK_OP_VALLOC: case HK_OP_PVALLOC:
            if (number(t, "size", &op.size) != 0)
                return -1;
            break;
        default:
            break;
        }
    }
    if (!at_eol(t))
        return tp_fail(t, t->pos, "unexpected '%c' after %s", t->s[t->pos], hk_op_kind_name(op.kind));
    if (hk_prog_push(p, op) != 0)
        return tp_fail(t, st, "out of memory");
    return 0;
}

int hk_prog_parse_text(hk_prog_t *p, const char *text, size_t len, char *err, size_t errlen)
{
    tp_t t = {text, len, 0, 1, 0, err, errlen};
    hk_prog_clear(p);
    if (err && errlen)
        err[0] = 0;
    while (t.pos < t.n) {
        if (t.s[t.pos] == '\0')
            return tp_fail(&t, t.pos, "NUL byte in text program");
        if (parse_line(&t, p) != 0)
            return -1;
        /* Skip the comment (if any) and the newline. */
        while (t.pos < t.n && t.s[t.pos] != '\n') {
            if (t.s[t.pos] == '\0')
                return tp_fail(&t, t.pos, "NUL byte in text program");
            t.pos++;
        }
        if (t.pos < t.n) {
            t.pos++;
            t.line++;
            t.line_start = t.pos;
        }
        if (p->n > HK_OP_MAX_OPS)
            return tp_fail(&t, t.pos, "more than %u ops", HK_OP_MAX_OPS);
    }
    return 0;
}

int hk_prog_print_text(FILE *f, const hk_prog_t *p)
{
    char line[160];
    for (size_t i = 0; i < p->n; i++) {
        hk_op_format(&p->ops[i], line, sizeof line);
        if (fputs(line, f) == EOF || fputc('\n', f) == EOF)
            return -1;
    }
    return ferror(f) ? -1 : 0;
}

char *hk_prog_to_text(const hk_prog_t *p, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        return NULL;
    int rc = hk_prog_print_text(f, p);
    if (fclose(f) != 0 || rc != 0) {
        free(buf);
        return NULL;
    }
    if (len)
        *len = n;
    return buf;
}

/* ---- files ------------------------------------------------------------------------------------ */

static int read_all(FILE *f, uint8_t **out, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    if (!b)
        return -1;
    for (;;) {
        if (n == cap) {
            uint8_t *q = realloc(b, cap * 2);
            if (!q) {
                free(b);
                return -1;
            }
            b = q;
            cap *= 2;
        }
        size_t k = fread(b + n, 1, cap - n, f);
        n += k;
        if (k == 0)
            break;
    }
    if (ferror(f)) {
        free(b);
        return -1;
    }
    *out = b;
    *len = n;
    return 0;
}

int hk_prog_load_file(hk_prog_t *p, const char *path, char *err, size_t errlen)
{
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    uint8_t *b = NULL;
    size_t n = 0;
    int rc = read_all(f, &b, &n);
    int e = errno;
    if (!is_stdin)
        fclose(f);
    if (rc != 0) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(e));
        return -1;
    }
    char msg[256] = "";
    if (n >= 4 && memcmp(b, HK_BIN_MAGIC, 4) == 0) {
        rc = hk_prog_decode(p, b, n, msg, sizeof msg);
        if (rc != 0)
            snprintf(err, errlen, "%s: %s", path, msg);
    } else {
        rc = hk_prog_parse_text(p, (const char *)b, n, msg, sizeof msg);
        if (rc != 0)
            snprintf(err, errlen, "%s:%s", path, msg);
    }
    free(b);
    return rc;
}

int hk_prog_save_file(const hk_prog_t *p, const char *path, int binary)
{
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, binary ? "wb" : "w");
    if (!f)
        return -1;
    int rc = binary ? hk_prog_write_binary(f, p) : hk_prog_print_text(f, p);
    if (f == stdout)
        rc |= fflush(f);
    else if (fclose(f) != 0)
        rc = -1;
    return rc;
}
