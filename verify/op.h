/* The op program: one language for heap activity (fuzz inputs, recorded traces, replays, regressions).
 *
 * A program is an array of ops. Blocks are named by small ids (0 .. HK_OP_MAX_IDS-1), never by
 * addresses, so a program means the same thing on every allocator and in every process.
 *
 * Three forms, all decoding to the same hk_prog_t (layouts in docs/op-program.md):
 *   - fuzz bytes  (hk_prog_from_fuzz):  any byte string is a valid program; sizes biased toward
 *                                        interesting values. Inverse: hk_prog_to_fuzz.
 *   - binary      (hk_prog_encode / hk_prog_decode): "HKOP" + version + count, varint records,
 *                                        CRC-32 trailer; corrupt input is rejected with a byte offset.
 *   - text        (hk_prog_print_text / hk_prog_parse_text): one op per line, "# comments".
 *
 * Semantics every interpreter keeps (interp.h):
 *   - An allocating op on an id that still holds a block frees that block first.
 *   - REALLOC / REALLOCARRAY of an empty id behave as malloc of the (total) size.
 *   - FREE and USABLE of an empty id do nothing (never pass a dangling pointer to the allocator).
 *   - THREAD t: the following ops run on logical thread t (0 .. HK_OP_MAX_THREADS-1).
 *   - SET knob value: hak_debug_set_option(name, value) on hakmem; a no-op on glibc.
 *   - CHECK: run the checkers now (full shadow sweep, heap walker).
 */
#ifndef HK_VERIFY_OP_H
#define HK_VERIFY_OP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits --------------------------------------------------------------------------------- */
#define HK_OP_MAX_IDS (1u << 20)        /* ids are 0 .. HK_OP_MAX_IDS-1 (binary and text forms) */
#define HK_OP_MAX_THREADS 8u            /* logical threads 0 .. 7 */
#define HK_OP_MAX_OPS (1u << 28)        /* longest program any decoder accepts */
#define HK_OP_MAX_SIZE_DEFAULT ((uint64_t)4 << 20) /* interpreters skip bigger requests unless allowed */
/* Requests at or above this size (or alignment) can never be satisfied on any supported machine (the
 * address space is at most 2^57), so they always run: they test the ENOMEM / EINVAL paths without
 * using memory. Between the max size and this bound an op is skipped unless large sizes are allowed. */
#define HK_OP_SIZE_HUGE ((uint64_t)1 << 60)

/* ---- ops ------------------------------------------------------------------------------------ */
/* The numeric values are part of the binary and fuzz formats: append only, never renumber. */
typedef enum hk_op_kind {
    HK_OP_ALLOC = 0,          /* id size:        malloc(size) */
    HK_OP_CALLOC = 1,         /* id nmemb size:  calloc(nmemb, size) */
    HK_OP_REALLOC = 2,        /* id size:        realloc(block(id), size) */
    HK_OP_MEMALIGN = 3,       /* id align size:  memalign(align, size) */
    HK_OP_POSIX_MEMALIGN = 4, /* id align size:  posix_memalign(&p, align, size) */
    HK_OP_ALIGNED_ALLOC = 5,  /* id align size:  aligned_alloc(align, size) */
    HK_OP_FREE = 6,           /* id:             free(block(id)) */
    HK_OP_USABLE = 7,         /* id:             malloc_usable_size(block(id)) */
    HK_OP_SET = 8,            /* knob value:     hak_debug_set_option(knob name, value) */
    HK_OP_THREAD = 9,         /* t:              following ops run on logical thread t */
    HK_OP_CHECK = 10,         /*                 run the checkers now */
    HK_OP_VALLOC = 11,        /* id size:        valloc(size) */
    HK_OP_PVALLOC = 12,       /* id size:        pvalloc(size) */
    HK_OP_REALLOCARRAY = 13,  /* id nmemb size:  reallocarray(block(id), nmemb, size) */
    HK_OP_KIND_COUNT = 14
} hk_op_kind_t;

/* One op. Field use per kind:
 *   id:   block id (block ops), knob index (SET), thread index (THREAD), 0 otherwise
 *   arg:  nmemb (CALLOC, REALLOCARRAY), alignment (MEMALIGN family), value (SET), 0 otherwise
 *   size: bytes per element / requested size (allocating ops), 0 otherwise
 * Unused fields are 0 in every decoded program (the codecs rely on it for round trips). */
typedef struct hk_op {
    uint8_t kind;
    uint8_t pad[3];
    uint32_t id;
    uint64_t arg;
    uint64_t size;
} hk_op_t;

typedef struct hk_prog {
    hk_op_t *ops;
    size_t n, cap;
    uint32_t id_count;     /* 1 + largest block id used (0 if none) */
    uint32_t thread_count; /* 1 + largest THREAD target (at least 1) */
} hk_prog_t;

/* Knobs for SET: a stable index (binary/fuzz forms) -> a text name and the hakmem option name passed
 * to hak_debug_set_option. The fuzz decoder draws values in [min, max] and, rarely, outside it (a bad
 * value must be rejected with EINVAL and change nothing). Append only. */
typedef struct hk_op_knob {
    const char *name;    /* text form: "set tiny_cap 64" */
    const char *option;  /* name given to hak_debug_set_option */
    uint64_t min, max;   /* the documented valid range */
    const char *choices; /* enum options: "off|auto|on" (value = index), else NULL */
} hk_op_knob_t;

extern const hk_op_knob_t hk_op_knobs[];
extern const unsigned hk_op_knob_count;
int hk_op_knob_find(const char *name, size_t len); /* index, or -1 */
/* The string SET passes for value v: the choice name for enum knobs (when v names one), else decimal. */
void hk_op_knob_value_str(const hk_op_knob_t *k, uint64_t v, char *buf, size_t len);

/* ---- program ----------------------------------------------------------------------------- */
void hk_prog_init(hk_prog_t *p);
void hk_prog_free(hk_prog_t *p);              /* releases the ops; p is empty and reusable */
void hk_prog_clear(hk_prog_t *p);             /* keeps the capacity */
int hk_prog_reserve(hk_prog_t *p, size_t n);  /* 0, or -1 on out of memory */
int hk_prog_push(hk_prog_t *p, hk_op_t op);   /* appends, updates the counts; 0 or -1 */
void hk_prog_recount(hk_prog_t *p);           /* recomputes id_count / thread_count after edits */
int hk_prog_equal(const hk_prog_t *a, const hk_prog_t *b);
int hk_prog_copy(hk_prog_t *dst, const hk_prog_t *src);

/* Returns 0 when the op is well formed (kind known, id/thread/knob in range, unused fields 0);
 * otherwise -1 and a reason in why (if non-NULL). */
int hk_op_validate(const hk_op_t *op, const char **why);

const char *hk_op_kind_name(unsigned kind); /* "alloc", "posix_memalign", ... or "?" */
int hk_op_kind_from_name(const char *s, size_t len); /* kind or -1 */
int hk_op_is_block_op(unsigned kind);   /* names a block id */
int hk_op_allocates(unsigned kind);     /* may produce a new block */
/* One op as one text line (no newline) into buf; returns the length snprintf would write. */
int hk_op_format(const hk_op_t *op, char *buf, size_t len);

/* ---- fuzz bytes ---------------------------------------------------------------------------- */
#define HK_FUZZ_IDS 64u          /* ids are taken modulo this */
#define HK_FUZZ_MAX_OPS 4096u    /* decoding stops after this many ops */
#define HK_FUZZ_LARGE_MAX ((uint64_t)4 << 20)

/* Decodes any byte string into a valid program (appended to p, which is cleared first). Never fails
 * except on out of memory (-1). Deterministic and independent of the allocator being tested. */
int hk_prog_from_fuzz(hk_prog_t *p, const uint8_t *data, size_t n);
/* Encodes a program as fuzz bytes that decode back to exactly it. Returns 0, or -1 when an op cannot
 * be expressed (id >= HK_FUZZ_IDS, thread >= HK_OP_MAX_THREADS, more than HK_FUZZ_MAX_OPS ops, a SET
 * value above 2^32-1) or on out of memory. *out is malloc'd (glibc), free() it. */
int hk_prog_to_fuzz(const hk_prog_t *p, uint8_t **out, size_t *len);

/* ---- binary form ------------------------------------------------------------------------- */
#define HK_BIN_MAGIC "HKOP"
#define HK_BIN_VERSION 1u
#define HK_BIN_HEADER_SIZE 16u
#define HK_BIN_TRAILER_SIZE 4u

/* Encodes into a malloc'd buffer. 0, or -1 if the program holds an invalid op or on out of memory. */
int hk_prog_encode(const hk_prog_t *p, uint8_t **out, size_t *len);
/* Decodes; on error returns -1 and writes "offset N: what" into err (if errlen > 0). Never reads
 * outside [data, data+n). p is cleared first; on error it holds nothing useful. */
int hk_prog_decode(hk_prog_t *p, const uint8_t *data, size_t n, char *err, size_t errlen);
/* Writes the encoding to f. 0 or -1. */
int hk_prog_write_binary(FILE *f, const hk_prog_t *p);

/* CRC-32 (ISO-HDLC, the zlib/PNG one). crc = 0 to start. */
uint32_t hk_op_crc32(uint32_t crc, const void *data, size_t n);

/* ---- text form ---------------------------------------------------------------------------- */
/* Parses; on error returns -1 and writes "line:col: what" into err. p is cleared first. */
int hk_prog_parse_text(hk_prog_t *p, const char *text, size_t len, char *err, size_t errlen);
/* Prints one op per line. Returns 0, or -1 on a write error. */
int hk_prog_print_text(FILE *f, const hk_prog_t *p);
/* The text form in a malloc'd NUL-terminated buffer, or NULL on out of memory. */
char *hk_prog_to_text(const hk_prog_t *p, size_t *len);

/* ---- files ------------------------------------------------------------------------------- */
/* Loads a binary (starts with "HKOP") or text program from a file ("-" = stdin). On error returns -1
 * with "path: offset N: ..." or "path:line:col: ..." in err. */
int hk_prog_load_file(hk_prog_t *p, const char *path, char *err, size_t errlen);
/* Saves in binary (binary != 0) or text form. 0 or -1 (errno set). */
int hk_prog_save_file(const hk_prog_t *p, const char *path, int binary);

#ifdef __cplusplus
}
#endif
#endif /* HK_VERIFY_OP_H */
