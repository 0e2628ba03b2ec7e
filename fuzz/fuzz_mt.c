/* fuzz_mt: several threads' op programs and their schedule, run under the deterministic turnstile.
 *
 * Input: byte 0 is the configuration byte (fz.h: starting mode and thread-cache scale); the rest is an
 * op program in the fuzz byte form (docs/op-program.md). Its THREAD t ops are the schedule: the ops
 * after one belong to logical thread t (0..7), and the turnstile (verify/interp.h) gives each logical
 * thread its own OS thread and admits it only at its ops' turns, so the interleaving is exactly the
 * program's and a crash reproduces from the file alone. Blocks are named by ids shared by every thread: an id allocated on one
 * thread and freed or realloc'd on another is a real cross-thread (remote) free. SET ops stay (options
 * change while other threads own cached blocks); threads exit after the last op (thread teardown
 * abandons their slabs, the main thread's end-of-run frees reclaim them).
 *
 * Checks: as fuzz_tiny, with each op's TLS-SLL check run on the op's own thread; the leak check after the
 * run also reclaims what the exited threads abandoned (a block lost by a drain or a thread exit shows).
 */
#include "fz.h"
#include "hakmem.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init("fuzz_mt");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hk_prog_t prog;
    static hk_verify_failure_t fail;
    fz_init("fuzz_mt");
    if (size == 0)
        return 0;
    if (hk_prog_from_fuzz(&prog, data + 1, size - 1) != 0)
        return 0;
    if (fz_prog_prepend_config(&prog, data[0]) < 0)
        return 0;
    fz_maybe_print(&prog);
    /* Every input starts from an empty heap: the exited threads of earlier inputs tore down their
     * heaps, and this returns what the main thread's caches kept (each cached block of an adopted
     * slab pins that slab), so a crash depends on the file alone, and the heap walker stays cheap. */
    hak_collect();
    hk_verify_opts_t o = *fz_opts();
    o.flags |= HK_VERIFY_THREADS;
    if (hk_verify_run_prog(&prog, &o, &fail))
        fz_crash(&fail, &prog, NULL);
    if (fz_leak_check(&fail))
        fz_crash(&fail, &prog, "at the end of the input");
    return 0;
}
