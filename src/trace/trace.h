/* The op recorder (HAKMEM_TRACE, HAKMEM_TRACE_RING): every call of the malloc family, on every
 * thread, into a per-thread buffer of fixed-size records. The on-disk layout is docs/trace-format.md.
 *
 *   full mode  (HAKMEM_TRACE=path):       each thread's buffer is written to `path` as a checksummed
 *                                          chunk whenever it fills, at thread exit and at process exit
 *   ring mode  (HAKMEM_TRACE_RING=N):      each thread keeps only its last N records in memory; nothing
 *                                          is written unless the process crashes (then `path.crash`)
 *
 * Cost model: with tracing off, each public hak_* function pays one load of hk_trace_on and one
 * predictable branch. Ring mode: a malloc served by the thread cache and a free of a slab block write
 * one 16-byte record (two stores: the block; epoch, size or class and kind) and move the cursor (in
 * the thread heap, beside what the op touches anyway), with one relaxed load of the epoch: 9 to 12
 * instructions over the untraced op, written once, never completed (what crashes inside them is told
 * by the pc, below). Other ops write a 32-byte record (two for realloc) before the call and complete
 * it after. Full mode: 32-byte records, every op through the recording wrappers, plus a checksum pass
 * and a write() per 4096 records. No lock, no shared write except the epoch bump below.
 *
 * Order without a global lock: every record carries the value of a coarse global epoch. The epoch is
 * bumped (atomic add) only by a thread that is about to take a block that may have come from another
 * thread: a class refill (its cache was empty), any large-block path, realloc. A thread that releases a
 * block reads the epoch at entry, before the block can reach another thread. So when a block passes from
 * thread A (release) to thread B (acquire), B's record carries a strictly larger epoch than A's; ops of
 * one thread keep their per-thread order. Within one epoch the tools repair the order offline (a free of
 * an address not yet handed out waits for the hand-out in the same epoch). rdtsc would give a finer
 * stamp but costs about as much as a whole tiny malloc/free pair (15 ns measured on this machine).
 *
 * What must hold: nothing here calls malloc; buffers and files are created with mmap / open; the crash
 * path uses only async-signal-safe calls (open, write, close, sigaction, raise; mmap / munmap of a
 * scratch copy of a ring only when the one mapped at start-up is busy).
 */
#ifndef HK_TRACE_H
#define HK_TRACE_H

#include "common.h"

/* ---- records (the file layout of one record: docs/trace-format.md) --------------------------- */
#define HK_TRACE_REC_SIZE 32u

/* kind: the op-program numbering (verify/op.h: ALLOC=0 ... REALLOCARRAY=13), plus: */
#define HK_TR_EXT 0x3Fu /* extension of the next record (realloc family): old usable size, nmemb, entry epoch */

/* path: which layer served the op (the block returned, or the block freed) */
#define HK_TPATH_LARGE 0x40u    /* a fresh large mapping */
#define HK_TPATH_BIGCACHE 0x41u /* a large block reused from the BigCache */
#define HK_TPATH_NONE 0xFFu     /* no block (failure, NULL, SET) */
/* 0..44: a slab class (0..20 tiny, 21..44 mid) */

/* flags */
#define HK_TF_INFLIGHT 0x01u /* the call had not returned when the record was written out (crash) */
#define HK_TF_BUMP 0x02u     /* the epoch was bumped for this op (it may have taken a foreign block) */
#define HK_TF_CTL 0x04u      /* SET: a decision of a knob controller (vclock.h) */
#define HK_TF_FAILED 0x08u   /* the call failed (NULL / non-zero return); err holds errno or the rc */

typedef struct hk_trec {
    uint64_t out;   /* block returned (allocating ops; 0 on failure); USABLE: the answer; SET: value;
                     * EXT: usable size of the block passed in */
    uint64_t in;    /* block passed in (FREE, REALLOC*, USABLE); CALLOC: nmemb; MEMALIGN family: alignment;
                     * SET: option index; EXT: nmemb (REALLOCARRAY) */
    uint64_t size;  /* requested size (per element for CALLOC / REALLOCARRAY); FREE: usable size of the
                     * freed block; EXT: 0 */
    uint32_t epoch; /* global epoch (see above); EXT: the epoch at entry */
    uint8_t kind;
    uint8_t path;
    uint8_t err;
    uint8_t flags;
} hk_trec_t;

_Static_assert(sizeof(hk_trec_t) == HK_TRACE_REC_SIZE, "records are 32 bytes on disk and in memory");

/* ---- ring mode: compact records in memory -------------------------------------------------- */
/* A ring holds 16-byte slots; the dumper expands them to the 32-byte records above (the file format does
 * not change). A record takes one slot (short) or two (long):
 *
 *   short  w0: the block (ALLOC: returned; FREE: freed)
 *          w1: bits 0..31 epoch, 32..55 arg, 56..63 tag: bits 0..3 kind (ALLOC, FREE, or HK_TS_PAD: no
 *              record), 0x10 in flight, 0x20 epoch bumped, 0x40 BigCache; bit 7 clear
 *          ALLOC: arg = the size (< 16 MiB); the path follows from it (its class, or large / BigCache)
 *          FREE of a slab block: arg = its class (unit_cls) as path; the usable size follows from it
 *   long   the 32-byte hk_trec_t itself, with HK_TF_LONG in flags: bit 7 of its second slot's tag byte
 *
 * So the dumper, walking back from the newest slot (always the end of a record), tells every record
 * apart. The fast paths write one complete short record before the op; an op that crashes inside them
 * is found by the crash handler from the faulting pc (they live in section hk_op_text) or by a
 * hardened report, and the dumper writes that thread's last record in its in-flight form. Everything
 * else (failures, large frees, realloc, calloc, aligned, SET, sizes from 16 MiB) is written long, in
 * flight before the call and completed after it, as in full mode. */
typedef struct hk_tslot {
    uint64_t w0, w1;
} hk_tslot_t;

#define HK_TS_PAD 15u         /* tag kind: a slot skipped at the ring's end before a long record */
#define HK_TS_INFLIGHT 0x10u  /* tag: the call had not returned */
#define HK_TS_BUMP 0x20u      /* tag: the epoch was bumped for this op */
#define HK_TS_BIGCACHE 0x40u  /* tag: a large ALLOC served by the BigCache */
#define HK_TF_LONG 0x80u      /* flags of a long record in a ring (cleared in the dump) */
#define HK_TS_ARG_MAX 0xFFFFFFull
#define HK_TS_W1(ep, arg, tag) \
    ((uint64_t)(uint32_t)(ep) | ((uint64_t)(arg) & HK_TS_ARG_MAX) << 32 | (uint64_t)(uint8_t)(tag) << 56)

/* ---- per-thread buffer ------------------------------------------------------------------------ */
enum { HK_TT_FREE = 0, HK_TT_LIVE = 1, HK_TT_DEAD = 2 };

/* Ring mode: where the calling thread's next record goes. It lives in the thread heap (hk_heap_t.trace,
 * tiny/heap.h): the fast paths reach it from the heap's TLS base, which they compute anyway. */
typedef struct hk_trace_cur {
    hk_tslot_t *pos; /* the next slot; the fast paths write there while pos != end. Only the owner writes
                      * it (release: the crash dumper reads up to it) */
    hk_tslot_t *end; /* slots + cap. NULL, NULL in full mode and before the thread's ring exists: every
                      * op takes the recording wrappers' slow path */
} hk_trace_cur_t;

typedef struct hk_trace_thr {
    hk_trace_cur_t *cur;        /* ring: the owner's hk_tls_heap.trace while it lives, then &parked. Changed
                                 * under lock, which the dumper holds while it reads the ring */
    hk_trace_cur_t parked;      /* ring: the cursor of an exited thread */
    hk_tslot_t *slots;          /* ring: cap slots, mmap'd; NULL in full mode */
    _Atomic uint64_t wraps;     /* ring: times pos went back to slots (slots written = wraps * cap + pos - slots) */
    _Atomic uint64_t extra;     /* ring: slots written that are not records (pads, second halves) */
    _Atomic uint32_t seq;       /* ring: odd while the owner changes wraps, extra or pos in a slow path */
    uint32_t cap;               /* full mode: records; ring: slots (two per record it must keep) */
    uint32_t mask;              /* cap - 1 */
    uint32_t written;           /* full mode: records of rec[0..pos) already written by another flusher */
    _Atomic uint64_t published; /* full mode: records appended so far; the next goes to rec[published &
                                 * mask]. Only the owner writes it (release: the crash dumper reads up to it) */
    uint64_t limit;             /* full mode: base + cap, where the buffer must be written */
    hk_trec_t *rec;             /* full mode: cap records (a power of two), mmap'd */
    uint64_t base;              /* full mode: index (in the thread's stream) of rec[0], a multiple of cap */
    uint32_t slot;              /* thread index in the trace */
    uint32_t tid;               /* OS thread id */
    _Atomic uint32_t state;     /* HK_TT_* */
    _Atomic uint32_t lock;      /* full mode: writes to the file of this buffer; ring: cur and the ring's
                                 * reader */
} hk_trace_thr_t;

/* ---- global state ----------------------------------------------------------------------------- */
extern HK_HIDDEN uint8_t hk_trace_on;              /* the one byte the fast path tests */
extern HK_HIDDEN _Atomic uint32_t hk_trace_epoch;
extern HK_HIDDEN __thread hk_trace_thr_t *hk_trace_me __attribute__((tls_model("initial-exec")));
extern HK_HIDDEN __thread uint8_t hk_trace_large_hit __attribute__((tls_model("initial-exec")));

/* Init (api/init.c, after the options are read): opens the file / arms the ring, installs the crash
 * handlers and the hardened-report hook, then sets hk_trace_on. */
HK_HIDDEN void hk_trace_init(void);
HK_HIDDEN void hk_trace_thread_exit(void); /* api/init.c: thread destructor */
HK_HIDDEN void hk_trace_fork_child(void);  /* api/init.c: atfork child */
/* Creates the calling thread's buffer; NULL if none can be had (the op goes unrecorded). */
HK_HIDDEN hk_trace_thr_t *hk_trace_thread_start(void);
/* Full mode: writes the calling thread's full buffer (what another flusher did not write yet) and
 * starts the next. */
HK_HIDDEN void hk_trace_flush_full(hk_trace_thr_t *t);
/* Writes every buffer to `path` now (ring: the ring; full: what is not written yet) followed by a crash
 * chunk when sig != 0. Async-signal-safe. Returns 0 or -1. Tests and hak_debug callers use it with sig 0. */
HK_HIDDEN int hk_trace_dump(const char *path, int sig, int from_report);
/* Records a SET (option index, value) on the calling thread. */
HK_HIDDEN void hk_trace_record_set(unsigned opt, uint64_t value, int from_ctl);
/* The 64-bit chunk checksum (docs/trace-format.md). */
HK_HIDDEN uint64_t hk_trace_sum64(uint64_t h, const void *data, size_t n);

/* ---- the append path (inline: ring mode must stay cheap) -------------------------------------- */
/* The record's last 8 bytes (epoch, kind, path, err, flags), written as one store. */
#define HK_TR_TAIL(ep, kind, path, err, flags)                                                       \
    ((uint64_t)(uint32_t)(ep) | (uint64_t)(uint8_t)(kind) << 32 | (uint64_t)(uint8_t)(path) << 40 | \
     (uint64_t)(uint8_t)(err) << 48 | (uint64_t)(uint8_t)(flags) << 56)

/* Ring mode: makes room for n (1 or 2) slots before the ring's end (pads the rest and wraps). Returns pos. */
HK_HIDDEN hk_tslot_t *hk_trace_ring_room(hk_trace_thr_t *t, unsigned n);
/* Ring mode: a long record in its in-flight form (two slots), published. */
HK_HIDDEN hk_trec_t *hk_trace_begin_long(hk_trace_thr_t *t, unsigned kind, uint64_t in, uint64_t size, uint32_t epoch);
/* Ring mode: turns the short record s (the calling thread's, already published) into padding. */
HK_HIDDEN void hk_trace_ring_cancel(hk_trace_thr_t *t, hk_tslot_t *s);

/* t: the calling thread's (hk_trace_me). */
HK_INLINE hk_tslot_t *hk_trace_ring_reserve(hk_trace_thr_t *t, unsigned n) {
    hk_tslot_t *s = t->cur->pos;
    if (HAK_UNLIKELY((size_t)(t->cur->end - s) < n)) s = hk_trace_ring_room(t, n);
    return s;
}
HK_INLINE void hk_trace_ring_publish(hk_trace_cur_t *c, hk_tslot_t *next) { __atomic_store_n(&c->pos, next, __ATOMIC_RELEASE); }
/* Ring mode, slow wrappers: a short record (block w0, argument arg, kind) published in flight before
 * the call, and completed after it with its final epoch, argument and tag. */
HK_INLINE hk_tslot_t *hk_trace_short_begin(hk_trace_thr_t *t, uint64_t w0, uint32_t ep, uint64_t arg, unsigned kind) {
    hk_tslot_t *s = hk_trace_ring_reserve(t, 1);
    s->w0 = w0;
    s->w1 = HK_TS_W1(ep, arg, kind | HK_TS_INFLIGHT);
    hk_trace_ring_publish(t->cur, s + 1);
    return s;
}
HK_INLINE void hk_trace_short_end(hk_tslot_t *s, uint32_t ep, uint64_t arg, unsigned tag) {
    __atomic_store_n(&s->w1, HK_TS_W1(ep, arg, tag), __ATOMIC_RELEASE);
}

/* Full mode: writes record i of t in its in-flight form and publishes it (the caller checked i < t->limit). */
HK_INLINE hk_trec_t *hk_trace_put(hk_trace_thr_t *t, uint64_t i, uint64_t in, uint64_t size, uint64_t tail) {
    hk_trec_t *r = &t->rec[i & t->mask];
    r->out = 0;
    r->in = in;
    r->size = size;
    __builtin_memcpy(&r->epoch, &tail, 8);
    atomic_store_explicit(&t->published, i + 1, memory_order_release);
    return r;
}

/* Reserves the next record of the calling thread and marks it in flight; NULL if unrecorded. The
 * record is visible to the crash dumper at once, so an op that crashes inside the allocator is in the
 * dump. In a ring it is a long record. */
HK_INLINE hk_trec_t *hk_trace_begin(unsigned kind, uint64_t in, uint64_t size, uint32_t epoch) {
    hk_trace_thr_t *t = hk_trace_me;
    if (HAK_UNLIKELY(t == NULL) && (t = hk_trace_thread_start()) == NULL) return NULL;
    if (t->slots != NULL) return hk_trace_begin_long(t, kind, in, size, epoch);
    uint64_t h = atomic_load_explicit(&t->published, memory_order_relaxed);
    if (HAK_UNLIKELY(h >= t->limit)) hk_trace_flush_full(t); /* full mode: the buffer is full */
    return hk_trace_put(t, h, in, size, HK_TR_TAIL(epoch, kind, HK_TPATH_NONE, 0, HK_TF_INFLIGHT));
}

HK_INLINE void hk_trace_end(hk_trec_t *r, uint64_t out, unsigned path, uint32_t epoch, unsigned flags, int err) {
    if (r == NULL) return;
    r->out = out;
    /* one store: the record is complete once the in-flight flag is clear (a crash dump copies it) */
    __atomic_store_n((uint64_t *)(void *)&r->epoch,
                     HK_TR_TAIL(epoch, r->kind, path, err > 255 ? 255 : err, flags | (r->flags & HK_TF_LONG)),
                     __ATOMIC_RELEASE);
}

HK_INLINE uint32_t hk_trace_epoch_now(void) { return atomic_load_explicit(&hk_trace_epoch, memory_order_relaxed); }
/* The value after this thread's bump: larger than every epoch a releasing thread read before its block
 * could have reached us (read-modify-write coherence). */
HK_INLINE uint32_t hk_trace_epoch_bump(void) { return atomic_fetch_add_explicit(&hk_trace_epoch, 1, memory_order_acq_rel) + 1; }

#endif
