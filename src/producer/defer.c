/* Deferred destruction of delivery reports (producer_defer_*).
 *
 * Owns: the deferred stack, direct, spare_nodes and defer_max_ms, and the
 * delivery thread's defer_state_t.
 * Threads: the delivery thread defers events (producer_defer_or_destroy)
 * and keeps rule 1 (producer_defer_poll_timeout); every produce call, flush
 * and destroy take the stack (producer_defer_drain/take) on their own
 * thread.
 *
 * Why: destroying a DR event frees its messages (one librdkafka allocation
 * each, made by the producing thread) and takes librdkafka's message-count
 * lock once per message, which the producing thread takes too. Done on the
 * delivery thread, every message is freed on another thread than the one
 * that allocated it (glibc's arena lock, cache lines moving between cores).
 * So the delivery thread runs the callbacks and then defers the event: it
 * pushes it on the "deferred" stack, and the next produce call on any
 * producing thread destroys what is there before it queues its own message.
 * Callbacks still run only on the delivery thread; only the free moves.
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
#include <stdlib.h>

#include "common/clock.h"
#include "common/tsan.h"
#include "producer/internal.h"

/* The stacks are liburcu's cds_lfs (lfstack.h): the delivery thread pushes
 * one event at a time and every taker takes the whole stack, which is
 * exactly cds_lfs_push and __cds_lfs_pop_all (safe against concurrent
 * pushes and other pop_alls without a lock, since nothing pops one node).
 * liburcu's atomics are inline assembly in an uninstrumented library, so
 * each hand-off of a node is also stated for TSan (src/common/tsan.h):
 * TSAN_RELEASE(node) before a push, TSAN_ACQUIRE(node) after a take. */

static deferred_event_t *event_of(struct cds_lfs_node *n) {
    return caa_container_of(n, deferred_event_t, node);
}

/* Destroys the events of a list taken from the deferred stack and gives its
 * nodes back to the delivery thread. Any thread. */
static void destroy_taken(kaffe_producer_t *p, struct cds_lfs_head *taken) {
    /* Not cds_lfs_for_each_safe: it reads a node's link before the body
     * could state the node's hand-off to TSan. */
    for (struct cds_lfs_node *n = &taken->node, *next; n; n = next) {
        deferred_event_t *d = event_of(n);
        TSAN_ACQUIRE(d); /* pairs with the TSAN_RELEASE in producer_defer_or_destroy */
        next = n->next;
        /* Frees the event's messages: only now does rd_kafka_flush()
         * (waiting for the message count to reach zero) see them as done,
         * after their callbacks returned. */
        rd_kafka_event_destroy(d->ev);
        /* Our reads of d happen before the delivery thread reuses it: the
         * push's full barrier, its pop_all's (node_get). */
        TSAN_RELEASE(d);
        cds_lfs_push(&p->spare_nodes, n);
    }
}

void producer_defer_take(kaffe_producer_t *p) {
    /* A full-barrier exchange: rule 3 (pairs with the push and the seq_cst
     * load of direct in producer_defer_or_destroy()). */
    struct cds_lfs_head *taken = __cds_lfs_pop_all(&p->deferred);
    if (taken)
        destroy_taken(p, taken);
}

static deferred_event_t *node_get(kaffe_producer_t *p, defer_state_t *ds) {
    if (!ds->free_nodes) {
        struct cds_lfs_head *spares = __cds_lfs_pop_all(&p->spare_nodes);
        ds->free_nodes = spares ? &spares->node : NULL;
    }
    struct cds_lfs_node *n = ds->free_nodes;
    if (n) {
        deferred_event_t *d = event_of(n);
        TSAN_ACQUIRE(d); /* pairs with the TSAN_RELEASE in destroy_taken */
        ds->free_nodes = n->next;
        return d;
    }
    deferred_event_t *d = malloc(sizeof *d); /* NULL: the event is destroyed at once */
    if (d)
        cds_lfs_node_init(&d->node);
    return d;
}

void producer_defer_or_destroy(kaffe_producer_t *p, defer_state_t *ds, rd_kafka_event_t *ev,
                               size_t messages, size_t bytes) {
    /* Only this thread pushes: an empty stack means everything counted has
     * been taken. A stale non-empty answer only overestimates. */
    if (cds_lfs_empty(&p->deferred))
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
    TSAN_RELEASE(d); /* the destroyer reads d->ev (destroy_taken) */
    /* Rule 3's push: a full-barrier cmpxchg. Returns whether the stack held
     * something already. */
    if (!cds_lfs_push(&p->deferred, &d->node)) {
        ds->messages = ds->bytes = 0;
        ds->oldest_ms = clock_now_ms();
    }
    ds->messages += messages;
    ds->bytes += bytes;
    /* Rule 3: a flush that started before our push may have taken the stack
     * before it; then we see its increment here and destroy the event. */
    if (atomic_load_explicit(&p->direct, memory_order_seq_cst) > 0)
        producer_defer_take(p);
}

int producer_defer_poll_timeout(kaffe_producer_t *p, const defer_state_t *ds, int max_ms) {
    /* Only the delivery thread pushes, so an empty stack means nothing of
     * ours waits. */
    if (cds_lfs_empty(&p->deferred))
        return max_ms;
    int64_t age = clock_now_ms() - ds->oldest_ms;
    int limit = atomic_load_explicit(&p->defer_max_ms, memory_order_relaxed);
    if (age >= limit) {
        producer_defer_take(p);
        return max_ms;
    }
    return limit - age < max_ms ? (int)(limit - age) : max_ms;
}

static void free_nodes(struct cds_lfs_node *n) {
    for (struct cds_lfs_node *next; n; n = next) {
        next = n->next;
        free(event_of(n));
    }
}

void producer_defer_state_free(defer_state_t *ds) {
    free_nodes(ds->free_nodes);
    ds->free_nodes = NULL;
}

void producer_defer_spares_free(kaffe_producer_t *p) {
    struct cds_lfs_head *spares = __cds_lfs_pop_all(&p->spare_nodes);
    free_nodes(spares ? &spares->node : NULL);
}
