/* The librdkafka client (poll thread, or kaffe_consumer_new for the
 * first): creation, subscription, fatal errors, restart after a fatal error
 * and reaping of retired clients once no message uses them. */

#include <stdlib.h>

#include "common/errstr.h"
#include "common/clock.h"
#include "conf/conf.h"
#include "consumer/internal.h"

bool consumer_client_check_fatal(kaffe_consumer_t *c) {
    char fatal[256];
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(c->rk, fatal, sizeof fatal);
    if (!orig || c->fatal_seen == c->rk)
        return orig != RD_KAFKA_RESP_ERR_NO_ERROR;
    c->fatal_seen = c->rk;
    consumer_report_error(c, orig, "fatal: %s", fatal);
    if (c->restart_max > 0)
        c->fatal_pending = orig;
    else
        consumer_fail(c, orig);
    return true;
}

void consumer_client_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    kaffe_consumer_t *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL && rk == c->rk && consumer_client_check_fatal(c))
        return;
    consumer_report_error(c, err, "%s", reason);
}

/* --- the client (poll thread, or the constructor) ----------------------- */

rd_kafka_t *consumer_client_create(kaffe_consumer_t *c, rd_kafka_conf_t *rdconf, char *errstr,
                                   size_t errstr_size) {
    rd_kafka_conf_set_opaque(rdconf, c);
    rd_kafka_conf_set_rebalance_cb(rdconf, consumer_rebalance_cb);
    rd_kafka_conf_set_error_cb(rdconf, consumer_client_error_cb);
    /* librdkafka's log lines go through kaffe's log sink, for the first
     * client and for every client re-created after a fatal error. */
    consumer_route_logs(rdconf);
    char rderr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, rdconf, rderr, sizeof rderr);
    if (!rk) {
        rd_kafka_conf_destroy(rdconf);
        errstr_printf(errstr, errstr_size, "librdkafka: %s", rderr);
        return NULL;
    }
    /* Errors and commit results are served by rd_kafka_consumer_poll. */
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

client_t *consumer_client_new(rd_kafka_t *rk) {
    client_t *client = calloc(1, sizeof *client);
    if (client) {
        client->rk = rk;
        atomic_init(&client->live, 0);
        client->commit_queue = rd_kafka_queue_new(rk);
    }
    return client;
}

void consumer_client_free(client_t *client, bool destroy_rk) {
    if (!client)
        return;
    /* A queue holds a reference on its client: it goes first. */
    if (client->commit_queue)
        rd_kafka_queue_destroy(client->commit_queue);
    if (destroy_rk)
        rd_kafka_destroy_flags(client->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    free(client);
}

void consumer_client_reap_retired(kaffe_consumer_t *c) {
    size_t kept = 0;
    for (size_t i = 0; i < c->retired_n; i++) {
        client_t *client = c->retired[i];
        /* acquire: pairs with the release in consumer_message_drop. */
        if (atomic_load_explicit(&client->live, memory_order_acquire) == 0) {
            /* Closed already (as far as a failed client can be). */
            pthread_mutex_lock(&c->rk_lock);
            consumer_client_free(client, true);
            pthread_mutex_unlock(&c->rk_lock);
        } else {
            c->retired[kept++] = client;
        }
    }
    c->retired_n = kept;
}

void consumer_client_restart(kaffe_consumer_t *c) {
    rd_kafka_resp_err_t reason = c->fatal_pending;
    c->fatal_pending = RD_KAFKA_RESP_ERR_NO_ERROR;
    int64_t now = clock_now_ms();
    size_t recent = 0;
    for (int64_t i = 0; i < c->restart_max; i++)
        recent += c->restart_times[i] && now - c->restart_times[i] < c->restart_window_ms;
    if ((int64_t)recent >= c->restart_max) {
        consumer_report_error(
            c, reason, "fatal error (%s): %zu client restarts within %lld ms, the budget: stopping",
            rd_kafka_err2name(reason), recent, (long long)c->restart_window_ms);
        consumer_fail(c, reason);
        return;
    }
    c->restart_times[c->restart_next++ % (size_t)c->restart_max] = now;
    consumer_report_error(c, reason,
                          "fatal error (%s): restarting the client (%zu of %lld within %lld ms)",
                          rd_kafka_err2name(reason), recent + 1, (long long)c->restart_max,
                          (long long)c->restart_window_ms);
    size_t n;
    partition_t **ps = partition_table_collect(c->table, &n);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new((int)n + 1);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(parts, partition_topic(ps[i]), partition_id(ps[i]));
    free(ps);
    c->stashing = true;
    consumer_rebalance_revoke_partitions(c, parts);
    c->stashing = false;
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk);
    if (err)
        consumer_report_error(c, err, "closing the failed client: %s", rd_kafka_err2str(err));
    /* Backoff: 100 ms doubling per recent restart, at most 5 s; a stop
     * request cuts it short (the new client is still made, for the stop
     * sequence). */
    int64_t backoff = 100;
    for (size_t i = 0; i < recent && backoff < 5000; i++)
        backoff *= 2;
    int64_t until = clock_now_ms() + (backoff > 5000 ? 5000 : backoff);
    while (clock_now_ms() < until &&
           !atomic_load_explicit(&c->stop_requested, memory_order_acquire))
        clock_sleep_ms(10);
    char errstr[512];
    rd_kafka_conf_t *rdconf = conf_to_rdkafka(c->conf, CONF_ROLE_CONSUMER, errstr, sizeof errstr);
    rd_kafka_t *rk = rdconf ? consumer_client_create(c, rdconf, errstr, sizeof errstr) : NULL;
    client_t *client = rk ? consumer_client_new(rk) : NULL;
    client_t **grown = client ? realloc(c->retired, (c->retired_n + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(client);
        if (rk)
            rd_kafka_destroy(rk);
        consumer_report_error(c, reason, "restarting the client failed: %s",
                              rk ? "out of memory" : errstr);
        consumer_fail(c, reason);
        return;
    }
    /* The old client stays until no message it delivered is alive (the
     * application may still hold some): consumer_client_reap_retired destroys it. */
    c->retired = grown;
    c->retired[c->retired_n++] = c->client;
    c->client = client;
    pthread_mutex_lock(&c->rk_lock);
    c->rk = rk;
    pthread_mutex_unlock(&c->rk_lock);
    c->commit_hold_assigns = 0; /* the new client joins afresh */
    err = consumer_subscription_apply(c);
    if (err) {
        consumer_report_error(c, err, "subscribing the new client: %s", rd_kafka_err2str(err));
        consumer_fail(c, err);
        return;
    }
    /* relaxed: a statistic (tests read it to know the restart is done). */
    atomic_fetch_add_explicit(&c->n_restarts, 1, memory_order_relaxed);
}
