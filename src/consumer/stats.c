/* kaffe_consumer_stats: a snapshot of a running consumer's figures.
 *
 * Any thread. Per partition it reads the figures the poll thread publishes
 * (partition_stats, inside one RCU read-side section, so no partition is
 * freed under it), then librdkafka's cached high watermark outside the
 * section, holding rk_lock (which the poll thread takes only to replace or
 * destroy a client after a fatal error). Nothing here takes a lock the
 * message path takes. After stop, the partitions' last figures (retired). */
#include <kaffe/stats.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "consumer/internal.h"
#include "common/clock.h"
#include "metrics/stats_export.h"
#include "partition/partition.h"

/* --- handler timing and log routing (set up by consumer_observe) -------- */

/* The handler kaffe calls (worker threads): times the application's. */
static int timed(consumer_metrics_t *m, kaffe_message_handler_t handler, void *opaque,
                 kaffe_message_t *msg) {
    uint64_t started = clock_now_ns();
    int rc = handler(msg, opaque);
    histogram_record(&m->handler_latency, clock_now_ns() - started);
    /* relaxed: independent statistics counters. */
    atomic_fetch_add_explicit(&m->handled, 1, memory_order_relaxed);
    if (rc != KAFFE_OK)
        atomic_fetch_add_explicit(&m->failed, 1, memory_order_relaxed);
    return rc;
}

static int timed_handler(kaffe_message_t *msg, void *opaque) {
    consumer_metrics_t *m = opaque;
    return timed(m, m->user_handler, m->user_opaque, msg);
}

int consumer_stats_timed_call(kaffe_consumer_t *c, kaffe_message_handler_t handler, void *opaque,
                              kaffe_message_t *msg) {
    return timed(&c->metrics, handler, opaque, msg);
}

void consumer_route_logs(rd_kafka_conf_t *rdconf) {
    /* The consumer is the opaque and starts with its conf (internal.h). */
    conf_route_rdkafka_logs(rdconf);
}

void consumer_observe(consumer_metrics_t *m, const kaffe_conf_t *conf, rd_kafka_conf_t *rdconf,
                      kaffe_message_handler_t *handler, void **opaque) {
    m->conf = conf;
    pthread_mutex_init(&m->retired_lock, NULL);
    m->user_handler = *handler;
    m->user_opaque = *opaque;
    if (*handler) {
        *handler = timed_handler;
        *opaque = m;
    }
    consumer_route_logs(rdconf);
}

/* --- snapshots ---------------------------------------------------------- */

typedef struct collect {
    kaffe_consumer_stats_t *stats;
    int64_t now_ms;
    bool nomem;
} collect_t;

static bool reserve(kaffe_consumer_stats_t *s, size_t need) {
    if (need <= s->partitions_capacity)
        return true;
    size_t cap = s->partitions_capacity ? s->partitions_capacity : 16;
    while (cap < need)
        cap *= 2;
    kaffe_partition_stats_t *grown = realloc(s->partitions, cap * sizeof *grown);
    if (!grown)
        return false;
    s->partitions = grown;
    s->partitions_capacity = cap;
    return true;
}

/* Copies what partition p publishes into *ps (assigned 1, no log end yet). */
static void fill_partition(const partition_t *p, int64_t now_ms, kaffe_partition_stats_t *ps) {
    memset(ps, 0, sizeof *ps);
    strncpy(ps->topic, partition_topic(p), sizeof ps->topic - 1);
    ps->partition = partition_id(p);
    ps->assigned = 1;
    partition_stats_t st;
    partition_stats(p, &st);
    ps->generation = st.generation;
    ps->committed_offset = st.committed_offset;
    ps->watermark = st.watermark;
    ps->next_offset = st.next_offset;
    ps->in_flight = st.in_flight;
    ps->in_flight_bytes = st.in_flight_bytes;
    ps->paused = st.fetch_paused;
    ps->dispatch_paused = st.dispatch_paused;
    ps->commit_metadata_bytes = st.metadata_bytes;
    ps->oldest_unacked_age_ms = 0;
    if (st.oldest_dispatch_ms >= 0 && now_ms > st.oldest_dispatch_ms)
        ps->oldest_unacked_age_ms = now_ms - st.oldest_dispatch_ms;
    ps->log_end_offset = -1;
    ps->lag = -1;
}

/* The log end librdkafka cached from the last fetch response (no broker
 * round trip, unlike rd_kafka_query_watermark_offsets), and the lag. */
static void fill_log_end(rd_kafka_t *rk, kaffe_partition_stats_t *ps) {
    int64_t low = -1, high = -1;
    if (rd_kafka_get_watermark_offsets(rk, ps->topic, ps->partition, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0)
        high = -1;
    ps->log_end_offset = high;
    ps->lag = -1;
    if (high >= 0 && ps->committed_offset >= 0)
        ps->lag = high > ps->committed_offset ? high - ps->committed_offset : 0;
}

/* Inside the read-side section. */
static void collect_one(const partition_t *p, void *arg) {
    collect_t *col = arg;
    kaffe_consumer_stats_t *s = col->stats;
    if (!reserve(s, s->partition_count + 1)) {
        col->nomem = true;
        return;
    }
    fill_partition(p, col->now_ms, &s->partitions[s->partition_count++]);
}

void consumer_stats_retire(kaffe_consumer_t *c, const partition_t *p) {
    kaffe_partition_stats_t last;
    fill_partition(p, partition_now_ms(), &last);
    last.assigned = 0;
    last.in_flight = 0; /* released with the partition */
    last.in_flight_bytes = 0;
    last.oldest_unacked_age_ms = 0;
    fill_log_end(consumer_rdkafka(c), &last);
    consumer_metrics_t *m = consumer_metrics(c);
    pthread_mutex_lock(&m->retired_lock);
    size_t i = 0;
    while (i < m->retired_count && (m->retired[i].partition != last.partition ||
                                    strcmp(m->retired[i].topic, last.topic) != 0))
        i++;
    if (i == m->retired_count && m->retired_count == m->retired_capacity) {
        size_t cap = m->retired_capacity ? 2 * m->retired_capacity : 16;
        kaffe_partition_stats_t *grown = realloc(m->retired, cap * sizeof *grown);
        if (grown) {
            m->retired = grown;
            m->retired_capacity = cap;
        }
    }
    if (i < m->retired_capacity) { /* else out of memory: this one is not kept */
        m->retired[i] = last;
        if (i == m->retired_count)
            m->retired_count++;
    }
    pthread_mutex_unlock(&m->retired_lock);
}

void consumer_metrics_free(consumer_metrics_t *m) {
    free(m->retired);
    m->retired = NULL;
    pthread_mutex_destroy(&m->retired_lock);
}

/* After stop: the partitions' last figures (none are in the table then). */
static bool collect_retired(consumer_metrics_t *m, kaffe_consumer_stats_t *s) {
    bool ok = true;
    pthread_mutex_lock(&m->retired_lock);
    if (m->retired_count == 0) {
        /* nothing retired: partitions and retired may both be NULL */
    } else if (reserve(s, s->partition_count + m->retired_count)) {
        memcpy(s->partitions + s->partition_count, m->retired,
               m->retired_count * sizeof *m->retired);
        s->partition_count += m->retired_count;
    } else {
        ok = false;
    }
    pthread_mutex_unlock(&m->retired_lock);
    return ok;
}

static int by_topic_partition(const void *a, const void *b) {
    const kaffe_partition_stats_t *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    if (c)
        return c;
    return (x->partition > y->partition) - (x->partition < y->partition);
}

static uint64_t load(atomic_ullong *counter) {
    /* relaxed: independent counters (see consumer_metrics_t). */
    return atomic_load_explicit(counter, memory_order_relaxed);
}

KAFFE_API kaffe_status_t kaffe_consumer_stats(kaffe_consumer_t *c, kaffe_consumer_stats_t *stats) {
    if (!c || !stats)
        return KAFFE_ERR_INVALID_ARG;
    consumer_metrics_t *m = consumer_metrics(c);
    strncpy(stats->group, conf_str(m->conf, "consumer_group"), sizeof stats->group - 1);
    stats->group[sizeof stats->group - 1] = '\0';
    stats->running = consumer_running(c);
    partition_counters_t pc;
    partition_table_counters(consumer_partitions(c), &pc);
    stats->messages_dispatched = pc.admitted;
    stats->messages_handled = load(&m->handled);
    stats->messages_acked = pc.acked;
    stats->messages_failed = load(&m->failed);
    kaffe_failure_counters_t failures;
    kaffe_consumer_failure_counters(c, &failures);
    stats->messages_retried = failures.retries;
    stats->messages_dead_lettered = failures.dead_lettered;
    stats->messages_skipped = failures.skipped;
    stats->messages_already_acked = pc.already_acked;
    metrics_latency_from_histogram(&m->handler_latency, &stats->handler_latency);

    stats->partition_count = 0;
    collect_t col = {stats, partition_now_ms(), false};
    partition_table_visit(consumer_partitions(c), collect_one, &col);
    if (col.nomem) {
        stats->partition_count = 0;
        return KAFFE_ERR_NOMEM;
    }
    rd_kafka_t *rk = consumer_rdkafka_hold(c);
    for (size_t i = 0; i < stats->partition_count; i++)
        fill_log_end(rk, &stats->partitions[i]);
    consumer_rdkafka_release(c);
    if (consumer_stopped(c) && !collect_retired(m, stats)) {
        stats->partition_count = 0;
        return KAFFE_ERR_NOMEM;
    }
    if (stats->partition_count > 1) /* partitions may be NULL otherwise */
        qsort(stats->partitions, stats->partition_count, sizeof *stats->partitions,
              by_topic_partition);
    return KAFFE_OK;
}

KAFFE_API void kaffe_consumer_stats_free(kaffe_consumer_stats_t *stats) {
    if (!stats)
        return;
    free(stats->partitions);
    memset(stats, 0, sizeof *stats);
}
