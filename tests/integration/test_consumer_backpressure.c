/* Back-pressure: an async handler that does not ack cannot make the consumer
 * deliver (and hold) more than the in-flight limits; acking resumes it. */
#include <criterion/criterion.h>

#include "consumer_helpers.h"
#include "mock/mock_cluster.h"
#include "support/mock_suite.h"
#include "support/plain_client.h"

MOCK_CLUSTER_SUITE(consumer_backpressure, 1, 120, {"bp", 1}, {"bpbytes", 2});

/* Acks everything delivered so far; returns how many. */
static long ack_all(recorder_t *r, size_t *next) {
    long n = 0;
    pthread_mutex_lock(&r->lock);
    size_t end = r->count;
    pthread_mutex_unlock(&r->lock);
    for (; *next < end; (*next)++) {
        pthread_mutex_lock(&r->lock);
        kaffe_message_t *m = r->msgs[*next].m;
        pthread_mutex_unlock(&r->lock);
        cr_assert_eq(kaffe_consumer_ack(r->consumer, m), KAFFE_OK);
        n++;
    }
    return n;
}

static void run(const char *topic, int partitions, long total, const char *limit_name,
                const char *limit_value, long max_unacked) {
    const char *b = mock_cluster_bootstraps(mc);
    /* Values value-10000.. are 11 bytes each. */
    for (int p = 0; p < partitions; p++) {
        size_t n = (size_t)(total / partitions);
        cr_assert_eq(plain_produce(b, topic, p, n, 10000 + (size_t)p * n, 0), n);
    }
    recorder_t r;
    recorder_init(&r);
    r.keep = 1;
    char group[64];
    snprintf(group, sizeof group, "g-%s", topic);
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(test_conf(b, topic, group, record_handler, &r,
                                                       "async_message_ack", "true", "ordering",
                                                       "unordered", limit_name, limit_value, NULL),
                                             err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    r.consumer = c;
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);

    /* Never acking: delivery stops at the limit (per partition). */
    long limit = max_unacked * partitions;
    cr_assert(wait_handled(&r, limit / 2, 30000), "handled %ld", recorder_handled(&r));
    /* Watch for a while that nothing more arrives: there is no event to wait
     * for when the consumer rightly does nothing. */
    for (int i = 0; i < 50; i++) {
        clock_sleep_ms(20);
        cr_assert_leq(recorder_handled(&r), limit, "delivered %ld unacked messages, limit %ld",
                      recorder_handled(&r), limit);
    }
    long paused_at = recorder_handled(&r);
    cr_assert_lt(paused_at, total, "everything was delivered: no back-pressure");

    /* Acking resumes it; the unacked count never passes the limit. */
    size_t next = 0;
    long acked = 0;
    int64_t deadline = clock_now_ms() + 60000;
    while (acked < total) {
        acked += ack_all(&r, &next);
        long unacked = recorder_handled(&r) - acked;
        cr_assert_leq(unacked, limit, "%ld unacked, limit %ld", unacked, limit);
        cr_assert(clock_now_ms() < deadline, "acked %ld of %ld", acked, total);
        clock_sleep_ms(2);
    }
    cr_assert_eq(recorder_handled(&r), total);
    cr_assert_eq(kaffe_consumer_commit(c), KAFFE_OK);
    for (int p = 0; p < partitions; p++) {
        int64_t committed = plain_committed(b, group, topic, p, NULL);
        int64_t end = plain_log_end(b, topic, p);
        cr_assert_eq(committed, end, "%s [%d]: committed %lld, log end %lld", topic, p,
                     (long long)committed, (long long)end);
    }
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    kaffe_consumer_destroy(c);
    recorder_free(&r);
}

Test(consumer_backpressure, unacked_message_count_pauses_the_partition_and_acks_resume_it) {
    run("bp", 1, 1500, "max_in_flight_messages", "100", 100);
}

Test(consumer_backpressure, unacked_bytes_pause_the_partitions_and_acks_resume_them) {
    /* 11-byte values, null keys: the 94th message reaches 1024 bytes. */
    run("bpbytes", 2, 3000, "max_in_flight_bytes", "1024", 94);
}
