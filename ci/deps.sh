#!/usr/bin/env bash
# Install what the build, the tests and the benchmarks need on Debian 12.
# Calls apt-get only for packages that are absent; when not root, prints the
# exact command instead of trying sudo.
set -eu

# Packages by purpose; `ci/deps.sh bench` adds the benchmark peers,
# `ci/deps.sh programs` the real programs, `ci/deps.sh debug` the debugger,
# `ci/deps.sh report` the stress report's plotting.
PKGS="gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf binutils-riscv64-unknown-elf
qemu-system-misc opensbi device-tree-compiler libfdt-dev clang libclang-rt-14-dev
u-boot-qemu fdisk e2fsprogs"
if [ "${1:-}" = bench ]; then
	PKGS="$PKGS libmimalloc-dev libjemalloc-dev libgoogle-perftools-dev"
fi
# `ci/deps.sh programs`: what the real-program test and benchmark run
if [ "${1:-}" = programs ]; then
	PKGS="$PKGS python3 sqlite3 gcc git xz-utils gzip time"
fi
# `ci/deps.sh report`: the stress tool's scaling picture (make stress-report)
if [ "${1:-}" = report ]; then
	PKGS="$PKGS python3 python3-matplotlib"
fi
if [ "${1:-}" = debug ]; then
	PKGS="$PKGS gdb-multiarch"
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" != 0 ]; then
	echo "ci/deps.sh: missing packages:$missing" >&2
	echo "ci/deps.sh: run as root: apt-get update && $cmd" >&2
	exit 1
fi
echo "ci/deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
$cmd >/dev/null
