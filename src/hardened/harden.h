/* Hardening checks. Each is a named bit, so its cost can be measured alone
 * (build with -DHAK_HARDEN_BITS=<mask>); the hardened and debug variants turn all of them on.
 *
 *   ENCODE    free-list links (thread caches, slab lists, remote stacks) stored as
 *             next ^ (slot >> 12) ^ secret (safe-linking with a per-process secret)
 *   VALIDATE  a block leaving any free list is checked before its link is read: inside a region of
 *             ours (thread caches) or inside the carved part of the slab whose list it is on (a
 *             slab's remote stack and local list), so it can be read, and carrying the free marker
 *             of the list's class (which only a block start of that class that was freed carries:
 *             forging it needs the secret). The class is folded into the marker, so the region
 *             header's class byte is not read on the fast path; which fault it was (bad link, or a
 *             link to a block that is not free) is worked out on the cold path
 *   DFREE     double-free detection: a freed block carries a secret marker (of its address and
 *             class) in its second word; a free of a block that carries it is a double free (false
 *             positive chance 2^-64)
 *   INVALID   invalid-free detection: the pointer must be a carved block start of an active slab, or
 *             a large block's start; anything else (interior, stack, wild, foreign) is reported
 *   UAF       writes after free: words 2..3 of a freed block (the whole block in debug builds) are
 *             filled with a pattern, checked (with the canary) when the block is handed out again;
 *             writes to words 0..1 break the link or the marker and are caught by VALIDATE.
 *             Large blocks kept in the BigCache: the first and last 16 KiB are filled with the
 *             pattern at free and checked at reuse (hardened; a write between them goes unseen), or
 *             the whole mapping is PROT_NONE and a write faults (debug). The mprotect pair cost about
 *             a third of large_blocks' time in the hardened variant.
 *   CANARY    the last 8 bytes of each slab block hold a canary (the marker with its first byte
 *             zero), written at carve and checked at free: an overflow into the next block is caught
 *
 * Changes in detection strength since the checks were first measured (all else is as strong as it
 * was; only where a check runs and how its value is computed changed):
 *   - large blocks in the BigCache (hardened, not debug): a write after free is caught at reuse only
 *     in the first and last 16 KiB of the mapping; it used to fault anywhere (PROT_NONE).
 *   - a slab's remote stack and local list: a node must lie in that slab's carved part; a free block
 *     of another slab of the same class used to pass (stronger).
 *   - as before, reading a live block's canary (an over-read past its end) or a freed block's marker
 *     gives the secret away to whoever knows the block's address; the canary is now the marker's top
 *     56 bits, where it used to be a multiply of the address and the secret (the same leak).
 *   - hardened blocks are at least 32 bytes (HK_HARDEN_MIN_BLOCK): requests of 1..8 bytes take 32 B.
 *   - INVALID on free's fast path tests the block layout of the unit's class (class table, region
 *     header) instead of the slab descriptor's carved range: a block start past the slab's bump is
 *     caught by the marker and canary tests that follow (its memory is zero, or holds the marker of
 *     a block that was free when it was uncarved or its slab released), then named an invalid free
 *     by the cold path. It passes only if that memory holds the block's keyed canary and not its
 *     marker: stale user data of a block of another class whose bytes equal a secret-derived value.
 */
#ifndef HK_HARDEN_H
#define HK_HARDEN_H

#include "common.h"

#define HK_H_ENCODE 0x01u
#define HK_H_VALIDATE 0x02u
#define HK_H_DFREE 0x04u
#define HK_H_INVALID 0x08u
#define HK_H_UAF 0x10u
#define HK_H_CANARY 0x20u

#ifndef HAK_HARDEN_BITS
#if HAK_HARDENED
#define HAK_HARDEN_BITS 0x3fu
#else
#define HAK_HARDEN_BITS 0u
#endif
#endif

#define HK_HARDEN(bit) ((HAK_HARDEN_BITS & (bit)) != 0)

_Static_assert(!HK_HARDEN(HK_H_VALIDATE) || HK_HARDEN(HK_H_DFREE),
               "link validation checks the free marker, which DFREE maintains");
_Static_assert(!HK_HARDEN(HK_H_UAF) || HK_HARDEN(HK_H_DFREE), "the UAF fill starts after the free marker");

/* Bytes reserved at the end of each slab block for the canary. */
#define HK_CANARY_BYTES (HK_HARDEN(HK_H_CANARY) ? 8u : 0u)
/* The smallest slab block handed out when blocks carry a marker or a canary: 32 bytes, so that
 * link, marker, one fill word and the canary each have a word (a 16-byte block would share the
 * marker with the canary and have no fill), and the checks need no special case for small blocks.
 * Requests of 1..8 bytes take 32-byte blocks in the hardened variant (16 before). */
#if HK_HARDEN(HK_H_CANARY) || HK_HARDEN(HK_H_DFREE)
#define HK_HARDEN_MIN_BLOCK 32u
#else
#define HK_HARDEN_MIN_BLOCK 8u
#endif

/* Words filled after the marker of a freed block and checked at reuse. hardened: 2 (with the canary,
 * the first 32 and the last 8 bytes of a freed block are watched), a cost measured in make bench;
 * debug: the whole block. */
#if HAK_DEBUG
#define HK_UAF_WORDS 8192u
#else
#define HK_UAF_WORDS 2u
#endif
#define HK_UAF_PATTERN 0xdfu

extern HK_HIDDEN uintptr_t hk_secret;

/* ---- link encoding ------------------------------------------------------------------------------ */
HK_INLINE uintptr_t hk_link_encode(void *slot, void *next) {
    if (!HK_HARDEN(HK_H_ENCODE)) return (uintptr_t)next;
    return (uintptr_t)next ^ ((uintptr_t)slot >> 12) ^ hk_secret;
}
HK_INLINE void *hk_link_decode(void *slot, uintptr_t stored) {
    if (!HK_HARDEN(HK_H_ENCODE)) return (void *)stored;
    return (void *)(stored ^ ((uintptr_t)slot >> 12) ^ hk_secret);
}
HK_INLINE void hk_link_set(void *block, void *next) { *(uintptr_t *)block = hk_link_encode(block, next); }
HK_INLINE void *hk_link_get(void *block) { return hk_link_decode(block, *(uintptr_t *)block); }

/* ---- free marker ---------------------------------------------------------------------------------- */
/* The marker of a free block of class cls. The class is folded in (xor into the address: distinct classes give
 * distinct markers at one address), so a free block checked as
 * another class fails; the 32-bit odd multiplier spreads the address without a 64-bit constant. */
HK_INLINE uintptr_t hk_marker(void *block, unsigned cls) { return (((uintptr_t)block ^ cls) * 0x7f4a7c15ull) ^ hk_secret; }
HK_INLINE uintptr_t *hk_marker_slot(void *block) { return (uintptr_t *)block + 1; }
/* The canary of a block whose marker is m: the marker with its first byte zero (so a string read
 * stops there). Marker and canary are never compared with each other's word: blocks are at least
 * HK_HARDEN_MIN_BLOCK bytes, so the canary never shares the marker's word. */
HK_INLINE uint64_t hk_canary_of(uintptr_t m) { return m & ~(uint64_t)0xff; }
HK_INLINE uint64_t hk_canary(void *block, unsigned cls) { return hk_canary_of(hk_marker(block, cls)); }

/* ---- the fail-fast report ------------------------------------------------------------------------ */
typedef enum hk_fault {
    HK_FAULT_DOUBLE_FREE,
    HK_FAULT_INVALID_FREE,
    HK_FAULT_INTERIOR_FREE,
    HK_FAULT_FOREIGN_FREE,
    HK_FAULT_WRITE_AFTER_FREE,
    HK_FAULT_LINK_CORRUPT,
    HK_FAULT_LIVE_IN_LIST,
    HK_FAULT_OVERFLOW,
    HK_FAULT_REALLOC_FREED,
    HK_FAULT_REALLOC_INVALID,
    HK_FAULT_LARGE_DOUBLE_FREE,
    HK_FAULT_COUNT
} hk_fault_t;

extern HK_HIDDEN const char *const hk_fault_names[HK_FAULT_COUNT];

/* Writes one line naming the fault, the pointer, the size class, the thread, the mode and the
 * variant, dumps the trace ring if one is active, then abort(). Async-signal-safe. */
HK_HIDDEN __attribute__((noreturn, cold)) void hk_report(hk_fault_t fault, const void *ptr, int cls);

/* Set by the trace layer when a ring or trace is active: called by hk_report before abort(). */
extern HK_HIDDEN void (*volatile hk_report_hook)(void);

#endif
