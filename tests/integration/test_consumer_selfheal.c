/* Self-healing: broker outages and fatal client errors never need the
 * application to re-create the consumer, and lose nothing. Each test runs
 * its own embedded cluster. */
#include <criterion/criterion.h>

#include "consumer/internal.h"
#include "consumer_helpers.h"
#include "mock/mock_cluster.h"
#include "support/mock_suite.h"
#include "support/plain_client.h"

TestSuite(consumer_selfheal, .timeout = 120);

static void count_errors(int status, const char *reason, void *opaque) {
    (void)opaque;
    if (getenv("KAFFE_TEST_VERBOSE"))
        fprintf(stderr, "error callback: %s: %s\n", kaffe_err_name(status), reason);
}

static kaffe_consumer_t *start_consumer(kaffe_conf_t *conf, recorder_t *r) {
    char err[512];
    kaffe_conf_set_error_cb(conf, count_errors, NULL);
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    r->consumer = c;
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    return c;
}

static int wait_until(int (*cond)(void *), void *arg, int timeout_ms) {
    int64_t deadline = clock_now_ms() + timeout_ms;
    while (!cond(arg)) {
        if (clock_now_ms() > deadline)
            return 0;
        clock_sleep_ms(5);
    }
    return 1;
}

static atomic_long transport_errors;
static void count_transport(int status, const char *reason, void *opaque) {
    (void)reason;
    (void)opaque;
    if (status == KAFFE_ERR_TRANSPORT || status == KAFFE_ERR_ALL_BROKERS_DOWN)
        atomic_fetch_add(&transport_errors, 1);
}

Test(consumer_selfheal, all_brokers_down_then_up_resumes_by_itself_and_loses_nothing) {
    char err[512];
    mock_topic_t topics[] = {{"outage", 2}};
    mock_cluster_t *own = test_mock_cluster_start(3, topics, 1);
    const char *b = mock_cluster_bootstraps(own);
    enum { HALF = 200 };
    cr_assert_eq(plain_produce(b, "outage", RD_KAFKA_PARTITION_UA, HALF, 0, 8), HALF);
    recorder_t r;
    recorder_init(&r);
    kaffe_conf_t *conf = test_conf(b, "outage", "g-outage", record_handler, &r, NULL);
    kaffe_conf_set_error_cb(conf, count_transport, NULL);
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    cr_assert(wait_handled(&r, HALF, 30000));
    for (int id = 1; id <= 3; id++)
        rd_kafka_mock_broker_set_down(mock_cluster_handle(own), id);
    int64_t deadline = clock_now_ms() + 30000;
    while (atomic_load(&transport_errors) == 0 && clock_now_ms() < deadline)
        clock_sleep_ms(10);
    cr_assert_gt(atomic_load(&transport_errors), 0, "the error callback was told");
    /* Down for a while: longer than the session timeout (6 s) would be
     * needed to lose the group on a real cluster; the consumer must not
     * stop whatever happens meanwhile. */
    cr_assert_eq(kaffe_consumer_wait(c, 3000), KAFFE_ERR_TIMED_OUT, "still running while down");
    for (int id = 1; id <= 3; id++)
        rd_kafka_mock_broker_set_up(mock_cluster_handle(own), id);
    cr_assert_eq(plain_produce(b, "outage", RD_KAFKA_PARTITION_UA, HALF, HALF, 8), HALF);
    cr_assert(wait_handled(&r, 2 * HALF, 60000), "handled %ld", recorder_handled(&r));
    /* Everything committed, nothing lost. */
    int64_t total = 0;
    deadline = clock_now_ms() + 30000;
    for (;;) {
        total = 0;
        for (int p = 0; p < 2; p++) {
            int64_t off = plain_committed(b, "g-outage", "outage", p, NULL);
            int64_t end = plain_log_end(b, "outage", p);
            total += off == end ? 1 : 0;
        }
        if (total == 2 || clock_now_ms() > deadline)
            break;
        clock_sleep_ms(50);
    }
    cr_assert_eq(total, 2, "both partitions committed to their log end");
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    char *seen = calloc(2 * HALF, 1);
    for (size_t i = 0; i < r.count; i++)
        if (r.msgs[i].value_index >= 0 && r.msgs[i].value_index < 2 * HALF)
            seen[r.msgs[i].value_index] = 1;
    for (int v = 0; v < 2 * HALF; v++)
        cr_assert(seen[v], "value-%d lost", v);
    free(seen);
    kaffe_consumer_destroy(c);
    recorder_free(&r);
    mock_cluster_stop(own);
}

static int restarted(void *arg) {
    kaffe_failure_counters_t k;
    kaffe_consumer_failure_counters(arg, &k);
    return k.restarts >= 1;
}

Test(consumer_selfheal, a_fatal_error_restarts_the_client_and_old_acks_are_revoked) {
    mock_topic_t topics[] = {{"fatal", 2}};
    mock_cluster_t *own = test_mock_cluster_start(1, topics, 1);
    const char *b = mock_cluster_bootstraps(own);
    enum { HALF = 100 };
    cr_assert_eq(plain_produce(b, "fatal", RD_KAFKA_PARTITION_UA, HALF, 0, 4), HALF);
    recorder_t r;
    recorder_init(&r);
    r.keep = 1;
    kaffe_consumer_t *c =
        start_consumer(test_conf(b, "fatal", "g-fatal", record_handler, &r, "async_message_ack",
                                 "true", "restart_max", "2", "drain_timeout_ms", "200",
                                 "rdkafka.session.timeout.ms", "3000", NULL),
                       &r);
    cr_assert(wait_handled(&r, HALF, 30000));
    /* Ack half of what came; hold the rest across the restart. */
    pthread_mutex_lock(&r.lock);
    seen_msg_t *old = malloc(HALF * sizeof *old);
    memcpy(old, r.msgs, HALF * sizeof *old);
    pthread_mutex_unlock(&r.lock);
    for (size_t i = 0; i < HALF; i += 2)
        cr_assert_eq(kaffe_consumer_ack(c, old[i].m), KAFFE_OK);
    consumer_test_fatal_error(c, RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID);
    cr_assert(wait_until(restarted, c, 30000));
    /* Acks from before the restart: refused, nothing changed. */
    for (size_t i = 1; i < HALF; i += 2)
        cr_assert_eq(kaffe_consumer_ack(c, old[i].m), KAFFE_ERR_REVOKED);
    free(old);
    cr_assert_eq(plain_produce(b, "fatal", RD_KAFKA_PARTITION_UA, HALF, HALF, 4), HALF);
    /* The new client redelivers the unacked half, then the new messages:
     * ack everything it hands over until the log end is committed. */
    size_t acked = (size_t)HALF;
    int64_t deadline = clock_now_ms() + 60000;
    int done = 0;
    while (!done && clock_now_ms() < deadline) {
        pthread_mutex_lock(&r.lock);
        size_t count = r.count;
        pthread_mutex_unlock(&r.lock);
        for (; acked < count; acked++) {
            pthread_mutex_lock(&r.lock);
            kaffe_message_t *m = r.msgs[acked].m;
            pthread_mutex_unlock(&r.lock);
            cr_assert_eq(kaffe_consumer_ack(c, m), KAFFE_OK);
        }
        done = 1;
        for (int p = 0; p < 2; p++) {
            int64_t end = plain_log_end(b, "fatal", p);
            done &= end == 0 || plain_committed(b, "g-fatal", "fatal", p, NULL) == end;
        }
        if (!done)
            clock_sleep_ms(50);
    }
    cr_assert(done, "committed to the log end after the restart (handled %zu, committed %lld %lld)",
              r.count, (long long)plain_committed(b, "g-fatal", "fatal", 0, NULL),
              (long long)plain_committed(b, "g-fatal", "fatal", 1, NULL));
    cr_assert_eq(kaffe_consumer_wait(c, 0), KAFFE_ERR_TIMED_OUT, "still running");
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    /* Nothing lost: every value handled at least once. */
    char *seen = calloc(2 * HALF, 1);
    for (size_t i = 0; i < r.count; i++)
        if (r.msgs[i].value_index >= 0 && r.msgs[i].value_index < 2 * HALF)
            seen[r.msgs[i].value_index] = 1;
    for (int v = 0; v < 2 * HALF; v++)
        cr_assert(seen[v], "value-%d lost", v);
    free(seen);
    /* The acked half was not handled again (its acks reached the commit). */
    cr_assert_leq(r.count, (size_t)(2 * HALF + HALF / 2), "handled %zu", r.count);
    kaffe_consumer_destroy(c);
    recorder_free(&r);
    mock_cluster_stop(own);
}

Test(consumer_selfheal, fatal_errors_beyond_the_restart_budget_stop_the_consumer) {
    mock_topic_t topics[] = {{"budget", 1}};
    mock_cluster_t *own = test_mock_cluster_start(1, topics, 1);
    const char *b = mock_cluster_bootstraps(own);
    cr_assert_eq(plain_produce(b, "budget", 0, 10, 0, 0), 10);
    recorder_t r;
    recorder_init(&r);
    kaffe_consumer_t *c =
        start_consumer(test_conf(b, "budget", "g-budget", record_handler, &r, "restart_max", "1",
                                 "rdkafka.session.timeout.ms", "3000", NULL),
                       &r);
    cr_assert(wait_handled(&r, 10, 30000));
    consumer_test_fatal_error(c, RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID);
    cr_assert(wait_until(restarted, c, 30000));
    cr_assert_eq(plain_produce(b, "budget", 0, 1, 10, 0), 1);
    cr_assert(wait_handled(&r, 11, 30000), "the new client consumes");
    consumer_test_fatal_error(c, RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID);
    cr_assert_eq(kaffe_consumer_wait(c, 30000), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_stop(c), RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID);
    cr_assert_eq(plain_committed(b, "g-budget", "budget", 0, NULL), 11);
    kaffe_consumer_destroy(c);
    recorder_free(&r);
    mock_cluster_stop(own);
}
