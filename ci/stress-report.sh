#!/usr/bin/env bash
# stress-report.sh KERNEL OUTDIR - the stress tool's scaling report: the same
# workload (a fixed number of operations per hart) at 1, 2, 4, ... 64 harts
# under -icount shift=0,sleep=off, instructions per operation per manager
# from each run's table, written to OUTDIR/report.md and drawn into
# OUTDIR/scaling.png (python3-matplotlib; ci/deps.sh report installs it).
# HARTS='1 2 4' and PER_HART=n narrow it. TOTAL=n (default 4800, PER_HART
# x 16) caps the operations of a run: from TOTAL / PER_HART harts on, each
# hart does TOTAL / harts operations, so the total work stays constant
# (figures are per operation, so they stay comparable; 64 harts at 300 ops
# each did not finish in 600 s). BUDGET=s (default 900) bounds each run: a
# run over it is stopped, and a hart count whose run would take longer is
# skipped with a line saying so. The estimate, per operation: the last
# run's time per operation grown, per doubling of the harts, by the larger
# of 4 (QEMU runs the harts one after another and the waits grow with them)
# and the growth per operation seen between the last two runs, times the
# next run's operations (here, 4800 ops each: 16 harts 6 s, 32 harts 62 s,
# so 64 harts were estimated at 640 s and took 407 s; the square of the
# growth, used while every hart did 300 ops, said 6620 s). Exits non-zero
# if a run fails (not for a skipped one).
set -u
cd "$(dirname "$0")/.."
kernel=$1
out=$2
harts=${HARTS:-1 2 4 8 16 32 64}
per=${PER_HART:-300}
total=${TOTAL:-$((per * 16))}
budget=${BUDGET:-900}
opts="icount=1 yield=16 live=32 xfer=10 check=0 stat=0 seed=1"
mkdir -p "$out"
tsv="$out/scaling.tsv"
echo -e "harts\tmanager\tops\tinsn_per_op\tp50\tp99\tsecs\tper_hart" >"$tsv"
: >"$out/skipped"
status=0
last_n=0
last_t=0
prev_t=0
last_ops=0
prev_ops=0
skip=""
for n in $harts; do
	log="$out/run-$n.log"
	if [ -n "$skip" ]; then
		echo "stress-report: $n harts skipped: $skip" | tee -a "$out/skipped"
		continue
	fi
	ph=$per
	[ $((per * n)) -gt $total ] && ph=$((total / n))
	[ $ph -lt 1 ] && ph=1
	ops=$((ph * n))
	if [ $last_n -gt 0 ]; then
		est=$(awk -v t="$last_t" -v p="$prev_t" -v n="$n" -v l="$last_n" \
			-v o="$ops" -v lo="$last_ops" -v po="$prev_ops" 'BEGIN {
			g = 4; if (p > 0 && (t / lo) / (p / po) > g) g = (t / lo) / (p / po)
			e = t / lo; for (k = l; k < n; k *= 2) e *= g; printf "%d", e * o }')
		if [ $est -gt $budget ]; then
			skip="the run on $last_n harts took $last_t s, so $n harts would take about $est s, over the budget of $budget s per run (BUDGET=)"
			echo "stress-report: $n harts skipped: $skip" | tee -a "$out/skipped"
			continue
		fi
	fi
	echo "stress-report: $n harts ($ops ops, $ph per hart)"
	t0=$(date +%s)
	bash ci/qemu.sh --timeout "$budget" --log "$log" -- qemu-system-riscv64 -nographic \
		-bios default -M virt -smp "$n" -m 1G -icount shift=0,sleep=off \
		-kernel "$kernel" -append "stress=$opts ops=$ops" >/dev/null 2>&1
	rc=$?
	secs=$(($(date +%s) - t0))
	if [ $rc = 2 ] && ! tr -d '\r' <"$log" | grep -q '^stress: \(SUCCESS\|FAILURE\)'; then
		skip="the run on $n harts did not finish within the budget of $budget s per run (BUDGET=)"
		echo "stress-report: $n harts stopped: $skip" | tee -a "$out/skipped"
		continue
	fi
	if [ $rc != 0 ] || ! tr -d '\r' <"$log" | grep -q '^stress: SUCCESS$'; then
		echo "stress-report: the run on $n harts failed (status $rc, $log)"
		status=1
		continue
	fi
	echo "stress-report: $n harts: $secs s"
	last_n=$n
	prev_t=$last_t
	last_t=$((secs > 0 ? secs : 1))
	prev_ops=$last_ops
	last_ops=$ops
	tr -d '\r' <"$log" | awk -v n="$n" -v secs="$secs" -v ph="$ph" '
		/^stress: manager/ { t = 1; next }
		t && /^stress: [a-z]+ +[0-9]/ { print n "\t" $2 "\t" $3 "\t" $5 "\t" $10 "\t" $11 "\t" secs "\t" ph }
		/^stress: [0-9]+ ops,/ { t = 0 }' >>"$tsv"
done
# Debian's python3 (where python3-matplotlib is), even when another python3
# comes first in PATH
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
"$py" - "$tsv" "$out" "$per" "$total" <<'PY'
import sys, collections
tsv, out, per, total = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows = [l.rstrip("\n").split("\t") for l in open(tsv)][1:]
data = collections.OrderedDict()
pct = collections.OrderedDict()
secs = {}
perhart = {}
harts = sorted({int(r[0]) for r in rows})
for h, m, ops, ipo, p50, p99, t, ph in rows:
    perhart[int(h)] = int(ph)
    data.setdefault(m, {})[int(h)] = int(ipo)
    pct.setdefault(m, {})[int(h)] = (int(p50), int(p99))
    secs[int(h)] = int(t)
skipped = [l.strip() for l in open(out + "/skipped") if l.strip()]
with open(out + "/report.md", "w") as f:
    f.write("# Stress scaling report\n\n")
    f.write("Instructions per operation (under `-icount shift=0,sleep=off`, waits included) "
            "by manager and harts; %s operations per hart, at most %s in a run "
            "(from then on the total stays constant and each hart does its share).\n\n" % (per, total))
    f.write("| manager | " + " | ".join("%d harts" % h for h in harts) + " |\n")
    f.write("|---|" + "---:|" * len(harts) + "\n")
    for m, d in data.items():
        f.write("| %s | " % m + " | ".join(str(d.get(h, "-")) for h in harts) + " |\n")
    f.write("\nMedian and 99th percentile of the instructions of one operation "
            "(p50 / p99, within 19%: 4 histogram buckets per power of two):\n\n")
    f.write("| manager | " + " | ".join("%d harts" % h for h in harts) + " |\n")
    f.write("|---|" + "---:|" * len(harts) + "\n")
    for m, d in pct.items():
        f.write("| %s | " % m + " | ".join("%d / %d" % d[h] if h in d else "-" for h in harts) + " |\n")
    f.write("\nOperations per hart: %s; host seconds per run: %s.\n" %
            (", ".join("%d harts %d" % (h, perhart[h]) for h in harts),
             ", ".join("%d harts %d s" % (h, secs[h]) for h in harts)))
    if skipped:
        f.write("\n" + "\n".join("- " + l.replace("stress-report: ", "") for l in skipped) + "\n")
print(open(out + "/report.md").read())
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("stress-report: python3-matplotlib missing: no picture (ci/deps.sh report)")
    sys.exit(1)
fig, ax = plt.subplots(figsize=(8, 5))
for m, d in data.items():
    hs = [h for h in harts if h in d]
    ax.plot(hs, [d[h] for h in hs], marker="o", label=m)
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xticks(harts)
ax.set_xticklabels([str(h) for h in harts])
ax.set_xlabel("harts")
ax.set_ylabel("instructions per operation")
ax.set_title("stress: cost per operation as harts grow (QEMU virt, icount)")
ax.grid(True, which="both", alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(out + "/scaling.png", dpi=100)
print("stress-report: wrote %s/report.md and %s/scaling.png" % (out, out))
PY
[ $? = 0 ] || status=1
exit $status
