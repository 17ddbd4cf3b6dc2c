/* kernel.h - every kernel module's header at once, for the programs that
 * run on the kernel (apps/, tests/kernel/) and use many of them. Kernel
 * files include the module headers they need instead. */
#ifndef KERNEL_H
#define KERNEL_H

#include "boot.h"
#include "console.h"
#include "hart.h"
#include "panic.h"
#include "smp.h"
#include "timer.h"
#include "trap.h"

#endif
