/* Topic routes (kaffe_conf_set_topic_handler, topic.<topic>.<property>):
 * one consumer runs each topic with its own handler, on_error and in-flight
 * limit; a topic with a worker share of its own cannot starve the others;
 * configurations that leave a topic without a handler are refused. */
#include <criterion/criterion.h>

#include "consumer_helpers.h"
#include "mock/mock_cluster.h"
#include "support/error_counter.h"
#include "support/mock_suite.h"
#include "support/plain_client.h"

MOCK_CLUSTER_SUITE(consumer_routes, 1, 180, {"r-a", 2}, {"r-b", 2}, {"r-c", 1}, {"r-fail", 1},
                   {"r-held", 1}, {"r-free", 1}, {"s-a", 4}, {"s-a-empty", 4}, {"s-b", 8});

static atomic_long errors_told; /* expected: counted, not printed */

static void set(kaffe_conf_t *conf, const char *name, const char *value) {
    char err[512];
    cr_assert_eq(kaffe_conf_set(conf, name, value, err, sizeof err), KAFFE_OK, "%s", err);
}

static kaffe_consumer_t *new_started(kaffe_conf_t *conf) {
    char err[512];
    kaffe_conf_set_error_cb(conf, error_counter_cb, &errors_told);
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    return c;
}

/* Every message of recorder r is of topic. */
static void assert_only_topic(recorder_t *r, const char *topic) {
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->count; i++)
        cr_assert_str_eq(r->msgs[i].topic, topic);
    pthread_mutex_unlock(&r->lock);
}

static void assert_committed(const char *group, const char *topic, int partitions, int64_t each) {
    for (int p = 0; p < partitions; p++) {
        int64_t committed = plain_committed(mock_cluster_bootstraps(mc), group, topic, p, NULL);
        cr_assert_eq(committed, each, "%s [%d]: committed %lld, not %lld", topic, p,
                     (long long)committed, (long long)each);
    }
}

Test(consumer_routes, each_topic_goes_to_its_handler_and_the_rest_to_the_default) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { PER = 100 };
    for (int p = 0; p < 2; p++) {
        cr_assert_eq(plain_produce(b, "r-a", p, PER, 0, 0), PER);
        cr_assert_eq(plain_produce(b, "r-b", p, PER, 0, 0), PER);
    }
    cr_assert_eq(plain_produce(b, "r-c", 0, PER, 0, 0), PER);
    recorder_t ra, rb, rc;
    recorder_init(&ra);
    recorder_init(&rb);
    recorder_init(&rc);
    kaffe_conf_t *conf = test_conf(b, "r-a,r-b,r-c", "g-routes", record_handler, &rc, NULL);
    cr_assert_eq(kaffe_conf_set_topic_handler(conf, "r-a", record_handler, &ra), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set_topic_handler(conf, "r-b", record_handler, &rb), KAFFE_OK);
    kaffe_consumer_t *c = new_started(conf);
    cr_assert(wait_handled(&ra, 2 * PER, 30000), "r-a handled %ld", recorder_handled(&ra));
    cr_assert(wait_handled(&rb, 2 * PER, 30000), "r-b handled %ld", recorder_handled(&rb));
    cr_assert(wait_handled(&rc, PER, 30000), "r-c handled %ld", recorder_handled(&rc));
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    cr_assert_eq(recorder_handled(&ra), 2 * PER);
    cr_assert_eq(recorder_handled(&rb), 2 * PER);
    cr_assert_eq(recorder_handled(&rc), PER);
    assert_only_topic(&ra, "r-a");
    assert_only_topic(&rb, "r-b");
    assert_only_topic(&rc, "r-c");
    assert_committed("g-routes", "r-a", 2, PER);
    assert_committed("g-routes", "r-b", 2, PER);
    assert_committed("g-routes", "r-c", 1, PER);
    kaffe_consumer_stats_t st = {0};
    cr_assert_eq(kaffe_consumer_stats(c, &st), KAFFE_OK);
    cr_assert_eq(st.messages_handled, 5 * PER, "topic handlers are counted too");
    kaffe_consumer_stats_free(&st);
    kaffe_consumer_destroy(c);
    recorder_free(&ra);
    recorder_free(&rb);
    recorder_free(&rc);
}

/* topic.r-fail.on_error = retry while the consumer's on_error is stop: a
 * failure on r-fail is retried and the consumer runs on. */
Test(consumer_routes, a_topic_has_its_own_on_error) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { N = 50 };
    cr_assert_eq(plain_produce(b, "r-fail", 0, N, 0, 0), N);
    recorder_t r;
    recorder_init(&r);
    r.fail_at_value = 7; /* fails every time it is handled */
    kaffe_conf_t *conf = test_conf(b, "r-fail", "g-r-fail", NULL, NULL, "on_error", "stop", NULL);
    set(conf, "topic.r-fail.on_error", "retry");
    set(conf, "retry_initial_backoff_ms", "10");
    set(conf, "retry_max_backoff_ms", "20");
    set(conf, "retry_max_attempts", "3");
    set(conf, "retry_exhausted", "skip");
    cr_assert_eq(kaffe_conf_set_topic_handler(conf, "r-fail", record_handler, &r), KAFFE_OK);
    kaffe_consumer_t *c = new_started(conf);
    cr_assert(wait_handled(&r, N + 2, 30000), "handled %ld", recorder_handled(&r));
    clock_sleep_ms(200);
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK, "the route's retry, not the consumer's stop");
    kaffe_failure_counters_t f;
    cr_assert_eq(kaffe_consumer_failure_counters(c, &f), KAFFE_OK);
    cr_assert_eq(f.failures, 3, "value 7 failed on each of its 3 attempts");
    cr_assert_eq(f.skipped, 1);
    assert_committed("g-r-fail", "r-fail", 1, N);
    kaffe_consumer_destroy(c);
    recorder_free(&r);
}

/* topic.r-held.max_in_flight_messages = 5 in async mode with acks held
 * back: r-held stops at 5 unacked messages, r-free (the consumer's 10000)
 * delivers all of them; acking lets r-held go on. */
Test(consumer_routes, a_topic_has_its_own_in_flight_limit) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { N = 60 };
    cr_assert_eq(plain_produce(b, "r-held", 0, N, 0, 0), N);
    cr_assert_eq(plain_produce(b, "r-free", 0, N, 0, 0), N);
    recorder_t held, free_r;
    recorder_init(&held);
    recorder_init(&free_r);
    held.keep = 1;
    free_r.keep = 1;
    kaffe_conf_t *conf = test_conf(b, "r-held,r-free", "g-r-held", record_handler, &free_r,
                                   "async_message_ack", "true", NULL);
    set(conf, "topic.r-held.max_in_flight_messages", "5");
    cr_assert_eq(kaffe_conf_set_topic_handler(conf, "r-held", record_handler, &held), KAFFE_OK);
    kaffe_consumer_t *c = new_started(conf);
    held.consumer = c;
    cr_assert(wait_handled(&free_r, N, 30000), "r-free handled %ld", recorder_handled(&free_r));
    cr_assert(wait_handled(&held, 5, 30000));
    clock_sleep_ms(300);
    cr_assert_eq(recorder_handled(&held), 5, "r-held handled %ld with 5 allowed in flight",
                 recorder_handled(&held));
    /* Ack as they come: the rest flows. */
    size_t acked = 0;
    int64_t deadline = clock_now_ms() + 30000;
    while (acked < N) {
        cr_assert_lt(clock_now_ms(), deadline, "r-held acked %zu of %d", acked, N);
        pthread_mutex_lock(&held.lock);
        size_t count = held.count;
        pthread_mutex_unlock(&held.lock);
        for (; acked < count; acked++)
            cr_assert_eq(kaffe_consumer_ack(c, held.msgs[acked].m), KAFFE_OK);
        clock_sleep_ms(5);
    }
    for (size_t i = 0; i < free_r.count; i++)
        cr_assert_eq(kaffe_consumer_ack(c, free_r.msgs[i].m), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    assert_committed("g-r-held", "r-held", 1, N);
    assert_committed("g-r-held", "r-free", 1, N);
    kaffe_consumer_destroy(c);
    recorder_free(&held);
    recorder_free(&free_r);
}

/* --- a slow topic with a worker share of its own ----------------------- */

typedef struct rate {
    atomic_long handled;
    atomic_llong lo_ns, hi_ns;
    long lo, hi;
} rate_t;

static int sleepy(kaffe_message_t *m, void *opaque) {
    (void)m;
    atomic_fetch_add(&((rate_t *)opaque)->handled, 1);
    clock_sleep_ms(50);
    return KAFFE_OK;
}

static int counting(kaffe_message_t *m, void *opaque) {
    (void)m;
    rate_t *r = opaque;
    long n = atomic_fetch_add(&r->handled, 1) + 1;
    if (n == r->lo)
        atomic_store(&r->lo_ns, (long long)clock_now_ns());
    else if (n == r->hi)
        atomic_store(&r->hi_ns, (long long)clock_now_ns());
    return KAFFE_OK;
}

enum { B_PARTITIONS = 8, B_PER = 80000, B_TOTAL = B_PARTITIONS * B_PER, A_MESSAGES = 1000 };

/* s-b's steady-state rate (10% to 90% of its messages) in a consumer of
 * a_topic (a 50 ms handler, unordered, with 4 workers of its own when
 * own_share) and s-b (8 partitions, the shared 4 workers). s-b is subscribed once a_topic
 * is assigned and, when it has messages, busy on 4 workers, so s-b's
 * messages arrive behind a queue of slow ones. *a_handled: a_topic's
 * messages handled by the time s-b was done. */
static double b_rate(const char *a_topic, const char *group, bool own_share, long *a_handled) {
    rate_t a = {0}, brate = {.lo = B_TOTAL / 10, .hi = B_TOTAL - B_TOTAL / 10};
    kaffe_conf_t *conf = test_conf(mock_cluster_bootstraps(mc), a_topic, group, counting, &brate,
                                   "workers", "4", NULL);
    char name[64];
    snprintf(name, sizeof name, "topic.%s.ordering", a_topic);
    set(conf, name, "unordered");
    if (own_share) {
        snprintf(name, sizeof name, "topic.%s.workers", a_topic);
        set(conf, name, "4");
    }
    cr_assert_eq(kaffe_conf_set_topic_handler(conf, a_topic, sleepy, &a), KAFFE_OK);
    kaffe_consumer_t *c = new_started(conf);
    bool busy = strcmp(a_topic, "s-a") == 0;
    int64_t deadline = clock_now_ms() + 60000;
    for (;;) {
        kaffe_consumer_stats_t st = {0};
        cr_assert_eq(kaffe_consumer_stats(c, &st), KAFFE_OK);
        size_t assigned = st.partition_count;
        kaffe_consumer_stats_free(&st);
        if (assigned == 4 && (!busy || atomic_load(&a.handled) >= 4))
            break;
        cr_assert_lt(clock_now_ms(), deadline, "%s not assigned (or not busy)", a_topic);
        clock_sleep_ms(10);
    }
    const char *b_topic[] = {"s-b"};
    cr_assert_eq(kaffe_consumer_subscribe(c, b_topic, 1), KAFFE_OK);
    while (atomic_load(&brate.handled) < B_TOTAL && clock_now_ms() < deadline)
        clock_sleep_ms(2);
    *a_handled = atomic_load(&a.handled);
    cr_assert_eq(atomic_load(&brate.handled), B_TOTAL, "s-b handled %ld of %d",
                 atomic_load(&brate.handled), B_TOTAL);
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    kaffe_consumer_destroy(c);
    double seconds = (double)(atomic_load(&brate.hi_ns) - atomic_load(&brate.lo_ns)) / 1e9;
    return (double)(brate.hi - brate.lo) / seconds;
}

/* A 50 ms handler on s-a (unordered: any free worker takes its messages)
 * with 4 workers of its own does not slow s-b: s-b's rate while s-a is
 * busy stays close to its rate while s-a is empty (target: within 20%; the
 * assertion allows 30% for the shared machine). 4 alternated rounds
 * (which goes first swaps each round), best against best, over 512000
 * messages (~0.25 s): with 128000 (~50 ms) single rounds swung from 0.4x
 * to 1.7x on the shared 2 cores. KAFFE_ROUTES_SHARED=1 runs
 * s-a on the shared workers instead, to see the starvation the share
 * prevents (the assertion then fails). */
Test(consumer_routes, a_slow_topic_with_its_own_workers_does_not_starve_another) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    cr_skip_test("compares rates: not under a sanitizer (the other routes tests run there)");
#endif
    const char *b = mock_cluster_bootstraps(mc);
    for (int p = 0; p < B_PARTITIONS; p++)
        cr_assert_eq(plain_produce(b, "s-b", p, B_PER, 0, 0), B_PER);
    cr_assert_eq(plain_produce(b, "s-a", RD_KAFKA_PARTITION_UA, A_MESSAGES, 0, 0), A_MESSAGES);
    bool own_share = !getenv("KAFFE_ROUTES_SHARED");
    double alone = 0, busy = 0;
    for (int round = 0; round < 4; round++) {
        char group[32];
        long a_handled = 0;
        double r_alone = 0, r_busy = 0;
        /* Alternated, and which goes first swaps each round. */
        for (int turn = 0; turn < 2; turn++) {
            bool busy_turn = (turn + round) % 2 == 1;
            snprintf(group, sizeof group, "g-%s-%d", busy_turn ? "busy" : "alone", round);
            if (busy_turn) {
                r_busy = b_rate("s-a", group, own_share, &a_handled);
                cr_assert_lt(a_handled, A_MESSAGES,
                             "s-b was done only after all of s-a: it waited for the slow topic");
            } else {
                long unused;
                r_alone = b_rate("s-a-empty", group, own_share, &unused);
            }
        }
        cr_log_info("round %d: s-b alone %.0f msg/s, beside the slow s-a %.0f msg/s (%.2fx), "
                    "s-a handled %ld",
                    round + 1, r_alone, r_busy, r_busy / r_alone, a_handled);
        alone = r_alone > alone ? r_alone : alone;
        busy = r_busy > busy ? r_busy : busy;
    }
    /* The target is 0.8x; 0.7x leaves room for the shared machine (best
     * against best has measured 0.83x-0.98x here). Without the share s-b
     * waits for all of s-a and the guard above fails. */
    cr_assert_geq(busy, 0.7 * alone, "s-b beside the slow topic %.0f msg/s, alone %.0f msg/s", busy,
                  alone);
}

static int noop(kaffe_message_t *m, void *opaque) {
    (void)m;
    (void)opaque;
    return KAFFE_OK;
}

static int noop_batch(kaffe_batch_t *b, void *opaque) {
    (void)b;
    (void)opaque;
    return KAFFE_OK;
}

/* kaffe_consumer_new's error for conf, which must mention needle. */
static void assert_refused(kaffe_conf_t *conf, const char *needle) {
    char err[512] = "";
    cr_assert_null(kaffe_consumer_new(conf, err, sizeof err));
    cr_assert_not_null(strstr(err, needle), "\"%s\" does not mention %s", err, needle);
    kaffe_conf_destroy(conf);
}

Test(consumer_routes, configurations_without_a_handler_are_refused) {
    const char *b = mock_cluster_bootstraps(mc);
    /* r-b has no handler and there is no default. */
    kaffe_conf_t *conf = test_conf(b, "r-a,r-b", "g-bad", NULL, NULL, NULL);
    kaffe_conf_set_topic_handler(conf, "r-a", noop, NULL);
    assert_refused(conf, "r-b has no handler");
    /* A pattern needs the default handler. */
    conf = test_conf(b, "r-a,^r-.*", "g-bad", NULL, NULL, NULL);
    kaffe_conf_set_topic_handler(conf, "r-a", noop, NULL);
    assert_refused(conf, "needs a default message handler");
    /* Routes are for message handlers. */
    conf = test_conf(b, "r-a", "g-bad", NULL, NULL, NULL);
    kaffe_conf_set_batch_handler(conf, noop_batch, NULL);
    set(conf, "topic.r-a.workers", "2");
    assert_refused(conf, "not with a batch handler");

    char err[512];
    conf = kaffe_conf_new();
    cr_assert_eq(kaffe_conf_set_topic_handler(NULL, "t", noop, NULL), KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_conf_set_topic_handler(conf, NULL, noop, NULL), KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_conf_set_topic_handler(conf, "", noop, NULL), KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_conf_set_topic_handler(conf, "^t.*", noop, NULL), KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_conf_set(conf, "topic.orders.colour", "red", err, sizeof err),
                 KAFFE_ERR_UNKNOWN_CONF);
    cr_assert_not_null(strstr(err, "topic.<topic>.<property>"), "%s", err);
    cr_assert_eq(kaffe_conf_set(conf, "topic.orders.ordering", "sideways", err, sizeof err),
                 KAFFE_ERR_INVALID_CONF);
    cr_assert_not_null(strstr(err, "topic.orders.ordering"), "%s", err);
    cr_assert_eq(kaffe_conf_set(conf, "topic.orders.workers", "0", err, sizeof err),
                 KAFFE_ERR_INVALID_CONF);
    /* A topic's own value, else the consumer's; dots in the topic name. */
    cr_assert_eq(kaffe_conf_set(conf, "topic.orders.eu.ordering", "key", err, sizeof err), KAFFE_OK,
                 "%s", err);
    char v[32];
    size_t n = sizeof v;
    cr_assert_eq(kaffe_conf_get(conf, "topic.orders.eu.ordering", v, &n), KAFFE_OK);
    cr_assert_str_eq(v, "key");
    n = sizeof v;
    cr_assert_eq(kaffe_conf_get(conf, "topic.orders.eu.on_error", v, &n), KAFFE_OK);
    cr_assert_str_eq(v, "stop");
    kaffe_conf_t *copy = kaffe_conf_dup(conf);
    n = sizeof v;
    cr_assert_eq(kaffe_conf_get(copy, "topic.orders.eu.ordering", v, &n), KAFFE_OK);
    cr_assert_str_eq(v, "key", "kaffe_conf_dup keeps the routes");
    kaffe_conf_destroy(copy);
    kaffe_conf_destroy(conf);
}
