# threads.py - 120 live Python threads (a barrier holds them), each building
# and dropping objects; prints a total that does not depend on timing.
import threading

N = 120
bar = threading.Barrier(N)
res = [0] * N

def work(k):
    acc = 0
    for r in range(3):
        xs = [bytearray(50 + (k * r + i) % 400) for i in range(300)]
        d = {i: str(i) * (k % 7) for i in range(300)}
        bar.wait()
        acc += sum(len(x) for x in xs) + sum(len(v) for v in d.values())
    res[k] = acc

ts = [threading.Thread(target=work, args=(k,)) for k in range(N)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("threads.py:", N, "threads", sum(res))
