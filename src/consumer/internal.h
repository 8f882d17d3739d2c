/* src/consumer — what the consumer room's files share: the consumer and
 * message structs, grouped by the thread that owns each part, and the
 * functions one file offers the others. Other rooms see the consumer only
 * through include/kaffe/consumer.h and src/consumer/consumer.h.
 *
 * Files (one concern each, the function prefix names the file):
 *   consumer.c     lifecycle and the public API: new, start, stop, destroy,
 *                  wait, commit, errors (any application thread)
 *   message.c      message objects: accessors, allocation, quarantine, the
 *                  worker's run and settle, ack/nack claims (any thread)
 *   failure.c      failure policies, retry backoff, the delay list, released
 *                  lanes (workers, nackers, the poll thread)
 *   dead_letter.c  producing failed messages to the dead-letter topic
 *   dispatch.c     dispatch, back-pressure, pause/resume (poll thread)
 *   commit.c       commits, commit holds, the retired client's stash (poll thread)
 *   rebalance.c    assign and revoke (poll thread, in librdkafka's callback)
 *   client.c       the librdkafka client: create, subscribe, fatal errors,
 *                  restart, reap (poll thread, or the constructor)
 *   poll.c         the poll loop and the stop sequence (poll thread)
 *   stats.c        handler timing, counters, log routing (any thread)
 *   testing.c      hooks for tests only
 *
 * The consumer: librdkafka glue around the partition room and the pool.
 *
 * Threads and what they own:
 *   - the poll thread (poll_main) owns the rd_kafka_t consumer: it polls,
 *     dispatches (partition_admit, then a lane), commits (interval, request,
 *     revoke, stop), runs the rebalance callback (librdkafka calls it from
 *     rd_kafka_consumer_poll / rd_kafka_consumer_close on this thread),
 *     pauses and resumes partitions, and performs the stop sequence. It is
 *     the assignment table's only writer and the message allocator.
 *   - the pool's workers run the handler and settle sync messages.
 *   - any application thread may ack (async), request a stop, wait, commit.
 * Cross-thread state is the atomics in kaffe_consumer_s (each commented) and
 *
 *
 * Message ownership. A kaffe_message_t wraps one rd_kafka_message_t. It is
 * reference counted: one reference for the worker that runs the handler, and
 * in async mode one more for the application's ack (dropped by
 * kaffe_consumer_ack, or by kaffe when the handler fails or the message is
 * never handed to the handler). The last drop destroys the rd_kafka_message_t
 * and puts the object on the consumer's free list.
 *
 * Message objects are never returned to malloc while the consumer lives:
 * they come from blocks owned by the consumer, and a released object waits in
 * a FIFO quarantine (MESSAGE_QUARANTINE objects) before the poll thread
 * reuses it. So a second kaffe_consumer_ack() on a released message reads a
 * live object whose `settled` flag is still set and is refused as a
 * duplicate, instead of touching freed memory. */
#ifndef KAFFE_SRC_CONSUMER_INTERNAL_H
#define KAFFE_SRC_CONSUMER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include <kaffe/consumer.h>
#include <kaffe/producer.h>
#include <kaffe/stats.h>

#include "ack/ack.h"
#include "common/status.h"
#include "metrics/histogram.h"
#include "partition/partition.h"
#include "pool/pool.h"

#include <pthread.h>
#include <urcu/wfcqueue.h>

#define MESSAGE_QUARANTINE 4096
#define MESSAGE_BLOCK 256

typedef struct consumer_client client_t;

/* How the messages of one topic are run (route.c): its handler, ordering,
 * failure policy, in-flight limits and workers. The default route (topics
 * with no route of their own) holds the consumer's settings. Immutable
 * after kaffe_consumer_new, but pool, set by start (before any message) and
 * cleared after the workers were joined. */
typedef struct route {
    char *topic;                     /* NULL for the default route */
    kaffe_message_handler_t handler; /* NULL: the consumer's (timed) handler */
    void *opaque;
    int ordering; /* enum ordering */
    size_t lanes; /* per partition: 0 unordered, 1 partition order, more for key order */
    int on_error; /* enum policy */
    int64_t max_in_flight, max_in_flight_bytes;
    size_t workers; /* a share of its own; 0: the shared pool */
    pool_t *pool;   /* its own, or the shared one */
} route_t;

struct kaffe_message_s {
    pool_item_t item; /* lane / ready queue / free list link */
    kaffe_consumer_t *consumer;
    client_t *client;        /* the librdkafka client that delivered rkm */
    rd_kafka_message_t *rkm; /* owned; NULL while free */
    const char *topic;       /* rkm's topic name */
    int32_t partition;       /* rkm's, copied by the poll thread (which reads rkm */
    int64_t offset;          /* anyway) so that settling does not touch rkm */
    /* Parsed on first use (consumer_message_headers); owned by rkm. Written
     * once, by the thread that wins headers_state 0 -> 1, published by its
     * release store of 2. */
    rd_kafka_headers_t *headers;
    atomic_int headers_state; /* 0 unparsed, 1 being parsed, 2 parsed */
    uint64_t generation;      /* of the assignment it was delivered under */
    /* Failure path. Written by the thread that owns the message at that
     * point (the worker running it, the nacking thread, the poll thread
     * re-dispatching it); each hand-off is a pool push, a lane wake or the
     * consumer's delay lock, which order them. */
    int attempt;            /* 1-based handler attempt */
    struct pool_lane *lane; /* the lane it was pushed to; NULL: unordered */
    int64_t due_ms;         /* retry / pause: when it may run again */
    bool paused;            /* on_error=pause: waits for resume_partition */
    bool lane_held;         /* waiting with its lane suspended (pool_hold) */
    bool abandon;           /* a woken retry that must be released unhandled */
    size_t bytes;           /* key + value, for the in-flight byte limit */
    /* Batch handler: the next message of the batch this one heads or is in
     * (poll thread, before the push; the worker clears it once it took the
     * batch). NULL otherwise. */
    struct kaffe_message_s *batch_next;
    const route_t *route; /* its topic's route (never NULL), set by the poll thread */
    uint64_t polled_ns;   /* CLOCK_MONOTONIC when the poll thread received it (see consumer.h) */
    /* References (worker, async ack). acq_rel on the drop: the last dropper
     * sees every use of the message by the others before it frees. */
    atomic_int refs;
    /* 0 until the message is settled (acked, failed or abandoned); the CAS
     * 0 -> 1 decides who settles it, exactly once. Stays 1 while the object
     * is in quarantine, which is what refuses a double ack. */
    atomic_int settled;
    /* 1 while the object holds a message (reset when released). */
    atomic_int live;
};

/* What stats.c keeps per consumer: the wrapped message handler (which
 * times each call), handler counters, and the conf its librdkafka log
 * callback routes through. Set up by consumer_observe() in
 * kaffe_consumer_new before any thread runs; then the counters are
 * independent monotonic counters (relaxed increments and loads, ordering
 * nothing) and the rest is immutable. */
typedef struct consumer_metrics {
    const kaffe_conf_t *conf;
    kaffe_message_handler_t user_handler;
    void *user_opaque;
    _Alignas(64) atomic_ullong handled; /* workers: handler returned */
    atomic_ullong failed;               /* workers: handler returned an error */
    histogram_t handler_latency;        /* ns, workers record (lock-free) */
    /* The last figures of each partition taken away (revoked, or at stop),
     * which kaffe_consumer_stats reports once the consumer stopped. Written
     * by the poll thread (consumer_stats_retire), read by any thread, both
     * under retired_lock. */
    pthread_mutex_t retired_lock;
    kaffe_partition_stats_t *retired;
    size_t retired_count, retired_capacity;
} consumer_metrics_t;

/* Wraps *handler / *opaque with the timing handler and registers the
 * librdkafka log callback on rdconf (routed through conf's log sink; the
 * rd_kafka_t's opaque must be the consumer). kaffe_consumer_new, once,
 * before rd_kafka_new. */
void consumer_observe(consumer_metrics_t *m, const kaffe_conf_t *conf, rd_kafka_conf_t *rdconf,
                      kaffe_message_handler_t *handler, void **opaque);

/* Keeps p's last figures (assigned 0) for kaffe_consumer_stats after stop.
 * Poll thread, just before p leaves the partition table. */
void consumer_stats_retire(kaffe_consumer_t *c, const partition_t *p);

/* Calls handler(msg, opaque) timed and counted as the consumer's own
 * handler is (a topic route's handler). Workers. */
int consumer_stats_timed_call(kaffe_consumer_t *c, kaffe_message_handler_t handler, void *opaque,
                              kaffe_message_t *msg);

/* Frees what consumer_observe and consumer_stats_retire set up.
 * kaffe_consumer_destroy. */
void consumer_metrics_free(consumer_metrics_t *m);

/* Only the log routing, for every further rd_kafka_conf_t the consumer
 * makes (a client re-created after a fatal error needs it again). */
void consumer_route_logs(rd_kafka_conf_t *rdconf);

/* What stats.c reads of a consumer (consumer.c). Any thread between new and
 * destroy; the pointers live as long as the consumer. */
consumer_metrics_t *consumer_metrics(kaffe_consumer_t *c);
partition_table_t *consumer_partitions(kaffe_consumer_t *c);
rd_kafka_t *consumer_rdkafka(kaffe_consumer_t *c);
/* Any thread but the poll thread: rk stays valid until the release. */
rd_kafka_t *consumer_rdkafka_hold(kaffe_consumer_t *c);
void consumer_rdkafka_release(kaffe_consumer_t *c);
bool consumer_running(kaffe_consumer_t *c);
bool consumer_stopped(kaffe_consumer_t *c); /* the stop sequence finished */

/* Tests only: asks the poll thread to raise a fabricated fatal error
 * (rd_kafka_test_fatal_error) on the consumer's current client. Any thread;
 * served within ~100 ms. */
void consumer_test_fatal_error(kaffe_consumer_t *c, rd_kafka_resp_err_t err);

/* Tests only: how many times interval commits were held for a rebalance
 * (consumer_commit_hold; always 0 with a librdkafka that does not need the
 * hold). Once the consumer stopped (the poll thread's field). */
uint64_t consumer_test_commit_holds(const kaffe_consumer_t *c);

/* Tests only: whether the stop waited for a first assignment
 * (consumer_poll_await_first_assignment) and it came. Such an assignment
 * reaches the drained consumer, which takes it without state and without
 * the application's rebalance callback. Once the consumer stopped (the poll
 * thread's field). */
bool consumer_test_waited_for_first_assignment(const kaffe_consumer_t *c);

/* The poll thread's side of consumer_test_fatal_error (testing.c): raises
 * the requested error on the current client. Poll thread, only when the
 * request flag was seen set. */
void consumer_testing_raise_fatal(kaffe_consumer_t *c);

/* ---- The consumer ----------------------------------------------------------
 *
 * Ownership by thread, in the order of the struct:
 *   - configuration: set by kaffe_consumer_new before any thread runs, then
 *     read-only (handler, ordering, limits, failure policy);
 *   - client restarts and "Poll thread only": the poll thread's, no lock;
 *   - "Any thread": atomics, each with its memory order at its uses;
 *   - the delay list and released lanes: under delay_lock;
 *   - the join/commit/last-error state: under lock. */

/* In the order of the `ordering` choices (conf_choice). */
enum ordering { ORDER_PARTITION, ORDER_KEY, ORDER_UNORDERED };
enum state { ST_NEW, ST_RUNNING, ST_STOPPING, ST_STOPPED };
/* The first four in the order of the `on_error` choices (conf_choice). */
enum policy { POL_STOP, POL_RETRY, POL_DEAD_LETTER, POL_PAUSE, POL_SKIP };

/* Below this many bytes, commit metadata cannot hold even one acked offset
 * (the header and checksum alone take about 26): the budget becomes 0. */
#define METADATA_BUDGET_MIN 32
#define POLL_MS 100      /* stop-request latency bound */
#define PAUSED_POLL_MS 5 /* while some partition waits to be resumed */
#define COMMITTED_TIMEOUT_MS 10000
#define COMMIT_HOLD_MAX_MS 10000 /* the longest interval commits wait for a rebalance */
/* A sync commit's retries of a transient error: first wait, longest wait,
 * and how long it keeps trying. */
#define COMMIT_RETRY_BACKOFF_MS 50
#define COMMIT_RETRY_BACKOFF_MAX_MS 1000
#define COMMIT_RETRY_MAX_MS 5000
/* How long a sync commit waits for the async commits under way, and how
 * long an async commit's result may take before it counts as lost (the
 * next interval commit waits for it until then). */
#define COMMIT_AWAIT_MAX_MS 5000
#define COMMIT_RESULT_MAX_MS 60000

/* One librdkafka client and the messages it delivered that are still
 * alive (their rd_kafka_message_t must be destroyed before the client). */
struct consumer_client {
    rd_kafka_t *rk;
    /* Messages alive. Incremented by the poll thread (message_new), relaxed;
     * decremented by whoever destroys a message's rd_kafka_message_t,
     * release: pairs with the poll thread's acquire load before it destroys
     * the retired client, so every rd_kafka_message_destroy happened before. */
    atomic_long live;
    /* The results of this client's async commits (consumer_commit.c),
     * served by the poll thread; NULL when it could not be made (then
     * commits are sync). */
    rd_kafka_queue_t *commit_queue;
    int commits_in_flight;  /* async commits without a result yet; poll thread */
    int64_t commit_sent_ms; /* when the last async commit was sent; poll thread */
};

typedef struct message_block {
    struct message_block *next;
    kaffe_message_t msgs[MESSAGE_BLOCK];
} message_block_t;

struct kaffe_consumer_s {
    consumer_metrics_t metrics; /* stats and log routing (stats.c) */
    kaffe_conf_t *conf;
    rd_kafka_t *rk;
    /* Poll thread: the client that last received an assignment, and whether
     * the current one must be left undestroyed (await_first_assignment). */
    rd_kafka_t *assigned_rk;
    bool leak_rk;
    kaffe_message_handler_t handler; /* NULL with a batch handler */
    void *handler_opaque;
    /* The batch handler (batch.c) and its limits; immutable after new. */
    kaffe_batch_handler_t batch_handler;
    void *batch_opaque;
    size_t batch_max_messages;
    size_t batch_max_bytes;
    int64_t batch_max_wait_ms;
    /* The routes (route.c): the default one and the topics' own. */
    route_t default_route;
    route_t *routes;
    size_t route_count;
    /* Poll thread: the batches being filled, one per lane (per partition
     * when unordered). */
    struct open_batch *open_batches;
    size_t open_batch_n, open_batch_cap;
    kaffe_rebalance_cb_t rebalance_cb;
    void *rebalance_opaque;
    bool async;
    int ordering;
    size_t workers;
    size_t lanes_per_partition;
    size_t window;
    int64_t max_in_flight, max_in_flight_bytes;
    int64_t commit_interval_ms, drain_timeout_ms;
    uint64_t salt;
    /* KIP-848's consumer group protocol (conf_group_protocol_consumer):
     * the broker assigns, there is no JoinGroup, and librdkafka's rebalance
     * protocol is COOPERATIVE. Immutable after kaffe_consumer_new. */
    bool group_protocol_consumer;

    /* Failure policy (immutable after kaffe_consumer_new). */
    int on_error, retry_exhausted; /* enum policy */
    int retry_max_attempts;
    int64_t retry_backoff_ms, retry_backoff_max_ms;
    char *dead_letter_topic;
    kaffe_producer_t *dead_letter; /* NULL unless a policy can dead-letter */
    int64_t restart_max, restart_window_ms;

    /* Client restarts (poll thread only). */
    rd_kafka_resp_err_t fatal_pending; /* a fatal error to restart for */
    rd_kafka_t *fatal_seen;            /* the client whose fatal error was noticed */
    int64_t *restart_times;            /* the last restart_max restarts, a ring */
    size_t restart_next;
    int64_t restart_backoff_ms;
    client_t *client;   /* the current client (c->rk is client->rk) */
    client_t **retired; /* closed clients, destroyed once no message uses them */
    /* Held by kaffe_consumer_stats (any thread) while it reads through rk,
     * and by the poll thread while it replaces rk or destroys a retired
     * client: a stats call never uses a destroyed handle. */
    pthread_mutex_t rk_lock;
    size_t retired_n;
    /* What the previous client could not commit: per partition, the
     * watermark and metadata acked when it was retired. The next assignment
     * of the partition starts from it when it is ahead of the committed
     * offset (and commits it). */
    rd_kafka_topic_partition_list_t *stash;

    /* The subscription (subscription.c): topic names and '^' patterns.
     * sub_lock guards the list and `subscribed` (start, or a restart, told
     * librdkafka), and is held across the rd_kafka_subscribe applying it. */
    pthread_mutex_t sub_lock;
    char **subscription;
    size_t subscription_n;
    bool subscribed;

    pool_t *pool;             /* created by start, destroyed by stop */
    partition_table_t *table; /* whole life */
    pthread_t poll_thread;

    /* Poll thread only. */
    uint64_t next_generation;
    int64_t last_commit_ms;
    int64_t last_resume_ms;
    size_t paused_count; /* partitions paused (recounted on each resume pass) */
    bool commit_force;   /* a commit failed: commit everything next time */
    /* Commit metadata: at most metadata_budget bytes with the NUL (0: none),
     * from commit_metadata_max_bytes, lowered for the member's lifetime when
     * the broker refuses metadata as too large (consumer_commit_refused).
     * metadata_buf holds metadata_budget bytes (at least 1). */
    size_t metadata_budget, metadata_budget_configured;
    size_t metadata_last_sent; /* the longest metadata of the last commit request */
    char *metadata_buf;
    bool commit_now;              /* commit at the next loop, interval or not */
    bool metadata_budget_lowered; /* lowered since the last warning about it */
    /* Interval commits wait while the group rebalances (commit_held): for
     * this many more assignment callbacks, at most until the deadline.
     * commit_holds counts the holds begun (tests read it after stop). */
    int commit_hold_assigns;
    int64_t commit_hold_until_ms;
    uint64_t commit_holds;
    bool waited_for_first_assignment; /* consumer_poll_await_first_assignment waited, it came */
    bool stashing;                    /* revoke_partitions keeps the state in stash */
    bool drained; /* the stop sequence drained: revokes do not wait again, assigns take no state */
    uint64_t commits_served;
    ack_snapshot_t snap;
    message_block_t *blocks;
    size_t block_used;
    /* The dispatcher's last lookup: valid while the table's version is
     * still cache_version (partition_table_version). */
    const rd_kafka_topic_t *cache_rkt;
    int32_t cache_partition;
    uint64_t cache_version;
    partition_t *cache_p;
    const route_t *cache_route; /* the route of cache_rkt's topic */

    /* Any thread. Each is a flag or counter; the orders are at the uses. */
    atomic_int state;            /* enum state */
    atomic_int stop_requested;   /* set by request_stop (async-signal-safe) */
    atomic_int abandon;          /* workers drop queued messages unhandled */
    atomic_int acks_closed;      /* after the final commit: acks get STOPPED */
    atomic_int failure;          /* the status that stopped the consumer */
    atomic_long revoke_timeouts; /* > 0: workers check a message is current */
    atomic_ulong commit_requested;
    atomic_int test_fatal; /* consumer_test_fatal_error: the error to raise */
    /* Released message objects (quarantine, then reuse): pushed by any
     * thread, popped by the poll thread only (single dequeuer: no lock). */
    struct __cds_wfcq_head free_head;
    struct cds_wfcq_tail free_tail;
    atomic_long free_count;

    /* Failure counters (kaffe_consumer_failure_counters). Relaxed: plain
     * statistics, they order nothing. */
    atomic_ullong n_failures, n_retries, n_dead_lettered, n_dead_letter_failed, n_skipped, n_paused,
        n_restarts;
    atomic_int last_failure_value; /* the application's value of the last failure */
    atomic_ullong rng;             /* backoff jitter: the seed of the next draw (prng.h) */

    /* Messages waiting for a retry or a resume (the delay list). Added by
     * workers (hold callback), nackers and the poll thread; served by the
     * poll thread. Everything a message carries into the list (its
     * failure-path fields, its settled/refs state) is ordered by this lock
     * to whoever takes it out. */
    pthread_mutex_t delay_lock;
    kaffe_message_t **delayed;
    size_t delayed_n, delayed_cap;
    bool delay_closed; /* stop began: nothing may wait any more */
    /* Entries in the list. Written under delay_lock; read relaxed by the
     * poll thread as a hint (a stale value only delays serving by a poll). */
    atomic_long delayed_count;
    /* Lanes whose held message was released unhandled (revoke, stop): what
     * is queued behind it must not run before it is delivered again, so
     * run_message releases it unhandled too. Keyed by lane and generation
     * (a lane's address is reused only by a later assignment, whose
     * generation differs). Under delay_lock; an entry is added before its
     * lane is woken and pruned when its partition's revoke ends. */
    struct released_lane {
        pool_lane_t *lane;
        uint64_t generation;
    } * released;
    size_t released_n, released_cap;
    /* Entries in released. Written under delay_lock; workers read it
     * relaxed: the entry is added before pool_lane_wake, which orders it
     * before the lane's items run (the pool's push contract), so a worker
     * running one of them reads at least that count. */
    atomic_long released_count;

    pthread_mutex_t lock; /* protects what follows */
    pthread_cond_t cond;
    bool joined, joining;
    uint64_t commit_completed;
    kaffe_status_t commit_status;
    int last_error;
    char last_error_text[512];
};

/* conf_route_rdkafka_logs finds the conf through the rd_kafka_t's opaque
 * (the consumer): it must start with its conf pointer. */
_Static_assert(offsetof(struct kaffe_consumer_s, metrics) == 0 &&
                   offsetof(consumer_metrics_t, conf) == 0,
               "the consumer (the rd_kafka_t opaque) starts with its conf pointer");

/* ---- The calling thread's tie to a consumer ----------------------------------
 *
 * What lets the public API refuse calls that would wait for the calling thread
 * itself (stop, destroy, wait from a handler; commit from the poll thread)
 * instead of deadlocking or aborting. Thread-local, so each thread reads only
 * its own: a worker sets it before each handler call (workers serve one
 * consumer for their whole life), the poll thread when it starts, and the
 * dead-letter producer's delivery thread around its report. initial-exec: a
 * plain %fs-relative access, no __tls_get_addr on the hot path. */
typedef enum consumer_thread_role {
    CONSUMER_THREAD_NONE,     /* an application thread */
    CONSUMER_THREAD_WORKER,   /* runs the handler (and error callbacks of failures) */
    CONSUMER_THREAD_POLL,     /* runs the error and rebalance callbacks */
    CONSUMER_THREAD_CALLBACK, /* another kaffe thread calling back into the application */
} consumer_thread_role_t;

extern _Thread_local __attribute__((tls_model("initial-exec")))
const kaffe_consumer_t *consumer_thread_owner;
extern _Thread_local __attribute__((tls_model("initial-exec")))
consumer_thread_role_t consumer_thread_role;

/* Ties the calling thread to c in role; returns the previous role (a
 * callback scope restores it with consumer_thread_leave). */
static inline consumer_thread_role_t consumer_thread_enter(const kaffe_consumer_t *c,
                                                           consumer_thread_role_t role) {
    consumer_thread_role_t previous = consumer_thread_role;
    consumer_thread_owner = c;
    consumer_thread_role = role;
    return previous;
}

static inline void consumer_thread_leave(consumer_thread_role_t previous) {
    consumer_thread_role = previous;
    if (previous == CONSUMER_THREAD_NONE)
        consumer_thread_owner = NULL;
}

/* The calling thread's role for c (CONSUMER_THREAD_NONE: not one of c's). */
static inline consumer_thread_role_t consumer_thread_role_for(const kaffe_consumer_t *c) {
    return consumer_thread_owner == c ? consumer_thread_role : CONSUMER_THREAD_NONE;
}

/* ---- Shared between the room's files ------------------------------------ */

/* ---- consumer.c ---- */

/* Records the error (for kaffe_consumer_last_error) and tells the error
 * callback. Poll thread or a worker. */
void consumer_report_error(kaffe_consumer_t *c, int status, const char *fmt, ...);

/* The consumer stops with status (first failure wins). Any thread. */
void consumer_fail(kaffe_consumer_t *c, int status);

/* ---- message.c ---- */

/* A message object for rkm, received by the poll thread at polled_ns. Poll
 * thread only (the single free-list dequeuer). */
kaffe_message_t *consumer_message_new(kaffe_consumer_t *c, rd_kafka_message_t *rkm,
                                      uint64_t generation, uint64_t polled_ns);

/* Drops n references; the last one releases the object to the quarantine.
 * Any thread. */
/* m's headers (NULL: none), parsed by the first caller; a concurrent caller
 * waits for that parse. Any thread holding m. */
rd_kafka_headers_t *consumer_message_headers(const kaffe_message_t *m);
void consumer_message_drop(kaffe_message_t *m, int n);

/* A message that was never tracked, or was skipped: just release it. */
void consumer_message_discard(kaffe_consumer_t *c, kaffe_message_t *m);

void consumer_message_settle(kaffe_consumer_t *c, kaffe_message_t *m, partition_settle_mode_t mode);

void consumer_message_run(pool_item_t *item, void *opaque);

/* Whether m must be released unhandled instead of run (stopping, its
 * partition gone after a revoke timed out, or queued behind a released lane).
 * Workers. */
bool consumer_message_abandoned(kaffe_consumer_t *c, const kaffe_message_t *m);

/* Releases m unhandled (settles it PARTITION_RELEASE unless settled). */
void consumer_message_abandon(kaffe_consumer_t *c, kaffe_message_t *m);

/* ---- route.c ---- */

/* The routes of conf's topic routes, and the default route from the
 * consumer's settings (read before this call). false: out of memory
 * (consumer_routes_free is still due). kaffe_consumer_new. */
bool consumer_routes_init(kaffe_consumer_t *c, const kaffe_conf_t *conf);

/* Gives each route its pool: a new one for a share of its own, else
 * c->pool (made already). KAFFE_ERR_NOMEM: none is left made. Start. */
kaffe_status_t consumer_routes_start(kaffe_consumer_t *c);

/* Joins the workers of the routes' own pools and frees them (every lane
 * released). After the poll thread ended. */
void consumer_routes_stop(kaffe_consumer_t *c);

void consumer_routes_free(kaffe_consumer_t *c);

/* The route of topic (the default one when it has none). Poll thread. */
const route_t *consumer_route_find(const kaffe_consumer_t *c, const char *topic);

/* Lanes per partition for an ordering run by workers workers. */
size_t consumer_route_lanes(int ordering, size_t workers);

/* ---- batch.c ---- */

/* Adds m (admitted, m->lane set) to the batch being filled for its lane (for
 * p when unordered); a batch that is full goes to the workers through pb. */
void consumer_batch_add(kaffe_consumer_t *c, pool_batch_t *pb, partition_t *p, kaffe_message_t *m);

/* Hands the batches being filled to the workers through pb: every one when
 * all (or when batch_max_wait_ms is 0), else those that waited their
 * batch_max_wait_ms by now. Returns in how many ms the next one is due
 * (INT64_MAX: none left). Poll thread. */
int64_t consumer_batch_flush(kaffe_consumer_t *c, pool_batch_t *pb, bool all, int64_t now);

/* Runs the batch that m heads: the batch handler, then each message's
 * outcome. Workers (consumer_message_run). */
void consumer_batch_run(kaffe_consumer_t *c, kaffe_message_t *m);

/* ---- failure.c ---- */

/* Whether m is queued behind a released held message of its lane. Worker. */
bool consumer_failure_behind_released(kaffe_consumer_t *c, const kaffe_message_t *m);

/* Forgets the released lanes of the n revoked partitions ps: their drain is
 * over (nothing is queued) or timed out (their queued messages are released
 * as not current). Poll thread, before they are removed. */
void consumer_failure_prune_released(kaffe_consumer_t *c, partition_t **ps, size_t n);

/* The pool's hold callback: m's lane is suspended with m at its head; the
 * worker is off the lane. Worker thread. */
void consumer_failure_hold_cb(pool_lane_t *lane, pool_item_t *item, void *opaque);

/* Applies the policy to a claimed failed message, then drops the caller's
 * own references (own_refs). A worker (from_worker) or a nacking thread. */
void consumer_failure_apply_policy(kaffe_consumer_t *c, kaffe_message_t *m, int rc,
                                   bool from_worker, int own_refs);

/* The handler returned rc != KAFFE_OK. Worker thread. */
void consumer_failure_handler_failed(kaffe_consumer_t *c, kaffe_message_t *m, int rc);

/* Re-runs the due messages; returns the next due time. */
int64_t consumer_failure_serve_delayed(kaffe_consumer_t *c);

/* Releases the waiting messages of ps (or every one, closing the list, when
 * ps is NULL) unhandled. */
void consumer_failure_flush_delayed(kaffe_consumer_t *c, partition_t **ps, size_t n);

/* ---- dead_letter.c ---- */

/* Produces m to the dead-letter topic; it is acked in the delivery report.
 * The caller holds its own references. */
void consumer_dead_letter(kaffe_consumer_t *c, kaffe_message_t *m, int rc);

/* ---- dispatch.c ---- */

void consumer_dispatch_pause_fetch(kaffe_consumer_t *c, partition_t *p, bool pause);

/* Queues m for a worker: through batch (whose flush wakes the workers) or,
 * when batch is NULL, waking a worker at once. */
void consumer_dispatch_push(kaffe_consumer_t *c, pool_batch_t *batch, partition_t *p,
                            kaffe_message_t *m);

/* Dispatches one polled message received at polled_ns; its push goes
 * through batch (flushed by the caller). */
void consumer_dispatch(kaffe_consumer_t *c, pool_batch_t *batch, rd_kafka_message_t *rkm,
                       uint64_t polled_ns);

void consumer_dispatch_discard_parked(kaffe_consumer_t *c, partition_t *p);

/* Resumes partitions that fell below the low marks: their parked messages
 * first, in order, then fetching. */
void consumer_dispatch_resume_pass(kaffe_consumer_t *c);

/* ---- commit.c ---- */

/* Commits the watermark + metadata of each of ps (one snapshot each) that
 * changed since its last commit. Metadata the broker refuses as too large
 * (OFFSET_METADATA_TOO_LARGE) lowers the member's budget (half of what was
 * refused, at last none) and is not an error: a sync commit is repeated at
 * once, an async one at the next loop (commit_now); the first commit that
 * then goes through logs one warning naming the new limit. */
kaffe_status_t consumer_commit_partitions(kaffe_consumer_t *c, partition_t **ps, size_t n,
                                          bool sync);

kaffe_status_t consumer_commit_all(kaffe_consumer_t *c, bool sync);

/* Interval commits and rebalances (poll thread).
 *
 * librdkafka before 2.10.0 (rdkafka_commit_during_join_drops_generation;
 * librdkafka issue #4059) sends a commit on the coordinator connection, with
 * the generation it has then. Sent while the member's JoinGroup is pending,
 * it waits behind it (the coordinator answers a connection's requests in
 * order) and reaches the coordinator in the next generation: librdkafka's
 * mock cluster then answers ILLEGAL_GENERATION (a broker does too once the
 * group is stable again), and librdkafka resets its generation although it
 * has just joined the new one. The member's next heartbeat fails, it treats
 * its assignment as lost and rejoins, which starts another rebalance, in
 * which the same happens to any member that committed during its
 * JoinGroup. With commits every commit_interval_ms the group never settled:
 * the fault suite's group-churn stall, where the committed offsets stayed
 * behind the log end while every member kept rebalancing and handling the
 * same messages again.
 *
 * So, with such a librdkafka, interval commits wait while the member is
 * known to be rebalancing:
 *   - after a revoke callback, until the assignment callback that ends the
 *     rebalance: after a cooperative revoke (not of a lost assignment)
 *     librdkafka calls assign for the rest of the round and then rejoins
 *     at once, so that is the second assign; otherwise the next one;
 *   - after a commit answered REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION or
 *     UNKNOWN_MEMBER_ID (the group is rebalancing, or will because of it),
 *     until the next assign.
 * At most COMMIT_HOLD_MAX_MS, in case no callback comes. The commits of a
 * revoke (inside the callback, before any rejoin), of stop and of
 * kaffe_consumer_commit never wait. Nothing is lost by waiting: the state is
 * committed when the wait ends (in full after a failure: commit_force).
 * With librdkafka 2.10.0 or later consumer_commit_hold does nothing: a
 * refused commit leaves the generation alone, and interval commits go on
 * through a rebalance (a cooperative one keeps committing the partitions it
 * keeps).
 *
 * Under KIP-848's consumer protocol (group_protocol_consumer) nothing is
 * held either: there is no JoinGroup for a commit to wait behind, a commit
 * carries the member epoch librdkafka has when it sends it, and a revoke is
 * followed by one assign (possibly empty) with no rejoin, while a later
 * assignment may not come for a long time, so a hold would only delay
 * commits by up to COMMIT_HOLD_MAX_MS. */
void consumer_commit_hold(kaffe_consumer_t *c, int assigns);

bool consumer_commit_held(kaffe_consumer_t *c, int64_t now);

/* Serves the results of the async commits under way. true while one is
 * still under way: the next async commit waits (librdkafka retries a
 * failed commit by itself, so a late result could otherwise overwrite a
 * newer commit), up to COMMIT_RESULT_MAX_MS. Poll thread. */
bool consumer_commit_in_flight(kaffe_consumer_t *c, int64_t now);

void consumer_commit_serve_requests(kaffe_consumer_t *c);

void consumer_commit_stash_partitions(kaffe_consumer_t *c, partition_t **ps, size_t n);

/* If the stash is ahead of what the group committed for tp, tp takes the
 * stash's offset and metadata (the acks the retired client could not
 * commit); the entry leaves the stash either way. */
bool consumer_commit_stash_apply(kaffe_consumer_t *c, rd_kafka_topic_partition_t *tp, bool known);

/* ---- rebalance.c ---- */

/* Revoke: stop dispatching, drain in-flight up to drain_timeout_ms, refuse
 * later acks, commit from one snapshot each, release. */
void consumer_rebalance_revoke_partitions(kaffe_consumer_t *c,
                                          rd_kafka_topic_partition_list_t *parts);

void consumer_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t *parts, void *opaque);

/* ---- client.c ---- */

/* Notices a fatal error of the current client, once per client: reports
 * it, and restarts the client (consumer_client_restart, from the poll loop) or stops
 * the consumer. Poll thread (librdkafka serves consumer_client_error_cb in
 * rd_kafka_consumer_poll; the loop also checks after each poll, since a
 * fatal error may come as a message error instead). */
bool consumer_client_check_fatal(kaffe_consumer_t *c);

void consumer_client_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque);

/* A librdkafka consumer for c from rdconf (taken, also on failure). */
rd_kafka_t *consumer_client_create(kaffe_consumer_t *c, rd_kafka_conf_t *rdconf, char *errstr,
                                   size_t errstr_size);

/* The client of rk (taken: consumer_client_free destroys it). NULL: out of
 * memory (rk is not destroyed). */
client_t *consumer_client_new(rd_kafka_t *rk);

/* Frees client and its commit queue; destroys its rk too when destroy_rk
 * (without closing: closed already, or never subscribed). */
void consumer_client_free(client_t *client, bool destroy_rk);

/* Destroys the retired clients no message uses any more. Poll thread. */
void consumer_client_reap_retired(kaffe_consumer_t *c);

/* ---- subscription.c ---- */

/* The subscription from conf's topics, and sub_lock. false: out of memory
 * (consumer_subscription_free is still due). kaffe_consumer_new. */
bool consumer_subscription_init(kaffe_consumer_t *c, const kaffe_conf_t *conf);

/* Frees the list and sub_lock. kaffe_consumer_new's failure path, destroy. */
void consumer_subscription_free(kaffe_consumer_t *c);

/* Subscribes the current client to the list (start, and the poll thread
 * after it replaced the client). */
rd_kafka_resp_err_t consumer_subscription_apply(kaffe_consumer_t *c);

/* A fatal error: retire the client and make a new one, within the restart
 * budget. Every partition is revoked first (drained up to drain_timeout_ms,
 * acks closed: later acks of its messages get KAFFE_ERR_REVOKED, and the new
 * client's partitions have new generations, so they never touch its state),
 * and what is acked is committed with the old client if it still can, and
 * kept in the stash for the new client otherwise. Poll thread. */
void consumer_client_restart(kaffe_consumer_t *c);

/* ---- poll.c ---- */

/* Hands every batch being filled to the workers (revoke, stop). Poll
 * thread. */
void consumer_poll_flush_batches(kaffe_consumer_t *c);

/* librdkafka before 2.3.0 aborts (an assertion in
 * rd_kafka_sticky_assignor_state_destroy; librdkafka issue #4312) when a
 * consumer that has joined a cooperative-sticky group but not yet received
 * its first assignment is closed and destroyed. With such a librdkafka
 * (rdkafka_close_before_first_assignment_aborts), the stop sequence first
 * waits, serving librdkafka's callbacks, until the current client has had an
 * assignment or has not joined at all. Messages polled meanwhile are dropped
 * untracked: nothing of them is committed, so they are delivered again.
 * Returns false if the bound passed with the client still exposed; the
 * caller then leaves the handle undestroyed (a leak, reported) rather than
 * abort the application. With a fixed librdkafka, and under the consumer
 * protocol (the broker assigns: no such state), returns true at once. Poll
 * thread only. */
bool consumer_poll_await_first_assignment(kaffe_consumer_t *c);

void consumer_poll_stop_sequence(kaffe_consumer_t *c);

void *consumer_poll_main(void *arg);

#endif
