/* Race tier for the deferred destruction of delivery reports (runs under
 * ThreadSanitizer). Several threads produce async with callbacks while
 * others flush in a loop, a sync producer and a stats reader run alongside,
 * and librdkafka's queue is tiny, so produce calls keep blocking for room
 * while reports are deferred, drained by the producing threads, taken by the
 * flushers and freed by the delivery thread past the bounds. It must never
 * deadlock — a watchdog aborts the program, loudly, if the case does not
 * finish within its budget — every message must get exactly one callback,
 * with its own value, and the final flush must leave nothing in flight.
 *
 * The callbacks read each report's value, which librdkafka frees when a
 * producing thread (or a flusher) destroys the report: TSan checks that every
 * such free happens after the read (the hand-off through the deferred
 * stack). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kaffe/kaffe.h>

#include "mock/mock_cluster.h"
#include "producer/producer.h"
#include "support/check.h"
#include "support/tsan_c11_threads.h" /* librdkafka threads, seen by TSan */

#define TOPIC "race-deferred"
#define PARTITIONS 4
#define PRODUCERS 4
#define PER_PRODUCER 5000
#define FLUSHERS 2
#define SYNC_MESSAGES 40
#define WATCHDOG_S 240 /* per case; TSan runs 5-15x slower */

static mock_cluster_t *mc;

/* ---- watchdog -------------------------------------------------------------- */

static pthread_mutex_t watchdog_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watchdog_done = PTHREAD_COND_INITIALIZER;
static int watchdog_finished; /* protected by watchdog_lock */
static const char *watchdog_case;

static void *watchdog_main(void *arg) {
    (void)arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WATCHDOG_S;
    pthread_mutex_lock(&watchdog_lock);
    int rc = 0;
    while (!watchdog_finished && rc == 0)
        rc = pthread_cond_timedwait(&watchdog_done, &watchdog_lock, &until);
    if (!watchdog_finished) {
        fprintf(stderr, "race_producer_deferred: %s did not finish within %d s: deadlock\n",
                watchdog_case, WATCHDOG_S);
        abort();
    }
    pthread_mutex_unlock(&watchdog_lock);
    return NULL;
}

static pthread_t watchdog_start(const char *name) {
    watchdog_case = name;
    watchdog_finished = 0;
    pthread_t t;
    pthread_create(&t, NULL, watchdog_main, NULL);
    return t;
}

static void watchdog_stop(pthread_t t) {
    pthread_mutex_lock(&watchdog_lock);
    watchdog_finished = 1;
    pthread_cond_signal(&watchdog_done);
    pthread_mutex_unlock(&watchdog_lock);
    pthread_join(t, NULL);
}

/* ---- the workload ------------------------------------------------------------ */

typedef struct shared {
    kaffe_producer_t *p;
    int producers, per_producer;
    size_t value_len;
    atomic_bool producing_done;
    atomic_int callbacks, not_ok, wrong_value;
    atomic_bool saw_deferred; /* the stats thread saw reports waiting to be freed */
    /* calls[t][i]: callbacks for message i of producer t. */
    atomic_int calls[PRODUCERS][PER_PRODUCER];
} shared_t;

typedef struct slot {
    shared_t *s;
    int thread, index;
} slot_t;

static slot_t slots[PRODUCERS][PER_PRODUCER];

/* The value of message (t, i): "t-i-" then 'x' up to len bytes. */
static size_t value_of(int t, int i, size_t len, char *out, size_t size) {
    int n = snprintf(out, size, "%d-%d-", t, i);
    if (len < (size_t)n)
        len = (size_t)n;
    memset(out + n, 'x', len - (size_t)n);
    return len;
}

static void on_delivery(const kaffe_delivery_report_t *report, void *opaque) {
    slot_t *slot = opaque;
    shared_t *s = slot->s;
    char want[512];
    size_t len = value_of(slot->thread, slot->index, s->value_len, want, sizeof want);
    if (report->value_len != len || memcmp(report->value, want, len) != 0)
        atomic_fetch_add(&s->wrong_value, 1);
    if (report->status != KAFFE_OK)
        atomic_fetch_add(&s->not_ok, 1);
    atomic_fetch_add(&s->calls[slot->thread][slot->index], 1);
    atomic_fetch_add(&s->callbacks, 1);
}

typedef struct producer_arg {
    shared_t *s;
    int thread, refused;
} producer_arg_t;

static void *produce_main(void *arg) {
    producer_arg_t *a = arg;
    shared_t *s = a->s;
    char value[512];
    for (int i = 0; i < s->per_producer; i++) {
        slots[a->thread][i] = (slot_t){s, a->thread, i};
        kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
        m.value = value;
        m.value_len = value_of(a->thread, i, s->value_len, value, sizeof value);
        if (kaffe_produce_async(s->p, &m, on_delivery, &slots[a->thread][i]) != KAFFE_OK)
            a->refused++;
    }
    return NULL;
}

static void *flush_main(void *arg) {
    shared_t *s = arg;
    while (!atomic_load(&s->producing_done)) {
        kaffe_status_t st = kaffe_producer_flush(s->p, 5);
        CHECK(st == KAFFE_OK || st == KAFFE_ERR_TIMED_OUT, "flush: %s", kaffe_err_name(st));
        /* A pause: while a flush waits the delivery thread defers nothing
         * (and with messages always in flight each flush waits its 5 ms),
         * and reports should also be deferred, drained and aged here. */
        struct timespec ts = {0, 5000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void *sync_main(void *arg) {
    shared_t *s = arg;
    for (int i = 0; i < SYNC_MESSAGES; i++) {
        kaffe_status_t st = kaffe_produce_sync(s->p, NULL, 0, "sync", 4);
        CHECK(st == KAFFE_OK, "sync %d: %s", i, kaffe_err_name(st));
    }
    return NULL;
}

static void *stats_main(void *arg) {
    shared_t *s = arg;
    long total = (long)s->producers * s->per_producer + SYNC_MESSAGES;
    uint64_t last_done = 0;
    while (!atomic_load(&s->producing_done)) {
        kaffe_producer_stats_t st;
        CHECK(kaffe_producer_stats(s->p, &st) == KAFFE_OK, "stats");
        uint64_t done = st.messages_produced + st.messages_failed;
        CHECK(st.messages_in_flight >= 0 && st.messages_in_flight <= total, "in flight %lld",
              (long long)st.messages_in_flight);
        CHECK(done >= last_done && done <= (uint64_t)total, "done %llu after %llu",
              (unsigned long long)done, (unsigned long long)last_done);
        last_done = done;
        if (producer_has_deferred(s->p))
            atomic_store(&s->saw_deferred, true);
        struct timespec ts = {0, 200000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void run(const char *name, int producers, int per_producer, size_t value_len,
                const char *queue_property, const char *queue_value) {
    static shared_t s;
    memset(&s, 0, sizeof s);
    s.producers = producers;
    s.per_producer = per_producer;
    s.value_len = value_len;
    char err[256];
    kaffe_conf_t *conf = kaffe_conf_new();
    kaffe_conf_set(conf, "endpoints", mock_cluster_bootstraps(mc), err, sizeof err);
    kaffe_conf_set(conf, "topics", TOPIC, err, sizeof err);
    kaffe_conf_set(conf, "rdkafka.linger.ms", "1", err, sizeof err);
    CHECK(kaffe_conf_set(conf, queue_property, queue_value, err, sizeof err) == KAFFE_OK, "%s",
          err);
    s.p = kaffe_producer_new(conf, err, sizeof err);
    CHECK(s.p != NULL, "%s", err);
    if (!s.p)
        return;

    pthread_t watchdog = watchdog_start(name);
    pthread_t producer_threads[PRODUCERS], flushers[FLUSHERS], sync_thread, stats_thread;
    producer_arg_t args[PRODUCERS];
    for (int t = 0; t < producers; t++) {
        args[t] = (producer_arg_t){&s, t, 0};
        pthread_create(&producer_threads[t], NULL, produce_main, &args[t]);
    }
    for (int f = 0; f < FLUSHERS; f++)
        pthread_create(&flushers[f], NULL, flush_main, &s);
    pthread_create(&sync_thread, NULL, sync_main, &s);
    pthread_create(&stats_thread, NULL, stats_main, &s);
    for (int t = 0; t < producers; t++) {
        pthread_join(producer_threads[t], NULL);
        CHECK(args[t].refused == 0, "producer %d: %d refused", t, args[t].refused);
    }
    pthread_join(sync_thread, NULL);
    atomic_store(&s.producing_done, true);
    for (int f = 0; f < FLUSHERS; f++)
        pthread_join(flushers[f], NULL);
    pthread_join(stats_thread, NULL);

    CHECK(kaffe_producer_flush(s.p, 60000) == KAFFE_OK, "final flush");
    int total = producers * per_producer;
    CHECK(atomic_load(&s.callbacks) == total, "%d callbacks for %d messages",
          atomic_load(&s.callbacks), total);
    int wrong = 0;
    for (int t = 0; t < producers; t++)
        for (int i = 0; i < per_producer; i++)
            if (atomic_load(&s.calls[t][i]) != 1 && wrong++ < 5)
                CHECK(0, "producer %d message %d: %d callbacks", t, i, atomic_load(&s.calls[t][i]));
    CHECK(wrong == 0, "%d messages without exactly one callback", wrong);
    CHECK(atomic_load(&s.not_ok) == 0, "%d not delivered", atomic_load(&s.not_ok));
    CHECK(atomic_load(&s.wrong_value) == 0, "%d reports with another message's value",
          atomic_load(&s.wrong_value));
    CHECK(atomic_load(&s.saw_deferred), "no report was ever deferred: the case tests nothing");
    kaffe_producer_stats_t st;
    CHECK(kaffe_producer_stats(s.p, &st) == KAFFE_OK, "stats");
    CHECK(st.messages_in_flight == 0, "%lld in flight after the flush",
          (long long)st.messages_in_flight);
    CHECK(st.messages_produced == (uint64_t)(total + SYNC_MESSAGES), "%llu produced",
          (unsigned long long)st.messages_produced);
    kaffe_producer_destroy(s.p);
    watchdog_stop(watchdog);
}

/* 64 messages of queue: deferral bound 32, producers keep blocking for room. */
static void producers_and_flushers_share_a_tiny_message_queue(void) {
    run("tiny message queue", PRODUCERS, PER_PRODUCER, 16, "rdkafka.queue.buffering.max.messages",
        "64");
}

/* 1 KiB of queue, 300-byte values: blocked producers are woken by librdkafka
 * only when the byte count crosses the limit or the count reaches zero, so
 * deferred reports must be freed by the age limit when nobody drains. */
static void producers_and_flushers_share_a_tiny_byte_queue(void) {
    run("tiny byte queue", 2, 300, 300, "rdkafka.queue.buffering.max.kbytes", "1");
}

int main(void) {
    char err[256];
    mock_topic_t topics[] = {{TOPIC, PARTITIONS}};
    mc = mock_cluster_start(3, topics, 1, err, sizeof err);
    if (!mc) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    RUN_CASE(producers_and_flushers_share_a_tiny_message_queue);
    RUN_CASE(producers_and_flushers_share_a_tiny_byte_queue);
    mock_cluster_stop(mc);
    return check_summary("race_producer_deferred");
}
