# ktest: the framework's own tests.
UNIT_SRCS += tests/unit/ktest_test.c
