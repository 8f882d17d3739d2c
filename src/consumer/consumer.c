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

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "ack/ack.h"
#include "common/errstr.h"
#include "common/tsan.h"
#include "conf/conf.h"
#include "consumer/internal.h"
#include "partition/partition.h"
#include "pool/pool.h"

enum ordering { ORDER_PARTITION, ORDER_KEY, ORDER_UNORDERED };
enum state { ST_NEW, ST_RUNNING, ST_STOPPING, ST_STOPPED };

#define METADATA_MAX 4096 /* the broker's default offset.metadata.max.bytes */
#define POLL_MS 100       /* stop-request latency bound */
#define PAUSED_POLL_MS 5  /* while some partition waits to be resumed */
#define COMMITTED_TIMEOUT_MS 10000

typedef struct message_block {
    struct message_block *next;
    kaffe_message_t msgs[MESSAGE_BLOCK];
} message_block_t;

struct kaffe_consumer_s {
    consumer_metrics_t metrics; /* stats and log routing (stats.c) */
    kaffe_conf_t *conf;
    rd_kafka_t *rk;
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

    pool_t *pool;             /* created by start, destroyed by stop */
    partition_table_t *table; /* whole life */
    pthread_t poll_thread;

    /* Poll thread only. */
    uint64_t next_generation;
    int64_t last_commit_ms;
    int64_t last_resume_ms;
    size_t paused_count; /* partitions paused (recounted on each resume pass) */
    bool commit_force;   /* a commit failed: commit everything next time */
    bool drained;        /* the stop sequence drained: revokes do not wait again */
    uint64_t commits_served;
    ack_snapshot_t snap;
    message_block_t *blocks;
    size_t block_used;

    /* Any thread. Each is a flag or counter; the orders are at the uses. */
    atomic_int state;            /* enum state */
    atomic_int stop_requested;   /* set by request_stop (async-signal-safe) */
    atomic_int abandon;          /* workers drop queued messages unhandled */
    atomic_int acks_closed;      /* after the final commit: acks get STOPPED */
    atomic_int failure;          /* the status that stopped the consumer */
    atomic_long revoke_timeouts; /* > 0: workers check a message is current */
    atomic_ulong commit_requested;
    /* Released message objects (quarantine, then reuse): pushed by any
     * thread, popped by the poll thread only (single dequeuer: no lock). */
    struct __cds_wfcq_head free_head;
    struct cds_wfcq_tail free_tail;
    atomic_long free_count;

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

/* A message object for rkm. Poll thread only (the single free-list dequeuer). */
static kaffe_message_t *message_new(kaffe_consumer_t *c, rd_kafka_message_t *rkm,
                                    uint64_t generation) {
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
    m->rkm = rkm;
    m->topic = rd_kafka_topic_name(rkm->rkt);
    m->headers = NULL;
    m->generation = generation;
    m->bytes = rkm->len + rkm->key_len;
    struct timespec polled;
    clock_gettime(CLOCK_MONOTONIC, &polled);
    m->polled_ns = (uint64_t)polled.tv_sec * 1000000000u + (uint64_t)polled.tv_nsec;
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
    rd_kafka_message_destroy(m->rkm);
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

/* The failure policy. Default (and only, for now): stop the consumer with
 * the handler's status; the failed offset is marked so that nothing at or
 * past it is committed. Retry / dead-letter / pause policies plug in here. */
static void handler_failed(kaffe_consumer_t *c, kaffe_message_t *m, int rc) {
    int open = 0;
    bool settled_here = atomic_compare_exchange_strong_explicit(
        &m->settled, &open, 1, memory_order_acq_rel, memory_order_relaxed);
    if (settled_here)
        settle(c, m, PARTITION_FAIL);
    report_error(c, rc, "message handler failed (%s) on %s [%d] at offset %lld; stopping",
                 kaffe_err_name(rc), m->topic, (int)m->rkm->partition, (long long)m->rkm->offset);
    fail_consumer(c, rc);
    /* Async: the application must not ack a message it refused, so its
     * reference goes too (a late ack is refused as a duplicate). If it acked
     * anyway before we got here, it dropped its reference already. */
    message_drop(m, c->async && settled_here ? 2 : 1);
}

static void run_message(pool_item_t *item, void *opaque) {
    kaffe_consumer_t *c = opaque;
    kaffe_message_t *m = caa_container_of(item, kaffe_message_t, item);
    /* acquire: pairs with the release stores in fail_consumer / stop. */
    if (atomic_load_explicit(&c->abandon, memory_order_acquire) ||
        (atomic_load_explicit(&c->revoke_timeouts, memory_order_relaxed) > 0 &&
         !partition_is_current(c->table, m->topic, m->rkm->partition, m->generation))) {
        abandon_message(c, m);
        return;
    }
    if (rd_kafka_message_headers(m->rkm, &m->headers) != RD_KAFKA_RESP_ERR_NO_ERROR)
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

static void push(kaffe_consumer_t *c, partition_t *p, kaffe_message_t *m) {
    pool_lane_t *lane = partition_lane(p, m->rkm->key, m->rkm->key_len);
    if (lane)
        pool_lane_push(lane, &m->item);
    else
        pool_push(c->pool, &m->item);
}

/* Handles an admit result for m (not parked). */
static void place(kaffe_consumer_t *c, partition_t *p, kaffe_message_t *m,
                  partition_admit_result_t r) {
    switch (r) {
        case PARTITION_DISPATCH:
            push(c, p, m);
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

static void dispatch(kaffe_consumer_t *c, rd_kafka_message_t *rkm) {
    partition_t *p = partition_table_find(c->table, rd_kafka_topic_name(rkm->rkt), rkm->partition);
    if (!p) { /* not (or no longer) assigned: librdkafka will not commit it either */
        rd_kafka_message_destroy(rkm);
        return;
    }
    kaffe_message_t *m = message_new(c, rkm, partition_generation(p));
    if (!m) {
        rd_kafka_message_destroy(rkm);
        report_error(c, KAFFE_ERR_NOMEM, "out of memory for a message");
        fail_consumer(c, KAFFE_ERR_NOMEM);
        return;
    }
    bool pause_now;
    partition_admit_result_t r = partition_admit(p, rkm->offset, m->bytes, false, &pause_now);
    place(c, p, m, r);
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
                place(c, p, m, r);
                if (partition_is_paused(p))
                    break;
            }
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
    commit_partitions(c, ps, n, true);
    for (size_t i = 0; i < n; i++) {
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
        assign_partitions(c, parts);
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, parts);
    } else {
        if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
            report_error(c, err, "rebalance failed: %s", rd_kafka_err2str(err));
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

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    kaffe_consumer_t *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[256];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
        report_error(c, orig, "fatal: %s", fatal);
        fail_consumer(c, orig);
        return;
    }
    report_error(c, err, "%s", reason);
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

static void stop_sequence(kaffe_consumer_t *c) {
    atomic_store_explicit(&c->state, ST_STOPPING, memory_order_release);
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
    /* Leaving the group revokes everything through rebalance_cb (which
     * closes acks, commits what changed, and removes the partitions). */
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk);
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

static void *poll_main(void *arg) {
    kaffe_consumer_t *c = arg;
    c->last_commit_ms = now_ms();
    /* acquire: pairs with request_stop / fail_consumer. */
    while (!atomic_load_explicit(&c->stop_requested, memory_order_acquire)) {
        rd_kafka_message_t *rkm =
            rd_kafka_consumer_poll(c->rk, c->paused_count ? PAUSED_POLL_MS : POLL_MS);
        if (rkm) {
            if (!rkm->err)
                dispatch(c, rkm);
            else {
                if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    report_error(c, rkm->err, "%s%s%s",
                                 rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : "",
                                 rkm->rkt ? ": " : "", rd_kafka_message_errstr(rkm));
                rd_kafka_message_destroy(rkm);
            }
        }
        int64_t now = now_ms();
        if (c->paused_count && now != c->last_resume_ms) {
            c->last_resume_ms = now;
            resume_pass(c);
        }
        serve_commit_requests(c);
        if (now - c->last_commit_ms >= c->commit_interval_ms)
            commit_all(c, false);
    }
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
    if (getrandom(&c->salt, sizeof c->salt, GRND_NONBLOCK) != (ssize_t)sizeof c->salt)
        c->salt = (uint64_t)now_ms() * UINT64_C(0x9e3779b97f4a7c15);
    atomic_init(&c->state, ST_NEW);
    atomic_init(&c->stop_requested, 0);
    atomic_init(&c->abandon, 0);
    atomic_init(&c->acks_closed, 0);
    atomic_init(&c->failure, KAFFE_OK);
    atomic_init(&c->revoke_timeouts, 0);
    atomic_init(&c->commit_requested, 0);
    atomic_init(&c->free_count, 0);
    __cds_wfcq_init(&c->free_head, &c->free_tail);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);

    c->table = partition_table_new();
    if (!c->table) {
        rd_kafka_conf_destroy(rdconf);
        errstr_printf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    /* A paused partition is fetched again only in the next Fetch request,
     * which may wait for the one in flight to long-poll fetch.wait.max.ms:
     * librdkafka's 500 ms default starves the workers after back-pressure.
     * Lower it to 100 ms unless set otherwise (rdkafka.fetch.wait.max.ms). */
    char wait_ms[32];
    size_t wait_size = sizeof wait_ms;
    if (rd_kafka_conf_get(rdconf, "fetch.wait.max.ms", wait_ms, &wait_size) == RD_KAFKA_CONF_OK &&
        strcmp(wait_ms, "500") == 0)
        rd_kafka_conf_set(rdconf, "fetch.wait.max.ms", "100", NULL, 0);
    rd_kafka_conf_set_opaque(rdconf, c);
    rd_kafka_conf_set_rebalance_cb(rdconf, rebalance_cb);
    rd_kafka_conf_set_error_cb(rdconf, error_cb);
    rd_kafka_conf_set_offset_commit_cb(rdconf, offset_commit_cb);
    char rderr[512];
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, rdconf, rderr, sizeof rderr);
    if (!c->rk) {
        rd_kafka_conf_destroy(rdconf);
        errstr_printf(errstr, errstr_size, "librdkafka: %s", rderr);
        goto fail;
    }
    /* Errors and commit results are served by rd_kafka_consumer_poll. */
    rd_kafka_poll_set_consumer(c->rk);
    c->conf = conf;
    return c;
fail:
    partition_table_destroy(c->table);
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
    char **topics = NULL;
    size_t count = conf_list(c->conf, "topics", &topics);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)count);
    for (size_t i = 0; i < count; i++)
        rd_kafka_topic_partition_list_add(list, topics[i], RD_KAFKA_PARTITION_UA);
    conf_list_free(topics);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
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

kaffe_status_t kaffe_consumer_ack(kaffe_consumer_t *c, kaffe_message_t *m) {
    if (!c || !m || m->consumer != c)
        return KAFFE_ERR_INVALID_ARG;
    if (!c->async)
        return KAFFE_ERR_NOT_ASYNC;
    /* acquire: pairs with the release in message_drop. */
    if (!atomic_load_explicit(&m->live, memory_order_acquire))
        return KAFFE_ERR_ACK_DUPLICATE;
    int open = 0;
    if (!atomic_compare_exchange_strong_explicit(&m->settled, &open, 1, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return KAFFE_ERR_ACK_DUPLICATE;
    kaffe_status_t st;
    /* acquire: pairs with the release store in stop_sequence. */
    if (atomic_load_explicit(&c->acks_closed, memory_order_acquire))
        st = KAFFE_ERR_STOPPED;
    else
        st = partition_settle(c->table, m->topic, m->rkm->partition, m->generation, m->rkm->offset,
                              m->bytes, PARTITION_ACK);
    message_drop(m, 1);
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
    /* Messages the application never acked: their rd_kafka_message_t must go
     * before the handle. */
    for (message_block_t *b = c->blocks; b; b = b->next)
        for (size_t i = 0; i < MESSAGE_BLOCK; i++)
            if (atomic_load_explicit(&b->msgs[i].live, memory_order_acquire) && b->msgs[i].rkm)
                rd_kafka_message_destroy(b->msgs[i].rkm);
    rd_kafka_destroy(c->rk);
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
