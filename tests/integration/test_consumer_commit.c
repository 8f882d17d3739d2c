/* What the consumer commits: the watermark (never the highest polled
 * offset) with acked offsets above it in the metadata, read back by a plain
 * librdkafka client; where a group starts; and the default failure policy. */
#include <criterion/criterion.h>

#include "ack/ack.h"
#include "consumer_helpers.h"
#include "mock/mock_cluster.h"
#include "support/mock_suite.h"
#include "support/plain_client.h"

MOCK_CLUSTER_SUITE(consumer_commit, 1, 120, {"holes", 1}, {"early", 1}, {"fail", 1}, {"fail8", 2},
                   {"mdbudget", 1}, {"transient", 1});

#define API_OFFSET_COMMIT 8 /* Kafka's OffsetCommit request */

static kaffe_consumer_t *start_consumer(kaffe_conf_t *conf, recorder_t *r) {
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    r->consumer = c;
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    return c;
}

static int count_value(recorder_t *r, long v) {
    int n = 0;
    for (size_t i = 0; i < r->count; i++)
        n += r->msgs[i].value_index == v;
    return n;
}

Test(consumer_commit, async_commit_stops_at_the_hole_and_restart_replays_only_the_hole) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { N = 300, HOLE = 117 };
    cr_assert_eq(plain_produce(b, "holes", 0, N, 0, 0), N);
    recorder_t r;
    recorder_init(&r);
    r.keep = 1;
    kaffe_consumer_t *c = start_consumer(
        test_conf(b, "holes", "g-holes", record_handler, &r, "async_message_ack", "true",
                  "ordering", "unordered", "workers", "4", "drain_timeout_ms", "200", NULL),
        &r);
    cr_assert(wait_handled(&r, N, 30000), "handled %ld", recorder_handled(&r));
    /* Ack everything but the hole, in a random order. */
    size_t *order = malloc(N * sizeof *order);
    for (size_t i = 0; i < N; i++)
        order[i] = i;
    srand(42);
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = (size_t)rand() % (i + 1);
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    kaffe_message_t *hole = NULL;
    for (size_t i = 0; i < N; i++) {
        seen_msg_t *s = &r.msgs[order[i]];
        if (s->offset == HOLE) {
            hole = s->m;
            continue;
        }
        cr_assert_eq(kaffe_consumer_ack(c, s->m), KAFFE_OK, "ack of offset %lld",
                     (long long)s->offset);
    }
    free(order);
    cr_assert_not_null(hole);
    cr_assert_eq(kaffe_consumer_commit(c), KAFFE_OK);
    char *metadata = NULL;
    cr_assert_eq(plain_committed(b, "g-holes", "holes", 0, &metadata), HOLE);
    cr_assert_not_null(metadata, "acks above the hole travel in the metadata");
    ack_snapshot_t snap = {0};
    cr_assert_eq(ack_metadata_decode(metadata, strlen(metadata), HOLE, &snap), KAFFE_OK);
    for (int64_t o = HOLE + 1; o < N; o++)
        cr_assert(ack_snapshot_is_done(&snap, o), "offset %lld not in the metadata", (long long)o);
    cr_assert(!ack_snapshot_is_done(&snap, HOLE));
    ack_snapshot_free(&snap);
    free(metadata);

    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    /* The hole is still unacked: stopping did not commit past it. */
    cr_assert_eq(plain_committed(b, "g-holes", "holes", 0, NULL), HOLE);
    /* Acking it now is refused cleanly. */
    cr_assert_eq(kaffe_consumer_ack(c, hole), KAFFE_ERR_STOPPED);
    kaffe_consumer_destroy(c);
    recorder_free(&r);

    /* Restart: only the hole comes back, then a new marker message. */
    recorder_t r2;
    recorder_init(&r2);
    c = start_consumer(test_conf(b, "holes", "g-holes", record_handler, &r2, NULL), &r2);
    cr_assert(wait_handled(&r2, 1, 30000));
    cr_assert_eq(plain_produce(b, "holes", 0, 1, N, 0), 1);
    cr_assert(wait_handled(&r2, 2, 30000));
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    cr_assert_eq(r2.count, 2, "handled %zu after restart", r2.count);
    cr_assert_eq(r2.msgs[0].offset, HOLE);
    cr_assert_eq(r2.msgs[1].offset, N);
    cr_assert_eq(plain_committed(b, "g-holes", "holes", 0, NULL), N + 1);
    kaffe_consumer_destroy(c);
    recorder_free(&r2);
}

Test(consumer_commit, start_with_earliest_message_and_committed_offsets_win) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { OLD = 50 };
    cr_assert_eq(plain_produce(b, "early", 0, OLD, 0, 0), OLD);

    /* earliest = true: everything from the start. */
    recorder_t r;
    recorder_init(&r);
    kaffe_consumer_t *c = start_consumer(test_conf(b, "early", "g-earliest", record_handler, &r,
                                                   "start_with_earliest_message", "true", NULL),
                                         &r);
    cr_assert(wait_handled(&r, OLD, 30000));
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    for (long v = 0; v < OLD; v++)
        cr_assert_eq(count_value(&r, v), 1, "value-%ld", v);
    kaffe_consumer_destroy(c);
    recorder_free(&r);

    /* earliest = false: only what is produced after joining. */
    recorder_init(&r);
    c = start_consumer(test_conf(b, "early", "g-latest", record_handler, &r,
                                 "start_with_earliest_message", "false", NULL),
                       &r);
    long produced = OLD;
    int64_t deadline = clock_now_ms() + 30000;
    while (recorder_handled(&r) == 0 && clock_now_ms() < deadline) {
        plain_produce(b, "early", 0, 1, (size_t)produced++, 0);
        clock_sleep_ms(100);
    }
    cr_assert_gt(recorder_handled(&r), 0);
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    for (size_t i = 0; i < r.count; i++)
        cr_assert_geq(r.msgs[i].value_index, OLD, "old message value-%ld handled",
                      r.msgs[i].value_index);
    kaffe_consumer_destroy(c);
    recorder_free(&r);

    /* Committed offsets win over both settings: g-earliest committed up to
     * OLD; each round handles exactly what was produced since the previous
     * commit (not older messages, not only newer ones). */
    int64_t from = OLD;
    cr_assert_eq(plain_committed(b, "g-earliest", "early", 0, NULL), from);
    const char *settings[] = {"true", "false"};
    for (int s = 0; s < 2; s++) {
        int64_t end = plain_log_end(b, "early", 0);
        cr_assert_gt(end, from);
        recorder_init(&r);
        c = start_consumer(test_conf(b, "early", "g-earliest", record_handler, &r,
                                     "start_with_earliest_message", settings[s], NULL),
                           &r);
        long expect = (long)(end - from);
        cr_assert(wait_handled(&r, expect, 30000), "earliest=%s: handled %ld of %ld", settings[s],
                  recorder_handled(&r), expect);
        cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
        cr_assert_eq((long)r.count, expect);
        for (size_t i = 0; i < r.count; i++)
            cr_assert_geq(r.msgs[i].offset, from);
        cr_assert_eq(plain_committed(b, "g-earliest", "early", 0, NULL), end);
        kaffe_consumer_destroy(c);
        recorder_free(&r);
        /* Produced while no consumer of the group runs. */
        cr_assert_eq(plain_produce(b, "early", 0, 3, 1000, 0), 3);
        from = end;
    }
}

static atomic_int error_calls;
static atomic_int last_error_status;

static void count_errors(int status, const char *reason, void *opaque) {
    (void)reason;
    (void)opaque;
    atomic_fetch_add(&error_calls, 1);
    atomic_store(&last_error_status, status);
}

Test(consumer_commit, handler_failure_stops_the_consumer_and_commits_nothing_past_it) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { N = 100, FAIL_AT = 40 };
    cr_assert_eq(plain_produce(b, "fail", 0, N, 0, 0), N);
    recorder_t r;
    recorder_init(&r);
    r.fail_at_value = FAIL_AT;
    kaffe_conf_t *conf = test_conf(b, "fail", "g-fail", record_handler, &r, NULL);
    kaffe_conf_set_error_cb(conf, count_errors, NULL);
    kaffe_consumer_t *c = start_consumer(conf, &r);
    cr_assert_eq(kaffe_consumer_wait(c, 30000), KAFFE_OK, "the consumer stops by itself");
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_ERR_HANDLER);
    cr_assert_geq(atomic_load(&error_calls), 1);
    char text[512];
    cr_assert_eq(kaffe_consumer_last_error(c, text, sizeof text), KAFFE_ERR_HANDLER);
    cr_assert(strstr(text, "offset 40"), "got: %s", text);
    /* Partition order: nothing after the failed message was handled. */
    cr_assert_eq(count_value(&r, FAIL_AT + 1), 0);
    char *metadata = NULL;
    cr_assert_eq(plain_committed(b, "g-fail", "fail", 0, &metadata), FAIL_AT);
    cr_assert_null(metadata);
    kaffe_consumer_destroy(c);
    recorder_free(&r);

    /* Restart: the failed message comes first. */
    recorder_init(&r);
    c = start_consumer(test_conf(b, "fail", "g-fail", record_handler, &r, NULL), &r);
    cr_assert(wait_handled(&r, N - FAIL_AT, 30000));
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    cr_assert_eq(r.msgs[0].offset, FAIL_AT);
    cr_assert_eq(plain_committed(b, "g-fail", "fail", 0, NULL), N);
    kaffe_consumer_destroy(c);
    recorder_free(&r);
}

Test(consumer_commit, unordered_failure_commits_no_ack_at_or_past_the_failed_offset) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { N = 400, FAIL_AT = 150 };
    cr_assert_eq(plain_produce(b, "fail8", 0, N, 0, 0), N);
    recorder_t r;
    recorder_init(&r);
    r.fail_at_value = FAIL_AT;
    kaffe_consumer_t *c = start_consumer(test_conf(b, "fail8", "g-fail8", record_handler, &r,
                                                   "ordering", "unordered", "workers", "8", NULL),
                                         &r);
    cr_assert_eq(kaffe_consumer_wait(c, 30000), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_ERR_HANDLER);
    char *metadata = NULL;
    int64_t committed = plain_committed(b, "g-fail8", "fail8", 0, &metadata);
    cr_assert(committed >= 0 && committed <= FAIL_AT, "committed %lld", (long long)committed);
    if (metadata) {
        ack_snapshot_t snap = {0};
        cr_assert_eq(ack_metadata_decode(metadata, strlen(metadata), committed, &snap), KAFFE_OK);
        cr_assert_leq(snap.end, FAIL_AT, "metadata reaches %lld", (long long)snap.end);
        ack_snapshot_free(&snap);
        free(metadata);
    }
    kaffe_consumer_destroy(c);
    recorder_free(&r);
}

/* A broker whose offset.metadata.max.bytes is below the metadata kaffe
 * sends refuses the commit (OFFSET_METADATA_TOO_LARGE). The mock cluster
 * refuses the next commits as told; kaffe commits again at once with half
 * the refused size, keeps the lower limit, warns once per new limit, and
 * never reports the refusal as an error. */
static atomic_int budget_warnings, metadata_errors;

static void budget_log(int level, const char *facility, const char *line, void *opaque) {
    (void)facility;
    (void)opaque;
    if (level == KAFFE_LOG_WARNING && strstr(line, "commits at most")) {
        cr_log_info("warning: %s", line);
        atomic_fetch_add(&budget_warnings, 1);
    }
}

static void budget_error(int status, const char *reason, void *opaque) {
    (void)opaque;
    if (status == RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE) {
        cr_log_info("error: %s", reason);
        atomic_fetch_add(&metadata_errors, 1);
    }
}

/* The committed offset of mdbudget/0 once it is want (within 5 s), and its
 * metadata's length in *len. */
static bool committed_becomes(const char *b, int64_t want, size_t *len) {
    int64_t deadline = clock_now_ms() + 5000;
    do {
        char *metadata = NULL;
        int64_t got = plain_committed(b, "g-mdbudget", "mdbudget", 0, &metadata);
        *len = metadata ? strlen(metadata) : 0;
        if (got == want && metadata) {
            ack_snapshot_t snap = {0};
            cr_assert_eq(ack_metadata_decode(metadata, *len, want, &snap), KAFFE_OK);
            ack_snapshot_free(&snap);
        }
        free(metadata);
        if (got == want)
            return true;
        clock_sleep_ms(50);
    } while (clock_now_ms() < deadline);
    return false;
}

Test(consumer_commit, metadata_the_broker_refuses_lowers_the_budget_and_commits_at_once) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { N = 4000, HOLE = 5 };
    cr_assert_eq(plain_produce(b, "mdbudget", 0, N, 0, 0), N);
    recorder_t r;
    recorder_init(&r);
    r.keep = 1;
    kaffe_conf_t *conf =
        test_conf(b, "mdbudget", "g-mdbudget", record_handler, &r, "async_message_ack", "true",
                  "ordering", "unordered", "drain_timeout_ms", "200", NULL);
    kaffe_conf_set_log_cb(conf, budget_log, NULL);
    kaffe_conf_set_error_cb(conf, budget_error, NULL);
    kaffe_consumer_t *c = start_consumer(conf, &r);
    cr_assert(wait_handled(&r, N, 30000), "handled %ld", recorder_handled(&r));
    /* Ack the hole's predecessors and every even offset above it: a
     * watermark at the hole with a long, holed run above (big metadata). */
    kaffe_message_t *held[N] = {0};
    for (size_t i = 0; i < N; i++) {
        seen_msg_t *s = &r.msgs[i];
        if (s->offset == HOLE || (s->offset > HOLE && s->offset % 2 == 1))
            held[s->offset] = s->m;
        else
            cr_assert_eq(kaffe_consumer_ack(c, s->m), KAFFE_OK);
    }
    cr_assert_eq(kaffe_consumer_commit(c), KAFFE_OK);
    size_t full;
    cr_assert(committed_becomes(b, HOLE, &full));
    cr_assert_gt(full, 64, "metadata of %zu bytes", full);

    /* Interval commits: the next two are refused. Acking the hole moves the
     * watermark to the next held offset: it is committed at once anyway,
     * with smaller metadata. */
    rd_kafka_mock_push_request_errors(mock_cluster_handle(mc), API_OFFSET_COMMIT, 2,
                                      RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE,
                                      RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE);
    cr_assert_eq(kaffe_consumer_ack(c, held[HOLE]), KAFFE_OK);
    size_t lowered;
    cr_assert(committed_becomes(b, HOLE + 2, &lowered), "the watermark was not committed");
    cr_assert_gt(lowered, 0, "half the refused size is not none");
    cr_assert_leq(lowered, full / 2, "metadata of %zu bytes after %zu were refused", lowered, full);
    int64_t deadline = clock_now_ms() + 3000;
    while (atomic_load(&budget_warnings) == 0 && clock_now_ms() < deadline)
        clock_sleep_ms(20);
    cr_assert_eq(atomic_load(&budget_warnings), 1);

    /* A sync commit (kaffe_consumer_commit, as on revoke and stop) refused
     * once is repeated inside the call. */
    rd_kafka_mock_push_request_errors(mock_cluster_handle(mc), API_OFFSET_COMMIT, 1,
                                      RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE);
    cr_assert_eq(kaffe_consumer_ack(c, held[HOLE + 2]), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_commit(c), KAFFE_OK);
    size_t again;
    cr_assert(committed_becomes(b, HOLE + 4, &again));
    cr_assert_leq(again, lowered / 2 + 1);
    cr_assert_eq(atomic_load(&budget_warnings), 2, "each new limit is told once");
    cr_assert_eq(atomic_load(&metadata_errors), 0, "a refusal kaffe answers is not an error");

    for (int64_t o = HOLE + 4; o < N; o++)
        if (held[o])
            cr_assert_eq(kaffe_consumer_ack(c, held[o]), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    cr_assert_eq(plain_committed(b, "g-mdbudget", "mdbudget", 0, NULL), N);
    kaffe_consumer_destroy(c);
    recorder_free(&r);
}

/* Handles n messages of topic in group with acks held back (async mode, no
 * interval commits); returns the running consumer. */
static kaffe_consumer_t *handled_unacked(const char *b, const char *topic, const char *group,
                                         long n, recorder_t *r) {
    cr_assert_eq(plain_produce(b, topic, 0, (int)n, 0, 0), n);
    recorder_init(r);
    r->keep = 1;
    kaffe_consumer_t *c =
        start_consumer(test_conf(b, topic, group, record_handler, r, "async_message_ack", "true",
                                 "commit_interval_ms", "3600000", NULL),
                       r);
    cr_assert(wait_handled(r, n, 30000), "handled %ld", recorder_handled(r));
    return c;
}

/* A sync commit (kaffe_consumer_commit, as on revoke and stop) whose
 * coordinator moved or is loading is retried until it goes through. */
Test(consumer_commit, a_sync_commit_retries_transient_coordinator_errors) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { N = 20 };
    recorder_t r;
    kaffe_consumer_t *c = handled_unacked(b, "transient", "g-transient", N, &r);
    rd_kafka_mock_push_request_errors(
        mock_cluster_handle(mc), API_OFFSET_COMMIT, 6, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR);
    for (size_t i = 0; i < r.count; i++)
        cr_assert_eq(kaffe_consumer_ack(c, r.msgs[i].m), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_commit(c), KAFFE_OK);
    cr_assert_eq(plain_committed(b, "g-transient", "transient", 0, NULL), N);
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    kaffe_consumer_destroy(c);
    recorder_free(&r);
}
