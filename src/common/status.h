/* src/common — librdkafka error codes as kaffe statuses. */
#ifndef KAFFE_SRC_COMMON_STATUS_H
#define KAFFE_SRC_COMMON_STATUS_H

#include <kaffe/error.h>

#include <librdkafka/rdkafka.h>

/* The status kaffe reports for a librdkafka error, whichever room reports it
 * (consumer, producer, CLI): one fault, one code. The faults kaffe has a
 * code for (broker connection lost, no broker reachable, authentication,
 * TLS, timeouts, message too large, unknown topic or partition) become that
 * code; every other librdkafka error passes through unchanged. Thread-safe. */
kaffe_status_t status_from_rdkafka(rd_kafka_resp_err_t err);

#endif
