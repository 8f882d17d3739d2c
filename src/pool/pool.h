/* src/pool — the worker pool and its lanes.
 *
 * A pool is a fixed set of worker threads that run a callback on work items.
 * Items reach workers two ways:
 *
 *   - through a lane: a FIFO mailbox served by at most one worker at a time,
 *     in push order (actor-mailbox scheduling). A lane is put on the pool's
 *     ready queue when it goes from empty to non-empty; a worker takes it,
 *     runs up to POOL_LANE_BATCH of its items, and puts it back at the tail
 *     of the ready queue if items remain. So lanes run in parallel with each
 *     other, and items of one lane never run concurrently or out of order.
 *   - directly (pool_push): the item goes on the ready queue itself and runs
 *     on the first free worker, with no order against any other item.
 *
 * Mailboxes and the ready queue are liburcu wait-free concurrent queues
 * (urcu/wfcqueue.h): a push is wait-free (one xchg). The ready queue's
 * dequeue takes its head mutex (workers compete for it); a lane's dequeue
 * needs no lock because only the worker holding the lane dequeues from it.
 * Idle workers spin briefly, then sleep on a condition variable; a push
 * signals it only when some worker is actually asleep (a seq_cst fence and a
 * load of the sleeper count, no syscall otherwise).
 *
 * Items are intrusive: the caller embeds a pool_item_t in its own struct and
 * keeps ownership of it; the pool only links it while it is queued. The run
 * callback receives the item back and may free it.
 *
 * Concurrency contract:
 *
 *   operation          | callers                          | concurrent with
 *   -------------------+----------------------------------+------------------------------
 *   pool_new           | any one thread                   | -
 *   pool_lane_new      | any thread                       | everything but pool_destroy
 *   pool_lane_push     | one thread per lane at a time     | pushes to other lanes, pool_push,
 *                      | (its push order is the run order)| workers running this lane
 *   pool_push          | any threads                      | everything but pool_destroy
 *   pool_lane_release  | the lane's pusher, after its last| as pool_lane_push
 *                      | push; the lane is freed by the   |
 *                      | pool after its last item ran     |
 *   pool_lane_wake     | any one thread, once per hold    | as pool_lane_push
 *   pool_destroy       | one thread, after every lane was | workers (it joins them)
 *                      | released (and woken if held) and |
 *                      | every push returned              |
 *   run callback       | worker threads                   | other workers
 *
 * Memory ordering: everything the pusher wrote before pool_lane_push or
 * pool_push happens-before the run callback sees the item (the queue's xchg
 * is a full barrier; the dequeue reads the link with a dependency; for TSan
 * the edge is annotated, see common/tsan.h). Items of one lane: each run
 * happens-before the next (the lane changes hands only through the ready
 * queue and the lane's pending counter, acq_rel). */
#ifndef KAFFE_SRC_POOL_H
#define KAFFE_SRC_POOL_H

#include <stddef.h>
#include <stdint.h>

#include <urcu/wfcqueue.h>

/* How many items a worker runs from one lane before giving others a turn. */
#define POOL_LANE_BATCH 64

typedef struct pool pool_t;
typedef struct pool_lane pool_lane_t;

/* Embed in your work item. Fields are private to the pool. */
typedef struct pool_item {
    struct cds_wfcq_node node; /* private: queue link */
    uint8_t kind;              /* private: item, lane, lane release */
} pool_item_t;

/* Runs one item on a worker thread. The item is no longer linked anywhere:
 * the callback owns it (may free or reuse it). */
typedef void (*pool_run_t)(pool_item_t *item, void *opaque);

/* A pool of workers threads (>= 1) calling run(item, opaque). NULL on
 * failure (thread creation or OOM). */
pool_t *pool_new(size_t workers, pool_run_t run, void *opaque);

/* Runs every item still queued, then joins the workers and frees the pool.
 * Every lane must have been released (pool_lane_release) and no push may be
 * running or follow. Must not be called from a worker. NULL is allowed. */
void pool_destroy(pool_t *p);

/* A new, empty lane. NULL on OOM. */
pool_lane_t *pool_lane_new(pool_t *p);

/* Appends item to the lane; it runs after every item pushed before it on
 * this lane, and never concurrently with them. Wait-free except for the
 * wake-up of a sleeping worker. */
void pool_lane_push(pool_lane_t *lane, pool_item_t *item);

/* Items pushed to the lane and not yet run (held items count as not run).
 * Acquire: when the lane's single pusher reads 0, every item it pushed has
 * run and its run callback has returned. Any thread; a pusher's own pushes
 * are the only ones it may count on being complete. */
long pool_lane_pending(const pool_lane_t *lane);

/* Queues item for the first free worker, in no order. */
void pool_push(pool_t *p, pool_item_t *item);

/* Batched pushes: one thread pushes a run of items (each push keeping the
 * pool_lane_push / pool_push contract) and wakes the sleeping workers once,
 * at pool_batch_flush, instead of once per push. Items pushed are visible to
 * workers that are awake at once; a sleeping worker learns of them at the
 * flush (the flush's seq_cst fence pairs with the one in the sleeper, as for
 * a single push). The pusher must flush before it blocks or hands the batch
 * to anything that waits for the items to run. Not shared between threads. */
typedef struct pool_batch {
    pool_t *pool;
    unsigned scheduled; /* lanes and items made ready since the last flush */
} pool_batch_t;

void pool_batch_init(pool_batch_t *b, pool_t *p);
void pool_batch_lane_push(pool_batch_t *b, pool_lane_t *lane, pool_item_t *item);
void pool_batch_push(pool_batch_t *b, pool_item_t *item);
/* Wakes up to as many sleeping workers as lanes and items were made ready. */
void pool_batch_flush(pool_batch_t *b);

/* Gives the lane back: it is freed by the worker that runs past its last
 * item (or at once if it is idle). No push to the lane may follow. */
void pool_lane_release(pool_lane_t *lane);

/* Holding a lane (for a retry that must keep the lane's order without
 * blocking a worker).
 *
 * From inside the run callback of an item that came from a lane,
 * pool_hold(item) asks the pool to keep that item at the head of its lane
 * and to suspend the lane: once the callback returns, the worker stops
 * running the lane (later items stay queued, they still count as pending, so
 * pushes do not schedule it), and calls the hold callback with the lane and
 * the item. The worker touches the lane no more after that call. Some thread
 * later calls pool_lane_wake(lane), exactly once per hold: the lane goes back
 * on the ready queue and the held item runs first, then the rest in order.
 * A held lane may be released meanwhile (its sentinel waits behind the held
 * item). pool_hold on an item run directly (pool_push) is ignored: the
 * callback owns such an item and re-pushes it itself.
 *
 * The hold callback runs on the worker; set it once, before any push. */
typedef void (*pool_hold_t)(pool_lane_t *lane, pool_item_t *item, void *opaque);
void pool_set_hold_cb(pool_t *p, pool_hold_t cb);
void pool_hold(pool_item_t *item);
void pool_lane_wake(pool_lane_t *lane);

#endif
