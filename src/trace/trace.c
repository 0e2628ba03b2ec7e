/* The recorder: per-thread buffers, the file writer, the crash dump. Layout: docs/trace-format.md.
 *
 * Threads: each recording thread owns one hk_trace_thr_t from a static pool (so the crash dumper can
 * walk every buffer without a list or a lock). Only the owner appends; a full-mode write of a buffer
 * (by the owner when it fills, by the exit or crash path for the others) holds the buffer's lock.
 * Nothing here calls malloc; the crash path calls only open, write, close, sigaction and raise. */
#include "trace/trace.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "api/api.h"
#include "config/config.h"
#include "hardened/harden.h"
#include "superslab/lock.h"
#include "superslab/os.h"
#include "tiny/heap.h"
#include "tiny/sizeclass.h"

HK_HIDDEN uint8_t hk_trace_on;
HK_HIDDEN _Atomic uint32_t hk_trace_epoch;
HK_HIDDEN __thread hk_trace_thr_t *hk_trace_me __attribute__((tls_model("initial-exec")));
HK_HIDDEN __thread uint8_t hk_trace_large_hit __attribute__((tls_model("initial-exec")));

#define HK_TRACE_MAX_THREADS 1024u
#define HK_TRACE_CHUNK_RECS 4096u /* full mode: records per buffer, so per chunk at most */
#define HK_TRACE_PATH_MAX 256u
#define HK_TRACE_ALTSTACK (64u * 1024u)
#define HK_TRACE_DEAD_KEPT 16u    /* ring mode: exited threads' rings kept for the crash dump */
#define HK_TRACE_RING_SLOTS(cap) (2u * (cap)) /* ring: slots for cap records, long ones included */
#define HK_TRACE_SEED 0x484b5452u /* "HKTR" */

static hk_trace_thr_t hk_trace_pool[HK_TRACE_MAX_THREADS];
static _Atomic uint32_t hk_trace_pool_used;  /* pool entries handed out so far */
static _Atomic uint32_t hk_trace_next_slot;  /* thread index in the trace */
static _Atomic uint32_t hk_trace_dead;       /* DEAD entries */
static _Atomic uint32_t hk_trace_lost;       /* threads that could not get a buffer */
static uint32_t hk_trace_ring_cap;           /* 0 = full mode */
static int hk_trace_fd = -1;                 /* full mode: the trace file */
static char hk_trace_path[HK_TRACE_PATH_MAX];
static char hk_trace_crash_path[HK_TRACE_PATH_MAX + 8];
static _Atomic int hk_trace_dumped;          /* crash dump: 0 not yet, 1 being written, 2 written */
static _Atomic int hk_trace_closed;          /* full mode: the end chunk was written */
static const int hk_trace_sigs[] = {SIGSEGV, SIGBUS, SIGABRT};
#define HK_TRACE_NSIGS 3
static struct sigaction hk_trace_old[HK_TRACE_NSIGS];

/* ---- little helpers --------------------------------------------------------------------------- */
static void hk_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void hk_put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void hk_put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

uint64_t hk_trace_sum64(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = (const uint8_t *)data;
    while (n > 0) {
        uint64_t w = 0;
        size_t k = n < 8 ? n : 8;
        for (size_t i = 0; i < k; i++) w |= (uint64_t)p[i] << (8 * i);
        h ^= w;
        h *= 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
        p += k;
        n -= k;
    }
    return h;
}

static long hk_gettid(void) { return (long)syscall(SYS_gettid); }

static int hk_trylock_spin(_Atomic uint32_t *l, int tries) {
    for (int i = 0; i < tries; i++) {
        uint32_t z = 0;
        if (atomic_compare_exchange_weak_explicit(l, &z, 1, memory_order_acquire, memory_order_relaxed)) return 1;
        hk_cpu_relax();
    }
    return 0;
}
static void hk_unlock32(_Atomic uint32_t *l) { atomic_store_explicit(l, 0, memory_order_release); }

/* "path" with %p replaced by the pid. */
static void hk_expand_path(char *dst, size_t len, const char *src) {
    size_t n = 0;
    for (const char *s = src; *s && n + 1 < len; s++) {
        if (s[0] == '%' && s[1] == 'p') {
            char num[24];
            size_t k = hk_fmt_u64(num, (uint64_t)getpid());
            for (size_t i = 0; i < k && n + 1 < len; i++) dst[n++] = num[i];
            s++;
            continue;
        }
        dst[n++] = *s;
    }
    dst[n] = 0;
}

/* ---- file pieces ------------------------------------------------------------------------------ */
/* The file header: fixed fields, then text lines naming the variant, the mode and every option not at
 * its default, then the checksum. Built on the caller's stack (no allocation). Returns its size. */
static size_t hk_trace_build_header(uint8_t *buf, size_t len, int crash) {
    char *text = (char *)buf + 40;
    size_t room = len - 40 - 16, t = 0;
    t += hk_strlcpy(text + t, "variant=" HAK_VARIANT_NAME "\nmode=", room - t);
    t += hk_strlcpy(text + t, hk_mode_name(), room - t);
    t += hk_strlcpy(text + t, "\nopts=", room - t);
    /* option names in index order: SET records name options by index */
    for (int i = 0; i < HK_OPT_COUNT; i++) {
        t += hk_strlcpy(text + t, hk_opt_table[i].name, room - t);
        t += hk_strlcpy(text + t, i + 1 < HK_OPT_COUNT ? "," : "\n", room - t);
    }
    for (int i = 0; i < HK_OPT_COUNT; i++) {
        if (hk_config_source((hk_opt_id_t)i) == HK_SRC_DEFAULT) continue;
        char val[HK_TRACE_PATH_MAX];
        hk_config_format((hk_opt_id_t)i, val, sizeof val);
        if (t + 8 + strlen(hk_opt_table[i].name) + strlen(val) + 2 >= room) break;
        t += hk_strlcpy(text + t, "HAKMEM_", room - t);
        t += hk_strlcpy(text + t, hk_opt_table[i].name, room - t);
        t += hk_strlcpy(text + t, "=", room - t);
        t += hk_strlcpy(text + t, val, room - t);
        t += hk_strlcpy(text + t, "\n", room - t);
    }
    size_t h = HK_ALIGN_UP(40 + t, (size_t)8) + 8;
    memcpy(buf, "HKTR", 4);
    hk_put16(buf + 4, 2); /* 2: the class numbering of 21 tiny classes */
    hk_put16(buf + 6, (uint16_t)((hk_trace_ring_cap ? 1u : 0u) | (crash ? 2u : 0u)));
    hk_put32(buf + 8, (uint32_t)h);
    hk_put32(buf + 12, HK_TRACE_REC_SIZE);
    hk_put64(buf + 16, hk_trace_ring_cap);
    hk_put32(buf + 24, (uint32_t)getpid());
    hk_put32(buf + 28, atomic_load(&hk_trace_next_slot));
    hk_put32(buf + 32, (uint32_t)t);
    hk_put32(buf + 36, 0);
    memset(buf + 40 + t, 0, h - 8 - (40 + t));
    hk_put64(buf + h - 8, hk_trace_sum64(HK_TRACE_SEED, buf, h - 8));
    return h;
}

/* A chunk header is one record slot; hdr must be the slot just before recs (so header and records go
 * out in one write(), which O_APPEND keeps contiguous however many threads write). */
static void hk_trace_chunk_header(uint8_t *hdr, const hk_trace_thr_t *t, uint32_t n, uint64_t first, unsigned flags) {
    memcpy(hdr, "HKCK", 4);
    hk_put16(hdr + 4, (uint16_t)t->slot);
    hk_put16(hdr + 6, (uint16_t)flags);
    hk_put32(hdr + 8, n);
    hk_put32(hdr + 12, t->tid);
    hk_put64(hdr + 16, first);
    uint64_t s = hk_trace_sum64(HK_TRACE_SEED, hdr, 24);
    s = hk_trace_sum64(s, hdr + HK_TRACE_REC_SIZE, (size_t)n * HK_TRACE_REC_SIZE);
    hk_put64(hdr + 24, s);
}

/* Writes recs[from, to) of t (full mode; lock held) as one chunk. The slot before recs[from] is either
 * the reserved slot before rec[0] or a record already written, so it may hold the chunk header. */
static void hk_trace_write_span(int fd, hk_trace_thr_t *t, uint32_t from, uint32_t to, unsigned flags) {
    if (to <= from) return;
    uint8_t *hdr = (uint8_t *)&t->rec[from] - HK_TRACE_REC_SIZE;
    hk_trace_chunk_header(hdr, t, to - from, t->base + from, flags);
    hk_os_write_all(fd, (const char *)hdr, (size_t)(to - from + 1) * HK_TRACE_REC_SIZE);
}

static void hk_trace_emit_chunk(int fd, const hk_trace_thr_t *t, uint8_t *hdr, uint32_t k, uint64_t first, unsigned flags);

/* Full mode: writes records [from, to) of another thread's buffer as chunks of at most HK_TRACE_COPY
 * records, each copied first: the owner may be completing records while we read, and a chunk's
 * checksum must match the bytes written. `first` is the stream index of rec[from]. Header and records
 * go out in one write() (O_APPEND keeps it whole next to other writers). */
#define HK_TRACE_COPY 64u
static void hk_trace_copy_span(int fd, hk_trace_thr_t *t, uint32_t from, uint32_t to, uint64_t first, unsigned flags) {
    struct { uint8_t hdr[HK_TRACE_REC_SIZE]; hk_trec_t rec[HK_TRACE_COPY]; } buf;
    while (from < to) {
        uint32_t k = HK_MIN(to - from, HK_TRACE_COPY);
        memcpy(buf.rec, &t->rec[from], (size_t)k * HK_TRACE_REC_SIZE);
        hk_trace_emit_chunk(fd, t, buf.hdr, k, first, flags);
        from += k;
        first += k;
    }
}

static void hk_trace_small_chunk(int fd, const char magic[4], const uint8_t body[20]) {
    uint8_t c[32];
    memcpy(c, magic, 4);
    memcpy(c + 4, body, 20);
    hk_put64(c + 24, hk_trace_sum64(HK_TRACE_SEED, c, 24));
    hk_os_write_all(fd, (const char *)c, sizeof c);
}

static void hk_trace_end_chunk(int fd, uint64_t total) {
    uint8_t b[20] = {0};
    hk_put32(b, atomic_load(&hk_trace_next_slot));
    hk_put64(b + 4, total);
    hk_put32(b + 12, atomic_load(&hk_trace_lost));
    hk_trace_small_chunk(fd, "HKEN", b);
}

/* ---- threads ---------------------------------------------------------------------------------- */
static void hk_trace_altstack(void) {
    stack_t cur;
    if (sigaltstack(NULL, &cur) != 0 || !(cur.ss_flags & SS_DISABLE)) return; /* the thread has one */
    void *mem = hk_os_map(HK_TRACE_ALTSTACK);
    if (mem == NULL) return;
    stack_t ss = {.ss_sp = mem, .ss_size = HK_TRACE_ALTSTACK, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) hk_os_unmap(mem, HK_TRACE_ALTSTACK);
}

/* Ring mode: empties t's ring (pos = end = NULL in full mode). */
static void hk_trace_ring_reset(hk_trace_thr_t *t) {
    atomic_store(&t->seq, atomic_load(&t->seq) | 1u);
    atomic_store_explicit(&t->wraps, 0, memory_order_relaxed);
    atomic_store_explicit(&t->extra, 0, memory_order_relaxed);
    t->cur->end = t->slots ? t->slots + t->cap : NULL;
    __atomic_store_n(&t->cur->pos, t->slots, __ATOMIC_RELEASE);
    atomic_fetch_add(&t->seq, 1);
}

hk_tslot_t *hk_trace_ring_room(hk_trace_thr_t *t, unsigned n) {
    hk_tslot_t *s = t->cur->pos, *end = t->cur->end;
    atomic_fetch_add_explicit(&t->seq, 1, memory_order_acq_rel); /* odd */
    uint64_t pads = (uint64_t)(end - s);
    for (; s < end; s++) {
        s->w0 = 0;
        __atomic_store_n(&s->w1, HK_TS_W1(0, 0, HK_TS_PAD), __ATOMIC_RELAXED);
    }
    atomic_store_explicit(&t->extra, atomic_load_explicit(&t->extra, memory_order_relaxed) + pads, memory_order_relaxed);
    atomic_store_explicit(&t->wraps, atomic_load_explicit(&t->wraps, memory_order_relaxed) + 1, memory_order_relaxed);
    hk_trace_ring_publish(t->cur, t->slots);
    atomic_fetch_add_explicit(&t->seq, 1, memory_order_release); /* even */
    (void)n; /* cap >= 64: n slots always fit an empty ring */
    return t->slots;
}

hk_trec_t *hk_trace_begin_long(hk_trace_thr_t *t, unsigned kind, uint64_t in, uint64_t size, uint32_t epoch) {
    hk_tslot_t *s = hk_trace_ring_reserve(t, 2);
    hk_trec_t *r = (hk_trec_t *)(void *)s;
    r->out = 0;
    r->in = in;
    r->size = size;
    uint64_t tail = HK_TR_TAIL(epoch, kind, HK_TPATH_NONE, 0, HK_TF_INFLIGHT | HK_TF_LONG);
    __builtin_memcpy(&r->epoch, &tail, 8);
    atomic_fetch_add_explicit(&t->seq, 1, memory_order_acq_rel);
    atomic_store_explicit(&t->extra, atomic_load_explicit(&t->extra, memory_order_relaxed) + 1, memory_order_relaxed);
    hk_trace_ring_publish(t->cur, s + 2);
    atomic_fetch_add_explicit(&t->seq, 1, memory_order_release);
    return r;
}

void hk_trace_ring_cancel(hk_trace_thr_t *t, hk_tslot_t *s) {
    atomic_fetch_add_explicit(&t->seq, 1, memory_order_acq_rel);
    __atomic_store_n(&s->w1, HK_TS_W1(0, 0, HK_TS_PAD), __ATOMIC_RELEASE);
    atomic_store_explicit(&t->extra, atomic_load_explicit(&t->extra, memory_order_relaxed) + 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->seq, 1, memory_order_release);
}

hk_trace_thr_t *hk_trace_thread_start(void) {
    if (!hk_trace_on) return NULL;
    int saved = errno;
    hk_trace_thr_t *t = NULL;
    uint32_t keep = hk_trace_ring_cap ? HK_TRACE_DEAD_KEPT : 0;
    if (atomic_load(&hk_trace_dead) > keep) {
        for (uint32_t i = 0; i < atomic_load(&hk_trace_pool_used) && i < HK_TRACE_MAX_THREADS; i++) {
            uint32_t d = HK_TT_DEAD;
            if (atomic_compare_exchange_strong(&hk_trace_pool[i].state, &d, HK_TT_LIVE)) {
                t = &hk_trace_pool[i];
                atomic_fetch_sub(&hk_trace_dead, 1);
                break;
            }
        }
    }
    if (t == NULL) {
        uint32_t i = atomic_fetch_add(&hk_trace_pool_used, 1);
        if (i >= HK_TRACE_MAX_THREADS) {
            atomic_fetch_add(&hk_trace_lost, 1);
            errno = saved;
            return NULL;
        }
        t = &hk_trace_pool[i];
        /* powers of two; a ring has two slots per record it must keep (a long record takes two) */
        uint32_t cap = hk_trace_ring_cap ? HK_TRACE_RING_SLOTS(hk_trace_ring_cap) : HK_TRACE_CHUNK_RECS;
        if (hk_trace_ring_cap) {
            t->slots = hk_os_map((size_t)cap * sizeof(hk_tslot_t));
        } else {
            /* one reserved slot before rec[0] holds a chunk header when the buffer is written */
            hk_trec_t *mem = hk_os_map((size_t)(cap + 1) * HK_TRACE_REC_SIZE);
            t->rec = mem ? mem + 1 : NULL;
        }
        if (t->slots == NULL && t->rec == NULL) {
            atomic_fetch_add(&hk_trace_lost, 1);
            errno = saved;
            return NULL;
        }
        t->cap = cap;
        t->mask = cap - 1;
        atomic_store(&t->state, HK_TT_LIVE);
    }
    while (!hk_trylock_spin(&t->lock, 1 << 20)) sched_yield(); /* a dumper may be reading the parked ring */
    t->cur = &hk_tls_heap.trace;
    hk_trace_ring_reset(t);
    hk_unlock32(&t->lock);
    atomic_store_explicit(&t->published, 0, memory_order_relaxed);
    t->written = 0;
    t->base = 0;
    t->limit = t->cap;
    t->tid = (uint32_t)hk_gettid();
    t->slot = atomic_fetch_add(&hk_trace_next_slot, 1);
    hk_trace_altstack();
    hk_trace_me = t;
    /* A ring's cursor lives in this thread's TLS: the exit destructor must park it (a thread that only
     * frees may never set up its heap, which arms the same destructor). May allocate: recorded. */
    if (t->slots != NULL) hk_thread_register();
    errno = saved;
    return t;
}

void hk_trace_flush_full(hk_trace_thr_t *t) {
    int saved = errno;
    while (!hk_trylock_spin(&t->lock, 1 << 20)) sched_yield();
    if (hk_trace_fd >= 0) hk_trace_write_span(hk_trace_fd, t, t->written, t->cap, 0);
    t->base += t->cap;
    t->limit = t->base + t->cap;
    t->written = 0;
    hk_unlock32(&t->lock);
    errno = saved;
}

/* Full mode, another thread's buffer (or ours): writes what it holds that is not written yet. */
static void hk_trace_flush_other(int fd, hk_trace_thr_t *t, unsigned flags, int tries) {
    if (!hk_trylock_spin(&t->lock, tries)) return;
    uint64_t pub = atomic_load_explicit(&t->published, memory_order_acquire);
    if (pub >= t->base) {
        uint64_t n = pub - t->base;
        if (n > t->cap) n = t->cap;
        if (n > t->written) {
            hk_trace_copy_span(fd, t, t->written, (uint32_t)n, t->base + t->written, flags);
            t->written = (uint32_t)n;
        }
    }
    hk_unlock32(&t->lock);
}

void hk_trace_thread_exit(void) {
    hk_trace_thr_t *t = hk_trace_me;
    if (t == NULL) return;
    if (!hk_trace_ring_cap && hk_trace_fd >= 0) hk_trace_flush_other(hk_trace_fd, t, 2u, 1 << 20);
    if (t->slots != NULL) {
        /* the cursor moves out of this thread's TLS, which goes away with the thread */
        while (!hk_trylock_spin(&t->lock, 1 << 20)) sched_yield();
        t->parked = hk_tls_heap.trace;
        t->cur = &t->parked;
        hk_unlock32(&t->lock);
    }
    hk_tls_heap.trace.pos = hk_tls_heap.trace.end = NULL;
    hk_trace_me = NULL;
    atomic_store(&t->state, HK_TT_DEAD);
    atomic_fetch_add(&hk_trace_dead, 1);
}

/* ---- dump ------------------------------------------------------------------------------------- */
/* Ring mode: the counts of t's ring, read consistently with its pos (the owner changes wraps and extra
 * only between two bumps of seq; a fast-path op moves pos alone). *slots_out: slots written so far. */
static uint64_t hk_trace_ring_count(hk_trace_thr_t *t, uint64_t *slots_out) {
    uint64_t w = 0, e = 0, n = 0;
    for (int k = 0; k < 1 << 16; k++) {
        uint32_t q1 = atomic_load_explicit(&t->seq, memory_order_acquire);
        w = atomic_load_explicit(&t->wraps, memory_order_relaxed);
        e = atomic_load_explicit(&t->extra, memory_order_relaxed);
        n = (uint64_t)(__atomic_load_n(&t->cur->pos, __ATOMIC_ACQUIRE) - t->slots);
        if (n > t->cap) n = t->cap;
        atomic_thread_fence(memory_order_acquire);
        if ((q1 & 1u) == 0 && atomic_load_explicit(&t->seq, memory_order_relaxed) == q1) break;
        hk_cpu_relax();
    }
    *slots_out = w * t->cap + n;
    return *slots_out - e;
}

/* A short record (one slot) as the 32-byte record of the file; in flight: as the slow wrappers write it
 * before the call (no block out, path none). */
static void hk_trace_expand(hk_trec_t *r, const hk_tslot_t *s, int inflight) {
    unsigned tag = (unsigned)(s->w1 >> 56), kind = tag & 0x0Fu;
    uint64_t arg = (s->w1 >> 32) & HK_TS_ARG_MAX;
    unsigned path;
    if (tag & HK_TS_INFLIGHT) inflight = 1;
    r->out = 0;
    r->in = 0;
    if (kind == 6 /* FREE */) {
        r->in = s->w0;
        path = (unsigned)arg;
        r->size = path < HK_NCLASSES ? hk_class_info[path].size - HK_CANARY_BYTES : 0;
    } else { /* ALLOC */
        r->out = inflight ? 0 : s->w0;
        r->size = arg;
        path = arg <= HK_SMALL_LIMIT                 ? hk_size_class(HK_REQ(arg))
               : (tag & HK_TS_BIGCACHE) ? HK_TPATH_BIGCACHE
                                        : HK_TPATH_LARGE;
    }
    r->epoch = (uint32_t)s->w1;
    r->kind = (uint8_t)kind;
    r->path = (uint8_t)(inflight ? HK_TPATH_NONE : path);
    r->err = 0;
    r->flags = (uint8_t)((inflight ? HK_TF_INFLIGHT : 0u) | ((tag & HK_TS_BUMP) ? HK_TF_BUMP : 0u));
}

/* A chunk of k records; hdr is the record-sized slot just before them (one write()). */
static void hk_trace_emit_chunk(int fd, const hk_trace_thr_t *t, uint8_t *hdr, uint32_t k, uint64_t first, unsigned flags) {
    hk_trace_chunk_header(hdr, t, k, first, flags);
    hk_os_write_all(fd, (const char *)hdr, (size_t)(k + 1) * HK_TRACE_REC_SIZE);
}

/* Ring mode: the records t's ring still holds, oldest first, expanded to 32 bytes, as chunks of at most
 * HK_TRACE_COPY records. The ring is copied to `scratch` (cap slots) first: its owner may go on
 * appending, and slots it may have overwritten meanwhile are dropped. The newest slot ends a record,
 * so a walk back from it finds where each record starts. inflight: the last record is the op that
 * crashed (a fast path's complete-looking short record). Returns the number of records the thread
 * recorded (as the end chunk counts them). */
static uint64_t hk_trace_write_ring_locked(int fd, hk_trace_thr_t *t, unsigned flags, hk_tslot_t *scratch, int inflight);
static uint64_t hk_trace_write_ring(int fd, hk_trace_thr_t *t, unsigned flags, hk_tslot_t *scratch, int inflight) {
    if (!hk_trylock_spin(&t->lock, 1 << 16)) return 0; /* its thread is exiting (or died doing so) */
    uint64_t n = hk_trace_write_ring_locked(fd, t, flags, scratch, inflight);
    hk_unlock32(&t->lock);
    return n;
}

static uint64_t hk_trace_write_ring_locked(int fd, hk_trace_thr_t *t, unsigned flags, hk_tslot_t *scratch, int inflight) {
    uint64_t S, S2;
    /* a cursor outside the ring: the thread is gone without its exit destructor, its TLS reused */
    hk_tslot_t *pos = __atomic_load_n(&t->cur->pos, __ATOMIC_ACQUIRE);
    if (pos < t->slots || pos > t->slots + t->cap) return 0;
    uint64_t R = hk_trace_ring_count(t, &S);
    uint64_t lo = S > t->cap ? S - t->cap : 0;
    for (uint64_t i = lo; i < S;) { /* at most two pieces: the ring wraps */
        uint64_t at = i & t->mask, k = HK_MIN(S - i, (uint64_t)t->cap - at);
        memcpy(&scratch[i - lo], &t->slots[at], (size_t)k * sizeof(hk_tslot_t));
        i += k;
    }
    (void)hk_trace_ring_count(t, &S2);
    /* the owner writes at most 3 slots past what it published (padding, then a long record) */
    if (S2 + 3 > t->cap && S2 + 3 - t->cap > lo) lo = HK_MIN(S, S2 + 3 - t->cap);
    /* back from the newest slot: where the oldest whole record starts, and how many records. The two
     * slots of a long record are swapped in the copy, so that a walk forward meets the tagged one first. */
    uint64_t start = S, n = 0, base = S > t->cap ? S - t->cap : 0;
    while (start > lo) {
        hk_tslot_t *x = &scratch[start - 1 - base];
        unsigned tag = (unsigned)(x->w1 >> 56);
        if (tag & HK_TF_LONG) {
            if (start < lo + 2) break;
            hk_tslot_t second = *x;
            x[0] = x[-1];
            x[-1] = second;
            start -= 2;
            n++;
        } else {
            start -= 1;
            if ((tag & 0x0Fu) != HK_TS_PAD) n++;
        }
    }
    struct { uint8_t hdr[HK_TRACE_REC_SIZE]; hk_trec_t rec[HK_TRACE_COPY]; } buf;
    uint64_t first = R - n, k = 0;
    for (uint64_t i = start; i < S;) {
        const hk_tslot_t *x = &scratch[i - base];
        unsigned tag = (unsigned)(x->w1 >> 56);
        if (tag & HK_TF_LONG) {
            memcpy(&buf.rec[k], &x[1], sizeof(hk_tslot_t));
            memcpy((char *)&buf.rec[k] + sizeof(hk_tslot_t), &x[0], sizeof(hk_tslot_t));
            buf.rec[k].flags &= (uint8_t)~HK_TF_LONG;
            k++;
            i += 2;
        } else {
            i += 1;
            if ((tag & 0x0Fu) != HK_TS_PAD) hk_trace_expand(&buf.rec[k++], x, inflight && i == S);
        }
        if (k == HK_TRACE_COPY || (i >= S && k > 0)) {
            hk_trace_emit_chunk(fd, t, buf.hdr, (uint32_t)k, first, flags | 1u);
            first += k;
            k = 0;
        }
    }
    return R;
}

static void hk_trace_crash_chunk(int fd, int sig, int from_report) {
    uint8_t b[20] = {0};
    hk_put32(b, (uint32_t)sig);
    hk_trace_thr_t *me = hk_trace_me;
    hk_put16(b + 4, (uint16_t)(me ? me->slot : 0xFFFFu));
    hk_put16(b + 6, (uint16_t)((from_report ? 1u : 0u) | (me ? 0u : 2u)));
    hk_put32(b + 8, (uint32_t)hk_gettid());
    hk_trace_small_chunk(fd, "HKCR", b);
}

/* Ring mode: the dumper's copy of one ring (one dump at a time; another one maps its own). */
static hk_tslot_t *hk_trace_scratch;
static _Atomic uint32_t hk_trace_scratch_lock;

/* The pc range of HK_OP_TEXT code (common.h): a fault there is inside the recorded op. The linker
 * defines both for section hk_op_text; weak: a program without api/malloc.c has neither. */
extern const char __start_hk_op_text[] HK_HIDDEN __attribute__((weak));
extern const char __stop_hk_op_text[] HK_HIDDEN __attribute__((weak));

static int hk_trace_dump_at(const char *path, int sig, int from_report, int inflight);

int hk_trace_dump(const char *path, int sig, int from_report) { return hk_trace_dump_at(path, sig, from_report, 0); }

/* inflight: the calling thread crashed inside a fast path (or a hardened report): its last short
 * record is written in flight. */
static int hk_trace_dump_at(const char *path, int sig, int from_report, int inflight) {
    int saved = errno;
    uint32_t used = atomic_load(&hk_trace_pool_used);
    if (used > HK_TRACE_MAX_THREADS) used = HK_TRACE_MAX_THREADS;
    hk_trace_thr_t *me = hk_trace_me;
    int fd;
    if (path == NULL && !hk_trace_ring_cap) {
        /* full mode, crash: the rest goes at the end of the trace file itself */
        fd = hk_trace_fd;
        if (fd < 0) return -1;
        for (uint32_t i = 0; i < used; i++) {
            hk_trace_thr_t *t = &hk_trace_pool[i];
            if (atomic_load(&t->state) != HK_TT_LIVE) continue;
            hk_trace_flush_other(fd, t, t == me ? 4u : 0u, t == me ? 1 : 1 << 16);
        }
        if (sig) hk_trace_crash_chunk(fd, sig, from_report);
        errno = saved;
        return 0;
    }
    fd = open(path ? path : hk_trace_crash_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        errno = saved;
        return -1;
    }
    uint8_t hdr[4096];
    size_t h = hk_trace_build_header(hdr, sizeof hdr, sig != 0);
    hk_os_write_all(fd, (const char *)hdr, h);
    uint64_t total = 0;
    hk_tslot_t *scratch = NULL;
    size_t scratch_len = (size_t)HK_TRACE_RING_SLOTS(hk_trace_ring_cap) * sizeof(hk_tslot_t);
    int own_scratch = 0;
    if (hk_trace_ring_cap) {
        if (hk_trace_scratch != NULL && hk_trylock_spin(&hk_trace_scratch_lock, 1 << 10)) {
            scratch = hk_trace_scratch;
        } else {
            scratch = hk_os_map(scratch_len);
            own_scratch = 1;
        }
    }
    for (uint32_t i = 0; i < used; i++) {
        hk_trace_thr_t *t = &hk_trace_pool[i];
        uint32_t st = atomic_load(&t->state);
        if (st == HK_TT_FREE || (t->rec == NULL && t->slots == NULL)) continue;
        if (hk_trace_ring_cap) {
            if (scratch == NULL) continue;
            total += hk_trace_write_ring(fd, t, (st == HK_TT_DEAD ? 2u : 0u) | (t == me ? 4u : 0u), scratch,
                                         inflight && t == me);
            continue;
        }
        /* full mode, explicit dump: what the buffer holds now */
        uint64_t pub = atomic_load_explicit(&t->published, memory_order_acquire);
        uint64_t n = pub >= t->base ? HK_MIN(pub - t->base, (uint64_t)t->cap) : 0;
        if (n) hk_trace_copy_span(fd, t, 0, (uint32_t)n, t->base, t == me ? 4u : 0u);
        total += pub;
    }
    if (own_scratch && scratch != NULL) hk_os_unmap(scratch, scratch_len);
    else if (scratch != NULL) hk_unlock32(&hk_trace_scratch_lock);
    if (sig) hk_trace_crash_chunk(fd, sig, from_report);
    hk_trace_end_chunk(fd, total);
    close(fd);
    errno = saved;
    return 0;
}

/* ---- crash handlers --------------------------------------------------------------------------- */
static int hk_trace_sig_index(int sig) {
    for (int i = 0; i < HK_TRACE_NSIGS; i++)
        if (hk_trace_sigs[i] == sig) return i;
    return -1;
}

/* One dump per process. A second thread that crashes meanwhile waits (up to 5 s) for the first to
 * finish, since re-raising its signal would end the process in the middle of the dump. */
static void hk_trace_crash(int sig, int from_report, int inflight) {
    int prev = atomic_exchange(&hk_trace_dumped, 1);
    if (prev != 0) {
        struct timespec ms = {0, 1000000};
        for (int i = 0; i < 5000 && atomic_load(&hk_trace_dumped) == 1; i++) nanosleep(&ms, NULL);
        atomic_store(&hk_trace_dumped, 2);
        return;
    }
    (void)hk_trace_dump_at(hk_trace_ring_cap ? hk_trace_crash_path : NULL, sig, from_report, inflight || from_report);
    atomic_store(&hk_trace_dumped, 2);
}

/* Writes the trace, puts the original disposition back and raises the signal again: it is delivered
 * with that disposition as soon as this handler returns (the signal is blocked while we run). */
static uintptr_t hk_trace_pc(void *uc) {
    const ucontext_t *u = (const ucontext_t *)uc;
    if (u == NULL) return 0;
#if defined(__x86_64__)
    return (uintptr_t)u->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)u->uc_mcontext.pc;
#else
    return 0;
#endif
}

static void hk_trace_on_signal(int sig, siginfo_t *si, void *uc) {
    (void)si;
    int saved = errno;
    uintptr_t pc = hk_trace_pc(uc);
    hk_trace_crash(sig, 0, pc >= (uintptr_t)__start_hk_op_text && pc < (uintptr_t)__stop_hk_op_text);
    int i = hk_trace_sig_index(sig);
    if (i >= 0) {
        struct sigaction old = hk_trace_old[i];
        if (old.sa_handler == SIG_IGN && sig != SIGABRT) old.sa_handler = SIG_DFL; /* a fault cannot be ignored */
        sigaction(sig, &old, NULL);
    }
    errno = saved;
    raise(sig);
}

static void hk_trace_report_hook(void) { hk_trace_crash(SIGABRT, 1, 1); }

static void hk_trace_install_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = hk_trace_on_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < HK_TRACE_NSIGS; i++) sigaction(hk_trace_sigs[i], &sa, &hk_trace_old[i]);
    hk_report_hook = hk_trace_report_hook;
}

/* ---- SET records ------------------------------------------------------------------------------ */
void hk_trace_record_set(unsigned opt, uint64_t value, int from_ctl) {
    if (!hk_trace_on) return;
    hk_trec_t *r = hk_trace_begin(8 /* SET */, opt, 0, hk_trace_epoch_now());
    hk_trace_end(r, value, HK_TPATH_NONE, hk_trace_epoch_now(), from_ctl ? HK_TF_CTL : 0, 0);
}

/* ---- life cycle ------------------------------------------------------------------------------- */
static void hk_trace_open_full(void) {
    hk_expand_path(hk_trace_path, sizeof hk_trace_path, hk_config_get_str(HK_OPT_TRACE));
    hk_trace_fd = open(hk_trace_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (hk_trace_fd < 0) {
        hk_log_line("hakmem: HAKMEM_TRACE: cannot open ", hk_trace_path, " for writing; tracing is off", NULL, NULL);
        return;
    }
    uint8_t hdr[4096];
    size_t h = hk_trace_build_header(hdr, sizeof hdr, 0);
    hk_os_write_all(hk_trace_fd, (const char *)hdr, h);
}

void hk_trace_init(void) {
    const char *path = hk_config_get_str(HK_OPT_TRACE);
    long long ring = hk_config_get(HK_OPT_TRACE_RING);
    if (ring <= 0 && (path == NULL || path[0] == 0)) return;
    if (ring > 0) {
        /* a power of two (the ring index is a mask): each thread keeps at least the last N records */
        uint32_t cap = 64;
        while (cap < (uint64_t)ring) cap <<= 1;
        hk_trace_ring_cap = cap;
        hk_trace_scratch = hk_os_map((size_t)HK_TRACE_RING_SLOTS(cap) * sizeof(hk_tslot_t));
        hk_expand_path(hk_trace_path, sizeof hk_trace_path, (path && path[0]) ? path : "hakmem-%p.trace");
        size_t n = hk_strlcpy(hk_trace_crash_path, hk_trace_path, sizeof hk_trace_crash_path);
        hk_strlcpy(hk_trace_crash_path + n, ".crash", sizeof hk_trace_crash_path - n);
    } else {
        hk_trace_open_full();
        if (hk_trace_fd < 0) return;
    }
    hk_trace_install_handlers();
    hk_trace_on = 1;
}

void hk_trace_fork_child(void) {
    if (!hk_trace_on) return;
    hk_trace_thr_t *me = hk_trace_me;
    /* The other threads do not exist here: their buffers are dropped. */
    uint32_t used = atomic_load(&hk_trace_pool_used);
    for (uint32_t i = 0; i < used && i < HK_TRACE_MAX_THREADS; i++) {
        hk_trace_thr_t *t = &hk_trace_pool[i];
        hk_unlock32(&t->lock);
        if (t != me && atomic_load(&t->state) == HK_TT_LIVE) {
            atomic_store(&t->published, 0);
            t->cur = &t->parked;
            hk_trace_ring_reset(t);
            atomic_store(&t->state, HK_TT_DEAD);
            atomic_fetch_add(&hk_trace_dead, 1);
        }
    }
    atomic_store(&hk_trace_dumped, 0);
    hk_unlock32(&hk_trace_scratch_lock);
    if (hk_trace_ring_cap) {
        hk_expand_path(hk_trace_path, sizeof hk_trace_path, hk_config_get_str(HK_OPT_TRACE)[0] ? hk_config_get_str(HK_OPT_TRACE) : "hakmem-%p.trace");
        size_t n = hk_strlcpy(hk_trace_crash_path, hk_trace_path, sizeof hk_trace_crash_path);
        hk_strlcpy(hk_trace_crash_path + n, ".crash", sizeof hk_trace_crash_path - n);
        return;
    }
    /* Full mode: a child writes its own file only when the path names the pid (%p); otherwise it would
     * interleave with the parent's, so the child records nothing. */
    int fd = hk_trace_fd;
    hk_trace_fd = -1;
    if (fd >= 0) close(fd);
    if (strstr(hk_config_get_str(HK_OPT_TRACE), "%p") == NULL) {
        hk_trace_on = 0;
        return;
    }
    if (me) {
        me->written = 0;
        me->base = 0;
        me->limit = me->cap;
        atomic_store(&me->published, 0);
    }
    hk_trace_open_full();
    if (hk_trace_fd < 0) hk_trace_on = 0;
}

/* Full mode: at exit every buffer is written and the end chunk closes the file. Threads still running
 * may append chunks after it; readers accept them. */
__attribute__((destructor)) static void hk_trace_at_exit(void) {
    if (!hk_trace_on || hk_trace_ring_cap || hk_trace_fd < 0) return;
    if (atomic_exchange(&hk_trace_closed, 1)) return;
    uint32_t used = atomic_load(&hk_trace_pool_used);
    uint64_t total = 0;
    for (uint32_t i = 0; i < used && i < HK_TRACE_MAX_THREADS; i++) {
        hk_trace_thr_t *t = &hk_trace_pool[i];
        if (atomic_load(&t->state) == HK_TT_LIVE) hk_trace_flush_other(hk_trace_fd, t, 0, 1 << 16);
        total += atomic_load(&t->published);
    }
    hk_trace_end_chunk(hk_trace_fd, total);
}
