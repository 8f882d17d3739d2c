/** @file
 * kaffe/testing.h — a test kit for applications' own tests: an embedded
 * Kafka cluster (librdkafka's mock cluster: the real Kafka protocol over TCP
 * on 127.0.0.1, in the test's process), topics, fixture messages, the
 * application's real handler run through a kaffe consumer until a condition
 * holds, committed offsets, and injected broker errors.
 *
 *     kaffe_test_cluster_t *tc = kaffe_test_cluster_new(1, err, sizeof err);
 *     kaffe_test_cluster_create_topic(tc, "orders", 3);
 *     kaffe_test_cluster_produce(tc, "orders", -1, "k", 1, "v", 1, NULL);
 *     kaffe_conf_t *conf = kaffe_test_cluster_consumer_conf(tc, "billing", "orders");
 *     kaffe_conf_set_message_handler(conf, my_handler, &state);
 *     kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
 *     kaffe_test_consume_until(c, all_seen, &state, 10000);   // starts, waits, stops
 *     kaffe_test_cluster_committed(tc, "billing", "orders", 0, &offset);
 *
 * Limits of the embedded cluster: plaintext only (no TLS, no SASL); a
 * partition keeps only about 100 000 messages or 5 MB (older ones vanish
 * silently); a member that left keeps its partitions until its session
 * times out (kaffe_test_cluster_consumer_conf sets a short one); not every
 * admin request is served. Use a real broker for what must be real.
 *
 * Threads: a cluster's functions may be called from any thread while it
 * runs; kaffe_test_cluster_destroy from one, after the clients that use it
 * (consumers, producers) are destroyed. Errors are kaffe_status_t values; a
 * text goes to errstr where there is one. */
#ifndef KAFFE_TESTING_H
#define KAFFE_TESTING_H

#include <stddef.h>
#include <stdint.h>

#include <kaffe/conf.h>
#include <kaffe/consumer.h>
#include <kaffe/error.h>
#include <kaffe/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/** An embedded cluster. */
typedef struct kaffe_test_cluster kaffe_test_cluster_t;

/** Starts a cluster of broker_count brokers (1 to 16) on 127.0.0.1, with no
 * topic yet and topic auto-creation off (a topic is created with
 * kaffe_test_cluster_create_topic). NULL with errstr set on failure. */
KAFFE_API kaffe_test_cluster_t *kaffe_test_cluster_new(int broker_count, char *errstr,
                                                       size_t errstr_size);

/** Stops the cluster and frees it. NULL is allowed. */
KAFFE_API void kaffe_test_cluster_destroy(kaffe_test_cluster_t *tc);

/** "127.0.0.1:port[,...]": the value of a kaffe `endpoints` property. Valid
 * until kaffe_test_cluster_destroy. */
KAFFE_API const char *kaffe_test_cluster_endpoints(const kaffe_test_cluster_t *tc);

/** Creates topic with partitions partitions (replication factor min(3,
 * brokers)). KAFFE_ERR_INVALID_ARG for NULLs or partitions < 1. */
KAFFE_API kaffe_status_t kaffe_test_cluster_create_topic(kaffe_test_cluster_t *tc,
                                                         const char *topic, int partitions);

/** Produces one fixture message and waits until the cluster has it: to
 * partition, or with partition -1 to the partition of key chosen as Kafka's
 * Java client does (murmur2; a random one for a NULL key). key or value may
 * be NULL. *offset (may be NULL) gets its offset. Returns KAFFE_OK or the
 * delivery's error (e.g. KAFFE_ERR_UNKNOWN_TOPIC). */
KAFFE_API kaffe_status_t kaffe_test_cluster_produce(kaffe_test_cluster_t *tc, const char *topic,
                                                    int32_t partition, const void *key,
                                                    size_t key_len, const void *value,
                                                    size_t value_len, int64_t *offset);

/** A consumer configuration for this cluster: endpoints, consumer_group,
 * topics (comma-separated), start_with_earliest_message = true, and group
 * timings that suit the embedded cluster (session timeout 6 s, heartbeat
 * 200 ms, commit every 100 ms, fetch wait 20 ms). Set the handler and
 * anything else on it, then kaffe_consumer_new(). NULL when out of memory or
 * a NULL argument. */
KAFFE_API kaffe_conf_t *kaffe_test_cluster_consumer_conf(const kaffe_test_cluster_t *tc,
                                                         const char *group, const char *topics);

/** The offset group committed for topic/partition into *offset: -1 when it
 * committed none. KAFFE_OK, or the error of the request. */
KAFFE_API kaffe_status_t kaffe_test_cluster_committed(kaffe_test_cluster_t *tc, const char *group,
                                                      const char *topic, int32_t partition,
                                                      int64_t *offset);

/** The log end (high watermark) of topic/partition into *offset. */
KAFFE_API kaffe_status_t kaffe_test_cluster_log_end(kaffe_test_cluster_t *tc, const char *topic,
                                                    int32_t partition, int64_t *offset);

/** The requests kaffe_test_cluster_fail_requests can fail. */
typedef enum kaffe_test_request {
    KAFFE_TEST_PRODUCE,          /**< Produce */
    KAFFE_TEST_FETCH,            /**< Fetch */
    KAFFE_TEST_METADATA,         /**< Metadata */
    KAFFE_TEST_OFFSET_COMMIT,    /**< OffsetCommit (a consumer's commit) */
    KAFFE_TEST_OFFSET_FETCH,     /**< OffsetFetch (committed offsets read at assignment) */
    KAFFE_TEST_FIND_COORDINATOR, /**< FindCoordinator */
    KAFFE_TEST_JOIN_GROUP,       /**< JoinGroup */
    KAFFE_TEST_HEARTBEAT,        /**< Heartbeat */
    KAFFE_TEST_SYNC_GROUP        /**< SyncGroup */
} kaffe_test_request_t;

/** The next count requests of the kind fail with error, a Kafka protocol
 * error code: one of librdkafka's broker error codes (the positive
 * RD_KAFKA_RESP_ERR_* values, e.g. 15 COORDINATOR_NOT_AVAILABLE, 27
 * REBALANCE_IN_PROGRESS, 6 NOT_LEADER_FOR_PARTITION), as kaffe_err_name()
 * names them. Whichever broker answers the request answers with the error;
 * the clients then retry or report as they would against a real broker.
 * KAFFE_ERR_INVALID_ARG for an unknown kind, count < 1, or error <= 0. */
KAFFE_API kaffe_status_t kaffe_test_cluster_fail_requests(kaffe_test_cluster_t *tc,
                                                          kaffe_test_request_t request, int error,
                                                          int count);

/** Takes broker broker_id (1 .. broker_count) down: its connections close
 * and it refuses new ones until kaffe_test_cluster_broker_up. */
KAFFE_API kaffe_status_t kaffe_test_cluster_broker_down(kaffe_test_cluster_t *tc, int broker_id);
/** Brings broker broker_id back up after kaffe_test_cluster_broker_down;
 * clients reconnect to it. */
KAFFE_API kaffe_status_t kaffe_test_cluster_broker_up(kaffe_test_cluster_t *tc, int broker_id);

/** A condition kaffe_test_consume_until checks: nonzero when it holds. */
typedef int (*kaffe_test_condition_t)(void *opaque);

/** Runs consumer c until condition(opaque) holds, then stops it: starts c
 * (unless it runs already), checks the condition every 5 ms on the calling
 * thread, and calls kaffe_consumer_stop() (drain, commit, leave the group)
 * when it holds, when timeout_ms pass, or when c stopped by itself. Returns
 * KAFFE_OK when the condition held and c stopped cleanly,
 * KAFFE_ERR_TIMED_OUT when it did not hold in time, KAFFE_ERR_STOPPED when
 * c was stopped (a stop request) before it held, or the status c stopped
 * with (a handler failure under on_error = stop, a fatal error). c is
 * stopped in every case; destroy it with kaffe_consumer_destroy(). Not from
 * one of c's handlers or callbacks. */
KAFFE_API kaffe_status_t kaffe_test_consume_until(kaffe_consumer_t *c,
                                                  kaffe_test_condition_t condition, void *opaque,
                                                  int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
