/* timer.h - the per-hart tick, hooks run on it, and the guest's clock. */
#ifndef TIMER_H
#define TIMER_H

#include <stdint.h>

/* Hooks run in interrupt context on every hart's tick. */
int timer_add_hook(void (*fn)(void));
void timer_remove_hook(void (*fn)(void));
void timer_init_hart(void);
void timer_tick(void);
uint64_t time_us(void);

#endif
