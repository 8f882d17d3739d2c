/* The deferred destruction of delivery reports (src/producer/defer.c):
 * reports whose callbacks have run wait for a
 * producing thread to free them, and nothing may wait for them forever.
 * - A flush with reports deferred returns KAFFE_OK (the flush frees them;
 *   with the age limit set to a minute, a flush that did not would time out)
 *   and leaves nothing in flight.
 * - With no produce call at all, the delivery thread frees them itself once
 *   they are older than the age limit.
 * - A producing thread blocked for room in librdkafka's queue is never held
 *   by deferred reports: with a 1 KiB queue, librdkafka wakes a blocked
 *   producer only when the byte count crosses the limit or the message count
 *   reaches zero, so a deferred report that nobody frees would block it for
 *   good (the suite's timeout would fail the test). */
#include <pthread.h>
#include <stdatomic.h>

#include "producer/producer.h"
#include "producer_helpers.h"
#include "support/mock_suite.h"
#include "common/clock.h"

static mock_cluster_t *mc;
static const char *bs;

static void start_cluster(void) {
    mock_topic_t topics[] = {{"deferred", 3}};
    mc = test_mock_cluster_start(3, topics, 1);
    bs = mock_cluster_bootstraps(mc);
}

static void stop_cluster(void) {
    mock_cluster_stop(mc);
}

TestSuite(producer_deferred, .init = start_cluster, .fini = stop_cluster, .timeout = 120);

#define MESSAGES 300

typedef struct calls {
    atomic_int total, ok;
    atomic_int per_message[MESSAGES];
} calls_t;

typedef struct slot {
    calls_t *calls;
    int index;
} slot_t;

static void count_call(const kaffe_delivery_report_t *report, void *opaque) {
    slot_t *s = opaque;
    atomic_fetch_add(&s->calls->per_message[s->index], 1);
    if (report->status == KAFFE_OK)
        atomic_fetch_add(&s->calls->ok, 1);
    atomic_fetch_add(&s->calls->total, 1);
}

/* Waits (at most 20 s) until calls->total reaches n. */
static void wait_for_calls(calls_t *calls, int n) {
    for (int i = 0; i < 2000 && atomic_load(&calls->total) < n; i++)
        clock_sleep_ms(10);
    cr_assert_eq(atomic_load(&calls->total), n, "%d of %d callbacks", atomic_load(&calls->total),
                 n);
}

static void produce_n(kaffe_producer_t *p, calls_t *calls, slot_t *slots, int n, size_t value_len) {
    char value[512];
    cr_assert_leq(value_len, sizeof value);
    memset(value, 'v', value_len);
    for (int i = 0; i < n; i++) {
        slots[i] = (slot_t){calls, i};
        kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
        m.value = value;
        m.value_len = value_len;
        cr_assert_eq(kaffe_produce_async(p, &m, count_call, &slots[i]), KAFFE_OK, "message %d", i);
    }
}

static void expect_each_called_once(calls_t *calls, int n) {
    for (int i = 0; i < n; i++)
        cr_expect_eq(atomic_load(&calls->per_message[i]), 1, "message %d: %d callbacks", i,
                     atomic_load(&calls->per_message[i]));
    cr_expect_eq(atomic_load(&calls->ok), n);
}

Test(producer_deferred, flush_with_deferred_reports_returns_ok_and_leaves_nothing_in_flight) {
    kaffe_producer_t *p = producer_with(bs, "deferred", NULL);
    producer_set_defer_max_ms(p, 60000); /* only a producing thread or a flush frees them */
    static calls_t calls;
    static slot_t slots[MESSAGES];
    produce_n(p, &calls, slots, MESSAGES, 10);
    wait_for_calls(&calls, MESSAGES);
    /* Every report arrived after the produce call that sent its message had
     * drained the stack, and nothing has produced since. */
    cr_assert(producer_has_deferred(p), "the reports wait to be freed");
    kaffe_producer_stats_t s;
    cr_assert_eq(kaffe_producer_stats(p, &s), KAFFE_OK);
    cr_expect_eq(s.messages_in_flight, 0, "reported, so not in flight");
    cr_assert_eq(kaffe_producer_flush(p, 10000), KAFFE_OK);
    cr_expect(!producer_has_deferred(p));
    cr_assert_eq(kaffe_producer_stats(p, &s), KAFFE_OK);
    cr_expect_eq(s.messages_in_flight, 0);
    cr_expect_eq(s.messages_produced, MESSAGES);
    cr_expect_eq(s.messages_failed, 0);
    expect_each_called_once(&calls, MESSAGES);
    kaffe_producer_destroy(p);
    cr_expect_eq(topic_size(bs, "deferred", 3), MESSAGES);
}

Test(producer_deferred, the_delivery_thread_frees_old_reports_itself) {
    kaffe_producer_t *p = producer_with(bs, "deferred", NULL);
    producer_set_defer_max_ms(p, 50);
    static calls_t calls;
    static slot_t slots[MESSAGES];
    produce_n(p, &calls, slots, MESSAGES, 10);
    wait_for_calls(&calls, MESSAGES);
    /* No produce call and no flush from here on. */
    for (int i = 0; i < 500 && producer_has_deferred(p); i++)
        clock_sleep_ms(10);
    cr_assert(!producer_has_deferred(p), "reports still deferred 5 s after the last callback");
    expect_each_called_once(&calls, MESSAGES);
    kaffe_producer_destroy(p);
}

/* Produces n messages of value_len bytes through a producer whose queue is
 * limited by queue_property = limit (no linger), flushes, and checks each
 * message got exactly one OK callback. */
static void produce_through_small_queue(const char *queue_property, const char *limit, int n,
                                        size_t value_len) {
    kaffe_producer_t *p =
        producer_with(bs, "deferred", queue_property, limit, "rdkafka.linger.ms", "0", NULL);
    static calls_t calls;
    static slot_t slots[MESSAGES];
    produce_n(p, &calls, slots, n, value_len);
    cr_assert_eq(kaffe_producer_flush(p, 10000), KAFFE_OK);
    cr_assert(!producer_has_deferred(p));
    cr_assert_eq(atomic_load(&calls.total), n);
    expect_each_called_once(&calls, n);
    kaffe_producer_destroy(p);
}

Test(producer_deferred, a_producer_blocked_on_a_full_queue_is_not_held_by_deferred_reports) {
    /* 1 KiB of queue and 300-byte values: a fourth message waits for room. */
    produce_through_small_queue("rdkafka.queue.buffering.max.kbytes", "1", MESSAGES, 300);
}

Test(producer_deferred, a_tiny_message_queue_defers_nothing_and_still_delivers_everything) {
    /* queue.buffering.max.messages=1: half of it is 0, so every report is
     * freed by the delivery thread at once, and each produce call waits for
     * the previous message. */
    produce_through_small_queue("rdkafka.queue.buffering.max.messages", "1", 50, 10);
}
