/** @file
 * kaffe — the consumer.
 *
 * A consumer joins a consumer group, subscribes to the configured topics and
 * calls the configured message handler for every message, on a pool of
 * `workers` threads. kaffe commits, per partition, only the lowest offset not
 * yet acked (the watermark), with the acked offsets above it in the commit
 * metadata: a message that was never acked is delivered again after a
 * restart, and messages acked after it are not.
 *
 * Lifecycle: kaffe_consumer_new -> kaffe_consumer_start -> ... ->
 * kaffe_consumer_stop -> kaffe_consumer_destroy.
 *
 * Ordering (the `ordering` property):
 *   partition  one lane per partition: a partition's messages are handled one
 *              at a time, in offset order; partitions run in parallel.
 *   key        one lane per key in flight in a partition: messages with the
 *              same key are handled one at a time, in offset order; distinct
 *              keys run in parallel (a partition makes up to workers x 4
 *              lanes on demand; beyond that keys share lanes). Null keys have
 *              no order. With a batch handler a key's lane is the one its
 *              salted hash picks among the workers x 4.
 *   unordered  any free worker takes the next message.
 * A lane moves on when the handler returns. In async mode that means the
 * handler *invocation* order is kept, but completion (the ack) order is the
 * application's: the next message of a lane may be handled before the
 * previous one is acked.
 *
 * Threads: the handler runs on kaffe's worker threads; the error and
 * rebalance callbacks run on kaffe's poll thread (the error callback also on a
 * worker when a handler fails). From those threads kaffe refuses what would
 * wait for (or free) the thread it is called on, with KAFFE_ERR_STATE and a
 * report to the error callback, instead of deadlocking or aborting:
 * kaffe_consumer_stop() requests the stop (as kaffe_consumer_request_stop())
 * and returns KAFFE_ERR_STATE; kaffe_consumer_destroy() requests the stop
 * and otherwise does nothing (destroy from an application thread);
 * kaffe_consumer_wait() returns KAFFE_ERR_STATE; kaffe_consumer_commit()
 * from the error or rebalance callback returns KAFFE_ERR_STATE (from a
 * handler it works). librdkafka's own threads (the log callback) are not
 * recognised: do not call these from a log callback.
 *
 * Back-pressure, in sync and async mode alike, per partition: once
 * max_in_flight_messages (or max_in_flight_bytes) are delivered and not yet
 * acked, later messages of the partition are parked instead of handled; once
 * as many are parked (or the ack_window is full) the partition stops
 * fetching (rd_kafka_pause_partitions). Parked messages are handled when the
 * in-flight count falls below half the limits, and fetching resumes when the
 * park list is half empty. So memory stays bounded whatever the handler
 * does. max_wait_time (librdkafka's fetch.wait.max.ms; kaffe's default is
 * 100 ms, librdkafka's 500) bounds how long a resumed partition waits for its
 * next fetch.
 *
 * Failure. A message fails when its handler returns anything but KAFFE_OK,
 * or, in async mode, when the application calls kaffe_consumer_nack() for
 * it. Every failure is told to the error callback as KAFFE_ERR_HANDLER
 * (the reason names the application's value). What follows is the on_error
 * property:
 *   stop         (default, as Kaffe) the consumer stops with KAFFE_ERR_HANDLER.
 *                Nothing at or past the failed message is committed in its
 *                partition (it is delivered again after a restart);
 *                kaffe_consumer_wait() returns and kaffe_consumer_stop()
 *                returns the status.
 *   retry        the message is handed to the handler again after a backoff
 *                (retry_initial_backoff_ms doubling up to retry_max_backoff_ms, each
 *                wait drawn from its upper half), up to retry_max_attempts
 *                attempts in all; kaffe_message_attempt() tells which. Then
 *                retry_exhausted applies: stop, dead_letter, or skip (the
 *                message is acked unhandled, and counted).
 *   dead_letter  the message is produced to dead_letter_topic (key, value
 *                and headers, plus kaffe.original.topic/partition/offset,
 *                kaffe.error.code (the application's failure value, in
 *                decimal) and kaffe.error.text (kaffe_strerror of
 *                KAFFE_ERR_HANDLER), kaffe.attempts, kaffe.failed.at) by
 *                a producer kaffe makes from the consumer's settings. It
 *                counts as acked only once the broker acknowledged that
 *                produce. If the produce fails (after produce_timeout_ms of
 *                librdkafka retries), the consumer stops with that error,
 *                exactly as on_error=stop: the message is not committed and
 *                is delivered again after a restart. Nothing is lost.
 *   pause        the message waits, holding its lane, until the application
 *                calls kaffe_consumer_resume_partition(); it is then handed
 *                to the handler again (next attempt number).
 * A waiting message (retry or pause) holds back only its own lane: its
 * partition in partition ordering, its key lane in key ordering (in
 * unordered mode, nothing). No worker waits: the message is kept aside with
 * its due time, its lane is suspended (later messages stay queued behind
 * it), and the poll thread puts the lane back to work when the time comes
 * (within a few ms). The waiting message still counts as in flight in its
 * partition and holds its watermark, so a partition whose lane waits long
 * enough fills its in-flight limit or ack window and stops fetching, like
 * any slow message: other partitions are not affected. A nacked message
 * (async) cannot hold its lane, which has moved on: its retry is appended to
 * the lane's end. Waiting messages of a revoked partition, and all of them
 * on stop, are released unhandled (delivered again to the next owner / after
 * a restart), and so is what is queued behind them on their lanes: nothing
 * after a waiting message in its lane's order is handled before it.
 * kaffe_consumer_failure_counters() counts what the policies did.
 *
 * Broker trouble. Errors that librdkafka recovers from by itself (brokers
 * down, a coordinator that moved, request timeouts) are told to the error
 * callback and never stop the consumer: fetching and committing resume when
 * the cluster is back (commits that failed meanwhile are repeated).
 *
 * Fatal errors (librdkafka's rd_kafka_fatal_error: a fenced or invalid
 * member, ...) restart the underlying client, without the application
 * re-creating the consumer: the error callback is told; every partition is
 * revoked as in a rebalance (the rebalance callback is told; in-flight
 * messages get drain_timeout_ms; acks of messages delivered before the
 * restart return KAFFE_ERR_REVOKED afterwards); what is acked is committed
 * (by the new client, when the failed one no longer can: the next
 * assignment of a partition starts from the acked state when it is ahead of
 * the committed one); after a backoff (100 ms doubling per recent restart,
 * at most 5 s) a new client joins the group. At most restart_max restarts
 * within restart_window_ms: the next fatal error stops the consumer with
 * that error (restart_max=0: every fatal error stops it). */
#ifndef KAFFE_CONSUMER_H
#define KAFFE_CONSUMER_H

#include <stddef.h>
#include <stdint.h>

#include <kaffe/conf.h>
#include <kaffe/error.h>
#include <kaffe/export.h>
#include <kaffe/message.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A consumer (opaque): one member of a consumer group. See the file
 * description for its lifecycle, threads and guarantees. */
typedef struct kaffe_consumer_s kaffe_consumer_t;

/** Told when partitions are assigned to this consumer (assigned = 1, before
 * any of their messages is handled) or taken away (assigned = 0, after their
 * in-flight messages drained and their offsets were committed). Runs on the
 * poll thread; topic is valid only during the call. */
typedef void (*kaffe_rebalance_cb_t)(kaffe_consumer_t *c, int assigned, const char *topic,
                                     int32_t partition, void *opaque);

/** Creates a consumer from conf. On success the consumer takes conf: it is
 * freed by the consumer and must not be used or destroyed by the
 * application. On failure NULL is returned, a message is written to errstr
 * (naming the property at fault: a missing handler, no topics, ...), and the
 * caller keeps conf. Nothing connects until kaffe_consumer_start(). */
KAFFE_API kaffe_consumer_t *kaffe_consumer_new(kaffe_conf_t *conf, char *errstr,
                                               size_t errstr_size);

/** Sets the rebalance callback (opaque is borrowed). Before start only:
 * KAFFE_ERR_STATE afterwards. */
KAFFE_API kaffe_status_t kaffe_consumer_set_rebalance_cb(kaffe_consumer_t *c,
                                                         kaffe_rebalance_cb_t cb, void *opaque);

/** Subscribes and starts the poll thread and the workers. Returns KAFFE_OK,
 * KAFFE_ERR_STATE if already started (or stopped), or a librdkafka error of
 * the subscription. Any one thread. */
KAFFE_API kaffe_status_t kaffe_consumer_start(kaffe_consumer_t *c);

/** Adds topics to the subscription while running (Kaffe's
 * subscribe_to_topics), or before start. Each of the count entries is a
 * topic name or a librdkafka pattern starting with '^' ("^orders\\..*"),
 * which also matches topics created later (found at the next metadata
 * refresh: rdkafka.topic.metadata.refresh.interval.ms, 5 minutes by
 * default). Entries already subscribed are ignored. Running, the group
 * rebalances and the new topics' partitions are assigned and handled like
 * the others; before start, start subscribes to the whole list. Returns
 * KAFFE_OK once the new subscription is set (the assignment follows, see
 * kaffe_consumer_set_rebalance_cb); KAFFE_ERR_INVALID_ARG for a NULL c or
 * topics, count 0 or an empty or NULL entry; KAFFE_ERR_STATE once a stop was
 * requested, and from the consumer's poll thread (its rebalance, error and
 * log callbacks); or librdkafka's refusal of the subscription. On any error
 * the subscription is unchanged. Any other thread, handlers included; from
 * an application thread the change first commits everything acked, so no
 * message is handled again. From a handler the message being handled (and
 * those after the last commit) cannot be committed first: with librdkafka
 * 2.0.2, which may revoke every partition on the rejoin, they can be
 * delivered again (never lost). */
KAFFE_API kaffe_status_t kaffe_consumer_subscribe(kaffe_consumer_t *c, const char *const *topics,
                                                  size_t count);

/** Removes topics (names or patterns, exactly as subscribed) from the
 * subscription. Their partitions are revoked as in any rebalance: their
 * in-flight messages drain (up to drain_timeout_ms), what is acked is
 * committed, and a later ack of one of their messages gets
 * KAFFE_ERR_REVOKED; the other topics' partitions carry on (with the
 * default cooperative-sticky assignor they are not even revoked). Returns as
 * kaffe_consumer_subscribe(), and KAFFE_ERR_INVALID_ARG, changing nothing,
 * for an entry that is not subscribed or when no topic would be left (stop
 * the consumer instead). Same threads. */
KAFFE_API kaffe_status_t kaffe_consumer_unsubscribe(kaffe_consumer_t *c, const char *const *topics,
                                                    size_t count);

/** Acks a message in async mode. Call exactly once per message the handler
 * accepted (returned KAFFE_OK for), from any thread, at any time, even from
 * inside the handler; m must not be used after this call (it is released,
 * whatever the result). Returns:
 *   KAFFE_OK                 recorded: it will be committed;
 *   KAFFE_ERR_REVOKED        the partition was revoked (or reassigned) since
 *                            m was delivered: nothing changed, the new owner
 *                            gets the message again;
 *   KAFFE_ERR_STOPPED        the consumer finished stopping: nothing changed;
 *   KAFFE_ERR_ACK_DUPLICATE  m was acked already (or its handler failed);
 *   KAFFE_ERR_NOT_ASYNC      sync mode: the handler's return is the ack;
 *   KAFFE_ERR_INVALID_ARG    c or m is NULL, or m belongs to another consumer.
 * A second ack of the same message is detected as long as kaffe has not
 * reused the message object for a later message: kaffe keeps released
 * message objects in a quarantine of the last 4096 before reuse. Acking
 * after kaffe_consumer_destroy() is undefined. */
KAFFE_API kaffe_status_t kaffe_consumer_ack(kaffe_consumer_t *c, kaffe_message_t *m);

/** Reports, in async mode, that handling m failed with the application's
 * failure value error (any value but KAFFE_OK): the on_error policy applies
 * to m as if its handler had returned error. Instead of kaffe_consumer_ack(), exactly once, from
 * any thread; m must not be used after this call. Returns KAFFE_OK (the policy took it), or as
 * kaffe_consumer_ack() (REVOKED, STOPPED, ACK_DUPLICATE, NOT_ASYNC, INVALID_ARG; error KAFFE_OK is
 * INVALID_ARG): then nothing changed. */
KAFFE_API kaffe_status_t kaffe_consumer_nack(kaffe_consumer_t *c, kaffe_message_t *m, int error);

/** on_error=pause: hands the messages waiting in topic/partition to the
 * handler again (the partition then flows on). Any thread, handlers and
 * callbacks included (it only marks them due; the poll thread hands them
 * over within a few ms). Returns KAFFE_OK, or KAFFE_ERR_UNKNOWN_PARTITION when no
 * message of topic/partition is paused, KAFFE_ERR_INVALID_ARG for NULLs. */
KAFFE_API kaffe_status_t kaffe_consumer_resume_partition(kaffe_consumer_t *c, const char *topic,
                                                         int32_t partition);

/** What the failure policies did since the consumer was created. */
typedef struct kaffe_failure_counters {
    uint64_t failures;           /**< handler failures and nacks */
    uint64_t retries;            /**< retry attempts scheduled */
    uint64_t dead_lettered;      /**< dead-letter produces acknowledged by the broker */
    uint64_t dead_letter_failed; /**< dead-letter produces that failed */
    uint64_t skipped;            /**< messages acked unhandled (retry_exhausted=skip) */
    uint64_t paused;             /**< messages paused (on_error=pause) */
    uint64_t restarts;           /**< client restarts after fatal errors */
    int last_failure_value;      /**< the value the last failed handler returned, or
                                      the last nack passed (0: no failure yet) */
} kaffe_failure_counters_t;

/** Copies the counters into *out. Any thread; each counter is read on its
 * own (the set is not a snapshot). KAFFE_ERR_INVALID_ARG for NULLs. */
KAFFE_API kaffe_status_t kaffe_consumer_failure_counters(kaffe_consumer_t *c,
                                                         kaffe_failure_counters_t *out);

/** Asks the consumer to stop and returns at once; the poll thread then stops
 * fetching, drains, commits and leaves the group, as kaffe_consumer_stop().
 * Async-signal-safe: it only stores to a lock-free atomic flag, so it may be
 * called from a signal handler (then call kaffe_consumer_stop() or
 * kaffe_consumer_wait() from a normal thread). Noticed within ~100 ms.
 * Returns KAFFE_ERR_INVALID_ARG for NULL, else KAFFE_OK. */
KAFFE_API kaffe_status_t kaffe_consumer_request_stop(kaffe_consumer_t *c);

/** Waits until the consumer has stopped by itself (handler failure, fatal
 * error) or after a stop request: KAFFE_OK once stopped, KAFFE_ERR_TIMED_OUT
 * after timeout_ms (< 0: no limit), KAFFE_ERR_STATE if never started. Any
 * thread but the poll thread and workers. */
KAFFE_API kaffe_status_t kaffe_consumer_wait(kaffe_consumer_t *c, int timeout_ms);

/** Commits now, synchronously, what is acked (each partition's watermark and
 * metadata), and returns the result: KAFFE_OK, a librdkafka error, or
 * KAFFE_ERR_STATE / KAFFE_ERR_STOPPED when not running. Any thread except
 * the poll thread; it waits for the poll thread to do it (up to ~100 ms). */
KAFFE_API kaffe_status_t kaffe_consumer_commit(kaffe_consumer_t *c);

/** The last error reported to the error callback (KAFFE_OK if none), with
 * its text copied into buf (may be NULL). Any thread. */
KAFFE_API kaffe_status_t kaffe_consumer_last_error(kaffe_consumer_t *c, char *buf, size_t size);

/** Stops fetching, waits for in-flight messages (delivered, queued on lanes,
 * or accepted and not yet acked) up to drain_timeout_ms, commits what is
 * acked, and leaves the group; then waits for the workers to finish the
 * handler calls they are in (it cannot interrupt a handler) and returns.
 * Messages not handled by then are not committed (delivered again later).
 * Async messages still held by the application stay valid until acked
 * (the ack then returns KAFFE_ERR_STOPPED) or until kaffe_consumer_destroy.
 * Safe to call from any thread other than the poll thread and workers
 * (not from a handler or callback), concurrently, and more than once; a
 * consumer never started just stops. Returns the error that stopped the
 * consumer (a handler failure, a fatal librdkafka error) or KAFFE_OK. */
KAFFE_API kaffe_status_t kaffe_consumer_stop(kaffe_consumer_t *c);

/** Frees the consumer, stopping it first if needed. Messages the application
 * still holds are freed too: none may be used or acked afterwards. NULL is
 * allowed. Not from a handler or callback. */
KAFFE_API void kaffe_consumer_destroy(kaffe_consumer_t *c);

#ifdef __cplusplus
}
#endif

#endif /* KAFFE_CONSUMER_H */
