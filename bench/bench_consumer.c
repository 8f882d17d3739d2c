/* bench_consumer — the consumer end to end on the embedded cluster, against
 * baselines measured in the same run. Prints figures; asserts nothing.
 *
 * 1. Throughput: a raw librdkafka poll loop (rd_kafka_consumer_poll, destroy,
 *    nothing else; fetch.wait.max.ms 100 like kaffe's default) against kaffe
 *    with a no-op handler (sync mode, partition order, 2 workers, commits
 *    every 5 s as by default), over the same pre-produced messages,
 *    alternated, 3 rounds: each round's ratio is printed, and the best of
 *    each side is compared. Target: kaffe >= 0.9x raw. In the same rounds,
 *    kaffe with a no-op batch handler (kaffe_conf_set_batch_handler,
 *    defaults: up to 500 messages of one partition per call). Target:
 *    >= 0.95x raw. Beside each rate: the process's CPU time per message
 *    over the same window (the embedded cluster's threads included, for
 *    every contender alike).
 * 2. Parallelism: a handler that sleeps 1 ms, one partition: sync with 1
 *    worker (Kaffe's model) against key order (1000 distinct keys) and
 *    unordered with 64 workers. Target: >= 50x with 64 workers.
 *
 * Rates are measured between the 10% and the 90% message handled (the
 * steady state): group joins (about 3 s on the mock cluster), the first
 * fetches and the tail do not count, for the baseline and kaffe alike. With
 * 24 partitions x 40000 messages that window is 768000 messages (about
 * 0.4 s at 2M msg/s; with 8 partitions it was 0.13 s, and single runs swung
 * from 0.56x to 1.27x).
 *
 *   bench_consumer [messages-per-partition]   (default 40000, 24 partitions) */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kaffe/kaffe.h>

#include "mock/mock_cluster.h"
#include "common/clock.h"
#include "support/bench_support.h"

#define PARTITIONS 24
#define SLOW_KEYS 1000
#define QUEUED_MIN "1000000" /* see raw_rate */

/* --- raw librdkafka ------------------------------------------------------ */

/* A rate and the CPU time per message over its window. */
typedef struct measured {
    double rate;        /* msg/s */
    double cpu_us_each; /* process CPU us per message */
} measured_t;

static measured_t raw_rate(const char *bootstraps, const char *topic, const char *group,
                           long total) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", group, err, sizeof err);
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof err);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "2", err, sizeof err);
    /* The same fetch settings as kaffe's below: fetch.wait.max.ms is kaffe's
     * default (see kaffe_consumer_new); queued.min.messages is raised for
     * both because with librdkafka's 100000 a fast loop hits the prefetch
     * threshold and the partition's next fetch backs off for about a
     * second, which then dominates whatever is measured. */
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "100", err, sizeof err);
    rd_kafka_conf_set(conf, "queued.min.messages", QUEUED_MIN, err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk)
        bench_die(err);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    long n = 0, lo = total / 10, hi = total - total / 10;
    double first = 0, last = 0;
    int64_t cpu_first = 0, cpu_last = 0;
    double deadline = clock_now_s() + 120;
    while (n < total && clock_now_s() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err) {
            n++;
            if (n == lo) {
                first = clock_now_s();
                cpu_first = bench_cpu_ns();
            } else if (n == hi) {
                last = clock_now_s();
                cpu_last = bench_cpu_ns();
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    if (n < total)
        bench_die("raw: not everything consumed");
    return (measured_t){.rate = (double)(hi - lo) / (last - first),
                        .cpu_us_each = (double)(cpu_last - cpu_first) / 1e3 / (double)(hi - lo)};
}

/* --- kaffe --------------------------------------------------------------- */

typedef struct counter {
    _Alignas(64) atomic_long handled;
    _Alignas(64) atomic_long lo_ns, hi_ns; /* when the 10% and 90% marks were passed */
    atomic_long lo_cpu_ns, hi_cpu_ns;      /* the process's CPU time then */
    long lo, hi;
    int sleep_us;
} counter_t;

/* Counts n handled messages; the calls that pass the 10% and 90% marks
 * note the time. */
static void count_handled(counter_t *c, long n) {
    long after = atomic_fetch_add_explicit(&c->handled, n, memory_order_relaxed) + n;
    long before = after - n;
    if (before < c->lo && after >= c->lo) {
        atomic_store_explicit(&c->lo_ns, (int64_t)clock_now_ns(), memory_order_relaxed);
        atomic_store_explicit(&c->lo_cpu_ns, bench_cpu_ns(), memory_order_relaxed);
    }
    if (before < c->hi && after >= c->hi) {
        atomic_store_explicit(&c->hi_ns, (int64_t)clock_now_ns(), memory_order_relaxed);
        atomic_store_explicit(&c->hi_cpu_ns, bench_cpu_ns(), memory_order_relaxed);
    }
}

static int counting_handler(kaffe_message_t *m, void *opaque) {
    (void)m;
    counter_t *c = opaque;
    if (c->sleep_us) {
        struct timespec ts = {0, c->sleep_us * 1000L};
        nanosleep(&ts, NULL);
    }
    count_handled(c, 1);
    return KAFFE_OK;
}

/* The no-op batch handler: counts the batch's messages. */
static int counting_batch_handler(kaffe_batch_t *b, void *opaque) {
    count_handled(opaque, (long)kaffe_batch_count(b));
    return KAFFE_OK;
}

/* Messages per second through kaffe, in the steady state (batch: a no-op
 * batch handler instead of the message handler). */
static measured_t kaffe_measure(const char *bootstraps, const char *topic, const char *group,
                                long total, int sleep_us, const char *workers, const char *ordering,
                                bool batch) {
    counter_t counter = {.sleep_us = sleep_us, .lo = total / 10, .hi = total - total / 10};
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[512];
    const char *kv[][2] = {{"endpoints", bootstraps},  {"topics", topic},
                           {"consumer_group", group},  {"start_with_earliest_message", "true"},
                           {"workers", workers},       {"ordering", ordering},
                           {"rdkafka.log_level", "2"}, {"rdkafka.queued.min.messages", QUEUED_MIN}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (kaffe_conf_set(conf, kv[i][0], kv[i][1], err, sizeof err) != KAFFE_OK)
            bench_die(err);
    if (batch)
        kaffe_conf_set_batch_handler(conf, counting_batch_handler, &counter);
    else
        kaffe_conf_set_message_handler(conf, counting_handler, &counter);
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    if (!c)
        bench_die(err);
    if (kaffe_consumer_start(c) != KAFFE_OK)
        bench_die("start");
    double deadline = clock_now_s() + 300;
    while (atomic_load(&counter.handled) < total && clock_now_s() < deadline) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    long n = atomic_load(&counter.handled);
    if (kaffe_consumer_stop(c) != KAFFE_OK)
        bench_die("stop");
    kaffe_consumer_destroy(c);
    if (n < total)
        bench_die("kaffe: not everything handled");
    double seconds = (double)(atomic_load(&counter.hi_ns) - atomic_load(&counter.lo_ns)) / 1e9;
    double window = (double)(counter.hi - counter.lo);
    double cpu_us =
        (double)(atomic_load(&counter.hi_cpu_ns) - atomic_load(&counter.lo_cpu_ns)) / 1e3;
    return (measured_t){.rate = window / seconds, .cpu_us_each = cpu_us / window};
}

static double kaffe_rate(const char *bootstraps, const char *topic, const char *group, long total,
                         int sleep_us, const char *workers, const char *ordering) {
    return kaffe_measure(bootstraps, topic, group, total, sleep_us, workers, ordering, false).rate;
}

int main(int argc, char **argv) {
    long per_partition = argc > 1 ? atol(argv[1]) : 40000;
    if (per_partition < 1000 || per_partition > 90000)
        bench_die("messages per partition: 1000..90000 (the mock keeps ~100k per partition)");
    char err[256];
    mock_topic_t topics[] = {
        {"bench", PARTITIONS}, {"slow-sync", 1}, {"slow-key", 1}, {"slow-unordered", 1}};
    mock_cluster_t *mc = mock_cluster_start(1, topics, 4, err, sizeof err);
    if (!mc)
        bench_die(err);
    const char *b = mock_cluster_bootstraps(mc);

    long total = per_partition * PARTITIONS;
    printf("bench_consumer: embedded cluster, %d partitions x %ld messages (32-byte values)\n",
           PARTITIONS, per_partition);
    bench_produce_spread(b, "bench", PARTITIONS, total, 1000);
    /* Alternated, best of 3 each: the first consumer after producing sees a
     * slower mock cluster, whichever it is. */
    measured_t raw = {0}, kaffe = {0}, batch = {0};
    for (int round = 0; round < 3; round++) {
        char group[32];
        snprintf(group, sizeof group, "bench-raw-%d", round);
        measured_t r = raw_rate(b, "bench", group, total);
        snprintf(group, sizeof group, "bench-kaffe-%d", round);
        measured_t k = kaffe_measure(b, "bench", group, total, 0, "2", "partition", false);
        snprintf(group, sizeof group, "bench-batch-%d", round);
        measured_t bt = kaffe_measure(b, "bench", group, total, 0, "2", "partition", true);
        printf("  round %d: raw %9.0f msg/s (%.2f us CPU/msg), kaffe %9.0f msg/s (%.2f us), %.2fx; "
               "batch %9.0f msg/s (%.2f us), %.2fx\n",
               round + 1, r.rate, r.cpu_us_each, k.rate, k.cpu_us_each, k.rate / r.rate, bt.rate,
               bt.cpu_us_each, bt.rate / r.rate);
        raw = r.rate > raw.rate ? r : raw;
        kaffe = k.rate > kaffe.rate ? k : kaffe;
        batch = bt.rate > batch.rate ? bt : batch;
    }
    printf("  raw librdkafka poll loop          %10.0f msg/s  %.2f us CPU/msg\n", raw.rate,
           raw.cpu_us_each);
    printf("  kaffe, no-op handler (2 workers)  %10.0f msg/s  %.2f us CPU/msg  %.2fx raw (target "
           ">= 0.90x)\n",
           kaffe.rate, kaffe.cpu_us_each, kaffe.rate / raw.rate);
    printf("  kaffe, no-op batch handler        %10.0f msg/s  %.2f us CPU/msg  %.2fx raw (target "
           ">= 0.95x)\n",
           batch.rate, batch.cpu_us_each, batch.rate / raw.rate);

    /* 1 ms handler, one partition. */
    long sync_n = 500, par_n = 20000;
    bench_produce_spread(b, "slow-sync", 1, sync_n, SLOW_KEYS);
    bench_produce_spread(b, "slow-key", 1, par_n, SLOW_KEYS);
    bench_produce_spread(b, "slow-unordered", 1, par_n, SLOW_KEYS);
    double one = kaffe_rate(b, "slow-sync", "bench-slow-1", sync_n, 1000, "1", "partition");
    double key = kaffe_rate(b, "slow-key", "bench-slow-key", par_n, 1000, "64", "key");
    double unord =
        kaffe_rate(b, "slow-unordered", "bench-slow-unordered", par_n, 1000, "64", "unordered");
    printf("handler sleeping 1 ms, 1 partition, %d distinct keys\n", SLOW_KEYS);
    printf("  sync, 1 worker (Kaffe's model)  %10.0f msg/s\n", one);
    printf("  key order, 64 workers           %10.0f msg/s   %.1fx (target >= 50x)\n", key,
           key / one);
    printf("  unordered, 64 workers           %10.0f msg/s   %.1fx (target >= 50x)\n", unord,
           unord / one);
    mock_cluster_stop(mc);
    return 0;
}
