/* Helpers shared by the criterion tests: a seeded PRNG, position-dependent fill patterns, cheap
 * checks that do not go through criterion's per-assertion reporting, and the run-size scale.
 *
 * Patterns: byte i of a block filled with seed s is byte (i & 7) of mix(s, i >> 3). The value depends
 * on the offset, so a block copied to the wrong place, shifted, truncated, or overwritten by a
 * neighbour's pattern (which uses another seed) never verifies by accident. Offsets are relative to
 * the block start, so a realloc'ed block verifies against the same seed over min(old, new) bytes.
 */
#ifndef HAK_TESTS_TEST_UTIL_H
#define HAK_TESTS_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_runner.h"

/* Fails the current test with a message, without criterion's cost on every passing check (criterion
 * reports each cr_assert to the runner, which is far too slow inside loops over millions of bytes). */
#define TU_CHECK(cond, ...)                                                                             \
    do {                                                                                                \
        if (!(cond)) cr_assert_fail(__VA_ARGS__);                                                       \
    } while (0)

static inline uint64_t tu_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform-ish value in [lo, hi] (hi - lo small against 2^64, bias irrelevant for tests). */
static inline size_t tu_range(uint64_t *state, size_t lo, size_t hi) {
    return lo + (size_t)(tu_splitmix64(state) % (uint64_t)(hi - lo + 1));
}

static inline uint64_t tu_word(uint64_t seed, size_t word_index) {
    uint64_t s = seed * 0xD6E8FEB86659FD93ull + word_index;
    return tu_splitmix64(&s);
}

/* Fills offsets [from, to) of block p with the pattern of seed. */
static inline void tu_fill(void *p, size_t from, size_t to, uint64_t seed) {
    unsigned char *b = p;
    size_t i = from;
    while (i < to && (i & 7) != 0) {
        b[i] = (unsigned char)(tu_word(seed, i >> 3) >> ((i & 7) * 8));
        i++;
    }
    for (; i + 8 <= to; i += 8) {
        uint64_t w = tu_word(seed, i >> 3);
        memcpy(b + i, &w, 8);
    }
    for (; i < to; i++) b[i] = (unsigned char)(tu_word(seed, i >> 3) >> ((i & 7) * 8));
}

/* Returns the first offset in [from, to) that does not hold the pattern of seed, or SIZE_MAX. */
static inline size_t tu_verify(const void *p, size_t from, size_t to, uint64_t seed) {
    const unsigned char *b = p;
    size_t i = from;
    while (i < to && (i & 7) != 0) {
        if (b[i] != (unsigned char)(tu_word(seed, i >> 3) >> ((i & 7) * 8))) return i;
        i++;
    }
    for (; i + 8 <= to; i += 8) {
        uint64_t w = tu_word(seed, i >> 3), got;
        memcpy(&got, b + i, 8);
        if (got != w) {
            for (size_t k = 0; k < 8; k++)
                if (b[i + k] != (unsigned char)(w >> (k * 8))) return i + k;
        }
    }
    for (; i < to; i++)
        if (b[i] != (unsigned char)(tu_word(seed, i >> 3) >> ((i & 7) * 8))) return i;
    return SIZE_MAX;
}

/* Returns the first non-zero offset in [0, n), or SIZE_MAX. */
static inline size_t tu_first_nonzero(const void *p, size_t n) {
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        if (w != 0) break;
    }
    for (; i < n; i++)
        if (b[i] != 0) return i;
    return SIZE_MAX;
}

/* Returns the first offset in [0, n) that is not byte v, or SIZE_MAX. */
static inline size_t tu_first_not(const void *p, size_t n, unsigned char v) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v) return i;
    return SIZE_MAX;
}

/* Iteration multiplier: HAKTEST_SCALE=N (1..1000) for long soaks. Sanitizer builds run a quarter of
 * the default work (ASan/UBSan slow every access 2-5x), TSan an eighth (5-15x, worst with many
 * threads), but never less than the minimum given. */
static inline size_t tu_scaled(size_t n, size_t min) {
    const char *e = getenv("HAKTEST_SCALE");
    long k = e != NULL ? strtol(e, NULL, 10) : 1;
    if (k < 1) k = 1;
    if (k > 1000) k = 1000;
    n *= (size_t)k;
#if defined(HAK_TEST_TSAN)
    n /= 8;
#elif defined(HAK_TEST_SANITIZER)
    n /= 4;
#endif
    return n < min ? min : n;
}

static inline int tu_is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

#endif /* HAK_TESTS_TEST_UTIL_H */
