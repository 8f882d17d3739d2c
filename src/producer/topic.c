/* The producer's topic table and partition counts (producer_topic_*).
 *
 * Owns: the topic table (entries, table_lock, metadata_lock), each entry's
 * partition count and refresh time, and the refresh thread.
 * Threads: caller threads look topics up (producer_topic_get) and refresh an
 * entry when a message names a partition beyond its count; the refresh
 * thread (producer_topic_refresh_main) re-reads every count each
 * partition_refresh_ms; destroy frees the table after both ended. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/thread_name.h"
#include "producer/internal.h"

/* Asks the cluster for topic's partition count. Called with metadata_lock. */
static kaffe_status_t fetch_partition_count(kaffe_producer_t *p, rd_kafka_topic_t *rkt,
                                            int timeout_ms, int32_t *count) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(p->rk, 0, rkt, &md, timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        return err == RD_KAFKA_RESP_ERR__TIMED_OUT ? KAFFE_ERR_TIMED_OUT : producer_status(p, err);
    kaffe_status_t st = KAFFE_OK;
    rd_kafka_resp_err_t terr = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (md->topic_cnt != 1 || terr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        st = KAFFE_ERR_UNKNOWN_TOPIC;
    } else if (terr == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
        st = (kaffe_status_t)terr;
    } else if (md->topics[0].partition_cnt > 0) {
        /* Other topic errors (e.g. a leader election under way) still come
         * with a usable partition count. */
        *count = md->topics[0].partition_cnt;
    } else {
        st =
            terr == RD_KAFKA_RESP_ERR_NO_ERROR ? KAFFE_ERR_UNKNOWN_TOPIC : producer_status(p, terr);
    }
    rd_kafka_metadata_destroy(md);
    return st;
}

/* A topic just created is not known to every broker at once (Kafka
 * propagates metadata asynchronously): a broker that has not learned of it
 * yet answers UNKNOWN_TOPIC_OR_PART. A topic's first lookup therefore asks
 * again, every TOPIC_PROPAGATION_STEP_MS for up to TOPIC_PROPAGATION_MS,
 * before calling it unknown (librdkafka's own produce path allows
 * topic.metadata.propagation.max.ms for the same reason). */
enum { TOPIC_PROPAGATION_MS = 1000, TOPIC_PROPAGATION_STEP_MS = 100 };

/* fetch_partition_count, asking again while the topic is unknown, for up
 * to TOPIC_PROPAGATION_MS. Called with metadata_lock. */
static kaffe_status_t fetch_partition_count_first(kaffe_producer_t *p, rd_kafka_topic_t *rkt,
                                                  int32_t *count) {
    int64_t deadline = clock_now_ms() + TOPIC_PROPAGATION_MS;
    kaffe_status_t st;
    while ((st = fetch_partition_count(p, rkt, p->message_timeout_ms, count)) ==
               KAFFE_ERR_UNKNOWN_TOPIC &&
           clock_now_ms() < deadline)
        clock_sleep_ms(TOPIC_PROPAGATION_STEP_MS);
    return st;
}

/* Re-reads e's count; keeps the larger (Kafka topics never shrink, and a
 * stale answer must not hide partitions already in use). Called with
 * metadata_lock. */
static void refresh_entry(kaffe_producer_t *p, topic_entry_t *e, int timeout_ms) {
    int32_t count = 0;
    if (fetch_partition_count(p, e->rkt, timeout_ms, &count) == KAFFE_OK &&
        count > atomic_load_explicit(&e->partition_count, memory_order_relaxed))
        atomic_store_explicit(&e->partition_count, count, memory_order_relaxed);
    atomic_store_explicit(&e->refreshed_at_ms, clock_now_ms(), memory_order_relaxed);
}

void producer_topic_refresh_if_stale(kaffe_producer_t *p, topic_entry_t *e) {
    /* At most once per OUT_OF_RANGE_REFRESH_MIN_MS per topic. The time is
     * checked again under metadata_lock (refreshed_at_ms is written only
     * under it, so that check is exact): of the callers that passed the
     * first check together, only the first asks the cluster, the others use
     * its answer. */
    int64_t last = atomic_load_explicit(&e->refreshed_at_ms, memory_order_relaxed);
    if (clock_now_ms() - last < OUT_OF_RANGE_REFRESH_MIN_MS)
        return;
    pthread_mutex_lock(&p->metadata_lock);
    last = atomic_load_explicit(&e->refreshed_at_ms, memory_order_relaxed);
    if (clock_now_ms() - last >= OUT_OF_RANGE_REFRESH_MIN_MS)
        refresh_entry(p, e, p->message_timeout_ms);
    pthread_mutex_unlock(&p->metadata_lock);
}

static topic_entry_t *find_entry(topic_entry_t **entries, size_t count, const char *name) {
    for (size_t i = 0; i < count; i++)
        if (strcmp(entries[i]->name, name) == 0)
            return entries[i];
    return NULL;
}

/* Each thread remembers the last topic entry it used, keyed by the
 * producer's unique id (not its address, which a later producer may reuse):
 * the common case of one thread producing to one topic then takes no lock.
 * The entry was read under table_lock (or created) by this same thread, so
 * it is fully visible here, and entries live as long as their producer. */
typedef struct topic_cache {
    uint64_t producer_id;
    topic_entry_t *entry;
} topic_cache_t;

static _Thread_local topic_cache_t topic_cache;

/* Appends a new entry for name (rkt, count), growing the array. Called with
 * metadata_lock. */
static kaffe_status_t append_entry(kaffe_producer_t *p, const char *name, rd_kafka_topic_t *rkt,
                                   int32_t count, topic_entry_t **out) {
    if (p->entry_count == p->entry_capacity) {
        size_t capacity = p->entry_capacity ? 2 * p->entry_capacity : 8;
        topic_entry_t **grown = malloc(capacity * sizeof *grown);
        if (!grown)
            return KAFFE_ERR_NOMEM;
        /* Readers may be scanning the old array: copy, swap under the write
         * lock, free the old one once no reader can hold it. */
        if (p->entry_count)
            memcpy(grown, p->entries, p->entry_count * sizeof *grown);
        pthread_rwlock_wrlock(&p->table_lock);
        topic_entry_t **old = p->entries;
        p->entries = grown;
        p->entry_capacity = capacity;
        pthread_rwlock_unlock(&p->table_lock);
        free(old);
    }
    topic_entry_t *e = calloc(1, sizeof *e);
    if (!e || !(e->name = strdup(name))) {
        free(e);
        return KAFFE_ERR_NOMEM;
    }
    e->rkt = rkt;
    atomic_init(&e->partition_count, count);
    atomic_init(&e->round_robin_next, 0);
    atomic_init(&e->refreshed_at_ms, clock_now_ms());
    pthread_rwlock_wrlock(&p->table_lock);
    p->entries[p->entry_count++] = e;
    pthread_rwlock_unlock(&p->table_lock);
    *out = e;
    return KAFFE_OK;
}

kaffe_status_t producer_topic_get(kaffe_producer_t *p, const char *name, topic_entry_t **out) {
    if (topic_cache.producer_id == p->id && strcmp(topic_cache.entry->name, name) == 0) {
        *out = topic_cache.entry;
        return KAFFE_OK;
    }
    pthread_rwlock_rdlock(&p->table_lock);
    topic_entry_t *e = find_entry(p->entries, p->entry_count, name);
    pthread_rwlock_unlock(&p->table_lock);
    if (e) {
        topic_cache = (topic_cache_t){p->id, e};
        *out = e;
        return KAFFE_OK;
    }

    pthread_mutex_lock(&p->metadata_lock);
    /* Appends happen only under metadata_lock: scanning without table_lock is safe. */
    e = find_entry(p->entries, p->entry_count, name);
    kaffe_status_t st = KAFFE_OK;
    if (!e) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, name, NULL);
        int32_t count = 0;
        st = rkt ? fetch_partition_count_first(p, rkt, &count)
                 : (kaffe_status_t)rd_kafka_last_error();
        if (st == KAFFE_OK)
            st = append_entry(p, name, rkt, count, &e);
        if (st != KAFFE_OK && rkt)
            rd_kafka_topic_destroy(rkt);
    }
    pthread_mutex_unlock(&p->metadata_lock);
    if (st == KAFFE_OK)
        topic_cache = (topic_cache_t){p->id, e};
    *out = st == KAFFE_OK ? e : NULL;
    return st;
}

void *producer_topic_refresh_main(void *arg) {
    kaffe_producer_t *p = arg;
    common_set_thread_name("kaffe-refresh");
    int timeout_ms =
        p->refresh_ms < REFRESH_REQUEST_TIMEOUT_MS ? p->refresh_ms : REFRESH_REQUEST_TIMEOUT_MS;
    pthread_mutex_lock(&p->refresh_lock);
    while (!p->stop_refresh) {
        /* refresh_wakeup runs on CLOCK_MONOTONIC (kaffe_producer_new). */
        struct timespec until = clock_deadline_after_ms(p->refresh_ms);
        int rc = 0;
        while (!p->stop_refresh && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&p->refresh_wakeup, &p->refresh_lock, &until);
        if (p->stop_refresh)
            break;
        pthread_mutex_unlock(&p->refresh_lock);
        pthread_mutex_lock(&p->metadata_lock);
        for (size_t i = 0; i < p->entry_count; i++)
            refresh_entry(p, p->entries[i], timeout_ms);
        pthread_mutex_unlock(&p->metadata_lock);
        pthread_mutex_lock(&p->refresh_lock);
    }
    pthread_mutex_unlock(&p->refresh_lock);
    return NULL;
}

void producer_topic_table_destroy(kaffe_producer_t *p) {
    for (size_t i = 0; i < p->entry_count; i++) {
        rd_kafka_topic_destroy(p->entries[i]->rkt);
        free(p->entries[i]->name);
        free(p->entries[i]);
    }
    free(p->entries);
    p->entries = NULL;
    p->entry_count = p->entry_capacity = 0;
}
