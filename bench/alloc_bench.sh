#!/usr/bin/env bash
# alloc_bench.sh BIN - run every workload of BIN (bench/alloc_bench) against
# glibc malloc, jemalloc, tcmalloc and mimalloc (LD_PRELOAD of Debian's
# packages, located with dpkg -L or ldconfig) and the project's allocators,
# in one run, and print ns per alloc+free pair with ratios to glibc and to
# the best peer. Each figure is the best of REPS runs (noisy shared hosts).
set -u
bin=${1:-build/host/alloc_bench}
reps=${REPS:-2}
[ -x "$bin" ] || { echo "alloc_bench.sh: $bin not built"; exit 1; }

# findlib PKG... -- SONAME...: the first SONAME shipped by one of PKGs.
findlib() {
	local pkgs=() so
	while [ "$1" != "--" ]; do pkgs+=("$1"); shift; done; shift
	for so in "$@"; do
		for p in "${pkgs[@]}"; do
			f=$(dpkg -L "$p" 2>/dev/null | grep -E "/$so\$" | head -n 1)
			[ -n "$f" ] && [ -e "$f" ] && { echo "$f"; return; }
		done
		f=$(ldconfig -p 2>/dev/null | awk -v s="$so" '$1 == s { print $NF; exit }')
		[ -n "$f" ] && [ -e "$f" ] && { echo "$f"; return; }
	done
}

je=$(findlib libjemalloc2 -- libjemalloc.so.2)
tc=$(findlib libgoogle-perftools4 libtcmalloc-minimal4 -- libtcmalloc.so.4 libtcmalloc_minimal.so.4)
mi=$(findlib libmimalloc2.0 libmimalloc2 -- libmimalloc.so.2)

# columns: label, --alloc, preload library ("" = none); peers are malloc ones
cols=("glibc malloc ") ; allocs=(malloc) ; pre=("")
[ -n "$je" ] && { cols+=(jemalloc); allocs+=(malloc); pre+=("$je"); }
[ -n "$tc" ] && { cols+=(tcmalloc); allocs+=(malloc); pre+=("$tc"); }
[ -n "$mi" ] && { cols+=(mimalloc); allocs+=(malloc); pre+=("$mi"); }
npeers=${#cols[@]}
for a in $("$bin" 2>&1 | sed -n 's/^ *NAME: *//p'); do
	[ "$a" = malloc ] && continue
	cols+=("$a"); allocs+=("$a"); pre+=("")
done
workloads=$("$bin" 2>&1 | sed -n 's/^ *W: *//p')

run() {   # run WORKLOAD COLUMN -> best ns/pair
	local best="" i out ns
	for ((i = 0; i < reps; i++)); do
		if [ -n "${pre[$2]}" ]; then
			out=$(LD_PRELOAD="${pre[$2]}" "$bin" --alloc="${allocs[$2]}" --workload="$1")
		else
			out=$("$bin" --alloc="${allocs[$2]}" --workload="$1")
		fi || return 1
		ns=${out##*ns_per_pair=}
		if [ -z "$best" ] || awk -v a="$ns" -v b="$best" 'BEGIN { exit !(a < b) }'; then
			best=$ns
		fi
	done
	echo "$best"
}

echo "alloc_bench: ns per alloc+free pair (best of $reps x 3 runs); peers:"
echo "  jemalloc=${je:-missing} tcmalloc=${tc:-missing} mimalloc=${mi:-missing}"
rc=0
for w in $workloads; do
	declare -a ns=()
	for ((c = 0; c < ${#cols[@]}; c++)); do
		ns[$c]=$(run "$w" "$c") || { echo "alloc_bench: $w/${cols[$c]} failed"; rc=1; ns[$c]=nan; }
	done
	best=${ns[0]}
	for ((c = 1; c < npeers; c++)); do
		awk -v a="${ns[$c]}" -v b="$best" 'BEGIN { exit !(a < b) }' && best=${ns[$c]}
	done
	printf '\n%-10s %-14s %10s %9s %9s\n' "$w" allocator "ns/pair" "x glibc" "x best"
	for ((c = 0; c < ${#cols[@]}; c++)); do
		awk -v w="" -v n="${cols[$c]}" -v t="${ns[$c]}" -v g="${ns[0]}" -v b="$best" \
			'BEGIN { printf "%-10s %-14s %10.1f %9.2f %9.2f\n", w, n, t, t / g, t / b }'
	done
done
exit $rc
