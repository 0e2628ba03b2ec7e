/* Reading (and, for tests and fuzzing, writing) trace files: docs/trace-format.md.
 *
 * The reader trusts nothing: every length is checked against the bytes present before it is used,
 * every chunk's checksum is verified, and every error names the byte offset where the bad data starts
 * ("offset 4136: chunk 3: checksum mismatch ..."). With salvage set, a bad or truncated chunk ends the
 * trace instead of failing it (what came before is kept, and a warning says where it stopped).
 */
#ifndef HK_TOOLS_TFILE_H
#define HK_TOOLS_TFILE_H

#include <stddef.h>
#include <stdint.h>

#define HK_TF_MAGIC "HKTR"
#define HK_TF_VERSION 2u /* 2: 21 tiny + 24 mid classes in `path`; 1: 8 + 24 (read, paths renumbered) */
#define HK_TR_TINY_CLASSES 21u /* path < this: a tiny class; < HK_TR_CLASSES: a mid class */
#define HK_TR_CLASSES 45u
#define HK_TF_RECSIZE 32u
#define HK_TF_SEED 0x484b5452u
#define HK_TF_MAX_THREADS 65536u

/* record kinds beyond the op kinds (0..13) */
#define HK_TR_KIND_EXT 0x3Fu
/* paths */
#define HK_TR_PATH_LARGE 0x40u
#define HK_TR_PATH_BIGCACHE 0x41u
#define HK_TR_PATH_NONE 0xFFu
/* record flags */
#define HK_TR_F_INFLIGHT 0x01u
#define HK_TR_F_BUMP 0x02u
#define HK_TR_F_CTL 0x04u
#define HK_TR_F_FAILED 0x08u
/* chunk flags */
#define HK_TR_CK_RING 0x1u
#define HK_TR_CK_EXITED 0x2u
#define HK_TR_CK_CRASHED 0x4u

typedef struct hk_trec_file {
    uint64_t out, in, size;
    uint32_t epoch;
    uint8_t kind, path, err, flags;
} hk_trec_file_t;

typedef struct hk_tthread {
    uint32_t slot, tid;
    uint64_t first;          /* stream index of rec[0] (> 0: the start was cut off, e.g. by the ring) */
    hk_trec_file_t *rec;
    size_t n, cap;
    unsigned flags;          /* union of its chunks' flags */
    uint64_t gaps;           /* records missing between chunks */
} hk_tthread_t;

typedef struct hk_trace_file {
    uint16_t version, flags;  /* flags: bit0 ring, bit1 crash dump */
    uint32_t header_size;
    uint64_t ring_cap;
    uint32_t pid, nthreads_hdr;
    char *text;               /* the header's text lines (NUL-terminated copy) */
    hk_tthread_t *thr;
    size_t nthr;
    size_t nchunks, nrecords;
    int crashed;              /* a crash chunk was found */
    uint32_t crash_sig, crash_tid;
    uint16_t crash_slot, crash_flags; /* crash_flags bit0: from a hardened report */
    int ended;                /* an end chunk was found */
    uint64_t end_total;
    uint32_t end_lost;        /* threads the recorder could not give a buffer */
    char warn[256];           /* first warning (salvaged data, chunks after the end) */
} hk_trace_file_t;

void hk_tf_init(hk_trace_file_t *t);
void hk_tf_free(hk_trace_file_t *t);
/* 0, or -1 with "offset N: ..." in err. */
int hk_tf_parse(hk_trace_file_t *t, const uint8_t *data, size_t n, int salvage, char *err, size_t errlen);
int hk_tf_load(hk_trace_file_t *t, const char *path, int salvage, char *err, size_t errlen);
/* Whether a file starts with the trace magic. */
int hk_tf_is_trace(const uint8_t *data, size_t n);
/* Reads a whole file into a malloc'd buffer ("-" = stdin). 0 or -1 (errno). */
int hk_tf_read_all(const char *path, uint8_t **out, size_t *len);

/* Value of "key=" in the header text, copied into buf; 0 if found, -1 if not. */
int hk_tf_header_value(const hk_trace_file_t *t, const char *key, char *buf, size_t len);
/* Name of the option with index i in the recording build (from the "opts=" line), or NULL. */
int hk_tf_option_name(const hk_trace_file_t *t, unsigned i, char *buf, size_t len);

uint64_t hk_tf_sum64(uint64_t h, const void *data, size_t n);

/* ---- writing (tests, the fuzz harness, hakmem-trace) ------------------------------------------ */
/* Serialises t (header text, one chunk per thread, the crash and end chunks as t says) into a malloc'd
 * buffer. 0 or -1. */
int hk_tf_write(const hk_trace_file_t *t, uint8_t **out, size_t *len);
/* Recomputes every checksum of a trace image in place, walking the chunks as the reader does (stops at
 * the first structure it cannot follow). For fuzzing past the checksums. */
void hk_tf_fix_sums(uint8_t *data, size_t n);

#endif
