/* src/common — one small, fast, non-cryptographic pseudo-random generator
 * (splitmix64) for jitter, random partition choice and test data.
 *
 * Thread contract: a prng_t belongs to one thread (or is guarded by its
 * owner); prng_thread_u32() uses a thread-local state seeded on first use, so
 * any thread may call it without locks. Never use it for secrets. */
#ifndef KAFFE_SRC_COMMON_PRNG_H
#define KAFFE_SRC_COMMON_PRNG_H

#include <stdint.h>

#include "common/clock.h"

typedef struct {
    uint64_t state;
} prng_t;

/* A generator whose sequence is fixed by seed (any value, 0 included). */
static inline prng_t prng_seeded(uint64_t seed) {
    prng_t p = {seed};
    return p;
}

/* The next 64 pseudo-random bits (splitmix64: every state is valid). */
static inline uint64_t prng_next(prng_t *p) {
    uint64_t z = (p->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A value in [0, bound) (bound > 0); the modulo bias is below 2^-32 for any
 * bound under 2^32, fine for jitter and sampling. */
static inline uint64_t prng_below(prng_t *p, uint64_t bound) {
    return prng_next(p) % bound;
}

/* 32 pseudo-random bits from the calling thread's own generator, seeded on
 * first use from the clock and the state's address (distinct per thread). */
static inline uint32_t prng_thread_u32(void) {
    static _Thread_local prng_t state;
    static _Thread_local int seeded;
    if (!seeded) {
        state = prng_seeded(clock_now_ns() ^ (uint64_t)(uintptr_t)&state);
        seeded = 1;
    }
    return (uint32_t)(prng_next(&state) >> 32);
}

#endif
