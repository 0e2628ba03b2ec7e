/* From a recorded trace to a replay program: addresses become block ids, per-thread streams become one
 * total order, blocks whose allocation the ring cut off are re-created.
 *
 * A replay program is an op program (verify/op.h) without THREAD ops plus, per op, the thread that ran
 * it (any number of threads; the op-program form itself allows 8). Converting back to an op program
 * inserts THREAD ops (threads beyond 8 are folded, with a warning).
 *
 * The order (docs/trace-format.md, "From records to a program"): a k-way merge of the per-thread
 * streams by epoch. Within one epoch the merge repairs what the coarse stamp cannot tell: a use (free,
 * realloc, usable) of an address that is not live waits for another thread's hand-out of that address in
 * the same or an earlier epoch, and a hand-out of a live address waits for another thread's realloc
 * that released it. If nothing can go, the smallest stamp goes (a misuse in the recorded program).
 */
#ifndef HK_TOOLS_TCONV_H
#define HK_TOOLS_TCONV_H

#include <stddef.h>
#include <stdint.h>

#include "op.h"
#include "tfile.h"

/* meta flags */
#define HK_RM_SYNTH 0x01u    /* re-created: its allocation was not in the trace */
#define HK_RM_INFLIGHT 0x02u /* the op had not returned when the trace was written */
#define HK_RM_CTL 0x04u      /* SET decided by a knob controller (dropped by --learning=off) */
#define HK_RM_RAWSET 0x08u   /* SET of an option outside the op-program knob table: id indexes rp->raw */

typedef struct hk_rmeta {
    uint16_t thread;
    uint8_t path;  /* recorded path (HK_TR_PATH_*), 0xFF if none */
    uint8_t flags; /* HK_RM_* */
} hk_rmeta_t;

typedef struct hk_rawset {
    char name[64];
    char value[256]; /* as long as the longest value tconv reads (an option list such as a class override) */
} hk_rawset_t;

typedef struct hk_rprog {
    hk_prog_t prog;      /* ops; THREAD ops (from op programs) are kept as no-ops */
    hk_rmeta_t *meta;    /* prog.n entries */
    size_t meta_cap;
    uint32_t nthreads;
    hk_rawset_t *raw;
    size_t nraw;
    char expect[96];     /* expected signature ("signal:SIGSEGV", "report", "ok"), "" = none */
    /* conversion notes */
    uint64_t synthesized, misuse, repaired, forced, inflight;
} hk_rprog_t;

void hk_rprog_init(hk_rprog_t *rp);
void hk_rprog_free(hk_rprog_t *rp);
int hk_rprog_push(hk_rprog_t *rp, hk_op_t op, hk_rmeta_t m);
int hk_rprog_copy(hk_rprog_t *dst, const hk_rprog_t *src);

/* Trace -> replay program. 0, or -1 with a message. */
int hk_rprog_from_trace(hk_rprog_t *rp, const hk_trace_file_t *tf, char *err, size_t errlen);
/* Op program -> replay program (THREAD ops give the threads). */
int hk_rprog_from_prog(hk_rprog_t *rp, const hk_prog_t *p);
/* Replay program -> op program (THREAD ops inserted; threads >= 8 folded onto t % 8, *folded set). */
int hk_rprog_to_prog(const hk_rprog_t *rp, hk_prog_t *p, int *folded);
/* Loads a trace (HKTR), a binary op program (HKOP) or a text op program. A text program may carry
 * "# expect: SIGNATURE". 0, or -1 with "path: offset N: ..." in err. */
int hk_rprog_load(hk_rprog_t *rp, const char *path, int salvage, char *err, size_t errlen);
/* Renumbers threads by first appearance and ids densely (after ops were removed). */
void hk_rprog_compact(hk_rprog_t *rp);
/* The signal name ("SIGSEGV") or "SIG<n>". */
const char *hk_signame(int sig);

#endif
