/* Rebalances (poll thread, inside librdkafka's rebalance callback):
 * assign (a new generation per partition, stash and committed metadata
 * applied) and revoke (drain, commit, release). */

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "consumer/internal.h"

/* --- rebalance (poll thread) -------------------------------------------- */

static void assign_partitions(kaffe_consumer_t *c, rd_kafka_topic_partition_list_t *parts) {
    rd_kafka_topic_partition_list_t *committed = rd_kafka_topic_partition_list_copy(parts);
    rd_kafka_resp_err_t err = rd_kafka_committed(c->rk, committed, COMMITTED_TIMEOUT_MS);
    if (err)
        consumer_report_error(
            c, err,
            "reading committed offsets failed (%s): starting from the reset policy, "
            "acks in commit metadata are replayed",
            rd_kafka_err2str(err));
    for (int i = 0; i < committed->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &committed->elems[i];
        bool known = !err && !tp->err && tp->offset >= 0;
        if (consumer_commit_stash_apply(c, tp, known))
            known = true;
        const route_t *route = consumer_route_find(c, tp->topic);
        partition_params_t params = {
            .topic = tp->topic,
            .partition = tp->partition,
            .generation = ++c->next_generation,
            .committed_offset = known ? tp->offset : -1,
            .metadata = known ? tp->metadata : NULL,
            .metadata_len = known ? tp->metadata_size : 0,
            .window = c->window,
            .max_in_flight = route->max_in_flight,
            .max_in_flight_bytes = route->max_in_flight_bytes,
            .pool = route->pool,
            .lane_count = route->lanes,
            .salt = c->salt,
            .fixed_key_lanes = c->batch_handler != NULL,
        };
        if (!partition_table_add(c->table, &params)) {
            consumer_report_error(c, KAFFE_ERR_NOMEM, "out of memory assigning %s [%d]", tp->topic,
                                  (int)tp->partition);
            consumer_fail(c, KAFFE_ERR_NOMEM);
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

void consumer_rebalance_revoke_partitions(kaffe_consumer_t *c,
                                          rd_kafka_topic_partition_list_t *parts) {
    /* Batches being filled go to the workers first: their messages count as
     * in flight, which the drain below waits for. */
    consumer_poll_flush_batches(c);
    partition_t **ps = calloc((size_t)parts->cnt + 1, sizeof *ps);
    size_t n = 0;
    for (int i = 0; ps && i < parts->cnt; i++) {
        partition_t *p =
            partition_table_find(c->table, parts->elems[i].topic, parts->elems[i].partition);
        if (p) {
            consumer_dispatch_discard_parked(c, p);
            ps[n++] = p;
        }
    }
    if (!ps)
        return;
    /* Waiting retries and paused messages go back unhandled: the next owner
     * gets them again. */
    consumer_failure_flush_delayed(c, ps, n);
    int64_t deadline = clock_now_ms() + (c->drained ? 0 : c->drain_timeout_ms);
    for (;;) {
        bool busy = false;
        for (size_t i = 0; i < n && !busy; i++)
            busy = partition_in_flight(ps[i], NULL) > 0;
        if (!busy)
            break;
        if (clock_now_ms() >= deadline) {
            /* Their queued messages are dropped by the workers from now on. */
            atomic_fetch_add_explicit(&c->revoke_timeouts, 1, memory_order_relaxed);
            break;
        }
        clock_sleep_ms(1);
    }
    for (size_t i = 0; i < n; i++)
        partition_close_acks(ps[i]);
    consumer_failure_prune_released(c, ps, n);
    if (c->stashing)
        consumer_commit_stash_partitions(c, ps, n);
    consumer_commit_partitions(c, ps, n, true);
    for (size_t i = 0; i < n; i++) {
        /* librdkafka keeps an application pause across unassign and a later
         * assign of the same partition: a partition revoked while paused by
         * back-pressure would never be fetched again if it came back. */
        consumer_dispatch_pause_fetch(c, ps[i], false);
        if (c->rebalance_cb)
            c->rebalance_cb(c, 0, partition_topic(ps[i]), partition_id(ps[i]), c->rebalance_opaque);
        consumer_stats_retire(c, ps[i]);
        partition_table_remove(c->table, ps[i]);
    }
    free(ps);
}

void consumer_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
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
        /* An assignment that reaches a member leaving the group (stop's
         * rd_kafka_consumer_close: under the consumer protocol the
         * coordinator may still hand it the partitions of members that left
         * before it) is taken without state: nothing of it is consumed, and
         * librdkafka 2.12.1's rd_kafka_committed, called from inside the
         * close, can wait far past its timeout. The revoke that follows
         * finds no state for it and commits nothing. */
        if (!c->drained)
            assign_partitions(c, parts);
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, parts);
    } else {
        if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
            consumer_report_error(c, err, "rebalance failed: %s", rd_kafka_err2str(err));
        /* The rebalance goes on after the revoke (see consumer_commit_hold). */
        consumer_commit_hold(c, cooperative && !rd_kafka_assignment_lost(rk) ? 2 : 1);
        consumer_rebalance_revoke_partitions(c, parts);
        if (cooperative)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, NULL);
    }
    if (error) {
        consumer_report_error(c, rd_kafka_error_code(error), "rebalance: %s",
                              rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (aerr) {
        consumer_report_error(c, aerr, "rebalance: %s", rd_kafka_err2str(aerr));
    }
}
