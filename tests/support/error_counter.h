/* tests/support — an error callback for tests that expect errors (retries,
 * refused commits): it counts them instead of letting kaffe log each one.
 * Header-only: any test binary may include it. Any thread. */
#ifndef KAFFE_TESTS_SUPPORT_ERROR_COUNTER_H
#define KAFFE_TESTS_SUPPORT_ERROR_COUNTER_H

#include <stdatomic.h>

/* Set with kaffe_conf_set_error_cb(conf, error_counter_cb, &counter), where
 * counter is an atomic_long that outlives the consumer. */
static inline void error_counter_cb(int status, const char *reason, void *opaque) {
    (void)status;
    (void)reason;
    atomic_fetch_add_explicit((atomic_long *)opaque, 1, memory_order_relaxed);
}

#endif
