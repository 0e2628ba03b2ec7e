"""bench/programs/objects.py: a Python program that allocates the way services do (dicts, lists,
strings, a JSON round trip, an index and a sort), deterministic, printing a digest of its results.
Run by bench/run.sh under each allocator (python's own small-object allocator stays on, as users
run it; it takes its arenas and every larger object from malloc)."""
import hashlib
import json
import random
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 60000
rng = random.Random(4141)
digest = hashlib.sha256()
for rnd in range(3):
    records = []
    for i in range(n):
        records.append({
            "id": i,
            "name": "item-%06d" % rng.randrange(10 ** 6),
            "tags": ["t%d" % rng.randrange(500) for _ in range(rng.randrange(1, 6))],
            "blob": "x" * rng.randrange(8, 700),
            "score": round(rng.random(), 6),
        })
    text = json.dumps(records)
    back = json.loads(text)
    index = {}
    for r in back:
        for t in r["tags"]:
            index.setdefault(t, []).append(r["id"])
    back.sort(key=lambda r: (r["name"], -r["id"]))
    top = sorted(index.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:10]
    digest.update(("%d %d %s %s\n" % (len(text), len(index), back[0]["name"], top)).encode())
    del records, back, index, text
print(digest.hexdigest())
