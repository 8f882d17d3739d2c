/* bench_soak — a long run of the consumer with async acks while a producer
 * keeps writing, printing resident memory (VmRSS) and rate at intervals.
 * Shows that memory stays flat after warm-up and the rate steady. Prints
 * figures; asserts nothing (it exits 1 only if messages went missing).
 *
 *   bench_soak [--messages N] [--partitions P] [--report-every N]
 *              (defaults: 10000000, 8, N/20)
 *
 * Setup: embedded cluster (1 broker), one topic of P partitions. A producer
 * thread (plain librdkafka) writes 32-byte values round robin to the
 * partitions and keeps at most LAG_MAX messages ahead of the consumer: a
 * mock partition keeps only ~100k messages / 5 MB, so the consumer must
 * never fall further behind than that. The kaffe consumer runs async,
 * unordered, 4 workers; the handler hands each message to an acker thread
 * that acks them in batches in reverse order (out of order, above the
 * watermark), commits every 5 s (the default). Every offset handled is
 * marked in a bitmap allocated and touched up front (so it does not show as
 * growth); at the end every produced offset must be marked.
 *
 * RSS is read from /proc/self/status; the process also holds the embedded
 * cluster, whose partition logs grow until each holds its ~100k messages /
 * 5 MB, which is the bulk of the warm-up. "start" is the first report at or
 * after 10% of the run (warm-up), "middle" at half, "end" at the last
 * report. The rate column is the rate over the last interval; the summary's
 * min/max are over the intervals after warm-up. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kaffe/kaffe.h>

#include "mock/mock_cluster.h"
#include "common/clock.h"
#include "support/bench_support.h"

#define LAG_MAX 100000L
#define MAX_PARTITIONS 64
#define ACK_BATCH 256

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static const char *bootstraps;
static const char *topic = "soak";
static int partitions = 8;
static long target;

static atomic_long produced;
static atomic_long handled;
static atomic_int producer_failed;

/* Bitmap of handled offsets per partition (each partition gets
 * target / partitions + 1 offsets). Set by workers (atomic or). */
static _Atomic uint64_t *seen[MAX_PARTITIONS];
static long per_partition;

/* --- producer ------------------------------------------------------------- */

static void *producer_main(void *arg) {
    (void)arg;
    rd_kafka_t *rk = bench_raw_producer(bootstraps);
    char value[33];
    memset(value, 'v', 32);
    value[32] = '\0';
    long i = 0;
    while (i < target) {
        /* relaxed: a rate limit; nothing is published through it. */
        if (i - atomic_load_explicit(&handled, memory_order_relaxed) >= LAG_MAX) {
            rd_kafka_poll(rk, 1);
            continue;
        }
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION((int32_t)(i % partitions)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE(value, 32), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 1);
            continue;
        }
        if (e)
            bench_die(rd_kafka_err2str(e));
        i++;
        atomic_store_explicit(&produced, i, memory_order_relaxed);
        if ((i & 1023) == 0)
            rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        atomic_store(&producer_failed, 1);
    rd_kafka_destroy(rk);
    return NULL;
}

/* --- consumer: handler and acker ------------------------------------------ */

static kaffe_consumer_t *consumer;
static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_cond = PTHREAD_COND_INITIALIZER;
static kaffe_message_t **queue; /* fixed capacity: all in flight fits */
static size_t queue_count, queue_cap;
static int acker_stop;

static int handler(kaffe_message_t *m, void *opaque) {
    (void)opaque;
    int32_t p = kaffe_message_partition(m);
    int64_t o = kaffe_message_offset(m);
    if (p >= 0 && p < partitions && o >= 0 && o < per_partition)
        atomic_fetch_or_explicit(&seen[p][o / 64], (uint64_t)1 << (o % 64), memory_order_relaxed);
    pthread_mutex_lock(&queue_lock);
    if (queue_count == queue_cap)
        bench_die("ack queue overflow"); /* cannot happen: in-flight is bounded */
    queue[queue_count++] = m;
    if (queue_count >= ACK_BATCH)
        pthread_cond_signal(&queue_cond);
    pthread_mutex_unlock(&queue_lock);
    atomic_fetch_add_explicit(&handled, 1, memory_order_relaxed);
    return KAFFE_OK;
}

/* Takes up to ACK_BATCH messages (or what is there after 2 ms) and acks them
 * newest first: out of order. */
static void *acker_main(void *arg) {
    (void)arg;
    kaffe_message_t *batch[ACK_BATCH];
    for (;;) {
        pthread_mutex_lock(&queue_lock);
        if (queue_count < ACK_BATCH && !acker_stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 2000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&queue_cond, &queue_lock, &ts);
        }
        size_t n = queue_count < ACK_BATCH ? queue_count : ACK_BATCH;
        queue_count -= n;
        memcpy(batch, queue + queue_count, n * sizeof *batch);
        int stop = acker_stop && queue_count == 0;
        pthread_mutex_unlock(&queue_lock);
        for (size_t i = n; i-- > 0;)
            kaffe_consumer_ack(consumer, batch[i]);
        if (stop && n == 0)
            return NULL;
    }
}

/* --- main ------------------------------------------------------------------ */

int main(int argc, char **argv) {
    target = 10000000;
    long report_every = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--messages") == 0 && i + 1 < argc)
            target = atol(argv[++i]);
        else if (strcmp(argv[i], "--partitions") == 0 && i + 1 < argc)
            partitions = atoi(argv[++i]);
        else if (strcmp(argv[i], "--report-every") == 0 && i + 1 < argc)
            report_every = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--messages N] [--partitions P] [--report-every N]\n",
                    argv[0]);
            return 2;
        }
    }
    if (target < 1000 || partitions < 1 || partitions > MAX_PARTITIONS)
        bench_die("--messages >= 1000, 1 <= --partitions <= 64");
    if (report_every <= 0)
        report_every = target / 20;
    per_partition = target / partitions + 1;
    for (int p = 0; p < partitions; p++) {
        size_t words = (size_t)per_partition / 64 + 1;
        seen[p] = calloc(words, sizeof *seen[p]);
        if (!seen[p])
            bench_die("out of memory");
        memset((void *)seen[p], 0, words * sizeof *seen[p]); /* touch: resident from the start */
    }
    int64_t max_in_flight = 10000; /* the default, per partition */
    queue_cap = (size_t)(max_in_flight * partitions) + 1024;
    queue = malloc(queue_cap * sizeof *queue);
    if (!queue)
        bench_die("out of memory");

    char err[512];
    mock_topic_t topics[] = {{topic, partitions}};
    mock_cluster_t *mc = mock_cluster_start(1, topics, 1, err, sizeof err);
    if (!mc)
        bench_die(err);
    bootstraps = mock_cluster_bootstraps(mc);

    kaffe_conf_t *conf = kaffe_conf_new();
    const char *settings[][2] = {
        {"endpoints", bootstraps},
        {"topics", topic},
        {"consumer_group", "soak"},
        {"start_with_earliest_message", "true"},
        {"async_message_ack", "true"},
        {"ordering", "unordered"},
        {"workers", "4"},
        {"rdkafka.log_level", "2"},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (kaffe_conf_set(conf, settings[i][0], settings[i][1], err, sizeof err) != KAFFE_OK)
            bench_die(err);
    kaffe_conf_set_message_handler(conf, handler, NULL);
    consumer = kaffe_consumer_new(conf, err, sizeof err);
    if (!consumer)
        bench_die(err);
    pthread_t producer, acker;
    if (pthread_create(&acker, NULL, acker_main, NULL) != 0 ||
        pthread_create(&producer, NULL, producer_main, NULL) != 0)
        bench_die("pthread_create");
    if (kaffe_consumer_start(consumer) != KAFFE_OK)
        bench_die("kaffe_consumer_start");

    printf("bench_soak: %ld messages, %d partitions, async acks (out of order), producing while "
           "consuming (lag <= %ld)\n",
           target, partitions, LAG_MAX);
    printf("%12s %10s %12s %10s\n", "handled", "seconds", "rate msg/s", "VmRSS kB");
    fflush(stdout);
    double t0 = clock_now_s(), last_t = t0;
    long last_n = 0, next = report_every;
    long rss_start = -1, rss_middle = -1, rss_end = -1, rss_max = 0;
    double rate_min = 0, rate_max = 0;
    int reports = 0;
    double deadline = t0 + 3600;
    for (;;) {
        long n = atomic_load_explicit(&handled, memory_order_relaxed);
        if (n >= next || n >= target) {
            double t = clock_now_s();
            double rate = (double)(n - last_n) / (t - last_t);
            long rss = rss_kb();
            printf("%12ld %10.1f %12.0f %10ld\n", n, t - t0, rate, rss);
            fflush(stdout);
            if (rss_start >= 0) {
                /* Steady-state rate: the intervals after warm-up. */
                if (rate_max == 0 || rate < rate_min)
                    rate_min = rate;
                if (rate > rate_max)
                    rate_max = rate;
            }
            if (rss_start < 0 && n >= target / 10)
                rss_start = rss;
            if (rss_middle < 0 && n >= target / 2)
                rss_middle = rss;
            if (rss > rss_max)
                rss_max = rss;
            rss_end = rss;
            reports++;
            last_t = t;
            last_n = n;
            while (next <= n)
                next += report_every;
            if (n >= target)
                break;
        }
        if (clock_now_s() > deadline)
            bench_die("timed out");
        sleep_ms(20);
    }
    double elapsed = clock_now_s() - t0;
    pthread_join(producer, NULL);
    kaffe_status_t st = kaffe_consumer_stop(consumer);
    pthread_mutex_lock(&queue_lock);
    acker_stop = 1;
    pthread_cond_signal(&queue_cond);
    pthread_mutex_unlock(&queue_lock);
    pthread_join(acker, NULL);
    kaffe_consumer_destroy(consumer);
    mock_cluster_stop(mc);

    long missing = 0;
    for (int p = 0; p < partitions; p++) {
        long count = target / partitions + (p < target % partitions);
        for (long o = 0; o < count; o++)
            missing +=
                !((atomic_load_explicit(&seen[p][o / 64], memory_order_relaxed) >> (o % 64)) & 1);
        free((void *)seen[p]);
    }
    free(queue);
    printf("\nsummary: %ld messages in %.1f s (%.0f msg/s overall); stop: %s\n", target, elapsed,
           (double)target / elapsed, kaffe_err_name(st));
    printf("VmRSS kB: start (after warm-up, >= %ld msgs) %ld, middle %ld, end %ld, max %ld; "
           "end/start %.3f\n",
           target / 10, rss_start, rss_middle, rss_end, rss_max,
           rss_start > 0 ? (double)rss_end / (double)rss_start : 0.0);
    printf("rate per interval after warm-up: min %.0f, max %.0f msg/s (min/max %.2f)\n", rate_min,
           rate_max, rate_max > 0 ? rate_min / rate_max : 0.0);
    printf("offsets never handled: %ld%s\n", missing,
           atomic_load(&producer_failed) ? " (producer flush failed)" : "");
    return missing == 0 && !atomic_load(&producer_failed) ? 0 : 1;
}
