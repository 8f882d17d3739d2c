/* The delivery thread (producer_delivery_*).
 *
 * Owns: serving librdkafka's main queue (DR and ERROR events), completing
 * every pending record exactly once (librdkafka emits exactly one delivery
 * report per accepted message), the sync wake-ups, the async callbacks, the
 * error callback, brokers_down, stat_produced/stat_failed and stat_latency.
 * Threads: the delivery thread (producer_delivery_main); destroy serves the
 * last events with producer_delivery_handle after it ended. */
#include <stdio.h>

#include "common/thread_name.h"
#include "common/tsan.h"
#include "conf/conf.h"
#include "producer/internal.h"

_Thread_local const kaffe_producer_t *producer_delivery_thread_of;

/* Tells the outcome of async message m: its callback cb, or, without one, a
 * failure to the error callback. */
static void report_to(kaffe_producer_t *p, const rd_kafka_message_t *m, kaffe_status_t st,
                      kaffe_delivery_cb_t cb, void *opaque) {
    if (cb) {
        kaffe_delivery_report_t report = {
            .status = st,
            .topic = rd_kafka_topic_name(m->rkt),
            .partition = m->partition,
            .offset = st == KAFFE_OK ? m->offset : -1,
            .key = m->key,
            .key_len = m->key_len,
            .value = m->payload,
            .value_len = m->len,
        };
        cb(&report, opaque);
    } else if (st != KAFFE_OK) {
        char reason[512];
        snprintf(reason, sizeof reason, "message to %s [%d] not delivered: %s",
                 rd_kafka_topic_name(m->rkt), (int)m->partition, kaffe_strerror(st));
        conf_report_error(p->conf, "producer", st, reason);
    }
}

/* Completes one message; a finished async record is appended to done, its
 * latency (ns) to latencies[*nlatencies]. One thread at a time (see
 * stat_produced). */
static void complete(kaffe_producer_t *p, const rd_kafka_message_t *m, record_chain_t *done,
                     uint64_t *latencies, size_t *nlatencies) {
    kaffe_status_t st = producer_status(p, m->err);
    /* Only on a change: a store per message would dirty the line for the
     * produce threads reading it. */
    if (st == KAFFE_OK && atomic_load_explicit(&p->brokers_down, memory_order_relaxed))
        atomic_store_explicit(&p->brokers_down, false, memory_order_relaxed);
    /* Single writer: load + release store (see the struct). */
    atomic_ullong *counter = st == KAFFE_OK ? &p->stat_produced : &p->stat_failed;
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + 1,
                          memory_order_release);
    int64_t latency_us = rd_kafka_message_latency(m);
    if (latency_us >= 0)
        latencies[(*nlatencies)++] = (uint64_t)latency_us * 1000;
    pending_t *pending = m->_private;
    TSAN_ACQUIRE(pending); /* pairs with the TSAN_RELEASE in produce.c's send_one() */
    if (pending->kind == PENDING_SYNC) {
        /* A sync caller that returned finds its latency recorded: record
         * the batch so far before waking it. */
        histogram_record_many(&p->stat_latency, latencies, *nlatencies);
        *nlatencies = 0;
        sync_pending_t *sp = (sync_pending_t *)pending;
        sync_wait_t *w = sp->wait;
        pthread_mutex_lock(&w->lock);
        sp->result->status = st;
        sp->result->partition = m->partition;
        sp->result->offset = st == KAFFE_OK ? m->offset : -1;
        if (--w->remaining == 0)
            pthread_cond_signal(&w->done);
        /* After this unlock the caller may return: sp and w are gone. */
        pthread_mutex_unlock(&w->lock);
        return;
    }
    async_pending_t *ap = (async_pending_t *)pending;
    report_to(p, m, st, ap->cb, ap->opaque);
    if (ap != &producer_record_without_callback) {
        ap->next = NULL;
        if (done->last)
            done->last->next = ap;
        else
            done->first = ap;
        done->last = ap;
    }
}

void producer_delivery_handle(kaffe_producer_t *p, rd_kafka_event_t *ev, size_t *messages,
                              size_t *bytes) {
    *messages = *bytes = 0;
    switch (rd_kafka_event_type(ev)) {
        case RD_KAFKA_EVENT_DR: {
            const rd_kafka_message_t *msgs[DR_BATCH];
            uint64_t latencies[DR_BATCH];
            record_chain_t done = {NULL, NULL};
            size_t n;
            while ((n = rd_kafka_event_message_array(ev, msgs, DR_BATCH)) > 0) {
                size_t nlatencies = 0;
                for (size_t i = 0; i < n; i++) {
                    /* A message's pending record was written on another
                     * core: fetch a few messages ahead. */
                    if (i + 4 < n)
                        __builtin_prefetch(msgs[i + 4]->_private);
                    complete(p, msgs[i], &done, latencies, &nlatencies);
                    *bytes += msgs[i]->len + msgs[i]->key_len;
                }
                *messages += n;
                producer_record_return(p, &done);
                histogram_record_many(&p->stat_latency, latencies, nlatencies);
            }
            break;
        }
        case RD_KAFKA_EVENT_ERROR: {
            rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
            if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
                atomic_store_explicit(&p->brokers_down, true, memory_order_relaxed);
            conf_report_error(p->conf, "producer", producer_status(p, err),
                              rd_kafka_event_error_string(ev));
            break;
        }
        default:
            break;
    }
}

void *producer_delivery_main(void *arg) {
    kaffe_producer_t *p = arg;
    producer_delivery_thread_of = p;
    common_set_thread_name("kaffe-delivery");
    defer_state_t ds = {NULL, 0, 0, 0};
    /* Acquire pairs with the release store in kaffe_producer_destroy(). */
    while (!atomic_load_explicit(&p->stop_delivery, memory_order_acquire)) {
        /* Rule 1 (defer.c): no deferred event waits longer than its limit. */
        int timeout_ms = producer_defer_poll_timeout(p, &ds, 1000);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(p->main_queue, timeout_ms);
        if (!ev)
            continue;
        size_t messages, bytes;
        producer_delivery_handle(p, ev, &messages, &bytes);
        producer_defer_or_destroy(p, &ds, ev, messages, bytes);
    }
    /* Destroy gives no more events a chance to be deferred (direct is
     * raised for good) and takes the stack after this thread ends. */
    producer_defer_state_free(&ds);
    return NULL;
}
