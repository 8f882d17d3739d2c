/* Helpers shared by the consumer integration tests (header-only: each test
 * binary is one .c file). A recorder collects what the handler saw; a
 * config builder sets the mock-friendly timings. */
#ifndef KAFFE_TESTS_CONSUMER_HELPERS_H
#define KAFFE_TESTS_CONSUMER_HELPERS_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kaffe/kaffe.h>

#include "common/clock.h"

typedef struct seen_msg {
    char topic[32];
    int32_t partition;
    int64_t offset;
    char key[32]; /* "" with has_key 0 for a null key */
    int has_key;
    long value_index;   /* from "value-<n>" */
    kaffe_message_t *m; /* async: kept for a later ack */
} seen_msg_t;

typedef struct recorder {
    pthread_mutex_t lock;
    seen_msg_t *msgs;
    size_t count, cap;
    atomic_long handled;
    int fail_at_value; /* handler returns an error on this value index (-1: never) */
    int keep;          /* async: keep messages for the test to ack */
    int ack_inline;    /* async: ack from inside the handler */
    kaffe_consumer_t *consumer;
} recorder_t;

static inline void recorder_init(recorder_t *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    r->fail_at_value = -1;
}

static inline void recorder_free(recorder_t *r) {
    free(r->msgs);
    pthread_mutex_destroy(&r->lock);
}

static inline int record_handler(kaffe_message_t *m, void *opaque) {
    recorder_t *r = opaque;
    seen_msg_t s = {0};
    snprintf(s.topic, sizeof s.topic, "%s", kaffe_message_topic(m));
    s.partition = kaffe_message_partition(m);
    s.offset = kaffe_message_offset(m);
    size_t klen, vlen;
    const char *key = kaffe_message_key(m, &klen);
    const char *value = kaffe_message_value(m, &vlen);
    s.has_key = key != NULL;
    if (key)
        snprintf(s.key, sizeof s.key, "%.*s", (int)klen, key);
    char vbuf[64];
    snprintf(vbuf, sizeof vbuf, "%.*s", (int)vlen, value ? value : "");
    s.value_index = -1;
    sscanf(vbuf, "value-%ld", &s.value_index);
    s.m = r->keep ? m : NULL;
    pthread_mutex_lock(&r->lock);
    if (r->count == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 1024;
        r->msgs = realloc(r->msgs, r->cap * sizeof *r->msgs);
    }
    r->msgs[r->count++] = s;
    pthread_mutex_unlock(&r->lock);
    atomic_fetch_add(&r->handled, 1);
    if (s.value_index == r->fail_at_value)
        return KAFFE_ERR_HANDLER;
    if (r->ack_inline && r->consumer)
        kaffe_consumer_ack(r->consumer, m);
    return KAFFE_OK;
}

static inline long recorder_handled(recorder_t *r) {
    return atomic_load(&r->handled);
}

/* Waits until the recorder handled at least n messages; false on timeout. */
static inline int wait_handled(recorder_t *r, long n, int timeout_ms) {
    int64_t deadline = clock_now_ms() + timeout_ms;
    while (recorder_handled(r) < n) {
        if (clock_now_ms() > deadline)
            return 0;
        clock_sleep_ms(5);
    }
    return 1;
}

/* A consumer configuration for the mock cluster, with fast group timings.
 * Extra settings as name, value pairs, NULL-terminated. */
static inline kaffe_conf_t *test_conf(const char *bootstraps, const char *topics, const char *group,
                                      kaffe_message_handler_t handler, void *opaque, ...) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[512];
    const char *base[][2] = {
        {"endpoints", bootstraps},
        {"topics", topics},
        {"consumer_group", group},
        {"start_with_earliest_message", "true"},
        {"commit_interval_ms", "100"},
        {"drain_timeout_ms", "3000"},
        {"rdkafka.session.timeout.ms", "6000"},
        {"rdkafka.heartbeat.interval.ms", "200"},
        {"rdkafka.fetch.wait.max.ms", "20"},
        {"rdkafka.log_level", "2"},
    };
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        if (kaffe_conf_set(conf, base[i][0], base[i][1], err, sizeof err) != KAFFE_OK) {
            fprintf(stderr, "test_conf: %s\n", err);
            abort();
        }
    va_list ap;
    va_start(ap, opaque);
    const char *name;
    while ((name = va_arg(ap, const char *))) {
        const char *value = va_arg(ap, const char *);
        if (kaffe_conf_set(conf, name, value, err, sizeof err) != KAFFE_OK) {
            fprintf(stderr, "test_conf: %s\n", err);
            abort();
        }
    }
    va_end(ap);
    if (handler)
        kaffe_conf_set_message_handler(conf, handler, opaque);
    return conf;
}

#endif
