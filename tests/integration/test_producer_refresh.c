/* The producer's out-of-range refresh is rate-limited per topic: when many
 * threads at once name a partition beyond the cached count, the cluster is
 * asked once, not once per thread (include/kaffe/producer.h: at most once a
 * second per topic). Metadata requests are counted from librdkafka's own
 * debug lines ("Request metadata for ...: application requested", one per
 * rd_kafka_metadata() call the producer makes), routed through kaffe's log
 * callback. The embedded cluster answers each request after 200 ms, so the
 * threads surely overlap. (Growth itself needs a real broker:
 * tests/broker/test_broker_producer_growth.c.) */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <kaffe/kaffe.h>

#include "mock/mock_cluster.h"
#include "support/mock_suite.h"

#define THREADS 8

static atomic_int metadata_requests;

/* librdkafka's threads: counts the producer's metadata requests. */
static void count_metadata_requests(int level, const char *facility, const char *message,
                                    void *opaque) {
    (void)level, (void)facility, (void)opaque;
    if (strstr(message, "Request metadata") && strstr(message, "application requested"))
        atomic_fetch_add_explicit(&metadata_requests, 1, memory_order_relaxed);
}

typedef struct herd {
    kaffe_producer_t *p;
    pthread_barrier_t *start;
    kaffe_status_t status;
} herd_t;

static void *herd_main(void *arg) {
    herd_t *h = arg;
    pthread_barrier_wait(h->start);
    h->status = kaffe_produce_sync_partition(h->p, "refresh", 5, "k", 1, "v", 1);
    return NULL;
}

Test(producer_refresh, concurrent_out_of_range_partitions_ask_the_cluster_once) {
    char err[512];
    mock_topic_t topic = {"refresh", 2};
    mock_cluster_t *mc = test_mock_cluster_start(1, &topic, 1);
    kaffe_conf_t *conf = kaffe_conf_new();
    cr_assert_eq(kaffe_conf_set(conf, "endpoints", mock_cluster_bootstraps(mc), err, sizeof err),
                 KAFFE_OK, "%s", err);
    cr_assert_eq(kaffe_conf_set(conf, "topics", "refresh", err, sizeof err), KAFFE_OK);
    /* No periodic refresh during the test. */
    cr_assert_eq(kaffe_conf_set(conf, "partition_refresh_ms", "86400000", err, sizeof err),
                 KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.debug", "metadata", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "log_level", "debug", err, sizeof err), KAFFE_OK);
    kaffe_conf_set_log_cb(conf, count_metadata_requests, NULL);
    kaffe_producer_t *p = kaffe_producer_new(conf, err, sizeof err);
    cr_assert_not_null(p, "%s", err);

    /* First use: the topic's metadata is read (one request). */
    cr_assert_eq(kaffe_produce_sync_partition(p, "refresh", 1, "k", 1, "v", 1), KAFFE_OK);
    cr_assert_geq(atomic_load(&metadata_requests), 1, "the debug lines are not counted");

    /* The rate limit is time: wait until a second has passed since that
     * read, so that the next out-of-range partition may ask again. */
    struct timespec second = {1, 100 * 1000000L};
    nanosleep(&second, NULL);
    rd_kafka_mock_broker_set_rtt(mock_cluster_handle(mc), 1, 200);
    atomic_store(&metadata_requests, 0);

    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    herd_t herd[THREADS];
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        herd[i] = (herd_t){p, &start, KAFFE_OK};
        cr_assert_eq(pthread_create(&threads[i], NULL, herd_main, &herd[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        cr_expect_eq(herd[i].status, KAFFE_ERR_UNKNOWN_PARTITION, "thread %d: %s", i,
                     kaffe_err_name(herd[i].status));
    }
    pthread_barrier_destroy(&start);
    cr_expect_eq(atomic_load(&metadata_requests), 1,
                 "%d threads naming partition 5 of 2 made %d metadata requests", THREADS,
                 atomic_load(&metadata_requests));

    rd_kafka_mock_broker_set_rtt(mock_cluster_handle(mc), 1, 0);
    kaffe_producer_destroy(p);
    mock_cluster_stop(mc);
}
