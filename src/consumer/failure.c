/* The failure path: on_error policies (stop, retry, dead_letter, pause,
 * skip), retry backoff, the delay list and released lanes, and the failure
 * counters. Workers (a handler failed), nacking threads and the poll thread
 * (serving the delay list); the list is under delay_lock. */

#include <stdlib.h>
#include <string.h>

#include "common/prng.h"
#include "consumer/internal.h"

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
 * The poll thread serves the list (consumer_failure_serve_delayed): a due message is made
 * runnable again (settled 0, the retry reference becomes the worker's, plus
 * the application's in async mode, attempt + 1) and its lane woken, or it is
 * pushed again (to the end of its lane, or to the pool). Revoke and stop
 * flush the list: held lanes are woken with the message marked abandon
 * (the worker releases it unhandled, in lane order, and everything queued
 * behind it in the lane, see lane_released), others are released here. No
 * worker ever sleeps for a backoff. */

static uint64_t next_random(kaffe_consumer_t *c) {
    /* relaxed: only atomicity matters (each caller draws from its own seed). */
    prng_t draw = prng_seeded(atomic_fetch_add_explicit(&c->rng, 1, memory_order_relaxed));
    return prng_next(&draw);
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
        consumer_report_error(c, KAFFE_ERR_NOMEM,
                              "out of memory: messages queued behind %s [%d] at offset %lld may be "
                              "handled before it is delivered again",
                              m->topic, (int)m->partition, (long long)m->offset);
}

bool consumer_failure_behind_released(kaffe_consumer_t *c, const kaffe_message_t *m) {
    if (!m->lane || atomic_load_explicit(&c->released_count, memory_order_relaxed) == 0)
        return false;
    bool found = false;
    pthread_mutex_lock(&c->delay_lock);
    for (size_t i = 0; i < c->released_n && !found; i++)
        found = c->released[i].lane == m->lane && c->released[i].generation == m->generation;
    pthread_mutex_unlock(&c->delay_lock);
    return found;
}

void consumer_failure_prune_released(kaffe_consumer_t *c, partition_t **ps, size_t n) {
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
    partition_t *p = partition_table_find(c->table, m->topic, m->partition);
    if (!p || partition_generation(p) != m->generation) {
        /* Its assignment is gone (and its in-flight count with it). */
        consumer_message_drop(m, 1);
        return;
    }
    if (abandon) {
        consumer_message_settle(c, m, PARTITION_RELEASE);
        consumer_message_drop(m, 1);
        return;
    }
    prepare_rerun(c, m);
    if (m->lane)
        pool_lane_push(m->lane, &m->item);
    else
        pool_push(m->route->pool, &m->item);
}

void consumer_failure_hold_cb(pool_lane_t *lane, pool_item_t *item, void *opaque) {
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
    m->due_ms = paused ? INT64_MAX : clock_now_ms() + retry_backoff(c, m->attempt);
    /* relaxed: the caller holds a reference, so this is not a revival. */
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    if (from_worker && m->lane) {
        m->lane_held = true;
        pool_hold(&m->item); /* consumer_failure_hold_cb adds it once the worker is off the lane */
        return;
    }
    m->lane_held = false;
    if (!delay_add(c, m)) {
        consumer_message_settle(c, m, PARTITION_RELEASE);
        consumer_message_drop(m, 1);
    }
}

void consumer_failure_apply_policy(kaffe_consumer_t *c, kaffe_message_t *m, int rc,
                                   bool from_worker, int own_refs) {
    atomic_fetch_add_explicit(&c->n_failures, 1, memory_order_relaxed);
    atomic_store_explicit(&c->last_failure_value, rc, memory_order_relaxed);
    int action = m->route->on_error;
    if (action == POL_RETRY && m->attempt >= c->retry_max_attempts)
        action = c->retry_exhausted;
    const char *topic = m->topic;
    int partition = (int)m->partition;
    long long offset = (long long)m->offset;
    switch (action) {
        case POL_RETRY:
            atomic_fetch_add_explicit(&c->n_retries, 1, memory_order_relaxed);
            consumer_report_error(
                c, KAFFE_ERR_HANDLER,
                "message handler failed with value %d on %s [%d] at offset %lld, attempt %d: "
                "retrying",
                rc, topic, partition, offset, m->attempt);
            wait_message(c, m, from_worker, false);
            break;
        case POL_PAUSE:
            atomic_fetch_add_explicit(&c->n_paused, 1, memory_order_relaxed);
            consumer_report_error(
                c, KAFFE_ERR_HANDLER,
                "message handler failed with value %d on %s [%d] at offset %lld, attempt %d: "
                "paused until kaffe_consumer_resume_partition()",
                rc, topic, partition, offset, m->attempt);
            wait_message(c, m, from_worker, true);
            break;
        case POL_DEAD_LETTER:
            consumer_report_error(
                c, KAFFE_ERR_HANDLER,
                "message handler failed with value %d on %s [%d] at offset %lld, attempt %d: "
                "dead-lettering to %s",
                rc, topic, partition, offset, m->attempt, c->dead_letter_topic);
            consumer_dead_letter(c, m, rc);
            break;
        case POL_SKIP:
            atomic_fetch_add_explicit(&c->n_skipped, 1, memory_order_relaxed);
            consumer_report_error(
                c, KAFFE_ERR_HANDLER,
                "message handler failed with value %d on %s [%d] at offset %lld, attempt %d: "
                "skipped",
                rc, topic, partition, offset, m->attempt);
            consumer_message_settle(c, m, PARTITION_ACK);
            break;
        default:
            consumer_message_settle(c, m, PARTITION_FAIL);
            consumer_report_error(
                c, KAFFE_ERR_HANDLER,
                "message handler failed with value %d on %s [%d] at offset %lld; stopping", rc,
                topic, partition, offset);
            consumer_fail(c, KAFFE_ERR_HANDLER);
            break;
    }
    consumer_message_drop(m, own_refs);
}

void consumer_failure_handler_failed(kaffe_consumer_t *c, kaffe_message_t *m, int rc) {
    int open = 0;
    if (atomic_compare_exchange_strong_explicit(&m->settled, &open, 1, memory_order_acq_rel,
                                                memory_order_relaxed)) {
        /* Async: the application must not ack a message it refused, so its
         * reference goes too (a late ack is refused as a duplicate). */
        consumer_failure_apply_policy(c, m, rc, true, c->async ? 2 : 1);
        return;
    }
    /* Async: the application acked it already, then the handler failed. */
    atomic_fetch_add_explicit(&c->n_failures, 1, memory_order_relaxed);
    atomic_store_explicit(&c->last_failure_value, rc, memory_order_relaxed);
    consumer_report_error(
        c, KAFFE_ERR_HANDLER,
        "message handler failed with value %d on %s [%d] at offset %lld after acking it%s", rc,
        m->topic, (int)m->partition, (long long)m->offset,
        m->route->on_error == POL_STOP ? "; stopping" : "");
    if (m->route->on_error == POL_STOP)
        consumer_fail(c, KAFFE_ERR_HANDLER);
    consumer_message_drop(m, 1);
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
    int64_t now = clock_now_ms();
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
                take = partition_id(ps[j]) == m->partition &&
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

int64_t consumer_failure_serve_delayed(kaffe_consumer_t *c) {
    kaffe_message_t **ms;
    size_t n;
    int64_t next = take_delayed(c, NULL, 0, false, false, &ms, &n);
    for (size_t i = 0; i < n; i++)
        redispatch(c, ms[i], false);
    free(ms);
    return next;
}

void consumer_failure_flush_delayed(kaffe_consumer_t *c, partition_t **ps, size_t n) {
    kaffe_message_t **ms;
    size_t count;
    take_delayed(c, ps, n, true, ps == NULL, &ms, &count);
    for (size_t i = 0; i < count; i++)
        redispatch(c, ms[i], true);
    free(ms);
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
    out->last_failure_value = atomic_load_explicit(&c->last_failure_value, memory_order_relaxed);
    return KAFFE_OK;
}
