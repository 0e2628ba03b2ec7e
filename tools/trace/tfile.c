/* Trace files: reader, writer, checksum repair (tfile.h; layout in docs/trace-format.md). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "tfile.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void wr32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void wr64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

/* Must stay identical to hk_trace_sum64 in src/trace/trace.c. */
uint64_t hk_tf_sum64(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = (const uint8_t *)data;
    while (n > 0) {
        uint64_t w = 0;
        size_t k = n < 8 ? n : 8;
        for (size_t i = 0; i < k; i++)
            w |= (uint64_t)p[i] << (8 * i);
        h ^= w;
        h *= 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
        p += k;
        n -= k;
    }
    return h;
}

void hk_tf_init(hk_trace_file_t *t)
{
    memset(t, 0, sizeof *t);
}

void hk_tf_free(hk_trace_file_t *t)
{
    for (size_t i = 0; i < t->nthr; i++)
        free(t->thr[i].rec);
    free(t->thr);
    free(t->text);
    memset(t, 0, sizeof *t);
}

int hk_tf_is_trace(const uint8_t *data, size_t n)
{
    return n >= 4 && memcmp(data, HK_TF_MAGIC, 4) == 0;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static hk_tthread_t *thread_of(hk_trace_file_t *t, uint32_t slot, uint32_t tid)
{
    for (size_t i = 0; i < t->nthr; i++)
        if (t->thr[i].slot == slot)
            return &t->thr[i];
    hk_tthread_t *nt = realloc(t->thr, (t->nthr + 1) * sizeof *nt);
    if (!nt)
        return NULL;
    t->thr = nt;
    hk_tthread_t *th = &t->thr[t->nthr++];
    memset(th, 0, sizeof *th);
    th->slot = slot;
    th->tid = tid;
    th->first = UINT64_MAX;
    return th;
}

/* Appends n records from p (first = their stream index) to th, dropping ones it already has. */
/* Version 1 traces numbered the slab classes with 8 tiny classes (8, 16, 32, ... 1024) and the mid
 * classes from 8; version 2 has 21 tiny classes (tools/gen-sizeclass.py), mid classes from 21. */
static uint8_t path_from_v1(uint8_t p)
{
    static const uint8_t tiny[8] = {0, 1, 2, 4, 8, 12, 16, 20};
    if (p < 8)
        return tiny[p];
    if (p < 32)
        return (uint8_t)(p + 13);
    return p;
}

static int add_records(hk_tthread_t *th, const uint8_t *p, uint32_t n, uint64_t first, unsigned version)
{
    if (th->first == UINT64_MAX)
        th->first = first;
    uint64_t have_end = th->first + th->n;
    uint32_t skip = 0;
    if (first < have_end) { /* already have some of them (written twice by an exit flusher) */
        uint64_t dup = have_end - first;
        if (dup >= n)
            return 0;
        skip = (uint32_t)dup;
    } else if (first > have_end) {
        th->gaps += first - have_end;
    }
    size_t need = th->n + (n - skip) + (first > have_end ? (size_t)0 : 0);
    if (need > th->cap) {
        size_t nc = th->cap ? th->cap : 256;
        while (nc < need)
            nc *= 2;
        hk_trec_file_t *nr = realloc(th->rec, nc * sizeof *nr);
        if (!nr)
            return -1;
        th->rec = nr;
        th->cap = nc;
    }
    for (uint32_t i = skip; i < n; i++) {
        const uint8_t *r = p + (size_t)i * HK_TF_RECSIZE;
        hk_trec_file_t *d = &th->rec[th->n++];
        d->out = rd64(r);
        d->in = rd64(r + 8);
        d->size = rd64(r + 16);
        d->epoch = rd32(r + 24);
        d->kind = r[28];
        d->path = version == 1 ? path_from_v1(r[29]) : r[29];
        d->err = r[30];
        d->flags = r[31];
    }
    return 0;
}

int hk_tf_parse(hk_trace_file_t *t, const uint8_t *data, size_t n, int salvage, char *err, size_t errlen)
{
    hk_tf_free(t);
    if (n < 48)
        return fail(err, errlen, "offset %zu: file too short for a trace header (%zu bytes, need at least 48)", n, n);
    if (memcmp(data, HK_TF_MAGIC, 4) != 0)
        return fail(err, errlen, "offset 0: bad magic (not a hakmem trace)");
    t->version = rd16(data + 4);
    t->flags = rd16(data + 6);
    if (t->version != HK_TF_VERSION && t->version != 1)
        return fail(err, errlen, "offset 4: unsupported version %u (this reader knows %u)", t->version, HK_TF_VERSION);
    if (t->flags & ~3u)
        return fail(err, errlen, "offset 6: unknown header flags 0x%x", t->flags);
    t->header_size = rd32(data + 8);
    if (t->header_size < 48 || t->header_size % 8 != 0 || t->header_size > n)
        return fail(err, errlen, "offset 8: header size %u is not a multiple of 8 in [48, %zu]", t->header_size, n);
    if (rd32(data + 12) != HK_TF_RECSIZE)
        return fail(err, errlen, "offset 12: record size %u (expected %u)", rd32(data + 12), HK_TF_RECSIZE);
    t->ring_cap = rd64(data + 16);
    t->pid = rd32(data + 24);
    t->nthreads_hdr = rd32(data + 28);
    uint32_t tl = rd32(data + 32);
    if ((uint64_t)40 + tl + 8 > t->header_size)
        return fail(err, errlen, "offset 32: text length %u does not fit the %u-byte header", tl, t->header_size);
    uint64_t sum = hk_tf_sum64(HK_TF_SEED, data, t->header_size - 8);
    if (sum != rd64(data + t->header_size - 8))
        return fail(err, errlen, "offset %u: header checksum mismatch (stored 0x%016llx, computed 0x%016llx over bytes 0..%u)",
                    t->header_size - 8, (unsigned long long)rd64(data + t->header_size - 8), (unsigned long long)sum,
                    t->header_size - 9);
    t->text = malloc(tl + 1);
    if (!t->text)
        return fail(err, errlen, "out of memory");
    memcpy(t->text, data + 40, tl);
    t->text[tl] = 0;

    size_t off = t->header_size;
    while (off < n) {
        const char *what = NULL;
        char why[160];
        if (n - off < 32) {
            snprintf(why, sizeof why, "offset %zu: %zu stray bytes at the end (a chunk header needs 32): truncated?", off, n - off);
            what = why;
        } else {
            const uint8_t *c = data + off;
            if (memcmp(c, "HKCK", 4) == 0) {
                uint16_t slot = rd16(c + 4), cf = rd16(c + 6);
                uint32_t cnt = rd32(c + 8), tid = rd32(c + 12);
                uint64_t first = rd64(c + 16);
                if ((uint64_t)cnt * HK_TF_RECSIZE > n - off - 32) {
                    snprintf(why, sizeof why, "offset %zu: chunk %zu of %u records runs past the end of the file (%zu bytes left): truncated?",
                             off, t->nchunks, cnt, n - off - 32);
                    what = why;
                } else if (first > UINT64_MAX / 2) {
                    snprintf(why, sizeof why, "offset %zu: chunk %zu: first record index %llu out of range", off + 16,
                             t->nchunks, (unsigned long long)first);
                    what = why;
                } else {
                    uint64_t s = hk_tf_sum64(HK_TF_SEED, c, 24);
                    s = hk_tf_sum64(s, c + 32, (size_t)cnt * HK_TF_RECSIZE);
                    if (s != rd64(c + 24)) {
                        snprintf(why, sizeof why, "offset %zu: chunk %zu (thread %u, %u records): checksum mismatch (stored 0x%016llx, computed 0x%016llx)",
                                 off, t->nchunks, slot, cnt, (unsigned long long)rd64(c + 24), (unsigned long long)s);
                        what = why;
                    } else {
                        for (uint32_t i = 0; i < cnt; i++) {
                            uint8_t k = c[32 + (size_t)i * HK_TF_RECSIZE + 28];
                            if (k > 13 && k != HK_TR_KIND_EXT) {
                                snprintf(why, sizeof why, "offset %zu: chunk %zu record %u: unknown kind %u",
                                         off + 32 + (size_t)i * HK_TF_RECSIZE + 28, t->nchunks, i, k);
                                what = why;
                                break;
                            }
                        }
                        if (!what) {
                            hk_tthread_t *th = thread_of(t, slot, tid);
                            if (!th || add_records(th, c + 32, cnt, first, t->version) != 0)
                                return fail(err, errlen, "out of memory");
                            th->flags |= cf;
                            t->nrecords += cnt;
                            t->nchunks++;
                            off += 32 + (size_t)cnt * HK_TF_RECSIZE;
                            continue;
                        }
                    }
                }
            } else if (memcmp(c, "HKCR", 4) == 0 || memcmp(c, "HKEN", 4) == 0) {
                uint64_t s = hk_tf_sum64(HK_TF_SEED, c, 24);
                if (s != rd64(c + 24)) {
                    snprintf(why, sizeof why, "offset %zu: %.4s chunk: checksum mismatch", off, (const char *)c);
                    what = why;
                } else if (c[2] == 'C') {
                    t->crashed = 1;
                    t->crash_sig = rd32(c + 4);
                    t->crash_slot = rd16(c + 8);
                    t->crash_flags = rd16(c + 10);
                    t->crash_tid = rd32(c + 12);
                    off += 32;
                    continue;
                } else {
                    t->ended = 1;
                    t->end_total = rd64(c + 8);
                    t->end_lost = rd32(c + 16);
                    off += 32;
                    continue;
                }
            } else {
                snprintf(why, sizeof why, "offset %zu: bad chunk magic %02x %02x %02x %02x", off, c[0], c[1], c[2], c[3]);
                what = why;
            }
        }
        if (!salvage)
            return fail(err, errlen, "%s", what);
        snprintf(t->warn, sizeof t->warn, "salvaged: stopped at %s", what);
        break;
    }
    if (!t->ended && !t->warn[0])
        snprintf(t->warn, sizeof t->warn, "offset %zu: no end chunk (the process did not exit normally, or the file was cut)", n);
    return 0;
}

int hk_tf_read_all(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        if (f != stdin)
            fclose(f);
        return -1;
    }
    for (;;) {
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                if (f != stdin)
                    fclose(f);
                errno = ENOMEM;
                return -1;
            }
            buf = nb;
            cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0)
            break;
    }
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad) {
        free(buf);
        errno = EIO;
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

int hk_tf_load(hk_trace_file_t *t, const char *path, int salvage, char *err, size_t errlen)
{
    uint8_t *data;
    size_t n;
    if (hk_tf_read_all(path, &data, &n) != 0)
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    char e[256];
    int rc = hk_tf_parse(t, data, n, salvage, e, sizeof e);
    free(data);
    if (rc != 0)
        return fail(err, errlen, "%s: %s", path, e);
    return 0;
}

int hk_tf_header_value(const hk_trace_file_t *t, const char *key, char *buf, size_t len)
{
    size_t kl = strlen(key);
    for (const char *l = t->text; l && *l;) {
        const char *e = strchr(l, '\n');
        size_t ll = e ? (size_t)(e - l) : strlen(l);
        if (ll > kl && strncmp(l, key, kl) == 0 && l[kl] == '=') {
            size_t vl = ll - kl - 1;
            if (vl >= len)
                vl = len - 1;
            memcpy(buf, l + kl + 1, vl);
            buf[vl] = 0;
            return 0;
        }
        l = e ? e + 1 : l + ll;
    }
    return -1;
}

int hk_tf_option_name(const hk_trace_file_t *t, unsigned i, char *buf, size_t len)
{
    char opts[2048];
    if (hk_tf_header_value(t, "opts", opts, sizeof opts) != 0)
        return -1;
    char *s = opts;
    for (unsigned k = 0; k < i && s; k++) {
        s = strchr(s, ',');
        if (s)
            s++;
    }
    if (!s || !*s)
        return -1;
    size_t l = strcspn(s, ",");
    if (l == 0 || l + 8 > len)
        return -1;
    snprintf(buf, len, "HAKMEM_%.*s", (int)l, s);
    return 0;
}

/* ---- writing ---------------------------------------------------------------------------------- */
typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
    int oom;
} wbuf_t;

static uint8_t *wb_grow(wbuf_t *w, size_t k)
{
    if (w->oom)
        return NULL;
    if (w->n + k > w->cap) {
        size_t nc = w->cap ? w->cap : 4096;
        while (nc < w->n + k)
            nc *= 2;
        uint8_t *np = realloc(w->p, nc);
        if (!np) {
            w->oom = 1;
            return NULL;
        }
        w->p = np;
        w->cap = nc;
    }
    uint8_t *r = w->p + w->n;
    memset(r, 0, k);
    w->n += k;
    return r;
}

int hk_tf_write(const hk_trace_file_t *t, uint8_t **out, size_t *len)
{
    wbuf_t w = {0};
    size_t tl = t->text ? strlen(t->text) : 0;
    size_t h = ((40 + tl + 7) & ~(size_t)7) + 8;
    uint8_t *hp = wb_grow(&w, h);
    if (!hp)
        return -1;
    memcpy(hp, HK_TF_MAGIC, 4);
    wr16(hp + 4, HK_TF_VERSION); /* paths were read into version 2 numbering */
    wr16(hp + 6, (uint16_t)(t->flags & 3u));
    wr32(hp + 8, (uint32_t)h);
    wr32(hp + 12, HK_TF_RECSIZE);
    wr64(hp + 16, t->ring_cap);
    wr32(hp + 24, t->pid);
    wr32(hp + 28, (uint32_t)t->nthr);
    wr32(hp + 32, (uint32_t)tl);
    if (tl)
        memcpy(hp + 40, t->text, tl);
    wr64(hp + h - 8, hk_tf_sum64(HK_TF_SEED, hp, h - 8));
    uint64_t total = 0;
    for (size_t i = 0; i < t->nthr; i++) {
        const hk_tthread_t *th = &t->thr[i];
        if (th->n == 0)
            continue;
        uint8_t *c = wb_grow(&w, 32 + th->n * HK_TF_RECSIZE);
        if (!c)
            return -1;
        memcpy(c, "HKCK", 4);
        wr16(c + 4, (uint16_t)th->slot);
        wr16(c + 6, (uint16_t)th->flags);
        wr32(c + 8, (uint32_t)th->n);
        wr32(c + 12, th->tid);
        wr64(c + 16, th->first == UINT64_MAX ? 0 : th->first);
        for (size_t k = 0; k < th->n; k++) {
            uint8_t *r = c + 32 + k * HK_TF_RECSIZE;
            const hk_trec_file_t *s = &th->rec[k];
            wr64(r, s->out);
            wr64(r + 8, s->in);
            wr64(r + 16, s->size);
            wr32(r + 24, s->epoch);
            r[28] = s->kind, r[29] = s->path, r[30] = s->err, r[31] = s->flags;
        }
        uint64_t s = hk_tf_sum64(HK_TF_SEED, c, 24);
        wr64(c + 24, hk_tf_sum64(s, c + 32, th->n * HK_TF_RECSIZE));
        total += th->n;
    }
    if (t->crashed) {
        uint8_t *c = wb_grow(&w, 32);
        if (!c)
            return -1;
        memcpy(c, "HKCR", 4);
        wr32(c + 4, t->crash_sig);
        wr16(c + 8, t->crash_slot);
        wr16(c + 10, t->crash_flags);
        wr32(c + 12, t->crash_tid);
        wr64(c + 24, hk_tf_sum64(HK_TF_SEED, c, 24));
    }
    uint8_t *e = wb_grow(&w, 32);
    if (!e)
        return -1;
    memcpy(e, "HKEN", 4);
    wr32(e + 4, (uint32_t)t->nthr);
    wr64(e + 8, total);
    wr64(e + 24, hk_tf_sum64(HK_TF_SEED, e, 24));
    if (w.oom) {
        free(w.p);
        return -1;
    }
    *out = w.p;
    *len = w.n;
    return 0;
}

void hk_tf_fix_sums(uint8_t *data, size_t n)
{
    if (n < 48 || memcmp(data, HK_TF_MAGIC, 4) != 0)
        return;
    uint32_t h = rd32(data + 8);
    if (h < 48 || h % 8 || h > n)
        return;
    wr64(data + h - 8, hk_tf_sum64(HK_TF_SEED, data, h - 8));
    size_t off = h;
    while (n - off >= 32) {
        uint8_t *c = data + off;
        if (memcmp(c, "HKCK", 4) == 0) {
            uint64_t cnt = rd32(c + 8);
            if (cnt * HK_TF_RECSIZE > n - off - 32)
                return;
            uint64_t s = hk_tf_sum64(HK_TF_SEED, c, 24);
            wr64(c + 24, hk_tf_sum64(s, c + 32, cnt * HK_TF_RECSIZE));
            off += 32 + cnt * HK_TF_RECSIZE;
        } else if (memcmp(c, "HKCR", 4) == 0 || memcmp(c, "HKEN", 4) == 0) {
            wr64(c + 24, hk_tf_sum64(HK_TF_SEED, c, 24));
            off += 32;
        } else {
            return;
        }
    }
}
