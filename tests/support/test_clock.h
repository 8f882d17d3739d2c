/* tests/support — the monotonic clock and sleeps the Criterion tests wait
 * with (header-only). Any thread. */
#ifndef KAFFE_TESTS_SUPPORT_TEST_CLOCK_H
#define KAFFE_TESTS_SUPPORT_TEST_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t test_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t test_now_ms(void) {
    return test_now_us() / 1000;
}

static inline void test_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#endif
