/* The consumer's lifecycle and public API (include/kaffe/consumer.h): new,
 * start, request_stop, wait, commit, last_error, stop, destroy, and the
 * error reporting every file uses. Any application thread (see each
 * function); the poll thread and workers report errors through
 * consumer_report_error / consumer_fail. */

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/errstr.h"
#include "common/clock.h"
#include "conf/conf.h"
#include "consumer/internal.h"

/* --- errors ------------------------------------------------------------- */

void consumer_report_error(kaffe_consumer_t *c, int status, const char *fmt, ...) {
    status = status_from_rdkafka((rd_kafka_resp_err_t)status);
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->lock);
    c->last_error = status;
    snprintf(c->last_error_text, sizeof c->last_error_text, "%s", text);
    pthread_mutex_unlock(&c->lock);
    conf_report_error(c->conf, "consumer", status, text);
}

void consumer_fail(kaffe_consumer_t *c, int status) {
    status = status_from_rdkafka((rd_kafka_resp_err_t)status);
    int none = KAFFE_OK;
    /* acq_rel: the failure is visible to kaffe_consumer_stop's acquire load. */
    if (atomic_compare_exchange_strong_explicit(&c->failure, &none, status, memory_order_acq_rel,
                                                memory_order_acquire)) {
        /* release: pairs with the workers' acquire load before a handler call. */
        atomic_store_explicit(&c->abandon, 1, memory_order_release);
        atomic_store_explicit(&c->stop_requested, 1, memory_order_release);
    }
}

/* --- public API --------------------------------------------------------- */

kaffe_consumer_t *kaffe_consumer_new(kaffe_conf_t *conf, char *errstr, size_t errstr_size) {
    if (!conf) {
        errstr_printf(errstr, errstr_size, "conf: NULL");
        return NULL;
    }
    rd_kafka_conf_t *rdconf = conf_to_rdkafka(conf, CONF_ROLE_CONSUMER, errstr, errstr_size);
    if (!rdconf)
        return NULL;
    kaffe_consumer_t *c = calloc(1, sizeof *c);
    if (!c) {
        rd_kafka_conf_destroy(rdconf);
        errstr_printf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    c->handler = conf_message_handler(conf, &c->handler_opaque);
    consumer_observe(&c->metrics, conf, rdconf, &c->handler, &c->handler_opaque);
    c->batch_handler = conf_batch_handler(conf, &c->batch_opaque);
    c->batch_max_messages = (size_t)conf_int(conf, "batch_max_messages");
    c->batch_max_bytes = (size_t)conf_int(conf, "batch_max_bytes");
    c->batch_max_wait_ms = conf_int(conf, "batch_max_wait_ms");
    c->async = conf_bool(conf, "async_message_ack");
    c->ordering = conf_choice(conf, "ordering"); /* enum ordering: the choices' order */
    c->workers = (size_t)conf_int(conf, "workers");
    c->lanes_per_partition = consumer_route_lanes(c->ordering, c->workers);
    c->window = (size_t)conf_int(conf, "ack_window");
    c->max_in_flight = conf_int(conf, "max_in_flight_messages");
    c->max_in_flight_bytes = conf_int(conf, "max_in_flight_bytes");
    c->commit_interval_ms = conf_int(conf, "commit_interval_ms");
    c->drain_timeout_ms = conf_int(conf, "drain_timeout_ms");
    c->group_protocol_consumer = conf_group_protocol_consumer(conf);
    c->on_error = conf_choice(conf, "on_error"); /* enum policy starts in its choices' order */
    static const int exhausted_policy[] = {POL_STOP, POL_DEAD_LETTER, POL_SKIP}; /* its choices */
    c->retry_exhausted = exhausted_policy[conf_choice(conf, "retry_exhausted")];
    c->retry_max_attempts = (int)conf_int(conf, "retry_max_attempts");
    c->restart_max = conf_int(conf, "restart_max");
    c->restart_window_ms = conf_int(conf, "restart_window_ms");
    if (c->restart_max > 0 &&
        !(c->restart_times = calloc((size_t)c->restart_max, sizeof *c->restart_times))) {
        rd_kafka_conf_destroy(rdconf);
        free(c);
        errstr_printf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    c->retry_backoff_ms = conf_int(conf, "retry_initial_backoff_ms");
    c->retry_backoff_max_ms = conf_int(conf, "retry_max_backoff_ms");
    if (c->retry_backoff_max_ms < c->retry_backoff_ms)
        c->retry_backoff_max_ms = c->retry_backoff_ms;
    bool dead_letters = c->on_error == POL_DEAD_LETTER ||
                        (c->on_error == POL_RETRY && c->retry_exhausted == POL_DEAD_LETTER);
    if (dead_letters && conf_str(conf, "dead_letter_topic")[0] == '\0') {
        rd_kafka_conf_destroy(rdconf);
        free(c->restart_times);
        free(c);
        errstr_printf(errstr, errstr_size,
                      "dead_letter_topic: required with on_error=dead_letter or "
                      "retry_exhausted=dead_letter");
        return NULL;
    }
    if (getrandom(&c->salt, sizeof c->salt, GRND_NONBLOCK) != (ssize_t)sizeof c->salt)
        c->salt = (uint64_t)clock_now_ms() * UINT64_C(0x9e3779b97f4a7c15);
    atomic_init(&c->state, ST_NEW);
    atomic_init(&c->stop_requested, 0);
    atomic_init(&c->abandon, 0);
    atomic_init(&c->acks_closed, 0);
    atomic_init(&c->failure, KAFFE_OK);
    atomic_init(&c->revoke_timeouts, 0);
    atomic_init(&c->commit_requested, 0);
    atomic_init(&c->test_fatal, 0);
    atomic_init(&c->free_count, 0);
    __cds_wfcq_init(&c->free_head, &c->free_tail);
    atomic_init(&c->n_failures, 0);
    atomic_init(&c->n_retries, 0);
    atomic_init(&c->n_dead_lettered, 0);
    atomic_init(&c->n_dead_letter_failed, 0);
    atomic_init(&c->n_skipped, 0);
    atomic_init(&c->n_paused, 0);
    atomic_init(&c->n_restarts, 0);
    atomic_init(&c->rng, c->salt);
    atomic_init(&c->delayed_count, 0);
    atomic_init(&c->released_count, 0);
    pthread_mutex_init(&c->delay_lock, NULL);
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->rk_lock, NULL);
    pthread_cond_init(&c->cond, NULL);

    c->table = partition_table_new();
    c->metadata_budget_configured = (size_t)conf_int(conf, "commit_metadata_max_bytes");
    c->metadata_budget = c->metadata_budget_configured;
    c->metadata_buf = malloc(c->metadata_budget + 1);
    bool subscription = consumer_subscription_init(c, conf);
    bool routes = consumer_routes_init(c, conf); /* after the settings it inherits */
    if (!c->table || !c->metadata_buf || !subscription || !routes) {
        rd_kafka_conf_destroy(rdconf);
        errstr_printf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    c->rk = consumer_client_create(c, rdconf, errstr, errstr_size);
    if (!c->rk)
        goto fail;
    c->client = consumer_client_new(c->rk);
    if (!c->client) {
        rd_kafka_destroy(c->rk);
        errstr_printf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    if (dead_letters) {
        /* The dead-letter producer: the consumer's own settings (endpoints,
         * TLS, SASL, produce_timeout_ms, rdkafka.*). */
        c->dead_letter_topic = strdup(conf_str(conf, "dead_letter_topic"));
        kaffe_conf_t *pconf = kaffe_conf_dup(conf);
        char perr[512];
        c->dead_letter =
            pconf && c->dead_letter_topic ? kaffe_producer_new(pconf, perr, sizeof perr) : NULL;
        if (!c->dead_letter) {
            if (!pconf || !c->dead_letter_topic)
                snprintf(perr, sizeof perr, "out of memory");
            kaffe_conf_destroy(pconf);
            errstr_printf(errstr, errstr_size, "dead_letter_topic: the producer: %s", perr);
            consumer_client_free(c->client, true);
            goto fail;
        }
    }
    c->conf = conf;
    return c;
fail:
    consumer_subscription_free(c);
    consumer_routes_free(c);
    free(c->metadata_buf);
    free(c->dead_letter_topic);
    free(c->restart_times);
    partition_table_destroy(c->table);
    pthread_mutex_destroy(&c->delay_lock);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->rk_lock);
    pthread_cond_destroy(&c->cond);
    free(c);
    return NULL;
}

kaffe_status_t kaffe_consumer_set_rebalance_cb(kaffe_consumer_t *c, kaffe_rebalance_cb_t cb,
                                               void *opaque) {
    if (!c)
        return KAFFE_ERR_INVALID_ARG;
    if (atomic_load_explicit(&c->state, memory_order_acquire) != ST_NEW)
        return KAFFE_ERR_STATE;
    c->rebalance_cb = cb;
    c->rebalance_opaque = opaque;
    return KAFFE_OK;
}

_Thread_local __attribute__((tls_model("initial-exec")))
const kaffe_consumer_t *consumer_thread_owner;
_Thread_local __attribute__((tls_model("initial-exec")))
consumer_thread_role_t consumer_thread_role;

kaffe_status_t kaffe_consumer_start(kaffe_consumer_t *c) {
    if (!c)
        return KAFFE_ERR_INVALID_ARG;
    pthread_mutex_lock(&c->lock);
    if (atomic_load_explicit(&c->state, memory_order_relaxed) != ST_NEW) {
        pthread_mutex_unlock(&c->lock);
        return KAFFE_ERR_STATE;
    }
    kaffe_status_t st = KAFFE_OK;
    c->pool = pool_new(c->workers, consumer_message_run, c);
    if (!c->pool) {
        st = KAFFE_ERR_NOMEM;
        goto out;
    }
    pool_set_hold_cb(c->pool, consumer_failure_hold_cb);
    st = consumer_routes_start(c);
    if (st != KAFFE_OK)
        goto out;
    rd_kafka_resp_err_t err = consumer_subscription_apply(c);
    if (err) {
        st = status_from_rdkafka(err);
        goto out;
    }
    /* release: the fields set above are visible to the poll thread (also
     * ordered by pthread_create itself). */
    atomic_store_explicit(&c->state, ST_RUNNING, memory_order_release);
    if (pthread_create(&c->poll_thread, NULL, consumer_poll_main, c) != 0) {
        atomic_store_explicit(&c->state, ST_NEW, memory_order_relaxed);
        rd_kafka_unsubscribe(c->rk);
        st = KAFFE_ERR_NOMEM;
    }
out:
    if (st != KAFFE_OK && c->pool) {
        consumer_routes_stop(c);
        pool_destroy(c->pool);
        c->pool = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    return st;
}

kaffe_status_t kaffe_consumer_request_stop(kaffe_consumer_t *c) {
    if (!c)
        return KAFFE_ERR_INVALID_ARG;
    /* A lock-free atomic store: async-signal-safe. release: pairs with the
     * poll thread's acquire load. */
    atomic_store_explicit(&c->stop_requested, 1, memory_order_release);
    return KAFFE_OK;
}

kaffe_status_t kaffe_consumer_wait(kaffe_consumer_t *c, int timeout_ms) {
    if (!c)
        return KAFFE_ERR_INVALID_ARG;
    if (consumer_thread_role_for(c) != CONSUMER_THREAD_NONE)
        return KAFFE_ERR_STATE; /* it would wait for the calling thread itself */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    if (timeout_ms >= 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    kaffe_status_t st = KAFFE_OK;
    pthread_mutex_lock(&c->lock);
    if (atomic_load_explicit(&c->state, memory_order_relaxed) == ST_NEW)
        st = KAFFE_ERR_STATE;
    while (st == KAFFE_OK && atomic_load_explicit(&c->state, memory_order_relaxed) != ST_STOPPED) {
        if (timeout_ms < 0)
            pthread_cond_wait(&c->cond, &c->lock);
        else if (pthread_cond_timedwait(&c->cond, &c->lock, &deadline) != 0 &&
                 atomic_load_explicit(&c->state, memory_order_relaxed) != ST_STOPPED)
            st = KAFFE_ERR_TIMED_OUT;
    }
    pthread_mutex_unlock(&c->lock);
    return st;
}

kaffe_status_t kaffe_consumer_commit(kaffe_consumer_t *c) {
    if (!c)
        return KAFFE_ERR_INVALID_ARG;
    if (consumer_thread_role_for(c) == CONSUMER_THREAD_POLL)
        return KAFFE_ERR_STATE; /* the poll thread would wait for itself */
    pthread_mutex_lock(&c->lock);
    int state = atomic_load_explicit(&c->state, memory_order_relaxed);
    if (state != ST_RUNNING) {
        pthread_mutex_unlock(&c->lock);
        return state == ST_NEW ? KAFFE_ERR_STATE : KAFFE_ERR_STOPPED;
    }
    /* release: pairs with the poll thread's acquire in consumer_commit_serve_requests. */
    uint64_t ticket = atomic_fetch_add_explicit(&c->commit_requested, 1, memory_order_release) + 1;
    while (c->commit_completed < ticket &&
           atomic_load_explicit(&c->state, memory_order_relaxed) != ST_STOPPED)
        pthread_cond_wait(&c->cond, &c->lock);
    kaffe_status_t st = c->commit_completed >= ticket ? c->commit_status : KAFFE_ERR_STOPPED;
    pthread_mutex_unlock(&c->lock);
    return st;
}

kaffe_status_t kaffe_consumer_last_error(kaffe_consumer_t *c, char *buf, size_t size) {
    if (!c)
        return KAFFE_ERR_INVALID_ARG;
    pthread_mutex_lock(&c->lock);
    int status = c->last_error;
    if (buf && size)
        snprintf(buf, size, "%s", c->last_error_text);
    pthread_mutex_unlock(&c->lock);
    return (kaffe_status_t)status;
}

kaffe_status_t kaffe_consumer_stop(kaffe_consumer_t *c) {
    if (!c)
        return KAFFE_ERR_INVALID_ARG;
    if (consumer_thread_role_for(c) != CONSUMER_THREAD_NONE) {
        /* From a handler or callback it cannot wait for the threads it runs
         * on: the stop is requested, and the caller told so. */
        kaffe_consumer_request_stop(c);
        consumer_report_error(c, KAFFE_ERR_STATE,
                              "kaffe_consumer_stop called from a kaffe thread (a handler or "
                              "callback): stop requested; stop or wait from an application thread");
        return KAFFE_ERR_STATE;
    }
    pthread_mutex_lock(&c->lock);
    if (atomic_load_explicit(&c->state, memory_order_relaxed) == ST_NEW) {
        atomic_store_explicit(&c->state, ST_STOPPED, memory_order_release);
        c->joined = true;
        pthread_cond_broadcast(&c->cond);
    }
    if (!c->joined && !c->joining) {
        c->joining = true;
        pthread_mutex_unlock(&c->lock);
        kaffe_consumer_request_stop(c);
        pthread_join(c->poll_thread, NULL);
        /* Every lane was released when its partition was removed: the pool
         * runs (abandons) what is left and joins the workers. */
        consumer_routes_stop(c);
        pool_destroy(c->pool);
        c->pool = NULL;
        pthread_mutex_lock(&c->lock);
        c->joined = true;
        c->joining = false;
        pthread_cond_broadcast(&c->cond);
    }
    while (!c->joined)
        pthread_cond_wait(&c->cond, &c->lock);
    pthread_mutex_unlock(&c->lock);
    /* acquire: pairs with consumer_fail. */
    return (kaffe_status_t)atomic_load_explicit(&c->failure, memory_order_acquire);
}

void kaffe_consumer_destroy(kaffe_consumer_t *c) {
    if (!c)
        return;
    if (consumer_thread_role_for(c) != CONSUMER_THREAD_NONE) {
        /* It would free the threads it runs on: refused, nothing changes. */
        kaffe_consumer_request_stop(c);
        consumer_report_error(c, KAFFE_ERR_STATE,
                              "kaffe_consumer_destroy called from a kaffe thread (a handler or "
                              "callback): refused (stop requested); destroy from an application "
                              "thread");
        return;
    }
    kaffe_consumer_stop(c);
    /* Dead-letter produces still in flight report (and drop their
     * references) before the messages' handle goes. */
    kaffe_producer_destroy(c->dead_letter);
    free(c->dead_letter_topic);
    free(c->delayed);
    free(c->released);
    pthread_mutex_destroy(&c->delay_lock);
    /* Messages the application never acked: their rd_kafka_message_t must go
     * before the handle. */
    for (message_block_t *b = c->blocks; b; b = b->next)
        for (size_t i = 0; i < MESSAGE_BLOCK; i++)
            if (atomic_load_explicit(&b->msgs[i].live, memory_order_acquire) && b->msgs[i].rkm)
                rd_kafka_message_destroy(b->msgs[i].rkm);
    /* Closed by the stop sequence (or never subscribed); closing again
     * could wait on a failed client. Not destroyed at all when that would
     * abort (consumer_poll_await_first_assignment). */
    consumer_client_free(c->client, !c->leak_rk);
    for (size_t i = 0; i < c->retired_n; i++)
        consumer_client_free(c->retired[i], true);
    free(c->retired);
    free(c->open_batches);
    consumer_routes_free(c);
    free(c->restart_times);
    free(c->metadata_buf);
    consumer_metrics_free(&c->metrics);
    if (c->stash)
        rd_kafka_topic_partition_list_destroy(c->stash);
    partition_table_destroy(c->table);
    ack_snapshot_free(&c->snap);
    while (c->blocks) {
        message_block_t *next = c->blocks->next;
        free(c->blocks);
        c->blocks = next;
    }
    consumer_subscription_free(c);
    kaffe_conf_destroy(c->conf);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->rk_lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}

/* --- for stats.c (see internal.h) ---------------------------------------- */

consumer_metrics_t *consumer_metrics(kaffe_consumer_t *c) {
    return &c->metrics;
}

partition_table_t *consumer_partitions(kaffe_consumer_t *c) {
    return c->table;
}

rd_kafka_t *consumer_rdkafka(kaffe_consumer_t *c) {
    return c->rk;
}

rd_kafka_t *consumer_rdkafka_hold(kaffe_consumer_t *c) {
    pthread_mutex_lock(&c->rk_lock);
    return c->rk;
}

void consumer_rdkafka_release(kaffe_consumer_t *c) {
    pthread_mutex_unlock(&c->rk_lock);
}

bool consumer_running(kaffe_consumer_t *c) {
    /* relaxed: a status flag, ordering nothing. */
    return atomic_load_explicit(&c->state, memory_order_relaxed) == ST_RUNNING;
}

bool consumer_stopped(kaffe_consumer_t *c) {
    /* acquire: pairs with the stop sequence's release store of ST_STOPPED,
     * after which the retired figures are final. */
    return atomic_load_explicit(&c->state, memory_order_acquire) == ST_STOPPED;
}
