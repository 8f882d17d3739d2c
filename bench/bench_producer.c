/* Producer throughput on the embedded cluster, against raw librdkafka in the
 * same run:
 *   raw     rd_kafka_producev loop (copy, default partitioner, DR callback
 *           served by rd_kafka_poll), then flush;
 *   async   kaffe_produce_async with a delivery callback, then flush (and
 *           again without a callback);
 *   sync x1 kaffe_produce_sync_topic from 1 thread for a fixed time;
 *   sync x8 the same from 8 threads at once.
 * Prints messages/s and the ratios async/raw (target >= 0.9) and
 * sync x8 / sync x1 (target >= 4). Same librdkafka settings for every
 * client (acks=all, librdkafka defaults otherwise, e.g. linger.ms=5, unless
 * BENCH_LINGER_MS is set).
 *
 * Each run writes to its own topic of PARTITIONS partitions, sized so that
 * no mock partition passes its retention (~100k messages / ~5 MB).
 *
 *   build/release/bench/bench_producer [async_messages] [sync_seconds] */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kaffe/kaffe.h>

#include "mock/mock_cluster.h"

#define PARTITIONS 16
#define VALUE_SIZE 100
#define ROUNDS 5

static mock_cluster_t *mc;
static int topic_seq;
static const char *linger_ms;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *fresh_topic(char *buf, size_t size) {
    snprintf(buf, size, "bench-%d", topic_seq++);
    if (mock_cluster_create_topic(mc, buf, PARTITIONS) != 0) {
        fprintf(stderr, "cannot create %s\n", buf);
        exit(1);
    }
    return buf;
}

/* ---- raw librdkafka ---- */

static void raw_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    if (m->err)
        (*(long *)opaque)++;
}

static double run_raw(const char *topic, long count, const char *value) {
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", mock_cluster_bootstraps(mc), err, sizeof err);
    rd_kafka_conf_set(conf, "acks", "all", err, sizeof err);
    if (linger_ms)
        rd_kafka_conf_set(conf, "linger.ms", linger_ms, err, sizeof err);
    long failed = 0;
    rd_kafka_conf_set_opaque(conf, &failed);
    rd_kafka_conf_set_dr_msg_cb(conf, raw_dr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    /* Warm up: metadata and connections, as kaffe's first call does. */
    rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_VALUE((void *)value, VALUE_SIZE),
                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    rd_kafka_flush(rk, 10000);
    double start = now_s();
    for (long i = 0; i < count; i++) {
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt),
                                      RD_KAFKA_V_VALUE((void *)value, VALUE_SIZE),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 1);
        if (e)
            failed++;
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 60000);
    double took = now_s() - start;
    if (failed)
        fprintf(stderr, "raw: %ld failed\n", failed);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return (double)count / took;
}

/* ---- kaffe ---- */

static kaffe_producer_t *new_producer(const char *topic) {
    char err[512];
    kaffe_conf_t *conf = kaffe_conf_new();
    kaffe_conf_set(conf, "endpoints", mock_cluster_bootstraps(mc), err, sizeof err);
    kaffe_conf_set(conf, "topics", topic, err, sizeof err);
    if (linger_ms)
        kaffe_conf_set(conf, "rdkafka.linger.ms", linger_ms, err, sizeof err);
    kaffe_producer_t *p = kaffe_producer_new(conf, err, sizeof err);
    if (!p) {
        fprintf(stderr, "kaffe_producer_new: %s\n", err);
        exit(1);
    }
    return p;
}

static void count_failures(const kaffe_delivery_report_t *report, void *opaque) {
    if (report->status != KAFFE_OK)
        atomic_fetch_add_explicit((atomic_long *)opaque, 1, memory_order_relaxed);
}

static double run_async(const char *topic, long count, const char *value, bool with_callback) {
    kaffe_producer_t *p = new_producer(topic);
    atomic_long failed = 0;
    kaffe_produce_sync(p, NULL, 0, value, VALUE_SIZE); /* warm up */
    kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
    m.value = value;
    m.value_len = VALUE_SIZE;
    double start = now_s();
    for (long i = 0; i < count; i++)
        if (kaffe_produce_async(p, &m, with_callback ? count_failures : NULL, &failed) != KAFFE_OK)
            atomic_fetch_add(&failed, 1);
    kaffe_producer_flush(p, 60000);
    double took = now_s() - start;
    if (atomic_load(&failed))
        fprintf(stderr, "async: %ld failed\n", atomic_load(&failed));
    kaffe_producer_destroy(p);
    return (double)count / took;
}

typedef struct sync_arg {
    kaffe_producer_t *p;
    const char *topic;
    const char *value;
    double until;
    long done, failed;
} sync_arg_t;

static void *sync_worker(void *arg) {
    sync_arg_t *a = arg;
    while (now_s() < a->until) {
        if (kaffe_produce_sync_topic(a->p, a->topic, NULL, 0, a->value, VALUE_SIZE) == KAFFE_OK)
            a->done++;
        else
            a->failed++;
    }
    return NULL;
}

static double run_sync(const char *topic, int threads, double seconds, const char *value) {
    kaffe_producer_t *p = new_producer(topic);
    kaffe_produce_sync(p, NULL, 0, value, VALUE_SIZE); /* warm up */
    pthread_t tids[64];
    sync_arg_t args[64];
    double start = now_s();
    for (int t = 0; t < threads; t++) {
        args[t] = (sync_arg_t){p, topic, value, start + seconds, 0, 0};
        pthread_create(&tids[t], NULL, sync_worker, &args[t]);
    }
    long done = 0, failed = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        done += args[t].done;
        failed += args[t].failed;
    }
    double took = now_s() - start;
    if (failed)
        fprintf(stderr, "sync x%d: %ld failed\n", threads, failed);
    kaffe_producer_destroy(p);
    return (double)done / took;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, by_value);
    return v[n / 2];
}

int main(int argc, char **argv) {
    /* 400k messages over 16 partitions: 25k x ~170 B per partition stays
     * under the mock's retention. */
    long count = argc > 1 ? atol(argv[1]) : 400000;
    double seconds = argc > 2 ? atof(argv[2]) : 3.0;
    linger_ms = getenv("BENCH_LINGER_MS");
    char err[256];
    mc = mock_cluster_start(3, NULL, 0, err, sizeof err);
    if (!mc) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    char value[VALUE_SIZE];
    memset(value, 'x', sizeof value);
    char topic[64];

    double raw[ROUNDS], async[ROUNDS], async_nocb[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) { /* interleaved, so drift hits all */
        raw[r] = run_raw(fresh_topic(topic, sizeof topic), count, value);
        async[r] = run_async(fresh_topic(topic, sizeof topic), count, value, true);
        async_nocb[r] = run_async(fresh_topic(topic, sizeof topic), count, value, false);
    }
    double sync1 = run_sync(fresh_topic(topic, sizeof topic), 1, seconds, value);
    double sync8 = run_sync(fresh_topic(topic, sizeof topic), 8, seconds, value);
    double raw_m = median(raw, ROUNDS), async_m = median(async, ROUNDS),
           async_nocb_m = median(async_nocb, ROUNDS);

    printf("bench_producer: embedded cluster (3 brokers), %d partitions/topic, %d-byte values, "
           "acks=all, linger.ms=%s\n",
           PARTITIONS, VALUE_SIZE, linger_ms ? linger_ms : "librdkafka default (5)");
    printf("%-34s %14s\n", "client", "messages/s");
    printf("%-34s %14.0f   (median of %d x %ld msgs)\n", "raw librdkafka producev", raw_m, ROUNDS,
           count);
    printf("%-34s %14.0f   (median of %d x %ld msgs)\n", "kaffe_produce_async", async_m, ROUNDS,
           count);
    printf("%-34s %14.0f   (median of %d x %ld msgs)\n", "kaffe_produce_async, no callback",
           async_nocb_m, ROUNDS, count);
    printf("%-34s %14.0f   (%.1f s)\n", "kaffe_produce_sync, 1 thread", sync1, seconds);
    printf("%-34s %14.0f   (%.1f s)\n", "kaffe_produce_sync, 8 threads", sync8, seconds);
    printf("ratio async / raw           = %.2f  (target >= 0.90)\n", async_m / raw_m);
    printf("ratio async no-cb / raw     = %.2f\n", async_nocb_m / raw_m);
    printf("ratio sync x8 / sync x1     = %.2f  (target >= 4.00)\n", sync8 / sync1);
    mock_cluster_stop(mc);
    return 0;
}
