/* Dispatch (poll thread only): a polled message is admitted to its
 * partition (ack tracker, back-pressure) and pushed to its lane or the
 * pool; partitions are paused and resumed as their in-flight counts move. */

#include <stdlib.h>

#include "common/clock.h"
#include "consumer/internal.h"

/* --- dispatch (poll thread) ----------------------------------------------- */

void consumer_dispatch_pause_fetch(kaffe_consumer_t *c, partition_t *p, bool pause) {
    if (partition_fetch_paused(p) == pause)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, partition_topic(p), partition_id(p));
    rd_kafka_resp_err_t err =
        pause ? rd_kafka_pause_partitions(c->rk, l) : rd_kafka_resume_partitions(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err)
        consumer_report_error(c, err, "%s %s [%d]: %s", pause ? "pausing" : "resuming",
                              partition_topic(p), (int)partition_id(p), rd_kafka_err2str(err));
    else
        partition_set_fetch_paused(p, pause);
}

void consumer_dispatch_push(kaffe_consumer_t *c, pool_batch_t *batch, partition_t *p,
                            kaffe_message_t *m) {
    pool_lane_t *lane = partition_lane(p, m->rkm->key, m->rkm->key_len);
    m->lane = lane;
    if (m->route->pool != c->pool)
        batch = NULL; /* a pool of its own: batch wakes the shared pool's workers only */
    if (c->batch_handler && batch)
        consumer_batch_add(c, batch, p, m);
    else if (batch && lane)
        pool_batch_lane_push(batch, lane, &m->item);
    else if (batch)
        pool_batch_push(batch, &m->item);
    else if (lane)
        pool_lane_push(lane, &m->item);
    else
        pool_push(m->route->pool, &m->item);
}

/* Handles an admit result for m (not parked). batch: as for consumer_dispatch_push. */
static void place(kaffe_consumer_t *c, pool_batch_t *batch, partition_t *p, kaffe_message_t *m,
                  partition_admit_result_t r) {
    switch (r) {
        case PARTITION_DISPATCH:
            consumer_dispatch_push(c, batch, p, m);
            break;
        case PARTITION_SKIP:
        case PARTITION_DROP:
            consumer_message_discard(c, m);
            break;
        case PARTITION_PARK:
            if (!partition_park(p, m, m->offset, m->bytes)) {
                consumer_report_error(c, KAFFE_ERR_NOMEM, "out of memory parking a message");
                consumer_message_discard(c, m);
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
    c->cache_route = consumer_route_find(c, rd_kafka_topic_name(rkm->rkt));
    return p;
}

void consumer_dispatch(kaffe_consumer_t *c, pool_batch_t *batch, rd_kafka_message_t *rkm,
                       uint64_t polled_ns) {
    partition_t *p = find_partition(c, rkm);
    if (!p) { /* not (or no longer) assigned: librdkafka will not commit it either */
        rd_kafka_message_destroy(rkm);
        return;
    }
    kaffe_message_t *m = consumer_message_new(c, rkm, partition_generation(p), polled_ns);
    if (m)
        m->route = c->cache_route;
    if (!m) {
        rd_kafka_message_destroy(rkm);
        consumer_report_error(c, KAFFE_ERR_NOMEM, "out of memory for a message");
        consumer_fail(c, KAFFE_ERR_NOMEM);
        return;
    }
    bool pause_now;
    partition_admit_result_t r = partition_admit(p, rkm->offset, m->bytes, false, &pause_now);
    place(c, batch, p, m, r);
    if (pause_now || (r == PARTITION_PARK && partition_park_full(p)))
        consumer_dispatch_pause_fetch(c, p, true);
    if (partition_is_paused(p))
        c->paused_count++; /* makes the poll loop run resume passes */
}

void consumer_dispatch_discard_parked(kaffe_consumer_t *c, partition_t *p) {
    kaffe_message_t *m;
    while ((m = partition_parked_peek(p, NULL, NULL))) {
        partition_parked_pop(p);
        consumer_message_discard(c, m);
    }
}

void consumer_dispatch_resume_pass(kaffe_consumer_t *c) {
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
            if (c->batch_handler)
                consumer_batch_flush(c, &batch, false, clock_now_ms());
            pool_batch_flush(&batch);
        }
        /* Fetch again once the park list is half empty: what is parked and
         * in flight keeps the workers busy while the fetch restarts. */
        if (partition_fetch_paused(p) && partition_park_below_half(p))
            consumer_dispatch_pause_fetch(c, p, false);
        if (partition_is_paused(p) || partition_fetch_paused(p))
            still_paused++;
    }
    free(ps);
    c->paused_count = still_paused;
}
