/* The embedded cluster. librdkafka's mock cluster lives inside an rd_kafka_t
 * handle; we keep a private producer handle just to own it. */
#include "mock/mock_cluster.h"

#include <stdlib.h>
#include <string.h>

#include "common/errstr.h"

struct mock_cluster {
    rd_kafka_t *owner; /* owns the mock cluster's threads */
    rd_kafka_mock_cluster_t *mcluster;
    int broker_count;
    char *bootstraps;
};

mock_cluster_t *mock_cluster_start(int broker_count, const mock_topic_t *topics, size_t topic_count,
                                   char *errstr, size_t errstr_size) {
    if (broker_count < 1) {
        errstr_printf(errstr, errstr_size, "mock cluster: broker count must be at least 1");
        return NULL;
    }
    mock_cluster_t *mc = calloc(1, sizeof *mc);
    if (!mc) {
        errstr_printf(errstr, errstr_size, "mock cluster: out of memory");
        return NULL;
    }
    mc->broker_count = broker_count;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char rderr[256];
    /* The owner handle never talks to anything: keep its logs quiet. */
    rd_kafka_conf_set(conf, "log_level", "0", rderr, sizeof rderr);
    mc->owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof rderr);
    if (!mc->owner) {
        rd_kafka_conf_destroy(conf);
        errstr_printf(errstr, errstr_size, "mock cluster: %s", rderr);
        free(mc);
        return NULL;
    }
    mc->mcluster = rd_kafka_mock_cluster_new(mc->owner, broker_count);
    if (!mc->mcluster) {
        errstr_printf(errstr, errstr_size, "mock cluster: could not start %d brokers",
                      broker_count);
        rd_kafka_destroy(mc->owner);
        free(mc);
        return NULL;
    }
    mc->bootstraps = strdup(rd_kafka_mock_cluster_bootstraps(mc->mcluster));
    for (size_t i = 0; i < topic_count; i++) {
        if (mock_cluster_create_topic(mc, topics[i].name, topics[i].partitions) != 0) {
            errstr_printf(errstr, errstr_size, "mock cluster: could not create topic %s:%d",
                          topics[i].name, topics[i].partitions);
            mock_cluster_stop(mc);
            return NULL;
        }
    }
    return mc;
}

int mock_cluster_create_topic(mock_cluster_t *mc, const char *name, int partitions) {
    int replication = mc->broker_count < 3 ? mc->broker_count : 3;
    return rd_kafka_mock_topic_create(mc->mcluster, name, partitions, replication) ==
                   RD_KAFKA_RESP_ERR_NO_ERROR
               ? 0
               : -1;
}

/* Kafka protocol ApiKey 3 (librdkafka's RD_KAFKAP_Metadata, not in its
 * public headers). */
#define MOCK_API_METADATA 3

int mock_cluster_honour_auto_create(mock_cluster_t *mc) {
    return rd_kafka_mock_set_apiversion(mc->mcluster, MOCK_API_METADATA, 0, 4) ==
                   RD_KAFKA_RESP_ERR_NO_ERROR
               ? 0
               : -1;
}

const char *mock_cluster_bootstraps(const mock_cluster_t *mc) {
    return mc->bootstraps;
}

rd_kafka_mock_cluster_t *mock_cluster_handle(mock_cluster_t *mc) {
    return mc->mcluster;
}

void mock_cluster_stop(mock_cluster_t *mc) {
    if (!mc)
        return;
    rd_kafka_mock_cluster_destroy(mc->mcluster);
    rd_kafka_destroy(mc->owner);
    free(mc->bootstraps);
    free(mc);
}
