/* fuzz_tiny: tiny classes only (requests served by C0..C20), one thread, every mode.
 *
 * Input: byte 0 is the configuration byte (fz.h: the mode, byte % 8 unless FUZZ_MODE forces one, and
 * a thread-cache scale); the rest is an op program in the fuzz byte form (docs/op-program.md). The
 * program is shaped to the tiny classes:
 * requests above the largest tiny request are folded into range, alignments to at most 1 KiB,
 * valloc/pvalloc become malloc; SET and THREAD ops are dropped (the mode is fixed for the input; one
 * thread). Impossible requests (>= 2^60, overflowing calloc) are kept: they test the failure paths.
 *
 * Checks, after every op: the glibc oracle (success/failure, errno), the shadow heap (overlap,
 * alignment, usable size, contents of the touched block and its address neighbours), the TLS-SLL
 * checker (hak_debug_check_thread); at CHECK ops and at the end: a full content sweep and the heap
 * walker (hak_debug_check_heap: used + local + uncarved == capacity for every slab); after the run,
 * with every block freed: the leak check (fz_leak_check: no slab may stay live).
 */
#include "fz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init("fuzz_tiny");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hk_prog_t prog;
    static hk_verify_failure_t fail;
    fz_init("fuzz_tiny");
    if (size == 0)
        return 0;
    if (hk_prog_from_fuzz(&prog, data + 1, size - 1) != 0)
        return 0; /* out of memory decoding: not the allocator's fault */
    fz_shape_tiny(&prog);
    if (fz_prog_prepend_config(&prog, data[0]) < 0)
        return 0;
    fz_maybe_print(&prog);
    if (fz_oracle_run_hooked(&prog, fz_opts(), NULL, NULL, &fail))
        fz_crash(&fail, &prog, NULL);
    if (fz_leak_check(&fail))
        fz_crash(&fail, &prog, "at the end of the input");
    return 0;
}
