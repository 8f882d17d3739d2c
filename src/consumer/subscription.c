/* The subscription: the topics and '^' patterns the consumer's group member
 * subscribes to, changed while running by kaffe_consumer_subscribe and
 * kaffe_consumer_unsubscribe (Kaffe's subscribe_to_topics).
 *
 * Threads: the list and `subscribed` are guarded by sub_lock, held across
 * every rd_kafka_subscribe that applies a list, so the list always equals
 * what librdkafka was last told. Application threads and workers change it;
 * the poll thread applies it again when it replaces the client after a
 * fatal error. The revokes a change causes run in the poll thread's
 * rebalance callback like any other; a change commits what is acked first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "consumer/internal.h"

static void list_free(char **list, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static bool listed(char *const *list, size_t n, const char *topic) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], topic) == 0)
            return true;
    return false;
}

bool consumer_subscription_init(kaffe_consumer_t *c, const kaffe_conf_t *conf) {
    pthread_mutex_init(&c->sub_lock, NULL);
    char **topics = NULL;
    size_t n = conf_list(conf, "topics", &topics);
    c->subscription = calloc(n ? n : 1, sizeof *c->subscription);
    if (!c->subscription) {
        conf_list_free(topics);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        c->subscription[i] = strdup(topics[i]);
        if (!c->subscription[i]) {
            conf_list_free(topics);
            return false;
        }
        c->subscription_n = i + 1;
    }
    conf_list_free(topics);
    return true;
}

void consumer_subscription_free(kaffe_consumer_t *c) {
    list_free(c->subscription, c->subscription_n);
    c->subscription = NULL;
    c->subscription_n = 0;
    pthread_mutex_destroy(&c->sub_lock);
}

/* Tells librdkafka the list. Under sub_lock; takes rk_lock so that the
 * handle is not replaced or destroyed meanwhile. */
static rd_kafka_resp_err_t apply(kaffe_consumer_t *c, char *const *list, size_t n) {
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(parts, list[i], RD_KAFKA_PARTITION_UA);
    pthread_mutex_lock(&c->rk_lock);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, parts);
    pthread_mutex_unlock(&c->rk_lock);
    rd_kafka_topic_partition_list_destroy(parts);
    return err;
}

rd_kafka_resp_err_t consumer_subscription_apply(kaffe_consumer_t *c) {
    pthread_mutex_lock(&c->sub_lock);
    rd_kafka_resp_err_t err = apply(c, c->subscription, c->subscription_n);
    if (!err)
        c->subscribed = true;
    pthread_mutex_unlock(&c->sub_lock);
    return err;
}

/* The current list with topics added (add) or removed; NULL with *status
 * set (and why, for the report) when a removed entry is not subscribed,
 * nothing would be left, or out of memory. Under sub_lock: reports nothing
 * itself (consumer_report_error takes c->lock, which start holds while it
 * waits for sub_lock). */
static char **changed_list(kaffe_consumer_t *c, const char *const *topics, size_t count, bool add,
                           size_t *n_out, kaffe_status_t *status, char *why, size_t why_size) {
    size_t cap = c->subscription_n + (add ? count : 0);
    char **list = calloc(cap ? cap : 1, sizeof *list);
    size_t n = 0;
    *status = KAFFE_ERR_NOMEM;
    snprintf(why, why_size, "out of memory");
    if (!list)
        return NULL;
    for (size_t i = 0; i < count && !add; i++)
        if (!listed(c->subscription, c->subscription_n, topics[i])) {
            snprintf(why, why_size, "not subscribed to \"%s\"", topics[i]);
            *status = KAFFE_ERR_INVALID_ARG;
            free(list);
            return NULL;
        }
    for (size_t i = 0; i < c->subscription_n; i++) {
        const char *t = c->subscription[i];
        bool removed = false;
        for (size_t j = 0; j < count && !add; j++)
            removed = removed || strcmp(topics[j], t) == 0;
        if (!removed && !(list[n++] = strdup(t)))
            goto nomem;
    }
    for (size_t i = 0; i < count && add; i++)
        if (!listed(list, n, topics[i]) && !(list[n++] = strdup(topics[i])))
            goto nomem;
    if (n == 0) {
        snprintf(why, why_size, "no topic would be left; stop the consumer instead");
        *status = KAFFE_ERR_INVALID_ARG;
        list_free(list, n);
        return NULL;
    }
    *n_out = n;
    *status = KAFFE_OK;
    return list;
nomem:
    list_free(list, n);
    return NULL;
}

static kaffe_status_t change(kaffe_consumer_t *c, const char *const *topics, size_t count,
                             bool add) {
    const char *fn = add ? "kaffe_consumer_subscribe" : "kaffe_consumer_unsubscribe";
    if (!c)
        return KAFFE_ERR_INVALID_ARG;
    if (!topics || count == 0) {
        consumer_report_error(c, KAFFE_ERR_INVALID_ARG, "%s: no topics given", fn);
        return KAFFE_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < count; i++)
        if (!topics[i] || !topics[i][0]) {
            consumer_report_error(c, KAFFE_ERR_INVALID_ARG, "%s: topic %zu is %s", fn, i,
                                  topics[i] ? "empty" : "NULL");
            return KAFFE_ERR_INVALID_ARG;
        }
    if (consumer_thread_role_for(c) == CONSUMER_THREAD_POLL) {
        consumer_report_error(c, KAFFE_ERR_STATE,
                              "%s called from the poll thread (a rebalance, error or log "
                              "callback): refused; call it from another thread",
                              fn);
        return KAFFE_ERR_STATE;
    }
    /* What is acked is committed first, under the current generation: the
     * rebalance the change starts may revoke and re-assign every partition
     * (librdkafka 2.0.2 does, with its generation reset), and each then
     * resumes from its committed offset. A failure was reported already. */
    if (atomic_load_explicit(&c->state, memory_order_acquire) == ST_RUNNING)
        (void)kaffe_consumer_commit(c);
    pthread_mutex_lock(&c->sub_lock);
    /* acquire: pairs with request_stop. */
    if (atomic_load_explicit(&c->stop_requested, memory_order_acquire) ||
        atomic_load_explicit(&c->state, memory_order_acquire) == ST_STOPPED) {
        pthread_mutex_unlock(&c->sub_lock);
        consumer_report_error(c, KAFFE_ERR_STATE, "%s: the consumer is stopping or stopped", fn);
        return KAFFE_ERR_STATE;
    }
    size_t n = 0;
    kaffe_status_t st;
    char why[320];
    char **list = changed_list(c, topics, count, add, &n, &st, why, sizeof why);
    if (!list) {
        pthread_mutex_unlock(&c->sub_lock);
        consumer_report_error(c, st, "%s: %s", fn, why);
        return st;
    }
    if (n == c->subscription_n) { /* everything added was subscribed already */
        pthread_mutex_unlock(&c->sub_lock);
        list_free(list, n);
        return KAFFE_OK;
    }
    rd_kafka_resp_err_t err = c->subscribed ? apply(c, list, n) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err) {
        pthread_mutex_unlock(&c->sub_lock);
        list_free(list, n);
        st = status_from_rdkafka(err);
        consumer_report_error(c, st, "%s: librdkafka refused the subscription: %s", fn,
                              rd_kafka_err2str(err));
        return st;
    }
    list_free(c->subscription, c->subscription_n);
    c->subscription = list;
    c->subscription_n = n;
    pthread_mutex_unlock(&c->sub_lock);
    return KAFFE_OK;
}

kaffe_status_t kaffe_consumer_subscribe(kaffe_consumer_t *c, const char *const *topics,
                                        size_t count) {
    return change(c, topics, count, true);
}

kaffe_status_t kaffe_consumer_unsubscribe(kaffe_consumer_t *c, const char *const *topics,
                                          size_t count) {
    return change(c, topics, count, false);
}
