/* spin.h - spin-waits (queue.c, parse_pool.c, write_fanout.c). */
#ifndef TOTOD_SPIN_H
#define TOTOD_SPIN_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

/* Tells the core this is a spin-wait: it eases off the sibling hyper-thread. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* Spins until *counter (written by other threads) is no longer seen, or
 * poll_ns passes; whether it changed. Call it without any lock held. */
static inline bool spin_for_change(const uint64_t *counter, uint64_t seen, uint64_t poll_ns) {
    uint64_t until = uv_hrtime() + poll_ns;
    while (__atomic_load_n(counter, __ATOMIC_ACQUIRE) == seen) {
        if (uv_hrtime() >= until)
            return false;
        cpu_relax();
    }
    return true;
}

#endif
