/* src/partition — per-partition dispatcher state and the assignment table.
 *
 * One partition_t per assigned (topic, partition) and assignment generation:
 * its ack tracker, the committed-metadata skip set, in-flight counters,
 * the paused flag and the parked messages, its lanes in the worker pool, and
 * the failure mark. The assignment table maps (topic, partition) to the
 * current partition_t; it is a liburcu RCU hash table (cds_lfht).
 *
 * RCU flavour: urcu-memb. Its read-side lock is a thread-local counter
 * update with no fence (the writer forces ordering with sys_membarrier), so
 * acks pay almost nothing; and, unlike qsbr, readers need not announce
 * quiescent states, which a library cannot demand of the application
 * threads that call kaffe_consumer_ack(). memb requires each reader thread
 * to be registered: partition_read_lock() registers the calling thread on
 * its first use and unregisters it when the thread exits (pthread key
 * destructor), so any application thread may ack. (urcu-bp would also fit;
 * memb's read side is cheaper and is the flavour the build links.)
 *
 * Lifetime: partition_table_remove() unlinks a partition and frees it only
 * after an RCU grace period (call_rcu), so an ack that found it inside a
 * read-side section never touches freed memory. Every message carries the
 * generation of the assignment it was delivered under; an ack for another
 * generation, or for a partition that is closing, is refused with
 * KAFFE_ERR_REVOKED and never touches the current assignment's tracker.
 *
 * Threads:
 *   - the poll thread (the consumer's only rdkafka-facing thread) is the
 *     table's single writer, the dispatcher (partition_admit: ack tracker
 *     track) and the committer (partition_snapshot: ack tracker advance). It
 *     may use the partition_t pointers it holds without a read lock, since
 *     only it removes them.
 *   - any thread acks or releases a message with partition_settle(), which
 *     takes the read lock itself.
 *
 *   operation                        | callers          | concurrent with
 *   ---------------------------------+------------------+--------------------------
 *   partition_table_new/destroy      | one thread       | nothing on the table
 *   partition_table_add/remove/find/ | poll thread      | partition_settle
 *   collect, partition_admit, park,  |                  |
 *   snapshot, close_acks, accessors  |                  |
 *   partition_settle                 | any threads      | everything but table_destroy
 *   partition_in_flight              | any thread       | everything but table_destroy
 *   partition_stats                  | any thread, in a | everything but table_destroy
 *                                    | read-side section|
 */
#ifndef KAFFE_SRC_PARTITION_H
#define KAFFE_SRC_PARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kaffe/error.h>

#include "ack/ack.h"
#include "pool/pool.h"

typedef struct partition_table partition_table_t;
typedef struct partition partition_t;

/* RCU read-side critical section (urcu-memb), for any thread; registers the
 * thread with liburcu on first use. Sections may nest. */
void partition_read_lock(void);
void partition_read_unlock(void);

/* An empty table. NULL on OOM. */
partition_table_t *partition_table_new(void);

/* Frees the table; every partition must have been removed. Waits for the
 * frees still pending after their grace period (rcu_barrier). Must not be
 * called inside a read-side section. NULL is allowed. */
void partition_table_destroy(partition_table_t *t);

typedef struct partition_params {
    const char *topic; /* copied */
    int32_t partition;
    uint64_t generation;
    /* The group's committed offset (< 0: none; the tracker then starts at
     * the first message that arrives) and its metadata (may be NULL). */
    int64_t committed_offset;
    const char *metadata;
    size_t metadata_len;
    size_t window;         /* ack tracker capacity (ack_window) */
    int64_t max_in_flight; /* pause at or above; resume below half */
    int64_t max_in_flight_bytes;
    pool_t *pool;
    size_t lane_count; /* 0: unordered (no lanes), 1: partition order, >1: key order */
    uint64_t salt;     /* key-hash salt (key order) */
    /* Key order: false (the default) gives each key in flight a lane of its
     * own while lanes last (see partition_lane); true pins each key to the
     * lane its hash picks, for callers that push several messages as one
     * item (batch handlers), whose lanes' pending counts are not messages. */
    bool fixed_key_lanes;
} partition_params_t;

/* Adds the assignment (replacing any previous one for the same partition,
 * which is removed). Poll thread. NULL on OOM. */
partition_t *partition_table_add(partition_table_t *t, const partition_params_t *params);

/* The current assignment of topic/partition or NULL. Poll thread, or inside
 * a read-side section (the pointer is then valid until the unlock). */
partition_t *partition_table_find(partition_table_t *t, const char *topic, int32_t partition);

/* A counter the poll thread's own adds and removes bump: a partition_t
 * pointer the poll thread found while the version was v is still the
 * current assignment as long as the version is still v (lets the dispatcher
 * cache its last lookup). Poll thread. */
uint64_t partition_table_version(const partition_table_t *t);

/* Unlinks p, releases its lanes, and frees it after a grace period. Poll
 * thread. p must have no parked messages left (drain them first). */
void partition_table_remove(partition_table_t *t, partition_t *p);

/* The current partitions, as a malloc'ed array (free() it) of *count
 * pointers. Poll thread: the pointers stay valid until it removes them. */
partition_t **partition_table_collect(partition_table_t *t, size_t *count);

/* Calls fn on every current partition, inside one read-side section: p is
 * valid during the call only; fn must not block or call
 * partition_table_add/remove. Any thread. Returns the number visited. */
size_t partition_table_visit(partition_table_t *t, void (*fn)(const partition_t *p, void *arg),
                             void *arg);

/* Accessors (poll thread, or inside a read-side section). */
const char *partition_topic(const partition_t *p);
int32_t partition_id(const partition_t *p);
uint64_t partition_generation(const partition_t *p);

/* What the dispatcher must do with a message (partition_admit). */
typedef enum partition_admit_result {
    PARTITION_DISPATCH = 1, /* tracked and counted in flight: put it on a lane */
    PARTITION_SKIP = 2,     /* acked before (commit metadata): tracked, acked; drop it */
    PARTITION_PARK = 3,     /* paused: nothing changed; park it (partition_park) */
    PARTITION_DROP = 4,     /* below what was tracked (a refetch): drop it */
} partition_admit_result_t;

/* Back-pressure has two stages. Dispatch pause (partition_is_paused): the
 * in-flight count or bytes reached their limit; later messages are parked.
 * Fetch pause: the caller pauses fetching (rd_kafka_pause_partitions) when
 * *pause_now is set (the ack window is full) or the park list is full
 * (partition_park_full: as many messages or bytes as the in-flight limits).
 * So delivered-and-unsettled stays within the limits and parked messages
 * within the same limits again. */
partition_admit_result_t partition_admit(partition_t *p, int64_t offset, size_t bytes,
                                         bool from_parked, bool *pause_now);

/* The lane for a message with this key, or NULL when the partition has no
 * lanes (unordered). The caller pushes the message to it before the next
 * call, one item per message (partition_lane counts it as pushed). Poll
 * thread.
 *
 * Key order: messages of one key run in order, one at a time. A key whose
 * last message has not run yet gets the same lane again; any other key gets
 * an idle lane (made on demand, up to lane_count), so keys run in parallel
 * with each other whenever a lane is free, not only when their hashes
 * differ; with every lane busy it shares the lane its hash picks. The lane
 * of each key in flight is kept in a table that forgets keys whose messages
 * all ran (so it holds at most as many keys as messages are in flight). A
 * null key has no order: it takes any idle lane. With fixed_key_lanes a key
 * always takes the lane its salted hash picks, null keys round robin. */
pool_lane_t *partition_lane(partition_t *p, const void *key, size_t key_len);

/* Parked messages: a FIFO of opaque pointers, poll thread only. */
bool partition_park(partition_t *p, void *msg, int64_t offset, size_t bytes);
void *partition_parked_peek(const partition_t *p, int64_t *offset, size_t *bytes);
void partition_parked_pop(partition_t *p);
bool partition_is_paused(const partition_t *p);
bool partition_park_full(const partition_t *p);
bool partition_park_below_half(const partition_t *p);
bool partition_fetch_paused(const partition_t *p);
void partition_set_fetch_paused(partition_t *p, bool paused);

/* Whether a paused partition may take messages again: in flight below half
 * of both limits and room in the ack window. If so, it is marked unpaused;
 * the caller then re-admits its parked messages (from_parked=true) and, if
 * it is still unpaused after them, resumes fetching. Poll thread. */
bool partition_try_unpause(partition_t *p);

/* How a delivered message ends (partition_settle). */
typedef enum partition_settle_mode {
    PARTITION_ACK = 1,     /* done: ack its offset */
    PARTITION_RELEASE = 2, /* not done, not failed (abandoned on stop/revoke): replay later */
    PARTITION_FAIL = 3,    /* the handler failed on it: nothing at or past it is committed */
} partition_settle_mode_t;

/* Ends one delivered message: in the current assignment of topic/partition,
 * if its generation is still generation and the partition is not closing,
 * applies mode and takes the message out of the in-flight counters.
 * Any thread (takes the read lock). Returns KAFFE_OK, KAFFE_ERR_REVOKED
 * (other generation, gone, or closing: nothing changed) or the ack
 * tracker's error for PARTITION_ACK (stale/duplicate/untracked: nothing
 * changed). */
kaffe_status_t partition_settle(partition_table_t *t, const char *topic, int32_t partition,
                                uint64_t generation, int64_t offset, size_t bytes,
                                partition_settle_mode_t mode);

/* Whether generation is still the current, open assignment of
 * topic/partition. Any thread (takes the read lock). */
bool partition_is_current(partition_table_t *t, const char *topic, int32_t partition,
                          uint64_t generation);

/* Messages and bytes delivered and not settled. Any thread (acquire: a
 * zero count means every settle's tracker update is visible). */
int64_t partition_in_flight(const partition_t *p, int64_t *bytes);

/* Refuses every later settle (KAFFE_ERR_REVOKED) and waits for settles
 * already past the check to finish, so a snapshot taken afterwards includes
 * every ack that returned KAFFE_OK. Poll thread, before the final commit. */
void partition_close_acks(partition_t *p);

/* The committable state: watermark and done offsets above it, clipped below
 * the first failed offset. Returns false when there is nothing to commit
 * (no message seen yet and no committed offset). Poll thread. */
bool partition_snapshot(partition_t *p, ack_snapshot_t *snap);

/* Remembers what was committed last, so unchanged state is not committed
 * again; returns true when (watermark, metadata) differs from it. */
bool partition_commit_changed(partition_t *p, int64_t watermark, const char *metadata);
void partition_commit_done(partition_t *p, int64_t watermark, const char *metadata);

/* The lowest offset a handler failed on, or -1. */
int64_t partition_failed_offset(const partition_t *p);

/* --- stats ---------------------------------------------------------------
 * The poll thread publishes a few figures in atomics (paused flags, last
 * commit, dispatch-time samples); partition_stats reads them from any thread
 * inside a read-side section (or on the poll thread). */

#define PARTITION_SAMPLES 128 /* dispatch-time samples kept (>= 64 + slack) */

typedef struct partition_stats {
    uint64_t generation;
    int64_t committed_offset; /* last committed (or at assignment), -1 none */
    size_t metadata_bytes;    /* metadata of the last commit */
    int64_t watermark;        /* -1 before the first message */
    int64_t next_offset;      /* one past the highest tracked, -1 before */
    int64_t in_flight, in_flight_bytes;
    bool dispatch_paused, fetch_paused;
    /* Monotonic ms (partition_now_ms) at which the oldest unacked message
     * (or a sampled offset before it) was dispatched; -1 if none in flight. */
    int64_t oldest_dispatch_ms;
} partition_stats_t;

void partition_stats(const partition_t *p, partition_stats_t *out);

/* The clock of partition_stats_t.oldest_dispatch_ms. */
int64_t partition_now_ms(void);

/* Table-wide counters since the table was made (relaxed reads, each on
 * its own). Any thread. */
typedef struct partition_counters {
    uint64_t admitted;      /* messages dispatched to workers */
    uint64_t already_acked; /* skipped: acked before, per commit metadata */
    uint64_t acked;         /* PARTITION_ACK settles that returned KAFFE_OK */
} partition_counters_t;

void partition_table_counters(partition_table_t *t, partition_counters_t *out);

#endif
