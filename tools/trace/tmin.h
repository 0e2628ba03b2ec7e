/* Minimizing a failing replay program, and writing one as a standalone C program. */
#ifndef HK_TOOLS_TMIN_H
#define HK_TOOLS_TMIN_H

#include <stdio.h>

#include "tconv.h"
#include "treplay.h"

typedef struct hk_min_opts {
    hk_replay_opts_t replay;
    const char *target;  /* signature to keep; NULL = the original program's own (must not be "ok") */
    double budget_s;     /* stop after this long (0 = no limit) */
    int verbose;
} hk_min_opts_t;

/* Delta debugging that keeps the failure signature: drops the longest prefix of old history that it can,
 * then removes whole block lifecycles (every op on one
 * block, from its allocation to its release: its sync edges go with it), then single ops, then whole
 * threads, until no single removal keeps the failure. rp is replaced by the result. Returns 0, or -1
 * (the original does not fail, or a run could not be forked). sig receives the kept signature. */
int hk_minimize(hk_rprog_t *rp, const hk_min_opts_t *o, char *sig, size_t siglen, size_t *tests);

/* Writes rp as a C program that replays it in the recorded order on its threads through hak_*, fills
 * every block and checks that live blocks never overlap and keep their contents (exit 0 = pass). */
int hk_write_c(FILE *f, const hk_rprog_t *rp, const char *origin, const char *signature);

#endif
