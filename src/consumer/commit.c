/* Commits (poll thread only): each partition's watermark and the acked
 * offsets above it as metadata (within the member's metadata budget, which
 * a broker's refusal lowers), on the interval, on request, on revoke and at
 * stop; interval commits held while the group rebalances; the stash of a
 * retired client's uncommitted state. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/rdkafka_compat.h"
#include "conf/conf.h"
#include "consumer/internal.h"

/* --- commit metadata within the budget (poll thread) ------------------- */

/* The metadata of c->snap within the member's budget, into c->metadata_buf
 * ("" when the budget is 0 or nothing above the watermark is done). */
static size_t encode_metadata(kaffe_consumer_t *c) {
    c->metadata_buf[0] = '\0';
    if (c->metadata_budget == 0)
        return 0;
    return ack_metadata_encode(&c->snap, c->metadata_buf, c->metadata_budget, NULL);
}

/* The broker refused metadata as too large (OFFSET_METADATA_TOO_LARGE: its
 * offset.metadata.max.bytes is below the budget). refused_len: the longest
 * refused metadata (0 if unknown: librdkafka's commit callback does not
 * carry it; then the longest of the last request). The budget drops to half
 * of what was refused (none below METADATA_BUDGET_MIN) and stays so for the
 * member's lifetime; everything is committed again at once. The same
 * refusal told twice (librdkafka may) lowers the budget once. */
static void metadata_refused(kaffe_consumer_t *c, size_t refused_len) {
    if (refused_len == 0)
        refused_len = c->metadata_last_sent;
    size_t next = (refused_len + 1) / 2; /* with the NUL */
    if (next < METADATA_BUDGET_MIN)
        next = 0;
    if (next < c->metadata_budget) {
        c->metadata_budget = next;
        c->metadata_budget_lowered = true;
    }
    c->commit_force = true;
    c->commit_now = true;
}

/* Reads a commit's result (err, and the per-partition errors of list):
 * *refused when the broker refused metadata as too large, which lowers the
 * budget when it can still be lowered. Returns the error left to report
 * (RD_KAFKA_RESP_ERR_NO_ERROR: none). */
static rd_kafka_resp_err_t read_commit_result(kaffe_consumer_t *c, rd_kafka_resp_err_t err,
                                              const rd_kafka_topic_partition_list_t *list,
                                              bool *refused) {
    const rd_kafka_resp_err_t too_large = RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE;
    rd_kafka_resp_err_t other = err == too_large ? RD_KAFKA_RESP_ERR_NO_ERROR : err;
    size_t refused_len = 0;
    *refused = err == too_large;
    for (int i = 0; list && i < list->cnt; i++) {
        rd_kafka_resp_err_t e = list->elems[i].err;
        if (e == too_large) {
            *refused = true;
            if (list->elems[i].metadata_size > refused_len)
                refused_len = list->elems[i].metadata_size;
        } else if (e && !other) {
            other = e;
        }
    }
    if (!*refused)
        return other;
    if (c->metadata_budget == 0) /* refused without metadata: an error after all */
        return other ? other : too_large;
    metadata_refused(c, refused_len);
    return other;
}

/* A commit went through: if the budget was lowered, say once where it
 * settled. */
static void commit_succeeded(kaffe_consumer_t *c) {
    if (!c->metadata_budget_lowered)
        return;
    c->metadata_budget_lowered = false;
    conf_log(c->conf, KAFFE_LOG_WARNING, "consumer",
             "the broker refused commit metadata as too large (its offset.metadata.max.bytes is "
             "below commit_metadata_max_bytes=%zu): this member now commits at most %zu bytes "
             "of metadata%s",
             c->metadata_budget_configured, c->metadata_budget,
             c->metadata_budget == 0 ? " (none: acks above a partition's watermark are handled "
                                       "again after a restart or rebalance)"
                                     : "");
}

/* A commit failed: the next commit covers every partition again, the
 * failure is reported, and interval commits wait for the rebalance the
 * group's errors announce. */
static void commit_failed(kaffe_consumer_t *c, rd_kafka_resp_err_t err, bool retrying) {
    c->commit_force = true;
    consumer_report_error(c, err, "commit failed: %s%s", rd_kafka_err2str(err),
                          retrying ? " (retrying)" : "");
    if (err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
        err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION || err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID)
        consumer_commit_hold(c, 1);
}

/* --- commits (poll thread) ---------------------------------------------- */

/* The result of an async commit (poll thread: served from the consumer
 * queue by the poll loop). */
static void offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets, void *opaque) {
    (void)rk;
    kaffe_consumer_t *c = opaque;
    if (c->client->commits_in_flight > 0)
        c->client->commits_in_flight--;
    bool refused; /* then committed again at once, unless it is an error */
    err = read_commit_result(c, err, offsets, &refused);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        commit_failed(c, err, false);
    else if (!err && !refused)
        commit_succeeded(c);
}

/* Kafka's error 113, STALE_MEMBER_EPOCH: librdkafka >= 2.4 names it
 * RD_KAFKA_RESP_ERR_STALE_MEMBER_EPOCH; 2.0.2 has no name for it (and never
 * gets it: only the consumer protocol's commits carry a member epoch). */
#define KAFKA_ERR_STALE_MEMBER_EPOCH 113

/* Errors of a coordinator that moved, is loading or did not answer in time:
 * the same commit can succeed a moment later (librdkafka looks the
 * coordinator up again meanwhile). So can one refused with
 * STALE_MEMBER_EPOCH (KIP-848's consumer protocol): librdkafka sends its
 * next heartbeat at once on that error and a commit sent again carries the
 * epoch it learns, and the partitions are still this member's (a retry
 * runs before a revoke callback returns, and the coordinator moves a
 * partition only after the member acknowledged revoking it). Not the
 * classic protocol's group errors (a rebalance, a stale generation): those
 * the same commit never gets past. */
static bool commit_error_transient(rd_kafka_resp_err_t err) {
    if ((int)err == KAFKA_ERR_STALE_MEMBER_EPOCH) /* not a case: -Wswitch on 2.0.2 */
        return true;
    switch (err) {
        case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
        case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
        case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
        case RD_KAFKA_RESP_ERR__TIMED_OUT:
        case RD_KAFKA_RESP_ERR__TRANSPORT:
        case RD_KAFKA_RESP_ERR__WAIT_COORD:
            return true;
        default:
            return false;
    }
}

/* One commit request for ps (every partition of the table when whole);
 * *refused when the broker refused metadata (the budget is lower now).
 * Returns the commit's error (for an async commit only a failure to send
 * it). A failure is reported (as retried when retrying and transient). */
static rd_kafka_resp_err_t commit_once(kaffe_consumer_t *c, partition_t **ps, size_t n, bool sync,
                                       bool whole, bool retrying, bool *refused) {
    *refused = false;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)n);
    size_t longest = 0;
    for (size_t i = 0; i < n; i++) {
        if (!partition_snapshot(ps[i], &c->snap))
            continue;
        size_t len = encode_metadata(c);
        /* A sync commit sends every partition it covers: the result of an
         * earlier async commit may still be on its way, and lost if it
         * failed (a stop or revoke serves no callback for it). */
        if (!sync && !c->commit_force &&
            !partition_commit_changed(ps[i], c->snap.watermark, c->metadata_buf))
            continue;
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_add(list, partition_topic(ps[i]), partition_id(ps[i]));
        tp->offset = c->snap.watermark;
        if (len > 0) {
            tp->metadata = malloc(len);
            if (tp->metadata) {
                memcpy(tp->metadata, c->metadata_buf, len);
                tp->metadata_size = len;
            }
            longest = len > longest ? len : longest;
        }
        partition_commit_done(ps[i], c->snap.watermark, c->metadata_buf);
    }
    /* After a failure every partition is committed again: only a commit of
     * the whole table (not a revoke's few) settles that. */
    if (whole)
        c->commit_force = false;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (list->cnt > 0) {
        c->metadata_last_sent = longest;
        if (sync) {
            err = read_commit_result(c, rd_kafka_commit(c->rk, list, 0), list, refused);
            if (err)
                commit_failed(c, err, retrying && commit_error_transient(err));
            else if (!*refused)
                commit_succeeded(c);
        } else {
            /* The result comes to offset_commit_cb through the client's
             * commit queue (consumer_commit_in_flight serves it). Only async
             * commits have a callback: librdkafka would serve a global one
             * for sync commits too, a second report of the same failure. */
            err = rd_kafka_commit_queue(c->rk, list, c->client->commit_queue, offset_commit_cb, c);
            if (err) {
                commit_failed(c, err, false);
            } else {
                c->client->commits_in_flight++;
                c->client->commit_sent_ms = clock_now_ms();
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(list);
    return err;
}

/* Waits up to COMMIT_AWAIT_MAX_MS for the results of the async commits
 * under way: one that librdkafka retries could land after a sync commit and
 * take the group's offset back. */
static void await_async_commits(kaffe_consumer_t *c) {
    int64_t deadline = clock_now_ms() + COMMIT_AWAIT_MAX_MS;
    while (c->client->commits_in_flight > 0 && clock_now_ms() < deadline)
        rd_kafka_queue_poll_callback(c->client->commit_queue, 10);
}

static kaffe_status_t commit_set(kaffe_consumer_t *c, partition_t **ps, size_t n, bool sync,
                                 bool whole) {
    if (!c->client->commit_queue) /* none could be made: no async commits */
        sync = true;
    if (sync)
        await_async_commits(c);
    bool refused;
    int64_t deadline = clock_now_ms() + COMMIT_RETRY_MAX_MS;
    int backoff_ms = COMMIT_RETRY_BACKOFF_MS;
    rd_kafka_resp_err_t err;
    for (;;) {
        bool retrying = sync && clock_now_ms() + backoff_ms < deadline;
        err = commit_once(c, ps, n, sync, whole, retrying, &refused);
        /* A sync commit refused for its metadata is repeated at once with the
         * lower budget, until it goes through (at the latest without metadata). */
        for (size_t budget = SIZE_MAX; refused && !err && c->metadata_budget < budget;) {
            budget = c->metadata_budget;
            err = commit_once(c, ps, n, sync, whole, retrying, &refused);
        }
        /* A sync commit (revoke, stop, kaffe_consumer_commit) has no later
         * interval commit to make up for it: a transient error is retried,
         * with backoff, for up to COMMIT_RETRY_MAX_MS. */
        if (!retrying || !commit_error_transient(err))
            break;
        clock_sleep_ms(backoff_ms);
        backoff_ms = backoff_ms * 2 > COMMIT_RETRY_BACKOFF_MAX_MS ? COMMIT_RETRY_BACKOFF_MAX_MS
                                                                  : backoff_ms * 2;
    }
    if (refused && !err) /* refused even without metadata */
        return (kaffe_status_t)RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE;
    return status_from_rdkafka(err);
}

kaffe_status_t consumer_commit_partitions(kaffe_consumer_t *c, partition_t **ps, size_t n,
                                          bool sync) {
    return commit_set(c, ps, n, sync, false);
}

kaffe_status_t consumer_commit_all(kaffe_consumer_t *c, bool sync) {
    size_t n;
    partition_t **ps = partition_table_collect(c->table, &n);
    kaffe_status_t st = commit_set(c, ps, n, sync, true);
    free(ps);
    c->last_commit_ms = clock_now_ms();
    return st;
}

void consumer_commit_hold(kaffe_consumer_t *c, int assigns) {
    if (!rdkafka_commit_during_join_drops_generation() || c->group_protocol_consumer)
        return;
    if (c->commit_hold_assigns == 0)
        c->commit_holds++;
    if (c->commit_hold_assigns < assigns)
        c->commit_hold_assigns = assigns;
    c->commit_hold_until_ms = clock_now_ms() + COMMIT_HOLD_MAX_MS;
}

bool consumer_commit_held(kaffe_consumer_t *c, int64_t now) {
    if (c->commit_hold_assigns > 0 && now >= c->commit_hold_until_ms)
        c->commit_hold_assigns = 0;
    return c->commit_hold_assigns > 0;
}

bool consumer_commit_in_flight(kaffe_consumer_t *c, int64_t now) {
    client_t *client = c->client;
    if (client->commits_in_flight == 0)
        return false;
    rd_kafka_queue_poll_callback(client->commit_queue, 0);
    if (client->commits_in_flight > 0 && now - client->commit_sent_ms >= COMMIT_RESULT_MAX_MS) {
        /* No result: commit everything again, once more waiting for it. */
        conf_log(c->conf, KAFFE_LOG_WARNING, "consumer",
                 "no result for a commit within %d ms: committing again", COMMIT_RESULT_MAX_MS);
        client->commits_in_flight = 0;
        c->commit_force = true;
    }
    return client->commits_in_flight > 0;
}

void consumer_commit_serve_requests(kaffe_consumer_t *c) {
    /* acquire: pairs with the increment in kaffe_consumer_commit. */
    uint64_t requested = atomic_load_explicit(&c->commit_requested, memory_order_acquire);
    if (requested == c->commits_served)
        return;
    kaffe_status_t st = consumer_commit_all(c, true);
    c->commits_served = requested;
    pthread_mutex_lock(&c->lock);
    c->commit_completed = requested;
    c->commit_status = st;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* --- the stash of a retired client (poll thread) ------------------------ */

void consumer_commit_stash_partitions(kaffe_consumer_t *c, partition_t **ps, size_t n) {
    if (!c->stash)
        c->stash = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        if (!partition_snapshot(ps[i], &c->snap))
            continue;
        size_t len = encode_metadata(c);
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
            memcpy(tp->metadata, c->metadata_buf, len);
            tp->metadata_size = len;
        }
    }
}

bool consumer_commit_stash_apply(kaffe_consumer_t *c, rd_kafka_topic_partition_t *tp, bool known) {
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
