/* src/consumer — what consumer.c and message.c share inside the room.
 *
 * Message ownership. A kaffe_message_t wraps one rd_kafka_message_t. It is
 * reference counted: one reference for the worker that runs the handler, and
 * in async mode one more for the application's ack (dropped by
 * kaffe_consumer_ack, or by kaffe when the handler fails or the message is
 * never handed to the handler). The last drop destroys the rd_kafka_message_t
 * and puts the object on the consumer's free list.
 *
 * Message objects are never returned to malloc while the consumer lives:
 * they come from blocks owned by the consumer, and a released object waits in
 * a FIFO quarantine (MESSAGE_QUARANTINE objects) before the poll thread
 * reuses it. So a second kaffe_consumer_ack() on a released message reads a
 * live object whose `settled` flag is still set and is refused as a
 * duplicate, instead of touching freed memory. */
#ifndef KAFFE_SRC_CONSUMER_INTERNAL_H
#define KAFFE_SRC_CONSUMER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include <kaffe/consumer.h>

#include "pool/pool.h"

#define MESSAGE_QUARANTINE 4096
#define MESSAGE_BLOCK 256

struct kaffe_message_s {
    pool_item_t item; /* lane / ready queue / free list link */
    kaffe_consumer_t *consumer;
    rd_kafka_message_t *rkm;     /* owned; NULL while free */
    const char *topic;           /* rkm's topic name */
    rd_kafka_headers_t *headers; /* parsed by the worker before the handler; owned by rkm */
    uint64_t generation;         /* of the assignment it was delivered under */
    size_t bytes;                /* key + value, for the in-flight byte limit */
    uint64_t polled_ns; /* CLOCK_MONOTONIC when the poll thread received it (see consumer.h) */
    /* References (worker, async ack). acq_rel on the drop: the last dropper
     * sees every use of the message by the others before it frees. */
    atomic_int refs;
    /* 0 until the message is settled (acked, failed or abandoned); the CAS
     * 0 -> 1 decides who settles it, exactly once. Stays 1 while the object
     * is in quarantine, which is what refuses a double ack. */
    atomic_int settled;
    /* 1 while the object holds a message (reset when released). */
    atomic_int live;
};

#endif
