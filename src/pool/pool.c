/* The worker pool: a ready queue of lanes and direct items, worker threads
 * that sleep only when there is nothing to do. See pool.h for the contract. */
#include "pool/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include <urcu/arch.h>
#include <urcu/compiler.h>

#include "common/thread_name.h"
#include "common/tsan.h"

enum { KIND_ITEM = 0, KIND_LANE = 1, KIND_RELEASE = 2 };

/* Spins on an empty ready queue before sleeping: long enough to catch the
 * next push of a busy poll thread, short enough not to steal the CPU from it
 * on a small machine. */
#define IDLE_SPINS 200

struct pool_lane {
    pool_item_t task; /* kind LANE: links the lane on the ready queue */
    pool_t *pool;
    /* The mailbox. Enqueued by the lane's single pusher; dequeued only by the
     * worker holding the lane, hence the lock-free head. */
    struct __cds_wfcq_head head;
    struct cds_wfcq_tail tail;
    /* Items counted by pushes minus items run. The push that moves it from 0
     * schedules the lane; the worker that brings it back to <= 0 lets the lane
     * go idle. It may dip to -1 when a worker runs an item whose push has
     * enqueued it but not counted it yet; that push then sees -1 and does not
     * schedule (the item already ran). */
    atomic_long pending;
    /* 2 until pool_lane_release returns and its sentinel ran: whoever of the
     * two finishes last frees the lane (neither touches it afterwards). */
    atomic_int refs;
    pool_item_t release; /* kind RELEASE: the last item a released lane runs */
    /* The held item (pool_hold), run first when the lane is woken. Written by
     * the holding worker before the hold callback, read by the worker that
     * takes the lane after pool_lane_wake: ordered by whatever hands the lane
     * from the hold callback to the waker, then by the ready queue. */
    pool_item_t *held;
};

struct pool {
    /* The ready queue: scheduled lanes and direct items. Its dequeue takes
     * the head's mutex (several workers dequeue). */
    struct cds_wfcq_head ready_head;
    struct cds_wfcq_tail ready_tail;
    pool_run_t run;
    pool_hold_t hold;
    void *opaque;
    /* Workers blocked (or about to block) in worker_sleep. Read by every push,
     * so it sits on its own cache line. */
    _Alignas(64) atomic_int sleepers;
    atomic_bool stopping;
    pthread_mutex_t sleep_lock;
    pthread_cond_t wake;
    size_t worker_count;
    size_t started;
    pthread_t *threads;
};

/* Links task on the ready queue without waking anyone: the caller must
 * call pool_wake afterwards (before it blocks or returns to its caller). */
static void ready_enqueue(pool_t *p, pool_item_t *task) {
    TSAN_RELEASE(task);
    cds_wfcq_node_init(&task->node);
    /* The enqueue's xchg is a full barrier: it orders the caller's writes to
     * the task before the task becomes reachable from the queue. */
    cds_wfcq_enqueue(&p->ready_head, &p->ready_tail, &task->node);
}

/* Wakes up to n sleeping workers for tasks enqueued before this call. */
static void pool_wake(pool_t *p, unsigned n) {
    if (n == 0)
        return;
    /* Orders the enqueues before the load of sleepers; pairs with the fence
     * in worker_sleep (store-buffer pattern): either this wake sees the
     * sleeper, or the sleeper sees the tasks and does not block. */
    atomic_thread_fence(memory_order_seq_cst);
    int sleepers = atomic_load_explicit(&p->sleepers, memory_order_relaxed);
    if (sleepers <= 0)
        return;
    pthread_mutex_lock(&p->sleep_lock);
    if (n >= (unsigned)sleepers)
        pthread_cond_broadcast(&p->wake);
    else
        while (n-- > 0)
            pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->sleep_lock);
}

static void ready_push(pool_t *p, pool_item_t *task) {
    ready_enqueue(p, task);
    pool_wake(p, 1);
}

static bool ready_empty(pool_t *p) {
    return cds_wfcq_empty(&p->ready_head, &p->ready_tail);
}

static void worker_sleep(pool_t *p) {
    pthread_mutex_lock(&p->sleep_lock);
    atomic_fetch_add_explicit(&p->sleepers, 1, memory_order_relaxed);
    /* Orders the sleeper count before the emptiness check; pairs with the
     * fence in pool_wake. */
    atomic_thread_fence(memory_order_seq_cst);
    /* acquire on stopping pairs with the release store in pool_destroy. */
    while (ready_empty(p) && !atomic_load_explicit(&p->stopping, memory_order_acquire))
        pthread_cond_wait(&p->wake, &p->sleep_lock);
    atomic_fetch_sub_explicit(&p->sleepers, 1, memory_order_relaxed);
    pthread_mutex_unlock(&p->sleep_lock);
}

static void lane_drop_ref(pool_lane_t *lane) {
    /* acq_rel: the last one to drop sees everything the other did to the
     * lane before its drop, so the free happens after both. */
    if (atomic_fetch_sub_explicit(&lane->refs, 1, memory_order_acq_rel) == 1)
        free(lane);
}

/* The item whose run callback called pool_hold on this worker (or NULL). */
static _Thread_local pool_item_t *hold_request;

static void run_lane(pool_t *p, pool_lane_t *lane) {
    long ran = 0;
    pool_item_t *held = NULL;
    while (ran < POOL_LANE_BATCH) {
        pool_item_t *item = lane->held;
        if (item) {
            lane->held = NULL;
        } else {
            struct cds_wfcq_node *node = __cds_wfcq_dequeue_blocking(&lane->head, &lane->tail);
            if (!node)
                break;
            item = caa_container_of(node, pool_item_t, node);
            TSAN_ACQUIRE(item);
        }
        if (item->kind == KIND_RELEASE) {
            /* Nothing follows the sentinel and nobody else holds the lane. */
            lane_drop_ref(lane);
            return;
        }
        hold_request = NULL;
        p->run(item, p->opaque);
        if (hold_request == item) {
            /* Still pending: not counted as ran, so the lane cannot go idle
             * and no push schedules it until it is woken. */
            hold_request = NULL;
            lane->held = held = item;
            break;
        }
        ran++;
    }
    /* acq_rel: release publishes this worker's dequeues (and the runs) to the
     * worker that takes the lane next, whose acquire is the push's fetch_add
     * or this same counter; acquire makes the pushes counted so far visible. */
    long left = atomic_fetch_sub_explicit(&lane->pending, ran, memory_order_acq_rel) - ran;
    if (held) {
        /* The last touch of the lane by this worker: after it, the waker may
         * schedule the lane at any time. */
        p->hold(lane, held, p->opaque);
        return;
    }
    if (left > 0)
        ready_push(p, &lane->task);
}

void pool_set_hold_cb(pool_t *p, pool_hold_t cb) {
    p->hold = cb;
}

void pool_hold(pool_item_t *item) {
    hold_request = item;
}

void pool_lane_wake(pool_lane_t *lane) {
    ready_push(lane->pool, &lane->task);
}

static void *worker_main(void *arg) {
    pool_t *p = arg;
    common_set_thread_name("kaffe-worker");
    int spins = 0;
    for (;;) {
        struct cds_wfcq_node *node = NULL;
        if (!ready_empty(p))
            node = cds_wfcq_dequeue_blocking(&p->ready_head, &p->ready_tail);
        if (node) {
            spins = 0;
            pool_item_t *task = caa_container_of(node, pool_item_t, node);
            TSAN_ACQUIRE(task);
            if (task->kind == KIND_LANE)
                run_lane(p, caa_container_of(task, pool_lane_t, task));
            else {
                p->run(task, p->opaque);
                hold_request = NULL; /* ignored for direct items */
            }
            continue;
        }
        /* Queue empty: leave only once stopping (every push is done). */
        if (atomic_load_explicit(&p->stopping, memory_order_acquire))
            return NULL;
        if (++spins < IDLE_SPINS) {
            caa_cpu_relax();
            continue;
        }
        spins = 0;
        worker_sleep(p);
    }
}

pool_t *pool_new(size_t workers, pool_run_t run, void *opaque) {
    if (workers == 0 || !run)
        return NULL;
    pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->threads = calloc(workers, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return NULL;
    }
    cds_wfcq_init(&p->ready_head, &p->ready_tail);
    p->run = run;
    p->opaque = opaque;
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->stopping, false);
    pthread_mutex_init(&p->sleep_lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->worker_count = workers;
    for (; p->started < workers; p->started++) {
        if (pthread_create(&p->threads[p->started], NULL, worker_main, p) != 0) {
            pool_destroy(p);
            return NULL;
        }
    }
    return p;
}

void pool_destroy(pool_t *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->sleep_lock);
    /* release: pairs with the workers' acquire loads; every push happened
     * before this call (contract), so a worker that sees stopping and an
     * empty queue has nothing left to run. */
    atomic_store_explicit(&p->stopping, true, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->sleep_lock);
    for (size_t i = 0; i < p->started; i++)
        pthread_join(p->threads[i], NULL);
    cds_wfcq_destroy(&p->ready_head, &p->ready_tail);
    pthread_mutex_destroy(&p->sleep_lock);
    pthread_cond_destroy(&p->wake);
    free(p->threads);
    free(p);
}

pool_lane_t *pool_lane_new(pool_t *p) {
    pool_lane_t *lane = calloc(1, sizeof *lane);
    if (!lane)
        return NULL;
    lane->task.kind = KIND_LANE;
    lane->release.kind = KIND_RELEASE;
    lane->pool = p;
    __cds_wfcq_init(&lane->head, &lane->tail);
    atomic_init(&lane->pending, 0);
    atomic_init(&lane->refs, 2);
    return lane;
}

/* Enqueues item on the lane; returns whether the lane was scheduled on the
 * ready queue (the caller then owes a pool_wake). */
static bool lane_enqueue(pool_lane_t *lane, pool_item_t *item) {
    TSAN_RELEASE(item);
    cds_wfcq_node_init(&item->node);
    /* Full barrier (xchg): the item's contents before its link. */
    cds_wfcq_enqueue(&lane->head, &lane->tail, &item->node);
    /* acq_rel: release orders the enqueue before the count, so the worker
     * whose fetch_sub sees this count finds the item; acquire pairs with that
     * worker's release so that a lane scheduled here sees its last dequeues. */
    if (atomic_fetch_add_explicit(&lane->pending, 1, memory_order_acq_rel) == 0) {
        ready_enqueue(lane->pool, &lane->task);
        return true;
    }
    return false;
}

void pool_lane_push(pool_lane_t *lane, pool_item_t *item) {
    item->kind = KIND_ITEM;
    if (lane_enqueue(lane, item))
        pool_wake(lane->pool, 1);
}

long pool_lane_pending(const pool_lane_t *lane) {
    /* Pairs with the worker's acq_rel fetch_sub after its runs. */
    return atomic_load_explicit(&lane->pending, memory_order_acquire);
}

void pool_push(pool_t *p, pool_item_t *item) {
    item->kind = KIND_ITEM;
    ready_push(p, item);
}

void pool_lane_release(pool_lane_t *lane) {
    /* The sentinel may run (and drop its reference) before lane_enqueue
     * returns; the caller's reference keeps the lane alive until here. */
    pool_t *p = lane->pool;
    if (lane_enqueue(lane, &lane->release))
        pool_wake(p, 1);
    lane_drop_ref(lane);
}

void pool_batch_init(pool_batch_t *b, pool_t *p) {
    b->pool = p;
    b->scheduled = 0;
}

void pool_batch_lane_push(pool_batch_t *b, pool_lane_t *lane, pool_item_t *item) {
    item->kind = KIND_ITEM;
    if (lane_enqueue(lane, item))
        b->scheduled++;
}

void pool_batch_push(pool_batch_t *b, pool_item_t *item) {
    item->kind = KIND_ITEM;
    ready_enqueue(b->pool, item);
    b->scheduled++;
}

void pool_batch_flush(pool_batch_t *b) {
    pool_wake(b->pool, b->scheduled);
    b->scheduled = 0;
}
