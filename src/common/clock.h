/* src/common — the one monotonic clock of kaffe: now, sleep and deadlines.
 *
 * Every reading is CLOCK_MONOTONIC (never jumps with the wall clock). All
 * functions are thread-safe, allocate nothing, and are inline so that the hot
 * path (a message's poll time) pays one clock_gettime and nothing else. */
#ifndef KAFFE_SRC_COMMON_CLOCK_H
#define KAFFE_SRC_COMMON_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t clock_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CLOCK_MONOTONIC in microseconds. */
static inline int64_t clock_now_us(void) {
    return (int64_t)(clock_now_ns() / 1000u);
}

/* CLOCK_MONOTONIC in milliseconds. */
static inline int64_t clock_now_ms(void) {
    return (int64_t)(clock_now_ns() / 1000000u);
}

/* CLOCK_MONOTONIC in seconds, as a double (benchmarks' elapsed times). */
static inline double clock_now_s(void) {
    return (double)clock_now_ns() / 1e9;
}

/* Sleeps for ms milliseconds (none when ms <= 0), resuming after signals. */
static inline void clock_sleep_ms(int64_t ms) {
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) != 0) {
    }
}

/* Sleeps until the CLOCK_MONOTONIC time deadline_ns (returns at once when it
 * has passed). */
static inline void clock_sleep_until_ns(uint64_t deadline_ns) {
    struct timespec ts = {(time_t)(deadline_ns / 1000000000u), (long)(deadline_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
    }
}

/* The CLOCK_MONOTONIC timespec ms milliseconds from now: the absolute
 * deadline for pthread_cond_timedwait on a condition variable whose clock is
 * CLOCK_MONOTONIC (pthread_condattr_setclock). */
static inline struct timespec clock_deadline_after_ms(int64_t ms) {
    uint64_t at = clock_now_ns() + (uint64_t)(ms > 0 ? ms : 0) * 1000000u;
    struct timespec ts = {(time_t)(at / 1000000000u), (long)(at % 1000000000u)};
    return ts;
}

/* Initialises cond to time its waits on CLOCK_MONOTONIC, so that
 * clock_deadline_after_ms() deadlines apply. Returns pthread_cond_init's
 * result. */
static inline int clock_cond_init(pthread_cond_t *cond) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

#endif
