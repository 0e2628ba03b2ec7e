/* The interpreter: runs an op program against a backend (hakmem through hak_*, or the process malloc,
 * which is glibc when linked with hakmem_prefixed), keeps the shadow heap, and runs the checkers.
 *
 * Two runners share one step function:
 *   - serial:    one OS thread; THREAD ops are logical switches (fully deterministic).
 *   - turnstile: one OS thread per logical thread; a global turn counter admits each thread only at its
 *                op's turn, so frees of blocks allocated by another thread are real cross-thread frees
 *                while the order of every op stays exactly the program's.
 *
 * Every allocated block is filled with the pattern of shadow.h; every op's observable result is
 * recorded (optionally into a caller array) so runs can be compared op by op.
 */
#ifndef HK_VERIFY_INTERP_H
#define HK_VERIFY_INTERP_H

#include <stddef.h>
#include <stdint.h>

#include "hakmem_debug.h"
#include "op.h"
#include "report.h"
#include "shadow.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- backends --------------------------------------------------------------------------------- */
typedef enum hk_backend_kind { HK_BACKEND_HAKMEM = 0, HK_BACKEND_GLIBC = 1 } hk_backend_kind_t;

/* The malloc family of one allocator. Tests may build their own (a fake that misbehaves on purpose).
 * set_option/get_option/check_thread/check_heap may be NULL (not supported: SET is a no-op, no checks). */
typedef struct hk_backend {
    const char *name;
    void *(*malloc_fn)(size_t);
    void (*free_fn)(void *);
    void *(*calloc_fn)(size_t, size_t);
    void *(*realloc_fn)(void *, size_t);
    void *(*reallocarray_fn)(void *, size_t, size_t);
    int (*posix_memalign_fn)(void **, size_t, size_t);
    void *(*aligned_alloc_fn)(size_t, size_t);
    void *(*memalign_fn)(size_t, size_t);
    void *(*valloc_fn)(size_t);
    void *(*pvalloc_fn)(size_t);
    size_t (*usable_fn)(void *);
    int (*set_option)(const char *name, const char *value);
    long long (*get_option)(const char *name);
    int (*check_thread)(hak_check_report_t *rep);
    int (*check_heap)(hak_check_report_t *rep);
} hk_backend_t;

extern const hk_backend_t hk_backend_hakmem;
/* glibc: the process malloc; in sanitizer builds (HK_VERIFY_REAL_LIBC) its entries are replaced at load
 * time by libc.so.6's own definitions (libc.c), since the process malloc is then the sanitizer's. */
extern hk_backend_t hk_backend_glibc;
const hk_backend_t *hk_backend_get(hk_backend_kind_t kind);
/* Fills be's malloc family with libc.so.6's own definitions. 0, or -1 if libc was not found. */
int hk_interp_libc_resolve(hk_backend_t *be);
/* Makes sure hk_backend_glibc is resolved (a no-op outside sanitizer builds). */
void hk_interp_libc_ensure(void);

/* ---- per-op results --------------------------------------------------------------------------- */
typedef enum hk_res_status {
    HK_RES_NONE = 0,    /* nothing observable: THREAD, CHECK, SET on a backend without options */
    HK_RES_OK = 1,      /* the call succeeded (a block, a usable size, an option set) */
    HK_RES_FAIL = 2,    /* the call failed: NULL / non-zero return; err holds errno or the return code */
    HK_RES_FREED = 3,   /* realloc to 0 bytes returned NULL and freed the block */
    HK_RES_SKIPPED = 4, /* not run: beyond the size limit */
    HK_RES_EMPTY = 5,   /* FREE / USABLE of an id that holds no block */
} hk_res_status_t;

typedef struct hk_op_result {
    void *ptr;        /* the block after the op (allocating ops), else NULL */
    uint64_t usable;  /* usable size of that block, or the USABLE answer */
    int32_t err;      /* errno after a failure (posix_memalign: its return value), else 0 */
    uint8_t status;   /* hk_res_status_t */
    uint8_t align_ok; /* 1 if the block met the alignment owed (1 when there is no block) */
    uint8_t pad[2];
} hk_op_result_t;

/* Same observable outcome (status, err, usable, alignment), ignoring the address. */
int hk_op_result_same(const hk_op_result_t *a, const hk_op_result_t *b);

/* ---- options ---------------------------------------------------------------------------------- */
enum {
    HK_CHECK_SHADOW = 1u << 0,  /* overlap (address treap), alignment, usable-size checks */
    HK_CHECK_CONTENT = 1u << 1, /* fill the pattern; verify touched blocks, neighbours, sweep on CHECK */
    HK_CHECK_THREAD = 1u << 2,  /* backend check_thread (TLS-SLL) after every op, on the op's thread */
    HK_CHECK_HEAP = 1u << 3,    /* backend check_heap on CHECK ops and at the end */
    HK_CHECK_ALL = 0xFu,
    HK_INTERP_ALLOW_LARGE = 1u << 8,  /* run requests above max_size too */
    HK_INTERP_FILL_REQUESTED = 1u << 9, /* pattern over the requested bytes only (not usable slack) */
    HK_INTERP_NO_CLEANUP = 1u << 10, /* leave blocks live at the end (they leak) */
};

typedef struct hk_interp_opts {
    unsigned flags;           /* HK_CHECK_* | HK_INTERP_* */
    uint64_t max_size;        /* 0 = HK_OP_MAX_SIZE_DEFAULT */
    uint64_t sample_limit;    /* blocks above this are filled/verified by samples; 0 = 4 KiB */
    uint32_t thread_check_period; /* HK_CHECK_THREAD runs after every Nth op (and on CHECK, at the
                                   * end); 0 or 1 = every op. The walk costs O(cached blocks), which
                                   * dominates a fuzz exec when run after every op. */
    hk_op_result_t *results;  /* optional: prog->n entries, filled op by op */
} hk_interp_opts_t;

/* ---- one interpreter = one backend's view of one run ------------------------------------------- */
typedef struct hk_interp {
    const hk_prog_t *prog;
    const hk_backend_t *be;
    hk_interp_opts_t opts;
    uint64_t max_size;
    uint64_t page;
    hk_shadow_t shadow;
    long long *knob_saved;    /* value before the run's first SET of each knob */
    uint8_t *knob_touched;
    int failed;               /* a failure was reported: cleanup leaks instead of freeing */
    size_t ops_run;
} hk_interp_t;

/* 0, or -1 on out of memory. opts may be NULL (all checks, default limits). */
int hk_interp_init(hk_interp_t *in, const hk_prog_t *prog, const hk_backend_t *be,
                   const hk_interp_opts_t *opts);
/* Runs op i on the calling thread as logical thread `thread`. res (optional) gets the result.
 * Returns 0, or 1 with f filled (op_index, thread and backend set). */
int hk_interp_step(hk_interp_t *in, size_t i, unsigned thread, hk_op_result_t *res, hk_verify_failure_t *f);
/* End of program: full sweep, heap check, frees every live block (checking each), heap check again,
 * restores the knobs SET changed. Returns 0 or 1. */
int hk_interp_finish(hk_interp_t *in, hk_verify_failure_t *f);
/* Frees what is still live (unless a failure was seen: then it leaks, because the allocator is known
 * broken), restores knobs, releases the interpreter's memory. Safe after finish. */
void hk_interp_destroy(hk_interp_t *in);
/* Forgets and frees the block of id without checks (the oracle uses it to re-converge two backends
 * after a tolerated divergence). */
void hk_interp_drop(hk_interp_t *in, uint32_t id);

/* ---- runners ---------------------------------------------------------------------------------- */
/* A step: run op i as logical thread t. 0 = go on, 1 = failure (f filled): the run stops. */
typedef int (*hk_interp_step_fn)(void *ctx, size_t i, unsigned thread, hk_verify_failure_t *f);

/* Serial: ops in order on the calling thread. Returns 0 or 1. */
int hk_interp_run_serial(const hk_prog_t *prog, hk_interp_step_fn step, void *ctx, hk_verify_failure_t *f);
/* Turnstile: one OS thread per logical thread that owns ops; each op runs on its own thread at its
 * turn. Returns 0 or 1 (a failure stops every thread). */
int hk_interp_run_turnstile(const hk_prog_t *prog, hk_interp_step_fn step, void *ctx, hk_verify_failure_t *f);

/* Convenience: init + run (serial, or turnstile when threaded) + finish + destroy. 0 or 1. */
int hk_interp_run(const hk_prog_t *prog, const hk_backend_t *be, const hk_interp_opts_t *opts,
                  int threaded, hk_verify_failure_t *f);

#ifdef __cplusplus
}
#endif
#endif /* HK_VERIFY_INTERP_H */
