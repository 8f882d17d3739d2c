/* The consumer: librdkafka glue around the partition room and the pool.
 *
 * Threads and what they own:
 *   - the poll thread (poll_main) owns the rd_kafka_t consumer: it polls,
 *     dispatches (partition_admit, then a lane), commits (interval, request,
 *     revoke, stop), runs the rebalance callback (librdkafka calls it from
 *     rd_kafka_consumer_poll / rd_kafka_consumer_close on this thread),
 *     pauses and resumes partitions, and performs the stop sequence. It is
 *     the assignment table's only writer and the message allocator.
 *   - the pool's workers run the handler and settle sync messages.
 *   - any application thread may ack (async), request a stop, wait, commit.
 * Cross-thread state is the atomics in kaffe_consumer_s (each commented) and
 * the fields under `lock`. */
#include <kaffe/consumer.h>
#include <kaffe/producer.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "ack/ack.h"
#include "common/errstr.h"
#include "common/thread_name.h"
#include "common/tsan.h"
#include "conf/conf.h"
#include "consumer/internal.h"
#include "partition/partition.h"
#include "pool/pool.h"

enum ordering { ORDER_PARTITION, ORDER_KEY, ORDER_UNORDERED };
enum state { ST_NEW, ST_RUNNING, ST_STOPPING, ST_STOPPED };
enum policy { POL_STOP, POL_RETRY, POL_DEAD_LETTER, POL_PAUSE, POL_SKIP };

#define METADATA_MAX 4096 /* the broker's default offset.metadata.max.bytes */
#define POLL_MS 100       /* stop-request latency bound */
#define PAUSED_POLL_MS 5  /* while some partition waits to be resumed */
#define COMMITTED_TIMEOUT_MS 10000
#define COMMIT_HOLD_MAX_MS 10000 /* the longest interval commits wait for a rebalance */

/* One librdkafka client and the messages it delivered that are still
 * alive (their rd_kafka_message_t must be destroyed before the client). */
struct consumer_client {
    rd_kafka_t *rk;
    /* Messages alive. Incremented by the poll thread (message_new), relaxed;
     * decremented by whoever destroys a message's rd_kafka_message_t,
     * release: pairs with the poll thread's acquire load before it destroys
     * the retired client, so every rd_kafka_message_destroy happened before. */
    atomic_long live;
};

typedef struct message_block {
    struct message_block *next;
    kaffe_message_t msgs[MESSAGE_BLOCK];
} message_block_t;

struct kaffe_consumer_s {
    consumer_metrics_t metrics; /* stats and log routing (stats.c) */
    kaffe_conf_t *conf;
    rd_kafka_t *rk;
    /* Poll thread: the client that last received an assignment, and whether
     * the current one must be left undestroyed (await_first_assignment). */
    rd_kafka_t *assigned_rk;
    bool leak_rk;
    kaffe_message_handler_t handler;
    void *handler_opaque;
    kaffe_error_cb_t error_cb;
    void *error_opaque;
    kaffe_rebalance_cb_t rebalance_cb;
    void *rebalance_opaque;
    bool async;
    int ordering;
    size_t workers;
    size_t lanes_per_partition;
    size_t window;
    int64_t max_in_flight, max_in_flight_bytes;
    int64_t commit_interval_ms, drain_timeout_ms;
    uint64_t salt;

    /* Failure policy (immutable after kaffe_consumer_new). */
    int on_error, retry_exhausted; /* enum policy */
    int retry_max_attempts;
    int64_t retry_backoff_ms, retry_backoff_max_ms;
    char *dead_letter_topic;
    kaffe_producer_t *dead_letter; /* NULL unless a policy can dead-letter */
    int64_t restart_max, restart_window_ms;

    /* Client restarts (poll thread only). */
    rd_kafka_resp_err_t fatal_pending; /* a fatal error to restart for */
    rd_kafka_t *fatal_seen;            /* the client whose fatal error was noticed */
    int64_t *restart_times;            /* the last restart_max restarts, a ring */
    size_t restart_next;
    int64_t restart_backoff_ms;
    client_t *client;   /* the current client (c->rk is client->rk) */
    client_t **retired; /* closed clients, destroyed once no message uses them */
    size_t retired_n;
    /* What the previous client could not commit: per partition, the
     * watermark and metadata acked when it was retired. The next assignment
     * of the partition starts from it when it is ahead of the committed
     * offset (and commits it). */
    rd_kafka_topic_partition_list_t *stash;

    pool_t *pool;             /* created by start, destroyed by stop */
    partition_table_t *table; /* whole life */
    pthread_t poll_thread;

    /* Poll thread only. */
    uint64_t next_generation;
    int64_t last_commit_ms;
    int64_t last_resume_ms;
    size_t paused_count; /* partitions paused (recounted on each resume pass) */
    bool commit_force;   /* a commit failed: commit everything next time */
    /* Interval commits wait while the group rebalances (commit_held): for
     * this many more assignment callbacks, at most until the deadline. */
    int commit_hold_assigns;
    int64_t commit_hold_until_ms;
    bool stashing; /* revoke_partitions keeps the state in stash */
    bool drained;  /* the stop sequence drained: revokes do not wait again */
    uint64_t commits_served;
    ack_snapshot_t snap;
    message_block_t *blocks;
    size_t block_used;
    /* The dispatcher's last lookup: valid while the table's version is
     * still cache_version (partition_table_version). */
    const rd_kafka_topic_t *cache_rkt;
    int32_t cache_partition;
    uint64_t cache_version;
    partition_t *cache_p;

    /* Any thread. Each is a flag or counter; the orders are at the uses. */
    atomic_int state;            /* enum state */
    atomic_int stop_requested;   /* set by request_stop (async-signal-safe) */
    atomic_int abandon;          /* workers drop queued messages unhandled */
    atomic_int acks_closed;      /* after the final commit: acks get STOPPED */
    atomic_int failure;          /* the status that stopped the consumer */
    atomic_long revoke_timeouts; /* > 0: workers check a message is current */
    atomic_ulong commit_requested;
    atomic_int test_fatal; /* consumer_test_fatal_error: the error to raise */
    /* Released message objects (quarantine, then reuse): pushed by any
     * thread, popped by the poll thread only (single dequeuer: no lock). */
    struct __cds_wfcq_head free_head;
    struct cds_wfcq_tail free_tail;
    atomic_long free_count;

    /* Failure counters (kaffe_consumer_failure_counters). Relaxed: plain
     * statistics, they order nothing. */
    atomic_ullong n_failures, n_retries, n_dead_lettered, n_dead_letter_failed, n_skipped, n_paused,
        n_restarts;
    atomic_ullong rng; /* backoff jitter: a splitmix64 sequence */

    /* Messages waiting for a retry or a resume (the delay list). Added by
     * workers (hold callback), nackers and the poll thread; served by the
     * poll thread. Everything a message carries into the list (its
     * failure-path fields, its settled/refs state) is ordered by this lock
     * to whoever takes it out. */
    pthread_mutex_t delay_lock;
    kaffe_message_t **delayed;
    size_t delayed_n, delayed_cap;
    bool delay_closed; /* stop began: nothing may wait any more */
    /* Entries in the list. Written under delay_lock; read relaxed by the
     * poll thread as a hint (a stale value only delays serving by a poll). */
    atomic_long delayed_count;
    /* Lanes whose held message was released unhandled (revoke, stop): what
     * is queued behind it must not run before it is delivered again, so
     * run_message releases it unhandled too. Keyed by lane and generation
     * (a lane's address is reused only by a later assignment, whose
     * generation differs). Under delay_lock; an entry is added before its
     * lane is woken and pruned when its partition's revoke ends. */
    struct released_lane {
        pool_lane_t *lane;
        uint64_t generation;
    } * released;
    size_t released_n, released_cap;
    /* Entries in released. Written under delay_lock; workers read it
     * relaxed: the entry is added before pool_lane_wake, which orders it
     * before the lane's items run (the pool's push contract), so a worker
     * running one of them reads at least that count. */
    atomic_long released_count;

    pthread_mutex_t lock; /* protects what follows */
    pthread_cond_t cond;
    bool joined, joining;
    uint64_t commit_completed;
    kaffe_status_t commit_status;
    int last_error;
    char last_error_text[512];
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* --- errors ------------------------------------------------------------- */

/* Records the error (for kaffe_consumer_last_error) and tells the error
 * callback. Poll thread or a worker. */
static void report_error(kaffe_consumer_t *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report_error(kaffe_consumer_t *c, int status, const char *fmt, ...) {
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->lock);
    c->last_error = status;
    snprintf(c->last_error_text, sizeof c->last_error_text, "%s", text);
    pthread_mutex_unlock(&c->lock);
    conf_log(c->conf, KAFFE_LOG_ERROR, "consumer", "%s: %s", kaffe_err_name(status), text);
    if (c->error_cb)
        c->error_cb(status, text, c->error_opaque);
}

/* The consumer stops with status (first failure wins). Any thread. */
static void fail_consumer(kaffe_consumer_t *c, int status) {
    int none = KAFFE_OK;
    /* acq_rel: the failure is visible to kaffe_consumer_stop's acquire load. */
    if (atomic_compare_exchange_strong_explicit(&c->failure, &none, status, memory_order_acq_rel,
                                                memory_order_acquire)) {
        /* release: pairs with the workers' acquire load before a handler call. */
        atomic_store_explicit(&c->abandon, 1, memory_order_release);
        atomic_store_explicit(&c->stop_requested, 1, memory_order_release);
    }
}

/* --- messages ----------------------------------------------------------- */

/* A message object for rkm, received by the poll thread at polled_ns. Poll
 * thread only (the single free-list dequeuer). */
static kaffe_message_t *message_new(kaffe_consumer_t *c, rd_kafka_message_t *rkm,
                                    uint64_t generation, uint64_t polled_ns) {
    kaffe_message_t *m = NULL;
    if (atomic_load_explicit(&c->free_count, memory_order_relaxed) > MESSAGE_QUARANTINE) {
        struct cds_wfcq_node *node = __cds_wfcq_dequeue_blocking(&c->free_head, &c->free_tail);
        if (node) {
            m = caa_container_of(node, kaffe_message_t, item.node);
            TSAN_ACQUIRE(m); /* pairs with the release in message_drop */
            atomic_fetch_sub_explicit(&c->free_count, 1, memory_order_relaxed);
        }
    }
    if (!m) {
        if (!c->blocks || c->block_used == MESSAGE_BLOCK) {
            message_block_t *b = calloc(1, sizeof *b);
            if (!b)
                return NULL;
            b->next = c->blocks;
            c->blocks = b;
            c->block_used = 0;
        }
        m = &c->blocks->msgs[c->block_used++];
    }
    m->consumer = c;
    m->client = c->client;
    atomic_fetch_add_explicit(&c->client->live, 1, memory_order_relaxed);
    m->rkm = rkm;
    m->topic = rd_kafka_topic_name(rkm->rkt);
    m->headers = NULL;
    m->generation = generation;
    m->bytes = rkm->len + rkm->key_len;
    m->polled_ns = polled_ns;
    m->attempt = 1;
    m->lane = NULL;
    m->due_ms = 0;
    m->paused = false;
    m->lane_held = false;
    m->abandon = false;
    /* relaxed: the message reaches other threads only through the pool (or
     * the park list), whose hand-off orders these stores. */
    atomic_store_explicit(&m->refs, c->async ? 2 : 1, memory_order_relaxed);
    atomic_store_explicit(&m->settled, 0, memory_order_relaxed);
    atomic_store_explicit(&m->live, 1, memory_order_relaxed);
    return m;
}

/* Drops n references; the last one releases the object to the quarantine.
 * Any thread. */
static void message_drop(kaffe_message_t *m, int n) {
    /* acq_rel: the last dropper sees all other uses before it destroys. */
    if (atomic_fetch_sub_explicit(&m->refs, n, memory_order_acq_rel) != n)
        return;
    kaffe_consumer_t *c = m->consumer;
    client_t *client = m->client;
    rd_kafka_message_destroy(m->rkm);
    /* release: see consumer_client.live. */
    atomic_fetch_sub_explicit(&client->live, 1, memory_order_release);
    m->rkm = NULL;
    m->headers = NULL;
    /* release: a late ack that reads live == 0 (acquire) refuses the message
     * without touching anything else. */
    atomic_store_explicit(&m->live, 0, memory_order_release);
    TSAN_RELEASE(m);
    cds_wfcq_node_init(&m->item.node);
    cds_wfcq_enqueue(&c->free_head, &c->free_tail, &m->item.node);
    atomic_fetch_add_explicit(&c->free_count, 1, memory_order_relaxed);
}

/* All references of a message that will never reach the application. */
static int unseen_refs(const kaffe_consumer_t *c) {
    return c->async ? 2 : 1;
}

/* A message that was never tracked, or was skipped: just release it. */
static void message_discard(kaffe_consumer_t *c, kaffe_message_t *m) {
    atomic_store_explicit(&m->settled, 1, memory_order_relaxed);
    message_drop(m, unseen_refs(c));
}

/* --- workers ------------------------------------------------------------ */

static void settle(kaffe_consumer_t *c, kaffe_message_t *m, partition_settle_mode_t mode) {
    partition_settle(c->table, m->topic, m->rkm->partition, m->generation, m->rkm->offset, m->bytes,
                     mode);
}

/* Never handed to the handler (stopping, or its partition went away). */
static void abandon_message(kaffe_consumer_t *c, kaffe_message_t *m) {
    int open = 0;
    if (atomic_compare_exchange_strong_explicit(&m->settled, &open, 1, memory_order_acq_rel,
                                                memory_order_relaxed))
        settle(c, m, PARTITION_RELEASE);
    message_drop(m, unseen_refs(c));
}

/* --- the failure path ---------------------------------------------------
 *
 * A failed message (handler return, or nack) is first claimed (settled
 * 0 -> 1, so a late ack is refused), then the policy decides:
 *   stop         settle PARTITION_FAIL, stop the consumer;
 *   skip         settle PARTITION_ACK, count it;
 *   dead_letter  produce it (one more reference until the delivery report),
 *                settle ACK on success, FAIL + stop on failure;
 *   retry/pause  the message takes one more reference (the "retry
 *                reference") and waits in the delay list with its due time
 *                (INT64_MAX while paused). From a worker with a lane, the
 *                worker asks the pool to hold the lane (pool_hold): the lane
 *                is suspended with the message at its head, and the hold
 *                callback puts the message in the delay list once the worker
 *                is off the lane. Otherwise (unordered, or a nack: the lane
 *                has moved on) it goes in the list directly.
 * The poll thread serves the list (serve_delayed): a due message is made
 * runnable again (settled 0, the retry reference becomes the worker's, plus
 * the application's in async mode, attempt + 1) and its lane woken, or it is
 * pushed again (to the end of its lane, or to the pool). Revoke and stop
 * flush the list: held lanes are woken with the message marked abandon
 * (the worker releases it unhandled, in lane order, and everything queued
 * behind it in the lane, see lane_released), others are released here. No
 * worker ever sleeps for a backoff. */

static uint64_t next_random(kaffe_consumer_t *c) {
    /* relaxed: only atomicity matters (distinct values per caller). */
    uint64_t z =
        atomic_fetch_add_explicit(&c->rng, UINT64_C(0x9e3779b97f4a7c15), memory_order_relaxed);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* The wait after the attempt-th failure: retry_initial_backoff_ms * 2^(attempt-1),
 * at most retry_max_backoff_ms, drawn uniformly from its upper half. */
static int64_t retry_backoff(kaffe_consumer_t *c, int attempt) {
    int64_t d = c->retry_backoff_ms;
    for (int i = 1; i < attempt && d < c->retry_backoff_max_ms; i++)
        d *= 2;
    if (d > c->retry_backoff_max_ms)
        d = c->retry_backoff_max_ms;
    int64_t low = d / 2;
    return low + (int64_t)(next_random(c) % (uint64_t)(d - low + 1));
}

/* Puts m in the delay list; false when stop closed it (or on OOM). */
static bool delay_add(kaffe_consumer_t *c, kaffe_message_t *m) {
    pthread_mutex_lock(&c->delay_lock);
    bool ok = !c->delay_closed;
    if (ok && c->delayed_n == c->delayed_cap) {
        size_t cap = c->delayed_cap ? c->delayed_cap * 2 : 64;
        kaffe_message_t **grown = realloc(c->delayed, cap * sizeof *grown);
        if (grown) {
            c->delayed = grown;
            c->delayed_cap = cap;
        } else {
            ok = false;
        }
    }
    if (ok) {
        c->delayed[c->delayed_n++] = m;
        atomic_store_explicit(&c->delayed_count, (long)c->delayed_n, memory_order_relaxed);
    }
    pthread_mutex_unlock(&c->delay_lock);
    return ok;
}

/* m's lane (held by m) is woken with m released unhandled: records the
 * lane so that everything behind m in it is released too. */
static void lane_released(kaffe_consumer_t *c, const kaffe_message_t *m) {
    pthread_mutex_lock(&c->delay_lock);
    if (c->released_n == c->released_cap) {
        size_t cap = c->released_cap ? c->released_cap * 2 : 8;
        struct released_lane *grown = realloc(c->released, cap * sizeof *grown);
        if (grown) {
            c->released = grown;
            c->released_cap = cap;
        }
    }
    bool ok = c->released_n < c->released_cap;
    if (ok) {
        c->released[c->released_n++] = (struct released_lane){m->lane, m->generation};
        atomic_store_explicit(&c->released_count, (long)c->released_n, memory_order_relaxed);
    }
    pthread_mutex_unlock(&c->delay_lock);
    if (!ok)
        report_error(c, KAFFE_ERR_NOMEM,
                     "out of memory: messages queued behind %s [%d] at offset %lld may be "
                     "handled before it is delivered again",
                     m->topic, (int)m->rkm->partition, (long long)m->rkm->offset);
}

/* Whether m is queued behind a released held message of its lane. Worker. */
static bool behind_released(kaffe_consumer_t *c, const kaffe_message_t *m) {
    if (!m->lane || atomic_load_explicit(&c->released_count, memory_order_relaxed) == 0)
        return false;
    bool found = false;
    pthread_mutex_lock(&c->delay_lock);
    for (size_t i = 0; i < c->released_n && !found; i++)
        found = c->released[i].lane == m->lane && c->released[i].generation == m->generation;
    pthread_mutex_unlock(&c->delay_lock);
    return found;
}

/* Forgets the released lanes of the n revoked partitions ps: their drain is
 * over (nothing is queued) or timed out (their queued messages are released
 * as not current). Poll thread, before they are removed. */
static void prune_released(kaffe_consumer_t *c, partition_t **ps, size_t n) {
    if (atomic_load_explicit(&c->released_count, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&c->delay_lock);
    size_t kept = 0;
    for (size_t i = 0; i < c->released_n; i++) {
        bool gone = false;
        for (size_t j = 0; j < n && !gone; j++)
            gone = partition_generation(ps[j]) == c->released[i].generation;
        if (!gone)
            c->released[kept++] = c->released[i];
    }
    c->released_n = kept;
    atomic_store_explicit(&c->released_count, (long)kept, memory_order_relaxed);
    pthread_mutex_unlock(&c->delay_lock);
}

/* A waiting message becomes runnable again: its retry reference is the
 * worker's, plus the application's in async mode. Its new owner is reached
 * through a lane wake or a pool push, which order these stores. */
static void prepare_rerun(kaffe_consumer_t *c, kaffe_message_t *m) {
    atomic_store_explicit(&m->settled, 0, memory_order_relaxed);
    if (c->async)
        atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    if (!m->abandon)
        m->attempt++;
}

/* Takes m out of waiting (poll thread, or the hold callback when the list
 * is closed): runs it again, or with abandon, releases it unhandled. */
static void redispatch(kaffe_consumer_t *c, kaffe_message_t *m, bool abandon) {
    if (m->lane_held) {
        m->lane_held = false;
        m->abandon = abandon;
        if (abandon)
            lane_released(c, m);
        prepare_rerun(c, m);
        pool_lane_wake(m->lane); /* the held message runs first */
        return;
    }
    partition_t *p = partition_table_find(c->table, m->topic, m->rkm->partition);
    if (!p || partition_generation(p) != m->generation) {
        /* Its assignment is gone (and its in-flight count with it). */
        message_drop(m, 1);
        return;
    }
    if (abandon) {
        settle(c, m, PARTITION_RELEASE);
        message_drop(m, 1);
        return;
    }
    prepare_rerun(c, m);
    if (m->lane)
        pool_lane_push(m->lane, &m->item);
    else
        pool_push(c->pool, &m->item);
}

/* The pool's hold callback: m's lane is suspended with m at its head; the
 * worker is off the lane. Worker thread. */
static void hold_cb(pool_lane_t *lane, pool_item_t *item, void *opaque) {
    (void)lane;
    kaffe_consumer_t *c = opaque;
    kaffe_message_t *m = caa_container_of(item, kaffe_message_t, item);
    if (!delay_add(c, m))
        redispatch(c, m, true); /* stopping: release it in lane order */
}

/* m waits (retry after a backoff, or pause until resumed). The caller holds
 * its own references and drops them afterwards. */
static void wait_message(kaffe_consumer_t *c, kaffe_message_t *m, bool from_worker, bool paused) {
    m->paused = paused;
    m->due_ms = paused ? INT64_MAX : now_ms() + retry_backoff(c, m->attempt);
    /* relaxed: the caller holds a reference, so this is not a revival. */
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    if (from_worker && m->lane) {
        m->lane_held = true;
        pool_hold(&m->item); /* hold_cb adds it once the worker is off the lane */
        return;
    }
    m->lane_held = false;
    if (!delay_add(c, m)) {
        settle(c, m, PARTITION_RELEASE);
        message_drop(m, 1);
    }
}

static void dead_letter_delivered(const kaffe_delivery_report_t *report, void *opaque);

/* Produces m to the dead-letter topic; it is acked in the delivery report.
 * The caller holds its own references. */
static void dead_letter(kaffe_consumer_t *c, kaffe_message_t *m, int rc) {
    size_t own = m->headers ? rd_kafka_header_cnt(m->headers) : 0;
    kaffe_header_t *h = calloc(own + 7, sizeof *h);
    char partition[16], offset[24], code[16], attempts[16], at[24];
    kaffe_status_t st = KAFFE_ERR_NOMEM;
    if (h) {
        size_t n = 0;
        for (size_t i = 0; i < own; i++) {
            if (rd_kafka_header_get_all(m->headers, i, &h[n].name, &h[n].value, &h[n].value_len) ==
                RD_KAFKA_RESP_ERR_NO_ERROR)
                n++;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(partition, sizeof partition, "%d", (int)m->rkm->partition);
        snprintf(offset, sizeof offset, "%lld", (long long)m->rkm->offset);
        snprintf(code, sizeof code, "%d", rc);
        snprintf(attempts, sizeof attempts, "%d", m->attempt);
        snprintf(at, sizeof at, "%lld", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        const char *text = kaffe_strerror(rc);
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
    settle(c, m, PARTITION_FAIL);
    report_error(c, st, "dead-lettering %s [%d] at offset %lld to %s failed (%s); stopping",
                 m->topic, (int)m->rkm->partition, (long long)m->rkm->offset, c->dead_letter_topic,
                 kaffe_err_name(st));
    fail_consumer(c, st);
}

/* The producer's delivery thread. */
static void dead_letter_delivered(const kaffe_delivery_report_t *report, void *opaque) {
    kaffe_message_t *m = opaque;
    kaffe_consumer_t *c = m->consumer;
    if (report->status == KAFFE_OK) {
        atomic_fetch_add_explicit(&c->n_dead_lettered, 1, memory_order_relaxed);
        settle(c, m, PARTITION_ACK);
    } else {
        atomic_fetch_add_explicit(&c->n_dead_letter_failed, 1, memory_order_relaxed);
        settle(c, m, PARTITION_FAIL);
        report_error(c, report->status,
                     "dead-lettering %s [%d] at offset %lld to %s failed (%s); stopping", m->topic,
                     (int)m->rkm->partition, (long long)m->rkm->offset, c->dead_letter_topic,
                     kaffe_err_name(report->status));
        fail_consumer(c, report->status);
    }
    message_drop(m, 1);
}

/* Applies the policy to a claimed failed message, then drops the caller's
 * own references (own_refs). A worker (from_worker) or a nacking thread. */
static void message_failed(kaffe_consumer_t *c, kaffe_message_t *m, int rc, bool from_worker,
                           int own_refs) {
    atomic_fetch_add_explicit(&c->n_failures, 1, memory_order_relaxed);
    int action = c->on_error;
    if (action == POL_RETRY && m->attempt >= c->retry_max_attempts)
        action = c->retry_exhausted;
    const char *topic = m->topic;
    int partition = (int)m->rkm->partition;
    long long offset = (long long)m->rkm->offset;
    switch (action) {
        case POL_RETRY:
            atomic_fetch_add_explicit(&c->n_retries, 1, memory_order_relaxed);
            report_error(c, rc,
                         "message handler failed (%s) on %s [%d] at offset %lld, attempt %d: "
                         "retrying",
                         kaffe_err_name(rc), topic, partition, offset, m->attempt);
            wait_message(c, m, from_worker, false);
            break;
        case POL_PAUSE:
            atomic_fetch_add_explicit(&c->n_paused, 1, memory_order_relaxed);
            report_error(c, rc,
                         "message handler failed (%s) on %s [%d] at offset %lld, attempt %d: "
                         "paused until kaffe_consumer_resume_partition()",
                         kaffe_err_name(rc), topic, partition, offset, m->attempt);
            wait_message(c, m, from_worker, true);
            break;
        case POL_DEAD_LETTER:
            report_error(c, rc,
                         "message handler failed (%s) on %s [%d] at offset %lld, attempt %d: "
                         "dead-lettering to %s",
                         kaffe_err_name(rc), topic, partition, offset, m->attempt,
                         c->dead_letter_topic);
            dead_letter(c, m, rc);
            break;
        case POL_SKIP:
            atomic_fetch_add_explicit(&c->n_skipped, 1, memory_order_relaxed);
            report_error(c, rc,
                         "message handler failed (%s) on %s [%d] at offset %lld, attempt %d: "
                         "skipped",
                         kaffe_err_name(rc), topic, partition, offset, m->attempt);
            settle(c, m, PARTITION_ACK);
            break;
        default:
            settle(c, m, PARTITION_FAIL);
            report_error(c, rc, "message handler failed (%s) on %s [%d] at offset %lld; stopping",
                         kaffe_err_name(rc), topic, partition, offset);
            fail_consumer(c, rc);
            break;
    }
    message_drop(m, own_refs);
}

/* The handler returned rc != KAFFE_OK. Worker thread. */
static void handler_failed(kaffe_consumer_t *c, kaffe_message_t *m, int rc) {
    int open = 0;
    if (atomic_compare_exchange_strong_explicit(&m->settled, &open, 1, memory_order_acq_rel,
                                                memory_order_relaxed)) {
        /* Async: the application must not ack a message it refused, so its
         * reference goes too (a late ack is refused as a duplicate). */
        message_failed(c, m, rc, true, c->async ? 2 : 1);
        return;
    }
    /* Async: the application acked it already, then the handler failed. */
    report_error(c, rc, "message handler failed (%s) on %s [%d] at offset %lld after acking it%s",
                 kaffe_err_name(rc), m->topic, (int)m->rkm->partition, (long long)m->rkm->offset,
                 c->on_error == POL_STOP ? "; stopping" : "");
    if (c->on_error == POL_STOP)
        fail_consumer(c, rc);
    message_drop(m, 1);
}

static void run_message(pool_item_t *item, void *opaque) {
    kaffe_consumer_t *c = opaque;
    kaffe_message_t *m = caa_container_of(item, kaffe_message_t, item);
    /* acquire: pairs with the release stores in fail_consumer / stop. */
    if (m->abandon || atomic_load_explicit(&c->abandon, memory_order_acquire) ||
        (atomic_load_explicit(&c->revoke_timeouts, memory_order_relaxed) > 0 &&
         !partition_is_current(c->table, m->topic, m->rkm->partition, m->generation)) ||
        behind_released(c, m)) {
        abandon_message(c, m);
        return;
    }
    if (!m->headers && rd_kafka_message_headers(m->rkm, &m->headers) != RD_KAFKA_RESP_ERR_NO_ERROR)
        m->headers = NULL;
    int rc = c->handler(m, c->handler_opaque);
    if (rc != KAFFE_OK) {
        handler_failed(c, m, rc);
        return;
    }
    if (!c->async) {
        atomic_store_explicit(&m->settled, 1, memory_order_relaxed);
        settle(c, m, PARTITION_ACK);
    }
    message_drop(m, 1);
}

/* --- dispatch (poll thread) --------------------------------------------- */

static void pause_fetch(kaffe_consumer_t *c, partition_t *p, bool pause) {
    if (partition_fetch_paused(p) == pause)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, partition_topic(p), partition_id(p));
    rd_kafka_resp_err_t err =
        pause ? rd_kafka_pause_partitions(c->rk, l) : rd_kafka_resume_partitions(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err)
        report_error(c, err, "%s %s [%d]: %s", pause ? "pausing" : "resuming", partition_topic(p),
                     (int)partition_id(p), rd_kafka_err2str(err));
    else
        partition_set_fetch_paused(p, pause);
}

/* Queues m for a worker: through batch (whose flush wakes the workers) or,
 * when batch is NULL, waking a worker at once. */
static void push(kaffe_consumer_t *c, pool_batch_t *batch, partition_t *p, kaffe_message_t *m) {
    pool_lane_t *lane = partition_lane(p, m->rkm->key, m->rkm->key_len);
    m->lane = lane;
    if (batch && lane)
        pool_batch_lane_push(batch, lane, &m->item);
    else if (batch)
        pool_batch_push(batch, &m->item);
    else if (lane)
        pool_lane_push(lane, &m->item);
    else
        pool_push(c->pool, &m->item);
}

/* Handles an admit result for m (not parked). batch: as for push. */
static void place(kaffe_consumer_t *c, pool_batch_t *batch, partition_t *p, kaffe_message_t *m,
                  partition_admit_result_t r) {
    switch (r) {
        case PARTITION_DISPATCH:
            push(c, batch, p, m);
            break;
        case PARTITION_SKIP:
        case PARTITION_DROP:
            message_discard(c, m);
            break;
        case PARTITION_PARK:
            if (!partition_park(p, m, m->rkm->offset, m->bytes)) {
                report_error(c, KAFFE_ERR_NOMEM, "out of memory parking a message");
                message_discard(c, m);
            }
            break;
    }
}

/* The current assignment of rkm's partition, or NULL. Consecutive messages
 * mostly come from one partition (a fetch response is a run of them), so
 * the last answer is kept until the table changes. */
static partition_t *find_partition(kaffe_consumer_t *c, const rd_kafka_message_t *rkm) {
    uint64_t version = partition_table_version(c->table);
    if (c->cache_p && c->cache_rkt == rkm->rkt && c->cache_partition == rkm->partition &&
        c->cache_version == version)
        return c->cache_p;
    partition_t *p = partition_table_find(c->table, rd_kafka_topic_name(rkm->rkt), rkm->partition);
    c->cache_rkt = rkm->rkt;
    c->cache_partition = rkm->partition;
    c->cache_version = version;
    c->cache_p = p;
    return p;
}

/* Dispatches one polled message received at polled_ns; its push goes
 * through batch (flushed by the caller). */
static void dispatch(kaffe_consumer_t *c, pool_batch_t *batch, rd_kafka_message_t *rkm,
                     uint64_t polled_ns) {
    partition_t *p = find_partition(c, rkm);
    if (!p) { /* not (or no longer) assigned: librdkafka will not commit it either */
        rd_kafka_message_destroy(rkm);
        return;
    }
    kaffe_message_t *m = message_new(c, rkm, partition_generation(p), polled_ns);
    if (!m) {
        rd_kafka_message_destroy(rkm);
        report_error(c, KAFFE_ERR_NOMEM, "out of memory for a message");
        fail_consumer(c, KAFFE_ERR_NOMEM);
        return;
    }
    bool pause_now;
    partition_admit_result_t r = partition_admit(p, rkm->offset, m->bytes, false, &pause_now);
    place(c, batch, p, m, r);
    if (pause_now || (r == PARTITION_PARK && partition_park_full(p)))
        pause_fetch(c, p, true);
    if (partition_is_paused(p))
        c->paused_count++; /* makes the poll loop run resume passes */
}

static void discard_parked(kaffe_consumer_t *c, partition_t *p) {
    kaffe_message_t *m;
    while ((m = partition_parked_peek(p, NULL, NULL))) {
        partition_parked_pop(p);
        message_discard(c, m);
    }
}

/* Resumes partitions that fell below the low marks: their parked messages
 * first, in order, then fetching. */
static void resume_pass(kaffe_consumer_t *c) {
    size_t n;
    partition_t **ps = partition_table_collect(c->table, &n);
    size_t still_paused = 0;
    pool_batch_t batch;
    pool_batch_init(&batch, c->pool);
    for (size_t i = 0; i < n; i++) {
        partition_t *p = ps[i];
        if (partition_is_paused(p) && partition_try_unpause(p)) {
            int64_t offset;
            size_t bytes;
            kaffe_message_t *m;
            while ((m = partition_parked_peek(p, &offset, &bytes))) {
                bool pause_now;
                partition_admit_result_t r = partition_admit(p, offset, bytes, true, &pause_now);
                if (r == PARTITION_PARK)
                    break; /* paused again; it stays first in line */
                partition_parked_pop(p);
                place(c, &batch, p, m, r);
                if (partition_is_paused(p))
                    break;
            }
            pool_batch_flush(&batch);
        }
        /* Fetch again once the park list is half empty: what is parked and
         * in flight keeps the workers busy while the fetch restarts. */
        if (partition_fetch_paused(p) && partition_park_below_half(p))
            pause_fetch(c, p, false);
        if (partition_is_paused(p) || partition_fetch_paused(p))
            still_paused++;
    }
    free(ps);
    c->paused_count = still_paused;
}

/* --- the delay list (poll thread) -------------------------------------- */

/* Takes the due messages (all of them with ps == NULL && all; those of the
 * n partitions ps otherwise) out of the list; closes it if close. Returns
 * the earliest due time left (INT64_MAX: none). */
static int64_t take_delayed(kaffe_consumer_t *c, partition_t **ps, size_t n, bool all, bool close,
                            kaffe_message_t ***out, size_t *count) {
    *out = NULL;
    *count = 0;
    int64_t next = INT64_MAX;
    if (!close && atomic_load_explicit(&c->delayed_count, memory_order_relaxed) == 0)
        return next;
    int64_t now = now_ms();
    pthread_mutex_lock(&c->delay_lock);
    if (close)
        c->delay_closed = true;
    kaffe_message_t **taken = c->delayed_n ? malloc(c->delayed_n * sizeof *taken) : NULL;
    size_t kept = 0, t = 0;
    for (size_t i = 0; i < c->delayed_n; i++) {
        kaffe_message_t *m = c->delayed[i];
        bool take;
        if (ps) {
            take = false;
            for (size_t j = 0; j < n && !take; j++)
                take = partition_id(ps[j]) == m->rkm->partition &&
                       partition_generation(ps[j]) == m->generation &&
                       strcmp(partition_topic(ps[j]), m->topic) == 0;
        } else {
            take = all || (!m->paused && m->due_ms <= now);
        }
        if (take && taken) {
            taken[t++] = m;
        } else {
            c->delayed[kept++] = m;
            if (!m->paused && m->due_ms < next)
                next = m->due_ms;
        }
    }
    c->delayed_n = kept;
    atomic_store_explicit(&c->delayed_count, (long)kept, memory_order_relaxed);
    pthread_mutex_unlock(&c->delay_lock);
    *out = taken;
    *count = t;
    return next;
}

/* Re-runs the due messages; returns the next due time. */
static int64_t serve_delayed(kaffe_consumer_t *c) {
    kaffe_message_t **ms;
    size_t n;
    int64_t next = take_delayed(c, NULL, 0, false, false, &ms, &n);
    for (size_t i = 0; i < n; i++)
        redispatch(c, ms[i], false);
    free(ms);
    return next;
}

/* Releases the waiting messages of ps (or every one, closing the list, when
 * ps is NULL) unhandled. */
static void flush_delayed(kaffe_consumer_t *c, partition_t **ps, size_t n) {
    kaffe_message_t **ms;
    size_t count;
    take_delayed(c, ps, n, true, ps == NULL, &ms, &count);
    for (size_t i = 0; i < count; i++)
        redispatch(c, ms[i], true);
    free(ms);
}

/* --- commits (poll thread) ---------------------------------------------- */

/* Commits the watermark + metadata of each of ps (one snapshot each) that
 * changed since its last commit. */
static kaffe_status_t commit_partitions(kaffe_consumer_t *c, partition_t **ps, size_t n,
                                        bool sync) {
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)n);
    char metadata[METADATA_MAX];
    for (size_t i = 0; i < n; i++) {
        if (!partition_snapshot(ps[i], &c->snap))
            continue;
        bool complete;
        size_t len = ack_metadata_encode(&c->snap, metadata, sizeof metadata, &complete);
        if (!c->commit_force && !partition_commit_changed(ps[i], c->snap.watermark, metadata))
            continue;
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_add(list, partition_topic(ps[i]), partition_id(ps[i]));
        tp->offset = c->snap.watermark;
        if (len > 0) {
            tp->metadata = malloc(len);
            if (tp->metadata) {
                memcpy(tp->metadata, metadata, len);
                tp->metadata_size = len;
            }
        }
        partition_commit_done(ps[i], c->snap.watermark, metadata);
    }
    c->commit_force = false;
    kaffe_status_t st = KAFFE_OK;
    if (list->cnt > 0) {
        rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, list, sync ? 0 : 1);
        for (int i = 0; sync && !err && i < list->cnt; i++)
            if (list->elems[i].err)
                err = list->elems[i].err;
        if (err) {
            st = (kaffe_status_t)err;
            c->commit_force = true;
            report_error(c, err, "commit failed: %s", rd_kafka_err2str(err));
        }
    }
    rd_kafka_topic_partition_list_destroy(list);
    return st;
}

static kaffe_status_t commit_all(kaffe_consumer_t *c, bool sync) {
    size_t n;
    partition_t **ps = partition_table_collect(c->table, &n);
    kaffe_status_t st = commit_partitions(c, ps, n, sync);
    free(ps);
    c->last_commit_ms = now_ms();
    return st;
}

/* Interval commits and rebalances (poll thread).
 *
 * librdkafka 2.0.2 sends a commit on the coordinator connection, with the
 * generation it has then. Sent while the member's JoinGroup is pending, it
 * waits behind it (the coordinator answers a connection's requests in
 * order) and reaches the coordinator in the next generation: librdkafka's
 * mock cluster then answers ILLEGAL_GENERATION (a broker does too once the
 * group is stable again), and librdkafka resets its
 * generation although it has just joined the new one (its issue #4059,
 * fixed in 2.10.0). The member's next heartbeat fails, it treats its
 * assignment as lost and rejoins, which starts another rebalance, in which
 * the same happens to any member that committed during its JoinGroup. With
 * commits every commit_interval_ms the group never settled: the fault
 * suite's group-churn stall, where the committed offsets stayed behind the
 * log end while every member kept rebalancing and handling the same
 * messages again.
 *
 * So interval commits wait while the member is known to be rebalancing:
 *   - after a revoke callback, until the assignment callback that ends the
 *     rebalance: after a cooperative revoke (not of a lost assignment)
 *     librdkafka calls assign for the rest of the round and then rejoins
 *     at once, so that is the second assign; otherwise the next one;
 *   - after a commit answered REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION or
 *     UNKNOWN_MEMBER_ID (the group is rebalancing, or will because of it),
 *     until the next assign.
 * At most COMMIT_HOLD_MAX_MS, in case no callback comes. The commits of a
 * revoke (inside the callback, before any rejoin), of stop and of
 * kaffe_consumer_commit never wait. Nothing is lost by waiting: the state is
 * committed when the wait ends (in full after a failure: commit_force). */
static void commit_hold(kaffe_consumer_t *c, int assigns) {
    if (c->commit_hold_assigns < assigns)
        c->commit_hold_assigns = assigns;
    c->commit_hold_until_ms = now_ms() + COMMIT_HOLD_MAX_MS;
}

static bool commit_held(kaffe_consumer_t *c, int64_t now) {
    if (c->commit_hold_assigns > 0 && now >= c->commit_hold_until_ms)
        c->commit_hold_assigns = 0;
    return c->commit_hold_assigns > 0;
}

static void offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets, void *opaque) {
    (void)rk;
    kaffe_consumer_t *c = opaque;
    for (int i = 0; !err && offsets && i < offsets->cnt; i++)
        err = offsets->elems[i].err;
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        c->commit_force = true;
        report_error(c, err, "commit failed: %s", rd_kafka_err2str(err));
    }
    if (err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
        err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION || err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID)
        commit_hold(c, 1);
}

static void serve_commit_requests(kaffe_consumer_t *c) {
    /* acquire: pairs with the increment in kaffe_consumer_commit. */
    uint64_t requested = atomic_load_explicit(&c->commit_requested, memory_order_acquire);
    if (requested == c->commits_served)
        return;
    kaffe_status_t st = commit_all(c, true);
    c->commits_served = requested;
    pthread_mutex_lock(&c->lock);
    c->commit_completed = requested;
    c->commit_status = st;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* --- the stash of a retired client (poll thread) ------------------------ */

static void stash_partitions(kaffe_consumer_t *c, partition_t **ps, size_t n) {
    if (!c->stash)
        c->stash = rd_kafka_topic_partition_list_new((int)n);
    char metadata[METADATA_MAX];
    for (size_t i = 0; i < n; i++) {
        if (!partition_snapshot(ps[i], &c->snap))
            continue;
        bool complete;
        size_t len = ack_metadata_encode(&c->snap, metadata, sizeof metadata, &complete);
        rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(
            c->stash, partition_topic(ps[i]), partition_id(ps[i]));
        if (!tp)
            tp = rd_kafka_topic_partition_list_add(c->stash, partition_topic(ps[i]),
                                                   partition_id(ps[i]));
        tp->offset = c->snap.watermark;
        free(tp->metadata);
        tp->metadata = NULL;
        tp->metadata_size = 0;
        if (len > 0 && (tp->metadata = malloc(len))) {
            memcpy(tp->metadata, metadata, len);
            tp->metadata_size = len;
        }
    }
}

/* If the stash is ahead of what the group committed for tp, tp takes the
 * stash's offset and metadata (the acks the retired client could not
 * commit); the entry leaves the stash either way. */
static bool stash_apply(kaffe_consumer_t *c, rd_kafka_topic_partition_t *tp, bool known) {
    if (!c->stash)
        return false;
    rd_kafka_topic_partition_t *s =
        rd_kafka_topic_partition_list_find(c->stash, tp->topic, tp->partition);
    if (!s)
        return false;
    bool ahead = !known || s->offset > tp->offset;
    if (ahead) {
        tp->offset = s->offset;
        free(tp->metadata);
        tp->metadata = s->metadata;
        tp->metadata_size = s->metadata_size;
        s->metadata = NULL;
        s->metadata_size = 0;
        c->commit_force = true;
    }
    rd_kafka_topic_partition_list_del(c->stash, tp->topic, tp->partition);
    return ahead;
}

/* --- rebalance (poll thread) -------------------------------------------- */

static void assign_partitions(kaffe_consumer_t *c, rd_kafka_topic_partition_list_t *parts) {
    rd_kafka_topic_partition_list_t *committed = rd_kafka_topic_partition_list_copy(parts);
    rd_kafka_resp_err_t err = rd_kafka_committed(c->rk, committed, COMMITTED_TIMEOUT_MS);
    if (err)
        report_error(c, err,
                     "reading committed offsets failed (%s): starting from the reset policy, "
                     "acks in commit metadata are replayed",
                     rd_kafka_err2str(err));
    for (int i = 0; i < committed->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &committed->elems[i];
        bool known = !err && !tp->err && tp->offset >= 0;
        if (stash_apply(c, tp, known))
            known = true;
        partition_params_t params = {
            .topic = tp->topic,
            .partition = tp->partition,
            .generation = ++c->next_generation,
            .committed_offset = known ? tp->offset : -1,
            .metadata = known ? tp->metadata : NULL,
            .metadata_len = known ? tp->metadata_size : 0,
            .window = c->window,
            .max_in_flight = c->max_in_flight,
            .max_in_flight_bytes = c->max_in_flight_bytes,
            .pool = c->pool,
            .lane_count = c->lanes_per_partition,
            .salt = c->salt,
        };
        if (!partition_table_add(c->table, &params)) {
            report_error(c, KAFFE_ERR_NOMEM, "out of memory assigning %s [%d]", tp->topic,
                         (int)tp->partition);
            fail_consumer(c, KAFFE_ERR_NOMEM);
            continue;
        }
        /* Start exactly where the state starts. */
        if (known)
            parts->elems[i].offset = tp->offset;
        if (c->rebalance_cb)
            c->rebalance_cb(c, 1, tp->topic, tp->partition, c->rebalance_opaque);
    }
    rd_kafka_topic_partition_list_destroy(committed);
}

/* Revoke: stop dispatching, drain in-flight up to drain_timeout_ms, refuse
 * later acks, commit from one snapshot each, release. */
static void revoke_partitions(kaffe_consumer_t *c, rd_kafka_topic_partition_list_t *parts) {
    partition_t **ps = calloc((size_t)parts->cnt + 1, sizeof *ps);
    size_t n = 0;
    for (int i = 0; ps && i < parts->cnt; i++) {
        partition_t *p =
            partition_table_find(c->table, parts->elems[i].topic, parts->elems[i].partition);
        if (p) {
            discard_parked(c, p);
            ps[n++] = p;
        }
    }
    if (!ps)
        return;
    /* Waiting retries and paused messages go back unhandled: the next owner
     * gets them again. */
    flush_delayed(c, ps, n);
    int64_t deadline = now_ms() + (c->drained ? 0 : c->drain_timeout_ms);
    for (;;) {
        bool busy = false;
        for (size_t i = 0; i < n && !busy; i++)
            busy = partition_in_flight(ps[i], NULL) > 0;
        if (!busy)
            break;
        if (now_ms() >= deadline) {
            /* Their queued messages are dropped by the workers from now on. */
            atomic_fetch_add_explicit(&c->revoke_timeouts, 1, memory_order_relaxed);
            break;
        }
        sleep_ms(1);
    }
    for (size_t i = 0; i < n; i++)
        partition_close_acks(ps[i]);
    prune_released(c, ps, n);
    if (c->stashing)
        stash_partitions(c, ps, n);
    commit_partitions(c, ps, n, true);
    for (size_t i = 0; i < n; i++) {
        /* librdkafka keeps an application pause across unassign and a later
         * assign of the same partition: a partition revoked while paused by
         * back-pressure would never be fetched again if it came back. */
        pause_fetch(c, ps[i], false);
        if (c->rebalance_cb)
            c->rebalance_cb(c, 0, partition_topic(ps[i]), partition_id(ps[i]), c->rebalance_opaque);
        partition_table_remove(c->table, ps[i]);
    }
    free(ps);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    kaffe_consumer_t *c = opaque;
    const char *protocol = rd_kafka_rebalance_protocol(rk);
    bool cooperative = protocol && strcmp(protocol, "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t aerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        c->assigned_rk = rk;
        if (c->commit_hold_assigns > 0)
            c->commit_hold_assigns--;
        assign_partitions(c, parts);
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, parts);
    } else {
        if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
            report_error(c, err, "rebalance failed: %s", rd_kafka_err2str(err));
        /* The rebalance goes on after the revoke (see commit_hold). */
        commit_hold(c, cooperative && !rd_kafka_assignment_lost(rk) ? 2 : 1);
        revoke_partitions(c, parts);
        if (cooperative)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, NULL);
    }
    if (error) {
        report_error(c, rd_kafka_error_code(error), "rebalance: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (aerr) {
        report_error(c, aerr, "rebalance: %s", rd_kafka_err2str(aerr));
    }
}

/* Notices a fatal error of the current client, once per client: reports
 * it, and restarts the client (restart_client, from the poll loop) or stops
 * the consumer. Poll thread (librdkafka serves error_cb in
 * rd_kafka_consumer_poll; the loop also checks after each poll, since a
 * fatal error may come as a message error instead). */
static bool check_fatal(kaffe_consumer_t *c) {
    char fatal[256];
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(c->rk, fatal, sizeof fatal);
    if (!orig || c->fatal_seen == c->rk)
        return orig != RD_KAFKA_RESP_ERR_NO_ERROR;
    c->fatal_seen = c->rk;
    report_error(c, orig, "fatal: %s", fatal);
    if (c->restart_max > 0)
        c->fatal_pending = orig;
    else
        fail_consumer(c, orig);
    return true;
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    kaffe_consumer_t *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL && rk == c->rk && check_fatal(c))
        return;
    report_error(c, err, "%s", reason);
}

/* --- the client (poll thread, or the constructor) ----------------------- */

/* A librdkafka consumer for c from rdconf (taken, also on failure). */
static rd_kafka_t *create_client(kaffe_consumer_t *c, rd_kafka_conf_t *rdconf, char *errstr,
                                 size_t errstr_size) {
    rd_kafka_conf_set_opaque(rdconf, c);
    rd_kafka_conf_set_rebalance_cb(rdconf, rebalance_cb);
    rd_kafka_conf_set_error_cb(rdconf, error_cb);
    rd_kafka_conf_set_offset_commit_cb(rdconf, offset_commit_cb);
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

static client_t *client_new(rd_kafka_t *rk) {
    client_t *client = calloc(1, sizeof *client);
    if (client) {
        client->rk = rk;
        atomic_init(&client->live, 0);
    }
    return client;
}

/* Destroys the retired clients no message uses any more. Poll thread. */
static void reap_retired(kaffe_consumer_t *c) {
    size_t kept = 0;
    for (size_t i = 0; i < c->retired_n; i++) {
        client_t *client = c->retired[i];
        /* acquire: pairs with the release in message_drop. */
        if (atomic_load_explicit(&client->live, memory_order_acquire) == 0) {
            /* Closed already (as far as a failed client can be). */
            rd_kafka_destroy_flags(client->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
            free(client);
        } else {
            c->retired[kept++] = client;
        }
    }
    c->retired_n = kept;
}

static rd_kafka_resp_err_t subscribe_topics(kaffe_consumer_t *c) {
    char **topics = NULL;
    size_t count = conf_list(c->conf, "topics", &topics);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)count);
    for (size_t i = 0; i < count; i++)
        rd_kafka_topic_partition_list_add(list, topics[i], RD_KAFKA_PARTITION_UA);
    conf_list_free(topics);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    return err;
}

/* A fatal error: retire the client and make a new one, within the restart
 * budget. Every partition is revoked first (drained up to drain_timeout_ms,
 * acks closed: later acks of its messages get KAFFE_ERR_REVOKED, and the new
 * client's partitions have new generations, so they never touch its state),
 * and what is acked is committed with the old client if it still can, and
 * kept in the stash for the new client otherwise. Poll thread. */
static void restart_client(kaffe_consumer_t *c) {
    rd_kafka_resp_err_t reason = c->fatal_pending;
    c->fatal_pending = RD_KAFKA_RESP_ERR_NO_ERROR;
    int64_t now = now_ms();
    size_t recent = 0;
    for (int64_t i = 0; i < c->restart_max; i++)
        recent += c->restart_times[i] && now - c->restart_times[i] < c->restart_window_ms;
    if ((int64_t)recent >= c->restart_max) {
        report_error(c, reason,
                     "fatal error (%s): %zu client restarts within %lld ms, the budget: stopping",
                     rd_kafka_err2name(reason), recent, (long long)c->restart_window_ms);
        fail_consumer(c, reason);
        return;
    }
    c->restart_times[c->restart_next++ % (size_t)c->restart_max] = now;
    report_error(c, reason, "fatal error (%s): restarting the client (%zu of %lld within %lld ms)",
                 rd_kafka_err2name(reason), recent + 1, (long long)c->restart_max,
                 (long long)c->restart_window_ms);
    size_t n;
    partition_t **ps = partition_table_collect(c->table, &n);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new((int)n + 1);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(parts, partition_topic(ps[i]), partition_id(ps[i]));
    free(ps);
    c->stashing = true;
    revoke_partitions(c, parts);
    c->stashing = false;
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk);
    if (err)
        report_error(c, err, "closing the failed client: %s", rd_kafka_err2str(err));
    /* Backoff: 100 ms doubling per recent restart, at most 5 s; a stop
     * request cuts it short (the new client is still made, for the stop
     * sequence). */
    int64_t backoff = 100;
    for (size_t i = 0; i < recent && backoff < 5000; i++)
        backoff *= 2;
    int64_t until = now_ms() + (backoff > 5000 ? 5000 : backoff);
    while (now_ms() < until && !atomic_load_explicit(&c->stop_requested, memory_order_acquire))
        sleep_ms(10);
    char errstr[512];
    rd_kafka_conf_t *rdconf = conf_to_rdkafka(c->conf, CONF_ROLE_CONSUMER, errstr, sizeof errstr);
    rd_kafka_t *rk = rdconf ? create_client(c, rdconf, errstr, sizeof errstr) : NULL;
    client_t *client = rk ? client_new(rk) : NULL;
    client_t **grown = client ? realloc(c->retired, (c->retired_n + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(client);
        if (rk)
            rd_kafka_destroy(rk);
        report_error(c, reason, "restarting the client failed: %s", rk ? "out of memory" : errstr);
        fail_consumer(c, reason);
        return;
    }
    /* The old client stays until no message it delivered is alive (the
     * application may still hold some): reap_retired destroys it. */
    c->retired = grown;
    c->retired[c->retired_n++] = c->client;
    c->client = client;
    c->rk = rk;
    c->commit_hold_assigns = 0; /* the new client joins afresh */
    err = subscribe_topics(c);
    if (err) {
        report_error(c, err, "subscribing the new client: %s", rd_kafka_err2str(err));
        fail_consumer(c, err);
        return;
    }
    /* relaxed: a statistic (tests read it to know the restart is done). */
    atomic_fetch_add_explicit(&c->n_restarts, 1, memory_order_relaxed);
}

/* --- the poll thread ---------------------------------------------------- */

static int64_t total_in_flight(kaffe_consumer_t *c) {
    size_t n;
    partition_t **ps = partition_table_collect(c->table, &n);
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += partition_in_flight(ps[i], NULL);
        discard_parked(c, ps[i]);
    }
    free(ps);
    return total;
}

/* How long stop waits for a joined member's first assignment (below). */
#define FIRST_ASSIGNMENT_WAIT_MS 10000

/* librdkafka 2.0.2 aborts (an assertion in
 * rd_kafka_sticky_assignor_state_destroy; librdkafka issue #4312, fixed in
 * 2.3.0) when a consumer that has joined a cooperative-sticky group but not
 * yet received its first assignment is closed and destroyed. So the stop
 * sequence first waits, serving librdkafka's callbacks, until the current
 * client has had an assignment or has not joined at all. Messages polled
 * meanwhile are dropped untracked: nothing of them is committed, so they are
 * delivered again. Returns false if the bound passed with the client still
 * exposed; the caller then leaves the handle undestroyed (a leak, reported)
 * rather than abort the application. Poll thread only. */
static bool await_first_assignment(kaffe_consumer_t *c) {
    int64_t deadline = now_ms() + FIRST_ASSIGNMENT_WAIT_MS;
    for (;;) {
        const char *protocol = rd_kafka_rebalance_protocol(c->rk);
        bool exposed = protocol && strcmp(protocol, "COOPERATIVE") == 0 && c->assigned_rk != c->rk;
        if (!exposed)
            return true;
        if (now_ms() >= deadline)
            return false;
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(c->rk, 10);
        if (rkm)
            rd_kafka_message_destroy(rkm);
    }
}

static void stop_sequence(kaffe_consumer_t *c) {
    atomic_store_explicit(&c->state, ST_STOPPING, memory_order_release);
    /* Nothing waits for a retry or a resume any more: released unhandled
     * (delivered again after a restart). */
    flush_delayed(c, NULL, 0);
    /* Drain: parked messages are dropped; delivered ones get up to
     * drain_timeout_ms to be acked. */
    int64_t deadline = now_ms() + c->drain_timeout_ms;
    while (total_in_flight(c) > 0 && now_ms() < deadline) {
        serve_commit_requests(c);
        sleep_ms(1);
    }
    /* release: pairs with the workers' acquire; what is still queued is
     * released without calling the handler. */
    atomic_store_explicit(&c->abandon, 1, memory_order_release);
    c->drained = true;
    commit_all(c, true);
    if (!await_first_assignment(c)) {
        c->leak_rk = true;
        report_error(c, RD_KAFKA_RESP_ERR__TIMED_OUT,
                     "leaving the group: no first assignment within %d ms; the client is "
                     "left open (closing it would abort: librdkafka 2.0.2 issue #4312)",
                     FIRST_ASSIGNMENT_WAIT_MS);
    }
    /* Leaving the group revokes everything through rebalance_cb (which
     * closes acks, commits what changed, and removes the partitions). */
    rd_kafka_resp_err_t err =
        c->leak_rk ? RD_KAFKA_RESP_ERR_NO_ERROR : rd_kafka_consumer_close(c->rk);
    if (err)
        report_error(c, err, "leaving the group: %s", rd_kafka_err2str(err));
    /* release: acks from now on answer KAFFE_ERR_STOPPED. */
    atomic_store_explicit(&c->acks_closed, 1, memory_order_release);
    size_t n;
    partition_t **ps = partition_table_collect(c->table, &n);
    for (size_t i = 0; i < n; i++) {
        discard_parked(c, ps[i]);
        partition_close_acks(ps[i]);
        partition_table_remove(c->table, ps[i]);
    }
    free(ps);
    pthread_mutex_lock(&c->lock);
    atomic_store_explicit(&c->state, ST_STOPPED, memory_order_release);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* Messages taken from librdkafka per poll: the queue lock, the clock read,
 * the commit/resume checks and the worker wake-ups are paid once per batch.
 * Back-pressure acts per message inside a batch as it would one message at a
 * time (a paused partition parks the rest of its messages); the messages of
 * a batch are out of librdkafka already, so a fetch pause can leave the park
 * list over its mark by at most one batch. */
#define POLL_BATCH 256
#define WAKE_EVERY 32

/* Dispatches or reports n polled messages, received at polled_ns. */
static void handle_polled(kaffe_consumer_t *c, rd_kafka_message_t **rkms, size_t n,
                          uint64_t polled_ns) {
    pool_batch_t batch;
    pool_batch_init(&batch, c->pool);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_t *rkm = rkms[i];
        /* Sleeping workers are woken every WAKE_EVERY messages, not only at
         * the end: the first lanes start while the rest is dispatched. */
        if (i % WAKE_EVERY == WAKE_EVERY - 1)
            pool_batch_flush(&batch);
        if (!rkm->err) {
            dispatch(c, &batch, rkm, polled_ns);
            continue;
        }
        if (rkm->err == RD_KAFKA_RESP_ERR__FATAL && check_fatal(c)) {
            rd_kafka_message_destroy(rkm); /* reported; restart or stop follows */
            continue;
        }
        if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            report_error(c, rkm->err, "%s%s%s", rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : "",
                         rkm->rkt ? ": " : "", rd_kafka_message_errstr(rkm));
        rd_kafka_message_destroy(rkm);
    }
    /* Before anything that may block or wait for the workers. */
    pool_batch_flush(&batch);
}

static void *poll_main(void *arg) {
    kaffe_consumer_t *c = arg;
    common_set_thread_name("kaffe-poll");
    c->last_commit_ms = now_ms();
    /* The consumer group queue rd_kafka_consumer_poll serves (rebalances,
     * errors and commit results are served inside the batch call alike). */
    rd_kafka_queue_t *queue = rd_kafka_queue_get_consumer(c->rk);
    rd_kafka_message_t *rkms[POLL_BATCH];
    /* acquire: pairs with request_stop / fail_consumer. */
    while (!atomic_load_explicit(&c->stop_requested, memory_order_acquire)) {
        int timeout = c->paused_count ? PAUSED_POLL_MS : POLL_MS;
        if (atomic_load_explicit(&c->delayed_count, memory_order_relaxed) > 0) {
            /* Serve retries close to their due time, and notice resumes and
             * newly added retries within a few ms. */
            int64_t next = serve_delayed(c) - now_ms();
            timeout = next < 0 ? 0 : next < PAUSED_POLL_MS ? (int)next : PAUSED_POLL_MS;
        }
        /* What is queued already, without waiting (a batch call with a
         * timeout would wait for a full batch); if nothing, wait for one. */
        ssize_t got = queue ? rd_kafka_consume_batch_queue(queue, 0, rkms, POLL_BATCH) : 0;
        size_t n = got > 0 ? (size_t)got : 0;
        if (n == 0) {
            rd_kafka_message_t *rkm = rd_kafka_consumer_poll(c->rk, timeout);
            if (rkm)
                rkms[n++] = rkm;
        }
        uint64_t polled_ns = now_ns();
        if (n > 0)
            handle_polled(c, rkms, n, polled_ns);
        int64_t now = (int64_t)(polled_ns / 1000000u);
        if (c->paused_count && now != c->last_resume_ms) {
            c->last_resume_ms = now;
            resume_pass(c);
        }
        serve_commit_requests(c);
        if (now - c->last_commit_ms >= c->commit_interval_ms && !commit_held(c, now))
            commit_all(c, false);
        /* relaxed: a standalone request; it publishes nothing else. */
        int fatal = atomic_exchange_explicit(&c->test_fatal, 0, memory_order_relaxed);
        if (fatal)
            rd_kafka_test_fatal_error(c->rk, (rd_kafka_resp_err_t)fatal, "kaffe test");
        check_fatal(c);
        if (c->fatal_pending) {
            /* The queue belongs to the client being replaced, which
             * reap_retired may destroy: let go of it first. */
            if (queue)
                rd_kafka_queue_destroy(queue);
            restart_client(c);
            queue = rd_kafka_queue_get_consumer(c->rk);
        }
        if (c->retired_n)
            reap_retired(c);
    }
    if (queue)
        rd_kafka_queue_destroy(queue);
    stop_sequence(c);
    return NULL;
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
    c->error_cb = conf_error_cb(conf, &c->error_opaque);
    c->async = conf_bool(conf, "async_message_ack");
    const char *ordering = conf_str(conf, "ordering");
    c->ordering = strcmp(ordering, "key") == 0         ? ORDER_KEY
                  : strcmp(ordering, "unordered") == 0 ? ORDER_UNORDERED
                                                       : ORDER_PARTITION;
    c->workers = (size_t)conf_int(conf, "workers");
    if (c->ordering == ORDER_PARTITION) {
        c->lanes_per_partition = 1;
    } else if (c->ordering == ORDER_KEY) {
        /* Enough lanes that keys spread over every worker: 4 per worker. */
        size_t lanes = c->workers * 4;
        c->lanes_per_partition = lanes < 16 ? 16 : lanes > 4096 ? 4096 : lanes;
    }
    c->window = (size_t)conf_int(conf, "ack_window");
    c->max_in_flight = conf_int(conf, "max_in_flight_messages");
    c->max_in_flight_bytes = conf_int(conf, "max_in_flight_bytes");
    c->commit_interval_ms = conf_int(conf, "commit_interval_ms");
    c->drain_timeout_ms = conf_int(conf, "drain_timeout_ms");
    const char *on_error = conf_str(conf, "on_error");
    c->on_error = strcmp(on_error, "retry") == 0         ? POL_RETRY
                  : strcmp(on_error, "dead_letter") == 0 ? POL_DEAD_LETTER
                  : strcmp(on_error, "pause") == 0       ? POL_PAUSE
                                                         : POL_STOP;
    const char *exhausted = conf_str(conf, "retry_exhausted");
    c->retry_exhausted = strcmp(exhausted, "dead_letter") == 0 ? POL_DEAD_LETTER
                         : strcmp(exhausted, "skip") == 0      ? POL_SKIP
                                                               : POL_STOP;
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
        c->salt = (uint64_t)now_ms() * UINT64_C(0x9e3779b97f4a7c15);
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
    pthread_cond_init(&c->cond, NULL);

    c->table = partition_table_new();
    if (!c->table) {
        rd_kafka_conf_destroy(rdconf);
        errstr_printf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    c->rk = create_client(c, rdconf, errstr, errstr_size);
    if (!c->rk)
        goto fail;
    c->client = client_new(c->rk);
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
            rd_kafka_destroy(c->rk);
            free(c->client);
            goto fail;
        }
    }
    c->conf = conf;
    return c;
fail:
    free(c->dead_letter_topic);
    free(c->restart_times);
    partition_table_destroy(c->table);
    pthread_mutex_destroy(&c->delay_lock);
    pthread_mutex_destroy(&c->lock);
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

kaffe_status_t kaffe_consumer_start(kaffe_consumer_t *c) {
    if (!c)
        return KAFFE_ERR_INVALID_ARG;
    pthread_mutex_lock(&c->lock);
    if (atomic_load_explicit(&c->state, memory_order_relaxed) != ST_NEW) {
        pthread_mutex_unlock(&c->lock);
        return KAFFE_ERR_STATE;
    }
    kaffe_status_t st = KAFFE_OK;
    c->pool = pool_new(c->workers, run_message, c);
    if (!c->pool) {
        st = KAFFE_ERR_NOMEM;
        goto out;
    }
    pool_set_hold_cb(c->pool, hold_cb);
    rd_kafka_resp_err_t err = subscribe_topics(c);
    if (err) {
        st = (kaffe_status_t)err;
        goto out;
    }
    /* release: the fields set above are visible to the poll thread (also
     * ordered by pthread_create itself). */
    atomic_store_explicit(&c->state, ST_RUNNING, memory_order_release);
    if (pthread_create(&c->poll_thread, NULL, poll_main, c) != 0) {
        atomic_store_explicit(&c->state, ST_NEW, memory_order_relaxed);
        rd_kafka_unsubscribe(c->rk);
        st = KAFFE_ERR_NOMEM;
    }
out:
    if (st != KAFFE_OK && c->pool) {
        pool_destroy(c->pool);
        c->pool = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    return st;
}

/* What kaffe_consumer_ack and kaffe_consumer_nack start with: async mode, a
 * live message, and the claim (settled 0 -> 1) that makes exactly one ack or
 * nack win. KAFFE_OK when this caller now settles m. Any thread. */
static kaffe_status_t claim_async_settle(kaffe_consumer_t *c, kaffe_message_t *m) {
    if (!c->async)
        return KAFFE_ERR_NOT_ASYNC;
    /* acquire: pairs with the release in message_drop. */
    if (!atomic_load_explicit(&m->live, memory_order_acquire))
        return KAFFE_ERR_ACK_DUPLICATE;
    int open = 0;
    if (!atomic_compare_exchange_strong_explicit(&m->settled, &open, 1, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return KAFFE_ERR_ACK_DUPLICATE;
    return KAFFE_OK;
}

kaffe_status_t kaffe_consumer_ack(kaffe_consumer_t *c, kaffe_message_t *m) {
    if (!c || !m || m->consumer != c)
        return KAFFE_ERR_INVALID_ARG;
    kaffe_status_t st = claim_async_settle(c, m);
    if (st != KAFFE_OK)
        return st;
    /* acquire: pairs with the release store in stop_sequence. */
    if (atomic_load_explicit(&c->acks_closed, memory_order_acquire))
        st = KAFFE_ERR_STOPPED;
    else
        st = partition_settle(c->table, m->topic, m->rkm->partition, m->generation, m->rkm->offset,
                              m->bytes, PARTITION_ACK);
    message_drop(m, 1);
    return st;
}

kaffe_status_t kaffe_consumer_nack(kaffe_consumer_t *c, kaffe_message_t *m, int error) {
    if (!c || !m || m->consumer != c || error == KAFFE_OK)
        return KAFFE_ERR_INVALID_ARG;
    kaffe_status_t st = claim_async_settle(c, m);
    if (st != KAFFE_OK)
        return st;
    /* acquire: pairs with the release store in stop_sequence. */
    if (atomic_load_explicit(&c->acks_closed, memory_order_acquire))
        st = KAFFE_ERR_STOPPED;
    else if (!partition_is_current(c->table, m->topic, m->rkm->partition, m->generation))
        st = KAFFE_ERR_REVOKED;
    if (st != KAFFE_OK) {
        message_drop(m, 1);
        return st;
    }
    /* A revoke racing with this is harmless: its settles are refused, and a
     * retry of a gone assignment is dropped when it comes due. */
    message_failed(c, m, error, false, 1);
    return KAFFE_OK;
}

kaffe_status_t kaffe_consumer_resume_partition(kaffe_consumer_t *c, const char *topic,
                                               int32_t partition) {
    if (!c || !topic)
        return KAFFE_ERR_INVALID_ARG;
    size_t found = 0;
    pthread_mutex_lock(&c->delay_lock);
    for (size_t i = 0; i < c->delayed_n; i++) {
        kaffe_message_t *m = c->delayed[i];
        if (m->paused && m->rkm->partition == partition && strcmp(m->topic, topic) == 0) {
            m->paused = false;
            m->due_ms = 0;
            found++;
        }
    }
    pthread_mutex_unlock(&c->delay_lock);
    return found ? KAFFE_OK : KAFFE_ERR_UNKNOWN_PARTITION;
}

kaffe_status_t kaffe_consumer_failure_counters(kaffe_consumer_t *c, kaffe_failure_counters_t *out) {
    if (!c || !out)
        return KAFFE_ERR_INVALID_ARG;
    out->failures = atomic_load_explicit(&c->n_failures, memory_order_relaxed);
    out->retries = atomic_load_explicit(&c->n_retries, memory_order_relaxed);
    out->dead_lettered = atomic_load_explicit(&c->n_dead_lettered, memory_order_relaxed);
    out->dead_letter_failed = atomic_load_explicit(&c->n_dead_letter_failed, memory_order_relaxed);
    out->skipped = atomic_load_explicit(&c->n_skipped, memory_order_relaxed);
    out->paused = atomic_load_explicit(&c->n_paused, memory_order_relaxed);
    out->restarts = atomic_load_explicit(&c->n_restarts, memory_order_relaxed);
    return KAFFE_OK;
}

void consumer_test_fatal_error(kaffe_consumer_t *c, rd_kafka_resp_err_t err) {
    atomic_store_explicit(&c->test_fatal, (int)err, memory_order_relaxed);
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
    pthread_mutex_lock(&c->lock);
    int state = atomic_load_explicit(&c->state, memory_order_relaxed);
    if (state != ST_RUNNING) {
        pthread_mutex_unlock(&c->lock);
        return state == ST_NEW ? KAFFE_ERR_STATE : KAFFE_ERR_STOPPED;
    }
    /* release: pairs with the poll thread's acquire in serve_commit_requests. */
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
    /* acquire: pairs with fail_consumer. */
    return (kaffe_status_t)atomic_load_explicit(&c->failure, memory_order_acquire);
}

void kaffe_consumer_destroy(kaffe_consumer_t *c) {
    if (!c)
        return;
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
     * abort (await_first_assignment). */
    if (!c->leak_rk)
        rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    free(c->client);
    for (size_t i = 0; i < c->retired_n; i++) {
        rd_kafka_destroy_flags(c->retired[i]->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        free(c->retired[i]);
    }
    free(c->retired);
    free(c->restart_times);
    if (c->stash)
        rd_kafka_topic_partition_list_destroy(c->stash);
    partition_table_destroy(c->table);
    ack_snapshot_free(&c->snap);
    while (c->blocks) {
        message_block_t *next = c->blocks->next;
        free(c->blocks);
        c->blocks = next;
    }
    kaffe_conf_destroy(c->conf);
    pthread_mutex_destroy(&c->lock);
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

bool consumer_running(kaffe_consumer_t *c) {
    /* relaxed: a status flag, ordering nothing. */
    return atomic_load_explicit(&c->state, memory_order_relaxed) == ST_RUNNING;
}
