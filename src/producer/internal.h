/* src/producer — declarations shared by the producer room's own files only
 * (the room's door for everything else is producer.h).
 *
 * Files, each named after its function prefix (producer_<file>_...):
 *   producer.c   lifecycle (new, destroy), flush, stats, status mapping
 *   produce.c    the public produce calls and handing a message to librdkafka
 *   topic.c      the topic table, partition counts, the refresh thread
 *   partition.c  partition choice: every strategy (round_robin, random, md5,
 *                murmur2, the application's function)
 *   delivery.c   the delivery thread: reports, sync wake-ups, callbacks
 *   record.c     the async record pool
 *   defer.c      deferred destruction of delivery reports (rules 1-3)
 *   testing.c    hooks only tests call
 *
 * Threads:
 *   - Caller threads run every produce call. They pick the partition
 *     themselves (so errors are synchronous and exact) and hand the message
 *     to librdkafka with an explicit partition and a pending record as the
 *     message opaque. At the start of each call they also free the delivery
 *     reports whose callbacks have run (defer.c).
 *   - The delivery thread serves librdkafka's main queue in event mode
 *     (RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR): it completes each pending
 *     record exactly once (librdkafka emits exactly one delivery report per
 *     accepted message) and forwards client errors to the error callback.
 *     Because delivery reports are events, rd_kafka_flush() only waits and
 *     never runs a callback on the flushing thread.
 *   - The refresh thread re-reads partition counts every
 *     partition_refresh_ms. */
#ifndef KAFFE_SRC_PRODUCER_INTERNAL_H
#define KAFFE_SRC_PRODUCER_INTERNAL_H

#include <kaffe/producer.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>
#include <urcu/compiler.h> /* caa_container_of */
#include <urcu/lfstack.h>

#include "metrics/histogram.h"

/* Metadata requests made by the refresh thread are bounded by this, so that
 * destroy does not wait long for a refresh against an unreachable cluster. */
#define REFRESH_REQUEST_TIMEOUT_MS 5000
/* A message naming a partition beyond the cached count triggers at most one
 * synchronous refresh per topic per this interval. */
#define OUT_OF_RANGE_REFRESH_MIN_MS 1000
/* Delivery reports taken from one event per call. */
#define DR_BATCH 256
/* Longest a delivery report waits on the deferred stack before the delivery
 * thread destroys it itself (defer.c, rule 1); tests may change it per
 * producer (producer_set_defer_max_ms). */
#define DEFER_MAX_MS 5
/* Async records are carved from chunks of this many (record.c). */
#define RECORD_CHUNK 256

/* The partition_strategy property's values, in the order of its choices in
 * src/conf/properties.c ("round_robin|random|md5|murmur2"), so that
 * conf_choice() maps a value straight to its strategy. STRATEGY_FUNCTION (an
 * application partitioner) comes after them. */
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

/* Sync completion: a sync call (one message or a batch) owns a sync_wait_t
 * on its stack. The delivery thread writes a message's result and decrements
 * remaining under lock, signalling at zero; the caller waits under the same
 * lock and returns only at zero, so every result is written before it is
 * read and no report can touch the wait after the caller left. Payloads of
 * sync messages are not copied: the caller does not return before its
 * report, and librdkafka never reads a payload after reporting it. */
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

/* Async completion: a message with a callback carries a record from the
 * producer's pool (record.c); the delivery thread runs the callback and
 * returns the record. */
typedef struct async_pending {
    pending_t base;
    kaffe_delivery_cb_t cb; /* NULL: report failures to the error callback */
    void *opaque;
    struct async_pending *next; /* link while the record is free */
} async_pending_t;

/* Shared by every async message without a callback; never freed (record.c). */
extern async_pending_t producer_record_without_callback;

typedef struct record_chunk {
    struct record_chunk *next;
    async_pending_t records[RECORD_CHUNK];
} record_chunk_t;

/* A DR event whose callbacks have run, waiting on the deferred stack for a
 * producing thread to destroy it (defer.c). Nodes are recycled: taken by the
 * delivery thread from its own free list, given back by the destroyer
 * (spare_nodes). */
typedef struct deferred_event {
    struct cds_lfs_node node; /* the link on either stack or the free list */
    rd_kafka_event_t *ev;
} deferred_event_t;

struct kaffe_producer_s {
    /* ---- Configuration: set by kaffe_producer_new before any thread
     * starts, then immutable; any thread reads it. ---- */
    /* First member: the rd_kafka_t's opaque is the producer, and
     * conf_route_rdkafka_logs() finds the conf through it (see conf.h; the
     * static assert below). Owned (kaffe_producer_destroy frees it). */
    const kaffe_conf_t *conf;
    uint64_t id; /* unique per producer in the process */
    rd_kafka_t *rk;
    rd_kafka_queue_t *main_queue;
    char **topics; /* configured topics; topics[0] is the default */
    strategy_t strategy;
    kaffe_partitioner_t partitioner;
    void *partitioner_opaque;
    int message_timeout_ms; /* effective message.timeout.ms */
    int refresh_ms;
    /* Rule 2's bounds (defer.c): half of librdkafka's queue limits. */
    size_t defer_max_messages, defer_max_bytes;

    /* ---- The topic table (topic.c): any thread. Readers scan it under
     * table_lock (read). Writers append under metadata_lock and table_lock
     * (write), so a holder of metadata_lock may scan it without table_lock.
     * ---- */
    pthread_rwlock_t table_lock;
    topic_entry_t **entries;
    size_t entry_count, entry_capacity;
    /* Serialises metadata requests, refreshes and table appends. */
    pthread_mutex_t metadata_lock;

    /* ---- Refresh-thread state (topic.c): the refresh thread and destroy,
     * under refresh_lock. ---- */
    pthread_t refresh_thread;
    pthread_mutex_t refresh_lock;
    pthread_cond_t refresh_wakeup; /* CLOCK_MONOTONIC */
    bool stop_refresh;             /* protected by refresh_lock */

    /* ---- Delivery-thread state (delivery.c). ---- */
    pthread_t delivery_thread;
    /* Set by destroy (release) after the last flush; the delivery thread
     * loads it (acquire) between events. */
    atomic_bool stop_delivery;
    /* Set when librdkafka reports all brokers down, cleared by the next
     * acknowledged message; turns a timeout into KAFFE_ERR_ALL_BROKERS_DOWN. Relaxed:
     * a hint written by the delivery thread (and read by callers mapping an
     * immediate error), publishing nothing else. */
    atomic_bool brokers_down;

    /* ---- Any thread, through atomics or pool_lock: the record pool
     * (record.c). Produce calls take records from free_records under
     * pool_lock; when it is empty they take the whole returned_records stack
     * at once (acquire exchange), and only when that is empty too carve a
     * new chunk. The delivery thread pushes each DR event's finished records
     * onto returned_records as one chain (release CAS; pops only ever take
     * the whole stack, so there is no ABA). ---- */
    pthread_mutex_t pool_lock;
    async_pending_t *free_records; /* protected by pool_lock */
    record_chunk_t *chunks;        /* protected by pool_lock; freed by destroy */
    _Atomic(async_pending_t *) returned_records;

    /* ---- Any thread, through liburcu's lock-free stacks and atomics: the
     * deferred stack (defer.c). cds_lfs_push is a full-barrier cmpxchg and
     * __cds_lfs_pop_all a full-barrier exchange (liburcu's uatomic), which
     * rule 3's Dekker pair with the seq_cst accesses to direct relies on. No
     * ABA: nothing ever pops a single node. ---- */
    /* Pushed by the delivery thread only; taken whole by any thread. */
    _Alignas(64) struct __cds_lfs_stack deferred;
    /* > 0 while a flush or destroy waits: the delivery thread destroys every
     * event itself. Incremented/decremented by flush, incremented for good by
     * destroy. seq_cst (rule 3). */
    atomic_int direct;
    /* Nodes given back by destroyers (one push each), taken whole by the
     * delivery thread, so the destroyer's reads of a node happen before the
     * delivery thread reuses it (the full barriers above). */
    struct __cds_lfs_stack spare_nodes;
    /* Rule 1's age limit, DEFER_MAX_MS unless a test changed it (testing.c).
     * Relaxed: a standalone setting read by the delivery thread. */
    atomic_int defer_max_ms;

    /* ---- Counters (kaffe_producer_stats). In flight = accepted - (produced
     * + failed): the produce threads count on their side, the delivery
     * thread on its own, so no counter's cache line moves between them per
     * message.
     * stat_accepted: relaxed fetch_add by produce threads (before the message
     * is queued, undone if it is refused); it orders nothing. Messages with a
     * callback are counted in stat_accepted_pooled instead, inside the
     * pool_lock section that takes their record (and given back by
     * producer_record_put), which saves a locked instruction per message:
     * one writer at a time (pool_lock), so a relaxed load and store.
     * stat_produced, stat_failed: one writer at a time (the delivery thread;
     * destroy's final loop after it ended), so a load and a store, no
     * read-modify-write; the store is release and kaffe_producer_stats()
     * loads them with acquire before the two accepted counters: a reader that
     * sees a message completed also sees it accepted, so in flight never
     * reads below zero. ---- */
    _Alignas(64) atomic_ullong stat_accepted;
    atomic_ullong stat_accepted_pooled; /* written under pool_lock */
    _Alignas(64) atomic_ullong stat_produced, stat_failed;
    /* ns; delivery thread. Recorded per batch of reports, after their
     * callbacks but before a sync caller is woken and before the reports are
     * freed (so after a flush every latency is in). */
    histogram_t stat_latency;
};

/* The conf_route_rdkafka_logs() convention: the rd_kafka_t's opaque (the
 * producer) starts with its const kaffe_conf_t pointer. */
_Static_assert(offsetof(struct kaffe_producer_s, conf) == 0,
               "conf_route_rdkafka_logs needs the conf pointer first");

/* The producer whose delivery thread this is (NULL elsewhere): sync calls
 * and flush refuse to run there, async produce does not block there. Set by
 * the delivery thread (delivery.c). */
extern _Thread_local const kaffe_producer_t *producer_delivery_thread_of;

/* ---- producer.c ---- */

/* librdkafka code -> kaffe status (kaffe's own code where one names the
 * failure, otherwise the librdkafka code unchanged). Any thread. */
kaffe_status_t producer_status(const kaffe_producer_t *p, rd_kafka_resp_err_t err);

/* ---- topic.c ---- */

/* The entry for topic, looking the topic up in metadata on first use.
 * Caller threads. */
kaffe_status_t producer_topic_get(kaffe_producer_t *p, const char *name, topic_entry_t **out);
/* Re-reads e's partition count when the last read is at least
 * OUT_OF_RANGE_REFRESH_MIN_MS old (a caller named a partition beyond it).
 * Caller threads; takes metadata_lock. */
void producer_topic_refresh_if_stale(kaffe_producer_t *p, topic_entry_t *e);
/* The refresh thread's body (arg: the producer). */
void *producer_topic_refresh_main(void *arg);
/* Frees the table (destroy, after every thread ended). */
void producer_topic_table_destroy(kaffe_producer_t *p);

/* ---- partition.c ---- */

/* The partition for msg on e: the one it names (checked against the count,
 * refreshed once if beyond it) or the strategy's choice. Caller threads. */
kaffe_status_t producer_partition_choose(kaffe_producer_t *p, topic_entry_t *e,
                                         const kaffe_produce_msg_t *msg, int32_t *partition);
/* Whether the md5 strategy can hash (OpenSSL's MD5 may be disabled, e.g. by
 * a FIPS configuration). Any thread. */
bool producer_partition_md5_available(void);

/* ---- delivery.c ---- */

/* The delivery thread's body (arg: the producer). */
void *producer_delivery_main(void *arg);
/* Serves one event. For a DR event, *messages and *bytes receive its number
 * of messages and their key + value bytes (0 for other events). One thread
 * at a time: the delivery thread, or destroy after it ended. */
void producer_delivery_handle(kaffe_producer_t *p, rd_kafka_event_t *ev, size_t *messages,
                              size_t *bytes);

/* ---- record.c ---- */

/* A free async record for a produce call, or NULL when out of memory; its
 * message is counted accepted (stat_accepted_pooled). Caller threads. */
async_pending_t *producer_record_get(kaffe_producer_t *p);
/* Gives back a record never handed to librdkafka (no longer counted
 * accepted). Caller threads. */
void producer_record_put(kaffe_producer_t *p, async_pending_t *ap);
/* A chain of finished records, returned to the pool together. */
typedef struct record_chain {
    async_pending_t *first, *last;
} record_chain_t;
/* Pushes chain onto returned_records and empties it. Delivery thread. */
void producer_record_return(kaffe_producer_t *p, record_chain_t *chain);
/* Frees every chunk (destroy, once every record is back). */
void producer_record_pool_destroy(kaffe_producer_t *p);

/* ---- defer.c ---- */

/* Takes the whole deferred stack and destroys it (seq_cst exchange, rule 3).
 * Any thread. */
void producer_defer_take(kaffe_producer_t *p);
/* The cheap form for the start of every produce call: a look first
 * (cds_lfs_empty, one plain load), so that an empty stack costs one load of
 * a line the delivery thread writes once per event, not per message. */
static inline void producer_defer_drain(kaffe_producer_t *p) {
    if (!cds_lfs_empty(&p->deferred))
        producer_defer_take(p);
}
/* The delivery thread's own view of the deferred stack. */
typedef struct defer_state {
    struct cds_lfs_node *free_nodes; /* spare nodes, private (linked by next) */
    /* What was deferred since the stack was last seen empty: at least what
     * it holds (a drain is noticed only later), so the bound of rule 2 is
     * never exceeded. */
    size_t messages, bytes;
    int64_t oldest_ms; /* when the oldest event on the stack was deferred */
} defer_state_t;
/* Delivery thread: after ev's callbacks ran, defers it (messages, bytes: its
 * size) or destroys it at once (rules 2 and 3). */
void producer_defer_or_destroy(kaffe_producer_t *p, defer_state_t *ds, rd_kafka_event_t *ev,
                               size_t messages, size_t bytes);
/* Delivery thread: the poll timeout that keeps rule 1 (at most max_ms, the
 * time left until the oldest deferred event is due), destroying the stack
 * when it is due already. */
int producer_defer_poll_timeout(kaffe_producer_t *p, const defer_state_t *ds, int max_ms);
/* Frees the delivery thread's private nodes (at its end) and the spare
 * nodes (destroy). */
void producer_defer_state_free(defer_state_t *ds);
void producer_defer_spares_free(kaffe_producer_t *p);

#endif
