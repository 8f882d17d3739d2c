/* Hooks for tests only (declared in internal.h). They cost the product
 * nothing: the poll loop reads the hook's flag with one relaxed load. */

#include "consumer/internal.h"

void consumer_test_fatal_error(kaffe_consumer_t *c, rd_kafka_resp_err_t err) {
    atomic_store_explicit(&c->test_fatal, (int)err, memory_order_relaxed);
}

void consumer_testing_raise_fatal(kaffe_consumer_t *c) {
    /* relaxed: a standalone request; it publishes nothing else. */
    int fatal = atomic_exchange_explicit(&c->test_fatal, 0, memory_order_relaxed);
    if (fatal)
        rd_kafka_test_fatal_error(c->rk, (rd_kafka_resp_err_t)fatal, "kaffe test");
}

uint64_t consumer_test_commit_holds(const kaffe_consumer_t *c) {
    return c->commit_holds;
}

bool consumer_test_waited_for_first_assignment(const kaffe_consumer_t *c) {
    return c->waited_for_first_assignment;
}
