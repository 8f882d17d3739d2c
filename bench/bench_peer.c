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
 * max_in_flight_messages (default 10000 sync, 60000 async). With SLEEP_MS > 0
 * the workers sleep with a 1 us timer slack, and the JSON line adds the mean
 * of their actual sleeps (handler_sleep_us). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include <kaffe/kaffe.h>
#include <librdkafka/rdkafka.h>

#include "common/clock.h"
#include "common/prng.h"
#include "harness/bench.h"
#include "support/bench_support.h"

#define ACKERS 4
#define DEADLINE_MS (10 * 60 * 1000)

static atomic_long handled;
static atomic_ullong first_ns, last_ns;
static atomic_ullong slept_ns, sleeps; /* the sleeping handler's actual sleeps */

static void record(void) {
    uint64_t now = clock_now_ns();
    if (atomic_fetch_add_explicit(&handled, 1, memory_order_relaxed) == 0)
        atomic_store_explicit(&first_ns, now, memory_order_relaxed);
    atomic_store_explicit(&last_ns, now, memory_order_relaxed);
}

static void print_result(const char *mode) {
    long n = atomic_load(&handled);
    double seconds = (double)(atomic_load(&last_ns) - atomic_load(&first_ns)) / 1e9;
    unsigned long long count = atomic_load(&sleeps);
    printf("{\"mode\":\"%s\",\"handled\":%ld,\"seconds\":%.6f,\"rate\":%.1f,"
           "\"handler_sleep_us\":%.1f}\n",
           mode, n, seconds, n > 1 && seconds > 0 ? (double)(n - 1) / seconds : 0.0,
           count ? (double)atomic_load(&slept_ns) / (double)count / 1e3 : 0.0);
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

/* Async: each handler thread hands its messages to an acker thread through
 * a ring of its own (single producer, single consumer: no lock, no
 * allocation per message); the acker acks them at once (ACK_DELAY_MS 0) or
 * keeps them in a min-heap of its own until their random due time. */
typedef struct pending {
    int64_t due_ns;
    kaffe_message_t *m;
} pending_t;

#define RING_CAP (1u << 14)
#define MAX_RINGS 1024

typedef struct ring {
    _Alignas(64) atomic_size_t head; /* the handler thread's: next slot it fills */
    _Alignas(64) atomic_size_t tail; /* the acker's: next slot it empties */
    pending_t slots[RING_CAP];
} ring_t;

typedef struct acker {
    pending_t *heap; /* the acker thread's only */
    size_t n, cap;
    pthread_t thread;
} acker_t;

typedef struct run {
    kaffe_consumer_t *c;
    long messages, sleep_ms;
    int ack_delay_ms; /* -1: sync */
    acker_t ackers[ACKERS];
    _Atomic(ring_t *) rings[MAX_RINGS]; /* ring i is emptied by acker i % ACKERS */
    atomic_uint ring_count;
    atomic_int done;
} run_t;

static _Thread_local ring_t *own_ring;

static void heap_push(acker_t *a, pending_t p) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 4096;
        a->heap = realloc(a->heap, a->cap * sizeof *a->heap);
        if (!a->heap)
            bench_die("out of memory");
    }
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

static void ack_one(run_t *r, kaffe_message_t *m) {
    if (kaffe_consumer_ack(r->c, m) == KAFFE_OK)
        record();
}

/* The acker threads: empty their rings (acking at once, or into the heap),
 * ack what is due; when there was nothing, sleep until the next due ack
 * (1 ms at most). */
typedef struct acker_arg {
    run_t *run;
    unsigned index;
} acker_arg_t;

static void *ack_due(void *arg) {
    acker_arg_t *aa = arg;
    run_t *r = aa->run;
    acker_t *a = &r->ackers[aa->index];
    while (!atomic_load_explicit(&r->done, memory_order_relaxed)) {
        size_t work = 0;
        unsigned rings = atomic_load_explicit(&r->ring_count, memory_order_acquire);
        for (unsigned i = aa->index; i < rings && i < MAX_RINGS; i += ACKERS) {
            ring_t *ring = atomic_load_explicit(&r->rings[i], memory_order_acquire);
            if (!ring)
                continue; /* its thread is still setting it up */
            size_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
            size_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
            for (; tail != head; tail++, work++) {
                pending_t p = ring->slots[tail % RING_CAP];
                if (r->ack_delay_ms == 0)
                    ack_one(r, p.m);
                else
                    heap_push(a, p);
            }
            atomic_store_explicit(&ring->tail, tail, memory_order_release);
        }
        int64_t now = (int64_t)clock_now_ns();
        for (; a->n > 0 && a->heap[0].due_ns <= now; work++)
            ack_one(r, heap_pop(a).m);
        if (!work) {
            int64_t until = now + 1000000; /* 1 ms, or the next due ack */
            clock_sleep_until_ns(
                (uint64_t)(a->n > 0 && a->heap[0].due_ns < until ? a->heap[0].due_ns : until));
        }
    }
    return NULL;
}

/* The calling handler thread's ring, made and published on its first use. */
static ring_t *handler_ring(run_t *r) {
    if (own_ring)
        return own_ring;
    unsigned i = atomic_fetch_add_explicit(&r->ring_count, 1, memory_order_relaxed);
    if (i >= MAX_RINGS)
        bench_die("bench_peer: too many handler threads");
    own_ring = calloc(1, sizeof *own_ring);
    if (!own_ring)
        bench_die("out of memory");
    atomic_store_explicit(&r->rings[i], own_ring, memory_order_release);
    return own_ring;
}

static int handle(kaffe_message_t *m, void *opaque) {
    run_t *r = opaque;
    if (r->sleep_ms > 0) {
        uint64_t start = clock_now_ns();
        clock_sleep_ms(r->sleep_ms);
        atomic_fetch_add_explicit(&slept_ns, clock_now_ns() - start, memory_order_relaxed);
        atomic_fetch_add_explicit(&sleeps, 1, memory_order_relaxed);
    }
    if (r->ack_delay_ms < 0) {
        record();
        return KAFFE_OK;
    }
    int64_t delay_ns = 0;
    if (r->ack_delay_ms > 0) {
        uint64_t draw = ((uint64_t)prng_thread_u32() << 32) | prng_thread_u32();
        delay_ns = (int64_t)(draw % ((uint64_t)r->ack_delay_ms * 1000000u));
    }
    ring_t *ring = handler_ring(r);
    size_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    while (head - atomic_load_explicit(&ring->tail, memory_order_acquire) == RING_CAP)
        sched_yield(); /* full: wait for the acker */
    ring->slots[head % RING_CAP] =
        (pending_t){delay_ns ? (int64_t)clock_now_ns() + delay_ns : 0, m};
    atomic_store_explicit(&ring->head, head + 1, memory_order_release);
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
    /* A sleeping handler sleeps what it asks for, not Linux's default 50 us
     * timer slack more: the workers inherit the slack of the thread that
     * starts them. The JSON line reports the sleeps' actual mean. */
    if (sleep_ms > 0)
        prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
    r.c = kaffe_consumer_new(conf, err, sizeof err);
    if (!r.c)
        bench_die(err);
    acker_arg_t args[ACKERS];
    for (unsigned i = 0; ack_delay_ms >= 0 && i < ACKERS; i++) {
        args[i] = (acker_arg_t){&r, i};
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
