/* The public produce calls (kaffe_produce_*) and handing one message to
 * librdkafka.
 *
 * Owns: message validation, the sync waits (sync_wait_t on the caller's
 * stack) and stat_accepted.
 * Threads: caller threads. A sync call refuses to run on the producer's own
 * delivery thread (it would wait for itself); an async call does not block
 * there (the delivery thread is what makes room in the queue). */
#include <stdlib.h>

#include "common/tsan.h"
#include "producer/internal.h"

static bool msg_is_valid(const kaffe_produce_msg_t *msg) {
    if (!msg || (!msg->key && msg->key_len) || (!msg->value && msg->value_len) ||
        (!msg->headers && msg->header_count) || msg->timestamp_ms < 0)
        return false;
    for (size_t i = 0; i < msg->header_count; i++)
        if (!msg->headers[i].name || (!msg->headers[i].value && msg->headers[i].value_len))
            return false;
    return true;
}

/* Chooses the partition and queues msg with pending as its opaque. On
 * KAFFE_OK exactly one delivery report for pending will follow; on any other
 * status none will. *partition is the chosen partition or -1. counted: the
 * message is counted accepted already (a pooled record, see
 * stat_accepted_pooled). */
static kaffe_status_t send_one(kaffe_producer_t *p, const kaffe_produce_msg_t *msg,
                               pending_t *pending, int msgflags, bool counted, int32_t *partition) {
    *partition = -1;
    /* Free the delivery reports whose callbacks have run on this thread
     * rather than the delivery thread (defer.c). */
    producer_defer_drain(p);
    if (!msg_is_valid(msg))
        return KAFFE_ERR_INVALID_ARG;
    topic_entry_t *e;
    kaffe_status_t st = producer_topic_get(p, msg->topic ? msg->topic : p->topics[0], &e);
    if (st != KAFFE_OK)
        return st;
    int32_t chosen;
    if ((st = producer_partition_choose(p, e, msg, &chosen)) != KAFFE_OK)
        return st;
    rd_kafka_headers_t *headers = NULL;
    if (msg->header_count) {
        headers = rd_kafka_headers_new(msg->header_count);
        for (size_t i = 0; i < msg->header_count; i++)
            rd_kafka_header_add(headers, msg->headers[i].name, -1, msg->headers[i].value,
                                (ssize_t)msg->headers[i].value_len);
    }
    rd_kafka_vu_t vus[8];
    size_t n = 0;
    vus[n].vtype = RD_KAFKA_VTYPE_RKT;
    vus[n++].u.rkt = e->rkt;
    vus[n].vtype = RD_KAFKA_VTYPE_PARTITION;
    vus[n++].u.i32 = chosen;
    vus[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vus[n++].u.i = msgflags;
    vus[n].vtype = RD_KAFKA_VTYPE_KEY;
    vus[n].u.mem.ptr = (void *)msg->key;
    vus[n++].u.mem.size = msg->key_len;
    vus[n].vtype = RD_KAFKA_VTYPE_VALUE;
    vus[n].u.mem.ptr = (void *)msg->value;
    vus[n++].u.mem.size = msg->value_len;
    vus[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vus[n++].u.ptr = pending;
    if (msg->timestamp_ms) {
        vus[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
        vus[n++].u.i64 = msg->timestamp_ms;
    }
    if (headers) {
        /* librdkafka owns the headers once the message is accepted. */
        vus[n].vtype = RD_KAFKA_VTYPE_HEADERS;
        vus[n++].u.headers = headers;
    }
    /* The pending record travels to the delivery thread inside librdkafka,
     * whose locks TSan cannot see: state the hand-off (pairs with the
     * TSAN_ACQUIRE in delivery.c's complete()). */
    TSAN_RELEASE(pending);
    /* Counted before the report can arrive, so the gauge never dips below
     * zero; taken back if the message is refused. relaxed: statistics (see
     * the struct). */
    if (!counted)
        atomic_fetch_add_explicit(&p->stat_accepted, 1, memory_order_relaxed);
    rd_kafka_error_t *error = rd_kafka_produceva(p->rk, vus, n);
    if (error) {
        if (!counted)
            atomic_fetch_sub_explicit(&p->stat_accepted, 1, memory_order_relaxed);
        st = producer_status(p, rd_kafka_error_code(error));
        rd_kafka_error_destroy(error);
        if (headers)
            rd_kafka_headers_destroy(headers);
        return st;
    }
    *partition = chosen;
    return KAFFE_OK;
}

/* Produces count messages and waits for all their reports. */
static kaffe_status_t produce_and_wait(kaffe_producer_t *p, const kaffe_produce_msg_t *msgs,
                                       size_t count, kaffe_produce_result_t *results) {
    if (producer_delivery_thread_of == p) {
        for (size_t i = 0; i < count; i++)
            results[i] = (kaffe_produce_result_t){KAFFE_ERR_STATE, -1, -1};
        return KAFFE_ERR_STATE;
    }
    sync_wait_t w;
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.done, NULL);
    /* All count are outstanding before the first is queued, so a report
     * can never bring remaining to zero early. */
    w.remaining = count;
    sync_pending_t one;
    sync_pending_t *slots = count == 1 ? &one : malloc(count * sizeof *slots);
    if (!slots) {
        for (size_t i = 0; i < count; i++)
            results[i] = (kaffe_produce_result_t){KAFFE_ERR_NOMEM, -1, -1};
        pthread_cond_destroy(&w.done);
        pthread_mutex_destroy(&w.lock);
        return KAFFE_ERR_NOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        slots[i] = (sync_pending_t){{PENDING_SYNC}, &w, &results[i]};
        int32_t partition;
        kaffe_status_t st =
            send_one(p, &msgs[i], &slots[i].base, RD_KAFKA_MSG_F_BLOCK, false, &partition);
        if (st != KAFFE_OK) {
            /* No report will come for this one: account for it here. Its
             * result is ours to write (the delivery thread never sees it). */
            pthread_mutex_lock(&w.lock);
            results[i] = (kaffe_produce_result_t){st, partition, -1};
            w.remaining--;
            pthread_mutex_unlock(&w.lock);
        }
    }
    pthread_mutex_lock(&w.lock);
    while (w.remaining > 0)
        pthread_cond_wait(&w.done, &w.lock);
    pthread_mutex_unlock(&w.lock);
    pthread_cond_destroy(&w.done);
    pthread_mutex_destroy(&w.lock);
    if (slots != &one)
        free(slots);
    for (size_t i = 0; i < count; i++)
        if (results[i].status != KAFFE_OK)
            return count == 1 ? results[0].status : KAFFE_ERR_BATCH_INCOMPLETE;
    return KAFFE_OK;
}

KAFFE_API kaffe_status_t kaffe_produce_sync_msg(kaffe_producer_t *p, const kaffe_produce_msg_t *msg,
                                                kaffe_produce_result_t *result) {
    kaffe_produce_result_t local;
    kaffe_produce_result_t *r = result ? result : &local;
    if (!p || !msg) {
        *r = (kaffe_produce_result_t){KAFFE_ERR_INVALID_ARG, -1, -1};
        return KAFFE_ERR_INVALID_ARG;
    }
    return produce_and_wait(p, msg, 1, r);
}

KAFFE_API kaffe_status_t kaffe_produce_sync_batch(kaffe_producer_t *p,
                                                  const kaffe_produce_msg_t *msgs, size_t count,
                                                  kaffe_produce_result_t *results) {
    if (!p || !msgs || !results || count == 0)
        return KAFFE_ERR_INVALID_ARG;
    return produce_and_wait(p, msgs, count, results);
}

/* The key/value forms: one message to topic (NULL: the default topic) and
 * partition (KAFFE_PARTITION_ANY: the strategy's choice). */
static kaffe_status_t sync_key_value(kaffe_producer_t *p, const char *topic, int32_t partition,
                                     const void *key, size_t key_len, const void *value,
                                     size_t value_len) {
    kaffe_produce_msg_t msg = KAFFE_PRODUCE_MSG_INIT;
    msg.topic = topic;
    msg.partition = partition;
    msg.key = key;
    msg.key_len = key_len;
    msg.value = value;
    msg.value_len = value_len;
    return kaffe_produce_sync_msg(p, &msg, NULL);
}

KAFFE_API kaffe_status_t kaffe_produce_sync_partition(kaffe_producer_t *p, const char *topic,
                                                      int32_t partition, const void *key,
                                                      size_t key_len, const void *value,
                                                      size_t value_len) {
    if (!topic)
        return KAFFE_ERR_INVALID_ARG;
    if (partition < 0)
        return KAFFE_ERR_UNKNOWN_PARTITION;
    return sync_key_value(p, topic, partition, key, key_len, value, value_len);
}

KAFFE_API kaffe_status_t kaffe_produce_sync_topic(kaffe_producer_t *p, const char *topic,
                                                  const void *key, size_t key_len,
                                                  const void *value, size_t value_len) {
    if (!topic)
        return KAFFE_ERR_INVALID_ARG;
    return sync_key_value(p, topic, KAFFE_PARTITION_ANY, key, key_len, value, value_len);
}

KAFFE_API kaffe_status_t kaffe_produce_sync(kaffe_producer_t *p, const void *key, size_t key_len,
                                            const void *value, size_t value_len) {
    return sync_key_value(p, NULL, KAFFE_PARTITION_ANY, key, key_len, value, value_len);
}

KAFFE_API kaffe_status_t kaffe_produce_async(kaffe_producer_t *p, const kaffe_produce_msg_t *msg,
                                             kaffe_delivery_cb_t cb, void *opaque) {
    if (!p || !msg)
        return KAFFE_ERR_INVALID_ARG;
    /* Never block the delivery thread: it is what makes room in the queue. */
    int block = producer_delivery_thread_of == p ? 0 : RD_KAFKA_MSG_F_BLOCK;
    int32_t partition;
    async_pending_t *ap = &producer_record_without_callback;
    if (cb) {
        if (!(ap = producer_record_get(p)))
            return KAFFE_ERR_NOMEM;
        *ap = (async_pending_t){{PENDING_ASYNC}, cb, opaque, NULL};
    }
    kaffe_status_t st = send_one(p, msg, &ap->base, RD_KAFKA_MSG_F_COPY | block,
                                 ap != &producer_record_without_callback, &partition);
    if (st != KAFFE_OK && ap != &producer_record_without_callback)
        producer_record_put(p, ap);
    return st;
}
