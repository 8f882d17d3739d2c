/** @file
 * kaffe — a consumed message, as the handler sees it.
 *
 * A kaffe_message_t is owned by the consumer; the application borrows it.
 * Sync mode: it is valid only while the handler runs. Async mode: if the
 * handler returns KAFFE_OK it stays valid until the application calls
 * kaffe_consumer_ack() for it (or destroys the consumer); if the handler
 * returns an error it is valid only until then. Every pointer an accessor
 * returns (topic, key, value, header names and values) lives exactly as long
 * as the message. All accessors are read-only and may be called from any
 * thread, concurrently, while the message is valid; none allocates. */
#ifndef KAFFE_MESSAGE_H
#define KAFFE_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include <kaffe/error.h>
#include <kaffe/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A consumed message (opaque): owned by the consumer, borrowed by the
 * application; see the file description for how long it stays valid. */
typedef struct kaffe_message_s kaffe_message_t;

/** Which clock a message's timestamp comes from (kaffe_message_timestamp()). */
typedef enum kaffe_timestamp_type {
    KAFFE_TIMESTAMP_NONE = 0,            /**< the message has no timestamp */
    KAFFE_TIMESTAMP_CREATE_TIME = 1,     /**< set by the producer when it created the message */
    KAFFE_TIMESTAMP_LOG_APPEND_TIME = 2, /**< set by the broker when it appended the message */
} kaffe_timestamp_type_t;

/** @{ */
/** The topic name (NUL-terminated), partition and offset. */
KAFFE_API const char *kaffe_message_topic(const kaffe_message_t *m);
KAFFE_API int32_t kaffe_message_partition(const kaffe_message_t *m);
KAFFE_API int64_t kaffe_message_offset(const kaffe_message_t *m);
/** @} */

/** The key; NULL for a null key (an empty key is a non-NULL pointer with
 * *len == 0). len may be NULL. */
KAFFE_API const void *kaffe_message_key(const kaffe_message_t *m, size_t *len);

/** The value; NULL for a null value (a tombstone). len may be NULL. */
KAFFE_API const void *kaffe_message_value(const kaffe_message_t *m, size_t *len);

/** Milliseconds since the epoch; type (may be NULL) says which clock. -1 when
 * the message has no timestamp. */
KAFFE_API int64_t kaffe_message_timestamp(const kaffe_message_t *m, kaffe_timestamp_type_t *type);

/** Which handler attempt this is: 1 the first time the message is handed to
 * the handler, 2 on its first retry (on_error=retry) or its redelivery after
 * kaffe_consumer_resume_partition() (on_error=pause), and so on. Counts
 * within this consumer's life only (a redelivery after a restart or a
 * rebalance starts at 1 again). 0 for NULL. */
KAFFE_API int kaffe_message_attempt(const kaffe_message_t *m);

/* Headers are parsed on the first call of any of the three functions below
 * (not for handlers that never read them); concurrent first calls from
 * several threads are safe, one parses and the others wait for it. */

/** Number of headers (0 when there are none). */
KAFFE_API size_t kaffe_message_header_count(const kaffe_message_t *m);

/** The idx'th header (in wire order). *value is NULL for a null header value.
 * Returns KAFFE_ERR_INVALID_ARG when idx is out of range. */
KAFFE_API kaffe_status_t kaffe_message_header(const kaffe_message_t *m, size_t idx,
                                              const char **name, const void **value, size_t *size);

/** The last header named name, or KAFFE_ERR_INVALID_ARG when there is none. */
KAFFE_API kaffe_status_t kaffe_message_header_last(const kaffe_message_t *m, const char *name,
                                                   const void **value, size_t *size);

/** A batch of consumed messages, as a batch handler sees it (opaque): the
 * messages of one lane (one partition with ordering=partition, one key lane
 * with ordering=key, any partitions with ordering=unordered), in offset
 * order per partition. Valid only while the batch handler runs; the messages
 * in it are valid as single messages are (sync: while the handler runs;
 * async: until each is acked). */
typedef struct kaffe_batch_s kaffe_batch_t;

/** Number of messages in the batch (at least 1; 0 for NULL). */
KAFFE_API size_t kaffe_batch_count(const kaffe_batch_t *b);

/** The i'th message (offset order within a partition), or NULL when i is out
 * of range. */
KAFFE_API kaffe_message_t *kaffe_batch_message(const kaffe_batch_t *b, size_t i);

/** Acks the i'th message now (sync or async mode): as kaffe_consumer_ack()
 * for a single message. KAFFE_ERR_ACK_DUPLICATE when it was acked or failed
 * already, KAFFE_ERR_REVOKED when its partition was revoked meanwhile,
 * KAFFE_ERR_STOPPED after the consumer stopped, KAFFE_ERR_INVALID_ARG for a
 * bad index. From the batch handler's thread while it runs (async mode: the
 * messages may also be acked one by one later with kaffe_consumer_ack()). */
KAFFE_API kaffe_status_t kaffe_batch_ack(kaffe_batch_t *b, size_t i);

/** The i'th message failed with the application's value error (not
 * KAFFE_OK): it goes through the consumer's on_error policy alone, as a
 * single message whose handler returned error would (retry, dead_letter,
 * pause, skip or stop). Same results as kaffe_batch_ack(). */
KAFFE_API kaffe_status_t kaffe_batch_fail(kaffe_batch_t *b, size_t i, int error);

/** Kaffe's "handled up to offset": acks every message of the batch at or
 * below offset that is not acked or failed yet (kaffe_batch_ack() for each).
 * Meant for batches of one partition (ordering=partition); with other
 * orderings it compares each message's own offset. KAFFE_OK, or the first
 * error kaffe_batch_ack() gave. */
KAFFE_API kaffe_status_t kaffe_batch_handled_up_to(kaffe_batch_t *b, int64_t offset);

#ifdef __cplusplus
}
#endif

#endif /* KAFFE_MESSAGE_H */
