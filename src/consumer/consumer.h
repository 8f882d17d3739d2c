/* src/consumer — what other rooms may know of a consumed message beyond the
 * public accessors (include/kaffe/message.h). Used by `kaffe bench` to
 * measure how long a message waits between the poll thread and its handler. */
#ifndef KAFFE_SRC_CONSUMER_CONSUMER_H
#define KAFFE_SRC_CONSUMER_CONSUMER_H

#include <stdint.h>

#include <kaffe/message.h>

/* CLOCK_MONOTONIC nanoseconds at which the poll thread took m from
 * librdkafka: the clock is read once per poll batch, when the batch call
 * returns, so every message of a batch carries that time (dispatching the
 * batch comes after it). Set once, before m is dispatched; read-only
 * afterwards, so any thread holding a valid m may read it. */
uint64_t consumer_message_polled_ns(const kaffe_message_t *m);

#endif
