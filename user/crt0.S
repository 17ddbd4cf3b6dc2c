/* crt0.S - partition entry: the kernel starts us with sp at the top of the
 * stack segment and a0 = the argument from the partition configuration. */
	.section .text.start, "ax"
	.globl _start
_start:
	mv	tp, zero
	call	ulib_start
1:	j	1b
