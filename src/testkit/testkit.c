/* The test kit (include/kaffe/testing.h): the embedded cluster of src/mock
 * behind kaffe types, a fixture producer, committed-offset and log-end reads
 * through short-lived librdkafka handles, fault injection through the mock
 * API, and consume-until.
 *
 * Threads: any; `lock` serialises the fixture producer (created on first
 * use) and its delivery result. The mock cluster's own calls are
 * thread-safe. */
#include <kaffe/testing.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/errstr.h"
#include "common/status.h"
#include "mock/mock_cluster.h"

#define TESTKIT_TIMEOUT_MS 10000
#define TESTKIT_MAX_BROKERS 16
#define TESTKIT_POLL_MS 5

struct kaffe_test_cluster {
    mock_cluster_t *mc;
    int broker_count;
    pthread_mutex_t lock;
    rd_kafka_t *producer; /* fixtures and log ends; under lock */
    char **known;         /* topics a fixture was produced to; under lock */
    size_t known_n;
};

/* The fixture producer's one delivery result (under lock). */
typedef struct delivery {
    int done;
    rd_kafka_resp_err_t err;
    int64_t offset;
} delivery_t;

static void delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    delivery_t *d = m->_private;
    d->done = 1;
    d->err = m->err;
    d->offset = m->offset;
}

/* A librdkafka handle of the cluster with settings as name, value pairs. */
static rd_kafka_t *client(const kaffe_test_cluster_t *tc, rd_kafka_type_t type,
                          const char *const (*settings)[2], size_t n) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    if (rd_kafka_conf_set(conf, "bootstrap.servers", mock_cluster_bootstraps(tc->mc), err,
                          sizeof err) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], err, sizeof err) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    if (type == RD_KAFKA_PRODUCER)
        rd_kafka_conf_set_dr_msg_cb(conf, delivered);
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

/* The fixture producer, made on first use. Under lock. */
static rd_kafka_t *fixture_producer(kaffe_test_cluster_t *tc) {
    static const char *const settings[][2] = {
        {"acks", "all"},
        {"linger.ms", "0"},
        {"partitioner", "murmur2_random"},
        {"allow.auto.create.topics", "false"},
        {"message.timeout.ms", "10000"},
    };
    if (!tc->producer)
        tc->producer =
            client(tc, RD_KAFKA_PRODUCER, settings, sizeof settings / sizeof settings[0]);
    return tc->producer;
}

/* Whether topic exists (the producer would wait for it until its message
 * timeout): asked once per topic, then remembered. Under lock. */
static rd_kafka_resp_err_t topic_exists(kaffe_test_cluster_t *tc, rd_kafka_t *rk,
                                        const char *topic) {
    for (size_t i = 0; i < tc->known_n; i++)
        if (strcmp(tc->known[i], topic) == 0)
            return RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt)
        return rd_kafka_last_error();
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, TESTKIT_TIMEOUT_MS);
    if (!err)
        err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    char **grown = err ? NULL : realloc(tc->known, (tc->known_n + 1) * sizeof *grown);
    if (grown) {
        tc->known = grown;
        tc->known[tc->known_n] = strdup(topic);
        tc->known_n += tc->known[tc->known_n] != NULL;
    }
    return err;
}

kaffe_test_cluster_t *kaffe_test_cluster_new(int broker_count, char *errstr, size_t errstr_size) {
    if (broker_count < 1 || broker_count > TESTKIT_MAX_BROKERS) {
        errstr_printf(errstr, errstr_size,
                      "kaffe_test_cluster_new: broker_count %d is not in 1..%d", broker_count,
                      TESTKIT_MAX_BROKERS);
        return NULL;
    }
    kaffe_test_cluster_t *tc = calloc(1, sizeof *tc);
    if (!tc) {
        errstr_printf(errstr, errstr_size, "kaffe_test_cluster_new: out of memory");
        return NULL;
    }
    tc->mc = mock_cluster_start(broker_count, NULL, 0, errstr, errstr_size);
    if (!tc->mc) {
        free(tc);
        return NULL;
    }
    if (mock_cluster_honour_auto_create(tc->mc) != 0) {
        errstr_printf(errstr, errstr_size,
                      "kaffe_test_cluster_new: could not turn topic "
                      "auto-creation off");
        mock_cluster_stop(tc->mc);
        free(tc);
        return NULL;
    }
    tc->broker_count = broker_count;
    pthread_mutex_init(&tc->lock, NULL);
    return tc;
}

void kaffe_test_cluster_destroy(kaffe_test_cluster_t *tc) {
    if (!tc)
        return;
    if (tc->producer)
        rd_kafka_destroy(tc->producer);
    for (size_t i = 0; i < tc->known_n; i++)
        free(tc->known[i]);
    free(tc->known);
    mock_cluster_stop(tc->mc);
    pthread_mutex_destroy(&tc->lock);
    free(tc);
}

const char *kaffe_test_cluster_endpoints(const kaffe_test_cluster_t *tc) {
    return tc ? mock_cluster_bootstraps(tc->mc) : NULL;
}

kaffe_status_t kaffe_test_cluster_create_topic(kaffe_test_cluster_t *tc, const char *topic,
                                               int partitions) {
    if (!tc || !topic || !*topic || partitions < 1)
        return KAFFE_ERR_INVALID_ARG;
    return mock_cluster_create_topic(tc->mc, topic, partitions) == 0 ? KAFFE_OK
                                                                     : KAFFE_ERR_INVALID_ARG;
}

kaffe_status_t kaffe_test_cluster_produce(kaffe_test_cluster_t *tc, const char *topic,
                                          int32_t partition, const void *key, size_t key_len,
                                          const void *value, size_t value_len, int64_t *offset) {
    if (!tc || !topic || !*topic || partition < -1)
        return KAFFE_ERR_INVALID_ARG;
    pthread_mutex_lock(&tc->lock);
    rd_kafka_t *rk = fixture_producer(tc);
    if (!rk) {
        pthread_mutex_unlock(&tc->lock);
        return KAFFE_ERR_NOMEM;
    }
    delivery_t d = {0};
    rd_kafka_resp_err_t err = topic_exists(tc, rk, topic);
    if (!err)
        err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
            RD_KAFKA_V_KEY(key, key ? key_len : 0),
            RD_KAFKA_V_VALUE((void *)value, value ? value_len : 0),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
    if (!err) {
        int64_t deadline = clock_now_ms() + TESTKIT_TIMEOUT_MS + 5000;
        while (!d.done && clock_now_ms() < deadline)
            rd_kafka_poll(rk, 10);
        err = d.done ? d.err : RD_KAFKA_RESP_ERR__TIMED_OUT;
    }
    pthread_mutex_unlock(&tc->lock);
    if (!err && offset)
        *offset = d.offset;
    return err ? status_from_rdkafka(err) : KAFFE_OK;
}

kaffe_conf_t *kaffe_test_cluster_consumer_conf(const kaffe_test_cluster_t *tc, const char *group,
                                               const char *topics) {
    if (!tc || !group || !topics)
        return NULL;
    kaffe_conf_t *conf = kaffe_conf_new();
    const char *const settings[][2] = {
        {"endpoints", mock_cluster_bootstraps(tc->mc)},
        {"consumer_group", group},
        {"topics", topics},
        {"start_with_earliest_message", "true"},
        {"commit_interval_ms", "100"},
        {"rdkafka.session.timeout.ms", "6000"},
        {"rdkafka.heartbeat.interval.ms", "200"},
        {"rdkafka.fetch.wait.max.ms", "20"},
    };
    char err[512];
    for (size_t i = 0; conf && i < sizeof settings / sizeof settings[0]; i++)
        if (kaffe_conf_set(conf, settings[i][0], settings[i][1], err, sizeof err) != KAFFE_OK) {
            kaffe_conf_destroy(conf);
            conf = NULL;
        }
    return conf;
}

kaffe_status_t kaffe_test_cluster_committed(kaffe_test_cluster_t *tc, const char *group,
                                            const char *topic, int32_t partition, int64_t *offset) {
    if (!tc || !group || !topic || partition < 0 || !offset)
        return KAFFE_ERR_INVALID_ARG;
    const char *const settings[][2] = {{"group.id", group}};
    rd_kafka_t *rk = client(tc, RD_KAFKA_CONSUMER, settings, 1);
    if (!rk)
        return KAFFE_ERR_NOMEM;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic, partition);
    rd_kafka_resp_err_t err = rd_kafka_committed(rk, list, TESTKIT_TIMEOUT_MS);
    if (!err)
        err = list->elems[0].err;
    if (!err)
        *offset = list->elems[0].offset < 0 ? -1 : list->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);
    return err ? status_from_rdkafka(err) : KAFFE_OK;
}

kaffe_status_t kaffe_test_cluster_log_end(kaffe_test_cluster_t *tc, const char *topic,
                                          int32_t partition, int64_t *offset) {
    if (!tc || !topic || partition < 0 || !offset)
        return KAFFE_ERR_INVALID_ARG;
    pthread_mutex_lock(&tc->lock);
    rd_kafka_t *rk = fixture_producer(tc);
    int64_t low = 0, high = 0;
    rd_kafka_resp_err_t err =
        rk ? rd_kafka_query_watermark_offsets(rk, topic, partition, &low, &high, TESTKIT_TIMEOUT_MS)
           : RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE;
    pthread_mutex_unlock(&tc->lock);
    if (!rk)
        return KAFFE_ERR_NOMEM;
    if (!err)
        *offset = high;
    return err ? status_from_rdkafka(err) : KAFFE_OK;
}

/* Kafka protocol ApiKeys (librdkafka's RD_KAFKAP_*, not in its public
 * headers), in kaffe_test_request_t's order. */
static const int16_t api_keys[] = {
    0,  /* Produce */
    1,  /* Fetch */
    3,  /* Metadata */
    8,  /* OffsetCommit */
    9,  /* OffsetFetch */
    10, /* FindCoordinator */
    11, /* JoinGroup */
    12, /* Heartbeat */
    14, /* SyncGroup */
};

kaffe_status_t kaffe_test_cluster_fail_requests(kaffe_test_cluster_t *tc,
                                                kaffe_test_request_t request, int error,
                                                int count) {
    if (!tc || (unsigned)request >= sizeof api_keys / sizeof api_keys[0] || error <= 0 || count < 1)
        return KAFFE_ERR_INVALID_ARG;
    rd_kafka_resp_err_t *errors = malloc((size_t)count * sizeof *errors);
    if (!errors)
        return KAFFE_ERR_NOMEM;
    for (int i = 0; i < count; i++)
        errors[i] = (rd_kafka_resp_err_t)error;
    rd_kafka_mock_push_request_errors_array(mock_cluster_handle(tc->mc), api_keys[request],
                                            (size_t)count, errors);
    free(errors);
    return KAFFE_OK;
}

static kaffe_status_t set_broker(kaffe_test_cluster_t *tc, int broker_id, int up) {
    if (!tc || broker_id < 1 || broker_id > tc->broker_count)
        return KAFFE_ERR_INVALID_ARG;
    rd_kafka_mock_cluster_t *m = mock_cluster_handle(tc->mc);
    rd_kafka_resp_err_t err = up ? rd_kafka_mock_broker_set_up(m, broker_id)
                                 : rd_kafka_mock_broker_set_down(m, broker_id);
    return err ? status_from_rdkafka(err) : KAFFE_OK;
}

kaffe_status_t kaffe_test_cluster_broker_down(kaffe_test_cluster_t *tc, int broker_id) {
    return set_broker(tc, broker_id, 0);
}

kaffe_status_t kaffe_test_cluster_broker_up(kaffe_test_cluster_t *tc, int broker_id) {
    return set_broker(tc, broker_id, 1);
}

kaffe_status_t kaffe_test_consume_until(kaffe_consumer_t *c, kaffe_test_condition_t condition,
                                        void *opaque, int timeout_ms) {
    if (!c || !condition)
        return KAFFE_ERR_INVALID_ARG;
    kaffe_status_t st = kaffe_consumer_start(c);
    if (st != KAFFE_OK && st != KAFFE_ERR_STATE) /* STATE: it runs (or ran) already */
        return st;
    int64_t deadline = clock_now_ms() + timeout_ms;
    int held = 0, stopped_itself = 0;
    for (;;) {
        if ((held = condition(opaque)))
            break;
        kaffe_status_t w = kaffe_consumer_wait(c, TESTKIT_POLL_MS);
        if (w != KAFFE_ERR_TIMED_OUT) { /* stopped (OK), or a wait it refuses */
            stopped_itself = w == KAFFE_OK;
            break;
        }
        if (timeout_ms >= 0 && clock_now_ms() >= deadline)
            break;
    }
    st = kaffe_consumer_stop(c);
    if (st != KAFFE_OK)
        return st;
    if (held)
        return KAFFE_OK;
    return stopped_itself ? KAFFE_ERR_STOPPED : KAFFE_ERR_TIMED_OUT;
}
