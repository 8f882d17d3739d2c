/* Misuse of the consumer API: each a clear error, no crash, no lost message. */
#include <criterion/criterion.h>

#include "consumer_helpers.h"
#include "mock/mock_cluster.h"
#include "support/mock_suite.h"
#include "support/plain_client.h"

MOCK_CLUSTER_SUITE(consumer_misuse, 1, 120, {"misuse", 2}, {"syncack", 1}, {"inside", 1});

Test(consumer_misuse, a_missing_handler_is_refused_by_name) {
    kaffe_conf_t *conf = test_conf(mock_cluster_bootstraps(mc), "misuse", "g", NULL, NULL, NULL);
    char err[512] = "";
    cr_assert_null(kaffe_consumer_new(conf, err, sizeof err));
    cr_assert(strstr(err, "handler"), "got: %s", err);
    kaffe_conf_destroy(conf); /* the caller keeps conf on failure */
}

Test(consumer_misuse, empty_topics_are_refused_by_name) {
    recorder_t r;
    recorder_init(&r);
    kaffe_conf_t *conf = test_conf(mock_cluster_bootstraps(mc), "misuse", "g", record_handler, &r,
                                   "topics", " , ", NULL);
    char err[512] = "";
    cr_assert_null(kaffe_consumer_new(conf, err, sizeof err));
    cr_assert(strstr(err, "topics"), "got: %s", err);
    kaffe_conf_destroy(conf);
    cr_assert_null(kaffe_consumer_new(NULL, err, sizeof err));
    recorder_free(&r);
}

Test(consumer_misuse, lifecycle_calls_in_the_wrong_state_are_errors) {
    recorder_t r;
    recorder_init(&r);
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(
        test_conf(mock_cluster_bootstraps(mc), "misuse", "g-life", record_handler, &r, NULL), err,
        sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(kaffe_consumer_wait(c, 0), KAFFE_ERR_STATE);
    cr_assert_eq(kaffe_consumer_commit(c), KAFFE_ERR_STATE);
    cr_assert_eq(kaffe_consumer_start(NULL), KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_consumer_stop(NULL), KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_consumer_request_stop(NULL), KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_consumer_ack(NULL, NULL), KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_consumer_ack(c, NULL), KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_ERR_STATE);
    cr_assert_eq(kaffe_consumer_set_rebalance_cb(c, NULL, NULL), KAFFE_ERR_STATE);
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK); /* twice is fine */
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_ERR_STATE);
    cr_assert_eq(kaffe_consumer_commit(c), KAFFE_ERR_STOPPED);
    cr_assert_eq(kaffe_consumer_wait(c, 0), KAFFE_OK);
    kaffe_consumer_destroy(c);

    /* Never started: stop and destroy are fine. */
    c = kaffe_consumer_new(
        test_conf(mock_cluster_bootstraps(mc), "misuse", "g-life", record_handler, &r, NULL), err,
        sizeof err);
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    kaffe_consumer_destroy(c);
    kaffe_consumer_destroy(NULL);
    recorder_free(&r);
}

static int sync_ack_handler(kaffe_message_t *m, void *opaque) {
    recorder_t *r = opaque;
    /* In sync mode the return value is the ack. */
    if (kaffe_consumer_ack(r->consumer, m) != KAFFE_ERR_NOT_ASYNC)
        return KAFFE_ERR_STATE;
    return record_handler(m, opaque);
}

Test(consumer_misuse, acking_in_sync_mode_is_refused_and_loses_nothing) {
    const char *b = mock_cluster_bootstraps(mc);
    cr_assert_eq(plain_produce(b, "syncack", 0, 50, 0, 0), 50);
    recorder_t r;
    recorder_init(&r);
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(
        test_conf(b, "syncack", "g-syncack", sync_ack_handler, &r, NULL), err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    r.consumer = c;
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    cr_assert(wait_handled(&r, 50, 30000));
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    cr_assert_eq(plain_committed(b, "g-syncack", "syncack", 0, NULL), 50);
    kaffe_consumer_destroy(c);
    recorder_free(&r);
}

Test(consumer_misuse, double_acks_are_refused_and_lose_nothing) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { N = 200 };
    cr_assert_eq(plain_produce(b, "misuse", RD_KAFKA_PARTITION_UA, N, 0, 5), N);
    recorder_t r;
    recorder_init(&r);
    r.keep = 1;
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(
        test_conf(b, "misuse", "g-double", record_handler, &r, "async_message_ack", "true", NULL),
        err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    r.consumer = c;
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    cr_assert(wait_handled(&r, N, 30000));
    for (size_t i = 0; i < r.count; i++) {
        cr_assert_eq(kaffe_consumer_ack(c, r.msgs[i].m), KAFFE_OK);
        cr_assert_eq(kaffe_consumer_ack(c, r.msgs[i].m), KAFFE_ERR_ACK_DUPLICATE);
    }
    /* And once more, long after: still refused (the objects are quarantined). */
    for (size_t i = 0; i < r.count; i++)
        cr_assert_eq(kaffe_consumer_ack(c, r.msgs[i].m), KAFFE_ERR_ACK_DUPLICATE);
    cr_assert_eq(kaffe_consumer_commit(c), KAFFE_OK);
    for (int p = 0; p < 2; p++)
        cr_assert_eq(plain_committed(b, "g-double", "misuse", p, NULL),
                     plain_log_end(b, "misuse", p));
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    /* After stop, the quarantined objects still answer. */
    cr_assert_eq(kaffe_consumer_ack(c, r.msgs[0].m), KAFFE_ERR_ACK_DUPLICATE);
    kaffe_consumer_destroy(c);
    recorder_free(&r);
}

static atomic_int unknown_topic_errors;

static void on_error(int status, const char *reason, void *opaque) {
    (void)opaque;
    if (status == KAFFE_ERR_UNKNOWN_TOPIC || strstr(reason, "nope"))
        atomic_fetch_add(&unknown_topic_errors, 1);
}

Test(consumer_misuse, an_unknown_topic_reaches_the_error_callback) {
    recorder_t r;
    recorder_init(&r);
    /* The mock cluster creates topics on demand; make this one fail the way
     * a real broker answers for a missing topic. */
    rd_kafka_mock_topic_set_error(mock_cluster_handle(mc), "nope",
                                  RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    /* librdkafka waits topic.metadata.propagation.max.ms before calling a
     * subscribed topic missing. */
    kaffe_conf_t *conf = test_conf(mock_cluster_bootstraps(mc), "nope", "g-nope", record_handler,
                                   &r, "rdkafka.topic.metadata.propagation.max.ms", "100", NULL);
    kaffe_conf_set_error_cb(conf, on_error, NULL);
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    int64_t deadline = clock_now_ms() + 20000;
    while (atomic_load(&unknown_topic_errors) == 0 && clock_now_ms() < deadline)
        clock_sleep_ms(10);
    cr_assert_gt(atomic_load(&unknown_topic_errors), 0);
    char text[512];
    cr_assert_neq(kaffe_consumer_last_error(c, text, sizeof text), KAFFE_OK);
    cr_assert(strstr(text, "nope"), "last error: %s", text);
    kaffe_consumer_destroy(c);
    recorder_free(&r);
}

static atomic_int transport_errors;

static void on_transport_error(int status, const char *reason, void *opaque) {
    (void)reason;
    (void)opaque;
    if (status == KAFFE_ERR_TRANSPORT || status == KAFFE_ERR_ALL_BROKERS_DOWN)
        atomic_fetch_add(&transport_errors, 1);
}

Test(consumer_misuse, a_broker_going_down_reaches_the_error_callback) {
    char err[512];
    mock_topic_t topics[] = {{"down", 1}};
    mock_cluster_t *own = test_mock_cluster_start(1, topics, 1);
    recorder_t r;
    recorder_init(&r);
    kaffe_conf_t *conf =
        test_conf(mock_cluster_bootstraps(own), "down", "g-down", record_handler, &r, NULL);
    kaffe_conf_set_error_cb(conf, on_transport_error, NULL);
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    cr_assert_eq(plain_produce(mock_cluster_bootstraps(own), "down", 0, 1, 0, 0), 1);
    cr_assert(wait_handled(&r, 1, 30000));
    rd_kafka_mock_broker_set_down(mock_cluster_handle(own), 1);
    int64_t deadline = clock_now_ms() + 20000;
    while (atomic_load(&transport_errors) == 0 && clock_now_ms() < deadline)
        clock_sleep_ms(10);
    cr_assert_gt(atomic_load(&transport_errors), 0);
    cr_assert_neq(kaffe_consumer_last_error(c, NULL, 0), KAFFE_OK);
    rd_kafka_mock_broker_set_up(mock_cluster_handle(own), 1);
    kaffe_consumer_destroy(c);
    recorder_free(&r);
    mock_cluster_stop(own);
}

/* Lifecycle calls from inside the consumer's own threads: a handler that
 * calls stop, destroy, wait or commit on its consumer. Each would wait for
 * (or free) the thread it runs on; each is refused with KAFFE_ERR_STATE
 * (stop and destroy also request the stop), and nothing handled is lost. */
typedef struct inside {
    recorder_t r;
    const char *call; /* "stop", "destroy", "wait" */
    atomic_int status;
    atomic_int calls;
    atomic_int state_errors; /* KAFFE_ERR_STATE reports on the error callback */
} inside_t;

static int inside_handler(kaffe_message_t *m, void *opaque) {
    inside_t *in = opaque;
    if (atomic_fetch_add(&in->calls, 1) == 0) {
        int st = -1;
        if (strcmp(in->call, "stop") == 0)
            st = kaffe_consumer_stop(in->r.consumer);
        else if (strcmp(in->call, "destroy") == 0) {
            kaffe_consumer_destroy(in->r.consumer); /* refused: the consumer lives on */
            st = KAFFE_ERR_STATE;
        } else if (strcmp(in->call, "wait") == 0)
            st = kaffe_consumer_wait(in->r.consumer, 1000);
        atomic_store(&in->status, st);
    }
    return record_handler(m, &in->r);
}

static void inside_error(int status, const char *reason, void *opaque) {
    inside_t *in = opaque;
    if (status == KAFFE_ERR_STATE && strstr(reason, "from a kaffe thread"))
        atomic_fetch_add(&in->state_errors, 1);
}

static void run_inside(const char *call, const char *group, bool stops) {
    const char *b = mock_cluster_bootstraps(mc);
    inside_t in = {.call = call};
    atomic_init(&in.status, -1);
    recorder_init(&in.r);
    char err[512];
    kaffe_conf_t *conf = test_conf(b, "inside", group, inside_handler, &in, NULL);
    kaffe_conf_set_error_cb(conf, inside_error, &in);
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    in.r.consumer = c;
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    if (stops) {
        /* The requested stop ends the consumer by itself. */
        cr_assert_eq(kaffe_consumer_wait(c, 30000), KAFFE_OK, "%s: the stop was not requested",
                     call);
        cr_assert_eq(atomic_load(&in.state_errors), 1, "%s: no KAFFE_ERR_STATE report", call);
    } else {
        cr_assert(wait_handled(&in.r, 20, 30000));
    }
    cr_assert_eq(atomic_load(&in.status), KAFFE_ERR_STATE, "%s from a handler returned %d", call,
                 atomic_load(&in.status));
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    /* Whatever was handled is committed (sync mode, one partition). */
    long handled = recorder_handled(&in.r);
    cr_assert_gt(handled, 0);
    cr_assert_eq(plain_committed(b, group, "inside", 0, NULL), handled, "%s", call);
    kaffe_consumer_destroy(c);
    recorder_free(&in.r);
}

Test(consumer_misuse, stop_from_a_handler_requests_the_stop_and_is_refused_not_a_crash) {
    cr_assert_eq(plain_produce(mock_cluster_bootstraps(mc), "inside", 0, 20, 0, 0), 20);
    run_inside("stop", "g-inside-stop", true);
}

Test(consumer_misuse, destroy_from_a_handler_is_refused_not_a_crash) {
    cr_assert_eq(plain_produce(mock_cluster_bootstraps(mc), "inside", 0, 20, 0, 0), 20);
    run_inside("destroy", "g-inside-destroy", true);
}

Test(consumer_misuse, wait_from_a_handler_is_refused_not_a_hang) {
    cr_assert_eq(plain_produce(mock_cluster_bootstraps(mc), "inside", 0, 20, 0, 0), 20);
    run_inside("wait", "g-inside-wait", false);
}
