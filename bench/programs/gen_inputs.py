"""bench/programs/gen_inputs.py OUTDIR: writes the inputs of bench/run.sh's program rows, the same
bytes on every machine: OUTDIR/gen.c (a C file for gcc -O2 to compile: many functions with loops,
switches, structs and string tables) and OUTDIR/lines.txt (text lines for sort)."""
import os
import random
import sys

out = sys.argv[1]
rng = random.Random(4141)

c = ["#include <stddef.h>", "#include <string.h>", ""]
c.append("struct node { struct node *next; long key; double w; char name[24]; };")
for f in range(60):
    cases = "\n".join("        case %d: acc = acc * %d + (long)n->w; break;" % (k, rng.randrange(3, 97))
                      for k in range(rng.randrange(4, 16)))
    words = ", ".join('"%s"' % "".join(chr(97 + rng.randrange(26)) for _ in range(rng.randrange(3, 12)))
                      for _ in range(rng.randrange(2, 10)))
    c.append("""static const char *tbl_%d[] = { %s };
long fn_%d(struct node *n, int m) {
    long acc = %d;
    for (int i = 0; n != NULL && i < m; i++, n = n->next) {
        switch ((n->key ^ i) %% %d) {
%s
        default: acc ^= (long)strlen(tbl_%d[i %% (int)(sizeof tbl_%d / sizeof tbl_%d[0])]);
        }
        for (int j = 0; j < %d; j++) acc += (acc >> 3) ^ (j * n->key);
    }
    return acc;
}
""" % (f, words, f, rng.randrange(1000), rng.randrange(5, 17), cases, f, f, f, rng.randrange(2, 9)))
with open(os.path.join(out, "gen.c"), "w") as fh:
    fh.write("\n".join(c))

with open(os.path.join(out, "lines.txt"), "w") as fh:
    for i in range(800000):
        fh.write("%s %d %s\n" % ("".join(chr(97 + rng.randrange(26)) for _ in range(rng.randrange(4, 30))),
                                 rng.randrange(10 ** 9), "z" * rng.randrange(0, 40)))
