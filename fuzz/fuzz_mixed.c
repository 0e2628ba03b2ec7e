/* fuzz_mixed: every size (tiny, mid, large up to 4 MiB, impossible), malloc/calloc/realloc/
 * reallocarray/memalign/posix_memalign/aligned_alloc/valloc/pvalloc/usable-size, one thread, every mode.
 *
 * Input: byte 0 is the configuration byte (fz.h: mode and thread-cache scale); the rest is an op program in the fuzz byte form
 * (docs/op-program.md), run as decoded except that SET and THREAD ops are dropped (fuzz_modes changes
 * options mid-run; fuzz_mt runs threads).
 *
 * Checks after every op: glibc oracle, shadow heap, TLS-SLL checker; heap walker at CHECK and at the end;
 * the leak check after the run (no slab and no large block may stay live once every block was freed).
 */
#include "fz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init("fuzz_mixed");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hk_prog_t prog;
    static hk_verify_failure_t fail;
    fz_init("fuzz_mixed");
    if (size == 0)
        return 0;
    if (hk_prog_from_fuzz(&prog, data + 1, size - 1) != 0)
        return 0;
    fz_prog_drop(&prog, 1u << HK_OP_SET | 1u << HK_OP_THREAD);
    if (fz_prog_prepend_config(&prog, data[0]) < 0)
        return 0;
    fz_maybe_print(&prog);
    if (fz_oracle_run_hooked(&prog, fz_opts(), NULL, NULL, &fail))
        fz_crash(&fail, &prog, NULL);
    if (fz_leak_check(&fail))
        fz_crash(&fail, &prog, "at the end of the input");
    return 0;
}
