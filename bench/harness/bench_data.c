/* `kaffe bench` data: topics, payloads stamped with their send time, and a
 * plain librdkafka producer (not kaffe's: the data must not depend on the
 * code under test). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness/bench.h"
#include "mock/mock_cluster.h"
#include "common/clock.h"

uint64_t bench_payload_sent_ns(const void *payload, size_t len) {
    uint64_t ns = 0;
    if (payload && len >= BENCH_PAYLOAD_MIN)
        memcpy(&ns, payload, sizeof ns);
    return ns;
}

long bench_messages(const bench_scenario_t *s, double scale, bool embedded) {
    long n = (long)((double)s->messages * scale);
    if (n < 100)
        n = 100;
    if (embedded) {
        /* Record overhead on the mock is small next to these margins. */
        long by_count = BENCH_MOCK_MAX_MESSAGES * s->partitions;
        long by_bytes = BENCH_MOCK_MAX_BYTES / (s->message_size + 64) * s->partitions;
        if (n > by_count)
            n = by_count;
        if (n > by_bytes)
            n = by_bytes;
    }
    return n;
}

void bench_data_topic(const bench_scenario_t *s, long messages, const char *run_id, char *buf,
                      size_t size) {
    snprintf(buf, size, "kbench-%s-s%d-p%d-k%d-n%ld", run_id, s->message_size, s->partitions,
             s->keys, messages);
}

void bench_live_topic(const bench_scenario_t *s, const char *run_id, char *buf, size_t size) {
    snprintf(buf, size, "kbench-%s-live-%s", run_id, s->name);
}

/* queued.min.messages: with the default, librdkafka 2.0.2 now and then stops
 * fetching a partition and resumes only at its broker thread's one-second
 * wake-up; that stall (seen as ~1 s gaps, bimodal figures) is librdkafka's,
 * not the consumer's under test, so both raw and kaffe get the larger value.
 * Memory stays bounded by queued.max.messages.kbytes. */
const char *const bench_consumer_defaults[] = {"fetch.wait.max.ms", "10", "queued.min.messages",
                                               "1000000", NULL};

rd_kafka_conf_t *bench_rdkafka_conf(const char *brokers, const char *const *defaults, char **props,
                                    size_t prop_count, char *err, size_t err_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, err_size) ||
        rd_kafka_conf_set(conf, "log_level", "3", err, err_size))
        goto fail;
    for (size_t i = 0; defaults && defaults[i]; i += 2)
        if (rd_kafka_conf_set(conf, defaults[i], defaults[i + 1], err, err_size))
            goto fail;
    for (size_t i = 0; i < prop_count; i++) {
        const char *eq = strchr(props[i], '=');
        if (!eq || strncmp(props[i], "rdkafka.", 8) != 0)
            continue; /* kaffe properties only concern the kaffe consumer */
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(eq - props[i] - 8), props[i] + 8);
        if (rd_kafka_conf_set(conf, name, eq + 1, err, err_size) != RD_KAFKA_CONF_OK)
            goto fail;
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static int admin_create_topic(const char *brokers, const char *topic, int partitions, char *err,
                              size_t err_size) {
    rd_kafka_conf_t *conf = bench_rdkafka_conf(brokers, NULL, NULL, 0, err, err_size);
    if (!conf)
        return -1;
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, err_size);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    int rc = -1;
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, -1, err, err_size);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev) {
        snprintf(err, err_size, "creating topic %s: timed out", topic);
    } else if (rd_kafka_event_error(ev)) {
        snprintf(err, err_size, "creating topic %s: %s", topic, rd_kafka_event_error_string(ev));
    } else {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        if (n == 1 && rd_kafka_topic_result_error(res[0]))
            snprintf(err, err_size, "creating topic %s: %s", topic,
                     rd_kafka_topic_result_error_string(res[0]));
        else
            rc = 0;
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_destroy(rk);
    return rc;
}

int bench_create_topic(struct mock_cluster *mock, const char *brokers, const char *topic,
                       int partitions, char *err, size_t err_size) {
    if (!mock)
        return admin_create_topic(brokers, topic, partitions, err, err_size);
    if (mock_cluster_create_topic(mock, topic, partitions) != 0) {
        snprintf(err, err_size, "could not create topic %s on the embedded cluster", topic);
        return -1;
    }
    return 0;
}

/* Delivery reports: counts successes; the first error is kept for the
 * message. Called on the producing thread, from rd_kafka_poll/flush. */
typedef struct delivery {
    long delivered;
    rd_kafka_resp_err_t first_error;
} delivery_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    delivery_t *d = opaque;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
        d->delivered++;
    else if (!d->first_error)
        d->first_error = m->err;
}

long bench_produce(const char *brokers, char **props, size_t prop_count, const char *topic,
                   int partitions, int keys, int size, long messages, double rate_per_s, char *err,
                   size_t err_size) {
    if (err_size)
        err[0] = '\0';
    rd_kafka_conf_t *conf = bench_rdkafka_conf(brokers, NULL, props, prop_count, err, err_size);
    if (!conf)
        return -1;
    delivery_t d = {0};
    /* Paced (live) sends go out at once so the latency measured is the
     * consumer's; bulk loads batch. */
    if (rd_kafka_conf_set(conf, "linger.ms", rate_per_s > 0 ? "0" : "20", err, err_size) ||
        rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", err, err_size)) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_conf_set_opaque(conf, &d);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, err_size);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    char *value = calloc(1, (size_t)size);
    uint64_t start = clock_now_ns();
    for (long i = 0; i < messages; i++) {
        if (rate_per_s > 0) {
            uint64_t due = start + (uint64_t)((double)i * 1e9 / rate_per_s);
            if (clock_now_ns() < due)
                clock_sleep_until_ns(due);
        }
        char key[32];
        int klen = snprintf(key, sizeof key, "k%ld", keys ? i % keys : 0);
        uint64_t now = clock_now_ns();
        memcpy(value, &now, sizeof now);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                      RD_KAFKA_V_PARTITION((int32_t)(i % partitions)),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_KEY((keys ? key : NULL), keys ? (size_t)klen : 0),
                                      RD_KAFKA_V_VALUE(value, (size_t)size), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        if (e) {
            snprintf(err, err_size, "producing to %s: %s", topic, rd_kafka_err2str(e));
            break;
        }
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 60000);
    free(value);
    rd_kafka_destroy(rk);
    if (d.first_error) {
        snprintf(err, err_size, "producing to %s: %s", topic, rd_kafka_err2str(d.first_error));
        return -1;
    }
    if (d.delivered != messages) {
        if (!err[0])
            snprintf(err, err_size, "producing to %s: %ld of %ld delivered", topic, d.delivered,
                     messages);
        return -1;
    }
    return d.delivered;
}

int bench_log_ends(rd_kafka_t *rk, const char *topic, int partitions, int64_t *ends) {
    for (int p = 0; p < partitions; p++) {
        int64_t low = 0, high = 0;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &low, &high, 10000))
            return -1;
        ends[p] = high;
    }
    return 0;
}
