/* Commits (poll thread only): each partition's watermark and the acked
 * offsets above it as metadata, on the interval, on request, on revoke and
 * at stop; interval commits held while the group rebalances; the stash of a
 * retired client's uncommitted state. */

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "consumer/internal.h"

/* --- commits (poll thread) ---------------------------------------------- */

kaffe_status_t consumer_commit_partitions(kaffe_consumer_t *c, partition_t **ps, size_t n,
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
            st = status_from_rdkafka(err);
            c->commit_force = true;
            consumer_report_error(c, err, "commit failed: %s", rd_kafka_err2str(err));
        }
    }
    rd_kafka_topic_partition_list_destroy(list);
    return st;
}

kaffe_status_t consumer_commit_all(kaffe_consumer_t *c, bool sync) {
    size_t n;
    partition_t **ps = partition_table_collect(c->table, &n);
    kaffe_status_t st = consumer_commit_partitions(c, ps, n, sync);
    free(ps);
    c->last_commit_ms = clock_now_ms();
    return st;
}

void consumer_commit_hold(kaffe_consumer_t *c, int assigns) {
    if (c->commit_hold_assigns < assigns)
        c->commit_hold_assigns = assigns;
    c->commit_hold_until_ms = clock_now_ms() + COMMIT_HOLD_MAX_MS;
}

bool consumer_commit_held(kaffe_consumer_t *c, int64_t now) {
    if (c->commit_hold_assigns > 0 && now >= c->commit_hold_until_ms)
        c->commit_hold_assigns = 0;
    return c->commit_hold_assigns > 0;
}

void consumer_commit_offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                      rd_kafka_topic_partition_list_t *offsets, void *opaque) {
    (void)rk;
    kaffe_consumer_t *c = opaque;
    for (int i = 0; !err && offsets && i < offsets->cnt; i++)
        err = offsets->elems[i].err;
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        c->commit_force = true;
        consumer_report_error(c, err, "commit failed: %s", rd_kafka_err2str(err));
    }
    if (err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
        err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION || err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID)
        consumer_commit_hold(c, 1);
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
