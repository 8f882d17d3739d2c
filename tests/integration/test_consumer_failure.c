/* The failure policies (on_error = retry | dead_letter | pause, retry
 * exhaustion, nack) and recovery from broker outages, on the embedded
 * cluster. What kaffe committed and what it dead-lettered is read back with
 * plain librdkafka clients. */
#include <criterion/criterion.h>

#include "consumer_helpers.h"
#include "mock/mock_cluster.h"
#include "support/mock_suite.h"
#include "support/plain_client.h"

static mock_cluster_t *mc;

static void start_cluster(void) {
    mock_topic_t topics[] = {{"retry3", 2},  {"retrykey", 1}, {"skip", 1},  {"exstop", 1},
                             {"dlq-src", 1}, {"dlq", 1},      {"nodlq", 1}, {"pause", 2},
                             {"nack", 1},    {"revpause", 2}};
    mc = test_mock_cluster_start(1, topics, sizeof topics / sizeof topics[0]);
    /* The mock creates any topic asked about (Metadata v2): this is how it
     * plays a dead-letter topic the cluster does not have. */
    rd_kafka_mock_topic_set_error(mock_cluster_handle(mc), "no-such-dlq",
                                  RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
}

static void stop_cluster(void) {
    mock_cluster_stop(mc);
}

TestSuite(consumer_failure, .init = start_cluster, .fini = stop_cluster, .timeout = 120);

/* A handler that records every call (with its attempt number) and fails the
 * message whose value index is fail_value while its attempt is below
 * succeed_at (0: always fails). */
typedef struct fx {
    recorder_t r;
    long fail_value;
    int succeed_at;
    int attempts[16]; /* attempt numbers seen for fail_value, under r.lock */
    int attempt_count;
    atomic_long other_partition_at_attempt[4]; /* handled on partition 1 when attempt n began */
    atomic_long partition1;                    /* handled on partition 1 */
} fx_t;

static void fx_init(fx_t *f, long fail_value, int succeed_at) {
    memset(f, 0, sizeof *f);
    recorder_init(&f->r);
    f->fail_value = fail_value;
    f->succeed_at = succeed_at;
}

/* What fx_handler returns for a failure: an ordinary C value, not a kaffe
 * status (the consumer reports it as KAFFE_ERR_HANDLER and keeps the value). */
#define FX_FAILURE_VALUE 42

static int fx_handler(kaffe_message_t *m, void *opaque) {
    fx_t *f = opaque;
    record_handler(m, &f->r);
    size_t vlen;
    const char *v = kaffe_message_value(m, &vlen);
    long idx = -1;
    if (v && vlen > 6 && memcmp(v, "value-", 6) == 0)
        idx = atol(v + 6);
    if (kaffe_message_partition(m) == 1)
        atomic_fetch_add(&f->partition1, 1);
    if (idx != f->fail_value)
        return KAFFE_OK;
    int attempt = kaffe_message_attempt(m);
    pthread_mutex_lock(&f->r.lock);
    if (f->attempt_count < 16)
        f->attempts[f->attempt_count++] = attempt;
    pthread_mutex_unlock(&f->r.lock);
    if (attempt < 4)
        atomic_store(&f->other_partition_at_attempt[attempt], atomic_load(&f->partition1));
    return f->succeed_at == 0 || attempt < f->succeed_at ? FX_FAILURE_VALUE : KAFFE_OK;
}

static int fx_attempts(fx_t *f) {
    pthread_mutex_lock(&f->r.lock);
    int n = f->attempt_count;
    pthread_mutex_unlock(&f->r.lock);
    return n;
}

static atomic_long errors_told;
static void count_errors(int status, const char *reason, void *opaque) {
    (void)opaque;
    if (getenv("KAFFE_TEST_VERBOSE"))
        fprintf(stderr, "error callback: %s: %s\n", kaffe_err_name(status), reason);
    atomic_fetch_add(&errors_told, 1);
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

static int committed_reaches(const char *group, const char *topic, int32_t partition,
                             int64_t offset) {
    int64_t deadline = clock_now_ms() + 20000;
    while (plain_committed(mock_cluster_bootstraps(mc), group, topic, partition, NULL) != offset) {
        if (clock_now_ms() > deadline)
            return 0;
        clock_sleep_ms(50);
    }
    return 1;
}

/* The handled offsets of partition p, in handling order (under r.lock). */
static size_t offsets_of(recorder_t *r, int32_t p, int64_t *out, size_t max) {
    size_t n = 0;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->count && n < max; i++)
        if (r->msgs[i].partition == p)
            out[n++] = r->msgs[i].offset;
    pthread_mutex_unlock(&r->lock);
    return n;
}

static int has_attempts(void *arg) {
    fx_t *f = ((void **)arg)[0];
    int n = (int)(intptr_t)((void **)arg)[1];
    return fx_attempts(f) >= n;
}

Test(consumer_failure, retry_succeeds_on_the_third_attempt_while_other_partitions_flow) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { N0 = 20, N1 = 30, FAIL = 5 };
    cr_assert_eq(plain_produce(b, "retry3", 0, N0, 0, 0), N0);
    fx_t f;
    fx_init(&f, FAIL, 3);
    /* Waits of [2000, 4000] then [4000, 8000] ms: long enough for partition
     * 1 to be produced and handled entirely while partition 0 waits (at
     * least 6 s before attempt 3, also on a loaded machine under ASan). */
    kaffe_consumer_t *c =
        start_consumer(test_conf(b, "retry3", "g-retry3", fx_handler, &f, "on_error", "retry",
                                 "retry_max_attempts", "3", "retry_initial_backoff_ms", "4000",
                                 "retry_max_backoff_ms", "8000", "workers", "2", NULL),
                       &f.r);
    void *one[] = {&f, (void *)(intptr_t)1};
    cr_assert(wait_until(has_attempts, one, 30000));
    /* Partition 1's messages arrive only now, while offset 5 waits. */
    cr_assert_eq(plain_produce(b, "retry3", 1, N1, 1000, 0), N1);
    int64_t deadline = clock_now_ms() + 30000;
    while (atomic_load(&f.partition1) < N1 && clock_now_ms() < deadline)
        clock_sleep_ms(5);
    cr_assert_eq(atomic_load(&f.partition1), N1);
    cr_assert_lt(fx_attempts(&f), 3, "partition 1 was handled while partition 0's retry waited");
    /* Partition 0 is held at offset 5: nothing after it ran yet. */
    int64_t offs[256];
    size_t n = offsets_of(&f.r, 0, offs, 256);
    for (size_t i = 0; i < n; i++)
        cr_assert_leq(offs[i], FAIL, "offset %lld ran while offset 5 waited", (long long)offs[i]);

    void *three[] = {&f, (void *)(intptr_t)3};
    cr_assert(wait_until(has_attempts, three, 30000));
    cr_assert(wait_handled(&f.r, N0 + N1 + 2, 30000));
    cr_assert(committed_reaches("g-retry3", "retry3", 0, N0));
    cr_assert(committed_reaches("g-retry3", "retry3", 1, N1));
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    cr_assert_eq(f.attempt_count, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(f.attempts[i], i + 1);
    /* Partition 0 in order: 0..5, 5, 5, 6..19. */
    n = offsets_of(&f.r, 0, offs, 256);
    cr_assert_eq(n, N0 + 2);
    for (size_t i = 0; i < n; i++) {
        int64_t want = i <= FAIL ? (int64_t)i : i <= FAIL + 2 ? FAIL : (int64_t)i - 2;
        cr_assert_eq(offs[i], want, "position %zu", i);
    }
    kaffe_failure_counters_t k;
    cr_assert_eq(kaffe_consumer_failure_counters(c, &k), KAFFE_OK);
    cr_assert_eq(k.failures, 2);
    cr_assert_eq(k.retries, 2);
    cr_assert_eq(k.skipped + k.dead_lettered + k.paused, 0);
    kaffe_consumer_destroy(c);
    recorder_free(&f.r);
}

Test(consumer_failure, in_key_order_a_waiting_key_holds_back_only_its_key) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { N = 40, KEYS = 8, FAIL_VALUE = KEYS };
    /* Keys key-0..key-7 round robin: value 8 has key-0. */
    cr_assert_eq(plain_produce(b, "retrykey", 0, N, 0, KEYS), N);
    fx_t f;
    fx_init(&f, FAIL_VALUE, 2);
    kaffe_consumer_t *c = start_consumer(
        test_conf(b, "retrykey", "g-retrykey", fx_handler, &f, "on_error", "retry", "ordering",
                  "key", "retry_max_attempts", "5", "retry_initial_backoff_ms", "3000",
                  "retry_max_backoff_ms", "3000", "workers", "2", NULL),
        &f.r);
    /* While value 8 (key-0) waits for its retry (1.5 to 3 s), messages of
     * other keys after it are handled (key lanes are salted hashes: the
     * other seven keys cannot all share key-0's lane of 16 but by a 16^-7
     * chance), and none of key-0's after it. */
    void *one[] = {&f, (void *)(intptr_t)1};
    cr_assert(wait_until(has_attempts, one, 30000));
    int64_t deadline = clock_now_ms() + 30000;
    int others = 0;
    while (!others && clock_now_ms() < deadline) {
        pthread_mutex_lock(&f.r.lock);
        for (size_t i = 0; i < f.r.count; i++)
            others |= f.r.msgs[i].value_index > FAIL_VALUE && strcmp(f.r.msgs[i].key, "key-0") != 0;
        pthread_mutex_unlock(&f.r.lock);
        clock_sleep_ms(5);
    }
    cr_assert(others, "no other key went on while key-0 waited");
    cr_assert_eq(fx_attempts(&f), 1, "the other keys went on while key-0 waited");
    pthread_mutex_lock(&f.r.lock);
    for (size_t i = 0; i < f.r.count; i++)
        if (strcmp(f.r.msgs[i].key, "key-0") == 0)
            cr_assert_leq(f.r.msgs[i].value_index, FAIL_VALUE,
                          "key-0 went on past its waiting message");
    pthread_mutex_unlock(&f.r.lock);
    cr_assert(wait_handled(&f.r, N + 1, 30000));
    cr_assert(committed_reaches("g-retrykey", "retrykey", 0, N));
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    cr_assert_eq(f.attempts[0], 1);
    cr_assert_eq(f.attempts[1], 2);
    kaffe_consumer_destroy(c);
    recorder_free(&f.r);
}

Test(consumer_failure, retry_exhausted_skip_acks_and_counts_it) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { N = 30, FAIL = 7 };
    cr_assert_eq(plain_produce(b, "skip", 0, N, 0, 0), N);
    fx_t f;
    fx_init(&f, FAIL, 0);
    kaffe_consumer_t *c =
        start_consumer(test_conf(b, "skip", "g-skip", fx_handler, &f, "on_error", "retry",
                                 "retry_max_attempts", "3", "retry_initial_backoff_ms", "10",
                                 "retry_max_backoff_ms", "20", "retry_exhausted", "skip", NULL),
                       &f.r);
    cr_assert(wait_handled(&f.r, N + 2, 30000));
    cr_assert(committed_reaches("g-skip", "skip", 0, N), "skipped message committed past");
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    kaffe_failure_counters_t k;
    kaffe_consumer_failure_counters(c, &k);
    cr_assert_eq(k.failures, 3);
    cr_assert_eq(k.retries, 2);
    cr_assert_eq(k.skipped, 1);
    cr_assert_eq(f.attempt_count, 3);
    kaffe_consumer_destroy(c);
    recorder_free(&f.r);
}

Test(consumer_failure, retry_exhausted_stop_commits_nothing_at_or_past_the_message) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { N = 30, FAIL = 11 };
    cr_assert_eq(plain_produce(b, "exstop", 0, N, 0, 0), N);
    fx_t f;
    fx_init(&f, FAIL, 0);
    kaffe_consumer_t *c =
        start_consumer(test_conf(b, "exstop", "g-exstop", fx_handler, &f, "on_error", "retry",
                                 "retry_max_attempts", "2", "retry_initial_backoff_ms", "10", NULL),
                       &f.r);
    cr_assert_eq(kaffe_consumer_wait(c, 30000), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_ERR_HANDLER);
    char text[512];
    cr_assert_eq(kaffe_consumer_last_error(c, text, sizeof text), KAFFE_ERR_HANDLER);
    cr_assert(strstr(text, "with value 42 "), "got: %s", text);
    cr_assert_eq(f.attempt_count, 2);
    cr_assert_eq(plain_committed(b, "g-exstop", "exstop", 0, NULL), FAIL);
    kaffe_failure_counters_t k;
    kaffe_consumer_failure_counters(c, &k);
    cr_assert_eq(k.last_failure_value, FX_FAILURE_VALUE);
    cr_assert_eq(k.retries, 1);
    cr_assert_eq(k.skipped, 0);
    kaffe_consumer_destroy(c);
    recorder_free(&f.r);
}

static const char *header_value(const char *headers, const char *name, char *buf, size_t size) {
    size_t len = strlen(name);
    for (const char *p = headers; p && *p;) {
        const char *nl = strchr(p, '\n');
        if (strncmp(p, name, len) == 0 && p[len] == '=') {
            snprintf(buf, size, "%.*s", (int)(nl - p - len - 1), p + len + 1);
            return buf;
        }
        p = nl ? nl + 1 : NULL;
    }
    return NULL;
}

Test(consumer_failure, retry_exhausted_dead_letter_writes_the_message_with_its_story) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { N = 25, FAIL = 9 };
    cr_assert_eq(plain_produce(b, "dlq-src", 0, N, 0, 3), N);
    fx_t f;
    fx_init(&f, FAIL, 0);
    kaffe_consumer_t *c = start_consumer(
        test_conf(b, "dlq-src", "g-dlq", fx_handler, &f, "on_error", "retry", "retry_max_attempts",
                  "2", "retry_initial_backoff_ms", "10", "retry_exhausted", "dead_letter",
                  "dead_letter_topic", "dlq", NULL),
        &f.r);
    cr_assert(wait_handled(&f.r, N + 1, 30000));
    cr_assert(committed_reaches("g-dlq", "dlq-src", 0, N));
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    kaffe_failure_counters_t k;
    kaffe_consumer_failure_counters(c, &k);
    cr_assert_eq(k.dead_lettered, 1);
    cr_assert_eq(k.dead_letter_failed, 0);
    kaffe_consumer_destroy(c);

    plain_message_t *msgs = NULL;
    size_t got = plain_consume_all(b, "dlq", 10, 1500, &msgs);
    cr_assert_eq(got, 1);
    cr_assert_eq(msgs[0].value_len, strlen("value-9"));
    cr_assert_eq(memcmp(msgs[0].value, "value-9", 7), 0);
    cr_assert_str_eq(msgs[0].key, "key-0"); /* 9 % 3 */
    char buf[128];
    cr_assert_str_eq(header_value(msgs[0].headers, "kaffe.original.topic", buf, sizeof buf),
                     "dlq-src");
    cr_assert_str_eq(header_value(msgs[0].headers, "kaffe.original.partition", buf, sizeof buf),
                     "0");
    cr_assert_str_eq(header_value(msgs[0].headers, "kaffe.original.offset", buf, sizeof buf), "9");
    snprintf(buf, sizeof buf, "%d", FX_FAILURE_VALUE);
    char buf2[128];
    cr_assert_str_eq(header_value(msgs[0].headers, "kaffe.error.code", buf2, sizeof buf2), buf);
    cr_assert_str_eq(header_value(msgs[0].headers, "kaffe.error.text", buf2, sizeof buf2),
                     kaffe_strerror(KAFFE_ERR_HANDLER));
    cr_assert_str_eq(header_value(msgs[0].headers, "kaffe.attempts", buf, sizeof buf), "2");
    cr_assert_not_null(header_value(msgs[0].headers, "kaffe.failed.at", buf, sizeof buf));
    cr_assert_gt(atoll(buf), 1600000000000LL);
    plain_messages_free(msgs, got);
    recorder_free(&f.r);
}

Test(consumer_failure, an_unavailable_dead_letter_topic_stops_without_losing_the_message) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { N = 20, FAIL = 6 };
    cr_assert_eq(plain_produce(b, "nodlq", 0, N, 0, 0), N);
    fx_t f;
    fx_init(&f, FAIL, 0);
    kaffe_consumer_t *c = start_consumer(
        test_conf(b, "nodlq", "g-nodlq", fx_handler, &f, "on_error", "dead_letter",
                  "dead_letter_topic", "no-such-dlq", "produce_timeout_ms", "3000", NULL),
        &f.r);
    cr_assert_eq(kaffe_consumer_wait(c, 30000), KAFFE_OK);
    kaffe_status_t st = kaffe_consumer_stop(c);
    cr_assert_neq(st, KAFFE_OK);
    cr_assert_neq(st, KAFFE_ERR_HANDLER, "the dead-letter produce's error stops it");
    kaffe_failure_counters_t k;
    kaffe_consumer_failure_counters(c, &k);
    cr_assert_eq(k.dead_letter_failed, 1);
    cr_assert_eq(k.dead_lettered, 0);
    cr_assert_eq(plain_committed(b, "g-nodlq", "nodlq", 0, NULL), FAIL);
    kaffe_consumer_destroy(c);
    recorder_free(&f.r);

    /* Not lost: a restarted consumer gets it first. */
    recorder_t r2;
    recorder_init(&r2);
    c = start_consumer(test_conf(b, "nodlq", "g-nodlq", record_handler, &r2, NULL), &r2);
    cr_assert(wait_handled(&r2, N - FAIL, 30000));
    cr_assert(committed_reaches("g-nodlq", "nodlq", 0, N));
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    cr_assert_eq(r2.msgs[0].offset, FAIL);
    kaffe_consumer_destroy(c);
    recorder_free(&r2);
}

/* arg: {consumer, n}: the consumer has paused at least n messages. */
static int has_paused(void *arg) {
    kaffe_consumer_t *c = ((void **)arg)[0];
    uint64_t n = (uint64_t)(intptr_t)((void **)arg)[1];
    kaffe_failure_counters_t k;
    kaffe_consumer_failure_counters(c, &k);
    return k.paused >= n;
}

Test(consumer_failure, pause_holds_the_partition_until_resumed_then_redelivers) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { N = 20, FAIL = 4 };
    cr_assert_eq(plain_produce(b, "pause", 0, N, 0, 0), N);
    cr_assert_eq(plain_produce(b, "pause", 1, N, 100, 0), N);
    fx_t f;
    fx_init(&f, FAIL, 2);
    kaffe_consumer_t *c = start_consumer(
        test_conf(b, "pause", "g-pause", fx_handler, &f, "on_error", "pause", NULL), &f.r);
    void *once[] = {c, (void *)(intptr_t)1};
    cr_assert(wait_until(has_paused, once, 30000));
    /* Partition 1 flows to its end; partition 0 stays at offset 4. */
    cr_assert(committed_reaches("g-pause", "pause", 1, N));
    cr_assert(committed_reaches("g-pause", "pause", 0, FAIL));
    int64_t offs[64];
    size_t n = offsets_of(&f.r, 0, offs, 64);
    cr_assert_eq(n, FAIL + 1);
    cr_assert_eq(kaffe_consumer_resume_partition(c, "pause", 1), KAFFE_ERR_UNKNOWN_PARTITION);
    cr_assert_eq(kaffe_consumer_resume_partition(c, "pause", 0), KAFFE_OK);
    cr_assert(wait_handled(&f.r, 2 * N + 1, 30000));
    cr_assert(committed_reaches("g-pause", "pause", 0, N));
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    cr_assert_eq(f.attempt_count, 2);
    cr_assert_eq(f.attempts[1], 2);
    n = offsets_of(&f.r, 0, offs, 64);
    cr_assert_eq(n, N + 1);
    cr_assert_eq(offs[FAIL], FAIL);
    cr_assert_eq(offs[FAIL + 1], FAIL, "redelivered first on resume");
    kaffe_consumer_destroy(c);
    recorder_free(&f.r);
}

enum { REVOKE_N = 200, REVOKE_AT = 50 };

/* Records, and fails offset REVOKE_AT of every partition, always. */
static int fail_at_offset_handler(kaffe_message_t *m, void *opaque) {
    int rc = record_handler(m, opaque);
    return kaffe_message_offset(m) == REVOKE_AT ? KAFFE_ERR_HANDLER : rc;
}

/* A revoke releases a paused message unhandled, and with it what is queued
 * behind it on its lane: the next owner handles them, in order, from the
 * paused message on (before the fix, the old owner ran them in the revoke's
 * drain, ahead of the paused message, and committed them as acked). */
Test(consumer_failure, a_revoke_releases_a_paused_message_and_what_is_queued_behind_it) {
    const char *b = mock_cluster_bootstraps(mc);
    for (int32_t p = 0; p < 2; p++)
        cr_assert_eq(plain_produce(b, "revpause", p, REVOKE_N, (size_t)p * 1000, 0), REVOKE_N);
    recorder_t ra, rb;
    recorder_init(&ra);
    recorder_init(&rb);
    kaffe_consumer_t *a =
        start_consumer(test_conf(b, "revpause", "g-revpause", fail_at_offset_handler, &ra,
                                 "on_error", "pause", "ordering", "partition", NULL),
                       &ra);
    void *twice[] = {a, (void *)(intptr_t)2};
    cr_assert(wait_until(has_paused, twice, 30000));
    for (int32_t p = 0; p < 2; p++)
        cr_assert(committed_reaches("g-revpause", "revpause", p, REVOKE_AT));
    /* A second member: one partition moves to it. */
    kaffe_consumer_t *cb =
        start_consumer(test_conf(b, "revpause", "g-revpause", record_handler, &rb, NULL), &rb);
    cr_assert(wait_handled(&rb, 1, 30000));
    int32_t moved = rb.msgs[0].partition;
    cr_assert(committed_reaches("g-revpause", "revpause", moved, REVOKE_N));
    int64_t offs[REVOKE_N + 8];
    size_t n = offsets_of(&rb, moved, offs, REVOKE_N + 8);
    cr_assert_eq(n, REVOKE_N - REVOKE_AT, "the new owner handled %zu", n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(offs[i], REVOKE_AT + (int64_t)i, "the new owner's order");
    n = offsets_of(&ra, moved, offs, REVOKE_N + 8);
    for (size_t i = 0; i < n; i++)
        cr_assert_leq(offs[i], REVOKE_AT, "offset %lld ran behind the paused message",
                      (long long)offs[i]);
    cr_assert_eq(kaffe_consumer_stop(cb), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_stop(a), KAFFE_OK);
    kaffe_consumer_destroy(cb);
    kaffe_consumer_destroy(a);
    recorder_free(&ra);
    recorder_free(&rb);
}

Test(consumer_failure, an_async_nack_is_retried_and_acked_later) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { N = 30, NACKED = 13 };
    cr_assert_eq(plain_produce(b, "nack", 0, N, 0, 0), N);
    recorder_t r;
    recorder_init(&r);
    r.keep = 1;
    kaffe_consumer_t *c = start_consumer(test_conf(b, "nack", "g-nack", record_handler, &r,
                                                   "async_message_ack", "true", "on_error", "retry",
                                                   "retry_initial_backoff_ms", "10", NULL),
                                         &r);
    cr_assert(wait_handled(&r, N, 30000));
    kaffe_message_t *nacked = NULL;
    pthread_mutex_lock(&r.lock);
    seen_msg_t *copy = malloc(N * sizeof *copy);
    memcpy(copy, r.msgs, N * sizeof *copy);
    pthread_mutex_unlock(&r.lock);
    for (size_t i = 0; i < N; i++) {
        if (copy[i].offset == NACKED) {
            nacked = copy[i].m;
            cr_assert_eq(kaffe_message_attempt(nacked), 1);
            cr_assert_eq(kaffe_consumer_nack(c, nacked, KAFFE_OK), KAFFE_ERR_INVALID_ARG);
            cr_assert_eq(kaffe_consumer_nack(c, nacked, KAFFE_ERR_HANDLER), KAFFE_OK);
        } else {
            cr_assert_eq(kaffe_consumer_ack(c, copy[i].m), KAFFE_OK);
        }
    }
    free(copy);
    cr_assert_not_null(nacked);
    cr_assert(wait_handled(&r, N + 1, 30000));
    cr_assert(committed_reaches("g-nack", "nack", 0, NACKED));
    pthread_mutex_lock(&r.lock);
    seen_msg_t again = r.msgs[N];
    pthread_mutex_unlock(&r.lock);
    cr_assert_eq(again.offset, NACKED);
    cr_assert_eq(kaffe_message_attempt(again.m), 2);
    cr_assert_eq(kaffe_consumer_ack(c, again.m), KAFFE_OK);
    cr_assert(committed_reaches("g-nack", "nack", 0, N));
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    kaffe_failure_counters_t k;
    kaffe_consumer_failure_counters(c, &k);
    cr_assert_eq(k.retries, 1);
    kaffe_consumer_destroy(c);
    recorder_free(&r);
}

Test(consumer_failure, dead_letter_needs_a_topic) {
    char err[512];
    recorder_t r;
    recorder_init(&r);
    kaffe_conf_t *conf = test_conf(mock_cluster_bootstraps(mc), "dlq-src", "g-x", record_handler,
                                   &r, "on_error", "dead_letter", NULL);
    cr_assert_null(kaffe_consumer_new(conf, err, sizeof err));
    cr_assert(strstr(err, "dead_letter_topic"), "%s", err);
    kaffe_conf_destroy(conf);
    recorder_free(&r);
}
