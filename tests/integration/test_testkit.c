/* include/kaffe/testing.h, used as an application's test would use it (the
 * public headers only): a cluster, topics, fixtures, a handler run until a
 * condition holds, committed offsets, injected errors and a broker down. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <kaffe/kaffe.h>
#include <kaffe/testing.h>

typedef struct seen {
    atomic_long count;      /* handler calls that returned OK */
    atomic_ullong values;   /* bit i: value index i (< 64) was handled */
    atomic_long fail_value; /* the handler fails (42) on this value index; -1: never */
    atomic_long last_value;
    long want;
} seen_t;

static int handler(kaffe_message_t *m, void *opaque) {
    seen_t *s = opaque;
    size_t len;
    const char *v = kaffe_message_value(m, &len);
    long idx = -1;
    if (v) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.*s", (int)len, v);
        sscanf(buf, "v%ld", &idx);
    }
    if (idx == atomic_load(&s->fail_value))
        return 42;
    atomic_store(&s->last_value, idx);
    if (idx >= 0 && idx < 64)
        atomic_fetch_or(&s->values, 1ull << idx);
    atomic_fetch_add(&s->count, 1);
    return KAFFE_OK;
}

/* Every value index 0 .. want-1 handled (at least once: a broker going
 * away may deliver some again). */
static int seen_all(void *opaque) {
    seen_t *s = opaque;
    unsigned long long all = s->want >= 64 ? ~0ull : (1ull << s->want) - 1;
    return (atomic_load(&s->values) & all) == all;
}

static int never(void *opaque) {
    (void)opaque;
    return 0;
}

static void produce_values(kaffe_test_cluster_t *tc, const char *topic, int first, int n) {
    for (int i = first; i < first + n; i++) {
        char key[16], value[16];
        snprintf(key, sizeof key, "k%d", i % 5);
        snprintf(value, sizeof value, "v%d", i);
        int64_t offset = -5;
        cr_assert_eq(kaffe_test_cluster_produce(tc, topic, -1, key, strlen(key), value,
                                                strlen(value), &offset),
                     KAFFE_OK);
        cr_assert_geq(offset, 0);
    }
}

static kaffe_consumer_t *consumer_for(kaffe_test_cluster_t *tc, const char *group,
                                      const char *topics, seen_t *s) {
    kaffe_conf_t *conf = kaffe_test_cluster_consumer_conf(tc, group, topics);
    cr_assert_not_null(conf);
    kaffe_conf_set_message_handler(conf, handler, s);
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    return c;
}

Test(testkit, fixtures_a_handler_run_to_a_condition_and_committed_offsets, .timeout = 120) {
    char err[256];
    kaffe_test_cluster_t *tc = kaffe_test_cluster_new(3, err, sizeof err);
    cr_assert_not_null(tc, "%s", err);
    cr_assert_not_null(strstr(kaffe_test_cluster_endpoints(tc), "127.0.0.1:"));
    cr_assert_eq(kaffe_test_cluster_create_topic(tc, "orders", 3), KAFFE_OK);

    /* Fixtures: to a partition, and by key (the same key, the same partition). */
    int64_t o1 = -1, o2 = -1;
    cr_assert_eq(kaffe_test_cluster_produce(tc, "orders", 2, NULL, 0, "v0", 2, &o1), KAFFE_OK);
    cr_assert_eq(kaffe_test_cluster_produce(tc, "orders", 2, NULL, 0, "v1", 2, &o2), KAFFE_OK);
    cr_assert_eq(o1, 0);
    cr_assert_eq(o2, 1);
    produce_values(tc, "orders", 2, 28);
    int64_t total = 0;
    for (int p = 0; p < 3; p++) {
        int64_t end = -1;
        cr_assert_eq(kaffe_test_cluster_log_end(tc, "orders", p, &end), KAFFE_OK);
        total += end;
    }
    cr_assert_eq(total, 30);
    /* No topic auto-creation: a fixture to an unknown topic is refused. */
    cr_assert_eq(kaffe_test_cluster_produce(tc, "no-such-topic", -1, NULL, 0, "x", 1, NULL),
                 KAFFE_ERR_UNKNOWN_TOPIC);

    seen_t s = {.fail_value = -1, .want = 30};
    kaffe_consumer_t *c = consumer_for(tc, "billing", "orders", &s);
    cr_assert_eq(kaffe_test_consume_until(c, seen_all, &s, 30000), KAFFE_OK);
    cr_assert_eq(atomic_load(&s.count), 30);
    for (int p = 0; p < 3; p++) {
        int64_t committed = -5, end = -5;
        cr_assert_eq(kaffe_test_cluster_committed(tc, "billing", "orders", p, &committed),
                     KAFFE_OK);
        cr_assert_eq(kaffe_test_cluster_log_end(tc, "orders", p, &end), KAFFE_OK);
        cr_assert_eq(committed, end, "partition %d: committed %lld, end %lld", p,
                     (long long)committed, (long long)end);
    }
    int64_t none = 0;
    cr_assert_eq(kaffe_test_cluster_committed(tc, "nobody", "orders", 0, &none), KAFFE_OK);
    cr_assert_eq(none, -1);
    kaffe_consumer_destroy(c);

    /* A condition that never holds: TIMED_OUT, and the consumer stopped. */
    seen_t s2 = {.fail_value = -1, .want = 1};
    c = consumer_for(tc, "billing-2", "orders", &s2);
    cr_assert_eq(kaffe_test_consume_until(c, never, NULL, 1500), KAFFE_ERR_TIMED_OUT);
    cr_assert_eq(kaffe_consumer_wait(c, 0), KAFFE_OK, "not stopped");
    kaffe_consumer_destroy(c);
    kaffe_test_cluster_destroy(tc);
}

Test(testkit, a_failing_handler_is_what_consume_until_returns, .timeout = 120) {
    char err[256];
    kaffe_test_cluster_t *tc = kaffe_test_cluster_new(1, err, sizeof err);
    cr_assert_not_null(tc, "%s", err);
    cr_assert_eq(kaffe_test_cluster_create_topic(tc, "payments", 1), KAFFE_OK);
    produce_values(tc, "payments", 0, 10);
    seen_t s = {.fail_value = 4, .want = 10};
    kaffe_consumer_t *c = consumer_for(tc, "pay", "payments", &s);
    cr_assert_eq(kaffe_test_consume_until(c, seen_all, &s, 30000), KAFFE_ERR_HANDLER);
    cr_assert_eq(atomic_load(&s.count), 4, "handled %ld", atomic_load(&s.count));
    int64_t committed = -5;
    cr_assert_eq(kaffe_test_cluster_committed(tc, "pay", "payments", 0, &committed), KAFFE_OK);
    cr_assert_eq(committed, 4, "committed %lld, the failed message is at 4", (long long)committed);
    kaffe_consumer_destroy(c);
    kaffe_test_cluster_destroy(tc);
}

/* Failed commits, then the handler's work is still committed; a broker down
 * and up again while consuming; nothing lost. */
Test(testkit, injected_errors_and_a_broker_down_lose_nothing, .timeout = 120) {
    char err[256];
    kaffe_test_cluster_t *tc = kaffe_test_cluster_new(3, err, sizeof err);
    cr_assert_not_null(tc, "%s", err);
    cr_assert_eq(kaffe_test_cluster_create_topic(tc, "events", 2), KAFFE_OK);
    produce_values(tc, "events", 0, 20);

    /* 16: NOT_COORDINATOR, 15: COORDINATOR_NOT_AVAILABLE. */
    cr_assert_eq(kaffe_test_cluster_fail_requests(tc, KAFFE_TEST_OFFSET_COMMIT, 16, 3), KAFFE_OK);
    cr_assert_eq(kaffe_test_cluster_fail_requests(tc, KAFFE_TEST_FIND_COORDINATOR, 15, 2),
                 KAFFE_OK);
    seen_t s = {.fail_value = -1, .want = 20};
    kaffe_consumer_t *c = consumer_for(tc, "ev", "events", &s);
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    int64_t deadline = 0;
    for (deadline = 0; deadline < 6000 && !seen_all(&s); deadline += 10)
        kaffe_consumer_wait(c, 10);
    cr_assert(seen_all(&s), "handled %ld", atomic_load(&s.count));

    /* A broker down for a while (the consumer loses its connections to it),
     * then up again, and more messages. */
    cr_assert_eq(kaffe_test_cluster_broker_down(tc, 2), KAFFE_OK);
    kaffe_consumer_wait(c, 1000);
    cr_assert_eq(kaffe_test_cluster_broker_up(tc, 2), KAFFE_OK);
    produce_values(tc, "events", 20, 10);
    s.want = 30;
    cr_assert_eq(kaffe_test_consume_until(c, seen_all, &s, 60000), KAFFE_OK);
    for (int p = 0; p < 2; p++) {
        int64_t committed = -5, end = -5;
        cr_assert_eq(kaffe_test_cluster_committed(tc, "ev", "events", p, &committed), KAFFE_OK);
        cr_assert_eq(kaffe_test_cluster_log_end(tc, "events", p, &end), KAFFE_OK);
        cr_assert_eq(committed, end, "partition %d: committed %lld, end %lld", p,
                     (long long)committed, (long long)end);
    }
    kaffe_consumer_destroy(c);
    kaffe_test_cluster_destroy(tc);
}

Test(testkit, bad_arguments_are_refused) {
    char err[256];
    cr_assert_null(kaffe_test_cluster_new(0, err, sizeof err));
    cr_assert_not_null(strstr(err, "broker_count"), "%s", err);
    cr_assert_null(kaffe_test_cluster_new(17, err, sizeof err));
    kaffe_test_cluster_destroy(NULL);
    cr_assert_null(kaffe_test_cluster_endpoints(NULL));
    kaffe_test_cluster_t *tc = kaffe_test_cluster_new(1, err, sizeof err);
    cr_assert_not_null(tc, "%s", err);
    int64_t o;
    cr_assert_eq(kaffe_test_cluster_create_topic(tc, "t", 0), KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_test_cluster_create_topic(NULL, "t", 1), KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_test_cluster_produce(tc, NULL, 0, NULL, 0, NULL, 0, NULL),
                 KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_test_cluster_produce(tc, "t", -2, NULL, 0, NULL, 0, NULL),
                 KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_test_cluster_committed(tc, "g", "t", 0, NULL), KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_test_cluster_log_end(tc, NULL, 0, &o), KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_test_cluster_fail_requests(tc, (kaffe_test_request_t)99, 27, 1),
                 KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_test_cluster_fail_requests(tc, KAFFE_TEST_FETCH, 0, 1),
                 KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_test_cluster_fail_requests(tc, KAFFE_TEST_FETCH, 6, 0),
                 KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_test_cluster_broker_down(tc, 2), KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_test_cluster_broker_up(tc, 0), KAFFE_ERR_INVALID_ARG);
    cr_assert_null(kaffe_test_cluster_consumer_conf(tc, NULL, "t"));
    cr_assert_eq(kaffe_test_consume_until(NULL, never, NULL, 0), KAFFE_ERR_INVALID_ARG);
    kaffe_test_cluster_destroy(tc);
}

/* One short run as in GETTING_STARTED section 11: commits refused while the
 * consumer joins, two messages, a stop as soon as both are handled. */
typedef struct short_run {
    seen_t seen;
    kaffe_status_t status;
    int64_t committed;
    char err[256];
} short_run_t;

static void *short_run_main(void *arg) {
    short_run_t *r = arg;
    r->committed = -5;
    kaffe_test_cluster_t *tc = kaffe_test_cluster_new(1, r->err, sizeof r->err);
    if (!tc) {
        r->status = KAFFE_ERR_STATE;
        return NULL;
    }
    kaffe_test_cluster_create_topic(tc, "orders", 2);
    produce_values(tc, "orders", 0, 2);
    kaffe_test_cluster_fail_requests(tc, KAFFE_TEST_OFFSET_COMMIT, 16, 3);
    kaffe_conf_t *conf = kaffe_test_cluster_consumer_conf(tc, "billing", "orders");
    kaffe_conf_set_message_handler(conf, handler, &r->seen);
    kaffe_consumer_t *c = kaffe_consumer_new(conf, r->err, sizeof r->err);
    r->status = c ? kaffe_test_consume_until(c, seen_all, &r->seen, 20000) : KAFFE_ERR_STATE;
    kaffe_consumer_destroy(c);
    r->committed = 0; /* summed over the partitions (-1: none committed) */
    for (int p = 0; p < 2; p++) {
        int64_t committed = -5;
        kaffe_test_cluster_committed(tc, "billing", "orders", p, &committed);
        r->committed += committed > 0 ? committed : 0;
    }
    kaffe_test_cluster_destroy(tc);
    return NULL;
}

/* The stop's commit must not count on an interval commit still under way:
 * in about one run in four the group ended at 0. The stop's commit skipped
 * the partition as committed already, while the interval commit of 2 was
 * still under way and then lost; and with that fixed, librdkafka's own
 * retry of the refused interval commit of 0 landed after the stop's commit
 * of 2. Eight runs side by side. */
Test(testkit, a_stop_right_after_the_last_message_commits_it, .timeout = 120) {
    enum { RUNS = 8 };
    short_run_t runs[RUNS];
    pthread_t threads[RUNS];
    memset(runs, 0, sizeof runs);
    for (int i = 0; i < RUNS; i++) {
        runs[i].seen.fail_value = -1;
        runs[i].seen.want = 2;
        cr_assert_eq(pthread_create(&threads[i], NULL, short_run_main, &runs[i]), 0);
    }
    for (int i = 0; i < RUNS; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < RUNS; i++) {
        cr_assert_eq(runs[i].status, KAFFE_OK, "run %d: %s %s", i, kaffe_err_name(runs[i].status),
                     runs[i].err);
        cr_assert_eq(runs[i].committed, 2, "run %d: committed %lld of 2", i,
                     (long long)runs[i].committed);
    }
}
