#!/usr/bin/env bash
# stress-report.sh KERNEL OUTDIR - the stress tool's scaling report: the same
# workload (a fixed number of operations per hart) at 1, 2, 4, ... 64 harts
# under -icount shift=0,sleep=off, instructions per operation per manager
# from each run's table, written to OUTDIR/report.md and drawn into
# OUTDIR/scaling.png (python3-matplotlib; ci/deps.sh report installs it).
# HARTS='1 2 4' and PER_HART=n narrow it. Exits non-zero if a run fails.
set -u
cd "$(dirname "$0")/.."
kernel=$1
out=$2
harts=${HARTS:-1 2 4 8 16 32 64}
per=${PER_HART:-300}
opts="icount=1 yield=16 live=32 xfer=10 check=0 stat=0 seed=1"
mkdir -p "$out"
tsv="$out/scaling.tsv"
echo -e "harts\tmanager\tops\tinsn_per_op" >"$tsv"
status=0
for n in $harts; do
	log="$out/run-$n.log"
	echo "stress-report: $n harts ($((per * n)) ops)"
	bash ci/qemu.sh --timeout 1800 --log "$log" -- qemu-system-riscv64 -nographic \
		-bios default -M virt -smp "$n" -m 1G -icount shift=0,sleep=off \
		-kernel "$kernel" -append "stress=$opts ops=$((per * n))" >/dev/null 2>&1
	rc=$?
	if [ $rc != 0 ] || ! tr -d '\r' <"$log" | grep -q '^stress: SUCCESS$'; then
		echo "stress-report: the run on $n harts failed (status $rc, $log)"
		status=1
		continue
	fi
	tr -d '\r' <"$log" | awk -v n="$n" '
		/^stress: manager/ { t = 1; next }
		t && /^stress: [a-z]+ +[0-9]/ { print n "\t" $2 "\t" $3 "\t" $5 }
		/^stress: [0-9]+ ops,/ { t = 0 }' >>"$tsv"
done
# Debian's python3 (where python3-matplotlib is), even when another python3
# comes first in PATH
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
"$py" - "$tsv" "$out" <<'PY'
import sys, collections
tsv, out = sys.argv[1], sys.argv[2]
rows = [l.rstrip("\n").split("\t") for l in open(tsv)][1:]
data = collections.OrderedDict()
harts = sorted({int(r[0]) for r in rows})
for h, m, ops, ipo in rows:
    data.setdefault(m, {})[int(h)] = int(ipo)
with open(out + "/report.md", "w") as f:
    f.write("# Stress scaling report\n\n")
    f.write("Instructions per operation (under `-icount shift=0,sleep=off`, waits included) "
            "by manager and harts; the same operations per hart at every size.\n\n")
    f.write("| manager | " + " | ".join("%d harts" % h for h in harts) + " |\n")
    f.write("|---|" + "---:|" * len(harts) + "\n")
    for m, d in data.items():
        f.write("| %s | " % m + " | ".join(str(d.get(h, "-")) for h in harts) + " |\n")
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
