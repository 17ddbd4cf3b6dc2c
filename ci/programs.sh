#!/usr/bin/env bash
# programs.sh SHIM... - run real programs (Debian's python3, sqlite3 and gcc,
# and the C programs of tests/programs) under glibc's malloc, then under
# each malloc shim (LD_PRELOAD), and compare their output and exit status
# with the glibc run. One line per program and manager; ends "N passed, N
# failed". Logs and outputs: build/programs/.
#
# PROGRAMS_XFAIL lists NAME:MANAGER pairs known to fail for a reason filed
# elsewhere: they print XFAIL and do not count as failures; one that passes
# prints XPASS (counted as passed) and should leave the list.
set -u
cd "$(dirname "$0")/.."
W=build/programs
P=build/host/programs
T=tests/programs
PY=/usr/bin/python3
LIMIT=${PROGRAMS_TIMEOUT:-120}
mkdir -p "$W"

# Each prog_NAME runs one program in $W with output to stdout; $1 is a tag
# for scratch files. The real programs come first, then our C programs.
prog_python()   { "$PY" "$T/alloc_heavy.py" 60000; }
prog_sqlite()   { rm -f "$W/$1.db"; sqlite3 "$W/$1.db" < "$T/sqlite.sql"; }
prog_gcc() {   # the object must be the same, and the program's output
	gcc -O1 -c -o "$W/$1.o" "$W/big.c" && sha256sum < "$W/$1.o" &&
		gcc -O0 -o "$W/$1.exe" "$W/big.c" && "$W/$1.exe"
}
prog_pythreads() { "$PY" "$T/threads.py"; }
prog_threads()  { "$P/threads"; }
prog_keydtor()  { "$P/keydtor"; }
prog_forker()   { "$P/forker"; }
prog_api()      { "$P/api"; }
PROGS="python sqlite gcc pythreads threads keydtor forker api"

"$PY" "$T/gen_c.py" 200 > "$W/big.c"   # 2,100 lines

run() {   # run NAME TAG PRELOAD: output in $W/NAME.TAG.{out,err,rc}
	local name=$1 tag=$2 lib=$3
	( [ -n "$lib" ] && export LD_PRELOAD="$lib"
	  timeout "$LIMIT" bash -c "$(declare -f prog_$name); W=$W P=$P T=$T PY=$PY prog_$name $name.$tag" \
		> "$W/$name.$tag.out" 2> "$W/$name.$tag.err"
	  echo $? > "$W/$name.$tag.rc" )
}

XFAIL=" ${PROGRAMS_XFAIL:-} "
pass=0
fail=0
xfail=0
# A shim that does not load would let every program pass under glibc.
for lib in "$@"; do
	if ! LD_PRELOAD="$(realpath "$lib")" cat /proc/self/maps | grep -qF "$(realpath "$lib")"; then
		echo "FAIL $lib: not loaded by LD_PRELOAD"
		fail=$((fail + 1))
	fi
done
for name in $PROGS; do
	run "$name" glibc ""
	if [ "$(cat "$W/$name.glibc.rc")" != 0 ]; then
		echo "FAIL $name under glibc: exit $(cat "$W/$name.glibc.rc") (the reference run; $W/$name.glibc.err)"
		fail=$((fail + 1))
		continue
	fi
	for lib in "$@"; do
		mgr=$(basename "$lib" .so); mgr=${mgr#lib}; mgr=${mgr%-malloc}
		run "$name" "$mgr" "$(realpath "$lib")"
		rc=$(cat "$W/$name.$mgr.rc")
		why=""
		if [ "$rc" = 124 ]; then
			why="timed out after ${LIMIT}s"
		elif [ "$rc" != 0 ]; then
			why="exit $rc"
		elif ! cmp -s "$W/$name.glibc.out" "$W/$name.$mgr.out"; then
			why="output differs from glibc's"
		fi
		case "$XFAIL" in *" $name:$mgr "*) known=1 ;; *) known=0 ;; esac
		if [ -z "$why" ]; then
			if [ $known = 1 ]; then
				echo "XPASS $name under $mgr: remove $name:$mgr from PROGRAMS_XFAIL"
			else
				echo "ok $name under $mgr"
			fi
			pass=$((pass + 1))
			continue
		fi
		if [ $known = 1 ]; then
			echo "XFAIL $name under $mgr: $why (known, PROGRAMS_XFAIL)"
			xfail=$((xfail + 1))
		else
			echo "FAIL $name under $mgr: $why"
			fail=$((fail + 1))
		fi
		if [ "$why" = "output differs from glibc's" ]; then
			diff "$W/$name.glibc.out" "$W/$name.$mgr.out" | head -n 6 | sed 's/^/    /'
		else
			tail -n 5 "$W/$name.$mgr.err" | sed 's/^/    stderr: /'
		fi
	done
done
[ "$xfail" = 0 ] || echo "programs: $xfail known failures (PROGRAMS_XFAIL)"
echo "programs: $pass passed, $fail failed"
[ "$fail" = 0 ]
