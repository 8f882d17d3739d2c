/* Prometheus text exposition format (0.0.4) for the public stats structs.
 * Pure functions of their input: any thread. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <kaffe/stats.h>

/* An snprintf-like appender: keeps counting past the end of buf. */
typedef struct out {
    char *buf;
    size_t size, len;
} out_t;

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_t *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->len < o->size ? o->size - o->len : 0;
    int n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

/* Appends n bytes (no formatting: the hot path of rendering). */
static void put_raw(out_t *o, const char *s, size_t n) {
    if (o->len < o->size) {
        size_t room = o->size - o->len - 1; /* keep the NUL */
        size_t k = n < room ? n : room;
        memcpy(o->buf + o->len, s, k);
        o->buf[o->len + k] = '\0';
    }
    o->len += n;
}

static void put_str(out_t *o, const char *s) {
    put_raw(o, s, strlen(s));
}

/* A signed integer, without printf. */
static void put_int(out_t *o, int64_t v) {
    char digits[24];
    size_t i = sizeof digits;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        digits[--i] = '-';
    put_raw(o, digits + i, sizeof digits - i);
}

/* A label value, escaped as the format requires (\\, \", \n). */
static void put_label_value(out_t *o, const char *v) {
    const char *run = v;
    for (; *v; v++) {
        const char *esc = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
        if (!esc)
            continue;
        put_raw(o, run, (size_t)(v - run));
        put_str(o, esc);
        run = v + 1;
    }
    put_raw(o, run, (size_t)(v - run));
}

static void header(out_t *o, const char *name, const char *type, const char *help) {
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* {group="g"} or {group="g",topic="t",partition="p"} (topic NULL: none). */
static void labels(out_t *o, const char *label, const char *value, const char *topic,
                   int32_t partition, const char *extra) {
    if (!label && !topic && !extra)
        return;
    put_str(o, "{");
    if (label) {
        put_str(o, label);
        put_str(o, "=\"");
        put_label_value(o, value);
        put_str(o, "\"");
    }
    if (topic) {
        put_str(o, label ? ",topic=\"" : "topic=\"");
        put_label_value(o, topic);
        put_str(o, "\",partition=\"");
        put_int(o, partition);
        put_str(o, "\"");
    }
    if (extra) {
        if (label || topic)
            put_str(o, ",");
        put_str(o, extra);
    }
    put_str(o, "}");
}

static void scalar(out_t *o, const char *name, const char *type, const char *help,
                   const char *label, const char *value, double v) {
    header(o, name, type, help);
    put(o, "%s", name);
    labels(o, label, value, NULL, 0, NULL);
    put(o, " %.17g\n", v);
}

static void histogram(out_t *o, const char *name, const char *help, const char *label,
                      const char *value, const kaffe_latency_stats_t *h) {
    header(o, name, "histogram", help);
    for (size_t i = 0; i < KAFFE_STATS_LATENCY_BUCKETS; i++) {
        char le[48];
        if (h->bucket_le_ns[i] == UINT64_MAX)
            snprintf(le, sizeof le, "le=\"+Inf\"");
        else
            snprintf(le, sizeof le, "le=\"%.9g\"", (double)h->bucket_le_ns[i] / 1e9);
        put(o, "%s_bucket", name);
        labels(o, label, value, NULL, 0, le);
        put(o, " %llu\n", (unsigned long long)h->bucket_count[i]);
    }
    put(o, "%s_sum", name);
    labels(o, label, value, NULL, 0, NULL);
    put(o, " %.9f\n", (double)h->sum_ns / 1e9);
    put(o, "%s_count", name);
    labels(o, label, value, NULL, 0, NULL);
    put(o, " %llu\n", (unsigned long long)h->count);
}

/* Partition gauges are integers; the age is milliseconds shown as seconds. */
typedef int64_t (*partition_value_fn)(const kaffe_partition_stats_t *p);

static int64_t p_assigned(const kaffe_partition_stats_t *p) {
    return p->assigned;
}
static int64_t p_committed(const kaffe_partition_stats_t *p) {
    return (double)p->committed_offset;
}
static int64_t p_watermark(const kaffe_partition_stats_t *p) {
    return (double)p->watermark;
}
static int64_t p_log_end(const kaffe_partition_stats_t *p) {
    return (double)p->log_end_offset;
}
static int64_t p_lag(const kaffe_partition_stats_t *p) {
    return (double)p->lag;
}
static int64_t p_in_flight(const kaffe_partition_stats_t *p) {
    return (double)p->in_flight;
}
static int64_t p_in_flight_bytes(const kaffe_partition_stats_t *p) {
    return p->in_flight_bytes;
}
static int64_t p_paused(const kaffe_partition_stats_t *p) {
    return p->paused;
}
static int64_t p_dispatch_paused(const kaffe_partition_stats_t *p) {
    return p->dispatch_paused;
}
static int64_t p_oldest(const kaffe_partition_stats_t *p) {
    return p->oldest_unacked_age_ms;
}
static int64_t p_metadata(const kaffe_partition_stats_t *p) {
    return (double)p->commit_metadata_bytes;
}

static const struct {
    const char *name;
    const char *help;
    partition_value_fn value;
} partition_metrics[] = {
    {"kaffe_consumer_partition_assigned", "1 while the partition is assigned to this consumer.",
     p_assigned},
    {"kaffe_consumer_partition_committed_offset",
     "Offset last committed by kaffe (or found at assignment); -1 if none.", p_committed},
    {"kaffe_consumer_partition_watermark",
     "Lowest offset not acked yet (what the next commit commits); -1 before the first message.",
     p_watermark},
    {"kaffe_consumer_partition_log_end_offset",
     "Broker high watermark as last fetched; -1 if unknown.", p_log_end},
    {"kaffe_consumer_partition_lag_messages",
     "Log end offset minus committed offset; -1 if either is unknown.", p_lag},
    {"kaffe_consumer_partition_in_flight_messages",
     "Messages delivered to a handler and not acked yet.", p_in_flight},
    {"kaffe_consumer_partition_in_flight_bytes", "Key and value bytes of in-flight messages.",
     p_in_flight_bytes},
    {"kaffe_consumer_partition_paused", "1 while fetching is paused by back-pressure.", p_paused},
    {"kaffe_consumer_partition_dispatch_paused",
     "1 while new messages are parked instead of handed to workers.", p_dispatch_paused},
    {"kaffe_consumer_partition_oldest_unacked_age_seconds",
     "Age of the oldest message not acked yet (an upper bound); 0 if none.", p_oldest},
    {"kaffe_consumer_partition_commit_metadata_bytes",
     "Size of the commit metadata (acked offsets above the watermark) of the last commit.",
     p_metadata},
};

KAFFE_API size_t kaffe_consumer_stats_prometheus(const kaffe_consumer_stats_t *s, char *buf,
                                                 size_t size) {
    out_t o = {buf, buf ? size : 0, 0};
    if (o.size)
        buf[0] = '\0';
    if (!s)
        return 0;
    const char *g = s->group;
    scalar(&o, "kaffe_consumer_running", "gauge", "1 while the consumer runs.", "group", g,
           s->running);
    static const struct {
        const char *name, *help;
        size_t offset;
    } counters[] = {
        {"kaffe_consumer_messages_dispatched_total", "Messages fetched and handed to the workers.",
         offsetof(kaffe_consumer_stats_t, messages_dispatched)},
        {"kaffe_consumer_messages_handled_total", "Handler calls that returned.",
         offsetof(kaffe_consumer_stats_t, messages_handled)},
        {"kaffe_consumer_messages_acked_total", "Messages acked (sync return or async ack).",
         offsetof(kaffe_consumer_stats_t, messages_acked)},
        {"kaffe_consumer_messages_failed_total", "Handler calls that returned an error.",
         offsetof(kaffe_consumer_stats_t, messages_failed)},
        {"kaffe_consumer_messages_retried_total", "Handler retries by the failure policy.",
         offsetof(kaffe_consumer_stats_t, messages_retried)},
        {"kaffe_consumer_messages_dead_lettered_total",
         "Messages sent to the dead-letter topic by the failure policy.",
         offsetof(kaffe_consumer_stats_t, messages_dead_lettered)},
        {"kaffe_consumer_messages_skipped_total", "Failed messages skipped by the failure policy.",
         offsetof(kaffe_consumer_stats_t, messages_skipped)},
        {"kaffe_consumer_messages_already_acked_total",
         "Messages not handled again because the commit metadata shows them acked.",
         offsetof(kaffe_consumer_stats_t, messages_already_acked)},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        uint64_t v;
        memcpy(&v, (const char *)s + counters[i].offset, sizeof v);
        header(&o, counters[i].name, "counter", counters[i].help);
        put(&o, "%s", counters[i].name);
        labels(&o, "group", g, NULL, 0, NULL);
        put(&o, " %llu\n", (unsigned long long)v);
    }
    histogram(&o, "kaffe_consumer_handler_latency_seconds",
              "Time the message handler took per call.", "group", g, &s->handler_latency);
    for (size_t m = 0; m < sizeof partition_metrics / sizeof partition_metrics[0]; m++) {
        if (s->partition_count == 0)
            break;
        header(&o, partition_metrics[m].name, "gauge", partition_metrics[m].help);
        for (size_t i = 0; i < s->partition_count; i++) {
            const kaffe_partition_stats_t *p = &s->partitions[i];
            put_str(&o, partition_metrics[m].name);
            labels(&o, "group", g, p->topic, p->partition, NULL);
            put_str(&o, " ");
            int64_t v = partition_metrics[m].value(p);
            if (partition_metrics[m].value == p_oldest) /* ms, shown in seconds */
                put(&o, "%lld.%03lld", (long long)(v / 1000), (long long)(v % 1000));
            else
                put_int(&o, v);
            put_str(&o, "\n");
        }
    }
    return o.len;
}

KAFFE_API size_t kaffe_producer_stats_prometheus(const kaffe_producer_stats_t *s, const char *name,
                                                 char *buf, size_t size) {
    out_t o = {buf, buf ? size : 0, 0};
    if (o.size)
        buf[0] = '\0';
    if (!s)
        return 0;
    const char *label = name ? "producer" : NULL;
    scalar(&o, "kaffe_producer_messages_produced_total", "counter",
           "Messages the broker acknowledged.", label, name, (double)s->messages_produced);
    scalar(&o, "kaffe_producer_messages_failed_total", "counter",
           "Messages whose delivery report was an error.", label, name, (double)s->messages_failed);
    scalar(&o, "kaffe_producer_messages_in_flight", "gauge",
           "Messages accepted by produce and not reported yet.", label, name,
           (double)s->messages_in_flight);
    histogram(&o, "kaffe_producer_produce_latency_seconds",
              "Time from the produce call to the delivery report.", label, name,
              &s->produce_latency);
    return o.len;
}
