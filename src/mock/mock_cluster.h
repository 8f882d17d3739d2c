/* src/mock — the embedded cluster: librdkafka's mock cluster (real Kafka
 * protocol over TCP on 127.0.0.1), for tests, benchmarks and `kaffe mock`.
 *
 * Plaintext only. A mock partition keeps only about 100k messages or 5 MB;
 * older data is dropped silently, so size workloads below that.
 *
 * Thread safety: start/stop on one thread; the accessors and fault-injection
 * through mock_cluster_handle() may be used from any thread while running. */
#ifndef KAFFE_SRC_MOCK_CLUSTER_H
#define KAFFE_SRC_MOCK_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

typedef struct mock_cluster mock_cluster_t;

/* A topic to create: "name" with partitions partitions. */
typedef struct mock_topic {
    const char *name;
    int partitions;
} mock_topic_t;

/* Starts a cluster of broker_count brokers with the given topics (replication
 * factor min(3, broker_count)). Returns NULL with errstr set on failure. */
mock_cluster_t *mock_cluster_start(int broker_count, const mock_topic_t *topics, size_t topic_count,
                                   char *errstr, size_t errstr_size);

/* Creates another topic on a running cluster. 0 on success. */
int mock_cluster_create_topic(mock_cluster_t *mc, const char *name, int partitions);

/* Topic auto-creation. librdkafka 2.0.2's mock answers Metadata only up to
 * version 2, which cannot carry the client's allow.auto.create.topics, so by
 * default the cluster creates any topic a client asks about (4 partitions),
 * kaffe's producer and consumers included. After this call it answers up to
 * version 4 (the highest librdkafka 2.0.2 sends) and honours the flag like a
 * real broker with auto.create.topics.enable=true: a client that does not
 * ask for it (kaffe's producer and consumers, by default) gets
 * UNKNOWN_TOPIC_OR_PART; one that does (librdkafka's producer default, kcat
 * -P) still creates the topic. Call once, before any client connects.
 * 0 on success. */
int mock_cluster_honour_auto_create(mock_cluster_t *mc);

/* "127.0.0.1:port,..." — valid until mock_cluster_stop(). */
const char *mock_cluster_bootstraps(const mock_cluster_t *mc);

/* The librdkafka mock handle, for fault injection (rd_kafka_mock_*). */
rd_kafka_mock_cluster_t *mock_cluster_handle(mock_cluster_t *mc);

/* Stops the cluster and frees it. NULL is allowed. Clients connected to it
 * should be destroyed first (they otherwise just see brokers go down). */
void mock_cluster_stop(mock_cluster_t *mc);

#endif
