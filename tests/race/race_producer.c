/* Race tier for the producer (runs under ThreadSanitizer): many threads call
 * the sync forms, the batch call and async produce on one producer at once,
 * racing on the first use of a dozen topics (table growth) and on the shared
 * round_robin counters, and on the out-of-range refresh (a partition beyond
 * the count, refused). Every other call must report OK, every message must be in
 * the cluster exactly once, and every async message must get exactly one
 * callback. A second case pushes enough async messages through a few threads
 * that the producer's delivery records are recycled many times over (taken
 * by callers while the delivery thread returns them): each message's own
 * opaque must come back exactly once. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kaffe/kaffe.h>

#include "mock/mock_cluster.h"
#include "support/check.h"
#include "support/plain_client.h"
#include "support/tsan_c11_threads.h" /* librdkafka threads, seen by TSan */

#define THREADS 8
#define TOPICS 12
#define PARTITIONS 3
#define ROUNDS 40 /* per thread: one single sync, one batch of BATCH, one async */
#define BATCH 4

static mock_cluster_t *mc;
static const char *bs;

typedef struct worker {
    kaffe_producer_t *p;
    int id;
    int failures;
    atomic_int *async_calls;
    atomic_int *async_failures;
} worker_t;

static void topic_name(int i, char *out, size_t size) {
    snprintf(out, size, "race-%d", i);
}

static void on_delivery(const kaffe_delivery_report_t *report, void *opaque) {
    worker_t *w = opaque;
    atomic_fetch_add_explicit(w->async_calls, 1, memory_order_relaxed);
    if (report->status != KAFFE_OK)
        atomic_fetch_add_explicit(w->async_failures, 1, memory_order_relaxed);
}

static void *work(void *arg) {
    worker_t *w = arg;
    char topic[32], value[64];
    for (int r = 0; r < ROUNDS; r++) {
        /* Threads start on different topics so first uses collide. */
        topic_name((w->id + r) % TOPICS, topic, sizeof topic);
        int len = snprintf(value, sizeof value, "s-%d-%d", w->id, r);
        if (kaffe_produce_sync_topic(w->p, topic, NULL, 0, value, (size_t)len) != KAFFE_OK)
            w->failures++;
        /* A partition beyond the count: the out-of-range refresh (its
         * re-check under metadata_lock) races with the periodic refresh and
         * with the other threads'. */
        kaffe_status_t st =
            kaffe_produce_sync_partition(w->p, topic, PARTITIONS, NULL, 0, value, (size_t)len);
        CHECK(st == KAFFE_ERR_UNKNOWN_PARTITION, "partition %d of %d: %s", PARTITIONS, PARTITIONS,
              kaffe_err_name(st));

        kaffe_produce_msg_t msgs[BATCH];
        kaffe_produce_result_t results[BATCH];
        char values[BATCH][64];
        for (int b = 0; b < BATCH; b++) {
            msgs[b] = (kaffe_produce_msg_t)KAFFE_PRODUCE_MSG_INIT;
            msgs[b].topic = topic;
            msgs[b].value = values[b];
            msgs[b].value_len =
                (size_t)snprintf(values[b], sizeof values[b], "b-%d-%d-%d", w->id, r, b);
        }
        if (kaffe_produce_sync_batch(w->p, msgs, BATCH, results) != KAFFE_OK)
            w->failures++;
        for (int b = 0; b < BATCH; b++)
            CHECK(results[b].status == KAFFE_OK && results[b].offset >= 0, "batch %d/%d: %s", r, b,
                  kaffe_err_name(results[b].status));

        kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
        m.topic = topic;
        m.value = value;
        m.value_len = (size_t)snprintf(value, sizeof value, "a-%d-%d", w->id, r);
        if (kaffe_produce_async(w->p, &m, on_delivery, w) != KAFFE_OK)
            w->failures++;
    }
    return NULL;
}

static void many_threads_produce_sync_batch_and_async_at_once(void) {
    char err[256];
    kaffe_conf_t *conf = kaffe_conf_new();
    char topics[TOPICS * 16] = "";
    for (int i = 0; i < TOPICS; i++) {
        char t[32];
        topic_name(i, t, sizeof t);
        strcat(topics, i ? "," : "");
        strcat(topics, t);
    }
    kaffe_conf_set(conf, "endpoints", bs, err, sizeof err);
    kaffe_conf_set(conf, "topics", topics, err, sizeof err);
    kaffe_conf_set(conf, "rdkafka.linger.ms", "1", err, sizeof err);
    kaffe_conf_set(conf, "partition_refresh_ms", "100", err, sizeof err); /* refresh races too */
    kaffe_producer_t *p = kaffe_producer_new(conf, err, sizeof err);
    CHECK(p != NULL, "%s", err);
    if (!p)
        return;

    atomic_int async_calls = 0, async_failures = 0;
    pthread_t threads[THREADS];
    worker_t workers[THREADS];
    for (int t = 0; t < THREADS; t++) {
        workers[t] = (worker_t){p, t, 0, &async_calls, &async_failures};
        pthread_create(&threads[t], NULL, work, &workers[t]);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        CHECK(workers[t].failures == 0, "thread %d: %d failed calls", t, workers[t].failures);
    }
    CHECK(kaffe_producer_flush(p, 30000) == KAFFE_OK, "flush");
    CHECK(atomic_load(&async_calls) == THREADS * ROUNDS, "%d async callbacks",
          atomic_load(&async_calls));
    CHECK(atomic_load(&async_failures) == 0, "%d async failures", atomic_load(&async_failures));
    kaffe_producer_destroy(p);

    /* Every message once: THREADS * ROUNDS * (1 + BATCH + 1) in all. */
    size_t total = 0;
    for (int i = 0; i < TOPICS; i++) {
        char t[32];
        topic_name(i, t, sizeof t);
        plain_message_t *msgs;
        int64_t expected = 0;
        for (int part = 0; part < PARTITIONS; part++)
            expected += plain_log_end(bs, t, part);
        size_t n = plain_consume_all(bs, t, (size_t)expected, 5000, &msgs);
        CHECK(n == (size_t)expected, "%s: read %zu of %lld", t, n, (long long)expected);
        for (size_t a = 0; a < n; a++)
            for (size_t b = a + 1; b < n; b++)
                CHECK(strcmp(msgs[a].value, msgs[b].value) != 0, "%s twice", msgs[a].value);
        total += n;
        plain_messages_free(msgs, n);
    }
    CHECK(total == THREADS * ROUNDS * (2 + BATCH), "%zu messages in the cluster", total);
}

#define RECYCLE_THREADS 4
#define RECYCLE_MESSAGES 3000 /* per thread; far more than one record chunk */

typedef struct recycle_worker {
    kaffe_producer_t *p;
    int id;
    int failures;
    /* One slot per message, its opaque: the callback counts its calls. */
    atomic_int calls[RECYCLE_MESSAGES];
} recycle_worker_t;

static atomic_int recycle_not_ok;

static void count_call(const kaffe_delivery_report_t *report, void *opaque) {
    atomic_int *slot = opaque;
    atomic_fetch_add_explicit(slot, 1, memory_order_relaxed);
    if (report->status != KAFFE_OK)
        atomic_fetch_add_explicit(&recycle_not_ok, 1, memory_order_relaxed);
}

static void *recycle_work(void *arg) {
    recycle_worker_t *w = arg;
    char value[32];
    for (int i = 0; i < RECYCLE_MESSAGES; i++) {
        kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
        m.value = value;
        m.value_len = (size_t)snprintf(value, sizeof value, "r-%d-%d", w->id, i);
        if (kaffe_produce_async(w->p, &m, count_call, &w->calls[i]) != KAFFE_OK)
            w->failures++;
    }
    return NULL;
}

static void async_records_recycle_across_threads(void) {
    char err[256];
    kaffe_conf_t *conf = kaffe_conf_new();
    char topic[32];
    topic_name(0, topic, sizeof topic);
    kaffe_conf_set(conf, "endpoints", bs, err, sizeof err);
    kaffe_conf_set(conf, "topics", topic, err, sizeof err);
    kaffe_conf_set(conf, "rdkafka.linger.ms", "1", err, sizeof err);
    kaffe_producer_t *p = kaffe_producer_new(conf, err, sizeof err);
    CHECK(p != NULL, "%s", err);
    if (!p)
        return;
    static recycle_worker_t workers[RECYCLE_THREADS];
    pthread_t threads[RECYCLE_THREADS];
    for (int t = 0; t < RECYCLE_THREADS; t++) {
        workers[t].p = p;
        workers[t].id = t;
        workers[t].failures = 0;
        for (int i = 0; i < RECYCLE_MESSAGES; i++)
            atomic_init(&workers[t].calls[i], 0);
        pthread_create(&threads[t], NULL, recycle_work, &workers[t]);
    }
    for (int t = 0; t < RECYCLE_THREADS; t++) {
        pthread_join(threads[t], NULL);
        CHECK(workers[t].failures == 0, "thread %d: %d failed calls", t, workers[t].failures);
    }
    CHECK(kaffe_producer_flush(p, 30000) == KAFFE_OK, "flush");
    int wrong = 0;
    for (int t = 0; t < RECYCLE_THREADS; t++)
        for (int i = 0; i < RECYCLE_MESSAGES; i++)
            if (atomic_load(&workers[t].calls[i]) != 1 && wrong++ < 5)
                CHECK(0, "thread %d message %d: %d callbacks", t, i,
                      atomic_load(&workers[t].calls[i]));
    CHECK(wrong == 0, "%d messages without exactly one callback", wrong);
    CHECK(atomic_load(&recycle_not_ok) == 0, "%d not delivered", atomic_load(&recycle_not_ok));
    kaffe_producer_destroy(p);
}

int main(void) {
    char err[256];
    mock_topic_t topics[TOPICS];
    char names[TOPICS][32];
    for (int i = 0; i < TOPICS; i++) {
        topic_name(i, names[i], sizeof names[i]);
        topics[i] = (mock_topic_t){names[i], PARTITIONS};
    }
    mc = mock_cluster_start(3, topics, TOPICS, err, sizeof err);
    if (!mc) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    bs = mock_cluster_bootstraps(mc);
    RUN_CASE(many_threads_produce_sync_batch_and_async_at_once);
    RUN_CASE(async_records_recycle_across_threads);
    mock_cluster_stop(mc);
    return check_summary("race_producer");
}
