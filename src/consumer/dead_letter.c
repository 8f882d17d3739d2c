/* Dead letters: a failed message produced to dead_letter_topic with its
 * headers and kaffe.* headers, acked when the broker confirms. A worker or a
 * nacking thread produces; the producer's delivery thread settles. */

#include <stdlib.h>
#include <string.h>

#include "consumer/internal.h"

static void dead_letter_delivered(const kaffe_delivery_report_t *report, void *opaque);
static void dead_letter_settle(const kaffe_delivery_report_t *report, kaffe_message_t *m);

void consumer_dead_letter(kaffe_consumer_t *c, kaffe_message_t *m, int rc) {
    rd_kafka_headers_t *headers = consumer_message_headers(m);
    size_t own = headers ? rd_kafka_header_cnt(headers) : 0;
    kaffe_header_t *h = calloc(own + 7, sizeof *h);
    char partition[16], offset[24], code[16], attempts[16], at[24];
    kaffe_status_t st = KAFFE_ERR_NOMEM;
    if (h) {
        size_t n = 0;
        for (size_t i = 0; i < own; i++) {
            if (rd_kafka_header_get_all(headers, i, &h[n].name, &h[n].value, &h[n].value_len) ==
                RD_KAFKA_RESP_ERR_NO_ERROR)
                n++;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(partition, sizeof partition, "%d", (int)m->partition);
        snprintf(offset, sizeof offset, "%lld", (long long)m->offset);
        snprintf(code, sizeof code, "%d", rc);
        snprintf(attempts, sizeof attempts, "%d", m->attempt);
        snprintf(at, sizeof at, "%lld", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        const char *text = kaffe_strerror(KAFFE_ERR_HANDLER); /* rc is the application's */
        const char *names[] = {"kaffe.original.topic",  "kaffe.original.partition",
                               "kaffe.original.offset", "kaffe.error.code",
                               "kaffe.error.text",      "kaffe.attempts",
                               "kaffe.failed.at"};
        const char *values[] = {m->topic, partition, offset, code, text, attempts, at};
        for (size_t i = 0; i < 7; i++) {
            h[n].name = names[i];
            h[n].value = values[i];
            h[n].value_len = strlen(values[i]);
            n++;
        }
        kaffe_produce_msg_t msg = KAFFE_PRODUCE_MSG_INIT;
        msg.topic = c->dead_letter_topic;
        msg.key = m->rkm->key;
        msg.key_len = m->rkm->key_len;
        msg.value = m->rkm->payload;
        msg.value_len = m->rkm->payload ? m->rkm->len : 0;
        msg.headers = h;
        msg.header_count = n;
        /* The dead-letter reference, dropped by the delivery report.
         * relaxed: the caller holds a reference. */
        atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
        st = kaffe_produce_async(c->dead_letter, &msg, dead_letter_delivered, m);
        free(h);
        if (st == KAFFE_OK)
            return;
        atomic_fetch_sub_explicit(&m->refs, 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&c->n_dead_letter_failed, 1, memory_order_relaxed);
    consumer_message_settle(c, m, PARTITION_FAIL);
    consumer_report_error(
        c, st, "dead-lettering %s [%d] at offset %lld to %s failed (%s); stopping", m->topic,
        (int)m->partition, (long long)m->offset, c->dead_letter_topic, kaffe_err_name(st));
    consumer_fail(c, st);
}

/* The producer's delivery thread. */
/* The producer's delivery thread: the report may reach the application's
 * error callback, which must not stop or destroy the consumer from here. */
static void dead_letter_delivered(const kaffe_delivery_report_t *report, void *opaque) {
    kaffe_message_t *m = opaque;
    consumer_thread_role_t previous = consumer_thread_enter(m->consumer, CONSUMER_THREAD_CALLBACK);
    dead_letter_settle(report, m);
    consumer_thread_leave(previous);
}

static void dead_letter_settle(const kaffe_delivery_report_t *report, kaffe_message_t *m) {
    kaffe_consumer_t *c = m->consumer;
    if (report->status == KAFFE_OK) {
        atomic_fetch_add_explicit(&c->n_dead_lettered, 1, memory_order_relaxed);
        consumer_message_settle(c, m, PARTITION_ACK);
    } else {
        atomic_fetch_add_explicit(&c->n_dead_letter_failed, 1, memory_order_relaxed);
        consumer_message_settle(c, m, PARTITION_FAIL);
        consumer_report_error(c, report->status,
                              "dead-lettering %s [%d] at offset %lld to %s failed (%s); stopping",
                              m->topic, (int)m->partition, (long long)m->offset,
                              c->dead_letter_topic, kaffe_err_name(report->status));
        consumer_fail(c, report->status);
    }
    consumer_message_drop(m, 1);
}
