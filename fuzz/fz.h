/* Shared pieces of the fuzz harnesses (fuzz/fuzz_*.c): program shaping, the mode byte, the failure
 * report, per-mode counters and a hooked oracle runner.
 *
 * Every harness is one C file that defines LLVMFuzzerTestOneInput (and LLVMFuzzerInitialize); the same
 * file links against three mains:
 *   - libFuzzer          (-fsanitize=fuzzer: fuzz/build.sh)
 *   - AFL++ persistent   (fuzz/driver_afl.c: __AFL_LOOP over __AFL_FUZZ_TESTCASE_BUF)
 *   - the plain driver   (fuzz/driver_plain.c: replays files and directories, or seeded random inputs;
 *                         built by CMake in every preset and run by ctest, label "fuzz")
 *
 * hakmem is linked under its hak_* names (hakmem_prefixed, or HAK_PREFIXED_ONLY=1 in build.sh): glibc
 * stays the process malloc and is the oracle (verify/oracle.h).
 *
 * A failed check prints one "fuzz-crash:" line naming the harness and mode, the failure line of
 * verify/report.h and (with FUZZ_PRINT=1) the decoded program as text, then abort()s so every engine
 * records the input as a crash.
 *
 * Environment (all optional):
 *   FUZZ_MODE=name|index   force the mode instead of taking it from the input's first byte
 *   FUZZ_OPTS=words        verify options (hk_verify_opts_parse: sll=N, nosll, noheap, strict, ...)
 *   FUZZ_PRINT=1           print each input's program as text before running it (replay/minimize)
 *   FUZZ_STATS=0           do not print the per-mode exec counters at exit
 */
#ifndef HK_FUZZ_FZ_H
#define HK_FUZZ_FZ_H

#include <stddef.h>
#include <stdint.h>

#include "verify.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The libFuzzer entry points every harness defines (the other mains call them too). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_MODES 8u
extern const char *const fz_mode_names[FZ_MODES]; /* HAKMEM_MODE choices, by index */

/* Per-process set-up shared by the harnesses: resolves glibc for the oracle, reads FUZZ_* variables,
 * registers the exit report. `name` is the harness name ("fuzz_tiny"). Idempotent. */
void fz_init(const char *name);
/* The verify options every harness starts from (defaults + FUZZ_OPTS). */
const hk_verify_opts_t *fz_opts(void);

/* The mode an input runs in: FUZZ_MODE when set, else byte % 8. Counts the exec for that mode. */
unsigned fz_pick_mode(uint8_t byte);
/* Counts an exec of a harness without modes (fuzz_options). */
void fz_count_exec(void);
/* The mode of the input being run (for reports). */
unsigned fz_current_mode(void);

/* ---- program shaping (all keep the program valid and recount it) --------------------------- */
/* Inserts "set mode <mode>" as op 0: the interpreter applies it and restores the mode at the end. */
int fz_prog_prepend_mode(hk_prog_t *p, unsigned mode);
/* The configuration byte (byte 0 of an input): bits 0..2 pick the mode (fz_pick_mode); bits 3..7 pick the
 * thread-cache scale: 0..15 keep the mode's caps, 16..31 set TINY_CAP_PCT to one of
 * 1 2 3 5 8 12 20 30 50 75 100 150 200 400 600 800 (small caps make every few frees flush and every
 * few allocations refill, the paths where cache bugs live). Prepends "set tiny_cap" (if any), then
 * "set mode": both are restored at the end of the run. Returns the mode, or -1 on out of memory. */
int fz_prog_prepend_config(hk_prog_t *p, uint8_t byte);
/* Removes every op whose kind bit (1u << kind) is in mask. */
void fz_prog_drop(hk_prog_t *p, unsigned kind_mask);
/* Tiny-only shaping: every request hakmem could satisfy is brought down to at most max_req bytes and
 * every alignment below 2^60 to at most max_align; impossible requests (>= 2^60, or an overflowing
 * nmemb * size) stay as they are (they test the failure paths without allocating). VALLOC/PVALLOC
 * become ALLOC of the same size. */
void fz_prog_clamp(hk_prog_t *p, uint64_t max_req, uint64_t max_align);
/* fuzz_tiny's shaping: SET and THREAD dropped, requests clamped to the tiny classes, alignments to
 * 1 KiB (the selftest checks every block it yields is a tiny-class block). */
void fz_shape_tiny(hk_prog_t *p);
/* Largest request served by a tiny class (C0..C20, at most 1 KiB) in this build (1024, or 1016 with
 * canaries). */
uint64_t fz_tiny_max_request(void);

/* ---- running ---------------------------------------------------------------------------------- */
/* Called before op i runs (hakmem side only: options and mode changes). Returns 0, or 1 with f filled. */
typedef int (*fz_hook_fn)(void *ctx, size_t i, hk_verify_failure_t *f);

/* The glibc oracle (as hk_oracle_run, serial) with a hook before each op. Same checks, same tolerated
 * divergence (aligned_alloc EINVAL), same end-of-run checks. Returns 0, or 1 with f filled. */
int fz_oracle_run_hooked(const hk_prog_t *prog, const hk_verify_opts_t *vo, fz_hook_fn hook, void *ctx,
                         hk_verify_failure_t *f);

/* Where the post-free cache bound (sll.cap) gets the calling thread's cap of a class: hakmem's
 * hak_debug_tls_cap() when the library exports it, else this function when a harness knows the cap (it
 * returns SIZE_MAX for "unknown": no check). fuzz_modes knows the caps it set with
 * TINY_TLS_CLASS_OVERRIDE. */
typedef size_t (*fz_cap_fn)(int cls);
void fz_set_cap_source(fz_cap_fn fn);

/* Runs hakmem's own checkers now (thread cache, then heap walker). 0, or 1 with f filled ("sll"/"heap"). */
int fz_check_now(hk_verify_failure_t *f);

/* End-of-input leak check (after every block was freed): hak_collect(), then no slab and no large
 * block may remain live. 0, or 1 with f filled (check "leak"). Single-owner state only: call it when
 * no other thread holds hakmem blocks. */
int fz_leak_check(hk_verify_failure_t *f);

/* Prints the program (FUZZ_PRINT=1) before it runs. */
void fz_maybe_print(const hk_prog_t *p);

/* Called (when set) by fz_crash / fz_crashf before abort(): a driver names the input being run. */
extern void (*fz_crash_hook)(void);
/* Whether FUZZ_PRINT is on. */
int fz_printing(void);

/* Reports a failure and aborts. `what` may add one line of context (e.g. the option set), or NULL. */
__attribute__((noreturn)) void fz_crash(const hk_verify_failure_t *f, const hk_prog_t *p, const char *what);
/* Reports a failure that is not an op-program failure (fuzz_options) and aborts. */
__attribute__((noreturn, format(printf, 1, 2))) void fz_crashf(const char *fmt, ...);

#ifdef __cplusplus
}
#endif
#endif /* HK_FUZZ_FZ_H */
