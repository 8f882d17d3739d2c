/* Stats under ThreadSanitizer: one thread takes consumer and producer
 * snapshots (and renders them) in a loop while the consumer handles
 * messages on its workers, an application thread acks them (async), and
 * partitions are assigned, paused, resumed, committed and finally revoked
 * by the stop, which runs while the stats thread keeps going. Needs the
 * embedded cluster (real TCP on 127.0.0.1). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kaffe/kaffe.h>

#include "consumer/internal.h" /* consumer_test_fatal_error */
#include "mock/mock_cluster.h"
#include "support/check.h"
#include "support/plain_client.h"
#include "support/tsan_c11_threads.h" /* librdkafka threads, seen by TSan */
#include "common/clock.h"

enum { N = 3000, PARTITIONS = 3 };

typedef struct shared {
    pthread_mutex_t lock;
    kaffe_message_t **queue;
    size_t head, tail;
    atomic_long handled, acked, snapshots;
    atomic_int done, stats_done;
    kaffe_consumer_t *c;
    kaffe_producer_t *p;
} shared_t;

static int handler(kaffe_message_t *m, void *opaque) {
    shared_t *s = opaque;
    pthread_mutex_lock(&s->lock);
    s->queue[s->tail++] = m;
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_add(&s->handled, 1);
    return KAFFE_OK;
}

static void *acker_main(void *arg) {
    shared_t *s = arg;
    while (!atomic_load(&s->done)) {
        kaffe_message_t *m = NULL;
        pthread_mutex_lock(&s->lock);
        if (s->head < s->tail)
            m = s->queue[s->head++];
        pthread_mutex_unlock(&s->lock);
        if (!m) {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (kaffe_consumer_ack(s->c, m) == KAFFE_OK)
            atomic_fetch_add(&s->acked, 1);
    }
    return NULL;
}

static void *stats_main(void *arg) {
    shared_t *s = arg;
    kaffe_consumer_stats_t cs = {0};
    static char text[1 << 16];
    while (!atomic_load(&s->stats_done)) {
        CHECK(kaffe_consumer_stats(s->c, &cs) == KAFFE_OK, "stats");
        for (size_t i = 0; i < cs.partition_count; i++) {
            CHECK(cs.partitions[i].in_flight >= 0, "negative in flight");
            CHECK(cs.partitions[i].partition >= 0 && cs.partitions[i].partition < PARTITIONS,
                  "partition %d", (int)cs.partitions[i].partition);
        }
        size_t len = kaffe_consumer_stats_prometheus(&cs, text, sizeof text);
        CHECK(len > 0 && len < sizeof text, "render %zu", len);
        kaffe_producer_stats_t ps;
        CHECK(kaffe_producer_stats(s->p, &ps) == KAFFE_OK, "producer stats");
        atomic_fetch_add(&s->snapshots, 1);
        struct timespec ts = {0, 100000}; /* ~10 kHz: leaves the 2 cores to the consumer */
        nanosleep(&ts, NULL);
    }
    kaffe_consumer_stats_free(&cs);
    return NULL;
}

static void *producer_main(void *arg) {
    shared_t *s = arg;
    for (int i = 0; i < 200; i++)
        kaffe_produce_sync(s->p, "k", 1, "v", 1);
    return NULL;
}

static void stats_while_consuming(void) {
    char err[512];
    mock_topic_t topics[] = {{"rs", PARTITIONS}, {"rsp", 1}};
    mock_cluster_t *mc = mock_cluster_start(1, topics, 2, err, sizeof err);
    CHECK(mc != NULL, "%s", err);
    if (!mc)
        return;
    const char *b = mock_cluster_bootstraps(mc);
    for (int p = 0; p < PARTITIONS; p++)
        CHECK(plain_produce(b, "rs", p, N / PARTITIONS, 0, 7) == N / PARTITIONS, "produce");

    shared_t s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.lock, NULL);
    s.queue = calloc(N * 2, sizeof *s.queue);
    kaffe_conf_t *conf = kaffe_conf_new();
    const char *kv[][2] = {{"endpoints", b},
                           {"topics", "rs"},
                           {"consumer_group", "g-race-stats"},
                           {"start_with_earliest_message", "true"},
                           {"async_message_ack", "true"},
                           {"workers", "4"},
                           {"ordering", "key"},
                           {"max_in_flight_messages", "64"}, /* pauses and resumes */
                           {"commit_interval_ms", "20"},
                           {"rdkafka.fetch.wait.max.ms", "10"},
                           {"log_level", "error"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (kaffe_conf_set(conf, kv[i][0], kv[i][1], err, sizeof err) != KAFFE_OK)
            CHECK(0, "%s", err);
    kaffe_conf_set_message_handler(conf, handler, &s);
    s.c = kaffe_consumer_new(conf, err, sizeof err);
    CHECK(s.c != NULL, "%s", err);
    kaffe_conf_t *pconf = kaffe_conf_new();
    kaffe_conf_set(pconf, "endpoints", b, err, sizeof err);
    kaffe_conf_set(pconf, "topics", "rsp", err, sizeof err);
    s.p = kaffe_producer_new(pconf, err, sizeof err);
    CHECK(s.p != NULL, "%s", err);
    if (!s.c || !s.p)
        return;

    pthread_t stats, acker, producer;
    pthread_create(&stats, NULL, stats_main, &s); /* before start: no partitions yet */
    pthread_create(&acker, NULL, acker_main, &s);
    pthread_create(&producer, NULL, producer_main, &s);
    CHECK(kaffe_consumer_start(s.c) == KAFFE_OK, "start");
    int64_t deadline = clock_now_ms() + 120000;
    while (atomic_load(&s.acked) < N && clock_now_ms() < deadline) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    CHECK(atomic_load(&s.acked) == N, "acked %ld of %d", atomic_load(&s.acked), N);
    /* Stop (revoke, remove partitions) while snapshots keep coming. */
    CHECK(kaffe_consumer_stop(s.c) == KAFFE_OK, "stop");
    atomic_store(&s.done, 1);
    atomic_store(&s.stats_done, 1);
    pthread_join(stats, NULL);
    pthread_join(acker, NULL);
    pthread_join(producer, NULL);
    CHECK(atomic_load(&s.snapshots) > 10, "only %ld snapshots", atomic_load(&s.snapshots));
    kaffe_consumer_stats_t cs = {0};
    CHECK(kaffe_consumer_stats(s.c, &cs) == KAFFE_OK, "final stats");
    CHECK(cs.messages_acked == N, "stats acked %llu", (unsigned long long)cs.messages_acked);
    CHECK(cs.messages_handled == N, "stats handled %llu", (unsigned long long)cs.messages_handled);
    kaffe_consumer_stats_free(&cs);
    kaffe_producer_stats_t ps;
    kaffe_producer_stats(s.p, &ps);
    CHECK(ps.messages_produced == 200 && ps.messages_in_flight == 0, "producer %llu %lld",
          (unsigned long long)ps.messages_produced, (long long)ps.messages_in_flight);
    kaffe_consumer_destroy(s.c);
    kaffe_producer_destroy(s.p);
    free(s.queue);
    pthread_mutex_destroy(&s.lock);
    mock_cluster_stop(mc);
}

/* Snapshots while fatal errors make the consumer replace its librdkafka
 * client (the old one is destroyed once no message uses it): a snapshot
 * never reads through a destroyed handle. */
typedef struct restarts {
    kaffe_consumer_t *c;
    atomic_long handled, snapshots;
    atomic_int done;
} restarts_t;

static int count(kaffe_message_t *m, void *opaque) {
    (void)m;
    atomic_fetch_add(&((restarts_t *)opaque)->handled, 1);
    return KAFFE_OK;
}

static void *snapshots_main(void *arg) {
    restarts_t *r = arg;
    kaffe_consumer_stats_t cs = {0};
    while (!atomic_load(&r->done)) {
        CHECK(kaffe_consumer_stats(r->c, &cs) == KAFFE_OK, "stats");
        atomic_fetch_add(&r->snapshots, 1);
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    kaffe_consumer_stats_free(&cs);
    return NULL;
}

static void stats_across_client_restarts(void) {
    char err[512];
    mock_topic_t topics[] = {{"rr", 2}};
    mock_cluster_t *mc = mock_cluster_start(1, topics, 1, err, sizeof err);
    CHECK(mc != NULL, "%s", err);
    if (!mc)
        return;
    const char *b = mock_cluster_bootstraps(mc);
    restarts_t r;
    memset(&r, 0, sizeof r);
    kaffe_conf_t *conf = kaffe_conf_new();
    const char *kv[][2] = {{"endpoints", b},
                           {"topics", "rr"},
                           {"consumer_group", "g-race-restarts"},
                           {"start_with_earliest_message", "true"},
                           {"restart_max", "5"},
                           {"drain_timeout_ms", "200"},
                           {"rdkafka.session.timeout.ms", "3000"},
                           {"rdkafka.heartbeat.interval.ms", "200"},
                           {"log_level", "error"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (kaffe_conf_set(conf, kv[i][0], kv[i][1], err, sizeof err) != KAFFE_OK)
            CHECK(0, "%s", err);
    kaffe_conf_set_message_handler(conf, count, &r);
    kaffe_conf_set_log_cb(conf, NULL, NULL);
    r.c = kaffe_consumer_new(conf, err, sizeof err);
    CHECK(r.c != NULL, "%s", err);
    if (!r.c) {
        mock_cluster_stop(mc);
        return;
    }
    pthread_t stats;
    pthread_create(&stats, NULL, snapshots_main, &r);
    CHECK(kaffe_consumer_start(r.c) == KAFFE_OK, "start");
    kaffe_failure_counters_t k = {0};
    for (int i = 0; i < 3; i++) {
        CHECK(plain_produce(b, "rr", RD_KAFKA_PARTITION_UA, 100, i * 100, 4) == 100, "produce");
        consumer_test_fatal_error(r.c, RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID);
        int64_t deadline = clock_now_ms() + 30000;
        do {
            kaffe_consumer_failure_counters(r.c, &k);
            clock_sleep_ms(20);
        } while (k.restarts < (uint64_t)i + 1 && clock_now_ms() < deadline);
        CHECK(k.restarts == (uint64_t)i + 1, "restarts %llu", (unsigned long long)k.restarts);
    }
    CHECK(kaffe_consumer_stop(r.c) == KAFFE_OK, "stop");
    atomic_store(&r.done, 1);
    pthread_join(stats, NULL);
    CHECK(atomic_load(&r.snapshots) > 10, "only %ld snapshots", atomic_load(&r.snapshots));
    kaffe_consumer_destroy(r.c);
    mock_cluster_stop(mc);
}

int main(void) {
    RUN_CASE(stats_while_consuming);
    RUN_CASE(stats_across_client_restarts);
    return check_summary("race_stats");
}
