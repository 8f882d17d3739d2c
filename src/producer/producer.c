/* The producer's lifecycle and its calls that are not produce calls:
 * kaffe_producer_new, kaffe_producer_destroy, kaffe_producer_flush,
 * kaffe_producer_stats, and the producer's reading of a librdkafka error
 * (producer_status).
 *
 * Owns: the configuration group of struct kaffe_producer_s (set here before
 * any thread starts), the threads' start and stop, and the order of
 * destruction.
 * Threads: new and destroy run on the application's thread that owns the
 * producer (destroy is not concurrent with any other call); flush and stats
 * on any caller thread (flush refuses to run on the delivery thread). The
 * other files are listed in internal.h. */
#include <kaffe/producer.h>
#include <kaffe/stats.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/clock.h"
#include "common/errstr.h"
#include "common/status.h"
#include "conf/conf.h"
#include "metrics/stats_export.h"
#include "producer/internal.h"

/* Relaxed: only uniqueness of the ids matters. */
static atomic_uint_fast64_t next_producer_id = 1;

kaffe_status_t producer_status(const kaffe_producer_t *p, rd_kafka_resp_err_t err) {
    kaffe_status_t st = status_from_rdkafka(err);
    /* A timeout while no broker was reachable is that fault, not a timeout. */
    if (st == KAFFE_ERR_TIMED_OUT && atomic_load_explicit(&p->brokers_down, memory_order_relaxed))
        return KAFFE_ERR_ALL_BROKERS_DOWN;
    return st;
}

static bool passthrough_given(const kaffe_conf_t *conf, const char *rdkafka_name) {
    size_t size = 0;
    return kaffe_conf_get(conf, rdkafka_name, NULL, &size) == KAFFE_OK;
}

static bool rd_set(rd_kafka_conf_t *rdconf, const char *name, const char *value, char *errstr,
                   size_t errstr_size) {
    char rderr[256];
    if (rd_kafka_conf_set(rdconf, name, value, rderr, sizeof rderr) == RD_KAFKA_CONF_OK)
        return true;
    errstr_printf(errstr, errstr_size, "%s: %s", name, rderr);
    return false;
}

/* The librdkafka configuration: the conf room's mapping plus the producer's
 * own defaults, each only when the user did not pass the property. */
static rd_kafka_conf_t *producer_rdconf(const kaffe_conf_t *conf, int *message_timeout_ms,
                                        size_t *defer_max_messages, size_t *defer_max_bytes,
                                        char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *rdconf = conf_to_rdkafka(conf, CONF_ROLE_PRODUCER, errstr, errstr_size);
    if (!rdconf)
        return NULL;
    bool ok = true;
    if (!passthrough_given(conf, "rdkafka.message.timeout.ms") &&
        !passthrough_given(conf, "rdkafka.delivery.timeout.ms")) {
        char value[32];
        snprintf(value, sizeof value, "%lld", (long long)conf_int(conf, "produce_timeout_ms"));
        ok = rd_set(rdconf, "message.timeout.ms", value, errstr, errstr_size);
    }
    /* A typo in a topic name must be an error, not a new topic. */
    if (ok && !passthrough_given(conf, "rdkafka.allow.auto.create.topics"))
        ok = rd_set(rdconf, "allow.auto.create.topics", "false", errstr, errstr_size);
    char value[32];
    size_t size = sizeof value;
    if (ok && rd_kafka_conf_get(rdconf, "message.timeout.ms", value, &size) == RD_KAFKA_CONF_OK)
        *message_timeout_ms = atoi(value);
    /* Rule 2's bounds: half of librdkafka's queue limits. */
    size = sizeof value;
    if (ok &&
        rd_kafka_conf_get(rdconf, "queue.buffering.max.messages", value, &size) == RD_KAFKA_CONF_OK)
        *defer_max_messages = (size_t)strtoull(value, NULL, 10) / 2;
    size = sizeof value;
    if (ok &&
        rd_kafka_conf_get(rdconf, "queue.buffering.max.kbytes", value, &size) == RD_KAFKA_CONF_OK)
        *defer_max_bytes = (size_t)strtoull(value, NULL, 10) * 1024 / 2;
    if (!ok) {
        rd_kafka_conf_destroy(rdconf);
        return NULL;
    }
    /* Delivery reports and errors as events on the main queue, served by the
     * delivery thread. */
    rd_kafka_conf_set_events(rdconf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR);
    return rdconf;
}

KAFFE_API kaffe_producer_t *kaffe_producer_new(kaffe_conf_t *conf, char *errstr,
                                               size_t errstr_size) {
    if (!conf) {
        errstr_printf(errstr, errstr_size, "kaffe_producer_new: conf must not be NULL");
        return NULL;
    }
    kaffe_producer_t *p = calloc(1, sizeof *p);
    if (!p) {
        errstr_printf(errstr, errstr_size, "kaffe_producer_new: out of memory");
        return NULL;
    }
    p->id = atomic_fetch_add_explicit(&next_producer_id, 1, memory_order_relaxed);
    p->message_timeout_ms = 300000;
    /* 0: nothing is deferred, should librdkafka not answer. */
    p->defer_max_messages = p->defer_max_bytes = 0;
    rd_kafka_conf_t *rdconf = producer_rdconf(conf, &p->message_timeout_ms, &p->defer_max_messages,
                                              &p->defer_max_bytes, errstr, errstr_size);
    if (!rdconf) {
        free(p);
        return NULL;
    }
    if (conf_list(conf, "topics", &p->topics) == 0) { /* conf_validate ensures one */
        conf_list_free(p->topics);
        rd_kafka_conf_destroy(rdconf);
        free(p);
        errstr_printf(errstr, errstr_size, "topics: at least one topic is required");
        return NULL;
    }
    p->partitioner = conf_partitioner(conf, &p->partitioner_opaque);
    /* strategy_t lists the choices in the property's order. */
    p->strategy =
        p->partitioner ? STRATEGY_FUNCTION : (strategy_t)conf_choice(conf, "partition_strategy");
    if (p->strategy == STRATEGY_MD5 && !producer_partition_md5_available()) {
        conf_list_free(p->topics);
        rd_kafka_conf_destroy(rdconf);
        free(p);
        errstr_printf(errstr, errstr_size,
                      "partition_strategy=md5: OpenSSL offers no MD5 here (a FIPS configuration?)");
        return NULL;
    }
    p->refresh_ms = (int)conf_int(conf, "partition_refresh_ms");

    /* Read by the log callback from librdkafka's threads (created by
     * rd_kafka_new, which orders this store before them); on failure the
     * caller keeps conf (the fail paths free p only). */
    p->conf = conf;
    rd_kafka_conf_set_opaque(rdconf, p);
    conf_route_rdkafka_logs(rdconf);
    char rderr[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, rdconf, rderr, sizeof rderr);
    if (!p->rk) {
        errstr_printf(errstr, errstr_size, "librdkafka: %s", rderr);
        rd_kafka_conf_destroy(rdconf);
        conf_list_free(p->topics);
        free(p);
        return NULL;
    }
    p->main_queue = rd_kafka_queue_get_main(p->rk);
    pthread_rwlock_init(&p->table_lock, NULL);
    pthread_mutex_init(&p->metadata_lock, NULL);
    pthread_mutex_init(&p->refresh_lock, NULL);
    pthread_mutex_init(&p->pool_lock, NULL);
    atomic_init(&p->returned_records, NULL);
    __cds_lfs_init(&p->deferred);
    __cds_lfs_init(&p->spare_nodes);
    atomic_init(&p->direct, 0);
    atomic_init(&p->defer_max_ms, DEFER_MAX_MS);
    atomic_init(&p->stat_accepted, 0);
    atomic_init(&p->stat_accepted_pooled, 0);
    clock_cond_init(&p->refresh_wakeup);
    atomic_init(&p->brokers_down, false);
    atomic_init(&p->stop_delivery, false);

    bool delivery_started =
        pthread_create(&p->delivery_thread, NULL, producer_delivery_main, p) == 0;
    bool refresh_started = delivery_started && pthread_create(&p->refresh_thread, NULL,
                                                              producer_topic_refresh_main, p) == 0;
    if (!refresh_started) {
        if (delivery_started) {
            atomic_store_explicit(&p->stop_delivery, true, memory_order_release);
            rd_kafka_queue_yield(p->main_queue);
            pthread_join(p->delivery_thread, NULL);
        }
        rd_kafka_queue_destroy(p->main_queue);
        rd_kafka_destroy(p->rk);
        pthread_rwlock_destroy(&p->table_lock);
        pthread_mutex_destroy(&p->metadata_lock);
        pthread_mutex_destroy(&p->refresh_lock);
        pthread_mutex_destroy(&p->pool_lock);
        pthread_cond_destroy(&p->refresh_wakeup);
        conf_list_free(p->topics);
        free(p);
        errstr_printf(errstr, errstr_size, "kaffe_producer_new: could not start a thread");
        return NULL; /* the caller keeps conf */
    }
    return p;
}

KAFFE_API void kaffe_producer_destroy(kaffe_producer_t *p) {
    if (!p)
        return;
    if (producer_delivery_thread_of == p) {
        conf_report_error(p->conf, "producer", KAFFE_ERR_STATE,
                          "kaffe_producer_destroy from a delivery callback: refused (it would "
                          "wait for the thread it runs on); the producer is left as it is");
        return;
    }
    /* From now on the delivery thread destroys every event itself (rule 3:
     * seq_cst increment, then the seq_cst exchange in producer_defer_take()). */
    atomic_fetch_add_explicit(&p->direct, 1, memory_order_seq_cst);
    producer_defer_take(p);
    /* Give queued messages their chance, then fail what is left; purged
     * messages get reports (callbacks) like any other failure. */
    if (rd_kafka_flush(p->rk, p->message_timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(p->rk, p->message_timeout_ms);
    }

    pthread_mutex_lock(&p->refresh_lock);
    p->stop_refresh = true;
    pthread_cond_signal(&p->refresh_wakeup);
    pthread_mutex_unlock(&p->refresh_lock);
    pthread_join(p->refresh_thread, NULL);

    /* Release pairs with the acquire load in producer_delivery_main(). */
    atomic_store_explicit(&p->stop_delivery, true, memory_order_release);
    rd_kafka_queue_yield(p->main_queue);
    pthread_join(p->delivery_thread, NULL);
    /* Reports that arrived after the last flush gave up: serve them here
     * rather than lose them. */
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(p->main_queue, 0)) != NULL) {
        size_t messages, bytes;
        producer_delivery_handle(p, ev, &messages, &bytes);
        rd_kafka_event_destroy(ev);
    }
    producer_defer_take(p); /* empty already (direct was raised before any flush) */
    producer_defer_spares_free(p);
    rd_kafka_queue_destroy(p->main_queue);
    producer_topic_table_destroy(p);
    rd_kafka_destroy(p->rk);
    /* Every async message has had its report: all records are back. */
    producer_record_pool_destroy(p);
    pthread_mutex_destroy(&p->pool_lock);
    pthread_rwlock_destroy(&p->table_lock);
    pthread_mutex_destroy(&p->metadata_lock);
    pthread_mutex_destroy(&p->refresh_lock);
    pthread_cond_destroy(&p->refresh_wakeup);
    conf_list_free(p->topics);
    /* Owned: const only because nothing changes it while the producer lives. */
    kaffe_conf_destroy((kaffe_conf_t *)p->conf);
    free(p);
}

KAFFE_API kaffe_status_t kaffe_producer_flush(kaffe_producer_t *p, int timeout_ms) {
    if (!p)
        return KAFFE_ERR_INVALID_ARG;
    if (producer_delivery_thread_of == p)
        return KAFFE_ERR_STATE;
    /* Rule 3: raise direct, then take the stack (both seq_cst): no event is
     * left deferred while rd_kafka_flush waits for the message count. */
    atomic_fetch_add_explicit(&p->direct, 1, memory_order_seq_cst);
    producer_defer_take(p);
    /* Nothing in librdkafka (no message, no report waiting): done, without
     * rd_kafka_flush, which read-locks the whole client to wake every broker
     * thread on each call. Threads flushing in a loop with nothing in flight
     * then held that lock without a gap, and librdkafka's main thread, which
     * write-locks it to apply metadata, starved (glibc rwlocks prefer
     * readers): a topic's first lookup then hung until its timeout. */
    rd_kafka_resp_err_t err = rd_kafka_outq_len(p->rk) == 0 ? RD_KAFKA_RESP_ERR_NO_ERROR
                                                            : rd_kafka_flush(p->rk, timeout_ms);
    /* relaxed: lowering direct publishes nothing; at worst the delivery
     * thread destroys one more event itself. */
    atomic_fetch_sub_explicit(&p->direct, 1, memory_order_relaxed);
    return err == RD_KAFKA_RESP_ERR_NO_ERROR ? KAFFE_OK : KAFFE_ERR_TIMED_OUT;
}

KAFFE_API kaffe_status_t kaffe_producer_stats(kaffe_producer_t *p, kaffe_producer_stats_t *stats) {
    if (!p || !stats)
        return KAFFE_ERR_INVALID_ARG;
    /* acquire: pairs with the release stores in delivery.c's complete(), so the relaxed
     * load of stat_accepted after them counts every message they count (see
     * the struct). */
    uint64_t produced = atomic_load_explicit(&p->stat_produced, memory_order_acquire);
    uint64_t failed = atomic_load_explicit(&p->stat_failed, memory_order_acquire);
    uint64_t accepted = atomic_load_explicit(&p->stat_accepted, memory_order_relaxed) +
                        atomic_load_explicit(&p->stat_accepted_pooled, memory_order_relaxed);
    stats->messages_produced = produced;
    stats->messages_failed = failed;
    /* A refused message is counted in accepted for a moment (see produce.c):
     * the difference is never below zero, but clamp all the same. */
    stats->messages_in_flight =
        accepted > produced + failed ? (int64_t)(accepted - produced - failed) : 0;
    metrics_latency_from_histogram(&p->stat_latency, &stats->produce_latency);
    return KAFFE_OK;
}
