# gen_c.py N - a C file of about N*12 lines for the compiler workload:
# functions with loops, switches, structs and calls between them, and a
# main that prints a checksum of all of them.
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
out = ["#include <stdio.h>", "#include <string.h>", ""]
for i in range(n):
    out += [
        "struct s%d { int a[%d]; long b; const char *c; };" % (i, 1 + i % 7),
        "static long f%d(long x)" % i,
        "{",
        "\tstruct s%d v; memset(&v, 0, sizeof(v)); v.c = \"f%d\";" % (i, i),
        "\tfor (int k = 0; k < %d; k++) v.a[k %% %d] += (int)(x * %d + k);" % (8 + i % 5, 1 + i % 7, i + 3),
        "\tswitch (x %% 4) { case 0: v.b = x * %d; break; case 1: v.b = x ^ %d; break;" % (i, i * 31),
        "\tcase 2: v.b = (long)strlen(v.c) + x; break; default: v.b = -x; }",
        "\treturn v.b + v.a[0]%s;" % (" + f%d(x / 2)" % (i - 1) if i else ""),
        "}",
        "",
    ]
out += ["int main(void)", "{", "\tlong s = 0;"]
out += ["\ts += f%d(%d);" % (i, i) for i in range(0, n, 3)]
out += ['\tprintf("%ld\\n", s);', "\treturn 0;", "}"]
print("\n".join(out))
