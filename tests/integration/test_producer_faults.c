/* The producer when the cluster misbehaves: brokers down, produce requests
 * failing (retriable and not). Sync calls must return errors within the
 * produce timeout, retriable errors must be retried, and nothing may be
 * reported OK that the cluster does not have (checked by reading back). */
#include <pthread.h>
#include <stdatomic.h>

#include "producer_helpers.h"
#include "support/mock_suite.h"

/* Kafka's ApiKey for Produce (RD_KAFKAP_Produce is not in the public headers). */
#define API_PRODUCE 0
#define BROKERS 3

static mock_cluster_t *mc;
static const char *bs;

static void start_cluster(void) {
    mock_topic_t topics[] = {{"orders", 3}};
    mc = test_mock_cluster_start(BROKERS, topics, 1);
    bs = mock_cluster_bootstraps(mc);
}

static void stop_cluster(void) {
    mock_cluster_stop(mc);
}

TestSuite(producer_faults, .init = start_cluster, .fini = stop_cluster, .timeout = 120);

static void all_brokers(bool up) {
    for (int id = 1; id <= BROKERS; id++) {
        rd_kafka_resp_err_t err = up ? rd_kafka_mock_broker_set_up(mock_cluster_handle(mc), id)
                                     : rd_kafka_mock_broker_set_down(mock_cluster_handle(mc), id);
        cr_assert_eq(err, RD_KAFKA_RESP_ERR_NO_ERROR);
    }
}

static bool is_unreachable(kaffe_status_t st) {
    return st == KAFFE_ERR_ALL_BROKERS_DOWN || st == KAFFE_ERR_TRANSPORT ||
           st == KAFFE_ERR_TIMED_OUT;
}

Test(producer_faults, sync_call_fails_within_the_timeout_when_every_broker_is_down) {
    kaffe_producer_t *p =
        producer_with(bs, "orders", "produce_timeout_ms", "2000", "rdkafka.reconnect.backoff.ms",
                      "10", "rdkafka.reconnect.backoff.max.ms", "200", NULL);
    cr_assert_eq(kaffe_produce_sync(p, "k", 1, "before", 6), KAFFE_OK);
    all_brokers(false);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    kaffe_status_t st = kaffe_produce_sync(p, "k", 1, "during", 6);
    double took = seconds_since(&start);
    cr_expect(is_unreachable(st), "got %s", kaffe_err_name(st));
    /* Bounded by the timeout (generous slack: this is a bound, not a speed). */
    cr_expect_lt(took, 2.0 + 8.0, "took %.1f s", took);
    cr_expect_geq(took, 1.0, "gave up after %.1f s, before the timeout", took);
    all_brokers(true);
    /* Reconnecting may take a few tries; each failed try must be absent. */
    for (int i = 0; i < 5 && kaffe_produce_sync(p, "k", 1, "after", 5) != KAFFE_OK; i++)
        cr_assert_lt(i, 4, "no recovery after the brokers came back");
    kaffe_producer_destroy(p);

    plain_message_t *msgs;
    size_t n = read_topic(bs, "orders", 3, 2, &msgs);
    cr_assert_eq(n, 2, "only the acknowledged messages are in the cluster");
    for (size_t i = 0; i < n; i++)
        cr_expect(strcmp(msgs[i].value, "during") != 0);
    cr_expect(strcmp(msgs[n - 1].value, "after") == 0 || strcmp(msgs[0].value, "after") == 0);
    plain_messages_free(msgs, n);
}

Test(producer_faults, first_use_of_a_topic_fails_within_the_timeout_when_brokers_are_down) {
    kaffe_producer_t *p = producer_with(bs, "orders", "produce_timeout_ms", "1500", NULL);
    all_brokers(false);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    kaffe_status_t st = kaffe_produce_sync(p, "k", 1, "v", 1);
    double took = seconds_since(&start);
    cr_expect(is_unreachable(st), "got %s", kaffe_err_name(st));
    cr_expect_lt(took, 1.5 + 8.0, "took %.1f s", took);
    all_brokers(true);
    kaffe_producer_destroy(p);
    cr_expect_eq(topic_size(bs, "orders", 3), 0);
}

Test(producer_faults, retriable_produce_errors_are_retried) {
    kaffe_producer_t *p = producer_with(bs, "orders", NULL);
    rd_kafka_mock_push_request_errors(
        mock_cluster_handle(mc), API_PRODUCE, 3, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    kaffe_produce_result_t r;
    kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
    m.value = "retried";
    m.value_len = 7;
    cr_assert_eq(kaffe_produce_sync_msg(p, &m, &r), KAFFE_OK);
    cr_expect_eq(r.offset, 0);
    kaffe_producer_destroy(p);
    plain_message_t *msgs;
    size_t n = read_topic(bs, "orders", 3, 1, &msgs);
    cr_assert_eq(n, 1, "written exactly once");
    cr_expect_str_eq(msgs[0].value, "retried");
    cr_expect_eq(msgs[0].partition, r.partition);
    plain_messages_free(msgs, n);
}

Test(producer_faults, a_permanent_produce_error_is_passed_through) {
    kaffe_producer_t *p = producer_with(bs, "orders", NULL);
    rd_kafka_mock_push_request_errors(mock_cluster_handle(mc), API_PRODUCE, 1,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    kaffe_status_t st = kaffe_produce_sync(p, "k", 1, "refused", 7);
    cr_expect_eq(st, (kaffe_status_t)RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, "got %s",
                 kaffe_err_name(st));
    kaffe_producer_destroy(p);
    cr_expect_eq(topic_size(bs, "orders", 3), 0, "the refused message is not in the cluster");
}

Test(producer_faults, retriable_errors_past_the_timeout_fail_the_message) {
    kaffe_producer_t *p = producer_with(bs, "orders", "produce_timeout_ms", "1500", NULL);
    cr_assert_eq(kaffe_produce_sync(p, "k", 1, "warm", 4), KAFFE_OK);
    rd_kafka_resp_err_t errs[400];
    for (int i = 0; i < 400; i++)
        errs[i] = RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS;
    rd_kafka_mock_push_request_errors_array(mock_cluster_handle(mc), API_PRODUCE, 400, errs);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    kaffe_status_t st = kaffe_produce_sync(p, "k", 1, "never", 5);
    double took = seconds_since(&start);
    cr_expect(st == KAFFE_ERR_TIMED_OUT ||
                  st == (kaffe_status_t)RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
              "got %s", kaffe_err_name(st));
    cr_expect_lt(took, 1.5 + 8.0, "took %.1f s", took);
    kaffe_producer_destroy(p);
    cr_expect_eq(topic_size(bs, "orders", 3), 1, "only the warm-up message");
}

Test(producer_faults, batch_under_injected_errors_reports_exactly_what_was_written) {
    kaffe_producer_t *p = producer_with(bs, "orders", "rdkafka.linger.ms", "0", NULL);
    cr_assert_eq(kaffe_produce_sync(p, NULL, 0, "v-warm", 6), KAFFE_OK);
    enum { N = 300 };
    /* Permanent and retriable errors interleaved, for the next requests.
     * (Not TOPIC_AUTHORIZATION_FAILED: librdkafka then fails every message
     * of the topic for a while, which leaves nothing to compare.) */
    rd_kafka_mock_push_request_errors(
        mock_cluster_handle(mc), API_PRODUCE, 6, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS, RD_KAFKA_RESP_ERR_NO_ERROR,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_INVALID_MSG,
        RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS);
    kaffe_produce_msg_t *msgs = calloc(N, sizeof *msgs);
    kaffe_produce_result_t *results = calloc(N, sizeof *results);
    char(*values)[16] = calloc(N, sizeof *values);
    for (int i = 0; i < N; i++) {
        msgs[i] = (kaffe_produce_msg_t)KAFFE_PRODUCE_MSG_INIT;
        msgs[i].value = values[i];
        msgs[i].value_len = (size_t)snprintf(values[i], sizeof values[i], "v-%d", i);
    }
    kaffe_status_t st = kaffe_produce_sync_batch(p, msgs, N, results);
    kaffe_producer_destroy(p);
    int ok = 0;
    for (int i = 0; i < N; i++)
        ok += results[i].status == KAFFE_OK;
    cr_expect(st == (ok == N ? KAFFE_OK : KAFFE_ERR_BATCH_INCOMPLETE));
    cr_expect_lt(ok, N, "the permanent errors failed some messages");
    cr_expect_gt(ok, 0);

    plain_message_t *got;
    size_t n = read_topic(bs, "orders", 3, (size_t)ok + 1, &got);
    cr_assert_eq(n, (size_t)ok + 1, "cluster has %zu, %d reported OK (+1 warm-up)", n, ok);
    char *seen = calloc(N, 1);
    for (size_t i = 0; i < n; i++) {
        int index;
        if (strcmp(got[i].value, "v-warm") == 0)
            continue;
        cr_assert_eq(sscanf(got[i].value, "v-%d", &index), 1);
        cr_expect_eq(results[index].status, KAFFE_OK, "v-%d is in the cluster but reported %s",
                     index, kaffe_err_name(results[index].status));
        cr_expect_eq(results[index].partition, got[i].partition);
        cr_expect_eq(results[index].offset, got[i].offset);
        cr_expect_eq(seen[index], 0, "v-%d written twice", index);
        seen[index] = 1;
    }
    plain_messages_free(got, n);
    free(seen);
    free(values);
    free(results);
    free(msgs);
}

typedef struct tally {
    atomic_int calls, failed;
} tally_t;

static void count_delivery(const kaffe_delivery_report_t *report, void *opaque) {
    tally_t *t = opaque;
    atomic_fetch_add(&t->calls, 1);
    if (report->status != KAFFE_OK)
        atomic_fetch_add(&t->failed, 1);
}

Test(producer_faults, async_messages_get_a_failed_callback_before_destroy_returns) {
    kaffe_producer_t *p = producer_with(bs, "orders", "produce_timeout_ms", "1500", NULL);
    cr_assert_eq(kaffe_produce_sync(p, "k", 1, "warm", 4), KAFFE_OK);
    all_brokers(false);
    tally_t t = {0};
    for (int i = 0; i < 100; i++) {
        kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
        m.value = "lost?";
        m.value_len = 5;
        cr_assert_eq(kaffe_produce_async(p, &m, count_delivery, &t), KAFFE_OK);
    }
    kaffe_producer_destroy(p);
    cr_expect_eq(atomic_load(&t.calls), 100, "every message gets one callback");
    cr_expect_eq(atomic_load(&t.failed), 100);
    all_brokers(true);
    cr_expect_eq(topic_size(bs, "orders", 3), 1);
}
