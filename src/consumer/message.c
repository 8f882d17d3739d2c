/* Message objects: the accessors (include/kaffe/message.h, read-only views
 * of the wrapped rd_kafka_message_t), allocation and the quarantine (poll
 * thread allocates; any thread drops), the worker's run of a message and
 * its settle (the hot path, kept together here), and the ack/nack claims
 * (any application thread). */

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "common/tsan.h"
#include "consumer/consumer.h"
#include "consumer/internal.h"
#include <kaffe/message.h>

const char *kaffe_message_topic(const kaffe_message_t *m) {
    return m ? m->topic : NULL;
}

int32_t kaffe_message_partition(const kaffe_message_t *m) {
    return m ? m->partition : -1;
}

int64_t kaffe_message_offset(const kaffe_message_t *m) {
    return m ? m->offset : -1;
}

const void *kaffe_message_key(const kaffe_message_t *m, size_t *len) {
    if (len)
        *len = m && m->rkm->key ? m->rkm->key_len : 0;
    return m ? m->rkm->key : NULL;
}

const void *kaffe_message_value(const kaffe_message_t *m, size_t *len) {
    if (len)
        *len = m && m->rkm->payload ? m->rkm->len : 0;
    return m ? m->rkm->payload : NULL;
}

int64_t kaffe_message_timestamp(const kaffe_message_t *m, kaffe_timestamp_type_t *type) {
    rd_kafka_timestamp_type_t tstype = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
    int64_t ts = m ? rd_kafka_message_timestamp(m->rkm, &tstype) : -1;
    if (type) {
        switch (tstype) {
            case RD_KAFKA_TIMESTAMP_CREATE_TIME:
                *type = KAFFE_TIMESTAMP_CREATE_TIME;
                break;
            case RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME:
                *type = KAFFE_TIMESTAMP_LOG_APPEND_TIME;
                break;
            default:
                *type = KAFFE_TIMESTAMP_NONE;
        }
    }
    return tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
}

size_t kaffe_message_header_count(const kaffe_message_t *m) {
    rd_kafka_headers_t *h = m ? consumer_message_headers(m) : NULL;
    return h ? rd_kafka_header_cnt(h) : 0;
}

kaffe_status_t kaffe_message_header(const kaffe_message_t *m, size_t idx, const char **name,
                                    const void **value, size_t *size) {
    rd_kafka_headers_t *h = m ? consumer_message_headers(m) : NULL;
    if (!h)
        return KAFFE_ERR_INVALID_ARG;
    const char *n;
    const void *v;
    size_t s;
    if (rd_kafka_header_get_all(h, idx, &n, &v, &s) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return KAFFE_ERR_INVALID_ARG;
    if (name)
        *name = n;
    if (value)
        *value = v;
    if (size)
        *size = s;
    return KAFFE_OK;
}

kaffe_status_t kaffe_message_header_last(const kaffe_message_t *m, const char *name,
                                         const void **value, size_t *size) {
    rd_kafka_headers_t *h = m && name ? consumer_message_headers(m) : NULL;
    if (!h)
        return KAFFE_ERR_INVALID_ARG;
    const void *v;
    size_t s;
    if (rd_kafka_header_get_last(h, name, &v, &s) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return KAFFE_ERR_INVALID_ARG;
    if (value)
        *value = v;
    if (size)
        *size = s;
    return KAFFE_OK;
}

int kaffe_message_attempt(const kaffe_message_t *m) {
    return m ? m->attempt : 0;
}

uint64_t consumer_message_polled_ns(const kaffe_message_t *m) {
    return m->polled_ns;
}

/* --- messages ----------------------------------------------------------- */

kaffe_message_t *consumer_message_new(kaffe_consumer_t *c, rd_kafka_message_t *rkm,
                                      uint64_t generation, uint64_t polled_ns) {
    kaffe_message_t *m = NULL;
    if (atomic_load_explicit(&c->free_count, memory_order_relaxed) > MESSAGE_QUARANTINE) {
        struct cds_wfcq_node *node = __cds_wfcq_dequeue_blocking(&c->free_head, &c->free_tail);
        if (node) {
            m = caa_container_of(node, kaffe_message_t, item.node);
            TSAN_ACQUIRE(m); /* pairs with the release in consumer_message_drop */
            atomic_fetch_sub_explicit(&c->free_count, 1, memory_order_relaxed);
        }
    }
    if (!m) {
        if (!c->blocks || c->block_used == MESSAGE_BLOCK) {
            message_block_t *b = calloc(1, sizeof *b);
            if (!b)
                return NULL;
            b->next = c->blocks;
            c->blocks = b;
            c->block_used = 0;
        }
        m = &c->blocks->msgs[c->block_used++];
    }
    m->consumer = c;
    m->client = c->client;
    atomic_fetch_add_explicit(&c->client->live, 1, memory_order_relaxed);
    m->rkm = rkm;
    m->topic = rd_kafka_topic_name(rkm->rkt);
    m->partition = rkm->partition;
    m->offset = rkm->offset;
    m->headers = NULL;
    atomic_store_explicit(&m->headers_state, 0, memory_order_relaxed);
    m->generation = generation;
    m->bytes = rkm->len + rkm->key_len;
    m->polled_ns = polled_ns;
    m->attempt = 1;
    m->lane = NULL;
    m->due_ms = 0;
    m->paused = false;
    m->lane_held = false;
    m->abandon = false;
    m->batch_next = NULL;
    m->route = &c->default_route;
    /* relaxed: the message reaches other threads only through the pool (or
     * the park list), whose hand-off orders these stores. */
    atomic_store_explicit(&m->refs, c->async ? 2 : 1, memory_order_relaxed);
    atomic_store_explicit(&m->settled, 0, memory_order_relaxed);
    atomic_store_explicit(&m->live, 1, memory_order_relaxed);
    return m;
}

rd_kafka_headers_t *consumer_message_headers(const kaffe_message_t *cm) {
    /* The parse is a cache, not a change of the message's value. */
    kaffe_message_t *m = (kaffe_message_t *)cm;
    /* acquire: pairs with the parser's release store of 2. */
    int state = atomic_load_explicit(&m->headers_state, memory_order_acquire);
    if (state == 2)
        return m->headers;
    if (state == 0 &&
        atomic_compare_exchange_strong_explicit(&m->headers_state, &state, 1, memory_order_acquire,
                                                memory_order_acquire)) {
        rd_kafka_headers_t *h = NULL;
        if (rd_kafka_message_headers(m->rkm, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
            h = NULL;
        m->headers = h;
        atomic_store_explicit(&m->headers_state, 2, memory_order_release);
        return h;
    }
    while (atomic_load_explicit(&m->headers_state, memory_order_acquire) != 2)
        sched_yield();
    return m->headers;
}

void consumer_message_drop(kaffe_message_t *m, int n) {
    /* acq_rel: the last dropper sees all other uses before it destroys. */
    if (atomic_fetch_sub_explicit(&m->refs, n, memory_order_acq_rel) != n)
        return;
    kaffe_consumer_t *c = m->consumer;
    client_t *client = m->client;
    rd_kafka_message_destroy(m->rkm);
    /* release: see consumer_client.live. */
    atomic_fetch_sub_explicit(&client->live, 1, memory_order_release);
    m->rkm = NULL;
    m->headers = NULL;
    /* release: a late ack that reads live == 0 (acquire) refuses the message
     * without touching anything else. */
    atomic_store_explicit(&m->live, 0, memory_order_release);
    TSAN_RELEASE(m);
    cds_wfcq_node_init(&m->item.node);
    cds_wfcq_enqueue(&c->free_head, &c->free_tail, &m->item.node);
    atomic_fetch_add_explicit(&c->free_count, 1, memory_order_relaxed);
}

/* All references of a message that will never reach the application. */
static int unseen_refs(const kaffe_consumer_t *c) {
    return c->async ? 2 : 1;
}

void consumer_message_discard(kaffe_consumer_t *c, kaffe_message_t *m) {
    atomic_store_explicit(&m->settled, 1, memory_order_relaxed);
    consumer_message_drop(m, unseen_refs(c));
}

/* --- workers ------------------------------------------------------------ */

void consumer_message_settle(kaffe_consumer_t *c, kaffe_message_t *m,
                             partition_settle_mode_t mode) {
    partition_settle(c->table, m->topic, m->partition, m->generation, m->offset, m->bytes, mode);
}

void consumer_message_abandon(kaffe_consumer_t *c, kaffe_message_t *m) {
    int open = 0;
    if (atomic_compare_exchange_strong_explicit(&m->settled, &open, 1, memory_order_acq_rel,
                                                memory_order_relaxed))
        consumer_message_settle(c, m, PARTITION_RELEASE);
    consumer_message_drop(m, unseen_refs(c));
}

bool consumer_message_abandoned(kaffe_consumer_t *c, const kaffe_message_t *m) {
    /* acquire: pairs with the release stores in consumer_fail / stop. */
    return m->abandon || atomic_load_explicit(&c->abandon, memory_order_acquire) ||
           (atomic_load_explicit(&c->revoke_timeouts, memory_order_relaxed) > 0 &&
            !partition_is_current(c->table, m->topic, m->partition, m->generation)) ||
           consumer_failure_behind_released(c, m);
}

void consumer_message_run(pool_item_t *item, void *opaque) {
    kaffe_consumer_t *c = opaque;
    kaffe_message_t *m = caa_container_of(item, kaffe_message_t, item);
    if (c->batch_handler) {
        consumer_batch_run(c, m);
        return;
    }
    if (consumer_message_abandoned(c, m)) {
        consumer_message_abandon(c, m);
        return;
    }
    /* Two thread-local stores: the API refuses waits from inside a handler. */
    consumer_thread_enter(c, CONSUMER_THREAD_WORKER);
    const route_t *route = m->route;
    int rc = route->handler ? consumer_stats_timed_call(c, route->handler, route->opaque, m)
                            : c->handler(m, c->handler_opaque);
    if (rc != KAFFE_OK) {
        consumer_failure_handler_failed(c, m, rc);
        return;
    }
    if (!c->async) {
        atomic_store_explicit(&m->settled, 1, memory_order_relaxed);
        consumer_message_settle(c, m, PARTITION_ACK);
    }
    consumer_message_drop(m, 1);
}

/* What kaffe_consumer_ack and kaffe_consumer_nack start with: async mode, a
 * live message, and the claim (settled 0 -> 1) that makes exactly one ack or
 * nack win. KAFFE_OK when this caller now settles m. Any thread. */
static kaffe_status_t claim_async_settle(kaffe_consumer_t *c, kaffe_message_t *m) {
    if (!c->async)
        return KAFFE_ERR_NOT_ASYNC;
    /* acquire: pairs with the release in consumer_message_drop. */
    if (!atomic_load_explicit(&m->live, memory_order_acquire))
        return KAFFE_ERR_ACK_DUPLICATE;
    int open = 0;
    if (!atomic_compare_exchange_strong_explicit(&m->settled, &open, 1, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return KAFFE_ERR_ACK_DUPLICATE;
    return KAFFE_OK;
}

kaffe_status_t kaffe_consumer_ack(kaffe_consumer_t *c, kaffe_message_t *m) {
    if (!c || !m || m->consumer != c)
        return KAFFE_ERR_INVALID_ARG;
    kaffe_status_t st = claim_async_settle(c, m);
    if (st != KAFFE_OK)
        return st;
    /* acquire: pairs with the release store in consumer_poll_stop_sequence. */
    if (atomic_load_explicit(&c->acks_closed, memory_order_acquire))
        st = KAFFE_ERR_STOPPED;
    else
        st = partition_settle(c->table, m->topic, m->partition, m->generation, m->offset, m->bytes,
                              PARTITION_ACK);
    consumer_message_drop(m, 1);
    return st;
}

kaffe_status_t kaffe_consumer_nack(kaffe_consumer_t *c, kaffe_message_t *m, int error) {
    if (!c || !m || m->consumer != c || error == KAFFE_OK)
        return KAFFE_ERR_INVALID_ARG;
    kaffe_status_t st = claim_async_settle(c, m);
    if (st != KAFFE_OK)
        return st;
    /* acquire: pairs with the release store in consumer_poll_stop_sequence. */
    if (atomic_load_explicit(&c->acks_closed, memory_order_acquire))
        st = KAFFE_ERR_STOPPED;
    else if (!partition_is_current(c->table, m->topic, m->partition, m->generation))
        st = KAFFE_ERR_REVOKED;
    if (st != KAFFE_OK) {
        consumer_message_drop(m, 1);
        return st;
    }
    /* A revoke racing with this is harmless: its settles are refused, and a
     * retry of a gone assignment is dropped when it comes due. */
    consumer_failure_apply_policy(c, m, error, false, 1);
    return KAFFE_OK;
}

kaffe_status_t kaffe_consumer_resume_partition(kaffe_consumer_t *c, const char *topic,
                                               int32_t partition) {
    if (!c || !topic)
        return KAFFE_ERR_INVALID_ARG;
    size_t found = 0;
    pthread_mutex_lock(&c->delay_lock);
    for (size_t i = 0; i < c->delayed_n; i++) {
        kaffe_message_t *m = c->delayed[i];
        if (m->paused && m->partition == partition && strcmp(m->topic, topic) == 0) {
            m->paused = false;
            m->due_ms = 0;
            found++;
        }
    }
    pthread_mutex_unlock(&c->delay_lock);
    return found ? KAFFE_OK : KAFFE_ERR_UNKNOWN_PARTITION;
}
