/** @file
 * kaffe — configuration.
 *
 * A kaffe_conf_t holds string properties, like librdkafka's, checked against
 * one property table (see docs/CONFIGURATION.md). Kaffe's option names are
 * accepted (endpoints, topics, consumer_group, async_message_ack,
 * start_with_earliest_message, heroku_kafka_env, partition_strategy, ...),
 * plus kaffe's own (workers, ordering, ...). A name of the form
 * "rdkafka.<property>" is handed to librdkafka unchanged.
 *
 * Thread safety: a conf object is not thread-safe; build it on one thread,
 * then hand it to kaffe_consumer_new() or kaffe_producer_new(). */
#ifndef KAFFE_CONF_H
#define KAFFE_CONF_H

#include <stddef.h>
#include <stdint.h>

#include <kaffe/error.h>
#include <kaffe/export.h>
#include <kaffe/message.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A configuration (opaque): string properties and callbacks. Not thread-safe;
 * see the file description. */
typedef struct kaffe_conf_s kaffe_conf_t;

/** The message handler, called on a worker thread for each message.
 * Sync mode: m is valid until the handler returns; returning KAFFE_OK acks it.
 * Async mode (async_message_ack=true): returning KAFFE_OK accepts m; the
 * application must call kaffe_consumer_ack() on it exactly once, from any
 * thread, and m stays valid until then.
 * Any other return value (1, -1, 42, a kaffe status, ...) is a handler
 * failure, handled by the consumer's failure policy (by default the consumer
 * stops and commits nothing at or past m). The value is the application's
 * own: kaffe never reads it as a status. The failure is reported as
 * KAFFE_ERR_HANDLER (to the error callback, whose reason names the value;
 * by kaffe_consumer_last_error(); by kaffe_consumer_stop() when it stopped the
 * consumer) and the value itself is kept in the failure counters
 * (kaffe_failure_counters_t.last_failure_value) and in a dead letter's
 * kaffe.error.code header. */
typedef int (*kaffe_message_handler_t)(kaffe_message_t *m, void *opaque);

/** The batch handler (instead of a message handler: a consumer has exactly
 * one of the two), called on a worker thread with up to batch_max_messages
 * messages (batch_max_bytes of keys and values) of one lane, gathered for
 * at most batch_max_wait_ms. Per message, the handler may settle it early:
 * kaffe_batch_ack(), kaffe_batch_fail(), kaffe_batch_handled_up_to(). Every
 * message it did not settle then takes the return value:
 *   - KAFFE_OK: sync mode, acked; async mode, accepted (the application acks
 *     each one later with kaffe_consumer_ack(), exactly once);
 *   - anything else: failed with that value, each through on_error as a
 *     single message would be (kaffe_message_handler_t explains the values).
 * The ack tracker records each offset as for single messages: what is
 * committed, redelivered or dead-lettered does not depend on batching. */
typedef int (*kaffe_batch_handler_t)(kaffe_batch_t *batch, void *opaque);

/** Told about errors that do not belong to one call: broker down,
 * authentication failure, unknown topic, a handler failure that stopped the
 * consumer. status is a kaffe_status_t (kaffe's code for the fault where it
 * has one, else a librdkafka code passed through: see error.h; its symbolic
 * name is kaffe_err_name(status), its generic text kaffe_strerror(status));
 * reason is a readable, secret-free sentence valid only during the call.
 * An error goes to this callback when one is set, and is logged at
 * KAFFE_LOG_ERROR as "<name>: <reason>" only when none is set: each error is
 * told once. Called from a kaffe internal thread; must not call
 * kaffe_consumer_stop/destroy (they return KAFFE_ERR_STATE there). */
typedef void (*kaffe_error_cb_t)(int status, const char *reason, void *opaque);

/** A user partitioner: returns a partition in [0, partition_count), or -1 to
 * fail the produce call with KAFFE_ERR_PARTITIONER. key is NULL for a null
 * key. May be called from several threads at once. */
typedef int32_t (*kaffe_partitioner_t)(const char *topic, int32_t partition_count, const void *key,
                                       size_t key_len, const void *value, size_t value_len,
                                       void *opaque);

/** Log levels, numbered as syslog's (LOG_ERR, LOG_WARNING, LOG_INFO,
 * LOG_DEBUG). librdkafka's levels are mapped onto these (0-3 error,
 * 4 warning, 5-6 info, 7 debug). */
typedef enum kaffe_log_level {
    KAFFE_LOG_ERROR = 3,   /**< an error (syslog LOG_ERR) */
    KAFFE_LOG_WARNING = 4, /**< a warning (LOG_WARNING) */
    KAFFE_LOG_INFO = 6,    /**< information (LOG_INFO) */
    KAFFE_LOG_DEBUG = 7,   /**< debugging detail (LOG_DEBUG) */
} kaffe_log_level_t;

/** Receives one log line: kaffe's own (facility "consumer", "producer", ...)
 * and librdkafka's (facility "rdkafka:<its facility>", e.g. "rdkafka:FAIL").
 * Only lines at or above the log_level property arrive. message is one line
 * without a trailing newline, valid only during the call, with every secret
 * of the configuration (passwords, private keys) replaced by "[redacted]".
 * Called from any kaffe or librdkafka thread, possibly several at once;
 * it must not block for long and must not call kaffe_consumer_stop or
 * kaffe_*_destroy. */
typedef void (*kaffe_log_cb_t)(int level, const char *facility, const char *message, void *opaque);

/** A new configuration with every property at its default. NULL on OOM. */
KAFFE_API kaffe_conf_t *kaffe_conf_new(void);

/** A deep copy (callbacks included). NULL on OOM or for a NULL conf. */
KAFFE_API kaffe_conf_t *kaffe_conf_dup(const kaffe_conf_t *conf);

/** Frees conf. NULL is allowed. */
KAFFE_API void kaffe_conf_destroy(kaffe_conf_t *conf);

/** Sets a property. Returns KAFFE_OK, KAFFE_ERR_UNKNOWN_CONF (no such name; the
 * message suggests the closest known one) or KAFFE_ERR_INVALID_CONF (bad
 * value; the message names the property and what it accepts). On failure a
 * NUL-terminated message is written to errstr (which may be NULL) and conf is
 * unchanged. Secrets (passwords, keys) never appear in the message. */
KAFFE_API kaffe_status_t kaffe_conf_set(kaffe_conf_t *conf, const char *name, const char *value,
                                        char *errstr, size_t errstr_size);

/** Copies the current value of name (its default if never set) into dest.
 * If dest is NULL or too small, *dest_size is set to the size needed
 * (including the NUL) and KAFFE_ERR_INVALID_ARG is returned for a short buffer.
 * Returns KAFFE_ERR_UNKNOWN_CONF for an unknown name. */
KAFFE_API kaffe_status_t kaffe_conf_get(const kaffe_conf_t *conf, const char *name, char *dest,
                                        size_t *dest_size);

/** Reads "name = value" lines from a file; '#' starts a comment, blank lines
 * are ignored. Stops at the first bad line; errstr then reads "path:line: ...".
 * Properties set before the failing line stay set. */
KAFFE_API kaffe_status_t kaffe_conf_load(kaffe_conf_t *conf, const char *path, char *errstr,
                                         size_t errstr_size);

/** @{ */
/** Callbacks. They are copied into the conf (opaque is borrowed, not owned).
 * A NULL conf is ignored. */
KAFFE_API void kaffe_conf_set_message_handler(kaffe_conf_t *conf, kaffe_message_handler_t handler,
                                              void *opaque);
/** The batch handler (see kaffe_batch_handler_t): a consumer needs either
 * a message handler or a batch handler; setting both is an error at
 * kaffe_consumer_new (KAFFE_ERR_INVALID_CONF). */
KAFFE_API void kaffe_conf_set_batch_handler(kaffe_conf_t *conf, kaffe_batch_handler_t handler,
                                            void *opaque);
/** The message handler of one topic (an exact name, not a ^ pattern): its
 * messages go to handler instead of the default message handler. With
 * "topic.<topic>.<property>" (ordering, on_error, max_in_flight_messages,
 * max_in_flight_bytes, workers: a share of workers of its own) one consumer
 * runs each topic with its own code and settings; other topics use the
 * default handler and the consumer's settings. A subscribed topic with no
 * handler at all, or a ^ pattern without a default handler, is an error at
 * kaffe_consumer_new (KAFFE_ERR_INVALID_CONF); so is a topic handler or
 * topic.* setting together with a batch handler. Setting it again replaces
 * it; handler NULL returns the topic to the default handler.
 * KAFFE_ERR_INVALID_ARG for a NULL conf, a NULL or empty topic or a
 * pattern; KAFFE_ERR_NOMEM. */
KAFFE_API kaffe_status_t kaffe_conf_set_topic_handler(kaffe_conf_t *conf, const char *topic,
                                                      kaffe_message_handler_t handler,
                                                      void *opaque);
KAFFE_API void kaffe_conf_set_error_cb(kaffe_conf_t *conf, kaffe_error_cb_t cb, void *opaque);
KAFFE_API void kaffe_conf_set_partitioner(kaffe_conf_t *conf, kaffe_partitioner_t fn, void *opaque);
/** @} */
/** The log callback (see kaffe_log_cb_t). Unset (or NULL): lines go to
 * stderr as "kaffe <LEVEL> <facility>: <message>". */
KAFFE_API void kaffe_conf_set_log_cb(kaffe_conf_t *conf, kaffe_log_cb_t cb, void *opaque);

#ifdef __cplusplus
}
#endif

#endif /* KAFFE_CONF_H */
