#!/usr/bin/env python3
"""Writes the hand-made seed inputs and the dictionaries of the fuzz harnesses.

    fuzz/make_seeds.py [--corpus DIR]      (default: corpus/ of the repository)

Writes corpus/<harness>/seed-*.bin (replacing earlier seed-* files; other files -- inputs the fuzzers
kept, merged in with `-merge=1` -- are left alone) and corpus/<harness>.dict.

The op encoder below writes the fuzz byte form of docs/op-program.md ("Form 1: fuzz bytes"): one
selector byte per op, then its fields; it is the canonical encoding hk_prog_to_fuzz produces. Every
seed is a small program that reaches one area on purpose (a class boundary, a realloc chain across
classes, a cache overflow, cross-thread frees, option changes); the fuzzers take it from there.
"""
import argparse
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ["minimal", "fast", "balanced", "learning", "adaptive", "tight", "lean", "research"]
KNOBS = ["mode", "thp", "bigcache", "bigcache_entries", "bigcache_max_mb", "madvise_batch",
         "superslab_reuse", "tiny_cap", "mem_lean", "lean_target_mb", "lean_decommit"]
IMPOSSIBLE = [2**64 - 1, 2**64 - 2, 2**64 - 4096, 2**63, 2**63 - 1, 2**62, 2**60, 2**63 + 1]


# ---- the fuzz byte encoder (docs/op-program.md, form 1) ------------------------------------------
def size(s):
    if s <= 16:
        return bytes([96 + s])
    if s <= 1024:
        return bytes([(s - 1) >> 5, (s - 1) & 31])
    if s <= 16384:
        return bytes([192]) + struct.pack("<H", s - 1025)
    if s <= 66560:
        return bytes([224]) + struct.pack("<H", s - 1025)
    if s <= 4 << 20:
        return bytes([248]) + struct.pack("<I", s - 65536)[:3]
    if s in IMPOSSIBLE:
        return bytes([240 + IMPOSSIBLE.index(s)])
    return bytes([255]) + struct.pack("<Q", s)


def align(a):
    if a & (a - 1) == 0 and a.bit_length() - 1 < 22:
        return bytes([a.bit_length() - 1])
    return bytes([255]) + struct.pack("<Q", a)


def nmemb(n):
    if n <= 4:
        return bytes([n])
    if n <= 30:
        return bytes([n - 5 + 224])
    return bytes([255]) + struct.pack("<Q", n)


def alloc(i, s): return bytes([0, i]) + size(s)
def free(i): return bytes([8, i])
def realloc(i, s): return bytes([15, i]) + size(s)
def calloc(i, n, s): return bytes([19, i]) + nmemb(n) + size(s)
def memalign(i, a, s): return bytes([21, i]) + align(a) + size(s)
def posix_memalign(i, a, s): return bytes([22, i]) + align(a) + size(s)
def aligned_alloc(i, a, s): return bytes([23, i]) + align(a) + size(s)
def usable(i): return bytes([24, i])
def thread(t): return bytes([25, t])
def check(): return bytes([28])
def valloc(i, s): return bytes([29, i]) + size(s)
def pvalloc(i, s): return bytes([30, i]) + size(s)
def reallocarray(i, n, s): return bytes([31, i]) + nmemb(n) + size(s)
def set_knob(name, c): return bytes([27, KNOBS.index(name), c])  # c: value byte (0..239 spans the range)


# ---- programs ----------------------------------------------------------------------------------------
TINY = [8, 16, 32, 64, 128, 256, 512, 1024]
BOUNDS = [1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513,
          1023, 1024]
MID = [1025, 1280, 1281, 1536, 2048, 2049, 4096, 4097, 8192, 8193, 16384, 16385, 32768, 65535, 65536]
LARGE = [65537, 100000, 131072, 1 << 20, (1 << 20) + 1, 4 << 20]


def p_class_walk(sizes):
    """Allocate one block per size in ids 0.., check, free in reverse, check."""
    b = b"".join(alloc(i % 64, s) for i, s in enumerate(sizes)) + check()
    return b + b"".join(free(i % 64) for i in reversed(range(len(sizes)))) + check()


def p_cache_overflow(s, n=300):
    """More blocks of one size than a thread cache holds, freed all: flush paths."""
    ids = range(min(n, 64))
    b = b""
    for r in range(max(1, n // 64)):
        b += b"".join(alloc(i, s) for i in ids) + b"".join(free(i) for i in ids)
    return b + check()


def p_realloc_chain(sizes):
    return b"".join(realloc(0, s) for s in sizes) + usable(0) + check() + free(0)


def p_calloc_mix():
    return (alloc(0, 64) + free(0) + calloc(0, 4, 16) + calloc(1, 3, 100) + calloc(2, 1, 1024) +
            calloc(3, 2**63, 4) + calloc(4, 0, 8) + check() + free(1) + free(2))


def p_memalign_mix(limit):
    b = b""
    i = 0
    for a in [8, 16, 32, 64, 128, 256, 512, 1024]:
        for s in [1, a - 1 if a > 1 else 1, a, a + 1]:
            if s <= limit:
                b += [memalign, posix_memalign, aligned_alloc][i % 3](i % 64, a, s)
                i += 1
    return b + check()


def p_impossible():
    return b"".join(alloc(i, s) for i, s in enumerate(IMPOSSIBLE)) + realloc(9, 2**63) + \
        reallocarray(10, 2**32, 2**32) + memalign(11, 3, 100) + posix_memalign(12, 12, 100) + check()


def p_interleave(sizes):
    """Alternating alloc/free of two ids: the same block coming back (LIFO reuse)."""
    b = b""
    for k, s in enumerate(sizes * 3):
        b += alloc(k % 2, s) + free((k + 1) % 2)
    return b + check()


def tiny_programs():
    yield "classes", p_class_walk(TINY)
    yield "bounds", p_class_walk(BOUNDS)
    for s in [8, 16, 64, 1024]:
        yield f"overflow-{s}", p_cache_overflow(s)
    yield "realloc", p_realloc_chain([1, 8, 9, 16, 17, 100, 500, 1024, 1000, 300, 8, 0])
    yield "calloc", p_calloc_mix()
    yield "memalign", p_memalign_mix(1024)
    yield "impossible", p_impossible()
    yield "interleave", p_interleave([16, 32, 48, 1024])


def mixed_programs():
    yield from tiny_programs()
    yield "mid", p_class_walk(MID)
    yield "large", p_class_walk(LARGE)
    yield "realloc-up", p_realloc_chain([10, 1000, 2000, 70000, 1 << 20, 4 << 20, 3000, 5])
    yield "valloc", valloc(0, 100) + pvalloc(1, 5000) + valloc(2, 0) + pvalloc(3, 0) + usable(1) + check()
    yield "memalign-big", b"".join(memalign(i, 1 << (12 + i), 1000 * (i + 1)) for i in range(8)) + check()
    yield "bigcache", b"".join(alloc(i, 200000 + 4096 * i) for i in range(6)) + \
        b"".join(free(i) for i in range(6)) + b"".join(alloc(i, 210000) for i in range(6)) + check()


def mt_programs():
    # allocate on 0, free on 1 (remote frees), then 1 exits holding slabs
    yield "remote", thread(0) + b"".join(alloc(i, 16 * (i + 1)) for i in range(16)) + thread(1) + \
        b"".join(free(i) for i in range(16)) + thread(0) + b"".join(alloc(i, 32) for i in range(16)) + check()
    yield "pingpong", b"".join(thread(k % 2) + alloc(k % 8, 64) + thread((k + 1) % 2) + free(k % 8)
                               for k in range(40)) + check()
    yield "orphans", thread(1) + b"".join(alloc(i, 24) for i in range(30)) + thread(2) + \
        b"".join(alloc(30 + i, 1000) for i in range(20)) + thread(0) + b"".join(free(i) for i in range(50)) + check()
    yield "realloc-x", thread(0) + alloc(0, 100) + thread(3) + realloc(0, 5000) + thread(4) + \
        realloc(0, 80) + thread(0) + free(0) + check()
    yield "fanout", b"".join(thread(t) + b"".join(alloc(t * 8 + i, 8 << (i % 7)) for i in range(8))
                             for t in range(8)) + b"".join(thread(7 - t) + b"".join(free(t * 8 + i) for i in range(8))
                                                           for t in range(8)) + check()
    yield "set-mid-run", thread(0) + b"".join(alloc(i, 48) for i in range(20)) + set_knob("tiny_cap", 0) + \
        thread(1) + b"".join(free(i) for i in range(20)) + set_knob("tiny_cap", 239) + check()


def modes_change(a, b, c):
    return bytes([0xC0, a, b, c])


def ops_chunk(ops):
    """Splits op bytes into chunks of at most 64 bytes (the header says the length)."""
    out = b""
    while ops:
        part, ops = ops[:64], ops[64:]
        out += bytes([len(part) - 1]) + part
    return out


OV_CAPS = [0, 1, 2, 3, 4, 7, 8, 16, 31, 64, 256, 1024, 4096, 65536]


def override_bytes(cls, max_cap):
    """(a, b, c) of an option change that sets TINY_TLS_CLASS_OVERRIDE to one entry for class cls with
    a cap <= max_cap: the same generator as fm_describe() in fuzz_modes.c."""
    a = 2
    for b in range(256):
        if b % 16 == 0 or 1 + (b >> 4) % 3 != 1:
            continue
        for c in range(248):
            st = (a << 16 | b << 8 | c)
            st = (st * 6364136223846793005 + 1442695040888963407) % 2**64
            if (st >> 33) % 32 == cls and OV_CAPS[(st >> 40) % len(OV_CAPS)] <= max_cap:
                return a, b, c
    raise SystemExit(f"no override byte triple for class {cls}")


def modes_programs():
    cache = b"".join(alloc(i, 16) for i in range(40)) + b"".join(free(i) for i in range(40))
    yield "cap-shrink", ops_chunk(cache) + modes_change(1, 0, 0) + ops_chunk(b"".join(alloc(i, 16) for i in range(40))) + \
        modes_change(1, 11, 0) + ops_chunk(b"".join(free(i) for i in range(40)) + check())
    yield "override", ops_chunk(cache) + modes_change(2, 0x31, 7) + ops_chunk(cache) + modes_change(2, 0x55, 200) + \
        ops_chunk(cache) + modes_change(2, 0, 0) + ops_chunk(check())
    # a small explicit cap on the 16-byte class, then more frees than it holds: each free must flush
    yield "override-small-cap", ops_chunk(b"".join(alloc(i, 16) for i in range(40))) + \
        modes_change(*override_bytes(1, 4)) + ops_chunk(b"".join(free(i) for i in range(40)) + check())
    big = b"".join(alloc(i, 300000) for i in range(4)) + b"".join(free(i) for i in range(4))
    yield "bigcache-resize", ops_chunk(big) + modes_change(3, 1, 0) + ops_chunk(big) + modes_change(4, 1, 0) + \
        ops_chunk(big) + modes_change(3, 0, 0) + ops_chunk(big + check())
    yield "collect", ops_chunk(b"".join(alloc(i, 8 << (i % 8)) for i in range(32))) + modes_change(9, 0, 0) + \
        ops_chunk(b"".join(free(i) for i in range(32)) + check())
    for m in range(8):
        yield f"mode-{MODES[m]}", ops_chunk(b"".join(alloc(i, 100 * i + 1) for i in range(20))) + \
            modes_change(0, m, 0) + ops_chunk(b"".join(free(i) for i in range(0, 20, 2)) + check()) + \
            modes_change(0, (m + 3) % 8, 0) + ops_chunk(b"".join(free(i) for i in range(1, 20, 2)) + check())
    yield "lean", modes_change(6, 1, 0) + ops_chunk(p_class_walk(MID)) + modes_change(11, 1, 0) + \
        ops_chunk(p_class_walk(TINY)) + modes_change(6, 0, 0)


def options_records():
    valid = [
        ("HAKMEM_MODE", "lean"), ("mode", "FAST"), ("hakmem_mode", "research"), ("HAKMEM_THP", "on"),
        ("HAKMEM_TINY_CAP_PCT", "50"), ("HAKMEM_TINY_CAP_PCT", "800"), ("HAKMEM_BIGCACHE_MAX_MB", "1k"),
        ("HAKMEM_BIGCACHE_ENTRIES", "0"), ("HAKMEM_BIGCACHE", "yes"), ("HAKMEM_SS_MEM_LEAN", "true"),
        ("HAKMEM_TINY_TLS_CLASS_OVERRIDE", "C0:256:16,C3:192:12"), ("HAKMEM_TINY_TLS_CLASS_OVERRIDE", ""),
        ("HAKMEM_TINY_TLS_CLASS_OVERRIDE", "c31:0,"), ("HAKMEM_SS_MEM_LEAN_DECOMMIT", "dontneed"),
        ("HAKMEM_SS_MEM_LEAN_TARGET_MB", "1M"), ("HAKMEM_MADVISE_BATCH", "-0"), ("HAKMEM_STRICT", "off"),
    ]
    invalid = [
        ("HAKMEM_MODE", "fastest"), ("HAKMEM_TINY_CAP_PCT", "0"), ("HAKMEM_TINY_CAP_PCT", "801"),
        ("HAKMEM_BIGCACHE_MAX_MB", "9223372036854775808"), ("HAKMEM_BIGCACHE_MAX_MB", "64x"),
        ("HAKMEM_TINY_TLS_CLASS_OVERRIDE", "C32:1"), ("HAKMEM_TINY_TLS_CLASS_OVERRIDE", "C0:65537"),
        ("HAKMEM_TINY_TLS_CLASS_OVERRIDE", "C0:1:0"), ("HAKMEM_TINY_TLS_CLASS_OVERRIDE", "C0001:1"),
        ("HAKMEM_NOPE", "1"), ("HAKMEM_", "1"), ("", ""), ("HAKMEM_THP", ""), ("HAKMEM_MODE", "-"),
        ("HAKMEM_SUPERSLAB_REUSE", "8G"), ("HAKMEM_BIGCACHE", "2"),
        # suffixes that would wrap to 0 in 64 bits (2^34 G, 2^44 M, 2^54 K): too large, not 0
        ("HAKMEM_BIGCACHE_MAX_MB", "17179869184G"), ("HAKMEM_MADVISE_BATCH", "17592186044416M"),
        ("HAKMEM_SUPERSLAB_REUSE", "18014398509481984k"), ("HAKMEM_TINY_CAP_PCT", "17179869184g"),
    ]
    for k, (n, v) in enumerate(valid + invalid):
        yield f"rec-{k:02d}", b"\0" + n.encode() + b"=" + v.encode()  # selector 0: a raw name
    # several records in one input, then the same with the table-index form
    yield "multi", b"\0".join(b"\0" + n.encode() + b"=" + v.encode() for n, v in valid[:8])
    yield "indexed", b"".join(bytes([1 | (k << 1) & 0x0e, k]) + b"1\0" for k in range(17))
    yield "null-value", bytes([0xE0]) + b"HAKMEM_MODE=\0"


def dict_entries(kind):
    if kind == "fuzz_options":
        names = set()
        with open(os.path.join(ROOT, "src/config/options.def")) as f:
            for line in f:
                if line.startswith("HAK_OPT("):
                    names.add(line[8:line.index(",")])
        words = ["HAKMEM_" + n for n in sorted(names)] + sorted(names)
        words += ["HAKMEM_", "=", "true", "false", "yes", "no", "on", "off", "K", "M", "G", "KB", "MB", "-",
                  "C0:", ":16", ",C", "65536", "65537", "9223372036854775807", "800", "801",
                  "17179869184", "17592186044416", "18014398509481984", "4294967296"]
        words += MODES + ["auto", "FREE", "DONTNEED", "OFF"]
        return [w.encode() for w in words]
    ents = [check(), free(0), usable(0), alloc(0, 1024), alloc(0, 0), thread(1), thread(0)]
    for s in BOUNDS + MID + (LARGE if kind != "fuzz_tiny" else []):
        ents.append(size(s))
    for s in [16, 1024] + ([70000] if kind != "fuzz_tiny" else []):
        ents += [realloc(1, s), calloc(2, 3, s // 3)]
    ents += [memalign(3, 64, 100), posix_memalign(3, 4096, 5000), aligned_alloc(3, 3, 30)]
    if kind == "fuzz_modes":
        ents += [modes_change(a, 0, 0) for a in range(12)]
    if kind in ("fuzz_modes", "fuzz_mt"):
        ents += [set_knob("tiny_cap", 0), set_knob("mode", 0), set_knob("bigcache_entries", 0)]
    return ents


def write_dict(path, entries):
    with open(path, "w") as f:
        f.write("# generated by fuzz/make_seeds.py: useful byte strings for this harness's input form\n")
        for k, e in enumerate(entries):
            f.write(f'e{k}="' + "".join(chr(c) if 32 <= c < 127 and chr(c) not in '"\\' else f"\\x{c:02x}"
                                         for c in e) + '"\n')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=os.path.join(ROOT, "corpus"))
    a = ap.parse_args()
    sets = {
        "fuzz_tiny": [(n, bytes([m]) + p) for n, p in tiny_programs() for m in range(8)],
        "fuzz_mixed": [(n, bytes([m]) + p) for n, p in mixed_programs() for m in range(8)],
        "fuzz_mt": [(n, bytes([m]) + p) for n, p in mt_programs() for m in range(8)],
        "fuzz_modes": [(n, bytes([m]) + p) for n, p in modes_programs() for m in range(8)],
        "fuzz_options": list(options_records()),
    }
    for h, seeds in sets.items():
        d = os.path.join(a.corpus, h)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.startswith("seed-"):
                os.remove(os.path.join(d, f))
        seen = set()
        for n, data in seeds:
            mode = f"-m{data[0]}" if h != "fuzz_options" else ""
            name = f"seed-{n}{mode}.bin"
            if name in seen:
                continue
            seen.add(name)
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        write_dict(os.path.join(a.corpus, h + ".dict"), dict_entries(h))
        print(f"{h}: {len(seen)} seeds, dictionary {h}.dict")


if __name__ == "__main__":
    main()
