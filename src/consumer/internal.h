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

#include "metrics/histogram.h"
#include "partition/partition.h"
#include "pool/pool.h"

#define MESSAGE_QUARANTINE 4096
#define MESSAGE_BLOCK 256

typedef struct consumer_client client_t;

struct kaffe_message_s {
    pool_item_t item; /* lane / ready queue / free list link */
    kaffe_consumer_t *consumer;
    client_t *client;            /* the librdkafka client that delivered rkm */
    rd_kafka_message_t *rkm;     /* owned; NULL while free */
    const char *topic;           /* rkm's topic name */
    rd_kafka_headers_t *headers; /* parsed by the worker before the handler; owned by rkm */
    uint64_t generation;         /* of the assignment it was delivered under */
    /* Failure path. Written by the thread that owns the message at that
     * point (the worker running it, the nacking thread, the poll thread
     * re-dispatching it); each hand-off is a pool push, a lane wake or the
     * consumer's delay lock, which order them. */
    int attempt;            /* 1-based handler attempt */
    struct pool_lane *lane; /* the lane it was pushed to; NULL: unordered */
    int64_t due_ms;         /* retry / pause: when it may run again */
    bool paused;            /* on_error=pause: waits for resume_partition */
    bool lane_held;         /* waiting with its lane suspended (pool_hold) */
    bool abandon;           /* a woken retry that must be released unhandled */
    size_t bytes;           /* key + value, for the in-flight byte limit */
    uint64_t polled_ns;     /* CLOCK_MONOTONIC when the poll thread received it (see consumer.h) */
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

/* What stats.c keeps per consumer: the wrapped message handler (which
 * times each call), handler counters, and the conf its librdkafka log
 * callback routes through. Set up by consumer_observe() in
 * kaffe_consumer_new before any thread runs; then the counters are
 * independent monotonic counters (relaxed increments and loads, ordering
 * nothing) and the rest is immutable. */
typedef struct consumer_metrics {
    const kaffe_conf_t *conf;
    kaffe_message_handler_t user_handler;
    void *user_opaque;
    _Alignas(64) atomic_ullong handled; /* workers: handler returned */
    atomic_ullong failed;               /* workers: handler returned an error */
    histogram_t handler_latency;        /* ns, workers record (lock-free) */
} consumer_metrics_t;

/* Wraps *handler / *opaque with the timing handler and registers the
 * librdkafka log callback on rdconf (routed through conf's log sink; the
 * rd_kafka_t's opaque must be the consumer). kaffe_consumer_new, once,
 * before rd_kafka_new. */
void consumer_observe(consumer_metrics_t *m, const kaffe_conf_t *conf, rd_kafka_conf_t *rdconf,
                      kaffe_message_handler_t *handler, void **opaque);

/* Only the log routing, for every further rd_kafka_conf_t the consumer
 * makes (a client re-created after a fatal error needs it again). */
void consumer_route_logs(rd_kafka_conf_t *rdconf);

/* What stats.c reads of a consumer (consumer.c). Any thread between new and
 * destroy; the pointers live as long as the consumer. */
consumer_metrics_t *consumer_metrics(kaffe_consumer_t *c);
partition_table_t *consumer_partitions(kaffe_consumer_t *c);
rd_kafka_t *consumer_rdkafka(kaffe_consumer_t *c);
bool consumer_running(kaffe_consumer_t *c);

/* Tests only: asks the poll thread to raise a fabricated fatal error
 * (rd_kafka_test_fatal_error) on the consumer's current client. Any thread;
 * served within ~100 ms. */
void consumer_test_fatal_error(kaffe_consumer_t *c, rd_kafka_resp_err_t err);

#endif
