# alloc_heavy.py - an interpreter workload: many small objects of mixed
# lifetimes (dicts, lists, strings, tuples), a sort, a JSON round trip.
# Prints a digest that depends only on the computation.
import hashlib, json, sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 60000
h = hashlib.sha256()
objs = {}
for i in range(n):
    key = "k%07d" % ((i * 7919) % n)
    objs[key] = {"i": i, "s": str(i) * (i % 13), "l": list(range(i % 17)), "t": (i, -i)}
    if i % 3 == 0:
        objs.pop("k%07d" % ((i * 104729) % n), None)   # frees mixed with allocations
items = sorted(objs.items(), key=lambda kv: (len(kv[1]["s"]), kv[0]))
text = json.dumps(items[: n // 4])
back = json.loads(text)
h.update(text.encode())
words = [w[::-1] for w in text.split(",")]
h.update("".join(sorted(words[:50000])).encode())
print(len(objs), len(back), len(text), h.hexdigest())
