/* The baseline of `kaffe bench`: a plain librdkafka consumer poll loop that
 * runs the handler inline on its one thread, stores offsets as it polls
 * (librdkafka's default) and commits them synchronously when stopped. This
 * is what an application without kaffe would write first. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "harness/bench.h"
#include "common/clock.h"

typedef struct raw_state {
    bench_child_t *ch;
    rd_kafka_t *rk;
    pthread_t thread;
    /* Set by stop() on the main thread, read by the poll thread: a plain
     * flag (relaxed), the join orders everything after it. */
    atomic_bool stopping;
} raw_state_t;

static void *poll_loop(void *arg) {
    raw_state_t *st = arg;
    while (!atomic_load_explicit(&st->stopping, memory_order_relaxed)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(st->rk, 100);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            bench_child_handle(st->ch, rd_kafka_topic_name(m->rkt), m->partition, m->offset,
                               m->payload, m->len, clock_now_ns());
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

static void *raw_start(bench_child_t *ch, char *err, size_t err_size) {
    size_t prop_count;
    char **props = bench_child_props(ch, &prop_count);
    rd_kafka_conf_t *conf = bench_rdkafka_conf(bench_child_brokers(ch), bench_consumer_defaults,
                                               props, prop_count, err, err_size);
    if (!conf)
        return NULL;
    if (rd_kafka_conf_set(conf, "group.id", bench_child_group(ch), err, err_size) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, err_size) ||
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, err_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    raw_state_t *st = calloc(1, sizeof *st);
    st->ch = ch;
    st->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, err_size);
    if (!st->rk) {
        rd_kafka_conf_destroy(conf);
        free(st);
        return NULL;
    }
    rd_kafka_poll_set_consumer(st->rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(topics, bench_child_data_topic(ch), RD_KAFKA_PARTITION_UA);
    rd_kafka_topic_partition_list_add(topics, bench_child_live_topic(ch), RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(st->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e || pthread_create(&st->thread, NULL, poll_loop, st) != 0) {
        snprintf(err, err_size, "subscribe: %s", e ? rd_kafka_err2str(e) : "no thread");
        rd_kafka_destroy(st->rk);
        free(st);
        return NULL;
    }
    return st;
}

static int raw_stop(void *state, char *err, size_t err_size) {
    raw_state_t *st = state;
    atomic_store_explicit(&st->stopping, true, memory_order_relaxed);
    pthread_join(st->thread, NULL);
    /* Every polled message was handled inline: the stored offsets are done. */
    rd_kafka_resp_err_t e = rd_kafka_commit(st->rk, NULL, 0);
    int rc = 0;
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        snprintf(err, err_size, "commit: %s", rd_kafka_err2str(e));
        rc = -1;
    }
    rd_kafka_consumer_close(st->rk);
    rd_kafka_destroy(st->rk);
    free(st);
    return rc;
}

const bench_consumer_ops_t bench_raw_ops = {.start = raw_start, .stop = raw_stop};
