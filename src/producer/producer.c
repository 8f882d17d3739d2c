/* The producer: partition choice, sync/batch/async produce, delivery thread,
 * partition-count cache.
 *
 * Threads:
 *   - Caller threads run every produce call. They pick the partition
 *     themselves (so errors are synchronous and exact) and hand the message
 *     to librdkafka with an explicit partition and a pending record as the
 *     message opaque. At the start of each call they also free the delivery
 *     reports whose callbacks have run (see "Freeing delivery reports").
 *   - The delivery thread serves librdkafka's main queue in event mode
 *     (RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR): it completes each pending
 *     record exactly once (librdkafka emits exactly one delivery report per
 *     accepted message) and forwards client errors to the error callback.
 *     Because delivery reports are events, rd_kafka_flush() only waits and
 *     never runs a callback on the flushing thread.
 *   - The refresh thread re-reads partition counts every
 *     partition_refresh_ms.
 *
 * Sync completion: a sync call (one message or a batch) owns a sync_wait_t on
 * its stack: a mutex, a condvar and the number of its messages still without
 * a report. The delivery thread writes a message's result and decrements the
 * count under that mutex, signalling at zero; the caller waits under the
 * same mutex and returns only at zero, so every result is written before it
 * is read and no report can touch the wait after the caller left. Payloads of
 * sync messages are not copied: the caller's buffers outlive the message's
 * time in librdkafka because the caller does not return before its report
 * (librdkafka never reads a payload after reporting it).
 *
 * Async completion: an async message with a callback carries a record (the
 * callback and its opaque) taken from the producer's record pool; the
 * delivery thread runs the callback and returns the record to the pool (see
 * record_get() and records_return()). No record is malloc'ed or freed per
 * message: a malloc on the caller paired with a free on the delivery thread
 * cost ~300 instructions per message and contended on glibc's arena lock.
 * (Carrying the callback and opaque after the value in kaffe's own copy of
 * it, freed by librdkafka with RD_KAFKA_MSG_F_FREE, was measured too: the
 * extra malloc per message cost more than the pool.)
 *
 * Freeing delivery reports: destroying a DR event frees its messages (one
 * librdkafka allocation each, made by the producing thread) and takes
 * librdkafka's message-count lock once per message, which the producing
 * thread takes too. Done on the delivery thread, every message is freed on
 * another thread than the one that allocated it (glibc's arena lock, cache
 * lines moving between cores). So the delivery thread runs the callbacks and
 * then defers the event: it pushes it on the "deferred" stack, and the next
 * produce call on any producing thread destroys what is there (deferred_drain)
 * before it queues its own message. Callbacks still run only on the delivery
 * thread; only the free moves.
 *
 * Nothing may wait for a deferred event forever. Three things wait for
 * librdkafka's message count, which drops only when events are destroyed:
 * rd_kafka_flush() (kaffe_producer_flush, destroy), a produce call blocked in
 * RD_KAFKA_MSG_F_BLOCK for room in the queue, and librdkafka itself at
 * rd_kafka_destroy. The rules that make every deferred event destroyed
 * within a bounded time without any producing thread's help:
 *   1. Age: the delivery thread destroys the whole stack itself once its
 *      oldest event has waited DEFER_MAX_MS (it polls librdkafka with a
 *      timeout no longer than that while the stack is not empty). So a
 *      deferred event outlives its callback by at most DEFER_MAX_MS plus
 *      one poll wake-up, whatever the producing threads do; and every
 *      message librdkafka still counts is either in librdkafka (it reports
 *      it within message.timeout.ms) or deferred (destroyed within
 *      DEFER_MAX_MS). A waiter therefore waits at most DEFER_MAX_MS longer
 *      than it would without deferral, never forever.
 *   2. Size: the delivery thread does not defer an event that would take the
 *      stack past half of queue.buffering.max.messages or half of
 *      queue.buffering.max.kbytes (counted as key + value bytes, at least
 *      what librdkafka counts); it destroys it at once. So a produce call
 *      blocked for room is not held for the age limit: once the messages
 *      in librdkafka report, the count is at most half the limit.
 *   3. Flush: kaffe_producer_flush and destroy raise "direct" (seq_cst
 *      increment) and then take the stack (seq_cst exchange); the delivery
 *      thread pushes (seq_cst CAS) and then reads "direct" (seq_cst load),
 *      draining the stack itself when it is raised, and defers nothing while
 *      it is raised. In the single total order of these seq_cst operations
 *      either the flusher's exchange comes after the push (it takes the
 *      event) or the delivery thread's load comes after the increment (it
 *      destroys the event): an event is never left on the stack while
 *      rd_kafka_flush waits. A flush thus waits no longer than before.
 * A stack taken by a drainer is destroyed by that thread at once, before it
 * does anything that could block (its own produce comes after the drain). */
#include <kaffe/producer.h>
#include <kaffe/stats.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "common/errstr.h"
#include "common/thread_name.h"
#include "common/tsan.h"
#include "conf/conf.h"
#include "metrics/histogram.h"
#include "metrics/stats_export.h"
#include "producer/producer.h"

/* Metadata requests made by the refresh thread are bounded by this, so that
 * destroy does not wait long for a refresh against an unreachable cluster. */
#define REFRESH_REQUEST_TIMEOUT_MS 5000
/* A message naming a partition beyond the cached count triggers at most one
 * synchronous refresh per topic per this interval. */
#define OUT_OF_RANGE_REFRESH_MIN_MS 1000
/* Delivery reports taken from one event per call. */
#define DR_BATCH 256
/* Longest a delivery report waits on the deferred stack before the delivery
 * thread destroys it itself (see "Freeing delivery reports"); tests may
 * change it per producer (producer_set_defer_max_ms). */
#define DEFER_MAX_MS 5

typedef enum strategy {
    STRATEGY_ROUND_ROBIN,
    STRATEGY_RANDOM,
    STRATEGY_MD5,
    STRATEGY_MURMUR2,
    STRATEGY_FUNCTION,
} strategy_t;

/* One topic the producer has used. Created on first use, after metadata
 * confirmed the topic; never removed before kaffe_producer_destroy(), so a
 * pointer to it stays valid for the producer's life. */
typedef struct topic_entry {
    char *name;            /* immutable */
    rd_kafka_topic_t *rkt; /* immutable; destroyed with the producer */
    /* Partition count from the latest metadata; only grows. Stored by a
     * refresh (under metadata_lock), loaded by every produce call. Relaxed:
     * it is a standalone value and publishes no other data; a caller that
     * reads the previous count just chooses among the previous partitions. */
    _Atomic int32_t partition_count;
    /* round_robin position. Relaxed fetch_add: only atomicity is needed (each
     * caller gets a distinct ticket); it orders nothing else. */
    _Atomic uint64_t round_robin_next;
    /* Monotonic ms of the last metadata read. Written only under
     * metadata_lock; read without it as a rate-limit hint and again under it
     * before asking the cluster. Relaxed: the lock orders the exact read; the
     * hint publishes nothing. */
    _Atomic int64_t refreshed_at_ms;
} topic_entry_t;

/* What the opaque of a librdkafka message points to. */
typedef enum pending_kind {
    PENDING_SYNC = 1,
    PENDING_ASYNC = 2,
} pending_kind_t;

typedef struct pending {
    pending_kind_t kind;
} pending_t;

typedef struct sync_wait {
    pthread_mutex_t lock;
    pthread_cond_t done;
    size_t remaining; /* messages without a report yet. Protected by lock. */
} sync_wait_t;

typedef struct sync_pending {
    pending_t base;
    sync_wait_t *wait;
    kaffe_produce_result_t *result; /* written by the delivery thread under wait->lock */
} sync_pending_t;

typedef struct async_pending {
    pending_t base;
    kaffe_delivery_cb_t cb; /* NULL: report failures to the error callback */
    void *opaque;
    struct async_pending *next; /* link while the record is free */
} async_pending_t;

/* Shared by every async message without a callback; never freed. */
static async_pending_t async_without_callback = {{PENDING_ASYNC}, NULL, NULL, NULL};

/* A DR event whose callbacks have run, waiting on the deferred stack for a
 * producing thread to destroy it. Nodes are recycled like records: taken by
 * the delivery thread from its own free list, given back by the destroyer
 * (spare_nodes). */
typedef struct deferred_event {
    struct deferred_event *next;
    rd_kafka_event_t *ev;
} deferred_event_t;

/* Async records are recycled rather than malloc'ed per message and freed by
 * the delivery thread (a cross-thread malloc/free pair per message contended
 * on glibc's arena lock; see the record pool in kaffe_producer_s). They are
 * carved from chunks owned by the producer and freed with it. */
#define RECORD_CHUNK 256

typedef struct record_chunk {
    struct record_chunk *next;
    async_pending_t records[RECORD_CHUNK];
} record_chunk_t;

struct kaffe_producer_s {
    uint64_t id;        /* unique per producer in the process; immutable */
    kaffe_conf_t *conf; /* owned; immutable */
    rd_kafka_t *rk;
    rd_kafka_queue_t *main_queue;
    char **topics; /* configured topics; topics[0] is the default */
    strategy_t strategy;
    kaffe_partitioner_t partitioner;
    void *partitioner_opaque;
    kaffe_error_cb_t error_cb;
    void *error_opaque;
    int message_timeout_ms; /* effective message.timeout.ms */
    int refresh_ms;

    /* The topic table. Readers scan it under table_lock (read). Writers
     * append under metadata_lock and table_lock (write), so a holder of
     * metadata_lock may scan it without table_lock. */
    pthread_rwlock_t table_lock;
    topic_entry_t **entries;
    size_t entry_count, entry_capacity;
    /* Serialises metadata requests, refreshes and table appends. */
    pthread_mutex_t metadata_lock;

    /* Set when librdkafka reports all brokers down, cleared by the next
     * acknowledged message; turns a timeout into KAFFE_ERR_TRANSPORT. Relaxed:
     * a hint read and written by the delivery thread (and read by callers
     * mapping an immediate error), publishing nothing else. */
    atomic_bool brokers_down;

    /* The async record pool. Produce calls take records from free_records
     * under pool_lock; when it is empty they take the whole returned_records
     * stack at once (atomic exchange), and only when that is empty too carve
     * a new chunk. The delivery thread pushes each DR event's finished
     * records onto returned_records as one chain (a CAS push; pops only ever
     * take the whole stack, so there is no ABA). The pool's size is the peak
     * number of callback messages in flight (bounded by librdkafka's
     * queue.buffering.max.messages), 32 bytes each. */
    pthread_mutex_t pool_lock;
    async_pending_t *free_records; /* protected by pool_lock */
    record_chunk_t *chunks;        /* protected by pool_lock; freed by destroy */
    _Atomic(async_pending_t *) returned_records;

    /* The deferred stack (see "Freeing delivery reports" at the top). Pushed
     * by the delivery thread only (CAS); taken whole by any thread
     * (exchange), so there is no ABA. seq_cst: the push, the exchange and the
     * accesses to direct form the Dekker pair of rule 3. */
    _Alignas(64) _Atomic(deferred_event_t *) deferred;
    /* > 0 while a flush or destroy waits: the delivery thread destroys every
     * event itself. Incremented/decremented by flush, incremented for good by
     * destroy. seq_cst (rule 3). */
    atomic_int direct;
    /* Nodes given back by destroyers: CAS push of a chain (release), taken
     * whole by the delivery thread (acquire exchange), so the destroyer's
     * reads of a node happen before the delivery thread reuses it. */
    _Atomic(deferred_event_t *) spare_nodes;
    /* Largest backlog deferred (rule 2); immutable. */
    size_t defer_max_messages, defer_max_bytes;
    /* Rule 1's age limit, DEFER_MAX_MS unless a test changed it. Relaxed:
     * a standalone setting read by the delivery thread. */
    atomic_int defer_max_ms;

    pthread_t delivery_thread;
    /* Set by destroy (release) after the last flush; the delivery thread
     * loads it (acquire) between events. */
    atomic_bool stop_delivery;

    pthread_t refresh_thread;
    pthread_mutex_t refresh_lock;
    pthread_cond_t refresh_wakeup;
    bool stop_refresh; /* protected by refresh_lock */

    /* Stats (kaffe_producer_stats). In flight = accepted - (produced +
     * failed): the produce threads count on their side, the delivery thread
     * on its own, so no counter's cache line moves between them per message.
     * stat_accepted: relaxed fetch_add (before the message is queued, undone
     * if it is refused); it orders nothing. Messages with a callback are
     * counted in stat_accepted_pooled instead, inside the pool_lock section
     * that takes their record (and given back by record_put), which saves a
     * locked instruction per message: one writer at a time (pool_lock), so a
     * relaxed load and store. stat_produced, stat_failed: one
     * writer at a time (the delivery thread; destroy's final loop after it
     * ended), so a load and a store, no read-modify-write; the store is
     * release and kaffe_producer_stats() loads them with acquire before the
     * two accepted counters: a reader that sees a message completed also sees
     * it accepted (its count happened before its report), so in flight never
     * reads below zero. */
    _Alignas(64) atomic_ullong stat_accepted;
    atomic_ullong stat_accepted_pooled; /* written under pool_lock */
    _Alignas(64) atomic_ullong stat_produced, stat_failed;
    /* ns; delivery thread. Recorded per batch of reports, after their
     * callbacks but before a sync caller is woken and before the reports are
     * freed (so after a flush every latency is in). */
    histogram_t stat_latency;
};

/* Destroys what the deferred stack holds (defined with the delivery thread). */
static void deferred_drain(kaffe_producer_t *p);

/* The producer whose delivery thread this is (NULL elsewhere): sync calls
 * and flush refuse to run there, async produce does not block there. */
static _Thread_local const kaffe_producer_t *delivery_thread_of;

static int64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* librdkafka code -> kaffe status (kaffe's own code where one names the
 * failure, otherwise the librdkafka code unchanged). */
static kaffe_status_t status_of(const kaffe_producer_t *p, rd_kafka_resp_err_t err) {
    switch (err) {
        case RD_KAFKA_RESP_ERR_NO_ERROR:
            return KAFFE_OK;
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
        case RD_KAFKA_RESP_ERR__TIMED_OUT:
        case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
        case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
            return atomic_load_explicit(&p->brokers_down, memory_order_relaxed)
                       ? KAFFE_ERR_TRANSPORT
                       : KAFFE_ERR_TIMED_OUT;
        case RD_KAFKA_RESP_ERR__TRANSPORT:
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
            return KAFFE_ERR_TRANSPORT;
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
            return KAFFE_ERR_MSG_SIZE_TOO_LARGE;
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
        case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
            return KAFFE_ERR_UNKNOWN_TOPIC;
        case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
            return KAFFE_ERR_UNKNOWN_PARTITION;
        default:
            return (kaffe_status_t)err;
    }
}

/* ---- Partition counts ---------------------------------------------------- */

/* Asks the cluster for topic's partition count. Called with metadata_lock. */
static kaffe_status_t fetch_partition_count(kaffe_producer_t *p, rd_kafka_topic_t *rkt,
                                            int timeout_ms, int32_t *count) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(p->rk, 0, rkt, &md, timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        return err == RD_KAFKA_RESP_ERR__TIMED_OUT ? KAFFE_ERR_TIMED_OUT : status_of(p, err);
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
        st = terr == RD_KAFKA_RESP_ERR_NO_ERROR ? KAFFE_ERR_UNKNOWN_TOPIC : status_of(p, terr);
    }
    rd_kafka_metadata_destroy(md);
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
    atomic_store_explicit(&e->refreshed_at_ms, monotonic_ms(), memory_order_relaxed);
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

/* Relaxed: only uniqueness of the ids matters. */
static atomic_uint_fast64_t next_producer_id = 1;

/* The entry for topic, looking the topic up in metadata on first use. */
static kaffe_status_t topic_get(kaffe_producer_t *p, const char *name, topic_entry_t **out) {
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
        st = rkt ? fetch_partition_count(p, rkt, p->message_timeout_ms, &count)
                 : (kaffe_status_t)rd_kafka_last_error();
        if (st == KAFFE_OK && p->entry_count == p->entry_capacity) {
            size_t capacity = p->entry_capacity ? 2 * p->entry_capacity : 8;
            topic_entry_t **grown = malloc(capacity * sizeof *grown);
            if (grown) {
                /* Readers may be scanning the old array: copy, swap under the
                 * write lock, free the old one once no reader can hold it. */
                if (p->entry_count)
                    memcpy(grown, p->entries, p->entry_count * sizeof *grown);
                pthread_rwlock_wrlock(&p->table_lock);
                topic_entry_t **old = p->entries;
                p->entries = grown;
                p->entry_capacity = capacity;
                pthread_rwlock_unlock(&p->table_lock);
                free(old);
            } else {
                st = KAFFE_ERR_NOMEM;
            }
        }
        if (st == KAFFE_OK && !(e = calloc(1, sizeof *e)))
            st = KAFFE_ERR_NOMEM;
        if (st == KAFFE_OK && !(e->name = strdup(name))) {
            free(e);
            e = NULL;
            st = KAFFE_ERR_NOMEM;
        }
        if (st == KAFFE_OK) {
            e->rkt = rkt;
            atomic_init(&e->partition_count, count);
            atomic_init(&e->round_robin_next, 0);
            atomic_init(&e->refreshed_at_ms, monotonic_ms());
            pthread_rwlock_wrlock(&p->table_lock);
            p->entries[p->entry_count++] = e;
            pthread_rwlock_unlock(&p->table_lock);
        } else if (rkt) {
            rd_kafka_topic_destroy(rkt);
        }
    }
    pthread_mutex_unlock(&p->metadata_lock);
    if (st == KAFFE_OK)
        topic_cache = (topic_cache_t){p->id, e};
    *out = e;
    return st;
}

static void *refresh_main(void *arg) {
    kaffe_producer_t *p = arg;
    common_set_thread_name("kaffe-refresh");
    int timeout_ms =
        p->refresh_ms < REFRESH_REQUEST_TIMEOUT_MS ? p->refresh_ms : REFRESH_REQUEST_TIMEOUT_MS;
    pthread_mutex_lock(&p->refresh_lock);
    while (!p->stop_refresh) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += p->refresh_ms / 1000;
        until.tv_nsec += (long)(p->refresh_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
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

/* ---- Partition choice ---------------------------------------------------- */

/* A per-thread xorshift64* generator, seeded on first use. */
static uint32_t random_u32(void) {
    static _Thread_local uint64_t state;
    if (state == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
                        (uint64_t)(uintptr_t)&state * 0x9e3779b97f4a7c15ull;
        state = seed ? seed : 0x2545f4914f6cdd1dull;
    }
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return (uint32_t)((state * 0x2545f4914f6cdd1dull) >> 32);
}

static int32_t round_robin(topic_entry_t *e, int32_t count) {
    uint64_t ticket = atomic_fetch_add_explicit(&e->round_robin_next, 1, memory_order_relaxed);
    return (int32_t)(ticket % (uint64_t)count);
}

static kaffe_status_t choose_partition(kaffe_producer_t *p, topic_entry_t *e,
                                       const kaffe_produce_msg_t *msg, int32_t *partition) {
    int32_t count = atomic_load_explicit(&e->partition_count, memory_order_relaxed);
    if (msg->partition != KAFFE_PARTITION_ANY) {
        if (msg->partition < 0)
            return KAFFE_ERR_UNKNOWN_PARTITION;
        if (msg->partition >= count) {
            /* Maybe the topic grew since the last refresh: look, at most
             * once per OUT_OF_RANGE_REFRESH_MIN_MS per topic. The time is
             * checked again under metadata_lock (refreshed_at_ms is written
             * only under it, so that check is exact): of the callers that
             * passed the first check together, only the first asks the
             * cluster, the others use its answer. */
            int64_t last = atomic_load_explicit(&e->refreshed_at_ms, memory_order_relaxed);
            if (monotonic_ms() - last >= OUT_OF_RANGE_REFRESH_MIN_MS) {
                pthread_mutex_lock(&p->metadata_lock);
                last = atomic_load_explicit(&e->refreshed_at_ms, memory_order_relaxed);
                if (monotonic_ms() - last >= OUT_OF_RANGE_REFRESH_MIN_MS)
                    refresh_entry(p, e, p->message_timeout_ms);
                pthread_mutex_unlock(&p->metadata_lock);
                count = atomic_load_explicit(&e->partition_count, memory_order_relaxed);
            }
            if (msg->partition >= count)
                return KAFFE_ERR_UNKNOWN_PARTITION;
        }
        *partition = msg->partition;
        return KAFFE_OK;
    }
    switch (p->strategy) {
        case STRATEGY_FUNCTION: {
            int32_t chosen = p->partitioner(e->name, count, msg->key, msg->key_len, msg->value,
                                            msg->value_len, p->partitioner_opaque);
            if (chosen < 0 || chosen >= count)
                return KAFFE_ERR_PARTITIONER;
            *partition = chosen;
            return KAFFE_OK;
        }
        case STRATEGY_RANDOM:
            *partition = (int32_t)(random_u32() % (uint32_t)count);
            return KAFFE_OK;
        case STRATEGY_MD5:
            *partition = msg->key ? producer_partition_md5(msg->key, msg->key_len, count)
                                  : round_robin(e, count);
            return KAFFE_OK;
        case STRATEGY_MURMUR2:
            *partition = msg->key ? producer_partition_murmur2(msg->key, msg->key_len, count)
                                  : round_robin(e, count);
            return KAFFE_OK;
        case STRATEGY_ROUND_ROBIN:
        default:
            *partition = round_robin(e, count);
            return KAFFE_OK;
    }
}

/* ---- Handing a message to librdkafka ------------------------------------- */

static bool msg_is_valid(const kaffe_produce_msg_t *msg) {
    if (!msg || (!msg->key && msg->key_len) || (!msg->value && msg->value_len) ||
        (!msg->headers && msg->header_count) || msg->timestamp_ms < 0)
        return false;
    for (size_t i = 0; i < msg->header_count; i++)
        if (!msg->headers[i].name || (!msg->headers[i].value && msg->headers[i].value_len))
            return false;
    return true;
}

/* Chooses the partition and queues msg with pending as its opaque. On
 * KAFFE_OK exactly one delivery report for pending will follow; on any other
 * status none will. *partition is the chosen partition or -1. counted: the
 * message is counted accepted already (a pooled record, see
 * stat_accepted_pooled). */
static kaffe_status_t send_one(kaffe_producer_t *p, const kaffe_produce_msg_t *msg,
                               pending_t *pending, int msgflags, bool counted, int32_t *partition) {
    *partition = -1;
    /* Free the delivery reports whose callbacks have run on this thread
     * rather than the delivery thread (see "Freeing delivery reports"). */
    deferred_drain(p);
    if (!msg_is_valid(msg))
        return KAFFE_ERR_INVALID_ARG;
    topic_entry_t *e;
    kaffe_status_t st = topic_get(p, msg->topic ? msg->topic : p->topics[0], &e);
    if (st != KAFFE_OK)
        return st;
    int32_t chosen;
    if ((st = choose_partition(p, e, msg, &chosen)) != KAFFE_OK)
        return st;

    rd_kafka_headers_t *headers = NULL;
    if (msg->header_count) {
        headers = rd_kafka_headers_new(msg->header_count);
        for (size_t i = 0; i < msg->header_count; i++)
            rd_kafka_header_add(headers, msg->headers[i].name, -1, msg->headers[i].value,
                                (ssize_t)msg->headers[i].value_len);
    }
    rd_kafka_vu_t vus[8];
    size_t n = 0;
    vus[n].vtype = RD_KAFKA_VTYPE_RKT;
    vus[n++].u.rkt = e->rkt;
    vus[n].vtype = RD_KAFKA_VTYPE_PARTITION;
    vus[n++].u.i32 = chosen;
    vus[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vus[n++].u.i = msgflags;
    vus[n].vtype = RD_KAFKA_VTYPE_KEY;
    vus[n].u.mem.ptr = (void *)msg->key;
    vus[n++].u.mem.size = msg->key_len;
    vus[n].vtype = RD_KAFKA_VTYPE_VALUE;
    vus[n].u.mem.ptr = (void *)msg->value;
    vus[n++].u.mem.size = msg->value_len;
    vus[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vus[n++].u.ptr = pending;
    if (msg->timestamp_ms) {
        vus[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
        vus[n++].u.i64 = msg->timestamp_ms;
    }
    if (headers) {
        /* librdkafka owns the headers once the message is accepted. */
        vus[n].vtype = RD_KAFKA_VTYPE_HEADERS;
        vus[n++].u.headers = headers;
    }
    /* The pending record travels to the delivery thread inside librdkafka,
     * whose locks TSan cannot see: state the hand-off (pairs with the
     * TSAN_ACQUIRE in complete()). */
    TSAN_RELEASE(pending);
    /* Counted before the report can arrive, so the gauge never dips below
     * zero; taken back if the message is refused. relaxed: statistics (see
     * the struct). */
    if (!counted)
        atomic_fetch_add_explicit(&p->stat_accepted, 1, memory_order_relaxed);
    rd_kafka_error_t *error = rd_kafka_produceva(p->rk, vus, n);
    if (error) {
        if (!counted)
            atomic_fetch_sub_explicit(&p->stat_accepted, 1, memory_order_relaxed);
        st = status_of(p, rd_kafka_error_code(error));
        rd_kafka_error_destroy(error);
        if (headers)
            rd_kafka_headers_destroy(headers);
        return st;
    }
    *partition = chosen;
    return KAFFE_OK;
}

/* ---- Delivery thread ----------------------------------------------------- */

/* Finished async records of one DR event, returned to the pool together. */
typedef struct record_chain {
    async_pending_t *first, *last;
} record_chain_t;

/* Pushes chain onto the producer's returned_records. */
static void records_return(kaffe_producer_t *p, record_chain_t *chain) {
    if (!chain->first)
        return;
    async_pending_t *head = atomic_load_explicit(&p->returned_records, memory_order_relaxed);
    do {
        chain->last->next = head;
        /* release: the callbacks' reads of cb/opaque and the next links written
         * above happen before a produce call that takes these records (its
         * acquire exchange in record_get()) reuses them. Failure relaxed: we
         * only retry with the new head. */
    } while (!atomic_compare_exchange_weak_explicit(&p->returned_records, &head, chain->first,
                                                    memory_order_release, memory_order_relaxed));
    chain->first = chain->last = NULL;
}

/* Adds delta to stat_accepted_pooled. Called with pool_lock. */
static void count_pooled(kaffe_producer_t *p, uint64_t delta) {
    atomic_store_explicit(&p->stat_accepted_pooled,
                          atomic_load_explicit(&p->stat_accepted_pooled, memory_order_relaxed) +
                              delta,
                          memory_order_relaxed);
}

/* A free async record for a produce call, or NULL when out of memory. Its
 * message is counted accepted (see stat_accepted_pooled). */
static async_pending_t *record_get(kaffe_producer_t *p) {
    pthread_mutex_lock(&p->pool_lock);
    async_pending_t *ap = p->free_records;
    if (!ap) {
        /* acquire: pairs with the release CAS in records_return(). */
        ap = atomic_exchange_explicit(&p->returned_records, NULL, memory_order_acquire);
    }
    if (!ap) {
        record_chunk_t *c = malloc(sizeof *c);
        if (!c) {
            pthread_mutex_unlock(&p->pool_lock);
            return NULL;
        }
        c->next = p->chunks;
        p->chunks = c;
        for (size_t i = 0; i + 1 < RECORD_CHUNK; i++)
            c->records[i].next = &c->records[i + 1];
        c->records[RECORD_CHUNK - 1].next = NULL;
        ap = &c->records[0];
    }
    p->free_records = ap->next;
    /* The next record's line was last written by the delivery thread: start
     * fetching it (for writing) now, for the next call. */
    if (p->free_records)
        __builtin_prefetch(p->free_records, 1);
    count_pooled(p, 1);
    pthread_mutex_unlock(&p->pool_lock);
    return ap;
}

/* Gives back a record that was never handed to librdkafka (its message is
 * no longer counted accepted). */
static void record_put(kaffe_producer_t *p, async_pending_t *ap) {
    pthread_mutex_lock(&p->pool_lock);
    ap->next = p->free_records;
    p->free_records = ap;
    count_pooled(p, (uint64_t)-1);
    pthread_mutex_unlock(&p->pool_lock);
}

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
    } else if (st != KAFFE_OK && p->error_cb) {
        char reason[512];
        snprintf(reason, sizeof reason, "message to %s [%d] not delivered: %s",
                 rd_kafka_topic_name(m->rkt), (int)m->partition, kaffe_strerror(st));
        p->error_cb(st, reason, p->error_opaque);
    }
}

/* Completes one message; a finished async record is appended to done, its
 * latency (ns) to latencies[*nlatencies]. One thread at a time (see
 * stat_produced). */
static void complete(kaffe_producer_t *p, const rd_kafka_message_t *m, record_chain_t *done,
                     uint64_t *latencies, size_t *nlatencies) {
    kaffe_status_t st = status_of(p, m->err);
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
    TSAN_ACQUIRE(pending); /* pairs with the TSAN_RELEASE in send_one() */
    if (pending->kind == PENDING_SYNC) {
        /* A sync caller that returned finds its latency recorded (as
         * before batching): record the batch so far before waking it. */
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
    if (ap != &async_without_callback) {
        ap->next = NULL;
        if (done->last)
            done->last->next = ap;
        else
            done->first = ap;
        done->last = ap;
    }
}

/* Serves one event. For a DR event, *messages and *bytes receive its number
 * of messages and their key + value bytes (0 for other events). */
static void handle_event(kaffe_producer_t *p, rd_kafka_event_t *ev, size_t *messages,
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
                records_return(p, &done);
                histogram_record_many(&p->stat_latency, latencies, nlatencies);
            }
            break;
        }
        case RD_KAFKA_EVENT_ERROR: {
            rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
            if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
                atomic_store_explicit(&p->brokers_down, true, memory_order_relaxed);
            conf_log(p->conf, KAFFE_LOG_ERROR, "producer", "%s: %s",
                     kaffe_err_name(status_of(p, err)), rd_kafka_event_error_string(ev));
            if (p->error_cb)
                p->error_cb(status_of(p, err), rd_kafka_event_error_string(ev), p->error_opaque);
            break;
        }
        default:
            break;
    }
}

/* ---- Deferred destruction of delivery reports ----------------------------
 * See "Freeing delivery reports" at the top of the file for the design and
 * the argument that nothing waits for a deferred event forever. */

/* Destroys the events of a chain taken from the deferred stack and gives its
 * nodes back to the delivery thread. Any thread. */
static void deferred_destroy(kaffe_producer_t *p, deferred_event_t *first) {
    if (!first)
        return;
    deferred_event_t *last = first;
    for (deferred_event_t *d = first; d; d = d->next) {
        /* Frees the event's messages: only now does rd_kafka_flush()
         * (waiting for the message count to reach zero) see them as done,
         * after their callbacks returned. */
        rd_kafka_event_destroy(d->ev);
        last = d;
    }
    deferred_event_t *head = atomic_load_explicit(&p->spare_nodes, memory_order_relaxed);
    do {
        last->next = head;
        /* release: our reads of the nodes happen before the delivery thread
         * (acquire exchange in node_get) reuses them. Failure relaxed: we only
         * retry with the new head. */
    } while (!atomic_compare_exchange_weak_explicit(&p->spare_nodes, &head, first,
                                                    memory_order_release, memory_order_relaxed));
}

/* Takes the whole deferred stack and destroys it. seq_cst exchange: rule 3
 * (pairs with the push and the load of direct in defer_or_destroy()). Any
 * thread. */
static void deferred_take(kaffe_producer_t *p) {
    deferred_destroy(p, atomic_exchange_explicit(&p->deferred, NULL, memory_order_seq_cst));
}

/* The cheap form for the start of every produce call: a relaxed look first,
 * so that an empty stack costs one load (of a line the delivery thread
 * writes once per event, not per message). */
static void deferred_drain(kaffe_producer_t *p) {
    if (atomic_load_explicit(&p->deferred, memory_order_relaxed))
        deferred_take(p);
}

/* The delivery thread's own view of the deferred stack. */
typedef struct defer_state {
    deferred_event_t *free_nodes; /* spare nodes, private */
    /* What was deferred since the stack was last seen empty: at least what
     * it holds (a drain is noticed only later), so the bound of rule 2 is
     * never exceeded. */
    size_t messages, bytes;
    int64_t oldest_ms; /* when the oldest event on the stack was deferred */
} defer_state_t;

static deferred_event_t *node_get(kaffe_producer_t *p, defer_state_t *ds) {
    deferred_event_t *d = ds->free_nodes;
    if (!d) /* acquire: pairs with the release CAS in deferred_destroy(). */
        d = atomic_exchange_explicit(&p->spare_nodes, NULL, memory_order_acquire);
    if (d) {
        ds->free_nodes = d->next;
        return d;
    }
    return malloc(sizeof *d); /* NULL: the event is destroyed at once */
}

/* Delivery thread: after ev's callbacks ran, defers it (messages, bytes: its
 * size) or destroys it at once (rules 2 and 3). */
static void defer_or_destroy(kaffe_producer_t *p, defer_state_t *ds, rd_kafka_event_t *ev,
                             size_t messages, size_t bytes) {
    /* Only this thread pushes: an empty stack means everything counted has
     * been taken. Relaxed: a stale non-empty answer only overestimates. */
    if (!atomic_load_explicit(&p->deferred, memory_order_relaxed))
        ds->messages = ds->bytes = 0;
    deferred_event_t *d = NULL;
    if (messages > 0 && atomic_load_explicit(&p->direct, memory_order_seq_cst) == 0 &&
        ds->messages + messages <= p->defer_max_messages && ds->bytes + bytes <= p->defer_max_bytes)
        d = node_get(p, ds);
    if (!d) {
        rd_kafka_event_destroy(ev);
        return;
    }
    d->ev = ev;
    deferred_event_t *head = atomic_load_explicit(&p->deferred, memory_order_relaxed);
    do {
        d->next = head;
        /* seq_cst: rule 3's push (and release for the destroyer, which
         * reads d and the event after its exchange). */
    } while (!atomic_compare_exchange_weak_explicit(&p->deferred, &head, d, memory_order_seq_cst,
                                                    memory_order_relaxed));
    if (!head) {
        ds->messages = ds->bytes = 0;
        ds->oldest_ms = monotonic_ms();
    }
    ds->messages += messages;
    ds->bytes += bytes;
    /* Rule 3: a flush that started before our push may have taken the stack
     * before it; then we see its increment here and destroy the event. */
    if (atomic_load_explicit(&p->direct, memory_order_seq_cst) > 0)
        deferred_take(p);
}

static void *delivery_main(void *arg) {
    kaffe_producer_t *p = arg;
    delivery_thread_of = p;
    common_set_thread_name("kaffe-delivery");
    defer_state_t ds = {NULL, 0, 0, 0};
    /* Acquire pairs with the release store in kaffe_producer_destroy(). */
    while (!atomic_load_explicit(&p->stop_delivery, memory_order_acquire)) {
        /* Rule 1: no deferred event waits longer than DEFER_MAX_MS. Relaxed
         * look: only this thread pushes, so NULL means nothing of ours waits. */
        int timeout_ms = 1000;
        if (atomic_load_explicit(&p->deferred, memory_order_relaxed)) {
            int64_t age = monotonic_ms() - ds.oldest_ms;
            int max_ms = atomic_load_explicit(&p->defer_max_ms, memory_order_relaxed);
            if (age >= max_ms)
                deferred_take(p);
            else if (max_ms - age < timeout_ms)
                timeout_ms = (int)(max_ms - age);
        }
        rd_kafka_event_t *ev = rd_kafka_queue_poll(p->main_queue, timeout_ms);
        if (!ev)
            continue;
        size_t messages, bytes;
        handle_event(p, ev, &messages, &bytes);
        defer_or_destroy(p, &ds, ev, messages, bytes);
    }
    /* Destroy gives no more events a chance to be deferred (direct is
     * raised for good) and takes the stack after this thread ends. */
    for (deferred_event_t *d = ds.free_nodes, *next; d; d = next) {
        next = d->next;
        free(d);
    }
    return NULL;
}

/* ---- Construction and destruction ----------------------------------------- */

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

static strategy_t strategy_named(const char *name) {
    if (strcmp(name, "random") == 0)
        return STRATEGY_RANDOM;
    if (strcmp(name, "md5") == 0)
        return STRATEGY_MD5;
    if (strcmp(name, "murmur2") == 0)
        return STRATEGY_MURMUR2;
    return STRATEGY_ROUND_ROBIN; /* validated by the conf table: round_robin */
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

/* librdkafka's log lines, on its threads: through the conf's log sink. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    const kaffe_producer_t *p = rd_kafka_opaque(rk);
    conf_log_rdkafka(p->conf, level, fac, buf);
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
    p->strategy =
        p->partitioner ? STRATEGY_FUNCTION : strategy_named(conf_str(conf, "partition_strategy"));
    p->error_cb = conf_error_cb(conf, &p->error_opaque);
    p->refresh_ms = (int)conf_int(conf, "partition_refresh_ms");

    /* Read by log_cb from librdkafka's threads (created by rd_kafka_new,
     * which orders this store before them); on failure the caller keeps
     * conf (the fail paths free p only). */
    p->conf = conf;
    rd_kafka_conf_set_opaque(rdconf, p);
    rd_kafka_conf_set_log_cb(rdconf, log_cb);
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
    atomic_init(&p->deferred, NULL);
    atomic_init(&p->spare_nodes, NULL);
    atomic_init(&p->direct, 0);
    atomic_init(&p->defer_max_ms, DEFER_MAX_MS);
    atomic_init(&p->stat_accepted, 0);
    atomic_init(&p->stat_accepted_pooled, 0);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->refresh_wakeup, &attr);
    pthread_condattr_destroy(&attr);
    atomic_init(&p->brokers_down, false);
    atomic_init(&p->stop_delivery, false);
    p->conf = conf;

    bool delivery_started = pthread_create(&p->delivery_thread, NULL, delivery_main, p) == 0;
    bool refresh_started =
        delivery_started && pthread_create(&p->refresh_thread, NULL, refresh_main, p) == 0;
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
    /* From now on the delivery thread destroys every event itself (rule 3:
     * seq_cst increment, then the seq_cst exchange in deferred_take()). */
    atomic_fetch_add_explicit(&p->direct, 1, memory_order_seq_cst);
    deferred_take(p);
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

    /* Release pairs with the acquire load in delivery_main(). */
    atomic_store_explicit(&p->stop_delivery, true, memory_order_release);
    rd_kafka_queue_yield(p->main_queue);
    pthread_join(p->delivery_thread, NULL);
    /* Reports that arrived after the last flush gave up: serve them here
     * rather than lose them. */
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(p->main_queue, 0)) != NULL) {
        size_t messages, bytes;
        handle_event(p, ev, &messages, &bytes);
        rd_kafka_event_destroy(ev);
    }
    deferred_take(p); /* empty already (direct was raised before any flush) */
    for (deferred_event_t *d = atomic_load_explicit(&p->spare_nodes, memory_order_acquire), *next;
         d; d = next) {
        next = d->next;
        free(d);
    }
    rd_kafka_queue_destroy(p->main_queue);
    for (size_t i = 0; i < p->entry_count; i++) {
        rd_kafka_topic_destroy(p->entries[i]->rkt);
        free(p->entries[i]->name);
        free(p->entries[i]);
    }
    free(p->entries);
    rd_kafka_destroy(p->rk);
    /* Every async message has had its report: all records are back. */
    for (record_chunk_t *c = p->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    pthread_mutex_destroy(&p->pool_lock);
    pthread_rwlock_destroy(&p->table_lock);
    pthread_mutex_destroy(&p->metadata_lock);
    pthread_mutex_destroy(&p->refresh_lock);
    pthread_cond_destroy(&p->refresh_wakeup);
    conf_list_free(p->topics);
    kaffe_conf_destroy(p->conf);
    free(p);
}

/* ---- Public produce calls ------------------------------------------------ */

/* Produces count messages and waits for all their reports. */
static kaffe_status_t produce_and_wait(kaffe_producer_t *p, const kaffe_produce_msg_t *msgs,
                                       size_t count, kaffe_produce_result_t *results) {
    if (delivery_thread_of == p) {
        for (size_t i = 0; i < count; i++)
            results[i] = (kaffe_produce_result_t){KAFFE_ERR_STATE, -1, -1};
        return KAFFE_ERR_STATE;
    }
    sync_wait_t w;
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.done, NULL);
    /* All count are outstanding before the first is queued, so a report
     * can never bring remaining to zero early. */
    w.remaining = count;
    sync_pending_t one;
    sync_pending_t *slots = count == 1 ? &one : malloc(count * sizeof *slots);
    if (!slots) {
        for (size_t i = 0; i < count; i++)
            results[i] = (kaffe_produce_result_t){KAFFE_ERR_NOMEM, -1, -1};
        pthread_cond_destroy(&w.done);
        pthread_mutex_destroy(&w.lock);
        return KAFFE_ERR_NOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        slots[i] = (sync_pending_t){{PENDING_SYNC}, &w, &results[i]};
        int32_t partition;
        kaffe_status_t st =
            send_one(p, &msgs[i], &slots[i].base, RD_KAFKA_MSG_F_BLOCK, false, &partition);
        if (st != KAFFE_OK) {
            /* No report will come for this one: account for it here. Its
             * result is ours to write (the delivery thread never sees it). */
            pthread_mutex_lock(&w.lock);
            results[i] = (kaffe_produce_result_t){st, partition, -1};
            w.remaining--;
            pthread_mutex_unlock(&w.lock);
        }
    }
    pthread_mutex_lock(&w.lock);
    while (w.remaining > 0)
        pthread_cond_wait(&w.done, &w.lock);
    pthread_mutex_unlock(&w.lock);
    pthread_cond_destroy(&w.done);
    pthread_mutex_destroy(&w.lock);
    if (slots != &one)
        free(slots);
    for (size_t i = 0; i < count; i++)
        if (results[i].status != KAFFE_OK)
            return count == 1 ? results[0].status : KAFFE_ERR_BATCH_INCOMPLETE;
    return KAFFE_OK;
}

KAFFE_API kaffe_status_t kaffe_produce_sync_msg(kaffe_producer_t *p, const kaffe_produce_msg_t *msg,
                                                kaffe_produce_result_t *result) {
    kaffe_produce_result_t local;
    kaffe_produce_result_t *r = result ? result : &local;
    if (!p || !msg) {
        *r = (kaffe_produce_result_t){KAFFE_ERR_INVALID_ARG, -1, -1};
        return KAFFE_ERR_INVALID_ARG;
    }
    return produce_and_wait(p, msg, 1, r);
}

KAFFE_API kaffe_status_t kaffe_produce_sync_batch(kaffe_producer_t *p,
                                                  const kaffe_produce_msg_t *msgs, size_t count,
                                                  kaffe_produce_result_t *results) {
    if (!p || !msgs || !results || count == 0)
        return KAFFE_ERR_INVALID_ARG;
    return produce_and_wait(p, msgs, count, results);
}

KAFFE_API kaffe_status_t kaffe_produce_sync_partition(kaffe_producer_t *p, const char *topic,
                                                      int32_t partition, const void *key,
                                                      size_t key_len, const void *value,
                                                      size_t value_len) {
    if (!topic)
        return KAFFE_ERR_INVALID_ARG;
    if (partition < 0)
        return KAFFE_ERR_UNKNOWN_PARTITION;
    kaffe_produce_msg_t msg = KAFFE_PRODUCE_MSG_INIT;
    msg.topic = topic;
    msg.partition = partition;
    msg.key = key;
    msg.key_len = key_len;
    msg.value = value;
    msg.value_len = value_len;
    return kaffe_produce_sync_msg(p, &msg, NULL);
}

KAFFE_API kaffe_status_t kaffe_produce_sync_topic(kaffe_producer_t *p, const char *topic,
                                                  const void *key, size_t key_len,
                                                  const void *value, size_t value_len) {
    if (!topic)
        return KAFFE_ERR_INVALID_ARG;
    kaffe_produce_msg_t msg = KAFFE_PRODUCE_MSG_INIT;
    msg.topic = topic;
    msg.key = key;
    msg.key_len = key_len;
    msg.value = value;
    msg.value_len = value_len;
    return kaffe_produce_sync_msg(p, &msg, NULL);
}

KAFFE_API kaffe_status_t kaffe_produce_sync(kaffe_producer_t *p, const void *key, size_t key_len,
                                            const void *value, size_t value_len) {
    kaffe_produce_msg_t msg = KAFFE_PRODUCE_MSG_INIT;
    msg.key = key;
    msg.key_len = key_len;
    msg.value = value;
    msg.value_len = value_len;
    return kaffe_produce_sync_msg(p, &msg, NULL);
}

KAFFE_API kaffe_status_t kaffe_produce_async(kaffe_producer_t *p, const kaffe_produce_msg_t *msg,
                                             kaffe_delivery_cb_t cb, void *opaque) {
    if (!p || !msg)
        return KAFFE_ERR_INVALID_ARG;
    /* Never block the delivery thread: it is what makes room in the queue. */
    int block = delivery_thread_of == p ? 0 : RD_KAFKA_MSG_F_BLOCK;
    int32_t partition;
    async_pending_t *ap = &async_without_callback;
    if (cb) {
        if (!(ap = record_get(p)))
            return KAFFE_ERR_NOMEM;
        *ap = (async_pending_t){{PENDING_ASYNC}, cb, opaque, NULL};
    }
    kaffe_status_t st = send_one(p, msg, &ap->base, RD_KAFKA_MSG_F_COPY | block,
                                 ap != &async_without_callback, &partition);
    if (st != KAFFE_OK && ap != &async_without_callback)
        record_put(p, ap);
    return st;
}

KAFFE_API kaffe_status_t kaffe_producer_flush(kaffe_producer_t *p, int timeout_ms) {
    if (!p)
        return KAFFE_ERR_INVALID_ARG;
    if (delivery_thread_of == p)
        return KAFFE_ERR_STATE;
    /* Rule 3: raise direct, then take the stack (both seq_cst): no event is
     * left deferred while rd_kafka_flush waits for the message count. */
    atomic_fetch_add_explicit(&p->direct, 1, memory_order_seq_cst);
    deferred_take(p);
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
    /* acquire: pairs with the release stores in complete(), so the relaxed
     * load of stat_accepted after them counts every message they count (see
     * the struct). */
    uint64_t produced = atomic_load_explicit(&p->stat_produced, memory_order_acquire);
    uint64_t failed = atomic_load_explicit(&p->stat_failed, memory_order_acquire);
    uint64_t accepted = atomic_load_explicit(&p->stat_accepted, memory_order_relaxed) +
                        atomic_load_explicit(&p->stat_accepted_pooled, memory_order_relaxed);
    stats->messages_produced = produced;
    stats->messages_failed = failed;
    /* A refused message is counted in accepted for a moment (see send_one):
     * the difference is never below zero, but clamp all the same. */
    stats->messages_in_flight =
        accepted > produced + failed ? (int64_t)(accepted - produced - failed) : 0;
    metrics_latency_from_histogram(&p->stat_latency, &stats->produce_latency);
    return KAFFE_OK;
}

/* ---- Test hooks (src/producer/producer.h) -------------------------------- */

bool producer_has_deferred(kaffe_producer_t *p) {
    /* relaxed: a snapshot for tests; orders nothing. */
    return atomic_load_explicit(&p->deferred, memory_order_relaxed) != NULL;
}

void producer_set_defer_max_ms(kaffe_producer_t *p, int ms) {
    atomic_store_explicit(&p->defer_max_ms, ms, memory_order_relaxed);
}
