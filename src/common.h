/* Internal definitions shared by every layer: compiler macros, geometry constants.
 *
 * Glossary
 *   region / superslab  a 2 MiB-aligned, 2 MiB mapping carved into 32 units of 64 KiB; unit 0 holds
 *                       the header (descriptors, per-slab metadata), units 1..31 hold slabs.
 *   slab                1..8 contiguous units serving one size class, owned by one thread.
 *   class               a block size; C0..C20 tiny (8 B .. 1 KiB), C21..C44 mid (1.25 KiB .. 64 KiB).
 *   TLS SLL / tcache    a thread's singly linked free list per class (head, count, cap).
 *   remote stack        a slab's atomic LIFO where other threads push the blocks they free.
 *   large block         above 64 KiB: its own mapping, described out of line (large/).
 */
#ifndef HK_COMMON_H
#define HK_COMMON_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HK_HIDDEN __attribute__((visibility("hidden")))
#define HK_INLINE static inline __attribute__((always_inline))
#define HK_NOINLINE __attribute__((noinline))
#define HK_COLD __attribute__((cold, noinline))
/* Code that runs inside a recorded op after its record is complete (the ring fast paths, the remote
 * push): the trace's crash handler finds a fault there by its pc and dumps the op as in flight. */
#define HK_OP_TEXT __attribute__((section("hk_op_text")))
#define HAK_LIKELY(x) __builtin_expect(!!(x), 1)
#define HAK_UNLIKELY(x) __builtin_expect(!!(x), 0)

#ifndef HAK_HARDENED
#define HAK_HARDENED 0
#endif
#ifndef HAK_DEBUG
#define HAK_DEBUG 0
#endif
#ifndef HAK_PREFIXED_ONLY
#define HAK_PREFIXED_ONLY 0
#endif
#ifndef HAK_VARIANT_NAME
#define HAK_VARIANT_NAME "release"
#endif

/* Build-time feature flags as constants, so every variant's code keeps compiling in every build. */
static const int hk_config_hardened = HAK_HARDENED;
static const int hk_config_debug = HAK_DEBUG;

#if defined(__SANITIZE_ADDRESS__)
#define HK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HK_ASAN 1
#endif
#endif
#ifndef HK_ASAN
#define HK_ASAN 0
#endif

/* ---- geometry ------------------------------------------------------------------------------- */
#define HK_SS_SHIFT 21
#define HK_SS_SIZE ((size_t)1 << HK_SS_SHIFT) /* 2 MiB */
#define HK_SS_MASK (HK_SS_SIZE - 1)
#define HK_UNIT_SHIFT 16
#define HK_UNIT_SIZE ((size_t)1 << HK_UNIT_SHIFT) /* 64 KiB */
#define HK_UNITS 32                               /* per superslab; unit 0 is the header */
#define HK_PAGE 4096u

#define HK_TINY_CLASSES 21 /* C0..C20: 8, 16, 32, 48, ... 1024 (tools/gen-sizeclass.py) */
#define HK_MID_CLASSES 24 /* C21..C44: 4 classes per doubling, 1280 .. 65536 */
#define HK_NCLASSES (HK_TINY_CLASSES + HK_MID_CLASSES)
#define HK_TINY_MAX 1024u
#define HK_MID_MAX 65536u

/* User address space covered by the region map (47 bits on x86-64, 48 on aarch64). */
#if defined(__aarch64__)
#define HK_VA_BITS 48
#else
#define HK_VA_BITS 47
#endif
#define HK_MAP_ENTRIES ((size_t)1 << (HK_VA_BITS - HK_SS_SHIFT))

#define HK_ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((a)-1))

#define HK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define HK_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif /* HK_COMMON_H */
