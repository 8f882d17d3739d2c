/* The producer on the embedded cluster: each produce form lands on the right
 * topic and partition, each strategy places messages as documented, batches
 * report per message, async delivers with exactly one callback each, and
 * misuse gets clear codes. Everything is read back with a plain librdkafka
 * consumer. */
#include <pthread.h>
#include <stdatomic.h>

#include "producer_helpers.h"
#include "common/clock.h"
#include "support/mock_suite.h"

static mock_cluster_t *mc;
static const char *bs;

static void start_cluster(void) {
    mock_topic_t topics[] = {{"orders", 3}, {"audit", 2}, {"ten", 10}, {"wide", 4}};
    mc = test_mock_cluster_start(3, topics, 4);
    bs = mock_cluster_bootstraps(mc);
    /* The mock answers Metadata v2 at most, so it creates any topic asked
     * about (there is no AllowAutoTopicCreation before v4): this is how it
     * plays a topic the cluster does not have. */
    rd_kafka_mock_topic_set_error(mock_cluster_handle(mc), "no-such-topic",
                                  RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
}

static void stop_cluster(void) {
    mock_cluster_stop(mc);
}

TestSuite(producer, .init = start_cluster, .fini = stop_cluster, .timeout = 120);

static int value_index(const plain_message_t *m) {
    int index = -1;
    cr_assert_eq(sscanf(m->value, "v-%d", &index), 1, "value %s", m->value);
    return index;
}

Test(producer, produce_sync_sends_to_the_first_topic_round_robin_from_zero) {
    kaffe_producer_t *p = producer_with(bs, "orders,audit", NULL);
    char value[32];
    for (int i = 0; i < 9; i++) {
        int len = snprintf(value, sizeof value, "v-%d", i);
        cr_assert_eq(kaffe_produce_sync(p, "k", 1, value, (size_t)len), KAFFE_OK);
    }
    kaffe_producer_destroy(p);
    plain_message_t *msgs;
    size_t n = read_topic(bs, "orders", 3, 9, &msgs);
    cr_assert_eq(n, 9);
    for (size_t i = 0; i < n; i++) {
        int index = value_index(&msgs[i]);
        cr_expect_eq(msgs[i].partition, index % 3, "v-%d on %d", index, msgs[i].partition);
        /* Within a partition, in the order produced. */
        cr_expect_eq(msgs[i].offset, index / 3);
        cr_expect_str_eq(msgs[i].key, "k");
    }
    plain_messages_free(msgs, n);
    cr_expect_eq(topic_size(bs, "audit", 2), 0);
}

Test(producer, round_robin_cycles_per_topic) {
    kaffe_producer_t *p = producer_with(bs, "orders", "partition_strategy", "round_robin", NULL);
    kaffe_produce_result_t r;
    int32_t orders[7], audit[7];
    for (int i = 0; i < 7; i++) {
        kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
        m.value = "x";
        m.value_len = 1;
        m.topic = "orders";
        cr_assert_eq(kaffe_produce_sync_msg(p, &m, &r), KAFFE_OK);
        orders[i] = r.partition;
        m.topic = "audit";
        cr_assert_eq(kaffe_produce_sync_msg(p, &m, &r), KAFFE_OK);
        audit[i] = r.partition;
    }
    for (int i = 0; i < 7; i++) {
        cr_expect_eq(orders[i], i % 3);
        cr_expect_eq(audit[i], i % 2);
    }
    kaffe_producer_destroy(p);
    cr_expect_eq(plain_log_end(bs, "orders", 0), 3);
    cr_expect_eq(plain_log_end(bs, "audit", 1), 3);
}

Test(producer, produce_sync_topic_sends_to_the_named_topic) {
    kaffe_producer_t *p = producer_with(bs, "orders", NULL);
    cr_assert_eq(kaffe_produce_sync_topic(p, "audit", "key", 3, "v-0", 3), KAFFE_OK);
    cr_assert_eq(kaffe_produce_sync_topic(p, "audit", NULL, 0, "v-1", 3), KAFFE_OK);
    kaffe_producer_destroy(p);
    plain_message_t *msgs;
    size_t n = read_topic(bs, "audit", 2, 2, &msgs);
    cr_assert_eq(n, 2);
    for (size_t i = 0; i < n; i++) {
        int index = value_index(&msgs[i]);
        cr_expect_eq(msgs[i].partition, index);
        if (index == 0)
            cr_expect_str_eq(msgs[i].key, "key");
        else
            cr_expect_null(msgs[i].key, "null key stays null");
    }
    plain_messages_free(msgs, n);
    cr_expect_eq(topic_size(bs, "orders", 3), 0);
}

Test(producer, produce_sync_partition_bypasses_the_strategy) {
    kaffe_producer_t *p = producer_with(bs, "orders", NULL);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(kaffe_produce_sync_partition(p, "orders", 2, "k", 1, "v", 1), KAFFE_OK);
    /* round_robin has not moved: the next strategy message goes to 0. */
    kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
    kaffe_produce_result_t r;
    m.value = "v";
    m.value_len = 1;
    cr_assert_eq(kaffe_produce_sync_msg(p, &m, &r), KAFFE_OK);
    cr_expect_eq(r.partition, 0);
    kaffe_producer_destroy(p);
    cr_expect_eq(plain_log_end(bs, "orders", 2), 4);
    cr_expect_eq(plain_log_end(bs, "orders", 0), 1);
    cr_expect_eq(plain_log_end(bs, "orders", 1), 0);
}

Test(producer, random_covers_every_partition) {
    kaffe_producer_t *p = producer_with(bs, "wide", "partition_strategy", "random", NULL);
    kaffe_produce_msg_t msgs[200];
    kaffe_produce_result_t results[200];
    for (int i = 0; i < 200; i++) {
        msgs[i] = (kaffe_produce_msg_t)KAFFE_PRODUCE_MSG_INIT;
        msgs[i].value = "r";
        msgs[i].value_len = 1;
    }
    cr_assert_eq(kaffe_produce_sync_batch(p, msgs, 200, results), KAFFE_OK);
    int seen[4] = {0};
    for (int i = 0; i < 200; i++) {
        cr_assert(results[i].partition >= 0 && results[i].partition < 4);
        seen[results[i].partition]++;
    }
    kaffe_producer_destroy(p);
    /* The chance of a partition never being picked in 200 tries is 4 * 0.75^200. */
    for (int i = 0; i < 4; i++) {
        cr_expect_gt(seen[i], 0, "partition %d never chosen", i);
        cr_expect_eq(plain_log_end(bs, "wide", i), seen[i]);
    }
}

Test(producer, md5_places_keys_like_kaffe) {
    kaffe_producer_t *p = producer_with(bs, "ten", "partition_strategy", "md5", NULL);
    kaffe_produce_result_t r;
    kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
    m.key = "key1";
    m.key_len = 4;
    m.value = "md5";
    m.value_len = 3;
    cr_assert_eq(kaffe_produce_sync_msg(p, &m, &r), KAFFE_OK);
    cr_expect_eq(r.partition, 7, "Kaffe puts key1 on 7 of 10");
    cr_expect_eq(r.offset, 0);
    kaffe_producer_destroy(p);
    cr_expect_eq(plain_log_end(bs, "ten", 7), 1);
    cr_expect_eq(topic_size(bs, "ten", 10), 1);
}

Test(producer, murmur2_places_keys_like_the_java_client) {
    /* toPositive(murmur2(key)) % 10 from the Java client's vectors. */
    struct {
        const char *key;
        int32_t partition;
    } cases[] = {{"21", 0},
                 {"foobar", 6},
                 {"a-little-bit-long-string", 2},
                 {"a-little-bit-longer-string", 9},
                 {"abc", 7}};
    kaffe_producer_t *p = producer_with(bs, "ten", "partition_strategy", "murmur2", NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kaffe_produce_result_t r;
        kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
        m.key = cases[i].key;
        m.key_len = strlen(cases[i].key);
        cr_assert_eq(kaffe_produce_sync_msg(p, &m, &r), KAFFE_OK);
        cr_expect_eq(r.partition, cases[i].partition, "%s", cases[i].key);
    }
    kaffe_producer_destroy(p);
    plain_message_t *msgs;
    size_t n = read_topic(bs, "ten", 10, 5, &msgs);
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
            if (strcmp(msgs[i].key, cases[c].key) == 0)
                cr_expect_eq(msgs[i].partition, cases[c].partition, "%s", msgs[i].key);
    plain_messages_free(msgs, n);
}

Test(producer, keyed_strategies_place_null_keys_round_robin) {
    const char *strategies[] = {"md5", "murmur2"};
    for (int s = 0; s < 2; s++) {
        kaffe_producer_t *p =
            producer_with(bs, "orders", "partition_strategy", strategies[s], NULL);
        for (int i = 0; i < 4; i++) {
            kaffe_produce_result_t r;
            kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
            m.value = "nullkey";
            m.value_len = 7;
            cr_assert_eq(kaffe_produce_sync_msg(p, &m, &r), KAFFE_OK);
            cr_expect_eq(r.partition, i % 3, "%s: message %d", strategies[s], i);
        }
        kaffe_producer_destroy(p);
    }
}

typedef struct fn_calls {
    atomic_int calls;
    char topic[32];
    int32_t count;
    char key[32];
    char value[32];
    int32_t answer;
} fn_calls_t;

static int32_t recording_partitioner(const char *topic, int32_t partition_count, const void *key,
                                     size_t key_len, const void *value, size_t value_len,
                                     void *opaque) {
    fn_calls_t *calls = opaque;
    atomic_fetch_add(&calls->calls, 1);
    snprintf(calls->topic, sizeof calls->topic, "%s", topic);
    calls->count = partition_count;
    snprintf(calls->key, sizeof calls->key, "%.*s", (int)key_len, key ? (const char *)key : "");
    snprintf(calls->value, sizeof calls->value, "%.*s", (int)value_len,
             value ? (const char *)value : "");
    return calls->answer;
}

static kaffe_producer_t *producer_with_function(fn_calls_t *calls) {
    char err[256];
    kaffe_conf_t *conf = kaffe_conf_new();
    kaffe_conf_set(conf, "endpoints", bs, err, sizeof err);
    kaffe_conf_set(conf, "topics", "orders", err, sizeof err);
    kaffe_conf_set(conf, "partition_strategy", "md5", err, sizeof err); /* overridden */
    kaffe_conf_set_partitioner(conf, recording_partitioner, calls);
    kaffe_producer_t *p = kaffe_producer_new(conf, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    return p;
}

Test(producer, partitioner_function_gets_the_message_and_is_obeyed) {
    fn_calls_t calls = {.answer = 1};
    kaffe_producer_t *p = producer_with_function(&calls);
    cr_assert_eq(kaffe_produce_sync_topic(p, "ten", "the-key", 7, "the-value", 9), KAFFE_OK);
    cr_expect_eq(atomic_load(&calls.calls), 1);
    cr_expect_str_eq(calls.topic, "ten");
    cr_expect_eq(calls.count, 10);
    cr_expect_str_eq(calls.key, "the-key");
    cr_expect_str_eq(calls.value, "the-value");
    calls.answer = 2;
    cr_assert_eq(kaffe_produce_sync(p, "k2", 2, "v2", 2), KAFFE_OK);
    cr_expect_str_eq(calls.topic, "orders");
    cr_expect_eq(calls.count, 3);
    /* An explicit partition does not consult the function. */
    cr_assert_eq(kaffe_produce_sync_partition(p, "orders", 0, "k3", 2, "v3", 2), KAFFE_OK);
    cr_expect_eq(atomic_load(&calls.calls), 2);
    kaffe_producer_destroy(p);
    cr_expect_eq(plain_log_end(bs, "ten", 1), 1);
    cr_expect_eq(topic_size(bs, "ten", 10), 1);
    cr_expect_eq(plain_log_end(bs, "orders", 2), 1);
    cr_expect_eq(plain_log_end(bs, "orders", 0), 1);
}

Test(producer, partitioner_function_out_of_range_is_an_error_not_a_crash) {
    fn_calls_t calls = {.answer = 3}; /* orders has 0..2 */
    kaffe_producer_t *p = producer_with_function(&calls);
    cr_expect_eq(kaffe_produce_sync(p, "k", 1, "v", 1), KAFFE_ERR_PARTITIONER);
    calls.answer = -1;
    cr_expect_eq(kaffe_produce_sync(p, "k", 1, "v", 1), KAFFE_ERR_PARTITIONER);
    calls.answer = INT32_MAX;
    kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
    m.value = "x";
    m.value_len = 1;
    cr_expect_eq(kaffe_produce_async(p, &m, NULL, NULL), KAFFE_ERR_PARTITIONER);
    calls.answer = 0;
    cr_expect_eq(kaffe_produce_sync(p, "k", 1, "v", 1), KAFFE_OK);
    kaffe_producer_destroy(p);
    cr_expect_eq(topic_size(bs, "orders", 3), 1, "only the good message was written");
}

/* A consumer assigned to topic/partition from the beginning (plain_consume_all
 * does not keep headers and timestamps). */
static rd_kafka_t *reader_of(const char *topic, int32_t partition) {
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bs, err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", "header-reader", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    cr_assert_not_null(rk, "%s", err);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, partition)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    return rk;
}

static rd_kafka_message_t *first_message(rd_kafka_t *rk) {
    rd_kafka_message_t *m = NULL;
    for (int i = 0; i < 100 && !m; i++) {
        m = rd_kafka_consumer_poll(rk, 100);
        if (m && m->err) {
            rd_kafka_message_destroy(m);
            m = NULL;
        }
    }
    cr_assert_not_null(m, "no message");
    return m;
}

Test(producer, produce_sync_msg_carries_headers_and_timestamp) {
    kaffe_producer_t *p = producer_with(bs, "orders", NULL);
    kaffe_header_t headers[] = {
        {"trace", "abc", 3}, {"empty", "", 0}, {"null", NULL, 0}, {"trace", "def", 3}};
    kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
    m.topic = "audit";
    m.partition = 1;
    m.key = "hk";
    m.key_len = 2;
    m.value = "hv";
    m.value_len = 2;
    m.headers = headers;
    m.header_count = 4;
    m.timestamp_ms = 1600000000123;
    kaffe_produce_result_t r;
    cr_assert_eq(kaffe_produce_sync_msg(p, &m, &r), KAFFE_OK);
    cr_expect_eq(r.status, KAFFE_OK);
    cr_expect_eq(r.partition, 1);
    cr_expect_eq(r.offset, 0);
    kaffe_producer_destroy(p);

    rd_kafka_t *reader = reader_of("audit", 1);
    rd_kafka_message_t *got = first_message(reader);
    rd_kafka_timestamp_type_t type;
    cr_expect_eq(rd_kafka_message_timestamp(got, &type), 1600000000123);
    cr_expect_eq(type, RD_KAFKA_TIMESTAMP_CREATE_TIME);
    rd_kafka_headers_t *h = NULL;
    cr_assert_eq(rd_kafka_message_headers(got, &h), RD_KAFKA_RESP_ERR_NO_ERROR);
    cr_assert_eq(rd_kafka_header_cnt(h), 4);
    const char *name;
    const void *value;
    size_t size;
    cr_assert_eq(rd_kafka_header_get_all(h, 0, &name, &value, &size), 0);
    cr_expect_str_eq(name, "trace");
    cr_expect(size == 3 && memcmp(value, "abc", 3) == 0);
    cr_assert_eq(rd_kafka_header_get_all(h, 1, &name, &value, &size), 0);
    cr_expect(strcmp(name, "empty") == 0 && size == 0 && value != NULL);
    cr_assert_eq(rd_kafka_header_get_all(h, 2, &name, &value, &size), 0);
    cr_expect(strcmp(name, "null") == 0 && value == NULL);
    cr_assert_eq(rd_kafka_header_get_last(h, "trace", &value, &size), 0);
    cr_expect(size == 3 && memcmp(value, "def", 3) == 0);
    rd_kafka_message_destroy(got);
    rd_kafka_consumer_close(reader);
    rd_kafka_destroy(reader);
}

Test(producer, batch_reports_each_message_and_writes_the_good_ones) {
    kaffe_producer_t *p = producer_with(bs, "orders", NULL);
    enum { N = 50 };
    kaffe_produce_msg_t msgs[N];
    kaffe_produce_result_t results[N];
    char values[N][16];
    for (int i = 0; i < N; i++) {
        msgs[i] = (kaffe_produce_msg_t)KAFFE_PRODUCE_MSG_INIT;
        msgs[i].value = values[i];
        msgs[i].value_len = (size_t)snprintf(values[i], sizeof values[i], "v-%d", i);
    }
    msgs[10].partition = 7;           /* orders has 3 partitions */
    msgs[20].topic = "no-such-topic"; /* unknown */
    msgs[30].key_len = 5;             /* NULL key with a length */
    msgs[40].topic = "audit";         /* fine, other topic */
    msgs[40].partition = 1;
    cr_assert_eq(kaffe_produce_sync_batch(p, msgs, N, results), KAFFE_ERR_BATCH_INCOMPLETE);
    int ok = 0;
    for (int i = 0; i < N; i++) {
        if (i == 10)
            cr_expect_eq(results[i].status, KAFFE_ERR_UNKNOWN_PARTITION);
        else if (i == 20)
            cr_expect_eq(results[i].status, KAFFE_ERR_UNKNOWN_TOPIC);
        else if (i == 30)
            cr_expect_eq(results[i].status, KAFFE_ERR_INVALID_ARG);
        else {
            cr_expect_eq(results[i].status, KAFFE_OK, "message %d: %s", i,
                         kaffe_err_name(results[i].status));
            cr_expect_geq(results[i].offset, 0);
            ok++;
        }
        if (results[i].status != KAFFE_OK)
            cr_expect_eq(results[i].offset, -1);
    }
    cr_expect_eq(results[40].partition, 1);
    kaffe_producer_destroy(p);

    /* Exactly the OK messages are in the cluster, at the reported places. */
    plain_message_t *got;
    size_t n = read_topic(bs, "orders", 3, (size_t)ok - 1, &got);
    cr_expect_eq(n, (size_t)ok - 1);
    for (size_t i = 0; i < n; i++) {
        int index = value_index(&got[i]);
        cr_expect(index != 10 && index != 20 && index != 30 && index != 40);
        cr_expect_eq(got[i].partition, results[index].partition);
        cr_expect_eq(got[i].offset, results[index].offset);
    }
    plain_messages_free(got, n);
    cr_expect_eq(plain_log_end(bs, "audit", 1), 1);
}

typedef struct async_log {
    pthread_mutex_t lock;
    int calls, ok;
    int seen[1000];
    pthread_t thread;
} async_log_t;

static void on_delivery(const kaffe_delivery_report_t *report, void *opaque) {
    async_log_t *log = opaque;
    int index = -1;
    if (report->value && sscanf(report->value, "v-%d", &index) != 1)
        index = -1;
    pthread_mutex_lock(&log->lock);
    log->calls++;
    log->thread = pthread_self();
    if (report->status == KAFFE_OK && index >= 0 && index < 1000) {
        log->ok++;
        log->seen[index]++;
    }
    pthread_mutex_unlock(&log->lock);
}

Test(producer, async_calls_back_once_per_message_and_flush_waits) {
    kaffe_producer_t *p = producer_with(bs, "orders", NULL);
    async_log_t *log = calloc(1, sizeof *log);
    pthread_mutex_init(&log->lock, NULL);
    char value[32];
    for (int i = 0; i < 1000; i++) {
        kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
        m.value = value;
        m.value_len = (size_t)snprintf(value, sizeof value, "v-%d", i); /* reused: copied */
        cr_assert_eq(kaffe_produce_async(p, &m, on_delivery, log), KAFFE_OK);
    }
    cr_assert_eq(kaffe_producer_flush(p, 30000), KAFFE_OK);
    pthread_mutex_lock(&log->lock);
    cr_expect_eq(log->calls, 1000);
    cr_expect_eq(log->ok, 1000);
    for (int i = 0; i < 1000; i++)
        cr_expect_eq(log->seen[i], 1, "v-%d reported %d times", i, log->seen[i]);
    cr_expect(!pthread_equal(log->thread, pthread_self()), "callbacks run on the delivery thread");
    pthread_mutex_unlock(&log->lock);
    kaffe_producer_destroy(p);
    cr_expect_eq(topic_size(bs, "orders", 3), 1000);
    pthread_mutex_destroy(&log->lock);
    free(log);
}

typedef struct nested {
    kaffe_producer_t *p;
    atomic_int sync_status, flush_status, async_status, calls;
} nested_t;

static void nested_callback(const kaffe_delivery_report_t *report, void *opaque) {
    (void)report;
    nested_t *n = opaque;
    if (atomic_fetch_add(&n->calls, 1) > 0)
        return;
    atomic_store(&n->sync_status, kaffe_produce_sync(n->p, "k", 1, "in-cb", 5));
    atomic_store(&n->flush_status, kaffe_producer_flush(n->p, 1000));
    kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
    m.value = "from-cb";
    m.value_len = 7;
    atomic_store(&n->async_status, kaffe_produce_async(n->p, &m, nested_callback, n));
}

Test(producer, delivery_callback_may_produce_async_but_not_block) {
    nested_t n = {0};
    n.p = producer_with(bs, "orders", NULL);
    kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
    m.value = "first";
    m.value_len = 5;
    cr_assert_eq(kaffe_produce_async(n.p, &m, nested_callback, &n), KAFFE_OK);
    for (int i = 0; i < 200 && atomic_load(&n.calls) < 2; i++)
        kaffe_producer_flush(n.p, 100);
    cr_expect_eq(atomic_load(&n.sync_status), KAFFE_ERR_STATE);
    cr_expect_eq(atomic_load(&n.flush_status), KAFFE_ERR_STATE);
    cr_expect_eq(atomic_load(&n.async_status), KAFFE_OK);
    cr_expect_eq(atomic_load(&n.calls), 2);
    kaffe_producer_destroy(n.p);
    cr_expect_eq(topic_size(bs, "orders", 3), 2);
}

typedef struct thread_arg {
    kaffe_producer_t *p;
    int thread, count, ok;
} thread_arg_t;

static void *sync_worker(void *arg) {
    thread_arg_t *a = arg;
    char value[32];
    for (int i = 0; i < a->count; i++) {
        int len = snprintf(value, sizeof value, "v-%d", a->thread * a->count + i);
        if (kaffe_produce_sync_topic(a->p, "wide", NULL, 0, value, (size_t)len) == KAFFE_OK)
            a->ok++;
    }
    return NULL;
}

Test(producer, produce_sync_from_eight_threads_delivers_everything) {
    kaffe_producer_t *p = producer_with(bs, "orders", "rdkafka.linger.ms", "2", NULL);
    enum { THREADS = 8, EACH = 100 };
    pthread_t threads[THREADS];
    thread_arg_t args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (thread_arg_t){p, t, EACH, 0};
        pthread_create(&threads[t], NULL, sync_worker, &args[t]);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        cr_expect_eq(args[t].ok, EACH, "thread %d: %d OK", t, args[t].ok);
    }
    kaffe_producer_destroy(p);
    plain_message_t *msgs;
    size_t n = read_topic(bs, "wide", 4, THREADS * EACH, &msgs);
    cr_assert_eq(n, THREADS * EACH);
    char *seen = calloc(THREADS * EACH, 1);
    for (size_t i = 0; i < n; i++) {
        int index = value_index(&msgs[i]);
        cr_assert(index >= 0 && index < THREADS * EACH);
        cr_expect_eq(seen[index], 0, "v-%d twice", index);
        seen[index] = 1;
    }
    /* round_robin shared by all threads: the partitions are even. */
    for (int part = 0; part < 4; part++)
        cr_expect_eq(plain_log_end(bs, "wide", part), THREADS * EACH / 4);
    free(seen);
    plain_messages_free(msgs, n);
}

/* Plays a creation still propagating: the topic's metadata says
 * UNKNOWN_TOPIC_OR_PART for 300 ms, as a broker that has not learned of a
 * just-created topic does (found by the real-cluster tier). */
static void *topic_known_later(void *arg) {
    clock_sleep_ms(300);
    rd_kafka_mock_topic_set_error(mock_cluster_handle(mc), arg, RD_KAFKA_RESP_ERR_NO_ERROR);
    return NULL;
}

Test(producer, a_topic_still_propagating_is_not_unknown) {
    cr_assert_eq(mock_cluster_create_topic(mc, "late", 2), 0);
    rd_kafka_mock_topic_set_error(mock_cluster_handle(mc), "late",
                                  RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, topic_known_later, "late"), 0);
    kaffe_producer_t *p = producer_with(bs, "late", NULL);
    cr_expect_eq(kaffe_produce_sync(p, "k", 1, "v", 1), KAFFE_OK);
    pthread_join(t, NULL);
    kaffe_producer_destroy(p);
    cr_expect_eq(topic_size(bs, "late", 2), 1);
}

Test(producer, misuse_gets_clear_codes) {
    kaffe_producer_t *p = producer_with(bs, "orders", NULL);
    kaffe_produce_result_t r;
    kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
    cr_expect_eq(kaffe_produce_sync(NULL, "k", 1, "v", 1), KAFFE_ERR_INVALID_ARG);
    cr_expect_eq(kaffe_produce_sync_topic(p, NULL, "k", 1, "v", 1), KAFFE_ERR_INVALID_ARG);
    cr_expect_eq(kaffe_produce_sync_partition(p, NULL, 0, "k", 1, "v", 1), KAFFE_ERR_INVALID_ARG);
    cr_expect_eq(kaffe_produce_sync(p, NULL, 3, "v", 1), KAFFE_ERR_INVALID_ARG);
    cr_expect_eq(kaffe_produce_sync(p, "k", 1, NULL, 3), KAFFE_ERR_INVALID_ARG);
    cr_expect_eq(kaffe_produce_sync_msg(p, NULL, &r), KAFFE_ERR_INVALID_ARG);
    cr_expect_eq(r.status, KAFFE_ERR_INVALID_ARG);
    cr_expect_eq(kaffe_produce_sync_batch(p, &m, 0, &r), KAFFE_ERR_INVALID_ARG);
    cr_expect_eq(kaffe_produce_sync_batch(p, &m, 1, NULL), KAFFE_ERR_INVALID_ARG);
    cr_expect_eq(kaffe_produce_async(NULL, &m, NULL, NULL), KAFFE_ERR_INVALID_ARG);
    cr_expect_eq(kaffe_producer_flush(NULL, 0), KAFFE_ERR_INVALID_ARG);
    m.header_count = 1; /* headers NULL */
    cr_expect_eq(kaffe_produce_sync_msg(p, &m, NULL), KAFFE_ERR_INVALID_ARG);
    kaffe_producer_destroy(NULL);

    cr_expect_eq(kaffe_produce_sync_topic(p, "no-such-topic", "k", 1, "v", 1),
                 KAFFE_ERR_UNKNOWN_TOPIC);
    cr_expect_eq(kaffe_produce_sync_partition(p, "orders", 3, "k", 1, "v", 1),
                 KAFFE_ERR_UNKNOWN_PARTITION);
    cr_expect_eq(kaffe_produce_sync_partition(p, "orders", -5, "k", 1, "v", 1),
                 KAFFE_ERR_UNKNOWN_PARTITION);
    size_t big = 2 * 1024 * 1024; /* message.max.bytes is 1000000 by default */
    char *huge = calloc(1, big);
    cr_expect_eq(kaffe_produce_sync(p, "k", 1, huge, big), KAFFE_ERR_MSG_SIZE_TOO_LARGE);
    kaffe_produce_msg_t hm = KAFFE_PRODUCE_MSG_INIT;
    hm.value = huge;
    hm.value_len = big;
    cr_expect_eq(kaffe_produce_async(p, &hm, on_delivery, NULL), KAFFE_ERR_MSG_SIZE_TOO_LARGE);
    free(huge);
    kaffe_producer_destroy(p);
    cr_expect_eq(topic_size(bs, "orders", 3), 0);
}

Test(producer, bad_configuration_is_refused_with_a_message) {
    char err[256] = "";
    kaffe_conf_t *conf = kaffe_conf_new();
    cr_expect_eq(kaffe_conf_set(conf, "partition_strategy", "hash", err, sizeof err),
                 KAFFE_ERR_INVALID_CONF);
    cr_expect(strstr(err, "partition_strategy"), "got: %s", err);
    cr_expect_eq(kaffe_conf_set(conf, "produce_timeout_ms", "0", err, sizeof err),
                 KAFFE_ERR_INVALID_CONF);
    cr_expect_null(kaffe_producer_new(NULL, err, sizeof err));
    /* No endpoints: refused, and the caller keeps conf. */
    kaffe_conf_set(conf, "topics", "orders", err, sizeof err);
    cr_expect_null(kaffe_producer_new(conf, err, sizeof err));
    cr_expect(strstr(err, "endpoints"), "got: %s", err);
    kaffe_conf_destroy(conf);
}
