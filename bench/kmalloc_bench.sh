#!/usr/bin/env bash
# kmalloc_bench.sh BIN [threads] [ops] - the kernel-object workloads on
# kmalloc and on glibc, jemalloc, tcmalloc and mimalloc (LD_PRELOAD), in one
# run; best of 3 per cell, ns per alloc+free pair, ratios against kmalloc.
set -u
bin=$1; threads=${2:-2}; ops=${3:-3000000}

lib() {   # the first shared object of a Debian package matching a pattern
	dpkg -L "$1" 2>/dev/null | grep -E "$2" | head -n 1
}
declare -A pre=(
	[glibc]=""
	[jemalloc]="$(lib libjemalloc2 'libjemalloc\.so\.2$')"
	[tcmalloc]="$(lib libgoogle-perftools4 'libtcmalloc\.so\.4$')"
	[mimalloc]="$(lib libmimalloc2.0 'libmimalloc\.so\.2(\.0)?$')"
)
order="kmalloc glibc jemalloc tcmalloc mimalloc"

best() {  # best of 3: alloc workload:threads
	local a=$1 w=${2%:*} t=${2#*:} b="" v
	for _ in 1 2 3; do
		if [ "$a" = kmalloc ]; then
			v=$("$bin" kmalloc "$w" "$t" "$ops" | awk '/^RESULT/ {print $4}')
		else
			v=$(LD_PRELOAD="${pre[$a]}" "$bin" malloc "$w" "$t" "$ops" | awk '/^RESULT/ {print $4}')
		fi
		[ -n "$v" ] || { echo "kmalloc_bench: $a $w failed" >&2; return 1; }
		b=$(awk -v a="$b" -v v="$v" 'BEGIN { print (a == "" || v < a) ? v : a }')
	done
	echo "$b"
}

rc=0
declare -A res
works="kobj:1 kobj:$threads xthread:$threads"
for w in $works; do
	for a in $order; do
		if [ "$a" != glibc ] && [ "$a" != kmalloc ] && [ -z "${pre[$a]}" ]; then
			res[$a,$w]=NA; continue
		fi
		res[$a,$w]=$(best "$a" "$w") || { res[$a,$w]=NA; rc=1; }
	done
done

echo "kmalloc bench: $ops alloc+free pairs per thread, ns per pair (best of 3)"
printf '%-10s' allocator
for w in $works; do printf ' %12s %7s' "${w%:*}(${w#*:}T)" ratio; done
echo
for a in $order; do
	printf '%-10s' "$a"
	for w in $works; do
		v=${res[$a,$w]}; k=${res[kmalloc,$w]}
		if [ "$v" = NA ] || [ "$k" = NA ]; then printf ' %12s %7s' "$v" -; continue; fi
		printf ' %12.2f %7s' "$v" "$(awk -v v="$v" -v k="$k" 'BEGIN { printf "%.2fx", v / k }')"
	done
	echo
done
echo "(ratio = allocator time / kmalloc time: above 1 means kmalloc is faster)"
for w in kobj:1 kobj:$threads; do
	k=${res[kmalloc,$w]}; m=${res[mimalloc,$w]}
	if [ "$k" != NA ] && [ "$m" != NA ]; then
		awk -v k="$k" -v m="$m" -v w="$w" 'BEGIN { printf "target %s <= mimalloc: %s (%.2f vs %.2f ns)\n", w, (k <= m) ? "met" : "missed", k, m }'
	fi
done
exit $rc
