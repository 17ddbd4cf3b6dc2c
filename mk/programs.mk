# programs: CPU indexes of host threads (mm/env_host.h) and their tests; the
# malloc replacement libraries built from the managers (tools/malloc); real
# programs run under them by `make test` and timed by `make bench-programs`.
HOST_ONLY_SRCS += tests/host/env_cpu_test.c
TSAN_SUITES    += env_cpu
