/* Replaying a replay program against hakmem (the prefixed library this binary links).
 *
 *   exact  one OS thread per recorded thread; a turnstile admits each op only at its turn, so the ops
 *          run in exactly the program's order (verify/'s interpreter runs each op: shadow heap, content
 *          pattern, TLS-SLL and heap checkers as chosen).
 *   deps   each thread runs its own ops freely; an op waits only for the op before it on the same block
 *          when that op ran on another thread (the releasing thread signals, the acquiring one waits).
 *          Real concurrency, so the order between threads is not fixed; the interpreter's shared shadow
 *          cannot follow it, so the checks are the per-block content stamp and the TLS-SLL checker.
 *
 * A run can be forked (hk_replay_forked): the child replays, the parent reads its exit status and its
 * stderr and names the outcome with a signature:
 *   ok | check:<name> (a verify check failed) | report:<fault> (a hardened report) |
 *   signal:<SIGNAME> | exit:<code>
 */
#ifndef HK_TOOLS_TREPLAY_H
#define HK_TOOLS_TREPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "report.h"
#include "tconv.h"

enum { HK_ORDER_EXACT = 0, HK_ORDER_DEPS = 1 };
enum { HK_LEARN_FORCED = 0, HK_LEARN_OFF = 1 };

typedef struct hk_replay_opts {
    int order;                /* HK_ORDER_* */
    unsigned checks;          /* HK_CHECK_* (verify/interp.h) */
    int learning;             /* HK_LEARN_*: recorded controller SETs applied, or dropped */
    int touch;                /* write a pattern into the first bytes of every block, as a program would */
    uint64_t max_size;        /* 0 = HK_OP_MAX_SIZE_DEFAULT; requests above are skipped unless allow_large */
    int allow_large;
    uint32_t sll_period;      /* TLS-SLL check every Nth op (0/1 = every op) */
    int quiet;                /* forked children: keep their stderr to the parent's buffer only */
} hk_replay_opts_t;

void hk_replay_opts_default(hk_replay_opts_t *o);
/* "none", "all", or a comma list of shadow, content, sll, heap. 0 or -1. */
int hk_replay_parse_checks(const char *s, unsigned *out);

/* In this process. 0, or 1 with f filled. */
int hk_replay_run(const hk_rprog_t *rp, const hk_replay_opts_t *o, hk_verify_failure_t *f);

/* In a forked child. Returns 0 when the child could be run; sig gets the signature, detail one line
 * about it (the failure line or the report line). With echo, the child's stderr is copied to ours. */
int hk_replay_forked(const hk_rprog_t *rp, const hk_replay_opts_t *o, int echo, char *sig, size_t siglen,
                     char *detail, size_t detlen);
/* Whether an observed signature matches an expected one ("report" matches any "report:...";
 * signal:SIGSEGV and signal:SIGBUS are one fault kind, a wild access). */
int hk_sig_matches(const char *expect, const char *got);

#endif
