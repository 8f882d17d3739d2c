/* bench_stats — what kaffe_consumer_stats costs, on the embedded cluster.
 * Prints figures; asserts nothing.
 *
 * 1. Cost of one call under full load: a thread calls kaffe_consumer_stats
 *    (and renders the Prometheus text) every 1 ms while the consumer
 *    drains a backlog over P partitions with a no-op handler: per-call
 *    latency percentiles, stats call and rendering separately.
 * 2. Throughput impact: the same consumer without any stats caller
 *    (baseline), with a 1 Hz caller (what a scraper does), and with the
 *    1 kHz caller of (1); alternated, best of 3 each, steady-state rate
 *    (10% to 90% of the messages handled, as bench_consumer).
 *
 *   bench_stats [partitions [messages-per-partition]]   (default 64 x 15000) */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kaffe/kaffe.h>

#include "metrics/histogram.h"
#include "mock/mock_cluster.h"
#include "common/clock.h"
#include "support/bench_support.h"

typedef struct run {
    long total, lo, hi;
    atomic_long handled;
    atomic_llong lo_ns, hi_ns;
    kaffe_consumer_t *c;
    int64_t period_ns; /* stats caller period; 0: no caller */
    atomic_int stop;
    histogram_t stats_ns, render_ns;
    size_t partitions_seen, text_bytes;
} run_t;

static int handler(kaffe_message_t *m, void *opaque) {
    (void)m;
    run_t *r = opaque;
    long n = atomic_fetch_add_explicit(&r->handled, 1, memory_order_relaxed) + 1;
    if (n == r->lo)
        atomic_store_explicit(&r->lo_ns, (int64_t)clock_now_ns(), memory_order_relaxed);
    else if (n == r->hi)
        atomic_store_explicit(&r->hi_ns, (int64_t)clock_now_ns(), memory_order_relaxed);
    return KAFFE_OK;
}

static void *caller_main(void *arg) {
    run_t *r = arg;
    kaffe_consumer_stats_t s = {0};
    static char text[1 << 20];
    int64_t next = (int64_t)clock_now_ns();
    while (!atomic_load(&r->stop)) {
        int64_t t0 = (int64_t)clock_now_ns();
        if (kaffe_consumer_stats(r->c, &s) != KAFFE_OK)
            bench_die("stats");
        int64_t t1 = (int64_t)clock_now_ns();
        size_t len = kaffe_consumer_stats_prometheus(&s, text, sizeof text);
        int64_t t2 = (int64_t)clock_now_ns();
        /* Only samples taken while messages flow count as "under load". */
        long h = atomic_load(&r->handled);
        if (h > r->lo && h < r->hi) {
            histogram_record(&r->stats_ns, (uint64_t)(t1 - t0));
            histogram_record(&r->render_ns, (uint64_t)(t2 - t1));
            r->partitions_seen = s.partition_count;
            r->text_bytes = len;
        }
        next += r->period_ns;
        int64_t wait = next - (int64_t)clock_now_ns();
        if (wait > 0) {
            struct timespec ts = {wait / 1000000000, wait % 1000000000};
            nanosleep(&ts, NULL);
        }
    }
    kaffe_consumer_stats_free(&s);
    return NULL;
}

static double consume(const char *b, const char *topic, const char *group, long total,
                      int64_t period_ns, run_t *r) {
    memset(r, 0, sizeof *r);
    r->total = total;
    r->lo = total / 10;
    r->hi = total - total / 10;
    r->period_ns = period_ns;
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[512];
    const char *kv[][2] = {{"endpoints", b},
                           {"topics", topic},
                           {"consumer_group", group},
                           {"start_with_earliest_message", "true"},
                           {"workers", "2"},
                           {"rdkafka.log_level", "2"},
                           {"rdkafka.queued.min.messages", "1000000"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (kaffe_conf_set(conf, kv[i][0], kv[i][1], err, sizeof err) != KAFFE_OK)
            bench_die(err);
    kaffe_conf_set_message_handler(conf, handler, r);
    r->c = kaffe_consumer_new(conf, err, sizeof err);
    if (!r->c)
        bench_die(err);
    pthread_t caller;
    if (period_ns)
        pthread_create(&caller, NULL, caller_main, r);
    if (kaffe_consumer_start(r->c) != KAFFE_OK)
        bench_die("start");
    int64_t deadline = (int64_t)clock_now_ns() + (int64_t)300 * 1000000000;
    while (atomic_load(&r->handled) < total && (int64_t)clock_now_ns() < deadline) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&r->stop, 1);
    if (period_ns)
        pthread_join(caller, NULL);
    if (kaffe_consumer_stop(r->c) != KAFFE_OK)
        bench_die("stop");
    kaffe_consumer_destroy(r->c);
    if (atomic_load(&r->handled) < total)
        bench_die("not everything handled");
    double seconds = (double)(atomic_load(&r->hi_ns) - atomic_load(&r->lo_ns)) / 1e9;
    return (double)(r->hi - r->lo) / seconds;
}

static void print_latency(const char *what, const histogram_t *h) {
    printf("  %-34s n=%-6llu p50 %7.1f us  p99 %7.1f us  max %7.1f us\n", what,
           (unsigned long long)histogram_count(h), histogram_percentile(h, 50) / 1e3,
           histogram_percentile(h, 99) / 1e3, histogram_max(h) / 1e3);
}

int main(int argc, char **argv) {
    int partitions = argc > 1 ? atoi(argv[1]) : 64;
    long per_partition = argc > 2 ? atol(argv[2]) : 15000;
    if (partitions < 1 || partitions > 1024 || per_partition < 1000 || per_partition > 90000)
        bench_die("usage: bench_stats [partitions 1..1024 [messages-per-partition 1000..90000]]");
    char err[256];
    mock_topic_t topics[] = {{"stats", partitions}};
    mock_cluster_t *mc = mock_cluster_start(1, topics, 1, err, sizeof err);
    if (!mc)
        bench_die(err);
    const char *b = mock_cluster_bootstraps(mc);
    long total = per_partition * partitions;
    printf("bench_stats: embedded cluster, %d partitions x %ld messages (32-byte values), "
           "no-op handler, 2 workers\n",
           partitions, per_partition);
    bench_produce_spread(b, "stats", partitions, total, 0);

    static run_t r;
    double base = 0, hz1 = 0, khz = 0;
    histogram_t stats_ns, render_ns;
    histogram_reset(&stats_ns);
    histogram_reset(&render_ns);
    size_t seen = 0, bytes = 0;
    for (int round = 0; round < 3; round++) {
        char group[48];
        snprintf(group, sizeof group, "bench-stats-none-%d", round);
        double x = consume(b, "stats", group, total, 0, &r);
        base = x > base ? x : base;
        snprintf(group, sizeof group, "bench-stats-1hz-%d", round);
        x = consume(b, "stats", group, total, 1000000000, &r);
        hz1 = x > hz1 ? x : hz1;
        snprintf(group, sizeof group, "bench-stats-1khz-%d", round);
        x = consume(b, "stats", group, total, 1000000, &r);
        khz = x > khz ? x : khz;
        histogram_merge(&stats_ns, &r.stats_ns);
        histogram_merge(&render_ns, &r.render_ns);
        seen = r.partitions_seen;
        bytes = r.text_bytes;
    }
    printf("cost of one call under full load (1 kHz caller, %zu partitions in the snapshot, "
           "%zu bytes of text)\n",
           seen, bytes);
    print_latency("kaffe_consumer_stats", &stats_ns);
    print_latency("kaffe_consumer_stats_prometheus", &render_ns);
    printf("consumer throughput (steady state, best of 3)\n");
    printf("  no stats caller                 %10.0f msg/s\n", base);
    printf("  1 Hz stats + render             %10.0f msg/s   %.3fx\n", hz1, hz1 / base);
    printf("  1 kHz stats + render            %10.0f msg/s   %.3fx\n", khz, khz / base);
    mock_cluster_stop(mc);
    return 0;
}
