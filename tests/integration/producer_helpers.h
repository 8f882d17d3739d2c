/* Helpers shared by the producer's integration tests (header-only, static):
 * a producer from name/value pairs, and reading a topic back exactly with a
 * plain librdkafka consumer. */
#ifndef KAFFE_TESTS_PRODUCER_HELPERS_H
#define KAFFE_TESTS_PRODUCER_HELPERS_H

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kaffe/kaffe.h>

#include "mock/mock_cluster.h"
#include "support/plain_client.h"

/* A producer on bootstraps with the given topics and extra "name", "value"
 * pairs (NULL-terminated). Fails the test on any configuration error. */
static inline kaffe_producer_t *producer_with(const char *bootstraps, const char *topics, ...) {
    char err[512];
    kaffe_conf_t *conf = kaffe_conf_new();
    cr_assert_eq(kaffe_conf_set(conf, "endpoints", bootstraps, err, sizeof err), KAFFE_OK, "%s",
                 err);
    cr_assert_eq(kaffe_conf_set(conf, "topics", topics, err, sizeof err), KAFFE_OK, "%s", err);
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.log_level", "2", err, sizeof err), KAFFE_OK);
    va_list ap;
    va_start(ap, topics);
    const char *name;
    while ((name = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        cr_assert_eq(kaffe_conf_set(conf, name, value, err, sizeof err), KAFFE_OK, "%s", err);
    }
    va_end(ap);
    kaffe_producer_t *p = kaffe_producer_new(conf, err, sizeof err);
    cr_assert_not_null(p, "kaffe_producer_new: %s", err);
    return p;
}

/* Every message of topic (partitions partitions): waits up to 10 s until the
 * log ends add up to at least expected, then reads exactly that many. */
static inline size_t read_topic(const char *bootstraps, const char *topic, int partitions,
                                size_t expected, plain_message_t **out) {
    int64_t total = 0;
    for (int attempt = 0; attempt < 100; attempt++) {
        total = 0;
        for (int p = 0; p < partitions; p++)
            total += plain_log_end(bootstraps, topic, p);
        if (total >= (int64_t)expected)
            break;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    size_t n = total > 0 ? plain_consume_all(bootstraps, topic, (size_t)total, 5000, out) : 0;
    if (total <= 0)
        *out = NULL;
    cr_assert_eq(n, (size_t)total, "read %zu of %lld messages of %s", n, (long long)total, topic);
    return n;
}

/* The log end of every partition of topic, summed. */
static inline int64_t topic_size(const char *bootstraps, const char *topic, int partitions) {
    int64_t total = 0;
    for (int p = 0; p < partitions; p++)
        total += plain_log_end(bootstraps, topic, p);
    return total;
}

static inline double seconds_since(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

#endif
