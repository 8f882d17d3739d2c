/* A broker whose offset.metadata.max.bytes (256 on the broker tier's
 * broker) is below the commit metadata kaffe sends refuses those commits
 * (OFFSET_METADATA_TOO_LARGE). kaffe commits again at once with a smaller
 * budget, so interval commits still advance, and warns once. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kaffe/kaffe.h>

#include "ack/ack.h"
#include "common/clock.h"
#include "support/broker_env.h"
#include "support/plain_client.h"

#define BROKER_LIMIT 256 /* offset.metadata.max.bytes in scripts/kafka/start.sh */
enum { N = 6000 };

static void load_env(void) {
    char err[512];
    cr_assert(broker_env_load(err, sizeof err), "%s", err);
}

TestSuite(commit_metadata, .init = load_env);

typedef struct held {
    pthread_mutex_t lock;
    kaffe_message_t *m[N];
    atomic_int handled;
} held_t;

static held_t held = {.lock = PTHREAD_MUTEX_INITIALIZER};
static atomic_int warnings, refusals_reported;

/* Async: keeps every message for the test to ack. */
static int keep(kaffe_message_t *m, void *opaque) {
    (void)opaque;
    int64_t o = kaffe_message_offset(m);
    cr_assert(o >= 0 && o < N);
    pthread_mutex_lock(&held.lock);
    held.m[o] = m;
    pthread_mutex_unlock(&held.lock);
    atomic_fetch_add(&held.handled, 1);
    return KAFFE_OK;
}

static void on_log(int level, const char *facility, const char *line, void *opaque) {
    (void)facility;
    (void)opaque;
    if (level == KAFFE_LOG_WARNING && strstr(line, "commits at most")) {
        cr_log_info("%s", line);
        atomic_fetch_add(&warnings, 1);
    }
}

static void on_error(int status, const char *reason, void *opaque) {
    (void)opaque;
    if (status == RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE) {
        cr_log_info("error: %s", reason);
        atomic_fetch_add(&refusals_reported, 1);
    }
}

static void ack(kaffe_consumer_t *c, int64_t o) {
    pthread_mutex_lock(&held.lock);
    kaffe_message_t *m = held.m[o];
    held.m[o] = NULL;
    pthread_mutex_unlock(&held.lock);
    cr_assert_not_null(m, "offset %lld not held", (long long)o);
    cr_assert_eq(kaffe_consumer_ack(c, m), KAFFE_OK);
}

/* Waits until the group's committed offset is want; its metadata then fits
 * the broker's limit and decodes. */
static void committed_becomes(const char *group, const char *topic, int64_t want) {
    int64_t deadline = clock_now_ms() + 15000, got;
    char *metadata = NULL;
    do {
        free(metadata);
        metadata = NULL;
        got = plain_committed(broker_env("KAFFE_BROKER_PLAINTEXT"), group, topic, 0, &metadata);
        if (got == want)
            break;
        clock_sleep_ms(100);
    } while (clock_now_ms() < deadline);
    cr_assert_eq(got, want, "committed %lld, want %lld", (long long)got, (long long)want);
    size_t len = metadata ? strlen(metadata) : 0;
    cr_log_info("committed %lld with %zu bytes of metadata", (long long)got, len);
    cr_assert_leq(len, BROKER_LIMIT);
    if (len > 0) {
        ack_snapshot_t snap = {0};
        cr_assert_eq(ack_metadata_decode(metadata, len, want, &snap), KAFFE_OK);
        ack_snapshot_free(&snap);
    }
    free(metadata);
}

Test(commit_metadata, a_broker_that_refuses_the_metadata_still_gets_the_watermark, .timeout = 120) {
    char topic[128], group[160], err[512];
    broker_unique_topic(topic, sizeof topic, "mdlimit");
    snprintf(group, sizeof group, "%s-group", topic);
    cr_assert_eq(broker_create_topic(topic, 1, err, sizeof err), 0, "%s", err);
    const char *b = broker_env("KAFFE_BROKER_PLAINTEXT");
    cr_assert_eq(plain_produce(b, topic, 0, N, 0, 0), N);

    kaffe_conf_t *conf = kaffe_conf_new();
    const char *settings[][2] = {
        {"endpoints", b},
        {"topics", topic},
        {"consumer_group", group},
        {"start_with_earliest_message", "true"},
        {"async_message_ack", "true"},
        {"ordering", "unordered"},
        {"commit_interval_ms", "200"},
        {"max_in_flight_messages", "20000"},
        {"max_wait_time", "100"},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        cr_assert_eq(kaffe_conf_set(conf, settings[i][0], settings[i][1], err, sizeof err),
                     KAFFE_OK, "%s", err);
    kaffe_conf_set_message_handler(conf, keep, NULL);
    kaffe_conf_set_log_cb(conf, on_log, NULL);
    kaffe_conf_set_error_cb(conf, on_error, NULL);
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    for (int64_t deadline = clock_now_ms() + 60000; atomic_load(&held.handled) < N;)
        cr_assert_lt(clock_now_ms(), deadline, "handled %d of %d", atomic_load(&held.handled), N);

    /* Offset 0 and every odd offset held: the watermark stays at 0 and the
     * acks above it need ~500 bytes of metadata, twice the broker's limit. */
    for (int64_t o = 2; o < N; o += 2)
        ack(c, o);
    committed_becomes(group, topic, 0);
    /* The interval commits advance with the watermark. */
    ack(c, 0);
    committed_becomes(group, topic, 1);
    ack(c, 1);
    committed_becomes(group, topic, 3);
    cr_assert_eq(atomic_load(&warnings), 1, "the new limit is told once");
    cr_assert_eq(atomic_load(&refusals_reported), 0, "a refusal kaffe answers is not an error");

    for (int64_t o = 3; o < N; o += 2)
        ack(c, o);
    committed_becomes(group, topic, N);
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    kaffe_consumer_destroy(c);
}
