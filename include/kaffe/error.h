/** @file
 * kaffe — status codes.
 *
 * Every kaffe call that can fail returns a kaffe_status_t. KAFFE_OK is 0.
 * kaffe's own codes are negative numbers at or below -1000.
 *
 * One fault has one code, whichever side reports it (a return value, the
 * consumer's or the producer's error callback, the CLI): the librdkafka
 * errors kaffe has a code for are reported as that code (a lost broker
 * connection, librdkafka's _TRANSPORT, is KAFFE_ERR_TRANSPORT; _ALL_BROKERS_DOWN
 * is KAFFE_ERR_ALL_BROKERS_DOWN; _AUTHENTICATION and SASL_AUTHENTICATION_FAILED
 * are KAFFE_ERR_AUTHENTICATION; _SSL is KAFFE_ERR_SSL; librdkafka's timeouts
 * are KAFFE_ERR_TIMED_OUT; MSG_SIZE_TOO_LARGE and RECORD_LIST_TOO_LARGE are
 * KAFFE_ERR_MSG_SIZE_TOO_LARGE; UNKNOWN_TOPIC_OR_PART and _UNKNOWN_TOPIC are
 * KAFFE_ERR_UNKNOWN_TOPIC; _UNKNOWN_PARTITION is KAFFE_ERR_UNKNOWN_PARTITION).
 * Every other librdkafka error (rd_kafka_resp_err_t, in -200..-1 and
 * 1..999) is passed through unchanged, so a status may also be such an
 * error (a commit's REBALANCE_IN_PROGRESS, a fatal FENCED_INSTANCE_ID, ...).
 *
 * A message handler's own failure values are never statuses: whatever a
 * handler returns other than KAFFE_OK is reported as KAFFE_ERR_HANDLER (see
 * kaffe_message_handler_t in conf.h).
 *
 * The list below is the single source of the enum and of its strings. */
#ifndef KAFFE_ERROR_H
#define KAFFE_ERROR_H

#include <kaffe/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/** XX(name, value, description) */
#define KAFFE_ERRORS(XX)                                                                           \
    XX(OK, 0, "Success")                                                                           \
    XX(ERR_INVALID_ARG, -1001, "Invalid argument")                                                 \
    XX(ERR_NOMEM, -1002, "Out of memory")                                                          \
    XX(ERR_UNKNOWN_CONF, -1003, "Unknown configuration property")                                  \
    XX(ERR_INVALID_CONF, -1004, "Invalid configuration value")                                     \
    XX(ERR_ENV, -1005, "Environment variable missing or malformed")                                \
    XX(ERR_IO, -1006, "File could not be read")                                                    \
    XX(ERR_STATE, -1007, "Operation not allowed in the object's current state")                    \
    XX(ERR_TIMED_OUT, -1008, "Operation timed out")                                                \
    XX(ERR_WINDOW_FULL, -1010, "Ack window full: the partition must be paused")                    \
    XX(ERR_OFFSET_BACKWARDS, -1011, "Offset is lower than one already tracked")                    \
    XX(ERR_ACK_UNTRACKED, -1012, "Acked offset was never tracked")                                 \
    XX(ERR_ACK_STALE, -1013, "Acked offset is below the committed watermark")                      \
    XX(ERR_ACK_DUPLICATE, -1014, "Offset was already acked")                                       \
    XX(ERR_REVOKED, -1015, "Partition was revoked since the message was delivered")                \
    XX(ERR_STOPPED, -1016, "Consumer is stopped")                                                  \
    XX(ERR_HANDLER, -1017, "Message handler failed")                                               \
    XX(ERR_NOT_ASYNC, -1018, "Acks are only taken in async mode")                                  \
    XX(ERR_UNKNOWN_PARTITION, -1020, "Partition does not exist")                                   \
    XX(ERR_UNKNOWN_TOPIC, -1021, "Topic does not exist")                                           \
    XX(ERR_MSG_SIZE_TOO_LARGE, -1022, "Message is larger than the maximum allowed")                \
    XX(ERR_PARTITIONER, -1023, "Partitioner returned an invalid partition")                        \
    XX(ERR_TRANSPORT, -1024, "Broker connection failed")                                           \
    XX(ERR_AUTHENTICATION, -1025, "Authentication failed")                                         \
    XX(ERR_SSL, -1026, "TLS setup or handshake failed")                                            \
    XX(ERR_ALL_BROKERS_DOWN, -1027, "No broker is reachable")                                      \
    XX(ERR_BATCH_INCOMPLETE, -1300,                                                                \
       "Some messages of the batch were not written: see the per-message results")

/** A status: KAFFE_OK, one of kaffe's codes (generated from KAFFE_ERRORS), or
 * a librdkafka error code passed through (see the file description). */
typedef enum kaffe_status {
#define KAFFE__ENUM(name, value, text) KAFFE_##name = value,
    KAFFE_ERRORS(KAFFE__ENUM)
#undef KAFFE__ENUM
} kaffe_status_t;

/** The symbolic name of a status: the C enum name, that is "KAFFE_OK",
 * "KAFFE_ERR_REVOKED", ... for kaffe's codes and librdkafka's full enum name
 * ("RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS", "RD_KAFKA_RESP_ERR__FATAL")
 * for a librdkafka code; "KAFFE_ERR_UNKNOWN" for any other value. Never
 * NULL; the string is static. Thread-safe. */
KAFFE_API const char *kaffe_err_name(int status);

/** A one-line human description of a status. Never NULL; static. Thread-safe. */
KAFFE_API const char *kaffe_strerror(int status);

#ifdef __cplusplus
}
#endif

#endif /* KAFFE_ERROR_H */
