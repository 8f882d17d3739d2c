#include "support/plain_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

static rd_kafka_t *new_client(rd_kafka_type_t type, const char *bootstraps, const char *group) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    if (group) {
        rd_kafka_conf_set(conf, "group.id", group, err, sizeof err);
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof err);
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "plain client: %s\n", err);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

size_t plain_produce(const char *bootstraps, const char *topic, int32_t partition, size_t count,
                     size_t first_index, int key_mod) {
    rd_kafka_t *rk = new_client(RD_KAFKA_PRODUCER, bootstraps, NULL);
    if (!rk)
        return 0;
    size_t failed = 0;
    for (size_t i = 0; i < count; i++) {
        char key[64], value[64];
        int klen = snprintf(key, sizeof key, "key-%zu", key_mod ? i % (size_t)key_mod : 0);
        int vlen = snprintf(value, sizeof value, "value-%zu", first_index + i);
        rd_kafka_resp_err_t err;
        do {
            err =
                rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_KEY(key_mod ? key : NULL, key_mod ? (size_t)klen : 0),
                                  RD_KAFKA_V_VALUE(value, (size_t)vlen), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 10);
        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        if (err)
            failed++;
    }
    rd_kafka_flush(rk, 30000);
    size_t undelivered = (size_t)rd_kafka_outq_len(rk);
    rd_kafka_destroy(rk);
    return count - failed - undelivered;
}

static char *copy_bytes(const void *p, size_t n) {
    if (!p)
        return NULL;
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* "name=value\n" per header (a null value as "name\n"), or NULL. */
static char *copy_headers(const rd_kafka_message_t *m) {
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR || !hdrs)
        return NULL;
    size_t total = 1;
    const char *name;
    const void *value;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == 0; i++)
        total += strlen(name) + size + 2;
    char *out = malloc(total), *w = out;
    if (!out)
        return NULL;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == 0; i++) {
        w += sprintf(w, "%s", name);
        if (value) {
            *w++ = '=';
            memcpy(w, value, size);
            w += size;
        }
        *w++ = '\n';
    }
    *w = '\0';
    return out;
}

size_t plain_consume_all(const char *bootstraps, const char *topic, size_t max, int idle_ms,
                         plain_message_t **out) {
    *out = NULL;
    rd_kafka_t *rk = new_client(RD_KAFKA_CONSUMER, bootstraps, "kaffe-tests-plain-reader");
    if (!rk)
        return 0;
    /* Assign every partition explicitly from the beginning: no group state. */
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topic_cnt != 1) {
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        return 0;
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(0);
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);

    plain_message_t *msgs = calloc(max ? max : 1, sizeof *msgs);
    size_t n = 0;
    int first_ms = idle_ms > PLAIN_FIRST_MESSAGE_MS ? idle_ms : PLAIN_FIRST_MESSAGE_MS;
    while (n < max) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, n == 0 ? first_ms : idle_ms);
        if (!m)
            break;
        if (!m->err) {
            plain_message_t *pm = &msgs[n++];
            pm->topic = strdup(rd_kafka_topic_name(m->rkt));
            pm->partition = m->partition;
            pm->offset = m->offset;
            pm->key = copy_bytes(m->key, m->key_len);
            pm->key_len = m->key_len;
            pm->value = copy_bytes(m->payload, m->len);
            pm->value_len = m->len;
            pm->headers = copy_headers(m);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    *out = msgs;
    return n;
}

void plain_messages_free(plain_message_t *msgs, size_t count) {
    for (size_t i = 0; i < count; i++) {
        free(msgs[i].topic);
        free(msgs[i].key);
        free(msgs[i].value);
        free(msgs[i].headers);
    }
    free(msgs);
}

rd_kafka_t *plain_group_client(const char *bootstraps, const char *group) {
    return new_client(RD_KAFKA_CONSUMER, bootstraps, group);
}

int64_t plain_committed_rk(rd_kafka_t *rk, const char *topic, int32_t partition, char **metadata) {
    if (metadata)
        *metadata = NULL;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, partition);
    int64_t offset = RD_KAFKA_OFFSET_INVALID;
    if (rd_kafka_committed(rk, parts, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_topic_partition_t *p = &parts->elems[0];
        offset = p->offset;
        if (metadata && p->metadata && p->metadata_size > 0)
            *metadata = copy_bytes(p->metadata, p->metadata_size);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return offset;
}

int64_t plain_committed(const char *bootstraps, const char *group, const char *topic,
                        int32_t partition, char **metadata) {
    if (metadata)
        *metadata = NULL;
    rd_kafka_t *rk = plain_group_client(bootstraps, group);
    if (!rk)
        return RD_KAFKA_OFFSET_INVALID;
    int64_t offset = plain_committed_rk(rk, topic, partition, metadata);
    rd_kafka_destroy(rk);
    return offset;
}

int64_t plain_log_end(const char *bootstraps, const char *topic, int32_t partition) {
    rd_kafka_t *rk = new_client(RD_KAFKA_CONSUMER, bootstraps, NULL);
    if (!rk)
        return -1;
    int64_t low = -1, high = -1;
    if (rd_kafka_query_watermark_offsets(rk, topic, partition, &low, &high, 10000))
        high = -1;
    rd_kafka_destroy(rk);
    return high;
}

/* Whether broker (one host:port) tells topic led and fully replicated. A
 * fresh client, so that its first metadata request goes to that broker. */
static int topic_ready_at(const char *broker, const char *topic, int partitions,
                          int replication_factor) {
    rd_kafka_t *rk = new_client(RD_KAFKA_PRODUCER, broker, NULL);
    if (!rk)
        return 0;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int ready = 0;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ready =
            md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt == partitions;
        for (int i = 0; ready && i < md->topics[0].partition_cnt; i++)
            ready = md->topics[0].partitions[i].leader >= 0 &&
                    md->topics[0].partitions[i].isr_cnt == replication_factor;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return ready;
}

/* topic_ready_at for each broker of the comma-separated list. */
static int topic_ready_everywhere(const char *bootstraps, const char *topic, int partitions,
                                  int replication_factor) {
    char list[1024];
    snprintf(list, sizeof list, "%s", bootstraps);
    char *save = NULL;
    for (char *broker = strtok_r(list, ",", &save); broker; broker = strtok_r(NULL, ",", &save))
        if (!topic_ready_at(broker, topic, partitions, replication_factor))
            return 0;
    return 1;
}

int plain_create_topic(const char *bootstraps, const char *topic, int partitions,
                       int replication_factor, char *errstr, size_t errstr_size) {
    char err[512], unused[1];
    if (!errstr) {
        errstr = unused;
        errstr_size = sizeof unused;
    }
    rd_kafka_t *rk = new_client(RD_KAFKA_PRODUCER, bootstraps, NULL);
    if (!rk) {
        snprintf(errstr, errstr_size, "admin client for %s failed", bootstraps);
        return -1;
    }
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(topic, partitions, replication_factor, err, sizeof err);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = -1;
    if (!ev) {
        snprintf(errstr, errstr_size, "CreateTopics %s: no answer in 30 s", topic);
    } else {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        if (rd_kafka_event_error(ev))
            snprintf(errstr, errstr_size, "CreateTopics %s: %s", topic,
                     rd_kafka_event_error_string(ev));
        else if (n != 1 || rd_kafka_topic_result_error(res[0]))
            snprintf(errstr, errstr_size, "CreateTopics %s: %s", topic,
                     n ? rd_kafka_topic_result_error_string(res[0]) : "no result");
        else
            rc = 0;
        rd_kafka_event_destroy(ev);
    }
    /* Every partition led and fully replicated, as every listed broker
     * tells it (Kafka propagates metadata asynchronously: a broker that has
     * not learned of the topic yet refuses produces and offset lookups for
     * it): a consumer joining now is assigned all of them, a producer can
     * write to all of them, and a broker fault right after loses nothing
     * acknowledged. */
    for (int64_t deadline = clock_now_ms() + 30000; rc == 0;) {
        if (topic_ready_everywhere(bootstraps, topic, partitions, replication_factor))
            break;
        if (clock_now_ms() > deadline) {
            snprintf(errstr, errstr_size,
                     "topic %s: partitions not led and fully replicated after 30 s", topic);
            rc = -1;
        }
        clock_sleep_ms(100);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_destroy(rk);
    return rc;
}
