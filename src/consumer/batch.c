/* Batch handlers: the poll thread gathers the admitted messages of each lane
 * into a batch (a chain through kaffe_message_t.batch_next, pushed as one
 * pool item: its first message) until batch_max_messages, batch_max_bytes or
 * batch_max_wait_ms closes it; a worker hands the chain to the batch handler
 * and settles each message by its own outcome or by the handler's return.
 *
 * A batch is a dispatch unit, not an ack unit: each message keeps its own
 * references, settle flag and tracker offset, exactly as a single message.
 * A failed message takes the failure path of a nacked one (from_worker
 * false: the lane is not held; a retry goes to the end of its lane). */

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "consumer/internal.h"

/* A batch being filled (poll thread). key: the lane, or the partition when
 * unordered (lane NULL). */
struct open_batch {
    const void *key;
    pool_lane_t *lane;
    kaffe_message_t *head, *tail;
    size_t n, bytes;
    int64_t opened_ms;
};

/* --- filling (poll thread) ---------------------------------------------- */

static void push_batch(kaffe_consumer_t *c, pool_batch_t *pb, struct open_batch *ob) {
    (void)c;
    if (ob->lane)
        pool_batch_lane_push(pb, ob->lane, &ob->head->item);
    else
        pool_batch_push(pb, &ob->head->item);
}

/* Pushes open batch i and takes it off the list (the last one moves in). */
static void close_batch(kaffe_consumer_t *c, pool_batch_t *pb, size_t i) {
    push_batch(c, pb, &c->open_batches[i]);
    c->open_batches[i] = c->open_batches[--c->open_batch_n];
}

/* The open batch for key, opened now if there is none; NULL on OOM. */
static struct open_batch *open_batch_for(kaffe_consumer_t *c, const void *key, pool_lane_t *lane) {
    /* From the end: the batch last added to is the likeliest. */
    for (size_t i = c->open_batch_n; i-- > 0;)
        if (c->open_batches[i].key == key)
            return &c->open_batches[i];
    if (c->open_batch_n == c->open_batch_cap) {
        size_t cap = c->open_batch_cap ? c->open_batch_cap * 2 : 16;
        struct open_batch *grown = realloc(c->open_batches, cap * sizeof *grown);
        if (!grown)
            return NULL;
        c->open_batches = grown;
        c->open_batch_cap = cap;
    }
    struct open_batch *ob = &c->open_batches[c->open_batch_n++];
    *ob = (struct open_batch){.key = key, .lane = lane, .opened_ms = clock_now_ms()};
    return ob;
}

void consumer_batch_add(kaffe_consumer_t *c, pool_batch_t *pb, partition_t *p, kaffe_message_t *m) {
    const void *key = m->lane ? (const void *)m->lane : (const void *)p;
    struct open_batch *ob = open_batch_for(c, key, m->lane);
    if (!ob) { /* out of memory: a batch of one */
        m->batch_next = NULL;
        struct open_batch alone = {.key = key, .lane = m->lane, .head = m, .tail = m, .n = 1};
        push_batch(c, pb, &alone);
        return;
    }
    if (ob->n > 0 && ob->bytes + m->bytes > c->batch_max_bytes) {
        /* m would overflow it: it goes as it is, m opens the next one. */
        close_batch(c, pb, (size_t)(ob - c->open_batches));
        ob = open_batch_for(c, key, m->lane);
        if (!ob) {
            struct open_batch alone = {.key = key, .lane = m->lane, .head = m, .tail = m, .n = 1};
            push_batch(c, pb, &alone);
            return;
        }
    }
    m->batch_next = NULL;
    if (ob->tail)
        ob->tail->batch_next = m;
    else
        ob->head = m;
    ob->tail = m;
    ob->n++;
    ob->bytes += m->bytes;
    if (ob->n >= c->batch_max_messages || ob->bytes >= c->batch_max_bytes)
        close_batch(c, pb, (size_t)(ob - c->open_batches));
}

int64_t consumer_batch_flush(kaffe_consumer_t *c, pool_batch_t *pb, bool all, int64_t now) {
    int64_t next = INT64_MAX;
    all = all || c->batch_max_wait_ms == 0;
    for (size_t i = 0; i < c->open_batch_n;) {
        int64_t due = c->open_batches[i].opened_ms + c->batch_max_wait_ms;
        if (all || now >= due) {
            close_batch(c, pb, i); /* the last one moved to i */
            continue;
        }
        if (due - now < next)
            next = due - now;
        i++;
    }
    return next;
}

/* --- running (workers) ---------------------------------------------------- */

enum { OUTCOME_OPEN = 0, OUTCOME_SETTLED = 1 };

struct kaffe_batch_s {
    kaffe_consumer_t *consumer;
    kaffe_message_t **msgs;
    unsigned char *outcome; /* per message: OUTCOME_*; the handler's thread only */
    size_t n;
};

/* Acks m (the caller won nothing yet). */
static kaffe_status_t ack_one(kaffe_consumer_t *c, kaffe_message_t *m) {
    if (c->async) /* claims, settles, drops the application's reference */
        return kaffe_consumer_ack(c, m);
    int open = 0;
    if (!atomic_compare_exchange_strong_explicit(&m->settled, &open, 1, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return KAFFE_ERR_ACK_DUPLICATE;
    return partition_settle(c->table, m->topic, m->partition, m->generation, m->offset, m->bytes,
                            PARTITION_ACK);
}

/* m failed with error: the failure path of a nacked message. */
static kaffe_status_t fail_one(kaffe_consumer_t *c, kaffe_message_t *m, int error) {
    int open = 0;
    if (!atomic_compare_exchange_strong_explicit(&m->settled, &open, 1, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return KAFFE_ERR_ACK_DUPLICATE;
    /* Async: the application's reference goes with the failure (a later
     * kaffe_consumer_ack is refused as a duplicate). The worker's stays
     * until the batch is done. */
    int app_refs = c->async ? 1 : 0;
    kaffe_status_t st = KAFFE_OK;
    /* acquire: pairs with the release store in consumer_poll_stop_sequence. */
    if (atomic_load_explicit(&c->acks_closed, memory_order_acquire))
        st = KAFFE_ERR_STOPPED;
    else if (!partition_is_current(c->table, m->topic, m->partition, m->generation))
        st = KAFFE_ERR_REVOKED;
    if (st != KAFFE_OK) {
        consumer_message_drop(m, app_refs);
        return st;
    }
    consumer_failure_apply_policy(c, m, error, false, app_refs);
    return KAFFE_OK;
}

void consumer_batch_run(kaffe_consumer_t *c, kaffe_message_t *head) {
    size_t count = 0;
    for (kaffe_message_t *m = head; m; m = m->batch_next)
        count++;
    enum { ON_STACK = 64 };
    kaffe_message_t *stack_msgs[ON_STACK];
    unsigned char stack_outcome[ON_STACK];
    kaffe_message_t **msgs = count <= ON_STACK ? stack_msgs : malloc(count * sizeof *msgs);
    unsigned char *outcome = count <= ON_STACK ? stack_outcome : malloc(count);
    size_t n = 0;
    bool nomem = !msgs || !outcome;
    for (kaffe_message_t *m = head, *next; m; m = next) {
        next = m->batch_next;
        m->batch_next = NULL;
        if (nomem || consumer_message_abandoned(c, m)) {
            consumer_message_abandon(c, m); /* delivered again after a restart */
            continue;
        }
        msgs[n] = m;
        outcome[n++] = OUTCOME_OPEN;
    }
    if (nomem)
        consumer_report_error(c, KAFFE_ERR_NOMEM,
                              "out of memory for a batch of %zu messages: released unhandled",
                              count);
    if (n > 0) {
        kaffe_batch_t batch = {.consumer = c, .msgs = msgs, .outcome = outcome, .n = n};
        /* Two thread-local stores: the API refuses waits from inside a handler. */
        consumer_thread_enter(c, CONSUMER_THREAD_WORKER);
        uint64_t started = clock_now_ns();
        int rc = c->batch_handler(&batch, c->batch_opaque);
        histogram_record(&c->metrics.handler_latency, clock_now_ns() - started);
        /* relaxed: independent statistics counters. */
        atomic_fetch_add_explicit(&c->metrics.handled, n, memory_order_relaxed);
        if (rc != KAFFE_OK)
            atomic_fetch_add_explicit(&c->metrics.failed, 1, memory_order_relaxed);
        for (size_t i = 0; i < n; i++) {
            if (outcome[i] == OUTCOME_OPEN) {
                if (rc != KAFFE_OK)
                    fail_one(c, msgs[i], rc);
                else if (!c->async)
                    ack_one(c, msgs[i]);
                /* async and OK: accepted; the application acks it. */
            }
            consumer_message_drop(msgs[i], 1); /* the worker's reference */
        }
    }
    if (msgs != stack_msgs)
        free(msgs);
    if (outcome != stack_outcome)
        free(outcome);
}

/* --- the batch API (the batch handler's thread) --------------------------- */

KAFFE_API size_t kaffe_batch_count(const kaffe_batch_t *b) {
    return b ? b->n : 0;
}

KAFFE_API kaffe_message_t *kaffe_batch_message(const kaffe_batch_t *b, size_t i) {
    return b && i < b->n ? b->msgs[i] : NULL;
}

KAFFE_API kaffe_status_t kaffe_batch_ack(kaffe_batch_t *b, size_t i) {
    if (!b || i >= b->n)
        return KAFFE_ERR_INVALID_ARG;
    if (b->outcome[i] != OUTCOME_OPEN)
        return KAFFE_ERR_ACK_DUPLICATE;
    b->outcome[i] = OUTCOME_SETTLED;
    return ack_one(b->consumer, b->msgs[i]);
}

KAFFE_API kaffe_status_t kaffe_batch_fail(kaffe_batch_t *b, size_t i, int error) {
    if (!b || i >= b->n || error == KAFFE_OK)
        return KAFFE_ERR_INVALID_ARG;
    if (b->outcome[i] != OUTCOME_OPEN)
        return KAFFE_ERR_ACK_DUPLICATE;
    b->outcome[i] = OUTCOME_SETTLED;
    return fail_one(b->consumer, b->msgs[i], error);
}

KAFFE_API kaffe_status_t kaffe_batch_handled_up_to(kaffe_batch_t *b, int64_t offset) {
    if (!b)
        return KAFFE_ERR_INVALID_ARG;
    kaffe_status_t first = KAFFE_OK;
    for (size_t i = 0; i < b->n; i++) {
        if (b->outcome[i] != OUTCOME_OPEN || b->msgs[i]->offset > offset)
            continue;
        kaffe_status_t st = kaffe_batch_ack(b, i);
        if (st != KAFFE_OK && first == KAFFE_OK)
            first = st;
    }
    return first;
}
