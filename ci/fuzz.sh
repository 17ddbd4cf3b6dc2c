#!/usr/bin/env bash
# fuzz.sh SECONDS NAME... - a bounded libFuzzer run of each fuzz target,
# starting from its seed corpus in tests/fuzz/NAME/ when there is one.
set -u
secs=$1; shift
pass=0; fail=0
for name in "$@"; do
	bin=build/host/fuzz-$name
	work=build/fuzz/$name
	mkdir -p "$work"
	seeds=()
	[ -d "tests/fuzz/$name" ] && seeds=("tests/fuzz/$name")
	if "$bin" -max_total_time="$secs" -artifact_prefix="$work/" \
		-print_final_stats=0 "$work" "${seeds[@]}" >"$work.log" 2>&1; then
		echo "ok fuzz.$name ($(grep -oE '#[0-9]+' "$work.log" | tail -n 1 | tr -d '#') runs)"
		pass=$((pass + 1))
	else
		echo "FAIL fuzz.$name: see $work.log"
		tail -n 30 "$work.log"
		fail=$((fail + 1))
	fi
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
