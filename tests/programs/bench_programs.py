#!/usr/bin/python3
"""bench_programs.py - time real programs and allocator workloads under
glibc, jemalloc, tcmalloc, mimalloc and the project's two malloc shims.

Runs are interleaved (every repetition runs each program under every
allocator, in an order rotated per repetition), each program's figure is
the minimum over the repetitions, and peak RSS comes from wait4's rusage of
the run (the largest process of it). The output of every run is compared
with glibc's: a run that differs or fails is reported as failed, never
timed. Writes a Markdown table between the markers in docs/BENCHMARKS.md.

usage: bench_programs.py WORKDIR REPS SHIM... (called by ci/bench-programs.sh)
"""
import math, os, resource, subprocess, sys, time

W, REPS, SHIMS = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
T = "tests/programs"
P = "build/host/programs"
PY = "/usr/bin/python3"
LIB = "/usr/lib/x86_64-linux-gnu/"
PEERS = [("glibc", None), ("jemalloc", LIB + "libjemalloc.so.2"),
         ("tcmalloc", LIB + "libtcmalloc_minimal.so.4"), ("mimalloc", LIB + "libmimalloc.so.2")]
OURS = [(os.path.basename(s)[3:-len("-malloc.so")], os.path.abspath(s)) for s in SHIMS]

# name: (what it is, shell command run in WORKDIR with output to stdout)
PROGRAMS = [
    ("python", "interpreter: small objects, sort, JSON", f"{PY} ../../{T}/alloc_heavy.py 60000"),
    ("pythreads", "interpreter: 120 live threads", f"{PY} ../../{T}/threads.py"),
    ("sqlite", "database: 40,000 rows, index, join",
     f"rm -f b.db && sqlite3 b.db < ../../{T}/sqlite.sql"),
    ("gcc", "compiler: -O2 on a 3,100-line file", "gcc -O2 -c -o b.o big.c && sha256sum < b.o"),
    ("git", "version control: repack -adf, log -p",
     "git -C repo repack -adfq && git -C repo log -p | sha256sum"),
    ("xz", "compressor: xz -6 on 3.5 MB", "xz -6 -T1 -c data | sha256sum"),
    ("larson", "larson, 4 threads in generations", f"../../{P}/workloads larson 4"),
    ("xmalloc", "xmalloc-test, 4 producers + 4 consumers", f"../../{P}/workloads xmalloc 4"),
    ("cache-scratch", "cache-scratch, 4 threads", f"../../{P}/workloads cache-scratch 4"),
    ("threads", "150 live C threads, cross-thread frees", f"../../{P}/threads"),
    ("keydtor", "frees in thread-key destructors", f"../../{P}/keydtor"),
]


def setup():
    os.makedirs(W, exist_ok=True)
    with open(os.path.join(W, "big.c"), "w") as f:
        subprocess.run([PY, f"{T}/gen_c.py", "300"], stdout=f, check=True)
    data = os.path.join(W, "data")
    if not os.path.exists(data):   # compressible but not trivial: text of numbers
        with open(data, "w") as f:
            x = 1
            for i in range(250_000):
                x = (x * 1103515245 + 12345) % 2**31
                f.write("%d %x\n" % (i, x >> (i % 17)))
    repo = os.path.join(W, "repo")
    if not os.path.exists(repo):
        env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b",
                   GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b",
                   GIT_AUTHOR_DATE="2026-01-01T00:00:00", GIT_COMMITTER_DATE="2026-01-01T00:00:00")
        sh = lambda c: subprocess.run(c, shell=True, cwd=W, env=env, check=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sh("git init -q repo && git -C ../.. archive --format=tar HEAD | tar -x -C repo")
        sh("git -C repo add -A && git -C repo commit -qm base")
        for i in range(40):   # history with small changes to many files
            sh(f"cd repo && for f in $(git ls-files '*.c' | head -n {20 + i}); do "
               f"echo '/* change {i} */' >> $f; done && git commit -qam c{i}")


def run(cmd, lib):
    """Run cmd once: (exit status, stdout, stderr, seconds, peak RSS KiB)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if lib:
        env["LD_PRELOAD"] = lib
    with open(os.path.join(W, "run.out"), "w+b") as fo, open(os.path.join(W, "run.err"), "w+b") as fe:
        t0 = time.monotonic()
        p = subprocess.Popen(["bash", "-c", cmd], cwd=W, env=env, stdout=fo, stderr=fe)
        _, status, ru = os.wait4(p.pid, 0)   # rusage of this run's processes only
        dt = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        return p.returncode, fo.read(), fe.read(), dt, ru.ru_maxrss


def main():
    setup()
    allocs = PEERS + OURS
    best = {}   # (prog, alloc) -> (seconds, rss KiB), or a failure string
    ref = {}
    for rep in range(REPS):
        for name, _, cmd in PROGRAMS:
            order = allocs[rep % len(allocs):] + allocs[:rep % len(allocs)]
            if rep == 0:   # glibc first: the reference output
                order = [a for a in allocs if a[0] == "glibc"] + [a for a in allocs if a[0] != "glibc"]
            for an, lib in order:
                if isinstance(best.get((name, an)), str):
                    continue
                rc, out, err, dt, rss = run(cmd, lib)
                if an == "glibc" and rep == 0:
                    ref[name] = out
                if rc != 0 or out != ref.get(name):
                    why = "exit %d" % rc if rc else "output differs from glibc's"
                    best[(name, an)] = "failed (%s)" % why
                    print("%s under %s: %s: %s" % (name, an, why,
                          err.decode(errors="replace").strip()[-300:]), flush=True)
                    continue
                prev = best.get((name, an))
                best[(name, an)] = (min(dt, prev[0]) if prev else dt, max(rss, prev[1]) if prev else rss)
                print("rep %d %-14s %-9s %7.3f s %8d KiB" % (rep, name, an, dt, rss), flush=True)
    write_table(allocs, best)


def write_table(allocs, best):
    peers = [a for a, _ in PEERS]
    ours = [a for a, _ in OURS]
    head = ["program", "what", "best peer"] + [a for a, _ in allocs] + ["%s RSS" % a for a in ours]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    ratios = {a: [] for a, _ in allocs}
    over2 = {a: [] for a in ours}
    for name, what, _ in PROGRAMS:
        ok = [(best[(name, a)][0], a) for a in peers if isinstance(best.get((name, a)), tuple)]
        if not ok:
            continue
        bt, ba = min(ok)
        cells = [name, what, "%s %.3f s" % (ba, bt)]
        for a, _ in allocs:
            v = best.get((name, a))
            if isinstance(v, tuple):
                r = v[0] / bt
                ratios[a].append(r)
                if a in over2 and r > 2:
                    over2[a].append(name)
                cells.append("%.2f" % r)
            else:
                cells.append(v or "-")
        g = best.get((name, "glibc"))
        for a in ours:
            v = best.get((name, a))
            cells.append("%.2f" % (v[1] / g[1]) if isinstance(v, tuple) and isinstance(g, tuple) else "-")
        rows.append("| " + " | ".join(cells) + " |")
    gm = ["geometric mean", "", ""]
    for a, _ in allocs:
        r = ratios[a]
        gm.append("**%.2f** (%d)" % (math.exp(sum(map(math.log, r)) / len(r)), len(r)) if r else "-")
    rows.append("| " + " | ".join(gm + [""] * len(ours)) + " |")
    notes = ["", "Time: minimum of %d interleaved runs, as a ratio to the fastest peer "
             "(glibc, jemalloc, tcmalloc, mimalloc) on that program; the geometric mean is "
             "over the programs that ran (their number in brackets). RSS: peak resident "
             "set of the run's largest process, ratio to glibc's." % REPS]
    for a in ours:
        failed = [n for n, _, _ in PROGRAMS if isinstance(best.get((n, a)), str)]
        notes.append("%s: failed on %s; above 2x the best peer: %s." % (
            a, ", ".join(failed) or "none", ", ".join(over2[a]) or "none"))
    table = "\n".join(rows + notes) + "\n"
    print(table)
    doc = "docs/BENCHMARKS.md"
    text = open(doc).read()
    b, e = "<!-- bench-programs:begin -->\n", "<!-- bench-programs:end -->"
    stamp = "Run of %s (`make bench-programs`, %d repetitions).\n\n" % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), REPS)
    if b in text and e in text:
        i, j = text.index(b) + len(b), text.index(e)
        text = text[:i] + stamp + table + text[j:]
    else:
        text += ("\n## Real programs (`make bench-programs`)\n\n" + b + stamp + table + e + "\n")
    open(doc, "w").write(text)


if __name__ == "__main__":
    main()
