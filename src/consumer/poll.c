/* The poll thread: polls, dispatches, serves delays, commits and
 * requests, and runs the stop sequence (drain, final commit, close). */

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/rdkafka_compat.h"
#include "common/thread_name.h"
#include "consumer/internal.h"

/* --- the poll thread ---------------------------------------------------- */

static int64_t total_in_flight(kaffe_consumer_t *c) {
    size_t n;
    partition_t **ps = partition_table_collect(c->table, &n);
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += partition_in_flight(ps[i], NULL);
        consumer_dispatch_discard_parked(c, ps[i]);
    }
    free(ps);
    return total;
}

/* How long stop waits for a joined member's first assignment (below). */
#define FIRST_ASSIGNMENT_WAIT_MS 10000

bool consumer_poll_await_first_assignment(kaffe_consumer_t *c) {
    if (!rdkafka_close_before_first_assignment_aborts())
        return true;
    int64_t deadline = clock_now_ms() + FIRST_ASSIGNMENT_WAIT_MS;
    for (bool waited = false;; waited = true) {
        /* The consumer protocol has no client-side assignor state (and a
         * member may never get an assignment callback: one whose first
         * target assignment is empty gets none). */
        const char *protocol = rd_kafka_rebalance_protocol(c->rk);
        bool exposed = !c->group_protocol_consumer && protocol &&
                       strcmp(protocol, "COOPERATIVE") == 0 && c->assigned_rk != c->rk;
        if (!exposed) {
            c->waited_for_first_assignment = waited;
            return true;
        }
        if (clock_now_ms() >= deadline)
            return false;
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(c->rk, 10);
        if (rkm)
            rd_kafka_message_destroy(rkm);
    }
}

void consumer_poll_stop_sequence(kaffe_consumer_t *c) {
    atomic_store_explicit(&c->state, ST_STOPPING, memory_order_release);
    consumer_poll_flush_batches(c); /* their messages count as in flight */
    /* Nothing waits for a retry or a resume any more: released unhandled
     * (delivered again after a restart). */
    consumer_failure_flush_delayed(c, NULL, 0);
    /* Drain: parked messages are dropped; delivered ones get up to
     * drain_timeout_ms to be acked. */
    int64_t deadline = clock_now_ms() + c->drain_timeout_ms;
    while (total_in_flight(c) > 0 && clock_now_ms() < deadline) {
        consumer_commit_serve_requests(c);
        clock_sleep_ms(1);
    }
    /* release: pairs with the workers' acquire; what is still queued is
     * released without calling the handler. */
    atomic_store_explicit(&c->abandon, 1, memory_order_release);
    c->drained = true;
    consumer_commit_all(c, true);
    if (!consumer_poll_await_first_assignment(c)) {
        c->leak_rk = true;
        consumer_report_error(c, RD_KAFKA_RESP_ERR__TIMED_OUT,
                              "leaving the group: no first assignment within %d ms; the client is "
                              "left open (closing it would abort: %s)",
                              FIRST_ASSIGNMENT_WAIT_MS,
                              rdkafka_bug_str(RDKAFKA_BUG_CLOSE_BEFORE_FIRST_ASSIGNMENT_ABORTS));
    }
    /* Leaving the group revokes everything through consumer_rebalance_cb (which
     * closes acks, commits what changed, and removes the partitions). */
    rd_kafka_resp_err_t err =
        c->leak_rk ? RD_KAFKA_RESP_ERR_NO_ERROR : rd_kafka_consumer_close(c->rk);
    if (err)
        consumer_report_error(c, err, "leaving the group: %s", rd_kafka_err2str(err));
    /* release: acks from now on answer KAFFE_ERR_STOPPED. */
    atomic_store_explicit(&c->acks_closed, 1, memory_order_release);
    size_t n;
    partition_t **ps = partition_table_collect(c->table, &n);
    for (size_t i = 0; i < n; i++) {
        consumer_dispatch_discard_parked(c, ps[i]);
        partition_close_acks(ps[i]);
        consumer_stats_retire(c, ps[i]);
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
            consumer_dispatch(c, &batch, rkm, polled_ns);
            continue;
        }
        if (rkm->err == RD_KAFKA_RESP_ERR__FATAL && consumer_client_check_fatal(c)) {
            rd_kafka_message_destroy(rkm); /* reported; restart or stop follows */
            continue;
        }
        if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            consumer_report_error(c, rkm->err, "%s%s%s",
                                  rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : "",
                                  rkm->rkt ? ": " : "", rd_kafka_message_errstr(rkm));
        rd_kafka_message_destroy(rkm);
    }
    if (c->batch_handler)
        consumer_batch_flush(c, &batch, false, (int64_t)(polled_ns / 1000000u));
    /* Before anything that may block or wait for the workers. */
    pool_batch_flush(&batch);
}

void consumer_poll_flush_batches(kaffe_consumer_t *c) {
    if (c->open_batch_n == 0)
        return;
    pool_batch_t batch;
    pool_batch_init(&batch, c->pool);
    consumer_batch_flush(c, &batch, true, clock_now_ms());
    pool_batch_flush(&batch);
}

void *consumer_poll_main(void *arg) {
    kaffe_consumer_t *c = arg;
    common_set_thread_name("kaffe-poll");
    consumer_thread_enter(c, CONSUMER_THREAD_POLL);
    c->last_commit_ms = clock_now_ms();
    /* The consumer group queue rd_kafka_consumer_poll serves (rebalances,
     * errors and commit results are served inside the batch call alike). */
    rd_kafka_queue_t *queue = rd_kafka_queue_get_consumer(c->rk);
    rd_kafka_message_t *rkms[POLL_BATCH];
    /* acquire: pairs with request_stop / consumer_fail. */
    while (!atomic_load_explicit(&c->stop_requested, memory_order_acquire)) {
        int timeout = c->paused_count ? PAUSED_POLL_MS : POLL_MS;
        if (atomic_load_explicit(&c->delayed_count, memory_order_relaxed) > 0) {
            /* Serve retries close to their due time, and notice resumes and
             * newly added retries within a few ms. */
            int64_t next = consumer_failure_serve_delayed(c) - clock_now_ms();
            timeout = next < 0 ? 0 : next < PAUSED_POLL_MS ? (int)next : PAUSED_POLL_MS;
        }
        if (c->open_batch_n > 0) {
            /* Batches waiting for batch_max_wait_ms: close the due ones. */
            pool_batch_t batch;
            pool_batch_init(&batch, c->pool);
            int64_t next = consumer_batch_flush(c, &batch, false, clock_now_ms());
            pool_batch_flush(&batch);
            if (next < timeout)
                timeout = (int)next;
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
        uint64_t polled_ns = clock_now_ns();
        if (n > 0)
            handle_polled(c, rkms, n, polled_ns);
        int64_t now = (int64_t)(polled_ns / 1000000u);
        if (c->paused_count && now != c->last_resume_ms) {
            c->last_resume_ms = now;
            consumer_dispatch_resume_pass(c);
        }
        consumer_commit_serve_requests(c);
        /* The results of async commits are served as they come (a refusal
         * of the metadata asks for a commit at once). */
        bool commit_under_way = consumer_commit_in_flight(c, now);
        if ((c->commit_now || now - c->last_commit_ms >= c->commit_interval_ms) &&
            !commit_under_way && !consumer_commit_held(c, now)) {
            c->commit_now = false;
            consumer_commit_all(c, false);
        }
        /* Tests only (testing.c): one relaxed load of a flag nothing else
         * writes, so it costs the product a plain read per loop. */
        if (atomic_load_explicit(&c->test_fatal, memory_order_relaxed) != 0)
            consumer_testing_raise_fatal(c);
        consumer_client_check_fatal(c);
        if (c->fatal_pending) {
            /* The queue belongs to the client being replaced, which
             * consumer_client_reap_retired may destroy: let go of it first. */
            if (queue)
                rd_kafka_queue_destroy(queue);
            consumer_client_restart(c);
            queue = rd_kafka_queue_get_consumer(c->rk);
        }
        if (c->retired_n)
            consumer_client_reap_retired(c);
    }
    if (queue)
        rd_kafka_queue_destroy(queue);
    consumer_poll_stop_sequence(c);
    return NULL;
}
