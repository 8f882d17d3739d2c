/* Batch handlers (kaffe_conf_set_batch_handler): batches come from one lane,
 * in offset order, within batch_max_messages / batch_max_bytes; each
 * message is settled by its own outcome or by the handler's return; failed
 * messages take the single-message failure path; what is committed is read
 * back with a plain client. */
#include <criterion/criterion.h>

#include "consumer_helpers.h"
#include "mock/mock_cluster.h"
#include "support/error_counter.h"
#include "support/mock_suite.h"
#include "support/plain_client.h"

MOCK_CLUSTER_SUITE(consumer_batch, 1, 120, {"b-order", 3}, {"b-bytes", 1}, {"b-fail", 2},
                   {"b-upto", 1}, {"b-async", 2}, {"b-key", 2}, {"b-wait", 1});

/* What the batch handler saw, and what it does. */
typedef struct batches {
    recorder_t rec; /* every message, through record_handler */
    pthread_mutex_t lock;
    long count;   /* batches */
    long largest; /* messages in the largest batch */
    size_t largest_bytes;
    long mixed;        /* batches with messages of more than one partition */
    long out_of_order; /* batches whose offsets of one partition were not ascending */
    long fail_mod;  /* fail (kaffe_batch_fail, value 7) first attempts of value % fail_mod == 1; 0:
                       never */
    long upto_fail; /* handled_up_to the middle offset, then return 9 (first attempts) */
    long status_errors; /* outcome calls that did not return KAFFE_OK */
} batches_t;

static void batches_init(batches_t *b) {
    memset(b, 0, sizeof *b);
    recorder_init(&b->rec);
    pthread_mutex_init(&b->lock, NULL);
}

static void batches_free(batches_t *b) {
    recorder_free(&b->rec);
    pthread_mutex_destroy(&b->lock);
}

static int batch_handler(kaffe_batch_t *batch, void *opaque) {
    batches_t *b = opaque;
    size_t n = kaffe_batch_count(batch);
    size_t bytes = 0;
    int mixed = 0, disorder = 0;
    long errors = 0;
    for (size_t i = 0; i < n; i++) {
        kaffe_message_t *m = kaffe_batch_message(batch, i);
        size_t k = 0, v = 0;
        kaffe_message_key(m, &k);
        kaffe_message_value(m, &v);
        bytes += k + v;
        kaffe_message_t *first = kaffe_batch_message(batch, 0);
        if (kaffe_message_partition(m) != kaffe_message_partition(first))
            mixed = 1;
        for (size_t j = 0; j < i; j++) {
            kaffe_message_t *o = kaffe_batch_message(batch, j);
            if (kaffe_message_partition(o) == kaffe_message_partition(m) &&
                kaffe_message_offset(o) >= kaffe_message_offset(m))
                disorder = 1;
        }
        record_handler(m, &b->rec);
        size_t vlen;
        const char *value = kaffe_message_value(m, &vlen);
        long idx = -1;
        if (value)
            sscanf(value, "value-%ld", &idx);
        if (b->fail_mod && idx % b->fail_mod == 1 && kaffe_message_attempt(m) == 1) {
            errors += kaffe_batch_fail(batch, i, 7) != KAFFE_OK;
            /* Settled: a second outcome is refused. */
            errors += kaffe_batch_ack(batch, i) != KAFFE_ERR_ACK_DUPLICATE;
        }
    }
    errors += kaffe_batch_ack(batch, n) != KAFFE_ERR_INVALID_ARG;
    errors += kaffe_batch_fail(batch, 0, KAFFE_OK) != KAFFE_ERR_INVALID_ARG;
    cr_assert_null(kaffe_batch_message(batch, n));
    pthread_mutex_lock(&b->lock);
    b->count++;
    if ((long)n > b->largest)
        b->largest = (long)n;
    if (bytes > b->largest_bytes && n > 1)
        b->largest_bytes = bytes;
    b->mixed += mixed;
    b->out_of_order += disorder;
    b->status_errors += errors;
    pthread_mutex_unlock(&b->lock);
    if (b->upto_fail && n > 1 && kaffe_message_attempt(kaffe_batch_message(batch, 0)) == 1) {
        int64_t middle = kaffe_message_offset(kaffe_batch_message(batch, n / 2));
        if (kaffe_batch_handled_up_to(batch, middle) != KAFFE_OK)
            b->status_errors++;
        return 9; /* the rest failed: retried */
    }
    return KAFFE_OK;
}

static atomic_long errors_told; /* expected: counted, not printed */

static kaffe_consumer_t *start_batch_consumer(const char *bootstraps, const char *topic,
                                              const char *group, batches_t *b, ...) {
    kaffe_conf_t *conf = test_conf(bootstraps, topic, group, NULL, NULL, NULL);
    char err[512];
    va_list ap;
    va_start(ap, b);
    const char *name;
    while ((name = va_arg(ap, const char *))) {
        const char *value = va_arg(ap, const char *);
        cr_assert_eq(kaffe_conf_set(conf, name, value, err, sizeof err), KAFFE_OK, "%s", err);
    }
    va_end(ap);
    kaffe_conf_set_batch_handler(conf, batch_handler, b);
    kaffe_conf_set_error_cb(conf, error_counter_cb, &errors_told);
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    b->rec.consumer = c;
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    return c;
}

/* How many times each value index 0..n-1 was handled. */
static void handled_counts(recorder_t *r, long n, int *counts) {
    memset(counts, 0, (size_t)n * sizeof *counts);
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->count; i++)
        if (r->msgs[i].value_index >= 0 && r->msgs[i].value_index < n)
            counts[r->msgs[i].value_index]++;
    pthread_mutex_unlock(&r->lock);
}

static void assert_committed_end(const char *b, const char *group, const char *topic, int parts,
                                 const int64_t *ends) {
    for (int p = 0; p < parts; p++) {
        int64_t committed = plain_committed(b, group, topic, p, NULL);
        cr_assert_eq(committed, ends[p], "%s [%d]: committed %lld, log end %lld", topic, p,
                     (long long)committed, (long long)ends[p]);
    }
}

Test(consumer_batch, batches_come_from_one_partition_in_order_and_everything_is_committed) {
    const char *bs = mock_cluster_bootstraps(mc);
    enum { PER = 1000 };
    int64_t ends[3];
    for (int p = 0; p < 3; p++) {
        cr_assert_eq(plain_produce(bs, "b-order", p, PER, (size_t)p * PER, 0), PER);
        ends[p] = PER;
    }
    batches_t b;
    batches_init(&b);
    kaffe_consumer_t *c =
        start_batch_consumer(bs, "b-order", "g-b-order", &b, "batch_max_messages", "50", NULL);
    cr_assert(wait_handled(&b.rec, 3 * PER, 30000), "handled %ld", recorder_handled(&b.rec));
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    int counts[3 * PER];
    handled_counts(&b.rec, 3 * PER, counts);
    for (long i = 0; i < 3 * PER; i++)
        cr_assert_eq(counts[i], 1, "value %ld handled %d times", i, counts[i]);
    cr_assert_eq(b.mixed, 0, "ordering=partition: a batch is one partition's");
    cr_assert_eq(b.out_of_order, 0);
    cr_assert_leq(b.largest, 50);
    cr_assert_gt(b.largest, 1, "no batch had more than one message");
    cr_assert_lt(b.count, 3 * PER, "%ld batches for %d messages", b.count, 3 * PER);
    assert_committed_end(bs, "g-b-order", "b-order", 3, ends);
    kaffe_consumer_stats_t st = {0};
    cr_assert_eq(kaffe_consumer_stats(c, &st), KAFFE_OK);
    cr_assert_eq(st.messages_handled, 3 * PER, "messages_handled counts messages");
    cr_assert_eq(st.handler_latency.count, (uint64_t)b.count, "one latency sample per batch");
    kaffe_consumer_stats_free(&st);
    kaffe_consumer_destroy(c);
    batches_free(&b);
}

Test(consumer_batch, batch_max_bytes_closes_a_batch) {
    const char *bs = mock_cluster_bootstraps(mc);
    enum { N = 400 };
    cr_assert_eq(plain_produce(bs, "b-bytes", 0, N, 0, 0), N);
    batches_t b;
    batches_init(&b);
    /* "value-123" is 9 bytes: at most 11 of them in 100 bytes. */
    kaffe_consumer_t *c =
        start_batch_consumer(bs, "b-bytes", "g-b-bytes", &b, "batch_max_bytes", "100", NULL);
    cr_assert(wait_handled(&b.rec, N, 30000), "handled %ld", recorder_handled(&b.rec));
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    cr_assert_leq(b.largest_bytes, 100, "a batch of %zu bytes", b.largest_bytes);
    cr_assert_gt(b.largest, 1);
    int64_t ends[] = {N};
    assert_committed_end(bs, "g-b-bytes", "b-bytes", 1, ends);
    kaffe_consumer_destroy(c);
    batches_free(&b);
}

/* kaffe_batch_fail: those messages go through on_error=retry alone (their
 * second attempt comes as a batch of its own); the rest are acked by the
 * OK return. */
Test(consumer_batch, failed_messages_take_the_failure_path_and_are_retried) {
    const char *bs = mock_cluster_bootstraps(mc);
    enum { PER = 300 };
    int64_t ends[2] = {PER, PER};
    cr_assert_eq(plain_produce(bs, "b-fail", 0, PER, 0, 0), PER);
    cr_assert_eq(plain_produce(bs, "b-fail", 1, PER, PER, 0), PER);
    batches_t b;
    batches_init(&b);
    b.fail_mod = 10;
    kaffe_consumer_t *c =
        start_batch_consumer(bs, "b-fail", "g-b-fail", &b, "on_error", "retry",
                             "retry_initial_backoff_ms", "10", "retry_max_backoff_ms", "50", NULL);
    long failing = 2 * PER / 10;
    cr_assert(wait_handled(&b.rec, 2 * PER + failing, 30000), "handled %ld",
              recorder_handled(&b.rec));
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    int counts[2 * PER];
    handled_counts(&b.rec, 2 * PER, counts);
    for (long i = 0; i < 2 * PER; i++)
        cr_assert_eq(counts[i], i % 10 == 1 ? 2 : 1, "value %ld handled %d times", i, counts[i]);
    cr_assert_eq(b.status_errors, 0);
    kaffe_failure_counters_t f;
    cr_assert_eq(kaffe_consumer_failure_counters(c, &f), KAFFE_OK);
    cr_assert_eq(f.failures, failing);
    cr_assert_eq(f.retries, failing);
    cr_assert_eq(f.last_failure_value, 7);
    assert_committed_end(bs, "g-b-fail", "b-fail", 2, ends);
    kaffe_consumer_destroy(c);
    batches_free(&b);
}

/* Kaffe's "handled up to X": the messages at or below X are acked, the rest
 * fail with the return value and are handled again. */
Test(consumer_batch, handled_up_to_acks_the_start_and_the_rest_fails) {
    const char *bs = mock_cluster_bootstraps(mc);
    enum { N = 200 };
    cr_assert_eq(plain_produce(bs, "b-upto", 0, N, 0, 0), N);
    batches_t b;
    batches_init(&b);
    b.upto_fail = 1;
    kaffe_consumer_t *c = start_batch_consumer(
        bs, "b-upto", "g-b-upto", &b, "on_error", "retry", "retry_initial_backoff_ms", "10",
        "retry_max_backoff_ms", "50", "batch_max_messages", "20", NULL);
    int64_t deadline = clock_now_ms() + 30000;
    int counts[N];
    for (;;) {
        handled_counts(&b.rec, N, counts);
        int all = 1;
        for (long i = 0; i < N && all; i++)
            all = counts[i] > 0;
        if (all)
            break;
        cr_assert_lt(clock_now_ms(), deadline, "not every message was handled");
        clock_sleep_ms(20);
    }
    clock_sleep_ms(300); /* retries under way */
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    handled_counts(&b.rec, N, counts);
    long twice = 0;
    for (long i = 0; i < N; i++) {
        cr_assert(counts[i] == 1 || counts[i] == 2, "value %ld handled %d times", i, counts[i]);
        twice += counts[i] == 2;
    }
    cr_assert_gt(twice, 0, "nothing above X was handled again");
    cr_assert_lt(twice, N, "everything was handled again");
    cr_assert_eq(b.status_errors, 0);
    int64_t ends[] = {N};
    assert_committed_end(bs, "g-b-upto", "b-upto", 1, ends);
    kaffe_consumer_destroy(c);
    batches_free(&b);
}

/* Async mode: OK accepts the batch; the test acks the messages later, out
 * of order; a batch ack of an acked message is a duplicate. */
Test(consumer_batch, async_batches_are_acked_message_by_message_later) {
    const char *bs = mock_cluster_bootstraps(mc);
    enum { PER = 200 };
    int64_t ends[2] = {PER, PER};
    cr_assert_eq(plain_produce(bs, "b-async", 0, PER, 0, 0), PER);
    cr_assert_eq(plain_produce(bs, "b-async", 1, PER, PER, 0), PER);
    batches_t b;
    batches_init(&b);
    b.rec.keep = 1;
    kaffe_consumer_t *c =
        start_batch_consumer(bs, "b-async", "g-b-async", &b, "async_message_ack", "true", NULL);
    cr_assert(wait_handled(&b.rec, 2 * PER, 30000), "handled %ld", recorder_handled(&b.rec));
    clock_sleep_ms(300);
    for (int p = 0; p < 2; p++)
        cr_assert_lt(plain_committed(bs, "g-b-async", "b-async", p, NULL), 1,
                     "committed before any ack");
    for (size_t i = b.rec.count; i-- > 0;) /* newest first */
        cr_assert_eq(kaffe_consumer_ack(c, b.rec.msgs[i].m), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    assert_committed_end(bs, "g-b-async", "b-async", 2, ends);
    kaffe_consumer_destroy(c);
    batches_free(&b);
}

/* ordering=key: a batch holds one key lane's messages, in order. */
Test(consumer_batch, key_ordering_batches_keep_each_keys_order) {
    const char *bs = mock_cluster_bootstraps(mc);
    enum { PER = 500 };
    int64_t ends[2] = {PER, PER};
    cr_assert_eq(plain_produce(bs, "b-key", 0, PER, 0, 7), PER);
    cr_assert_eq(plain_produce(bs, "b-key", 1, PER, PER, 7), PER);
    batches_t b;
    batches_init(&b);
    kaffe_consumer_t *c =
        start_batch_consumer(bs, "b-key", "g-b-key", &b, "ordering", "key", "workers", "4", NULL);
    cr_assert(wait_handled(&b.rec, 2 * PER, 30000), "handled %ld", recorder_handled(&b.rec));
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    cr_assert_eq(b.out_of_order, 0);
    cr_assert_eq(b.mixed, 0);
    /* Per key and partition, the handling order is the offset order. */
    pthread_mutex_lock(&b.rec.lock);
    for (size_t i = 0; i < b.rec.count; i++)
        for (size_t j = i + 1; j < b.rec.count; j++) {
            seen_msg_t *x = &b.rec.msgs[i], *y = &b.rec.msgs[j];
            if (x->partition == y->partition && strcmp(x->key, y->key) == 0)
                cr_assert_lt(x->offset, y->offset, "key %s [%d]: %lld handled before %lld", x->key,
                             x->partition, (long long)x->offset, (long long)y->offset);
        }
    pthread_mutex_unlock(&b.rec.lock);
    assert_committed_end(bs, "g-b-key", "b-key", 2, ends);
    kaffe_consumer_destroy(c);
    batches_free(&b);
}

/* batch_max_wait_ms: messages produced one by one, 20 ms apart, end up in
 * a few batches. */
Test(consumer_batch, batch_max_wait_ms_gathers_a_trickle) {
    const char *bs = mock_cluster_bootstraps(mc);
    batches_t b;
    batches_init(&b);
    kaffe_consumer_t *c = start_batch_consumer(bs, "b-wait", "g-b-wait", &b, "batch_max_wait_ms",
                                               "400", "batch_max_messages", "1000", NULL);
    /* Joined and fetching: the first message comes through. */
    cr_assert_eq(plain_produce(bs, "b-wait", 0, 1, 0, 0), 1);
    cr_assert(wait_handled(&b.rec, 1, 30000));
    long before = b.count;
    int64_t started = clock_now_ms();
    for (int i = 1; i <= 20; i++) {
        cr_assert_eq(plain_produce(bs, "b-wait", 0, 1, (size_t)i, 0), 1);
        clock_sleep_ms(20);
    }
    cr_assert(wait_handled(&b.rec, 21, 30000));
    int64_t took = clock_now_ms() - started;
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    pthread_mutex_lock(&b.lock);
    long batches = b.count - before;
    pthread_mutex_unlock(&b.lock);
    cr_assert_leq(batches, 5, "%ld batches for 20 messages in %lld ms", batches, (long long)took);
    int64_t ends[] = {21};
    assert_committed_end(bs, "g-b-wait", "b-wait", 1, ends);
    kaffe_consumer_destroy(c);
    batches_free(&b);
}

static int noop_message(kaffe_message_t *m, void *opaque) {
    (void)m;
    (void)opaque;
    return KAFFE_OK;
}

static int noop_batch(kaffe_batch_t *b, void *opaque) {
    (void)b;
    (void)opaque;
    return KAFFE_OK;
}

Test(consumer_batch, misuse_is_refused) {
    const char *bs = mock_cluster_bootstraps(mc);
    char err[512];
    kaffe_conf_t *conf = test_conf(bs, "b-order", "g-misuse", noop_message, NULL, NULL);
    kaffe_conf_set_batch_handler(conf, noop_batch, NULL);
    cr_assert_null(kaffe_consumer_new(conf, err, sizeof err));
    cr_assert_not_null(strstr(err, "not both"), "%s", err);
    kaffe_conf_destroy(conf);

    conf = kaffe_conf_new();
    cr_assert_eq(kaffe_conf_set(conf, "batch_max_messages", "0", err, sizeof err),
                 KAFFE_ERR_INVALID_CONF);
    cr_assert_not_null(strstr(err, "batch_max_messages"), "%s", err);
    kaffe_conf_destroy(conf);

    cr_assert_eq(kaffe_batch_count(NULL), 0);
    cr_assert_null(kaffe_batch_message(NULL, 0));
    cr_assert_eq(kaffe_batch_ack(NULL, 0), KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_batch_fail(NULL, 0, 3), KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(kaffe_batch_handled_up_to(NULL, 5), KAFFE_ERR_INVALID_ARG);
    kaffe_conf_set_batch_handler(NULL, noop_batch, NULL); /* ignored */
}
