/* bench_peer — one contender of scripts/bench-peers.sh on a real broker, or
 * the data set they all read. Prints one JSON line: the messages handled and
 * the rate between the first and the last one (group join and start-up
 * excluded, as for the JVM peers). CPU time and peak RSS are measured by the
 * script around the process.
 *
 *   bench_peer produce BROKERS TOPIC PARTITIONS MESSAGES VALUE_BYTES KEYS
 *   bench_peer raw     BROKERS TOPIC GROUP MESSAGES
 *   bench_peer kaffe   BROKERS TOPIC GROUP MESSAGES ORDERING WORKERS SLEEP_MS ACK_DELAY_MS
 *                      [MAX_IN_FLIGHT]
 *
 * raw: a librdkafka poll loop (fetch.wait.max.ms 100 like kaffe's default,
 * one synchronous commit at the end): the baseline. kaffe: the public API,
 * sync mode with a handler that sleeps SLEEP_MS (0: no-op), or, with
 * ACK_DELAY_MS >= 0, async mode where application threads ack each message
 * after a random 0..ACK_DELAY_MS ms (0: at once); -1: sync. MAX_IN_FLIGHT:
 * max_in_flight_messages (default 10000 sync, 60000 async). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kaffe/kaffe.h>
#include <librdkafka/rdkafka.h>

#include "common/clock.h"
#include "common/prng.h"
#include "harness/bench.h"
#include "support/bench_support.h"

#define ACKERS 4
#define ACKER_CAP (1 << 20)
#define DEADLINE_MS (10 * 60 * 1000)

static atomic_long handled;
static atomic_ullong first_ns, last_ns;

static void record(void) {
    uint64_t now = clock_now_ns();
    if (atomic_fetch_add_explicit(&handled, 1, memory_order_relaxed) == 0)
        atomic_store_explicit(&first_ns, now, memory_order_relaxed);
    atomic_store_explicit(&last_ns, now, memory_order_relaxed);
}

static void print_result(const char *mode) {
    long n = atomic_load(&handled);
    double seconds = (double)(atomic_load(&last_ns) - atomic_load(&first_ns)) / 1e9;
    printf("{\"mode\":\"%s\",\"handled\":%ld,\"seconds\":%.6f,\"rate\":%.1f}\n", mode, n, seconds,
           n > 1 && seconds > 0 ? (double)(n - 1) / seconds : 0.0);
}

/* --- raw librdkafka ---------------------------------------------------------- */

static int run_raw(const char *brokers, const char *topic, const char *group, long messages) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *props[][2] = {{"bootstrap.servers", brokers},    {"group.id", group},
                              {"auto.offset.reset", "earliest"}, {"enable.auto.commit", "false"},
                              {"fetch.wait.max.ms", "100"},      {"log_level", "3"}};
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++)
        if (rd_kafka_conf_set(conf, props[i][0], props[i][1], err, sizeof err) != RD_KAFKA_CONF_OK)
            bench_die(err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk)
        bench_die(err);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    int64_t deadline = clock_now_ms() + DEADLINE_MS;
    while (atomic_load(&handled) < messages && clock_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err)
            record();
        rd_kafka_message_destroy(m);
    }
    rd_kafka_commit(rk, NULL, 0);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    print_result("raw");
    return atomic_load(&handled) >= messages ? 0 : 1;
}

/* --- kaffe ------------------------------------------------------------------ */

/* Async: messages waiting for their ack time, one min-heap per acker. */
typedef struct pending {
    int64_t due_ns;
    kaffe_message_t *m;
} pending_t;

typedef struct acker {
    pthread_mutex_t lock;
    pending_t *heap;
    size_t n;
    pthread_t thread;
} acker_t;

typedef struct run {
    kaffe_consumer_t *c;
    long messages, sleep_ms;
    int ack_delay_ms; /* -1: sync */
    acker_t ackers[ACKERS];
    atomic_int done;
} run_t;

static void heap_push(acker_t *a, pending_t p) {
    size_t i = a->n++;
    while (i > 0 && a->heap[(i - 1) / 2].due_ns > p.due_ns) {
        a->heap[i] = a->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    a->heap[i] = p;
}

static pending_t heap_pop(acker_t *a) {
    pending_t top = a->heap[0], last = a->heap[--a->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, s = i;
        const pending_t *at = &last;
        if (l < a->n && a->heap[l].due_ns < at->due_ns)
            s = l, at = &a->heap[l];
        if (r < a->n && a->heap[r].due_ns < at->due_ns)
            s = r;
        if (s == i)
            break;
        a->heap[i] = a->heap[s];
        i = s;
    }
    if (a->n > 0)
        a->heap[i] = last;
    return top;
}

/* The acker threads: ack what is due, sleep a little otherwise. */
typedef struct acker_arg {
    run_t *run;
    acker_t *acker;
} acker_arg_t;

static void *ack_due(void *arg) {
    acker_arg_t *aa = arg;
    acker_t *a = aa->acker;
    while (!atomic_load_explicit(&aa->run->done, memory_order_relaxed)) {
        int64_t now = (int64_t)clock_now_ns();
        int acked = 0;
        pthread_mutex_lock(&a->lock);
        while (a->n > 0 && a->heap[0].due_ns <= now) {
            pending_t p = heap_pop(a);
            pthread_mutex_unlock(&a->lock);
            if (kaffe_consumer_ack(aa->run->c, p.m) == KAFFE_OK)
                record();
            acked++;
            pthread_mutex_lock(&a->lock);
        }
        pthread_mutex_unlock(&a->lock);
        if (!acked)
            clock_sleep_ms(1);
    }
    return NULL;
}

static int handle(kaffe_message_t *m, void *opaque) {
    run_t *r = opaque;
    if (r->sleep_ms > 0)
        clock_sleep_ms(r->sleep_ms);
    if (r->ack_delay_ms < 0) {
        record();
        return KAFFE_OK;
    }
    uint64_t draw = ((uint64_t)prng_thread_u32() << 32) | prng_thread_u32();
    acker_t *a = &r->ackers[draw % ACKERS];
    int64_t delay_ns =
        r->ack_delay_ms > 0 ? (int64_t)((draw >> 8) % ((uint64_t)r->ack_delay_ms * 1000000u)) : 0;
    pthread_mutex_lock(&a->lock);
    if (a->n < ACKER_CAP)
        heap_push(a, (pending_t){(int64_t)clock_now_ns() + delay_ns, m});
    pthread_mutex_unlock(&a->lock);
    return KAFFE_OK;
}

static int run_kaffe(const char *brokers, const char *topic, const char *group, long messages,
                     const char *ordering, const char *workers, long sleep_ms, int ack_delay_ms,
                     long max_in_flight) {
    static run_t r;
    r.messages = messages;
    r.sleep_ms = sleep_ms;
    r.ack_delay_ms = ack_delay_ms;
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[512];
    char inflight[32];
    if (max_in_flight <= 0)
        max_in_flight = ack_delay_ms >= 0 ? 60000 : 10000;
    snprintf(inflight, sizeof inflight, "%ld", max_in_flight);
    const char *settings[][2] = {{"endpoints", brokers},
                                 {"topics", topic},
                                 {"consumer_group", group},
                                 {"start_with_earliest_message", "true"},
                                 {"ordering", ordering},
                                 {"workers", workers},
                                 {"async_message_ack", ack_delay_ms >= 0 ? "true" : "false"},
                                 {"max_in_flight_messages", inflight},
                                 {"rdkafka.log_level", "3"}};
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (kaffe_conf_set(conf, settings[i][0], settings[i][1], err, sizeof err) != KAFFE_OK)
            bench_die(err);
    kaffe_conf_set_message_handler(conf, handle, &r);
    r.c = kaffe_consumer_new(conf, err, sizeof err);
    if (!r.c)
        bench_die(err);
    acker_arg_t args[ACKERS];
    for (int i = 0; ack_delay_ms >= 0 && i < ACKERS; i++) {
        pthread_mutex_init(&r.ackers[i].lock, NULL);
        r.ackers[i].heap = malloc(ACKER_CAP * sizeof *r.ackers[i].heap);
        if (!r.ackers[i].heap)
            bench_die("out of memory");
        args[i] = (acker_arg_t){&r, &r.ackers[i]};
        pthread_create(&r.ackers[i].thread, NULL, ack_due, &args[i]);
    }
    if (kaffe_consumer_start(r.c) != KAFFE_OK)
        bench_die("kaffe_consumer_start failed");
    int64_t deadline = clock_now_ms() + DEADLINE_MS;
    while (atomic_load(&handled) < messages && clock_now_ms() < deadline &&
           kaffe_consumer_wait(r.c, 10) == KAFFE_ERR_TIMED_OUT) {
    }
    kaffe_status_t st = kaffe_consumer_stop(r.c);
    atomic_store(&r.done, 1);
    for (int i = 0; ack_delay_ms >= 0 && i < ACKERS; i++) {
        pthread_join(r.ackers[i].thread, NULL);
        free(r.ackers[i].heap);
    }
    kaffe_consumer_destroy(r.c);
    print_result(ack_delay_ms >= 0 ? "kaffe-async" : "kaffe-sync");
    return st == KAFFE_OK && atomic_load(&handled) >= messages ? 0 : 1;
}

/* --- the data set ------------------------------------------------------------ */

static int run_produce(const char *brokers, const char *topic, int partitions, long messages,
                       int value_bytes, int keys) {
    char err[512];
    if (bench_create_topic(NULL, brokers, topic, partitions, err, sizeof err) != 0)
        bench_die(err);
    long sent = bench_produce(brokers, NULL, 0, topic, partitions, keys, value_bytes, messages, 0,
                              err, sizeof err);
    if (sent != messages)
        bench_die(err);
    printf("{\"mode\":\"produce\",\"topic\":\"%s\",\"messages\":%ld}\n", topic, sent);
    return 0;
}

static _Noreturn void usage(void) {
    fprintf(stderr, "usage: bench_peer produce BROKERS TOPIC PARTITIONS MESSAGES VALUE_BYTES KEYS\n"
                    "       bench_peer raw BROKERS TOPIC GROUP MESSAGES\n"
                    "       bench_peer kaffe BROKERS TOPIC GROUP MESSAGES ORDERING WORKERS "
                    "SLEEP_MS ACK_DELAY_MS [MAX_IN_FLIGHT]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc == 8 && strcmp(argv[1], "produce") == 0)
        return run_produce(argv[2], argv[3], atoi(argv[4]), atol(argv[5]), atoi(argv[6]),
                           atoi(argv[7]));
    if (argc == 6 && strcmp(argv[1], "raw") == 0)
        return run_raw(argv[2], argv[3], argv[4], atol(argv[5]));
    if ((argc == 10 || argc == 11) && strcmp(argv[1], "kaffe") == 0)
        return run_kaffe(argv[2], argv[3], argv[4], atol(argv[5]), argv[6], argv[7], atol(argv[8]),
                         atoi(argv[9]), argc == 11 ? atol(argv[10]) : 0);
    usage();
}
