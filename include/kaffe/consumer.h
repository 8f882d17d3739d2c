/* kaffe — the consumer.
 *
 * A consumer joins a consumer group, subscribes to the configured topics and
 * calls the configured message handler for every message, on a pool of
 * worker threads. kaffe commits, per partition, only the lowest offset not
 * yet acked (the watermark), with the acked offsets above it in the commit
 * metadata: a message that was never acked is delivered again after a
 * restart, and messages acked after it are not.
 *
 * Lifecycle: kaffe_consumer_new -> kaffe_consumer_start -> ... ->
 * kaffe_consumer_stop -> kaffe_consumer_destroy. */
#ifndef KAFFE_CONSUMER_H
#define KAFFE_CONSUMER_H

#include <stddef.h>
#include <stdint.h>

#include <kaffe/conf.h>
#include <kaffe/error.h>
#include <kaffe/export.h>
#include <kaffe/message.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kaffe_consumer_s kaffe_consumer_t;

/* Creates a consumer from conf. On success the consumer takes conf: it is
 * freed by the consumer and must not be used or destroyed by the
 * application. On failure NULL is returned, a message is written to errstr,
 * and the caller keeps conf. Nothing connects until kaffe_consumer_start(). */
KAFFE_API kaffe_consumer_t *kaffe_consumer_new(kaffe_conf_t *conf, char *errstr,
                                               size_t errstr_size);

/* Starts polling and dispatching. Returns KAFFE_ERR_STATE if already started. */
KAFFE_API kaffe_status_t kaffe_consumer_start(kaffe_consumer_t *c);

/* Acks a message in async mode. Call exactly once per message the handler
 * accepted, from any thread; m must not be used after this call.
 * Returns KAFFE_OK, KAFFE_ERR_REVOKED (the partition was revoked since m was
 * delivered; the ack changes nothing and m is released), KAFFE_ERR_NOT_ASYNC
 * (sync mode), or KAFFE_ERR_INVALID_ARG. */
KAFFE_API kaffe_status_t kaffe_consumer_ack(kaffe_consumer_t *c, kaffe_message_t *m);

/* Stops fetching, waits for in-flight messages (up to the drain timeout),
 * commits, and leaves the group. Safe to call from any thread other than a
 * handler, and more than once. Returns the error that stopped the consumer
 * (e.g. a handler failure), or KAFFE_OK. */
KAFFE_API kaffe_status_t kaffe_consumer_stop(kaffe_consumer_t *c);

/* Frees the consumer, stopping it first if needed. NULL is allowed. */
KAFFE_API void kaffe_consumer_destroy(kaffe_consumer_t *c);

#ifdef __cplusplus
}
#endif

#endif /* KAFFE_CONSUMER_H */
