/* `kaffe bench` scenarios on the kaffe consumer, through its public API:
 * sync (the handler's return acks), batch (a sync batch handler) and async (the handler hands the
 * message to a delayed-ack thread that acks it 0..ack_delay_max_us later, so acks come from another
 * thread and out of order). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kaffe/kaffe.h>

#include "harness/bench.h"
#include "cli/delayed_ack.h"
#include "consumer/consumer.h"

typedef struct kaffe_state {
    bench_child_t *ch;
    kaffe_consumer_t *consumer;
    delayed_ack_t *acker; /* async only */
} kaffe_state_t;

/* Worker threads. */
static int handle(kaffe_message_t *m, void *opaque) {
    kaffe_state_t *st = opaque;
    size_t len = 0;
    const void *value = kaffe_message_value(m, &len);
    bench_child_handle(st->ch, kaffe_message_topic(m), kaffe_message_partition(m),
                       kaffe_message_offset(m), value, len, consumer_message_polled_ns(m));
    if (st->acker)
        delayed_ack_push(st->acker, m);
    return KAFFE_OK;
}

/* Worker threads: a batch, each message as handle() sees it. */
static int handle_batch(kaffe_batch_t *b, void *opaque) {
    for (size_t i = 0; i < kaffe_batch_count(b); i++)
        handle(kaffe_batch_message(b, i), opaque);
    return KAFFE_OK;
}

/* The delayed-ack thread. */
static void ack_later(void *item, void *opaque) {
    kaffe_state_t *st = opaque;
    kaffe_consumer_ack(st->consumer, item);
}

static int set(kaffe_conf_t *conf, const char *name, const char *value, char *err,
               size_t err_size) {
    return kaffe_conf_set(conf, name, value, err, err_size) == KAFFE_OK ? 0 : -1;
}

static void *kaffe_start(bench_child_t *ch, char *err, size_t err_size) {
    const bench_scenario_t *s = bench_child_scenario(ch);
    kaffe_state_t *st = calloc(1, sizeof *st);
    st->ch = ch;
    kaffe_conf_t *conf = kaffe_conf_new();
    char topics[1024], workers[16];
    snprintf(topics, sizeof topics, "%s,%s", bench_child_data_topic(ch),
             bench_child_live_topic(ch));
    snprintf(workers, sizeof workers, "%d", s->workers);
    bool async = s->kind == BENCH_KAFFE_ASYNC;
    int bad = set(conf, "endpoints", bench_child_brokers(ch), err, err_size) ||
              set(conf, "topics", topics, err, err_size) ||
              set(conf, "consumer_group", bench_child_group(ch), err, err_size) ||
              set(conf, "start_with_earliest_message", "true", err, err_size) ||
              set(conf, "async_message_ack", async ? "true" : "false", err, err_size) ||
              set(conf, "workers", workers, err, err_size) ||
              set(conf, "ordering", s->ordering, err, err_size);
    for (size_t i = 0; !bad && bench_consumer_defaults[i]; i += 2) {
        char name[128];
        snprintf(name, sizeof name, "rdkafka.%s", bench_consumer_defaults[i]);
        bad = set(conf, name, bench_consumer_defaults[i + 1], err, err_size);
    }
    size_t prop_count;
    char **props = bench_child_props(ch, &prop_count);
    for (size_t i = 0; !bad && i < prop_count; i++) {
        char name[256];
        const char *eq = strchr(props[i], '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - props[i]), props[i]);
        bad = set(conf, name, eq + 1, err, err_size);
    }
    if (bad)
        goto fail;
    if (s->kind == BENCH_KAFFE_BATCH)
        kaffe_conf_set_batch_handler(conf, handle_batch, st);
    else
        kaffe_conf_set_message_handler(conf, handle, st);
    st->consumer = kaffe_consumer_new(conf, err, err_size);
    if (!st->consumer)
        goto fail;
    conf = NULL; /* the consumer owns it */
    if (async && !(st->acker = delayed_ack_new(0, s->ack_delay_max_us, ack_later, st))) {
        snprintf(err, err_size, "cannot start the ack thread");
        goto fail;
    }
    kaffe_status_t status = kaffe_consumer_start(st->consumer);
    if (status != KAFFE_OK) {
        snprintf(err, err_size, "start: %s", kaffe_strerror(status));
        goto fail;
    }
    return st;
fail:
    delayed_ack_destroy(st->acker);
    kaffe_consumer_destroy(st->consumer);
    kaffe_conf_destroy(conf);
    free(st);
    return NULL;
}

static int kaffe_stop(void *state, char *err, size_t err_size) {
    kaffe_state_t *st = state;
    /* The ack thread keeps acking while stop drains, so every handled
     * message is acked before the final commit. */
    kaffe_status_t status = kaffe_consumer_stop(st->consumer);
    delayed_ack_destroy(st->acker);
    kaffe_consumer_destroy(st->consumer);
    free(st);
    if (status != KAFFE_OK) {
        snprintf(err, err_size, "stop: %s", kaffe_strerror(status));
        return -1;
    }
    return 0;
}

const bench_consumer_ops_t bench_kaffe_ops = {.start = kaffe_start, .stop = kaffe_stop};
