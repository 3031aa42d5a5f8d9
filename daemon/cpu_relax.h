/* cpu_relax.h - the pause inside a spin-wait (queue.c, parse_pool.c). */
#ifndef TOTOD_CPU_RELAX_H
#define TOTOD_CPU_RELAX_H

/* Tells the core this is a spin-wait: it eases off the sibling hyper-thread. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

#endif
