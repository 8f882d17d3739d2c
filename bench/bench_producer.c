/* Producer throughput on the embedded cluster, against raw librdkafka in the
 * same run:
 *   raw     rd_kafka_producev loop (copy, default partitioner, DR callback
 *           served by rd_kafka_poll), then flush;
 *   async   kaffe_produce_async with a delivery callback, then flush (and
 *           again without a callback);
 *   sync x1 kaffe_produce_sync_topic from 1 thread for a fixed time;
 *   sync x8 the same from 8 threads at once;
 * and two information rows, variants of raw: DR events (not callbacks) served by a separate thread
 * that destroys them (raw_thread), or that hands them back to the producing
 * thread to destroy (raw_defer): what serving reports off the producing
 * thread costs librdkafka itself, and what kaffe's deferred freeing recovers.
 * Prints messages/s and the ratios async/raw (target >= 0.9) and
 * sync x8 / sync x1 (target >= 4). Same librdkafka settings for every
 * client (acks=all, librdkafka defaults otherwise, e.g. linger.ms=5, unless
 * BENCH_LINGER_MS is set).
 *
 * Each run writes to its own topic of PARTITIONS partitions, sized so that
 * no mock partition passes its retention (~100k messages / ~5 MB).
 *
 *   build/release/bench/bench_producer [async_messages] [sync_seconds] [rounds]
 *   BENCH_ONLY=raw,async,async_nocb (modes: raw raw_sticky async async_nocb
 *   raw_thread raw_defer sync) runs only those. */
#define _GNU_SOURCE /* pthread_setname_np */
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

#define PARTITIONS 16
#define VALUE_SIZE 100
#define ROUNDS 5

static mock_cluster_t *mc;
static int topic_seq;
static const char *linger_ms;

/* The process's CPU seconds (bench_cpu_ns). */
static double cpu_s(void) {
    return (double)bench_cpu_ns() / 1e9;
}

/* CPU microseconds per message of the last timed run. */
static double last_cpu_us;

static const char *fresh_topic(char *buf, size_t size) {
    snprintf(buf, size, "bench-%d", topic_seq++);
    if (mock_cluster_create_topic(mc, buf, PARTITIONS) != 0) {
        fprintf(stderr, "cannot create %s\n", buf);
        exit(1);
    }
    return buf;
}

/* ---- raw librdkafka ---- */

/* The raw loop a competent librdkafka user writes: producev with a copied
 * value and a per-message opaque, a delivery-report callback counting
 * failures, served by rd_kafka_poll() on the producing thread. */
static void raw_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err)
        (*(long *)m->_private)++;
}

/* How the raw loop serves its delivery reports. */
typedef enum raw_dr {
    DR_POLL,   /* DR callback, rd_kafka_poll() on the producing thread */
    DR_THREAD, /* DR events served and destroyed by a separate thread */
    DR_DEFER,  /* DR events served by a separate thread, destroyed by the
                  producing thread (the thread destroys them itself only past
                  a backlog bound or during the flush) */
} raw_dr_t;

/* A DR event waiting for the producing thread to destroy it (DR_DEFER). */
typedef struct deferred_event {
    struct deferred_event *next;
    rd_kafka_event_t *ev;
    size_t messages;
} deferred_event_t;

#define DEFER_BOUND 50000 /* messages; half of queue.buffering.max.messages */

typedef struct raw_dr_thread {
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    raw_dr_t mode;
    long failed;                          /* the thread's own count */
    atomic_bool stop;                     /* release by the producer, acquire here */
    atomic_bool direct;                   /* seq_cst: Dekker with the stack push */
    _Atomic(deferred_event_t *) deferred; /* push: the thread; take-all: either */
    atomic_size_t backlog;                /* messages in deferred (relaxed) */
} raw_dr_thread_t;

static void destroy_chain(raw_dr_thread_t *t, deferred_event_t *d) {
    size_t n = 0;
    while (d) {
        deferred_event_t *next = d->next;
        n += d->messages;
        rd_kafka_event_destroy(d->ev);
        free(d);
        d = next;
    }
    atomic_fetch_sub_explicit(&t->backlog, n, memory_order_relaxed);
}

static void drain_deferred(raw_dr_thread_t *t) {
    if (atomic_load_explicit(&t->deferred, memory_order_relaxed))
        destroy_chain(t, atomic_exchange(&t->deferred, NULL));
}

static void *raw_dr_main(void *arg) {
    raw_dr_thread_t *t = arg;
    pthread_setname_np(pthread_self(), "raw-dr");
    while (!atomic_load_explicit(&t->stop, memory_order_acquire)) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(t->queue, 100);
        if (!ev)
            continue;
        const rd_kafka_message_t *m;
        size_t n = 0;
        while ((m = rd_kafka_event_message_next(ev)) != NULL) {
            n++;
            if (m->err)
                t->failed++;
        }
        deferred_event_t *d = t->mode == DR_DEFER ? malloc(sizeof *d) : NULL;
        if (!d || atomic_load_explicit(&t->backlog, memory_order_relaxed) + n > DEFER_BOUND) {
            free(d);
            rd_kafka_event_destroy(ev);
            continue;
        }
        *d = (deferred_event_t){atomic_load(&t->deferred), ev, n};
        atomic_fetch_add_explicit(&t->backlog, n, memory_order_relaxed);
        while (!atomic_compare_exchange_weak(&t->deferred, &d->next, d))
            ;
        if (atomic_load(&t->direct))
            drain_deferred(t);
    }
    return NULL;
}

/* sticky: librdkafka's default partitioner (null keys stick to one partition
 * for sticky.partitioning.linger.ms); otherwise explicit round-robin
 * partitions, the sequence kaffe's default strategy produces. */
static double run_raw(const char *topic, long count, const char *value, bool sticky, raw_dr_t dr) {
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", mock_cluster_bootstraps(mc), err, sizeof err);
    rd_kafka_conf_set(conf, "acks", "all", err, sizeof err);
    if (linger_ms)
        rd_kafka_conf_set(conf, "linger.ms", linger_ms, err, sizeof err);
    long failed = 0;
    if (dr == DR_POLL)
        rd_kafka_conf_set_dr_msg_cb(conf, raw_dr);
    else
        rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    static raw_dr_thread_t t;
    pthread_t tid;
    if (dr != DR_POLL) {
        t.rk = rk;
        t.queue = rd_kafka_queue_get_main(rk);
        t.mode = dr;
        t.failed = 0;
        atomic_init(&t.stop, false);
        atomic_init(&t.direct, false);
        atomic_init(&t.deferred, NULL);
        atomic_init(&t.backlog, 0);
        pthread_create(&tid, NULL, raw_dr_main, &t);
    }
    int block = dr == DR_POLL ? 0 : RD_KAFKA_MSG_F_BLOCK;
    /* Warm up: metadata and connections, as kaffe's first call does. */
    rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_VALUE((void *)value, VALUE_SIZE),
                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&failed),
                      RD_KAFKA_V_END);
    atomic_store(&t.direct, true);
    drain_deferred(&t);
    rd_kafka_flush(rk, 10000);
    atomic_store(&t.direct, false);
    double start = clock_now_s(), cpu_start = cpu_s();
    for (long i = 0; i < count; i++) {
        int32_t partition = sticky ? RD_KAFKA_PARTITION_UA : (int32_t)(i % PARTITIONS);
        rd_kafka_resp_err_t e;
        if (dr == DR_DEFER)
            drain_deferred(&t);
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
                                      RD_KAFKA_V_VALUE((void *)value, VALUE_SIZE),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY | block),
                                      RD_KAFKA_V_OPAQUE(&failed), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 1);
        if (e)
            failed++;
        if (dr == DR_POLL)
            rd_kafka_poll(rk, 0);
    }
    if (dr != DR_POLL) {
        atomic_store(&t.direct, true);
        drain_deferred(&t);
    }
    rd_kafka_flush(rk, 60000);
    double took = clock_now_s() - start;
    last_cpu_us = (cpu_s() - cpu_start) * 1e6 / (double)count;
    if (dr != DR_POLL) {
        atomic_store_explicit(&t.stop, true, memory_order_release);
        rd_kafka_queue_yield(t.queue);
        pthread_join(tid, NULL);
        rd_kafka_queue_destroy(t.queue);
        failed += t.failed;
    }
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
    double start = clock_now_s(), cpu_start = cpu_s();
    for (long i = 0; i < count; i++)
        if (kaffe_produce_async(p, &m, with_callback ? count_failures : NULL, &failed) != KAFFE_OK)
            atomic_fetch_add(&failed, 1);
    kaffe_producer_flush(p, 60000);
    double took = clock_now_s() - start;
    last_cpu_us = (cpu_s() - cpu_start) * 1e6 / (double)count;
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
    while (clock_now_s() < a->until) {
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
    double start = clock_now_s();
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
    double took = clock_now_s() - start;
    if (failed)
        fprintf(stderr, "sync x%d: %ld failed\n", threads, failed);
    kaffe_producer_destroy(p);
    return (double)done / took;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median, min and max of v[0..n) (v is sorted in place). */
typedef struct stats {
    double median, min, max;
} stats_t;

static stats_t stats_of(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, by_value);
    double m = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return (stats_t){m, v[0], v[n - 1]};
}

enum { RAW, RAW_STICKY, ASYNC, ASYNC_NOCB, RAW_THREAD, RAW_DEFER, MODES };
static const char *const mode_names[MODES] = {
    "raw producev, round-robin partitions", "raw producev, default (sticky) part.",
    "kaffe_produce_async, callback",        "kaffe_produce_async, no callback",
    "raw, DR events on a thread",           "raw, DR thread, producer destroys",
};
static const char *const mode_keys[MODES] = {"raw",        "raw_sticky", "async",
                                             "async_nocb", "raw_thread", "raw_defer"};

/* Whether key is one of the comma-separated words of list. */
static bool listed(const char *list, const char *key) {
    size_t n = strlen(key);
    for (const char *s = list; (s = strstr(s, key)) != NULL; s += n)
        if ((s == list || s[-1] == ',') && (s[n] == ',' || s[n] == '\0'))
            return true;
    return false;
}

static double run_mode(int mode, long count, const char *value) {
    char topic[64];
    fresh_topic(topic, sizeof topic);
    switch (mode) {
        case RAW:
            return run_raw(topic, count, value, false, DR_POLL);
        case RAW_STICKY:
            return run_raw(topic, count, value, true, DR_POLL);
        case RAW_THREAD:
            return run_raw(topic, count, value, false, DR_THREAD);
        case RAW_DEFER:
            return run_raw(topic, count, value, false, DR_DEFER);
        case ASYNC:
            return run_async(topic, count, value, true);
        default:
            return run_async(topic, count, value, false);
    }
}

static void print_stats(const char *name, double *v, int n, const char *unit) {
    stats_t s = stats_of(v, n);
    printf("%-38s %12.2f %s  (range %.2f .. %.2f)\n", name, s.median, unit, s.min, s.max);
}

int main(int argc, char **argv) {
    /* 400k messages over 16 partitions: 25k x ~170 B per partition stays
     * under the mock's retention. */
    long count = argc > 1 ? atol(argv[1]) : 400000;
    double seconds = argc > 2 ? atof(argv[2]) : 3.0;
    int rounds = argc > 3 ? atoi(argv[3]) : ROUNDS;
    if (rounds < 1 || rounds > 64)
        rounds = ROUNDS;
    linger_ms = getenv("BENCH_LINGER_MS");
    /* BENCH_ONLY=raw,async,... runs only those modes (for profiling). */
    const char *only = getenv("BENCH_ONLY");
    bool enabled[MODES];
    for (int m = 0; m < MODES; m++)
        enabled[m] = !only || listed(only, mode_keys[m]);
    char err[256];
    mc = mock_cluster_start(3, NULL, 0, err, sizeof err);
    if (!mc) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    char value[VALUE_SIZE];
    memset(value, 'x', sizeof value);
    char topic[64];

    /* Rounds alternate the order (forwards, then backwards) so that drift
     * and the other tenants of the machine hit every mode alike; ratios are
     * taken per round (paired), then their median. */
    double rate[MODES][64], cpu[MODES][64];
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < MODES; k++) {
            int m = r % 2 ? MODES - 1 - k : k;
            if (enabled[m]) {
                rate[m][r] = run_mode(m, count, value);
                cpu[m][r] = last_cpu_us;
            }
        }
    double ratio_cb[64], ratio_nocb[64], ratio_sticky[64], cpu_cb[64], cpu_nocb[64];
    double ratio_thread[64], ratio_defer[64];
    for (int r = 0; r < rounds; r++) {
        cpu_cb[r] = cpu[RAW][r] / cpu[ASYNC][r];
        cpu_nocb[r] = cpu[RAW][r] / cpu[ASYNC_NOCB][r];
        ratio_cb[r] = rate[ASYNC][r] / rate[RAW][r];
        ratio_nocb[r] = rate[ASYNC_NOCB][r] / rate[RAW][r];
        ratio_sticky[r] = rate[RAW_STICKY][r] / rate[RAW][r];
        ratio_thread[r] = rate[RAW_THREAD][r] / rate[RAW][r];
        ratio_defer[r] = rate[RAW_DEFER][r] / rate[RAW][r];
    }
    bool all = !only;
    double sync1 = 0, sync8 = 0;
    if (all || listed(only, "sync")) {
        sync1 = run_sync(fresh_topic(topic, sizeof topic), 1, seconds, value);
        sync8 = run_sync(fresh_topic(topic, sizeof topic), 8, seconds, value);
    }

    printf("bench_producer: embedded cluster (3 brokers), %d partitions/topic, %d-byte values, "
           "acks=all, linger.ms=%s, %ld msgs per run, %d alternated rounds\n",
           PARTITIONS, VALUE_SIZE, linger_ms ? linger_ms : "librdkafka default (5)", count, rounds);
    printf("%-38s %12s\n", "client (median of rounds)", "M msgs/s");
    for (int m = 0; m < MODES; m++)
        if (enabled[m]) {
            double v[64];
            for (int r = 0; r < rounds; r++)
                v[r] = rate[m][r] / 1e6;
            print_stats(mode_names[m], v, rounds, "");
        }
    printf("%-38s %12s\n", "CPU per message, whole process", "us/msg");
    for (int m = 0; m < MODES; m++)
        if (enabled[m])
            print_stats(mode_names[m], cpu[m], rounds, "");
    if (sync1 > 0) {
        printf("%-38s %12.0f msgs/s (%.1f s)\n", "kaffe_produce_sync, 1 thread", sync1, seconds);
        printf("%-38s %12.0f msgs/s (%.1f s)\n", "kaffe_produce_sync, 8 threads", sync8, seconds);
    }
    printf("ratios per round (median, range), against raw round-robin:\n");
    if (enabled[ASYNC] && enabled[RAW])
        print_stats("  async callback / raw", ratio_cb, rounds, "   (target >= 0.90)");
    if (enabled[ASYNC_NOCB] && enabled[RAW])
        print_stats("  async no callback / raw", ratio_nocb, rounds, "");
    if (enabled[ASYNC] && enabled[RAW])
        print_stats("  CPU/msg raw / async callback", cpu_cb, rounds,
                    "   (same measure as a throughput ratio)");
    if (enabled[ASYNC_NOCB] && enabled[RAW])
        print_stats("  CPU/msg raw / async no callback", cpu_nocb, rounds, "");
    if (enabled[RAW_STICKY] && enabled[RAW])
        print_stats("  raw sticky / raw round-robin", ratio_sticky, rounds,
                    "   (information: librdkafka's default partitioner)");
    if (enabled[RAW_THREAD] && enabled[RAW])
        print_stats("  raw DR thread / raw", ratio_thread, rounds,
                    "   (information: reports freed on another thread)");
    if (enabled[RAW_DEFER] && enabled[RAW])
        print_stats("  raw DR thread, producer destroys / raw", ratio_defer, rounds,
                    "   (information)");
    if (sync1 > 0)
        printf("ratio sync x8 / sync x1 = %.2f  (target >= 4.00)\n", sync8 / sync1);
    mock_cluster_stop(mc);
    return 0;
}
