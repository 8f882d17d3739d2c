/* Consumer and producer stats against known state, and their Prometheus
 * rendering checked by promtool. */
#include <criterion/criterion.h>

#include <unistd.h>

#include <kaffe/stats.h>

#include "consumer_helpers.h"
#include "mock/mock_cluster.h"
#include "support/mock_suite.h"
#include "support/plain_client.h"

MOCK_CLUSTER_SUITE(stats, 1, 120, {"st", 3}, {"stp", 2});

static const int64_t produced[3] = {10, 20, 30};

/* Takes a snapshot; returns partition p's entry (NULL if not assigned). */
static const kaffe_partition_stats_t *snap(kaffe_consumer_t *c, kaffe_consumer_stats_t *s,
                                           int32_t p) {
    cr_assert_eq(kaffe_consumer_stats(c, s), KAFFE_OK);
    for (size_t i = 0; i < s->partition_count; i++)
        if (strcmp(s->partitions[i].topic, "st") == 0 && s->partitions[i].partition == p)
            return &s->partitions[i];
    return NULL;
}

/* Waits until every partition of "st" satisfies pred; false on timeout. */
typedef int (*pred_fn)(const kaffe_partition_stats_t *ps, void *arg);
static int wait_all(kaffe_consumer_t *c, kaffe_consumer_stats_t *s, pred_fn pred, void *arg,
                    int timeout_ms) {
    int64_t deadline = clock_now_ms() + timeout_ms;
    for (;;) {
        int ok = 1;
        for (int32_t p = 0; p < 3 && ok; p++) {
            const kaffe_partition_stats_t *ps = snap(c, s, p);
            ok = ps && pred(ps, arg);
        }
        if (ok)
            return 1;
        if (clock_now_ms() > deadline)
            return 0;
        clock_sleep_ms(10);
    }
}

/* arg: the snapshot ps is in. The handler count is part of the state: a
 * message is in flight from its dispatch, but counted as handled (and its
 * latency recorded) only once its handler returned. */
static int held_back(const kaffe_partition_stats_t *ps, void *arg) {
    const kaffe_consumer_stats_t *s = arg;
    return s->messages_handled == 15 && s->handler_latency.count == 15 && ps->in_flight == 5 &&
           ps->in_flight_bytes == 5 * 11 && ps->watermark == 0 && ps->committed_offset == 0 &&
           ps->log_end_offset == produced[ps->partition] && ps->lag == produced[ps->partition] &&
           ps->dispatch_paused && ps->paused;
}

static int all_done(const kaffe_partition_stats_t *ps, void *arg) {
    (void)arg;
    int64_t end = produced[ps->partition];
    return ps->in_flight == 0 && ps->watermark == end && ps->committed_offset == end &&
           ps->lag == 0 && !ps->paused && !ps->dispatch_paused && ps->oldest_unacked_age_ms == 0 &&
           ps->commit_metadata_bytes == 0;
}

/* Acks every kept message except topic st partition 0 offset 0 (if skip). */
static long ack_kept(recorder_t *r, size_t *next, int skip_first) {
    long n = 0;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        if (*next >= r->count) {
            pthread_mutex_unlock(&r->lock);
            return n;
        }
        seen_msg_t m = r->msgs[(*next)++];
        pthread_mutex_unlock(&r->lock);
        if (skip_first && m.partition == 0 && m.offset == 0)
            continue;
        cr_assert_eq(kaffe_consumer_ack(r->consumer, m.m), KAFFE_OK);
        n++;
    }
}

static kaffe_message_t *find_kept(recorder_t *r, int32_t partition, int64_t offset) {
    kaffe_message_t *found = NULL;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->count; i++)
        if (r->msgs[i].partition == partition && r->msgs[i].offset == offset)
            found = r->msgs[i].m;
    pthread_mutex_unlock(&r->lock);
    return found;
}

/* promtool check metrics on text: its exit status (0: valid). */
static int promtool(const char *text, char *out, size_t out_size) {
    char path[] = "/tmp/kaffe-prom-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, out_size - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    unlink(path);
    return status;
}

Test(stats, consumer_figures_match_known_state_and_render_valid_prometheus) {
    const char *b = mock_cluster_bootstraps(mc);
    /* Values value-10000.. are 11 bytes each (no key). */
    for (int p = 0; p < 3; p++)
        cr_assert_eq(plain_produce(b, "st", p, (size_t)produced[p], 10000, 0), (size_t)produced[p]);
    recorder_t r;
    recorder_init(&r);
    r.keep = 1;
    char err[512];
    kaffe_consumer_t *c =
        kaffe_consumer_new(test_conf(b, "st", "g-stats", record_handler, &r, "async_message_ack",
                                     "true", "max_in_flight_messages", "5", NULL),
                           err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    r.consumer = c;
    kaffe_consumer_stats_t s = {0};
    /* Before start: no partitions, not running. */
    cr_assert_eq(kaffe_consumer_stats(c, &s), KAFFE_OK);
    cr_assert_eq(s.partition_count, 0);
    cr_assert_eq(s.running, 0);
    cr_assert_str_eq(s.group, "g-stats");
    int64_t started = clock_now_ms();
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);

    /* A handler that never acks: 5 in flight per partition, then parked and
     * paused; nothing acked, so the watermark and the commit stay at 0. */
    cr_assert(wait_all(c, &s, held_back, &s, 30000), "partitions never reached the held state");
    cr_assert_eq(s.running, 1);
    cr_assert_eq(s.messages_handled, 15);
    cr_assert_eq(s.messages_acked, 0);
    cr_assert_eq(s.messages_dispatched, 15);
    cr_assert_eq(s.handler_latency.count, 15);
    cr_assert_eq(s.handler_latency.bucket_count[KAFFE_STATS_LATENCY_BUCKETS - 1], 15);
    for (int32_t p = 0; p < 3; p++) {
        const kaffe_partition_stats_t *ps = snap(c, &s, p);
        cr_assert_eq(ps->assigned, 1);
        cr_assert_eq(ps->next_offset, 5, "p%d next %lld", p, (long long)ps->next_offset);
        cr_assert_leq(ps->oldest_unacked_age_ms, clock_now_ms() - started + 5);
    }
    /* The oldest unacked message ages with the clock. */
    int64_t age0 = snap(c, &s, 1)->oldest_unacked_age_ms;
    clock_sleep_ms(300);
    int64_t age1 = snap(c, &s, 1)->oldest_unacked_age_ms;
    cr_assert_geq(age1 - age0, 290, "age %lld -> %lld", (long long)age0, (long long)age1);

    /* Rendered while held: promtool accepts it; the series carry the labels. */
    char text[65536];
    size_t len = kaffe_consumer_stats_prometheus(&s, text, sizeof text);
    cr_assert_lt(len, sizeof text);
    cr_assert_eq(strlen(text), len);
    cr_assert_not_null(strstr(text, "kaffe_consumer_partition_in_flight_messages{group=\"g-stats\","
                                    "topic=\"st\",partition=\"2\"} 5\n"),
                       "%s", text);
    cr_assert_not_null(
        strstr(text, "kaffe_consumer_partition_lag_messages{group=\"g-stats\",topic=\"st\","
                     "partition=\"1\"} 20\n"));
    cr_assert_not_null(
        strstr(text, "kaffe_consumer_handler_latency_seconds_count{group=\"g-stats\"} 15\n"));
    char out[4096];
    cr_assert_eq(promtool(text, out, sizeof out), 0, "promtool: %s", out);

    /* Ack all but st/0 offset 0: partitions 1 and 2 drain completely; 0
     * keeps its watermark at 0 and commits the acks above it as metadata. */
    size_t next = 0;
    long acked = 0;
    int64_t deadline = clock_now_ms() + 30000;
    while (acked < 59 && clock_now_ms() < deadline) {
        acked += ack_kept(&r, &next, 1);
        clock_sleep_ms(5);
    }
    cr_assert_eq(acked, 59);
    deadline = clock_now_ms() + 10000;
    const kaffe_partition_stats_t *p0;
    for (;;) {
        p0 = snap(c, &s, 0);
        if ((p0->commit_metadata_bytes > 0 && snap(c, &s, 1)->lag == 0 &&
             snap(c, &s, 2)->lag == 0) ||
            clock_now_ms() > deadline)
            break;
        clock_sleep_ms(10);
    }
    p0 = snap(c, &s, 0);
    cr_assert_gt(p0->commit_metadata_bytes, 0);
    cr_assert_eq(p0->committed_offset, 0);
    cr_assert_eq(p0->watermark, 0);
    cr_assert_eq(p0->lag, 10);
    cr_assert_eq(p0->in_flight, 1);
    cr_assert_geq(p0->oldest_unacked_age_ms, 300);
    cr_assert_eq(snap(c, &s, 1)->lag, 0);

    /* The last ack: everything committed, nothing in flight or paused. */
    cr_assert_eq(kaffe_consumer_ack(c, find_kept(&r, 0, 0)), KAFFE_OK);
    cr_assert(wait_all(c, &s, all_done, NULL, 10000), "not all done");
    cr_assert_eq(s.messages_handled, 60);
    cr_assert_eq(s.messages_acked, 60);
    cr_assert_eq(s.messages_failed, 0);
    cr_assert_eq(s.messages_dispatched, 60);
    cr_assert_eq(s.handler_latency.count, 60);

    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_stats(c, &s), KAFFE_OK);
    cr_assert_eq(s.running, 0);
    /* After stop: every partition it had, with the last committed offset. */
    cr_assert_eq(s.partition_count, 3);
    for (int32_t p = 0; p < 3; p++) {
        const kaffe_partition_stats_t *ps = &s.partitions[p];
        cr_assert_str_eq(ps->topic, "st");
        cr_assert_eq(ps->partition, p);
        cr_assert_eq(ps->assigned, 0);
        cr_assert_eq(ps->committed_offset, produced[p], "p%d committed %lld", p,
                     (long long)ps->committed_offset);
        cr_assert_eq(ps->watermark, produced[p]);
        cr_assert_eq(ps->in_flight, 0);
        cr_assert_eq(ps->log_end_offset, produced[p]);
        cr_assert_eq(ps->lag, 0);
    }
    kaffe_consumer_stats_free(&s);
    cr_assert_null(s.partitions);
    kaffe_consumer_destroy(c);
    recorder_free(&r);
}

Test(stats, producer_counts_deliveries_and_latency) {
    const char *b = mock_cluster_bootstraps(mc);
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[512];
    cr_assert_eq(kaffe_conf_set(conf, "endpoints", b, err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "topics", "stp", err, sizeof err), KAFFE_OK);
    kaffe_producer_t *p = kaffe_producer_new(conf, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    kaffe_producer_stats_t s;
    cr_assert_eq(kaffe_producer_stats(p, &s), KAFFE_OK);
    cr_assert_eq(s.messages_produced, 0);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(kaffe_produce_sync(p, "k", 1, "v", 1), KAFFE_OK);
    /* Unknown partition: refused before queueing, so not in flight or failed. */
    cr_assert_neq(kaffe_produce_sync_partition(p, "stp", 7, "k", 1, "v", 1), KAFFE_OK);
    cr_assert_eq(kaffe_producer_stats(p, &s), KAFFE_OK);
    cr_assert_eq(s.messages_produced, 50);
    cr_assert_eq(s.messages_failed, 0);
    cr_assert_eq(s.messages_in_flight, 0);
    cr_assert_eq(s.produce_latency.count, 50);
    cr_assert_gt(s.produce_latency.sum_ns, 0);
    cr_assert_geq(s.produce_latency.max_ns, s.produce_latency.p50_ns);
    char text[16384], out[4096];
    size_t len = kaffe_producer_stats_prometheus(&s, "orders", text, sizeof text);
    cr_assert_lt(len, sizeof text);
    cr_assert_not_null(
        strstr(text, "kaffe_producer_messages_produced_total{producer=\"orders\"} 50\n"), "%s",
        text);
    cr_assert_eq(promtool(text, out, sizeof out), 0, "promtool: %s", out);
    kaffe_producer_destroy(p);
}
