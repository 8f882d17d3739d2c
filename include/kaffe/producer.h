/** @file
 * kaffe — the producer.
 *
 * Kaffe's three produce_sync forms, in C:
 *
 *   kaffe_produce_sync(p, key, klen, value, vlen)                  first topic, strategy
 *   kaffe_produce_sync_topic(p, topic, key, klen, value, vlen)     given topic, strategy
 *   kaffe_produce_sync_partition(p, topic, 2, key, klen, value, vlen)  given partition
 *
 * plus a form with headers and a timestamp (kaffe_produce_sync_msg), a batch
 * call with one status per message (kaffe_produce_sync_batch), async produce
 * with a delivery callback (kaffe_produce_async) and a flush.
 *
 * Partition strategy (property partition_strategy, for messages that do not
 * name a partition):
 *   round_robin  (default) per topic: 0, 1, 2, ... from 0 when the producer
 *                starts, shared by all threads.
 *   random       uniformly random partition per message.
 *   md5          Kaffe-compatible: (sum of the 16 bytes of md5(key)) mod the
 *                partition count, for data partitioned by Kaffe.
 *   murmur2      Java-client compatible: (murmur2(key) & 0x7fffffff) mod the
 *                partition count, i.e. the Java default partitioner's choice
 *                for keyed messages.
 *   A function set with kaffe_conf_set_partitioner() overrides the property;
 *   it is called for every message without a partition, null keys included.
 * md5 and murmur2 need a key: a message with a NULL key is placed
 * round_robin instead (an empty, non-NULL key is hashed like any other).
 *
 * Partition counts come from the cluster's metadata: read when a topic is
 * first used, cached, and re-read every partition_refresh_ms, and when a
 * message names a partition beyond the cached count (at most once a second
 * per topic: within a second of the last read such a message is refused with
 * KAFFE_ERR_UNKNOWN_PARTITION without asking the cluster). So new partitions
 * of a grown topic are used; a cached count never goes down.
 *
 * Acknowledgement: the producer asks for acks=all unless
 * rdkafka.request.required.acks (or rdkafka.acks) says otherwise. A sync call
 * returns KAFFE_OK only after the broker acknowledged the message.
 *
 * Topics are not created implicitly: producing to a topic the cluster does
 * not have fails with KAFFE_ERR_UNKNOWN_TOPIC (after asking again for up to
 * a second: a topic just created is not known to every broker at once),
 * unless
 * rdkafka.allow.auto.create.topics=true is set (and the broker allows it).
 * `kaffe mock` honours this too; a librdkafka 2.0.2 mock cluster started
 * without raising its Metadata version (as `kaffe mock` does) creates any
 * topic a client asks about, whatever the client asked for.
 *
 * Threads: every produce call and kaffe_producer_flush() may be called from
 * any number of threads at once. Concurrent sync calls are not serialised:
 * their messages travel in the same librdkafka batches. Delivery callbacks
 * run on one internal thread, the producer's delivery thread. The memory of
 * a message whose callback has returned is freed by the next produce call on
 * any thread (where it was most likely allocated, which is cheaper), or by
 * the delivery thread within a few milliseconds when no produce call comes.
 *
 * Errors: every call returns a kaffe_status_t. kaffe's own codes name the
 * common failures (the same codes the error callback gets for the same
 * fault; see error.h); any other librdkafka error is passed through
 * unchanged (kaffe_err_name() and kaffe_strerror() describe both):
 *   KAFFE_ERR_INVALID_ARG          NULL producer/topic/results, count 0, bad flag.
 *   KAFFE_ERR_UNKNOWN_TOPIC        the cluster has no such topic.
 *   KAFFE_ERR_UNKNOWN_PARTITION    the named partition does not exist.
 *   KAFFE_ERR_PARTITIONER          the partitioner function returned a value
 *                                  outside [0, partition_count).
 *   KAFFE_ERR_MSG_SIZE_TOO_LARGE   larger than message.max.bytes (client) or
 *                                  than the broker accepts.
 *   KAFFE_ERR_ALL_BROKERS_DOWN     not acknowledged within the produce timeout
 *                                  while no broker was reachable.
 *   KAFFE_ERR_TIMED_OUT            not acknowledged within the produce timeout
 *                                  (produce_timeout_ms, librdkafka's
 *                                  message.timeout.ms) for another reason.
 *   KAFFE_ERR_STATE                a sync call or flush from the delivery thread.
 * A message is never dropped without its caller being told: a sync call
 * returns its status, an async message gets exactly one callback. */
#ifndef KAFFE_PRODUCER_H
#define KAFFE_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

#include <kaffe/conf.h>
#include <kaffe/error.h>
#include <kaffe/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A producer (opaque). Every produce call and kaffe_producer_flush() may be
 * called from any number of threads at once (see the file description). */
typedef struct kaffe_producer_s kaffe_producer_t;

/** "No partition given": the partition strategy chooses. */
#define KAFFE_PARTITION_ANY ((int32_t)-1)

/** One message header. Borrowed for the duration of the produce call. */
typedef struct kaffe_header {
    const char *name;  /**< NUL-terminated */
    const void *value; /**< NULL for a null header value */
    size_t value_len;  /**< bytes at value */
} kaffe_header_t;

/** A message to produce. Every pointer is borrowed for the duration of the
 * produce call only: kaffe copies what it must keep. Start from
 * KAFFE_PRODUCE_MSG_INIT: a zeroed struct names partition 0. */
typedef struct kaffe_produce_msg {
    const char *topic; /**< NULL: the first configured topic */
    int32_t partition; /**< KAFFE_PARTITION_ANY: the partition strategy chooses */
    const void *key;   /**< NULL: a null key (an empty key is non-NULL with key_len 0) */
    size_t key_len;    /**< bytes at key */
    const void *value; /**< NULL: a null value (a tombstone) */
    size_t value_len;  /**< bytes at value */
    const kaffe_header_t *headers; /**< header_count headers, or NULL */
    size_t header_count;           /**< number of headers */
    int64_t timestamp_ms;          /**< create time in ms since the epoch; 0: now */
} kaffe_produce_msg_t;

/** Initialiser for kaffe_produce_msg_t: the first configured topic, the
 * partition chosen by the strategy (KAFFE_PARTITION_ANY), everything else
 * zero (null key and value, no headers, timestamp now). */
#define KAFFE_PRODUCE_MSG_INIT                                                                     \
    { .topic = NULL, .partition = KAFFE_PARTITION_ANY }

/** What happened to one message. */
typedef struct kaffe_produce_result {
    kaffe_status_t status; /**< KAFFE_OK: acknowledged by the broker */
    int32_t partition;     /**< the partition it was sent to; -1 if none was chosen */
    int64_t offset;        /**< its offset in that partition; -1 when not known */
} kaffe_produce_result_t;

/** What an async delivery callback is told. Every pointer is valid only
 * during the callback. */
typedef struct kaffe_delivery_report {
    kaffe_status_t status; /**< KAFFE_OK: acknowledged by the broker */
    const char *topic;     /**< the topic it was produced to */
    int32_t partition;     /**< -1 if none was chosen */
    int64_t offset;        /**< -1 when not known */
    const void *key;       /**< kaffe's copy of the key, NULL for a null key */
    size_t key_len;        /**< bytes at key */
    const void *value;     /**< kaffe's copy of the value, NULL for a null value */
    size_t value_len;      /**< bytes at value */
} kaffe_delivery_report_t;

/** Called exactly once per message accepted by kaffe_produce_async(), on the
 * producer's delivery thread, when the broker acknowledged the message or it
 * finally failed. It must not block for long (it delays every other
 * delivery, sync ones included) and must not call kaffe_producer_flush(),
 * kaffe_producer_destroy() or a sync produce call (those return
 * KAFFE_ERR_STATE there). It may call kaffe_produce_async(), which then
 * returns RD_KAFKA_RESP_ERR__QUEUE_FULL instead of blocking. */
typedef void (*kaffe_delivery_cb_t)(const kaffe_delivery_report_t *report, void *opaque);

/** Creates a producer from conf (endpoints or heroku_kafka_env, topics,
 * partition_strategy or a partitioner function, produce_timeout_ms,
 * rdkafka.* passthrough). Does not wait for the cluster: topics are looked up
 * when first used. On success the producer takes conf: it is freed by the
 * producer and must not be used or destroyed by the application. On failure
 * NULL is returned, a message naming the problem is written to errstr (which
 * may be NULL), and the caller keeps conf. */
KAFFE_API kaffe_producer_t *kaffe_producer_new(kaffe_conf_t *conf, char *errstr,
                                               size_t errstr_size);

/** Produces (key, value) to the first configured topic, partition chosen by
 * the strategy, and waits for the broker's acknowledgement. key or value may
 * be NULL (null key / null value); both are borrowed for the call only.
 * Returns KAFFE_OK once acknowledged, or why the message was not written. */
KAFFE_API kaffe_status_t kaffe_produce_sync(kaffe_producer_t *p, const void *key, size_t key_len,
                                            const void *value, size_t value_len);

/** As kaffe_produce_sync(), to topic. */
KAFFE_API kaffe_status_t kaffe_produce_sync_topic(kaffe_producer_t *p, const char *topic,
                                                  const void *key, size_t key_len,
                                                  const void *value, size_t value_len);

/** As kaffe_produce_sync(), to topic/partition; the strategy is not consulted
 * (and round_robin's position does not move). A partition outside the
 * topic's partitions is KAFFE_ERR_UNKNOWN_PARTITION. */
KAFFE_API kaffe_status_t kaffe_produce_sync_partition(kaffe_producer_t *p, const char *topic,
                                                      int32_t partition, const void *key,
                                                      size_t key_len, const void *value,
                                                      size_t value_len);

/** Produces one message with every option (headers, timestamp) and waits for
 * the acknowledgement. result (may be NULL) receives the status, partition
 * and offset. Returns the same status as result->status. */
KAFFE_API kaffe_status_t kaffe_produce_sync_msg(kaffe_producer_t *p, const kaffe_produce_msg_t *msg,
                                                kaffe_produce_result_t *result);

/** Produces count messages and waits until every one of them is acknowledged
 * or has failed; results[i] (an array of count, owned by the caller) tells
 * what happened to msgs[i]. Messages are handed to librdkafka in order and
 * travel together; one failing does not stop the others. Per partition, the
 * order of the successfully written messages is their order in msgs (given
 * librdkafka's retry semantics: enable idempotence for strict ordering under
 * retries).
 * Returns KAFFE_OK when every message was acknowledged,
 * KAFFE_ERR_BATCH_INCOMPLETE when at least one was not (read results: the
 * others were written), or KAFFE_ERR_INVALID_ARG (p, msgs or results NULL, or
 * count 0), in which case nothing was produced and results is untouched. */
KAFFE_API kaffe_status_t kaffe_produce_sync_batch(kaffe_producer_t *p,
                                                  const kaffe_produce_msg_t *msgs, size_t count,
                                                  kaffe_produce_result_t *results);

/** Queues msg and returns without waiting for the broker. Key, value and
 * headers are copied; msg may be reused at once. When librdkafka's queue is
 * full (queue.buffering.max.messages), waits for room, except on the
 * delivery thread where it returns RD_KAFKA_RESP_ERR__QUEUE_FULL.
 * On KAFFE_OK, cb (if not NULL) is called exactly once with the outcome; if
 * cb is NULL, a failed delivery is reported to the conf's error callback.
 * On any other return the message was not queued and cb is never called
 * (the status says why, as for the sync calls). */
KAFFE_API kaffe_status_t kaffe_produce_async(kaffe_producer_t *p, const kaffe_produce_msg_t *msg,
                                             kaffe_delivery_cb_t cb, void *opaque);

/** Waits until every message produced before the call has been acknowledged
 * or failed, and its delivery callback has returned, or timeout_ms passes
 * (-1: no limit). Sends queued messages at once (linger.ms is skipped while a
 * flush waits). Returns KAFFE_OK, KAFFE_ERR_TIMED_OUT (messages remain in
 * flight), or KAFFE_ERR_STATE on the delivery thread. */
KAFFE_API kaffe_status_t kaffe_producer_flush(kaffe_producer_t *p, int timeout_ms);

/** Flushes (up to produce_timeout_ms), then fails whatever is still queued:
 * remaining async messages get their callbacks with
 * RD_KAFKA_RESP_ERR__PURGE_QUEUE or RD_KAFKA_RESP_ERR__PURGE_INFLIGHT before
 * this returns. Frees the producer. No produce call may be running or start
 * during or after this call (a call after destroy is undefined: kaffe cannot
 * tell a freed producer). From a delivery callback it is refused: the error
 * callback (or the log) gets KAFFE_ERR_STATE and the producer stays as it
 * is. NULL is allowed. */
KAFFE_API void kaffe_producer_destroy(kaffe_producer_t *p);

#ifdef __cplusplus
}
#endif

#endif /* KAFFE_PRODUCER_H */
