/* Hooks only tests call (declared at the end of producer.h). Nothing on a
 * produce or delivery path calls into this file: the age limit it sets is
 * the atomic the delivery thread reads anyway (defer.c, rule 1).
 * Any thread. */
#include "producer/internal.h"
#include "producer/producer.h"

bool producer_has_deferred(kaffe_producer_t *p) {
    /* A snapshot for tests; orders nothing. */
    return !cds_lfs_empty(&p->deferred);
}

void producer_set_defer_max_ms(kaffe_producer_t *p, int ms) {
    atomic_store_explicit(&p->defer_max_ms, ms, memory_order_relaxed);
}
